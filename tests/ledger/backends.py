"""Where a ledger test's ledger lives: an SQLite file, or one cluster's schema in a fresh
PostgreSQL database of the session's server (:mod:`tests.pgkit`). Tests that go through the
ledger's API take the ``ledger_target`` fixture (tests/ledger/conftest.py) and run on both."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from auditor.ledger import Ledger
from tests.pgkit import PORT, PgDatabase


def pg_url(database: PgDatabase) -> str:
    """A ``postgresql://`` URL for ``database`` on the kit's Unix socket."""
    return (f"postgresql://postgres@/{database.name}?host={database.server.socket_dir}"
            f"&port={PORT}")


@dataclass(frozen=True)
class LedgerTarget:
    """One ledger: ``location`` an SQLite file or a PostgreSQL URL, with ``cluster``."""

    backend: str
    location: Path | str
    cluster: str | None = None
    database: PgDatabase | None = None

    @property
    def postgresql(self) -> bool:
        return self.backend == "postgresql"

    def open(self, **kwargs: Any) -> Ledger:
        if self.postgresql:
            return Ledger.open(self.location, cluster=self.cluster, **kwargs)
        return Ledger.open(self.location, **kwargs)

    @property
    def ref(self) -> str:
        """The ledger as a command's ``--ledger`` names it: the file, or ``URL#cluster``."""
        return f"{self.location}#{self.cluster}" if self.postgresql else str(self.location)

    @contextmanager
    def reading(self) -> Iterator[Any]:
        """The readers' connection (``auditor.ledger.backend.reader``): read-only, no lock,
        as the outputs read a ledger."""
        from auditor.ledger import backend

        target = (backend.StoreLedger(str(self.location), self.cluster) if self.postgresql
                  else Path(self.location))
        with backend.reader(target) as conn:
            yield conn

    def other(self, name: str) -> LedgerTarget:
        """Another ledger beside this one: a second file, or another cluster in the same
        database."""
        if self.postgresql:
            return LedgerTarget(self.backend, self.location, name, self.database)
        assert isinstance(self.location, Path)
        return LedgerTarget(self.backend, self.location.with_name(f"{name}.db"))

    @contextmanager
    def connect(self) -> Iterator[Any]:
        """A plain connection to the ledger (no lock) speaking the ledger's SQLite dialect:
        for a test's own queries."""
        if self.postgresql:
            from auditor.ledger import pgconn

            assert self.cluster is not None
            pg = pgconn.connect(str(self.location), self.cluster)
            try:
                yield pg
            finally:
                pg.close()
        else:
            lite = sqlite3.connect(self.location)
            try:
                yield lite
            finally:
                lite.close()

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self.connect() as conn:
            return [tuple(r) for r in conn.execute(sql, params).fetchall()]

    def untriggered(self) -> Any:
        """What an attacker with write access to the storage does first: a connection with the
        append-only guards off, autocommit, speaking the ledger's SQLite dialect (``?``).
        SQLite: every trigger dropped from the file. PostgreSQL: a superuser session (the
        kit's ``postgres``) with ``ALTER TABLE … DISABLE TRIGGER USER`` on every table of the
        cluster's schema, as tests/ledger/test_fleet_pg.py tampers. The caller closes it."""
        if self.postgresql:
            from auditor.ledger import pgconn

            assert self.cluster is not None
            pg = pgconn.connect(str(self.location), self.cluster)
            tables = pg.execute("SELECT table_name FROM information_schema.tables WHERE "
                                "table_schema = ? AND table_type = 'BASE TABLE'",
                                (pgconn.schema_name(self.cluster),)).fetchall()
            # Through psycopg itself: the ledger's dialect would quote USER (a column name).
            with psycopg.connect(str(self.location), autocommit=True) as admin:
                for (table,) in tables:
                    admin.execute(f"ALTER TABLE {pgconn.schema_name(self.cluster)}.{table} "
                                  "DISABLE TRIGGER USER")
            return pg
        lite = sqlite3.connect(self.location, isolation_level=None)
        for (name,) in lite.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'"
                                    ).fetchall():
            lite.execute(f"DROP TRIGGER {name}")
        return lite

    def tamper(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """One statement through :meth:`untriggered`: the same tampering on either backend;
        returns its rows (none for a write)."""
        conn = self.untriggered()
        try:
            return [tuple(r) for r in conn.execute(sql, params).fetchall()]
        finally:
            conn.close()

    @property
    def refused(self) -> tuple[type[Exception], ...]:
        """What a write an append-only guard refuses raises on this backend's plain
        connection (:meth:`connect`)."""
        from auditor.ledger.dialect import BackendError

        return (BackendError,) if self.postgresql else (sqlite3.IntegrityError,)
