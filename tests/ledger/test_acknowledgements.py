"""Acknowledgements with accountability: the identity who ran ``ack`` (authenticated by the
API server, the kubeconfig's user name, or the OS user), the change ticket, and segregation
of duties (the drift's own actor refused unless ``--allow-self``); ``adopt``'s identity; and
``verify`` over the step-9 tables. Tests taking ``ledger_target`` run on SQLite and on
PostgreSQL (tampering through ``LedgerTarget.untriggered`` on either); those that migrate an
old file, or go through the ``ack`` command (which opens ``ledger.path`` only, so far) stay
SQLite-only."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from auditor.cli import main
from auditor.engine.records import DriftItem, ObjectResult, SourceInfo
from auditor.ledger import Ledger, adoptions
from auditor.ledger.accountability import (
    KUBECONFIG,
    OS_USER,
    VERIFIED,
    AckPolicy,
    AckRefusedError,
    Identity,
    SelfAcknowledgementError,
    acknowledgements,
)
from auditor.sandbox import Sandbox

from .backends import LedgerTarget
from .helpers import at, key, obs

WEB = key("web")


def _drift_by(db: LedgerTarget, user: str = "alice", manager: str = "kubectl-edit") -> None:
    """One open drift on shop/web made by ``manager``, as ``user`` (the audit log's name)."""
    with db.open(sign=False) as ledger:
        run = ledger.begin_run(started_at=at(0))
        run.observe(obs(WEB, {"replicas": 5}, manager=manager))
        run.record(ObjectResult(WEB, "apps/v1", "drifted", (DriftItem(
            "spec.replicas", "changed", 3, 5, manager, "Update", "2026-11-20T08:59:00Z",
            "human", user),), SourceInfo("apps/web.yaml", commit="c1")))
        run.finish()


def _config(tmp: Path, db: LedgerTarget, pattern: str = "") -> Path:
    cfg = tmp / "drift-auditor.yaml"
    extra = f"\n  ack-ticket-pattern: '{pattern}'" if pattern else ""
    cfg.write_text(f"ledger:\n  path: {db.location}\n  sign: false{extra}\n")
    return cfg


def _cli(cfg: Path, *args: str, kubeconfig: Path | None = None) -> Result:
    env = {"KUBECONFIG": str(kubeconfig or cfg.parent / "no-kubeconfig")}
    return CliRunner().invoke(main, ["--config", str(cfg), *args], env=env)


def _one_line(result: Result) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    return lines[0]


def _acks(db: LedgerTarget) -> list[tuple[Any, ...]]:
    return db.rows(
        "SELECT drift_id, by, identity, identity_source, ticket, self_ack FROM acknowledgements "
        "ORDER BY id")


def _verify_ok(db: LedgerTarget) -> None:
    with db.open(sign=False) as ledger:
        result = ledger.verify()
    assert result.ok, result.message


def test_ack_records_identity_and_ticket_beside_by(tmp_path: Path, ledger_target: LedgerTarget) -> None:
    db = ledger_target
    _drift_by(db)
    with db.open(sign=False) as ledger:
        done = ledger.acknowledge("shop/web", by="Bob Ops", reason="load test", at=at(1),
                                  identity=Identity("bob", VERIFIED), ticket=" OPS-12 ",
                                  policy=AckPolicy(r"OPS-\d+"))
    assert (done.drift_id, done.self_acknowledged) == (1, False)
    assert _acks(db) == [(1, "Bob Ops", "bob", VERIFIED, "OPS-12", 0)]
    with db.connect() as conn:
        record = acknowledgements(conn)
        event_id = conn.execute("SELECT id FROM drift_events WHERE event = 'accepted'"
                                ).fetchone()[0]
    assert record[event_id].actors == ("alice", "kubectl-edit")
    _verify_ok(db)


def test_cli_ack_kubeconfig_user_not_verified_and_ticket(tmp_path: Path) -> None:
    # SQLite only: `ack` on the CLI opens ledger.path (auditor/cli/ledger.py, not yet the store).
    db = LedgerTarget("sqlite", tmp_path / "l.db")
    _drift_by(db)
    cfg = _config(tmp_path, db, pattern=r"OPS-\d+")
    with Sandbox() as sb:  # no authentication: SelfSubjectReview is not served
        kubeconfig = sb.write_kubeconfig(tmp_path / "kubeconfig")
        result = _cli(cfg, "ack", "shop/web", "--by", "Bob Ops", "--reason", "load test",
                      "--ticket", "OPS-7", kubeconfig=kubeconfig)
    assert result.exit_code == 0, result.output
    assert "identity sandbox (kubeconfig user (not verified))" in result.output
    assert "under ticket OPS-7" in result.output
    assert _acks(db) == [(1, "Bob Ops", "sandbox", KUBECONFIG, "OPS-7", 0)]
    _verify_ok(db)


def test_cli_ack_without_kubeconfig_records_the_os_user(tmp_path: Path) -> None:
    # SQLite only: `ack` on the CLI opens ledger.path (auditor/cli/ledger.py, not yet the store).
    db = LedgerTarget("sqlite", tmp_path / "l.db")
    _drift_by(db)
    result = _cli(_config(tmp_path, db), "ack", "1", "--by", "Bob Ops", "--reason", "x")
    assert result.exit_code == 0, result.output
    [(_, _, name, source, ticket, _)] = _acks(db)
    assert source == OS_USER and name and ticket == ""


@pytest.mark.parametrize("ticket", [None, "", "JIRA-1", "OPS-12 and more"])
def test_a_missing_or_invalid_ticket_is_one_line_exit_2(tmp_path: Path,
                                                        ticket: str | None) -> None:
    # SQLite only: `ack` on the CLI opens ledger.path (auditor/cli/ledger.py, not yet the store).
    db = LedgerTarget("sqlite", tmp_path / "l.db")
    _drift_by(db)
    args = ["ack", "1", "--by", "Bob Ops", "--reason", "x"]
    if ticket is not None:
        args += ["--ticket", ticket]
    result = _cli(_config(tmp_path, db, pattern=r"OPS-\d+"), *args)
    assert result.exit_code == 2
    line = _one_line(result)
    assert line.startswith("drift-auditor: error: ") and "ack-ticket-pattern" in line
    assert _acks(db) == []
    assert db.rows("SELECT state FROM drift_state") == [("open",)]


def test_an_invalid_ticket_pattern_is_a_configuration_error(tmp_path: Path) -> None:
    # SQLite only: `ack` on the CLI opens ledger.path (auditor/cli/ledger.py, not yet the store).
    db = LedgerTarget("sqlite", tmp_path / "l.db")
    _drift_by(db)
    result = _cli(_config(tmp_path, db, pattern="OPS-("), "ack", "1", "--by", "b",
                  "--reason", "x")
    assert result.exit_code == 2
    assert "ledger.ack-ticket-pattern" in _one_line(result)


def test_self_ack_refused_by_authenticated_identity_then_allowed(
        tmp_path: Path, auth_sandbox: Callable[..., Sandbox]) -> None:
    # SQLite only: `ack` on the CLI opens ledger.path (auditor/cli/ledger.py, not yet the store).
    db = LedgerTarget("sqlite", tmp_path / "l.db")
    _drift_by(db, user="alice")
    cfg = _config(tmp_path, db)
    sb = auth_sandbox(users={"alice": ["dev"]})
    kubeconfig = sb.write_kubeconfig(tmp_path / "kubeconfig", user="alice")
    # --by names someone else; the API server says it is alice, who made the drift.
    result = _cli(cfg, "ack", "1", "--by", "Someone Else", "--reason", "x",
                  kubeconfig=kubeconfig)
    assert result.exit_code == 2
    line = _one_line(result)
    assert "drift 1 was made by alice" in line and "--allow-self" in line
    assert _acks(db) == []
    result = _cli(cfg, "ack", "1", "--by", "Someone Else", "--reason", "x", "--allow-self",
                  kubeconfig=kubeconfig)
    assert result.exit_code == 0, result.output
    assert "self-acknowledged" in result.output
    assert _acks(db) == [(1, "Someone Else", "alice", VERIFIED, "", 1)]
    _verify_ok(db)


def test_self_ack_by_the_by_name_matching_the_field_manager(tmp_path: Path, ledger_target: LedgerTarget) -> None:
    db = ledger_target
    _drift_by(db, user="")
    with db.open(sign=False) as ledger:
        with pytest.raises(SelfAcknowledgementError, match="made by kubectl-edit"):
            ledger.ack(1, by="Kubectl-Edit ", reason="x", identity=Identity("bob", OS_USER))
        # Refused before anything was written: the same ledger accepts the next ack.
        with pytest.raises(AckRefusedError, match="needs --ticket"):
            ledger.ack(1, by="carol", reason="x", policy=AckPolicy("T-1"))
        assert ledger.ack(1, by="carol", reason="x", identity=Identity("carol", OS_USER)) == 1
        assert ledger.verify().ok


def test_adopt_identity_recorded_beside_the_adoption(tmp_path: Path, ledger_target: LedgerTarget) -> None:
    db = ledger_target
    _drift_by(db)
    with db.open(sign=False) as ledger:
        aid = adoptions.record(ledger, adoptions.Adoption(
            key=WEB, paths=("spec.replicas",), files=("apps/web.yaml",), branch="b",
            commit_sha="abc", drift_id=1, by="Bob", identity=Identity("bob", VERIFIED)))
        assert ledger.verify().ok
    assert db.rows("SELECT adoption_id, by, identity, identity_source FROM adoption_identities"
                   ) == [(aid, "Bob", "bob", VERIFIED)]


@pytest.mark.parametrize("table,column", [("acknowledgements", "identity"),
                                          ("acknowledgements", "self_ack"),
                                          ("responses", "text"),
                                          ("adoption_identities", "identity")])
def test_verify_detects_tampering_with_the_new_tables(ledger_target: LedgerTarget, table: str,
                                                      column: str) -> None:
    db = ledger_target
    _drift_by(db)
    with db.open(sign=False) as ledger:
        ledger.ack(1, by="Bob", reason="x", identity=Identity("bob", VERIFIED), at=at(1))
        ledger.respond("drift:1", by="CISO", text="accepted risk", identity=Identity("c", OS_USER))
        adoptions.record(ledger, adoptions.Adoption(
            key=WEB, paths=("spec.replicas",), files=("f",), branch="b", commit_sha="abc",
            identity=Identity("bob", VERIFIED)))
    _verify_ok(db)
    value = "1" if column == "self_ack" else "'mallory'"
    db.tamper(f"UPDATE {table} SET {column} = {value}")
    with db.open(sign=False) as ledger:
        result = ledger.verify()
    assert not result.ok
    assert f"{table} row 1 differs from its chained event" in result.message


def test_a_deleted_acknowledgement_is_detected(ledger_target: LedgerTarget) -> None:
    db = ledger_target
    _drift_by(db)
    with db.open(sign=False) as ledger:
        ledger.ack(1, by="Bob", reason="x", identity=Identity("bob", VERIFIED), at=at(1))
    db.tamper("DELETE FROM acknowledgements")
    with db.open(sign=False) as ledger:
        result = ledger.verify()
    assert not result.ok and "its acknowledgements row was deleted" in result.message


def test_a_step_8_ledger_migrates_and_keeps_verifying(tmp_path: Path) -> None:
    # As an older drift-auditor left it: schema version 8, no step-9 tables.
    older = tmp_path / "older.db"
    _drift_by(LedgerTarget("sqlite", older))  # SQLite only: an old file, migrated
    conn = sqlite3.connect(older, isolation_level=None)
    for table in ("acknowledgements", "responses", "adoption_identities"):
        conn.execute(f"DROP TABLE {table}")
    conn.execute("PRAGMA user_version = 8")
    conn.close()
    with Ledger.open(older, sign=False) as ledger:
        assert ledger.schema_version_found == 8
        assert ledger.verify().ok
        ledger.ack(1, by="Bob", reason="after step 9", identity=Identity("bob", VERIFIED))
        ledger.respond("drift:1", by="CISO", text="ok")
        assert ledger.verify().ok
    conn = sqlite3.connect(older)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 9
    assert _acks(LedgerTarget("sqlite", older)) == [(1, "Bob", "bob", VERIFIED, "", 0)]
