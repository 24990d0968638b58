"""Tamper evidence: `verify` recomputes the chain, the rows and the checkpoints and names the
first broken sequence number. Tests taking ``ledger_target`` run on SQLite and PostgreSQL,
tampering through :meth:`LedgerTarget.untriggered` (triggers dropped from the file, or disabled
by a superuser in the cluster's schema): verify must name the same row on both. SQLite-only:
the ``verify``/``history`` commands on a file (``--ledger`` takes a path), a truncated file,
and a file of a lower schema version (``PRAGMA user_version``; the store is not migrated)."""

from __future__ import annotations

import hashlib
import os
import sqlite3
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from auditor.cli.common import Context
from auditor.cli.ledger import history_cmd, verify_cmd
from auditor.errors import LedgerError
from auditor.ledger import Ledger, Observation, VerifyResult, chain, signing
from auditor.ledger.schema import CHAINED
from auditor.ledger.verify import verify

from .backends import LedgerTarget
from .helpers import at, drifted, in_sync, key, obs


def _ledger(target: LedgerTarget, signing_key: Path | None = None) -> LedgerTarget:
    with target.open(signing_key_file=signing_key) as ledger:
        for hour in range(3):
            run = ledger.begin_run(started_at=at(hour))
            for i in range(20):
                k = key(f"app-{i}")
                run.observe(obs(k, {"replicas": i + hour}, rv=str(hour + 1)))
                run.record(drifted(k, ("spec.replicas", 1, i + hour)) if i % 5 == 0 else in_sync(k))
            run.record_commits([{"sha": f"c{hour}", "author": "ann", "subject": "s"}])
            run.finish()
    return target


def _untriggered(target: LedgerTarget | Path) -> Any:
    """What an attacker with write access does first: the append-only guards off."""
    if isinstance(target, Path):
        target = LedgerTarget("sqlite", target)
    return target.untriggered()


def _verify(target: LedgerTarget, public: Path | None = None) -> VerifyResult:
    with target.open() as ledger:
        return ledger.verify(public)


def test_untouched_ledger_verifies(ledger_target: LedgerTarget) -> None:
    result = _verify(_ledger(ledger_target))
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
def test_an_altered_row_is_named_by_its_seq(ledger_target: LedgerTarget, table: str,
                                            column: str, value: object) -> None:
    db = _ledger(ledger_target)
    conn = _untriggered(db)
    row_id, seq = conn.execute(f"SELECT id, seq FROM {table} ORDER BY id LIMIT 1 OFFSET 2").fetchone()
    conn.execute(f"UPDATE {table} SET {column} = ? WHERE id = ?", (value, row_id))
    result = _verify(db)
    assert not result.ok
    assert result.first_broken_seq == seq
    assert f"first broken sequence number {seq}" in result.message
    assert f"{table} row {row_id}" in result.message


def test_an_altered_event_breaks_its_own_hash(ledger_target: LedgerTarget) -> None:
    db = _ledger(ledger_target)
    conn = _untriggered(db)
    conn.execute("UPDATE events SET at = '2020-01-01T00:00:00Z' WHERE seq = 17")
    result = _verify(db)
    assert result.first_broken_seq == 17 and "hash mismatch" in result.message


def test_deleted_rows_and_events_are_found(ledger_target: LedgerTarget) -> None:
    db = _ledger(ledger_target)
    conn = _untriggered(db)
    seq = conn.execute("SELECT seq FROM changes ORDER BY id LIMIT 1").fetchone()[0]
    conn.execute("DELETE FROM changes WHERE seq = ?", (seq,))
    result = _verify(db)
    assert result.first_broken_seq == seq and "was deleted" in result.message
    conn.execute("DELETE FROM events WHERE seq = 5")
    assert _verify(db).first_broken_seq == 5


def test_finished_run_edit_is_found(ledger_target: LedgerTarget) -> None:
    db = _ledger(ledger_target)
    conn = _untriggered(db)
    seq_end = conn.execute("SELECT seq_end FROM runs WHERE id = 2").fetchone()[0]
    conn.execute("UPDATE runs SET status = 'complete', problems = '[]', ended_at = 'x' WHERE id = 2")
    assert _verify(db).first_broken_seq == seq_end


def test_rehashed_chain_is_caught_by_an_earlier_checkpoint(
        ledger_target: LedgerTarget) -> None:
    db = _ledger(ledger_target)
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


def test_signed_checkpoints(tmp_path: Path, ledger_target: LedgerTarget) -> None:
    key_file = tmp_path / "signing.pem"
    signing.generate(key_file)
    db = _ledger(ledger_target, key_file)
    assert all(sig for (sig,) in db.rows("SELECT signature FROM checkpoints"))
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
    db = _ledger(LedgerTarget("sqlite", tmp_path / "ledger.db")).location
    assert isinstance(db, Path)
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


