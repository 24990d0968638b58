"""Schema: migrations from empty, idempotent re-open, WAL, append-only triggers. Tests taking
``ledger_target`` run on SQLite and PostgreSQL (the store's triggers are translated from the
SQLite ones and refuse with the same messages). SQLite-only: the migration steps and what a
file of a lower schema version (``PRAGMA user_version``) or a half-created file does, as a
store is created at the current version in one transaction and not migrated yet."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from auditor.config import Config
from auditor.errors import LedgerError, LedgerTamperedError
from auditor.ledger import SCHEMA_VERSION, Ledger, configlog, reverts, schema
from auditor.ledger.schema import CHAINED

from .backends import LedgerTarget
from .helpers import at, drifted, key, obs


def _target_tables(target: LedgerTarget) -> set[str]:
    with target.connect() as conn:
        return schema.tables(conn)


def test_migrates_from_empty_and_reopens_idempotently(ledger_target: LedgerTarget) -> None:
    with ledger_target.open() as ledger:
        assert ledger.schema_version_found == 0
    first = _target_tables(ledger_target)
    assert {"runs", "events", "checkpoints", "objects", "object_versions", "contents", "latest",
            "changes", "drifts", "drift_events", "drift_state", "commits"} <= first
    with ledger_target.open() as ledger:
        assert ledger.schema_version_found == SCHEMA_VERSION
    assert _target_tables(ledger_target) == first
    with ledger_target.connect() as conn:
        assert schema.version(conn) == SCHEMA_VERSION
        if not ledger_target.postgresql:  # the file's journal; the store has none to set
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_refuses_a_newer_schema(ledger_target: LedgerTarget) -> None:
    with ledger_target.open():
        pass
    with ledger_target.connect() as conn:
        if ledger_target.postgresql:
            conn.execute("UPDATE ledger_schema_version SET version = ?", (SCHEMA_VERSION + 1,))
        else:
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
            conn.commit()
    with pytest.raises(LedgerError, match="newer than this drift-auditor"):
        ledger_target.open()


def _populated(tmp_path: Path, target: LedgerTarget | None = None) -> LedgerTarget:
    db = target or LedgerTarget("sqlite", tmp_path / "ledger.db")
    with db.open() as ledger:
        run = ledger.begin_run(started_at=at(0))
        configlog.record_if_changed(run, configlog.snapshot(Config(), policies_dir=tmp_path))
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
def test_triggers_refuse_update_and_delete_of_chained_rows(
        tmp_path: Path, ledger_target: LedgerTarget, table: str) -> None:
    db = _populated(tmp_path, ledger_target)
    with db.connect() as conn:
        assert conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] > 0
        # Any column (PostgreSQL has no rowid): the guard fires before the row changes.
        column = conn.execute(f"SELECT * FROM {table} LIMIT 1").description[0][0]
        with pytest.raises(db.refused, match="append-only; UPDATE refused"):
            conn.execute(f"UPDATE {table} SET {column} = {column}")
        with pytest.raises(db.refused, match="append-only; DELETE refused"):
            conn.execute(f"DELETE FROM {table}")


def test_finished_runs_are_immutable(tmp_path: Path, ledger_target: LedgerTarget) -> None:
    db = _populated(tmp_path, ledger_target)
    with db.connect() as conn:
        with pytest.raises(db.refused, match="finished run is immutable"):
            conn.execute("UPDATE runs SET status = 'complete' WHERE id = 1")
        with pytest.raises(db.refused, match="DELETE refused"):
            conn.execute("DELETE FROM runs")
        with pytest.raises(db.refused, match="UPDATE refused"):
            conn.execute("UPDATE contents SET content = '{}'")


def test_step_tables_name_what_each_migration_step_creates(tmp_path: Path) -> None:
    conn = schema.connect(tmp_path / "ledger.db")
    before: set[str] = set()
    for number, step in schema.MIGRATIONS:
        conn.execute("BEGIN IMMEDIATE")
        step(schema._database(conn))
        conn.execute("COMMIT")
        now = schema.tables(conn)
        assert now - before == set(schema.STEP_TABLES[number]), number
        before = now
    assert set(schema.STEP_TABLES) == {n for n, _ in schema.MIGRATIONS}


def test_a_step_that_ends_its_transaction_early_is_refused_and_rolled_back(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "ledger.db"
    original = dict(schema.MIGRATIONS)[3]

    def committing(database: Any) -> None:
        original(database)
        database.conn.commit()  # what a DDL helper with its own transactions would do

    monkeypatch.setattr(schema, "MIGRATIONS", tuple(
        (n, committing if n == 3 else s) for n, s in schema.MIGRATIONS))
    with pytest.raises(LedgerError, match="migration step 3 tried to end its transaction"):
        Ledger.open(db)
    conn = sqlite3.connect(db)
    assert schema.version(conn) == 2
    assert not {"policy_results", "policy_runs"} & schema.tables(conn)
    monkeypatch.undo()
    with Ledger.open(db) as ledger:
        assert ledger.schema_version_found == 2
    assert schema.version(sqlite3.connect(db)) == SCHEMA_VERSION


def test_readers_say_in_one_line_what_is_missing(tmp_path: Path) -> None:
    db = _populated(tmp_path).location
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("DROP TABLE adoptions")
    conn.execute("PRAGMA user_version = 4")
    with pytest.raises(LedgerError, match=r"schema version 4 has no table adoptions .*"
                                          rf"migrates the ledger to version {SCHEMA_VERSION}"), \
            schema.reading_checked(db) as reader:
        reader.execute("SELECT * FROM adoptions")
    conn.execute("DROP TABLE changes")
    with pytest.raises(LedgerTamperedError, match="table changes of ledger schema version 1 "
                                                  "is missing"), \
            schema.reading_checked(db) as reader:
        reader.execute("SELECT * FROM changes")


def test_a_ledger_whose_first_run_died_setting_it_up(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    schema.connect(db).close()  # WAL set, no step committed
    with pytest.raises(LedgerError, match="killed before it set the schema up"):
        schema.connect_reader(db)
    with Ledger.open(db) as ledger:
        assert ledger.schema_version_found == 0
