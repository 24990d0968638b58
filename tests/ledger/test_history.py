"""`history` queries and their text/JSON/CSV output; the ack and prune commands. On SQLite and
PostgreSQL (``ledger_target``; ``history --ledger URL#cluster``), except the ack and prune
commands: they still write the SQLite file at ``ledger.path`` (docs/fleet.md, "Not yet")."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from auditor.cli.common import Context
from auditor.cli.ledger import ack_cmd, history_cmd, prune_cmd
from auditor.ledger import Ledger

from .backends import LedgerTarget
from .helpers import at, drifted, in_sync, key, obs

WEB, API = key("web"), key("api", ns="billing")


@pytest.fixture
def ledger_file(ledger_target: LedgerTarget) -> LedgerTarget:
    db = ledger_target
    with db.open() as ledger:
        run = ledger.begin_run(started_at=at(0))
        run.observe(obs(WEB, {"image": "1.4"}))
        run.observe(obs(API, {"replicas": 2}))
        run.record(in_sync(WEB))
        run.record(in_sync(API))
        run.finish()
        run = ledger.begin_run(started_at=at(2))
        run.observe(obs(WEB, {"image": "1.5"}, rv="2", manager="kubectl-set",
                        time="2026-11-20T10:30:00Z"))
        run.observe(obs(API, {"replicas": 4}, rv="2", manager="horizontal-pod-autoscaler",
                        category="controller", time="2026-11-20T10:45:00Z", authorized=True))
        run.record(drifted(WEB, ("spec.template.spec.containers[name=web].image", "1.4", "1.5"),
                           manager="kubectl-set"))
        run.record(in_sync(API))
        run.finish()
        run = ledger.begin_run(started_at=at(4))
        run.observe(obs(WEB, {"image": "1.4"}, rv="3", manager="kubectl-set",
                        time="2026-11-20T12:50:00Z"))
        run.record(in_sync(WEB))
        run.finish()
    return db


def _history(db: LedgerTarget | Path, *args: str) -> str:
    ref = db.ref if isinstance(db, LedgerTarget) else str(db)
    result = CliRunner().invoke(history_cmd, ["--ledger", ref, *args], obj=Context(None))
    assert result.exit_code == 0, result.output
    return result.output


def test_text_timeline(ledger_file: LedgerTarget) -> None:
    assert _history(ledger_file).splitlines() == [
        "TIME                  EVENT           OBJECT                       ACTOR                      CATEGORY    DETAIL",
        "2026-11-20T10:30:00Z  change:updated  Deployment.apps shop/web     kubectl-set                human       out-of-band",
        "2026-11-20T10:45:00Z  change:updated  Deployment.apps billing/api  horizontal-pod-autoscaler  controller  authorized",
        "2026-11-20T11:00:00Z  drift:opened    Deployment.apps shop/web     kubectl-set                human       drift 1 paths=spec.template.spec.containers[name=web].image",
        "2026-11-20T12:50:00Z  change:updated  Deployment.apps shop/web     kubectl-set                human       authorized",
        "2026-11-20T13:00:00Z  drift:resolved  Deployment.apps shop/web     kubectl-set                human       drift 1 how=fixed-live",
    ]


def test_filters(ledger_file: LedgerTarget) -> None:
    def events(*args: str) -> list[tuple[str, str]]:
        return [(e["event"], e["name"]) for e in orjson.loads(_history(ledger_file, "-o", "json", *args))]

    assert events("--object", "billing/api") == [("updated", "api")]
    assert events("--object", "Deployment.apps shop/web", "--type", "drift") == [
        ("opened", "web"), ("resolved", "web")]
    assert events("-n", "billing") == [("updated", "api")]
    assert events("--actor", "horizontal-pod-autoscaler") == [("updated", "api")]
    assert events("--category", "controller") == [("updated", "api")]
    assert events("--since", "2026-11-20T11:00:00Z", "--until", "2026-11-20T13:00:00Z") == [
        ("opened", "web"), ("updated", "web")]
    assert events("--kind", "Service") == []
    assert events("--since", "36500d") == events()  # durations count back from now
    assert events("--since", "1d") == []
    assert _history(ledger_file, "--kind", "Service") == "no matching history\n"


def test_json_and_csv_carry_the_same_entries(ledger_file: LedgerTarget) -> None:
    entries = orjson.loads(_history(ledger_file, "-o", "json"))
    rows = list(csv.DictReader(io.StringIO(_history(ledger_file, "-o", "csv"))))
    assert len(entries) == len(rows) == 5
    assert [r["seq"] for r in rows] == [str(e["seq"]) for e in entries]
    assert entries[1]["authorized"] is True and rows[1]["authorized"] == "yes"
    assert entries[0]["authorized"] is False and rows[0]["authorized"] == "no"
    assert entries[2]["paths"] == ["spec.template.spec.containers[name=web].image"]
    assert _history(ledger_file, "-o", "json") == _history(ledger_file, "-o", "json")


def test_ack_and_prune_commands(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    config = tmp_path / "drift-auditor.yaml"
    config.write_text(f"ledger:\n  path: {db}\n  retention-days: 30\n")
    with Ledger.open(db) as ledger:
        run = ledger.begin_run(started_at=at(0))
        run.record(drifted(WEB, ("spec.replicas", 3, 5)))
        run.finish()
    runner = CliRunner()
    out = runner.invoke(ack_cmd, ["Deployment.apps shop/web", "--by", "ann", "--reason",
                                  "load test", "--expires", "7d"], obj=Context(str(config)))
    assert out.exit_code == 0, out.output
    # Beside --by, the identity who ran it (here whatever this machine's kubeconfig or OS
    # user is: tests/ledger/test_acknowledgements.py pins each source down).
    assert re.fullmatch(r"drift 1 \(Deployment.apps shop/web\) accepted by ann \(identity .+\) "
                        r"until \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\n", out.output)
    entries = orjson.loads(_history(db, "-o", "json", "--type", "drift"))
    assert [(e["event"], e["user"], e["reason"]) for e in entries] == [
        ("opened", "", ""), ("accepted", "ann", "load test")]
    missing = runner.invoke(ack_cmd, ["nothing", "--by", "ann", "--reason", "x"],
                            obj=Context(str(config)))
    assert missing.exit_code == 2 and "no open drift" in missing.output
    pruned = runner.invoke(prune_cmd, [], obj=Context(str(config)))
    assert pruned.exit_code == 0, pruned.output
    assert pruned.output.startswith("pruned the content of 0 object versions observed before ")


def test_drift_and_run_queries_for_outputs(ledger_file: LedgerTarget) -> None:
    from auditor.ledger import drifts, runs

    with ledger_file.reading() as conn:
        assert drifts(conn) == []
        (resolved,) = drifts(conn, ("resolved",))
        recent = runs(conn)
    assert resolved["object"] == "Deployment.apps shop/web"
    assert (resolved["opened_at"], resolved["state_since"], resolved["resolved_how"]) == (
        "2026-11-20T11:00:00Z", "2026-11-20T13:00:00Z", "fixed-live")
    assert resolved["items"][0]["live"] == "1.5"
    assert [r["id"] for r in recent] == [3, 2, 1]
    assert recent[0]["status"] == "complete"
    assert recent[0]["counts"]["ledger"]["drifts_resolved"] == {"fixed-live": 1}
