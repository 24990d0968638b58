"""Fixtures of the ledger tests: ``ledger_target``, a ledger on each backend."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.pgkit import PgDatabase, pg_database, pg_server  # noqa: F401 (fixtures)

from .backends import LedgerTarget, pg_url


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_target(request: pytest.FixtureRequest, tmp_path: Path) -> LedgerTarget:
    """A ledger on SQLite (a file in ``tmp_path``) or PostgreSQL (cluster ``test`` in a fresh
    database; the server starts only when a PostgreSQL case runs)."""
    if request.param == "sqlite":
        return LedgerTarget("sqlite", tmp_path / "l.db")
    database: PgDatabase = request.getfixturevalue("pg_database")
    return LedgerTarget("postgresql", pg_url(database), "test", database)