# ------------------------------------------------------------------ stored content


def _version_with_content(conn: Any, offset: int = 0) -> tuple[int, int, str]:
    vid, seq, content = conn.execute(
        "SELECT v.id, v.seq, c.content FROM object_versions v JOIN contents c "
        "ON c.version_id = v.id ORDER BY v.id DESC LIMIT 1 OFFSET ?", (offset,)).fetchone()
    return int(vid), int(seq), str(content)


def test_stored_content_is_hashed_as_chained(ledger_target: LedgerTarget) -> None:
    db = _ledger(ledger_target)
    for vid, content, chash in db.rows(
            "SELECT c.version_id, c.content, v.content_hash FROM contents c "
            "JOIN object_versions v ON v.id = c.version_id"):
        assert hashlib.sha256(content.encode()).hexdigest() == chash, vid


def test_altered_content_is_named_by_its_versions_seq(ledger_target: LedgerTarget) -> None:
    db = _ledger(ledger_target)
    conn = _untriggered(db)
    vid, seq, content = _version_with_content(conn, 3)
    conn.execute("UPDATE contents SET content = ? WHERE version_id = ?",
                 (content.replace("}", ',"extra":"key"}', 1), vid))
    result = _verify(db)
    assert not result.ok and result.first_broken_seq == seq
    assert f"object_versions row {vid}: its stored content does not match" in result.message


def test_content_in_another_serialisation_of_the_same_json_verifies(
        ledger_target: LedgerTarget) -> None:
    db = _ledger(ledger_target)
    conn = _untriggered(db)
    vid, _, content = _version_with_content(conn)
    conn.execute("UPDATE contents SET content = ? WHERE version_id = ?",
                 (orjson.dumps(orjson.loads(content), option=orjson.OPT_INDENT_2).decode(), vid))
    assert _verify(db).ok


def test_deleted_and_inserted_content_are_found(ledger_target: LedgerTarget) -> None:
    db = _ledger(ledger_target)
    conn = _untriggered(db)
    vid, seq, content = _version_with_content(conn, 5)
    conn.execute("DELETE FROM contents WHERE version_id = ?", (vid,))
    result = _verify(db)
    assert result.first_broken_seq == seq and "content was deleted" in result.message
    conn.execute("INSERT INTO contents VALUES (?, ?)", (vid, content))
    assert _verify(db).ok
    conn.execute("INSERT INTO contents VALUES (9999, '{}')")
    result = _verify(db)
    assert not result.ok and result.first_broken_seq is None
    assert result.message == ("ledger tampered: contents row of version 9999: no such object "
                              "version in the chain — the version was deleted or the content "
                              "inserted")


def test_pruned_content_is_told_from_deleted_content(ledger_target: LedgerTarget) -> None:
    db = ledger_target
    web = key("web")

    def day(ledger: Ledger, started: float, replicas: int) -> None:
        run = ledger.begin_run(started_at=at(started))
        run.observe(obs(web, {"replicas": replicas}, rv=str(replicas)))
        run.record(in_sync(web))
        run.finish()

    with db.open() as ledger:
        for n in range(3):
            day(ledger, 24 * n, n)
        # Cutoff at(25): days 0 and 1 go; day 2 (observed after the cutoff) stays.
        assert ledger.prune(1, now=at(24 * 2 + 1)) == 2
        # Written after the prune although observed before its cutoff (a clock behind), and
        # no longer the newest once day 4 comes: no prune covers it.
        day(ledger, 10, 3)
        day(ledger, 24 * 4, 4)
        assert ledger.verify().ok
    conn = _untriggered(db)
    versions = conn.execute("SELECT id, seq FROM object_versions ORDER BY id").fetchall()
    assert conn.execute("SELECT count(*) FROM contents").fetchone()[0] == 3
    for vid, seq in (versions[3], versions[2]):
        conn.execute("DELETE FROM contents WHERE version_id = ?", (vid,))
        result = _verify(db)
        assert result.first_broken_seq == seq
        assert "no prune in the chain covers it" in result.message


def test_prune_spares_the_newest_version_whatever_the_cache_says(
        ledger_target: LedgerTarget) -> None:
    db = ledger_target
    web = key("web")
    with db.open() as ledger:
        run = ledger.begin_run(started_at=at(0))
        run.observe(obs(web, {"replicas": 1}))
        run.record(in_sync(web))
        run.finish()
        # The latest cache lost (a cache may be rebuilt): prune reads the chained versions.
        ledger.conn.execute("DELETE FROM latest")
        assert ledger.prune(1, now=at(24 * 30)) == 0
        assert ledger.verify().ok


