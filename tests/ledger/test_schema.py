"""Schema: migrations from empty, idempotent re-open, WAL, append-only triggers."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from auditor.errors import LedgerError
from auditor.ledger import SCHEMA_VERSION, Ledger, reverts
from auditor.ledger.schema import CHAINED

from .helpers import at, drifted, key, obs


def _tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def test_migrates_from_empty_and_reopens_idempotently(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    with Ledger.open(db) as ledger:
        assert ledger.schema_version_found == 0
    first = _tables(db)
    assert {"runs", "events", "checkpoints", "objects", "object_versions", "contents", "latest",
            "changes", "drifts", "drift_events", "drift_state", "commits"} <= first
    with Ledger.open(db) as ledger:
        assert ledger.schema_version_found == SCHEMA_VERSION
    assert _tables(db) == first
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_refuses_a_newer_schema(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    with Ledger.open(db):
        pass
    with sqlite3.connect(db) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(LedgerError, match="newer than this drift-auditor"):
        Ledger.open(db)


def _populated(tmp_path: Path) -> Path:
    db = tmp_path / "ledger.db"
    with Ledger.open(db) as ledger:
        run = ledger.begin_run(started_at=at(0))
        run.observe(obs(key("web"), {"spec": {"replicas": 3}}))
        run.record(drifted(key("web"), ("spec.replicas", 2, 3)))
        run.record_commits([{"sha": "c1", "author": "ann", "subject": "init"}])
        run.finish("complete")
        run = ledger.begin_run(started_at=at(1))
        run.observe(obs(key("web"), {"spec": {"replicas": 4}}, rv="2"))
        run.record(drifted(key("web"), ("spec.replicas", 2, 4)))
        reverts.record(run, key("web"), action="apply", mode="enforce", result="reverted",
                       reason="drifted")
        run.finish("complete")
    return db


@pytest.mark.parametrize("table", [*CHAINED, "events", "checkpoints"])
def test_triggers_refuse_update_and_delete_of_chained_rows(tmp_path: Path, table: str) -> None:
    db = _populated(tmp_path)
    conn = sqlite3.connect(db)
    assert conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] > 0
    with pytest.raises(sqlite3.IntegrityError, match="append-only; UPDATE refused"):
        conn.execute(f"UPDATE {table} SET rowid = rowid")
    with pytest.raises(sqlite3.IntegrityError, match="append-only; DELETE refused"):
        conn.execute(f"DELETE FROM {table}")


def test_finished_runs_are_immutable(tmp_path: Path) -> None:
    conn = sqlite3.connect(_populated(tmp_path))
    with pytest.raises(sqlite3.IntegrityError, match="finished run is immutable"):
        conn.execute("UPDATE runs SET status = 'complete' WHERE id = 1")
    with pytest.raises(sqlite3.IntegrityError, match="DELETE refused"):
        conn.execute("DELETE FROM runs")
    with pytest.raises(sqlite3.IntegrityError, match="UPDATE refused"):
        conn.execute("UPDATE contents SET content = '{}'")
