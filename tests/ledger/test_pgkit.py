"""The PostgreSQL test kit (:mod:`tests.pgkit`): a real server on a private socket, fresh
independent databases, a clean stop, and a killed client leaving nothing committed."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from tests import pgkit
from tests.pgkit import PgDatabase, PgServer, pg_database, pg_server  # noqa: F401 (fixtures)


def test_server_listens_on_its_private_socket_only(pg_server: PgServer) -> None:  # noqa: F811
    with psycopg.connect(pg_server.conninfo()) as conn:
        settings: dict[str, str] = dict(conn.execute(
            "SELECT name, setting FROM pg_settings WHERE name IN "
            "('listen_addresses', 'unix_socket_directories', 'fsync', 'max_connections')"
        ).fetchall())
        user = conn.execute("SELECT current_user").fetchone()
    assert settings == {"listen_addresses": "", "fsync": "off", "max_connections": "100",
                        "unix_socket_directories": str(pg_server.socket_dir)}
    assert user == ("postgres",)
    assert pg_server.socket_path.is_socket()


def test_psycopg_round_trip(pg_database: PgDatabase) -> None:  # noqa: F811
    with psycopg.connect(pg_database.conninfo) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == (pg_database.name,)
        conn.execute("CREATE TABLE t (id BIGINT PRIMARY KEY, body TEXT, raw BYTEA)")
        conn.execute("INSERT INTO t VALUES (%s, %s, %s)", (1, "é ✓", b"\x00\xff"))
        conn.commit()
    with psycopg.connect(pg_database.conninfo) as conn:
        rows = conn.execute("SELECT id, body, raw FROM t").fetchall()
    assert rows == [(1, "é ✓", b"\x00\xff")]


def test_databases_are_independent(pg_server: PgServer) -> None:  # noqa: F811
    first, second = pg_server.create_database(), pg_server.create_database()
    try:
        assert first != second
        with psycopg.connect(pg_server.conninfo(first)) as conn:
            conn.execute("CREATE TABLE shared_name (v TEXT)")
            conn.execute("INSERT INTO shared_name VALUES ('first')")
        with psycopg.connect(pg_server.conninfo(second)) as conn:
            tables = conn.execute("SELECT table_name FROM information_schema.tables "
                                  "WHERE table_schema = 'public'").fetchall()
            assert tables == []
            conn.execute("CREATE TABLE shared_name (v TEXT)")
            conn.execute("INSERT INTO shared_name VALUES ('second')")
        with psycopg.connect(pg_server.conninfo(first)) as conn:
            assert conn.execute("SELECT v FROM shared_name").fetchall() == [("first",)]
    finally:
        pg_server.drop_database(first)
        pg_server.drop_database(second)
    with psycopg.connect(pg_server.conninfo()) as conn:
        left = conn.execute("SELECT count(*) FROM pg_database WHERE datname IN (%s, %s)",
                            (first, second)).fetchone()
    assert left == (0,)


def test_a_kit_stops_its_server_and_removes_its_files() -> None:
    with PgServer() as pg:
        base, socket_path = pg.base, pg.socket_path
        assert base is not None
        postmaster = int((pg.datadir / "postmaster.pid").read_text().split()[0])
        with psycopg.connect(pg.conninfo()) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        conninfo = pg.conninfo()
    assert not socket_path.exists()
    assert not base.exists()
    assert not _running(postmaster)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(conninfo, connect_timeout=2)


def _running(pid: int) -> bool:
    """Whether ``pid`` is a live process. An exited one may linger as a zombie: the
    postmaster is reparented to PID 1, which in some containers never reaps it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


_CLIENT = """
import sys, time, psycopg
conn = psycopg.connect(sys.argv[1], application_name="pgkit-victim")
conn.execute("INSERT INTO items VALUES (1), (2), (3)")  # psycopg opened a transaction
print("inserted", flush=True)
time.sleep(120)
"""


def _wait_gone(conninfo: str, application_name: str) -> None:
    """Until the server has noticed the dead client and ended its backend."""
    deadline = time.monotonic() + 20
    with psycopg.connect(conninfo, autocommit=True) as conn:
        while conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                           (application_name,)).fetchone() != (0,):
            assert time.monotonic() < deadline, "the killed client's backend never went away"
            time.sleep(0.05)


def test_a_killed_client_commits_nothing(pg_database: PgDatabase) -> None:  # noqa: F811
    with psycopg.connect(pg_database.conninfo, autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id BIGINT PRIMARY KEY)")
    client = subprocess.Popen([sys.executable, "-c", _CLIENT, pg_database.conninfo],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert client.stdout is not None
        assert client.stdout.readline().strip() == "inserted"
        with psycopg.connect(pg_database.conninfo, autocommit=True) as conn:
            # Inserted, not committed: invisible to others while the client lives.
            assert conn.execute("SELECT count(*) FROM items").fetchone() == (0,)
            assert conn.execute("SELECT state FROM pg_stat_activity WHERE application_name = "
                                "'pgkit-victim'").fetchone() == ("idle in transaction",)
        client.send_signal(signal.SIGKILL)
        assert client.wait(timeout=10) == -signal.SIGKILL
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
    _wait_gone(pg_database.conninfo, "pgkit-victim")
    with psycopg.connect(pg_database.conninfo) as conn:
        assert conn.execute("SELECT count(*) FROM items").fetchone() == (0,)
        # Its row locks went with it: the same keys insert without waiting.
        conn.execute("SET lock_timeout = '2s'")
        conn.execute("INSERT INTO items VALUES (1), (2), (3)")
        conn.commit()
        assert conn.execute("SELECT count(*) FROM items").fetchone() == (3,)


def test_a_terminated_backend_commits_nothing(pg_database: PgDatabase) -> None:  # noqa: F811
    with psycopg.connect(pg_database.conninfo, autocommit=True) as admin:
        admin.execute("CREATE TABLE items (id BIGINT PRIMARY KEY)")
        victim = psycopg.connect(pg_database.conninfo)
        try:
            victim.execute("INSERT INTO items VALUES (1)")
            pid = victim.info.backend_pid
            assert admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone() == (True,)
            with pytest.raises(psycopg.OperationalError):
                victim.commit()
        finally:
            victim.close()
        assert admin.execute("SELECT count(*) FROM items").fetchone() == (0,)


def test_newest_debian_version_is_chosen(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for version in ("9.6", "13", "15", "16"):
        bindir = tmp_path / version / "bin"
        bindir.mkdir(parents=True)
        for tool in ("initdb", "pg_ctl"):
            (bindir / tool).write_text("#!/bin/sh\n")
    (tmp_path / "16" / "bin" / "pg_ctl").unlink()  # an incomplete install is passed over
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setattr(pgkit, "DEBIAN_ROOT", tmp_path)
    assert pgkit.find_bindir() == tmp_path / "15" / "bin"


def test_missing_binaries_fail_naming_the_install_script(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(pgkit, "DEBIAN_ROOT", tmp_path / "nowhere")
    with pytest.raises(pytest.fail.Exception, match=r"tools/install-system-deps\.sh"):
        pgkit.require_server()