def test_a_raw_secret_value_is_stored_redacted_and_hashed_as_stored(
        ledger_target: LedgerTarget) -> None:
    db = ledger_target
    secret = key("token", kind="Secret", group="")
    leaky = {"kind": "Secret", "data": {"password": "aHVudGVyMg=="}}
    with db.open() as ledger:
        for hour in range(2):
            run = ledger.begin_run(started_at=at(hour))
            run.observe(obs(secret, leaky, rv=str(hour + 1)))
            run.record(in_sync(secret))
            run.finish()
        assert ledger.verify().ok
        # The same raw content again: the same (redacted) version, not a new one each run.
        assert ledger.conn.execute("SELECT count(*) FROM object_versions").fetchone()[0] == 1


def test_an_observation_without_content_is_refused(ledger_target: LedgerTarget) -> None:
    with ledger_target.open() as ledger:
        run = ledger.begin_run(started_at=at(0))
        with pytest.raises(LedgerError, match="needs its content"):
            run.observe(Observation(key("web"), "apps/v1", "1", "0" * 64, None))


def test_an_event_appended_after_the_last_checkpoint_is_found(
        ledger_target: LedgerTarget) -> None:
    db = _ledger(ledger_target)
    conn = _untriggered(db)
    seq, head = conn.execute("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
    event = chain.append(chain.Head(seq, head), "prune", "2030-01-01T00:00:00Z", None,
                         {"cutoff": "2030-01-01T00:00:00Z"})
    conn.execute("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?)", event.row())
    result = _verify(db)
    assert result.first_broken_seq == seq + 1 and "after the last checkpoint" in result.message


def test_a_running_run_may_have_events_after_the_last_checkpoint(
        ledger_target: LedgerTarget) -> None:
    db = _ledger(ledger_target)
    with db.open(batch_size=5) as ledger:
        run = ledger.begin_run(started_at=at(9))
        for i in range(5):
            run.observe(obs(key(f"new-{i}"), {"i": i}))
            run.record(in_sync(key(f"new-{i}")))
        with db.connect() as conn:  # another reader while the run writes
            result = verify(conn)
        assert result.ok, result.message
        run.finish()


# ------------------------------------------------------------- unreadable ledgers


def test_verify_command_on_a_damaged_file_is_one_line(tmp_path: Path) -> None:
    db = _ledger(LedgerTarget("sqlite", tmp_path / "ledger.db")).location
    assert isinstance(db, Path)
    os.truncate(db, db.stat().st_size // 2)
    runner = CliRunner()
    for command in (verify_cmd, history_cmd):
        bad = runner.invoke(command, ["--ledger", str(db)], obj=Context(None))
        assert bad.exit_code == 2, bad.output
        assert bad.output.count("\n") == 1 and str(db) in bad.output
        assert "damaged" in bad.output


def test_verify_reads_a_lower_schema_version_without_migrating_it(tmp_path: Path) -> None:
    db = _ledger(LedgerTarget("sqlite", tmp_path / "ledger.db")).location
    assert isinstance(db, Path)
    conn = sqlite3.connect(db, isolation_level=None)
    for table in ("adoptions", "reverts", "policy_results", "policy_runs", "policy_state",
                  "policy_cache"):
        conn.execute(f"DROP TABLE {table}")
    conn.execute("PRAGMA user_version = 2")
    runner = CliRunner()
    ok = runner.invoke(verify_cmd, ["--ledger", str(db)], obj=Context(None))
    assert ok.exit_code == 0 and ok.output.startswith("ledger OK"), ok.output
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 2
    # A table of a step the ledger says it has, dropped with rows in the chain: tampering.
    conn.execute("PRAGMA user_version = 5")
    conn.execute("DROP TABLE commits")
    bad = runner.invoke(verify_cmd, ["--ledger", str(db)], obj=Context(None))
    assert bad.exit_code == 2 and "table commits is missing" in bad.output


def test_an_altered_adoption_is_found(ledger_target: LedgerTarget) -> None:
    from auditor.ledger import adoptions

    db = _ledger(ledger_target)
    with db.open() as ledger:
        adoptions.record(ledger, adoptions.Adoption(
            key("app-0"), ("spec.replicas",), ("apps/web.yaml",), "drift/app-0", "abc123",
            by="ann"))
        assert ledger.verify().ok
    conn = _untriggered(db)
    seq = conn.execute("SELECT seq FROM adoptions").fetchone()[0]
    conn.execute("UPDATE adoptions SET commit_sha = 'f00'")
    result = _verify(db)
    assert result.first_broken_seq == seq and "adoptions row 1 differs" in result.message
