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
