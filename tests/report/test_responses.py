"""Management responses and acknowledgers' identities in the report: a response to a drift
and to a change is shown next to it (HTML), in its own table and in the exports (JSON,
CSV); a self-acknowledged acceptance is an exception of DA-7."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from auditor.cli import main
from auditor.config import Config, ReportsConfig
from auditor.engine.records import DriftItem, ObjectResult, ResourceKey, SourceInfo
from auditor.ledger import Ledger, Observation
from auditor.ledger.accountability import OS_USER, VERIFIED, AckPolicy, Identity
from auditor.report import export, period
from auditor.report.html import render_html
from auditor.report.model import Report

START = datetime(2026, 3, 2, tzinfo=UTC)
END = START + timedelta(days=1)
WEB = ResourceKey("apps", "Deployment", "shop", "web")
CFG = Config(reports=ReportsConfig(schedule_minutes=60, remediation_sla_hours=24))


def _content(image: str) -> dict[str, object]:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"template": {"spec": {"containers": [{"name": "web", "image": image}]}}}}


def _ledger(path: Path, *, allow_self: bool) -> None:
    """Two runs: web applied by Argo CD, then set by hand by alice (a drift and a change);
    the drift accepted (by alice herself when ``allow_self``), then responses recorded."""
    with Ledger.open(path, sign=False) as ledger:
        for hour, image, manager, category in ((1, "shop/web:1.0", "argocd-controller",
                                                "gitops"),
                                               (2, "shop/web:6.6", "kubectl-set", "human")):
            moment = START + timedelta(hours=hour)
            run = ledger.begin_run(cluster="c", git_commits={"shop": "e" * 40},
                                   started_at=moment)
            body = _content(image)
            digest = hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()
            run.observe(Observation(WEB, "apps/v1", str(hour), digest, body, manager, "Update",
                                    moment.strftime("%Y-%m-%dT%H:%M:%SZ"), category))
            items = () if category == "gitops" else (DriftItem(
                "spec.template.spec.containers[name=web].image", "changed", "shop/web:1.0",
                image, manager, "Update", "", category, "alice"),)
            run.record(ObjectResult(WEB, "apps/v1", "drifted" if items else "in-sync", items,
                                    SourceInfo("apps/web.yaml", commit="e" * 40)))
            run.finish("complete")
        who = Identity("alice" if allow_self else "bob", VERIFIED)
        ledger.acknowledge(1, by="Alice A" if allow_self else "Bob B", reason="hotfix",
                           expires="2d", at=START + timedelta(hours=3), identity=who,
                           ticket="OPS-9",
                           policy=AckPolicy(r"OPS-\d+", allow_self=allow_self))
        ledger.respond("drift:1", by="Carol CISO", text="Hotfix reviewed; merged into Git.",
                       identity=Identity("carol", OS_USER))
        change_id = ledger.conn.execute("SELECT max(id) FROM changes").fetchone()[0]
        ledger.respond(f"change:{change_id}", by="Carol CISO", text="Emergency change CR-1.",
                       identity=Identity("carol", OS_USER))


def _report(tmp_path: Path, *, allow_self: bool = False) -> Report:
    path = tmp_path / "l.db"
    _ledger(path, allow_self=allow_self)
    return period.build(path, START, END, CFG, now=END + timedelta(hours=1))


def test_responses_shown_next_to_the_exception_in_html(tmp_path: Path) -> None:
    report = _report(tmp_path)
    assert [(r.ref, r.by, r.identity) for r in report.responses] == [
        ("drift:1", "Carol CISO", "carol"), (f"change:{report.changes[-1].id}", "Carol CISO",
                                             "carol")]
    page = render_html(report)
    assert page.count("<strong>Management response</strong>") == 2
    assert "Hotfix reviewed; merged into Git." in page and "Emergency change CR-1." in page
    assert 'id="t-responses"' in page and 'href="#drift-1">drift:1</a>' in page
    # The acceptance names who, as authenticated, and the ticket.
    assert "identity bob (kubernetes SelfSubjectReview)" in page
    assert "ticket OPS-9" in page
    assert "self-acknowledged" not in page.split('id="t-accept"')[1].split("</table>")[0]


def test_responses_and_identities_in_the_exports(tmp_path: Path) -> None:
    report = _report(tmp_path)
    doc = orjson.loads(export.to_json(report))
    assert [r["text"] for r in doc["responses"]] == ["Hotfix reviewed; merged into Git.",
                                                      "Emergency change CR-1."]
    assert doc["responses"][0]["identity_source"] == OS_USER
    [acceptance] = doc["acceptances"]
    assert (acceptance["identity"], acceptance["ticket"], acceptance["self_acknowledged"]) == (
        "bob", "OPS-9", False)
    csv_text = export.to_csv(report, "responses")
    assert csv_text.splitlines()[0].startswith("response_id,exception,at,by,identity")
    assert "drift:1" in csv_text and "Emergency change CR-1." in csv_text


def test_self_acknowledged_acceptance_is_an_exception_of_da7(tmp_path: Path) -> None:
    other = _report(tmp_path / "other")
    selfish = _report(tmp_path / "self", allow_self=True)
    da7 = {c.id: c for c in other.controls}["DA-7"]
    self_da7 = {c.id: c for c in selfish.controls}["DA-7"]
    assert self_da7.exceptions == da7.exceptions + 1
    assert self_da7.result == "exceptions" and "self-acknowledged" in self_da7.note
    assert "#drift-1" in [e.href for e in self_da7.evidence]
    [drift] = selfish.drifts
    assert drift.accepted_self and drift.accepted_identity == "alice"
    page = render_html(selfish)
    assert "self-acknowledged</span>" in page


@pytest.fixture
def site(tmp_path: Path) -> tuple[Path, Path]:
    path = tmp_path / "l.db"
    _ledger(path, allow_self=False)
    cfg = tmp_path / "drift-auditor.yaml"
    cfg.write_text(f"ledger:\n  path: {path}\n  sign: false\n")
    return path, cfg


def test_respond_cli_records_and_refuses_bad_references(site: tuple[Path, Path]) -> None:
    path, cfg = site
    env = {"KUBECONFIG": str(cfg.parent / "none")}
    runner = CliRunner()
    result = runner.invoke(main, ["--config", str(cfg), "respond", "drift:1", "--by", "Dana",
                                  "--text", "Noted."], env=env)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("response 3 to drift:1 recorded by Dana (identity ")
    for ref, problem in (("drift:99", "no such drift"), ("control:DA-7", "drift:ID or change:ID"),
                         ("12", "drift:ID or change:ID")):
        result = runner.invoke(main, ["--config", str(cfg), "respond", ref, "--by", "Dana",
                                      "--text", "x"], env=env)
        assert result.exit_code == 2
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and problem in lines[0], result.output
    report = period.build(path, START, END, CFG, now=END + timedelta(hours=1))
    assert [r.text for r in report.responses_for("drift:1")] == [
        "Hotfix reviewed; merged into Git.", "Noted."]
