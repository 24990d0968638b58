"""The ``approvals`` table (schema step 8): written with the run, on the hash chain, append
only; an edited verdict or a deleted row is named by ``verify``; a change left unknown is
asked about again until a verdict is recorded."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from auditor.githost.model import Approval, Change, Protection, Review
from auditor.ledger import Ledger
from auditor.ledger import approvals as ledger_approvals
from tests.ledger.helpers import at

REPO = "https://github.com/acme/gitops"


def _change(sha: str) -> Change:
    return Change("shop", REPO, sha, "Merge pull request #7", "GitHub <noreply@github.com>",
                  pr_hint=7, objects=(("apps", "Deployment", "shop", "web"),),
                  trailers=(("Reviewed-by", "Bob <bob@example.com>"),))


def _ledger(tmp_path: Path) -> Path:
    db = tmp_path / "ledger.db"
    with Ledger.open(db) as ledger:
        run = ledger.begin_run(started_at=at(0))
        ledger_approvals.record(run, [
            Approval(_change("a" * 40), "authorized", "approved by bob", "git host (github)",
                     provider="github", pr=7, author="alice", last_pusher="alice",
                     merged_by="carol", approvers=("bob",),
                     reviews=(Review("bob", "APPROVED", "2026-11-20T08:00:00Z", "h" * 40),),
                     head="h" * 40, fetched_at="2026-11-20T09:00:00Z"),
            Approval(_change("b" * 40), "unknown", "rate limited: resets later",
                     "git host (github)", provider="github", pr=8)],
            [("shop", Protection("github", "acme/gitops", "main", "protected",
                                 "2026-11-20T09:00:00Z", {"enforce_admins": True}, ("ci",)))])
        run.finish()
    return db


def test_rows_are_chained_and_verify(tmp_path: Path) -> None:
    db = _ledger(tmp_path)
    with Ledger.open(db) as ledger:
        assert ledger.verify().ok
        rows = ledger_approvals.rows_until(ledger.conn, "9999")
        [pending] = ledger_approvals.pending(ledger.conn)
    assert [(r["kind"], r["verdict"]) for r in rows] == [
        ("change", "authorized"), ("change", "unknown"), ("protection", "protected")]
    assert rows[0]["reviews"] == [{"reviewer": "bob", "state": "APPROVED",
                                   "submitted_at": "2026-11-20T08:00:00Z", "commit": "h" * 40,
                                   "name": ""}]
    assert rows[0]["objects"] == [["apps", "Deployment", "shop", "web"]]
    assert rows[2]["protection"]["required_checks"] == ["ci"]
    assert pending["sha"] == "b" * 40 and pending["trailers"] == [["Reviewed-by",
                                                                  "Bob <bob@example.com>"]]
    # A later verdict on the same commit settles it.
    with Ledger.open(db) as ledger:
        run = ledger.begin_run(started_at=at(1))
        ledger_approvals.record(run, [Approval(_change("b" * 40), "exception",
                                               "no independent approval", "git host (github)")])
        run.finish()
        assert ledger_approvals.pending(ledger.conn) == []
        assert ledger.verify().ok


def test_rows_are_append_only_and_edits_are_found(tmp_path: Path) -> None:
    db = _ledger(tmp_path)
    conn = sqlite3.connect(db, isolation_level=None)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("UPDATE approvals SET verdict = 'authorized' WHERE verdict = 'unknown'")
    for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
        conn.execute(f"DROP TRIGGER {name}")
    seq = conn.execute("SELECT seq FROM approvals WHERE verdict = 'unknown'").fetchone()[0]
    conn.execute("UPDATE approvals SET verdict = 'authorized' WHERE verdict = 'unknown'")
    conn.close()
    with Ledger.open(db) as ledger:
        result = ledger.verify()
    assert not result.ok and result.first_broken_seq == seq
    assert "approvals row" in result.message
