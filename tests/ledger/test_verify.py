"""Tamper evidence: `verify` recomputes the chain, the rows and the checkpoints and names the
first broken sequence number."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from auditor.cli.common import Context
from auditor.cli.ledger import verify_cmd
from auditor.ledger import Ledger, VerifyResult, chain, signing
from auditor.ledger.schema import CHAINED

from .helpers import at, drifted, in_sync, key, obs


def _ledger(tmp_path: Path, signing_key: Path | None = None) -> Path:
    db = tmp_path / "ledger.db"
    with Ledger.open(db, signing_key_file=signing_key) as ledger:
        for hour in range(3):
            run = ledger.begin_run(started_at=at(hour))
            for i in range(20):
                k = key(f"app-{i}")
                run.observe(obs(k, {"replicas": i + hour}, rv=str(hour + 1)))
                run.record(drifted(k, ("spec.replicas", 1, i + hour)) if i % 5 == 0 else in_sync(k))
            run.record_commits([{"sha": f"c{hour}", "author": "ann", "subject": "s"}])
            run.finish()
    return db


def _untriggered(db: Path) -> sqlite3.Connection:
    """What an attacker with file access does first: drop the append-only triggers."""
    conn = sqlite3.connect(db, isolation_level=None)
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
        conn.execute(f"DROP TRIGGER {name}")
    return conn


def _verify(db: Path, public: Path | None = None) -> VerifyResult:
    with Ledger.open(db) as ledger:
        return ledger.verify(public)


def test_untouched_ledger_verifies(tmp_path: Path) -> None:
    result = _verify(_ledger(tmp_path))
    assert result.ok and result.first_broken_seq is None
    assert result.checkpoints == 3 and result.checked == result.head_seq > 100


@pytest.mark.parametrize("table, column, value", [
    ("changes", "manager", "argocd-application-controller"),
    ("changes", "authorized", 0),
    ("object_versions", "content_hash", "0" * 64),
    ("drifts", "items", "[]"),
    ("drift_events", "how", "git-changed"),
    ("commits", "author", "mallory"),
    ("objects", "name", "renamed"),
])
def test_an_altered_row_is_named_by_its_seq(tmp_path: Path, table: str, column: str,
                                            value: object) -> None:
    db = _ledger(tmp_path)
    conn = _untriggered(db)
    row_id, seq = conn.execute(f"SELECT id, seq FROM {table} ORDER BY id LIMIT 1 OFFSET 2").fetchone()
    conn.execute(f"UPDATE {table} SET {column} = ? WHERE id = ?", (value, row_id))
    result = _verify(db)
    assert not result.ok
    assert result.first_broken_seq == seq
    assert f"first broken sequence number {seq}" in result.message
    assert f"{table} row {row_id}" in result.message


def test_an_altered_event_breaks_its_own_hash(tmp_path: Path) -> None:
    db = _ledger(tmp_path)
    conn = _untriggered(db)
    conn.execute("UPDATE events SET at = '2020-01-01T00:00:00Z' WHERE seq = 17")
    result = _verify(db)
    assert result.first_broken_seq == 17 and "hash mismatch" in result.message


def test_deleted_rows_and_events_are_found(tmp_path: Path) -> None:
    db = _ledger(tmp_path)
    conn = _untriggered(db)
    seq = conn.execute("SELECT seq FROM changes ORDER BY id LIMIT 1").fetchone()[0]
    conn.execute("DELETE FROM changes WHERE seq = ?", (seq,))
    result = _verify(db)
    assert result.first_broken_seq == seq and "was deleted" in result.message
    conn.execute("DELETE FROM events WHERE seq = 5")
    assert _verify(db).first_broken_seq == 5


def test_finished_run_edit_is_found(tmp_path: Path) -> None:
    db = _ledger(tmp_path)
    conn = _untriggered(db)
    seq_end = conn.execute("SELECT seq_end FROM runs WHERE id = 2").fetchone()[0]
    conn.execute("UPDATE runs SET status = 'complete', problems = '[]', ended_at = 'x' WHERE id = 2")
    assert _verify(db).first_broken_seq == seq_end


def test_rehashed_chain_is_caught_by_an_earlier_checkpoint(tmp_path: Path) -> None:
    db = _ledger(tmp_path)
    conn = _untriggered(db)
    # Rewrite a change row *and* its event, then re-hash the whole chain from there.
    seq = conn.execute("SELECT seq FROM changes ORDER BY id LIMIT 1").fetchone()[0]
    conn.execute("UPDATE changes SET manager = 'flux' WHERE seq = ?", (seq,))
    cols = CHAINED["changes"]
    row = conn.execute(f"SELECT {', '.join(cols)} FROM changes WHERE seq = ?", (seq,)).fetchone()
    conn.execute("UPDATE events SET payload = ? WHERE seq = ?",
                 (chain.canonical(dict(zip(cols, row, strict=True))).decode(), seq))
    prev = conn.execute("SELECT hash FROM events WHERE seq = ?", (seq - 1,)).fetchone()[0]
    for s, at_, run_id, type_, payload in conn.execute(
            "SELECT seq, at, run_id, type, payload FROM events WHERE seq >= ? ORDER BY seq",
            (seq,)).fetchall():
        new = chain.link(prev, s, type_, at_, run_id, payload)
        conn.execute("UPDATE events SET prev_hash = ?, hash = ? WHERE seq = ?", (prev, new, s))
        prev = new
    result = _verify(db)
    first_checkpoint = conn.execute("SELECT min(seq) FROM checkpoints WHERE seq >= ?",
                                    (seq,)).fetchone()[0]
    assert not result.ok and result.first_broken_seq == first_checkpoint
    assert "rewritten" in result.message


def test_signed_checkpoints(tmp_path: Path) -> None:
    key_file = tmp_path / "signing.pem"
    signing.generate(key_file)
    db = _ledger(tmp_path, key_file)
    conn = sqlite3.connect(db)
    assert all(sig for (sig,) in conn.execute("SELECT signature FROM checkpoints"))
    result = _verify(db, key_file)
    assert result.ok and result.signatures == 3
    other = tmp_path / "other.pem"
    signing.generate(other)
    result = _verify(db, other)
    assert not result.ok and "another key" in result.message
    # A forged checkpoint (re-signed with the attacker's key but claiming ours) fails.
    conn = _untriggered(db)
    conn.execute("UPDATE checkpoints SET signature = ? WHERE id = 2",
                 (hashlib.sha512(b"forged").hexdigest(),))
    seq = conn.execute("SELECT seq FROM checkpoints WHERE id = 2").fetchone()[0]
    result = _verify(db, key_file)
    assert result.first_broken_seq == seq and "signature does not verify" in result.message


def test_hex_seed_key_files_are_accepted(tmp_path: Path) -> None:
    seed = tmp_path / "seed.hex"
    seed.write_text("11" * 32 + "\n")
    assert len(signing.public_hex(signing.load_public_key(seed))) == 64


def test_verify_command(tmp_path: Path) -> None:
    db = _ledger(tmp_path)
    runner = CliRunner()
    ok = runner.invoke(verify_cmd, ["--ledger", str(db)], obj=Context(None))
    assert ok.exit_code == 0, ok.output
    assert ok.output.startswith("ledger OK:")
    conn = _untriggered(db)
    seq = conn.execute("SELECT seq FROM changes ORDER BY id LIMIT 1").fetchone()[0]
    conn.execute("UPDATE changes SET user = 'nobody' WHERE seq = ?", (seq,))
    bad = runner.invoke(verify_cmd, ["--ledger", str(db)], obj=Context(None))
    assert bad.exit_code == 2
    assert f"first broken sequence number {seq}" in bad.output
