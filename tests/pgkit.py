"""A real, throwaway PostgreSQL server for tests: finding its binaries, ``initdb`` into a fresh
temporary directory, starting it on a private Unix socket, a fresh database per test, and
stopping it and removing every file afterwards.

The server listens on no TCP port (``listen_addresses=''``), only on a socket in its own
temporary directory, so parallel test sessions never collide and nothing outside the machine
can reach it. Authentication is ``trust`` for that socket; the superuser is ``postgres``
whoever runs the tests. PostgreSQL refuses to run as root, so when the tests run as root (CI,
containers) every server command runs as the ``postgres`` system user through ``runuser``.

Fixtures: ``pg_server`` (one server per session) and ``pg_database`` (a fresh empty database
per test). A test module outside the root conftest imports them::

    from tests.pgkit import pg_database, pg_server  # noqa: F401

Missing binaries fail the test (never skip it) naming ``tools/install-system-deps.sh``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

INSTALL_HINT = ("PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or in "
                "/usr/lib/postgresql/*/bin: run tools/install-system-deps.sh (as root it "
                "installs Debian's postgresql package)")
# The system user the server runs as when we are root (Debian's postgresql package creates it).
SERVER_USER = "postgres"
# Where Debian installs each major version's server binaries (off PATH).
DEBIAN_ROOT = Path("/usr/lib/postgresql")
# Only names the socket file (.s.PGSQL.<port>): the socket directory is private to one server.
PORT = 5432
_SERVER_SETTINGS = {
    "listen_addresses": "''",
    "port": str(PORT),
    "max_connections": "100",
    # Durability is not under test here; fsync off keeps initdb and each commit cheap on a
    # shared CI machine.
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "shared_buffers": "32MB",
}


class PgUnavailable(RuntimeError):
    """No PostgreSQL server binaries on this machine."""


def find_bindir() -> Path:
    """The directory holding ``initdb`` and ``pg_ctl``: PATH first, then the newest
    ``/usr/lib/postgresql/<version>/bin`` (Debian keeps them off PATH)."""
    on_path = shutil.which("initdb")
    if on_path:
        bindir = Path(on_path).resolve().parent
        if (bindir / "pg_ctl").is_file():
            return bindir
    versions: list[tuple[tuple[int, ...], Path]] = []
    for initdb in DEBIAN_ROOT.glob("*/bin/initdb"):
        bindir = initdb.parent
        numbers = tuple(int(n) for n in re.findall(r"\d+", bindir.parent.name))
        if numbers and (bindir / "pg_ctl").is_file():
            versions.append((numbers, bindir))
    if not versions:
        raise PgUnavailable(INSTALL_HINT)
    return max(versions)[1]


def _as_root() -> bool:
    return os.geteuid() == 0


class PgServer:
    """One PostgreSQL server in its own temporary directory; ``with PgServer() as pg:`` starts
    it and afterwards stops it and removes the directory."""

    def __init__(self, bindir: Path | None = None) -> None:
        self.bindir = bindir or find_bindir()
        self.base: Path | None = None
        self.running = False

    # -- layout -------------------------------------------------------------------------
    @property
    def datadir(self) -> Path:
        return self._base() / "data"

    @property
    def socket_dir(self) -> Path:
        return self._base() / "sock"

    @property
    def socket_path(self) -> Path:
        return self.socket_dir / f".s.PGSQL.{PORT}"

    @property
    def logfile(self) -> Path:
        return self._base() / "server.log"

    def _base(self) -> Path:
        if self.base is None:
            raise RuntimeError("PgServer not started")
        return self.base

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> PgServer:
        """initdb into a fresh temporary directory and start the server; returns when it
        accepts connections."""
        if self.running:
            return self
        self.base = Path(tempfile.mkdtemp(prefix="pgkit-"))
        try:
            self.socket_dir.mkdir()
            if _as_root():
                # The server process (user postgres) must own its data, socket and log.
                for path in (self.base, self.socket_dir):
                    shutil.chown(path, SERVER_USER, SERVER_USER)
            self._run(["initdb", "-D", str(self.datadir), "-U", "postgres", "-A", "trust",
                       "-E", "UTF8", "--locale=C", "--no-sync"])
            with (self.datadir / "postgresql.conf").open("a") as conf:
                for name, value in {**_SERVER_SETTINGS,
                                    "unix_socket_directories": f"'{self.socket_dir}'"}.items():
                    conf.write(f"{name} = {value}\n")
            # -w: pg_ctl waits until the server accepts connections (or fails within -t).
            self._run(["pg_ctl", "-D", str(self.datadir), "-l", str(self.logfile), "-w",
                       "-t", "60", "start"])
            self.running = True
            self._check_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the server (fast: open sessions are rolled back) and remove its directory."""
        if self.base is None:
            return
        try:
            if self.running or (self.datadir / "postmaster.pid").exists():
                self._run(["pg_ctl", "-D", str(self.datadir), "-m", "fast", "-w", "-t", "60",
                           "stop"], check=False)
        finally:
            self.running = False
            shutil.rmtree(self.base, ignore_errors=True)
            self.base = None

    def __enter__(self) -> PgServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- connecting ---------------------------------------------------------------------
    def conninfo(self, dbname: str = "postgres") -> str:
        """A libpq conninfo string for ``dbname`` on this server's socket."""
        return f"host={self.socket_dir} port={PORT} user=postgres dbname={dbname}"

    def create_database(self, name: str | None = None) -> str:
        """Create an empty database (from ``template0``: nothing a test added to template1
        leaks in); returns its name."""
        name = name or f"t_{uuid.uuid4().hex[:16]}"
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
            raise ValueError(f"database name {name!r}: use lower-case letters, digits and _")
        # CREATE DATABASE cannot run inside a transaction block: autocommit.
        with psycopg.connect(self.conninfo(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8'")
        return name

    def drop_database(self, name: str) -> None:
        """Drop ``name``, ending any session a test left open on it (PostgreSQL 13+)."""
        with psycopg.connect(self.conninfo(), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    # -- helpers ------------------------------------------------------------------------
    def _run(self, argv: Sequence[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [str(self.bindir / argv[0]), *argv[1:]]
        if _as_root():
            command = ["runuser", "-u", SERVER_USER, "--", *command]
        # cwd: the server user may not be allowed into the directory the tests run from.
        result = subprocess.run(command, cwd=self._base(), capture_output=True, text=True,
                                timeout=120, check=False)
        if check and result.returncode != 0:
            log = self.logfile.read_text(errors="replace")[-2000:] if self.logfile.exists() else ""
            raise RuntimeError(f"{' '.join(argv)} failed ({result.returncode}): "
                               f"{result.stderr.strip() or result.stdout.strip()}\n{log}")
        return result

    def _check_ready(self) -> None:
        with psycopg.connect(self.conninfo(), connect_timeout=30) as conn:
            conn.execute("SELECT 1")


@dataclass(frozen=True)
class PgDatabase:
    """A fresh database on the session's server: its name and a conninfo string for it."""

    server: PgServer
    name: str

    @property
    def conninfo(self) -> str:
        return self.server.conninfo(self.name)


def require_server() -> PgServer:
    """A (not yet started) server, or the test fails naming the install script: a machine
    without PostgreSQL must not pass by skipping the tests that need it."""
    try:
        return PgServer()
    except PgUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """One PostgreSQL server for the session; fails (never skips) without the binaries."""
    with require_server() as server:
        yield server


@pytest.fixture
def pg_database(pg_server: PgServer) -> Iterator[PgDatabase]:
    """A fresh, empty database for one test, dropped afterwards."""
    name = pg_server.create_database()
    yield PgDatabase(pg_server, name)
    pg_server.drop_database(name)
