"""The shipped Grafana dashboard (``deploy/helm/drift-auditor/files/drift-auditor-dashboard.json``): every
query is PromQL that promtool parses, and names only metrics the exporter documents and
emits (a renamed metric would leave a panel silently empty)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from auditor.config import Config
from auditor.ledger import Ledger
from auditor.ledger.metricsquery import BREAKDOWN_KEY, breakdown
from auditor.outputs import metrics
from tests.alerts.gitopsledgers import SHOP, lag, view
from tests.alerts.ledgers import at, drifted, in_sync, key
from tests.ledger.helpers import obs

DASHBOARD = (Path(__file__).resolve().parents[2] / "deploy" / "helm" / "drift-auditor" / "files"
             / "drift-auditor-dashboard.json")
METRIC = re.compile(r"\bdrift_auditor_[a-z_]+")


def _dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def _queries() -> list[str]:
    return [t["expr"] for p in _dashboard()["panels"] for t in p["targets"]]


def test_the_dashboard_is_well_formed() -> None:
    dash = _dashboard()
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)) and dash["uid"] == "drift-auditor"
    for panel in dash["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}" and panel["targets"], panel["title"]
        assert all('cluster=~"$cluster"' in t["expr"] for t in panel["targets"]), panel["title"]
    names = {v["name"] for v in dash["templating"]["list"]}
    assert names == {"datasource", "cluster"}


def test_every_query_is_promql_promtool_parses(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package `prometheus`)")
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{i}", "expr": q.replace("$cluster", ".*")}
        for i, q in enumerate(_queries())]}]}
    path = tmp_path / "queries.yaml"
    path.write_text(yaml.safe_dump(rules))
    done = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_metric_queried_is_one_the_exporter_emits(tmp_path: Path) -> None:
    """A ledger as runs leave it (a change, a drift and its remediation, the per-namespace
    breakdown, sources from Argo CD with one behind Git): the exporter's families, plus the
    policy score it emits only when policies ran, cover every name the dashboard asks for."""
    db = tmp_path / "ledger.db"
    web, api = key("web"), key("api", ns="billing")
    image = "spec.template.spec.containers[name=web].image"
    runs = [([obs(web, {"image": "web:1"}, rv="1")], [in_sync(web), in_sync(api)]),
            ([obs(web, {"image": "web:2"}, rv="2")], [drifted(web, (image, "1", "2")),
                                                       in_sync(api)]),
            ([], [in_sync(web), in_sync(api)])]
    with Ledger.open(db) as ledger:
        for hour, (observed, results) in enumerate(runs):
            run = ledger.begin_run(cluster="prod", started_at=at(hour))
            for o in observed:
                run.observe(o)
            for r in results:
                run.record(r)
            run.finish("complete", counts={BREAKDOWN_KEY: breakdown(results),
                                           "gitops": view([lag(SHOP, 2, hour - 0.5)])})
    reg, _ = metrics.registry(Config(), db)
    emitted = {s.name for f in text_string_to_metric_families(generate_latest(reg).decode())
               for s in f.samples}
    documented = set(METRIC.findall(metrics.__doc__ or ""))
    asked = {name for q in _queries() for name in METRIC.findall(q)}
    assert asked - emitted <= {"drift_auditor_policy_compliance_score"}, asked - emitted
    assert {n.removesuffix("_sum").removesuffix("_count") for n in asked} <= documented
