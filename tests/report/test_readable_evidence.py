"""Evidence a person reads: an atomic list drift item by item, one name per figure (the
in-sync ratio is not the compliance score), a sign-off block, controls with no population
shown as not applicable, and a period given as a day measured from the ledger's first run.

The ledger is written through the ledger API (as ``make demo`` leaves one: the first run late
in the day): a ClusterRole whose atomic ``rules`` list gained ``secrets/get`` by hand, and a
Deployment whose image was set by hand and put back.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from auditor.cli.common import Context
from auditor.cli.report import report_cmd
from auditor.config import Config, ReportsConfig
from auditor.engine.records import DriftItem, ObjectResult, ResourceKey, SourceInfo
from auditor.ledger import Ledger, Observation
from auditor.report import export, manifest, period
from auditor.report.html import render_html
from auditor.report.model import Report
from auditor.report.period import Options

DAY = datetime(2026, 3, 1, tzinfo=UTC)
FIRST_RUN = DAY + timedelta(hours=10, minutes=5)
ROLE = ResourceKey("rbac.authorization.k8s.io", "ClusterRole", "", "shop-readonly")
WEB = ResourceKey("apps", "Deployment", "shop", "web")
SECRETS_GET = {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}
# Long enough that the whole list, as JSON, is cut before the rule added at its end.
RULES = [{"apiGroups": [""], "resources": ["configmaps", "services", "endpoints"],
          "verbs": ["get", "list", "watch"]},
         {"apiGroups": ["apps"], "resources": ["deployments", "replicasets", "statefulsets"],
          "verbs": ["get", "list", "watch"]},
         {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses", "networkpolicies"],
          "verbs": ["get", "list"]}]
LONG_PATH = "spec.template.spec.containers[name=storefront-web-frontend].image"


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _observe(run: Any, key: ResourceKey, version: str, body: dict[str, Any], manager: str,
             at: datetime, category: str) -> None:
    digest = hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()
    api = "rbac.authorization.k8s.io/v1" if key.kind == "ClusterRole" else "apps/v1"
    run.observe(Observation(key, api, version, digest, body, manager, "Update", _stamp(at),
                            category))


def build_ledger(path: Path) -> None:
    def role(rules: list[dict[str, Any]]) -> dict[str, Any]:
        return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                "metadata": {"name": "shop-readonly"}, "rules": rules}

    def web(image: str) -> dict[str, Any]:
        return {"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "namespace": "shop"},
                "spec": {"template": {"spec": {"containers": [
                    {"name": "storefront-web-frontend", "image": image}]}}}}

    good = "registry.example.com/platform/storefront/web-frontend:1.4.2"
    hot = "registry.example.com/platform/storefront/web-frontend:1.5.0-rc1-hotfix"
    with Ledger.open(path, tool_version="0.1.0", config_hash="d" * 64) as ledger:
        for hour, rules, image in ((0, RULES, good), (1, [*RULES, SECRETS_GET], hot),
                                   (2, [*RULES, SECRETS_GET], good)):
            at = FIRST_RUN + timedelta(hours=hour)
            run = ledger.begin_run(cluster="demo", git_commits={"shop": "e" * 40},
                                   started_at=at)
            human = hour > 0
            if hour < 2:
                _observe(run, ROLE, f"r{hour}", role(rules), "kubectl-edit" if human
                         else "argocd-controller", at, "human" if human else "gitops")
            _observe(run, WEB, f"w{hour}", web(image), "kubectl-set" if human and hour == 1
                     else "argocd-controller", at, "human" if hour == 1 else "gitops")
            role_items = (DriftItem("rules", "changed", RULES, rules, "kubectl-edit", "Update",
                                    _stamp(FIRST_RUN + timedelta(hours=1)), "human"),
                          ) if human else ()
            run.record(ObjectResult(ROLE, "rbac.authorization.k8s.io/v1",
                                    "drifted" if role_items else "in-sync", role_items,
                                    SourceInfo("apps/rbac.yaml", commit="e" * 40)))
            web_items = (DriftItem(LONG_PATH, "changed", good, hot, "kubectl-set", "Update",
                                   _stamp(at), "human"),) if hour == 1 else ()
            run.record(ObjectResult(WEB, "apps/v1", "drifted" if web_items else "in-sync",
                                    web_items, SourceInfo("apps/web.yaml", commit="e" * 40)))
            run.finish("complete", counts={"in-sync": 2 - len(role_items) - len(web_items),
                                           "drifted": len(role_items) + len(web_items)})


@dataclass(frozen=True)
class Built:
    path: Path
    cfg: Config
    report: Report
    page: str


CFG = Config(reports=ReportsConfig(schedule_minutes=60, remediation_sla_hours=24))


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    path = tmp_path_factory.mktemp("readable") / "ledger.db"
    build_ledger(path)
    # ``report --from 2026-03-01 --to 2026-03-01``: the whole day, first run at 10:05.
    report = period.build(path, DAY, DAY + timedelta(days=1), CFG,
                          now=DAY + timedelta(days=2), options=Options(prepared_by="Dana Ops"))
    return Built(path, CFG, report, render_html(report))


def test_atomic_list_drift_is_shown_item_by_item(built: Built) -> None:
    drift = next(d for d in built.report.drifts if d.kind == "ClusterRole")
    value = next(v for v in drift.values if v.path == "rules")
    added = orjson.dumps(SECRETS_GET, option=orjson.OPT_SORT_KEYS).decode()
    assert (value.removed, value.added) == ((), (added,))
    # The whole lists, as JSON, are cut before the rule that matters.
    assert value.live.endswith("…") and "secrets" not in value.live
    page = built.page
    cell = page[page.index(f'id="{drift.anchor}"'):]
    cell = cell[:cell.index("</tr>")]
    assert '<li class="add">' in cell and "secrets" in cell.replace("<wbr>", "")
    assert "added live" in cell and '<li class="del">' not in cell
    assert value.live not in cell  # the truncated lists are not shown
    # The JSON carries the items too (added keys; desired/live stay as they were).
    doc = orjson.loads(export.to_json(built.report))
    (item,) = [v for d in doc["drifts"] for v in d["values"] if v["path"] == "rules"]
    assert item["added"] == [added] and item["removed"] == [] and item["live"] == value.live


def test_the_report_names_the_in_sync_ratio_and_keeps_the_json_key(built: Built) -> None:
    summary = built.report.summary
    assert summary.in_sync_ratio == summary.compliance_score is not None
    page = built.page
    assert ">in-sync ratio<" in page and "In-sync ratio per" in page
    assert ">compliance score<" not in page and "Compliance score per" not in page
    terms = dict(built.report.definitions)
    assert "Compliance score" not in terms and "In-sync ratio" in terms
    assert "not the compliance score" in terms["In-sync ratio"]
    assert "compliance score of drift-auditor run" in terms["Policy compliance"]
    doc = orjson.loads(export.to_json(built.report))
    assert doc["summary"]["in_sync_ratio"] == doc["summary"]["compliance_score"]


def test_sign_off_block_names_the_ledger_head_and_blank_lines(built: Built) -> None:
    head = built.report.header.integrity
    assert head.ok and head.head_seq > 0 and len(head.head_hash) == 64
    page = built.page
    block = page[page.index('<section id="sign-off"'):]
    block = block[:block.index("</section>")]
    assert f"event #{head.head_seq}" in block and head.head_hash in block
    assert built.report.header.changes_csv_sha256 in block
    assert '<span class="line" id="signoff-prepared-by">Dana Ops</span>' in block
    assert '<span class="line" id="signoff-reviewed-by"></span>' in block
    assert '<span class="line wide" id="signoff-sha256"></span>' in block
    assert block.count('<span class="line"></span>') == 4  # signatures and dates
    assert "manifest.json" in block and 'href="#sign-off"' in page


def test_prepared_by_option_fills_the_sign_off_and_the_manifest_covers_the_file(
        built: Built, tmp_path: Path) -> None:
    config = tmp_path / "drift-auditor.yaml"
    config.write_text(f"ledger: {{path: {built.path}}}\n"
                      "reports: {schedule-minutes: 60, remediation-sla-hours: 24}\n")
    out = tmp_path / "day.html"
    result = CliRunner().invoke(report_cmd, [
        "--from", "2026-03-01", "--to", "2026-03-01", "--output-file", str(out),
        "--prepared-by", "Dana Ops"], obj=Context(str(config)))
    assert result.exit_code == 0, result.output
    page = out.read_text(encoding="utf-8")
    assert '<span class="line" id="signoff-prepared-by">Dana Ops</span>' in page
    # The SHA-256 the signatures cover is the one the manifest lists for the file.
    doc = orjson.loads(manifest.path_for(out).read_bytes())
    entry = next(e for e in doc["files"] if e["name"] == out.name)
    assert entry["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert f"event #{doc['ledgers'][0]['head_seq']}" in page
    assert doc["ledgers"][0]["head_hash"] in page
    # The period given as a day is measured from the ledger's first run.
    assert f"coverage measured from the first run at {_stamp(FIRST_RUN)}" in page


def test_controls_without_population_are_not_applicable_not_missing(built: Built) -> None:
    controls = {c.id: c for c in built.report.controls}
    # No policy evaluated, no revert, nothing adopted, no API-server audit source.
    for cid in ("DA-10", "DA-11", "DA-12", "DA-13"):
        control = controls[cid]
        assert (control.result, control.population, control.exceptions) == (
            "not-applicable", 0, 0), cid
        assert control.note.startswith("Not applicable in period: "), cid
        # The appendix still defines it: the matrix names it too.
        assert any(term.startswith(f"Mapping {cid} ") for term, _ in built.report.definitions)
        row = built.page[built.page.index(f'id="ctl-{cid}"'):]
        row = row[:row.index("</tr>")]
        assert "Not applicable in period" in row, cid
    assert "Not applicable in period" in dict(built.report.definitions)["Control result"]


def test_a_day_starts_at_the_ledgers_first_run_and_says_so(built: Built) -> None:
    mon = built.report.monitoring
    # Slots from the first run's (10:00) to midnight: 14, of which 3 covered (10, 11, 12 h).
    assert mon.measured_from == _stamp(FIRST_RUN)
    assert (mon.expected, mon.covered) == (14, 3)
    assert all("before the ledger's first run" not in g.reason for g in mon.gaps)
    assert [(g.start, g.missed) for g in mon.gaps] == [("2026-03-01T13:00:00Z", 11)]
    da4 = {c.id: c for c in built.report.controls}["DA-4"]
    assert (da4.population, da4.exceptions) == (14, 11)
    assert f"coverage measured from the first run at {_stamp(FIRST_RUN)}" in da4.note
    page = built.page
    assert "3/14" in page
    assert f"measured from the first run at {_stamp(FIRST_RUN)}" in page
    assert 'id="measured-from"' in page
    # The runs chart agrees: the hours before the first run are not missed runs.
    from auditor.report.html import chart_svgs
    assert "missed (11)" in chart_svgs(built.report)["runs"]
    # A period starting at or after the first run is measured from its own start.
    later = period.build(built.path, FIRST_RUN, DAY + timedelta(days=1), built.cfg,
                         now=DAY + timedelta(days=2))
    assert later.monitoring.measured_from == "" and 'id="measured-from"' not in render_html(later)
