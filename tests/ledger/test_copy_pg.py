"""``drift-auditor ledger copy``: an SQLite ledger into the PostgreSQL fleet store
(:mod:`auditor.ledger.transfer`), verified on both sides with the same head."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from auditor.engine.records import SourceInfo
from auditor.errors import LedgerError, LedgerTamperedError
from auditor.ledger import Ledger, pgconn, schema
from auditor.ledger.transfer import copy_to_store
from tests.pgkit import PgDatabase

from .backends import LedgerTarget, pg_url
from .helpers import at, drifted, in_sync, key, obs

ROOT = Path(__file__).resolve().parents[2]


def _history(db: Path) -> None:
    """A ledger with runs, drifts and their lifecycle, commits, an acknowledgement, a prune."""
    commit = SourceInfo("apps/web.yaml", repo="apps", commit="3f2c", author="Ann",
                        author_email="ann@example.com", date="2026-11-19T12:00:00+01:00",
                        subject="Bump web (#42)", pr=42, trailers=(("Reviewed-by", "Bob"),))
    with Ledger.open(db) as ledger:
        for day in range(4):
            run = ledger.begin_run(started_at=at(24 * day))
            run.record_commits([commit])
            run.observe(obs(key("web"), {"replicas": day}, rv=str(day)))
            run.observe(obs(key("api"), {"replicas": 1}))
            run.record(drifted(key("web"), ("spec.replicas", 1, day)) if day else
                       in_sync(key("web")))
            run.record(drifted(key("api"), ("spec.image", "a", "b")))
            run.finish()
        ledger.ack("shop/api", by="Bob Ops", reason="load test", at=at(80))
        ledger.prune(1, now=at(24 * 3 + 1))
        assert ledger.verify().ok


def _counts(target: LedgerTarget, tables: list[str]) -> dict[str, int]:
    return {t: target.rows(f"SELECT count(*) FROM {t}")[0][0] for t in tables}


def test_a_copy_verifies_with_the_same_head_and_carries_on(tmp_path: Path,
                                                         pg_database: PgDatabase) -> None:
    db = tmp_path / "l.db"
    _history(db)
    url = pg_url(pg_database)
    result = copy_to_store(db, url, "copied")
    assert result.source.ok and result.destination.ok
    assert (result.destination.head_seq, result.destination.head_hash) == (
        result.source.head_seq, result.source.head_hash)
    lite, pg = LedgerTarget("sqlite", db), LedgerTarget("postgresql", url, "copied")
    with sqlite3.connect(db) as conn:
        tables = sorted(schema.tables(conn))
    assert _counts(pg, tables) == _counts(lite, tables)
    assert result.rows == sum(_counts(lite, tables).values())
    assert pg.rows("SELECT repo, sha, author, date, pr, trailers FROM commits") == lite.rows(
        "SELECT repo, sha, author, date, pr, trailers FROM commits")
    # The store's ledger carries on from the copied head.
    with pg.open() as ledger:
        assert ledger.head.seq == result.source.head_seq
        run = ledger.begin_run(started_at=at(24 * 5))
        run.observe(obs(key("web"), {"replicas": 9}, rv="9"))
        run.record(in_sync(key("web")))
        run.finish()
        assert ledger.verify().ok
    # The destination must be empty.
    with pytest.raises(LedgerError, match="holds a ledger already"):
        copy_to_store(db, url, "copied")


def test_a_source_that_does_not_verify_is_not_copied(tmp_path: Path,
                                                     pg_database: PgDatabase) -> None:
    db = tmp_path / "l.db"
    _history(db)
    with sqlite3.connect(db) as conn:
        conn.execute("DROP TRIGGER objects_no_update")
        conn.execute("UPDATE objects SET name = 'renamed' WHERE id = 1")
    with pytest.raises(LedgerTamperedError, match="not copied"):
        copy_to_store(db, pg_url(pg_database), "never")
    # Refused before anything was written: the cluster's schema was never created.
    with pytest.raises(LedgerError, match="no ledger for this cluster here"), \
            pgconn.reading(pg_url(pg_database), "never"):
        pass


def test_the_copy_command(tmp_path: Path, pg_database: PgDatabase) -> None:
    db = tmp_path / "l.db"
    _history(db)
    config = tmp_path / "drift-auditor.yaml"
    config.write_text("ledger: {}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "auditor.cli", "--config", str(config), "ledger", "copy",
         "--from", str(db), "--to", pg_url(pg_database), "--cluster", "from-cli"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": os.environ["HOME"]})
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("copied ") and "(cluster from-cli)" in lines[0]
    assert lines[1].removeprefix("source: ") == lines[2].removeprefix("copy: ")
