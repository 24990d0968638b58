"""The report's GitOps completeness (sources from Argo CD / Flux): namespaces not under
GitOps and the sync lag per controller source — "how long were approved changes not
live?" — in the HTML, the JSON and ``--table sync-lag``; "not applicable" without controller
sources; cluster-qualified in a fleet; and once from a real ``run`` against the controllers'
CRDs in the sandbox (tests/gitops)."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from auditor.cli.common import Context
from auditor.cli.report import report_cmd
from auditor.config import Config
from auditor.report import export, period
from auditor.report.fleet import load_fleet
from auditor.report.html import render_html
from auditor.report.model import NOT_APPLICABLE_GITOPS, Report
from tests.alerts.gitopsledgers import API, SHOP, WEB, lag, record_gitops, view
from tests.alerts.ledgers import T0
from tests.gitops.test_controller_sources import DEPLOY, TOOLS, argo  # noqa: F401  (a fixture)

START, END = T0 - timedelta(hours=1), T0 + timedelta(days=1)
HOUR = 3600


def _ledger(path: Path, cluster: str = "prod-eu") -> Path:
    """09:00 before the controllers were read; 10:00 web 2 behind since 09:30, legacy not
    under GitOps; 11:00 web 3 behind, shop diverged; 12:00 web applied, shop 1 behind since
    11:30, every namespace claimed."""
    record_gitops(path, 0, None, cluster=cluster)
    record_gitops(path, 1, view([lag(WEB, 2, 0.5)], uncovered=["legacy"]), cluster=cluster)
    record_gitops(path, 2, view([lag(WEB, 3, 0.5), lag(SHOP, -1, None)],
                                uncovered=["legacy"]), cluster=cluster)
    record_gitops(path, 3, view([lag(SHOP, 1, 2.5)],
                                skipped=[("Application argocd/legacy", "plugin source")]),
                  cluster=cluster)
    return path


def _report(db: Path) -> Report:
    return period.build(db, START, END, Config(), now=END + timedelta(hours=1))


def test_sync_lag_per_source_and_not_under_gitops(tmp_path: Path) -> None:
    go = _report(_ledger(tmp_path / "ledger.db")).gitops
    assert go.applicable and go.note == ""
    assert go.runs == 3 and go.runs_with_uncovered == 2
    assert go.not_under_gitops == [] and go.sources_at_end == 3
    assert go.skipped_at_end == ["Application argocd/legacy: plugin source"]
    rows = {x.owner: x for x in go.sync_lag}
    assert go.sync_lag[0].owner == SHOP  # still behind at the end: first
    web, shop, api = rows[WEB], rows[SHOP], rows[API]
    # web: behind in two runs, longest 1 h 30 min (09:30 → the 11:00 run), applied by the end.
    assert (web.runs_seen, web.runs_behind, web.max_behind) == (3, 2, 3)
    assert web.longest_s == 1.5 * HOUR and web.longest_since == "2026-11-20T09:30:00Z"
    assert web.longest_seen_at == "2026-11-20T11:00:00Z"
    assert (web.first_behind_at, web.last_behind_at) == ("2026-11-20T10:00:00Z",
                                                         "2026-11-20T11:00:00Z")
    assert not web.behind_at_end and web.behind_at_end_commits is None
    assert web.controller == "argocd" and web.source == "argocd:argocd/web" and web.ref == "main"
    # shop: diverged once (no count, no duration), then 1 behind for 30 minutes at the end.
    assert shop.diverged and shop.runs_behind == 2 and shop.max_behind == 1
    assert shop.longest_s == 0.5 * HOUR and shop.behind_at_end
    assert shop.behind_at_end_commits == 1
    # api (Flux): never behind.
    assert (api.runs_behind, api.longest_s, api.controller) == (0, None, "flux")
    assert go.behind_at_end == 1


def test_html_json_and_the_sync_lag_table(tmp_path: Path) -> None:
    report = _report(_ledger(tmp_path / "ledger.db"))
    page = render_html(report)
    section = page[page.index('id="completeness"'):page.index('id="drifts"')]
    assert "Not under GitOps" in section and "Sync lag" in section
    assert 'id="t-sync-lag"' in section and "How long were approved changes not live?" in section
    assert "1h 30m" in section and WEB in section and "diverged" in section
    assert "<strong>2</strong> of 3 runs found any" in section
    assert NOT_APPLICABLE_GITOPS not in page
    assert "s3cr3t" not in page and "s3cr3t" not in export.to_json(report).decode()

    doc = orjson.loads(export.to_json(report))
    assert doc["gitops"]["applicable"] is True
    lags = {x["owner"]: x for x in doc["gitops"]["sync_lag"]}
    assert lags[WEB]["longest_s"] == 5400 and lags[SHOP]["behind_at_end"] is True

    rows = list(csv.DictReader(io.StringIO(export.to_csv(report, "sync-lag"))))
    by_owner = {r["owner"]: r for r in rows}
    assert set(by_owner) == {WEB, SHOP, API}
    assert by_owner[WEB]["longest_lag_s"] == "5400"
    assert by_owner[WEB]["behind_at_period_end"] == "no"
    assert by_owner[SHOP]["commits_behind_at_period_end"] == "1"
    assert by_owner[SHOP]["diverged"] == "yes"
    assert "sync-lag" in export.TABLES


def test_not_applicable_without_controller_sources(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    record_gitops(db, 0, None)
    record_gitops(db, 1, None)
    report = _report(db)
    assert not report.gitops.applicable
    page = render_html(report)
    section = page[page.index('id="completeness"'):page.index('id="drifts"')]
    assert section.count(NOT_APPLICABLE_GITOPS) == 2
    assert 'id="t-sync-lag"' not in section
    doc = orjson.loads(export.to_json(report))
    assert doc["gitops"]["note"] == NOT_APPLICABLE_GITOPS and doc["gitops"]["sync_lag"] == []
    assert export.to_csv(report, "sync-lag").splitlines() == [
        ",".join(name for name, _ in export.SYNC_LAG_COLUMNS)]


def test_the_cli_writes_the_sync_lag_table(tmp_path: Path) -> None:
    db = _ledger(tmp_path / "ledger.db")
    config = tmp_path / "drift-auditor.yaml"
    config.write_text(f"ledger: {{path: {db}}}\nreports: {{directory: {tmp_path / 'r'}}}\n")
    result = CliRunner().invoke(report_cmd, [
        "--from", START.strftime("%Y-%m-%dT%H:%M:%SZ"), "--to", END.strftime("%Y-%m-%d"),
        "--format", "csv", "--table", "sync-lag"], obj=Context(str(config)))
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output[result.output.index("cluster,"):])))
    assert {r["owner"] for r in rows} == {WEB, SHOP, API}


def test_a_fleet_names_the_cluster_of_each_row(tmp_path: Path) -> None:
    (tmp_path / "eu").mkdir()
    (tmp_path / "us").mkdir()
    eu = _ledger(tmp_path / "eu" / "ledger.db", cluster="prod-eu")
    us = tmp_path / "us" / "ledger.db"
    record_gitops(us, 1, None, cluster="prod-us")  # no controllers there
    model = load_fleet([eu, us], START, END, Config(), now=END + timedelta(hours=1))
    go = model.report.gitops
    assert go.applicable and go.runs == 3
    assert {x.cluster for x in go.sync_lag} == {"prod-eu"}
    assert go.skipped_at_end == ["prod-eu: Application argocd/legacy: plugin source"]
    page = render_html(model.report)
    assert "<th scope=\"col\">Cluster</th><th scope=\"col\">Source (owner)</th>" in page
    rows = list(csv.DictReader(io.StringIO(export.to_csv(model.report, "sync-lag"))))
    assert {r["cluster"] for r in rows} == {"prod-eu"}


@pytest.mark.kubectl
def test_a_real_run_behind_git_is_reported(argo: dict[str, Any]) -> None:  # noqa: F811
    """Argo CD Applications synced at one commit, one commit pushed two hours ago: the run records
    the lag, and the report and the metrics read it from the ledger."""
    repo = argo["repo"]
    repo.write("apps/web/deploy.yaml", DEPLOY.replace("replicas: 2", "replicas: 4"))
    pushed = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    repo.commit("web: scale to 4", date=pushed.strftime("%Y-%m-%dT%H:%M:%SZ"))
    env = {**os.environ, "PATH": f"{TOOLS}:{os.environ.get('PATH', '')}"}
    cli = [sys.executable, "-m", "auditor.cli", "--config", str(argo["config"])]
    run = subprocess.run([*cli, "run"], capture_output=True, text=True, timeout=180, env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    today = datetime.now(UTC)
    report = subprocess.run([*cli, "report", "--from", f"{today - timedelta(days=1):%Y-%m-%d}",
                             "--format", "json"], capture_output=True, timeout=120, env=env)
    assert report.returncode == 0, report.stderr
    go = orjson.loads(report.stdout)["gitops"]
    assert go["applicable"] and go["runs"] == 1 and "legacy" in go["not_under_gitops"]
    lags = {x["owner"]: x for x in go["sync_lag"]}
    assert set(lags) == {"Application argocd/shop", "Application argocd/web",
                         "Application argocd/api"}
    for x in lags.values():
        assert x["behind_at_end"] and x["max_behind"] == 1 and x["runs_behind"] == 1
        assert x["longest_s"] is not None and 2 * HOUR <= x["longest_s"] < 2 * HOUR + 600
    metrics = subprocess.run([*cli, "metrics", "--print"], capture_output=True, text=True,
                             timeout=120, env=env)
    assert metrics.returncode == 0, metrics.stderr
    text = metrics.stdout
    assert 'drift_auditor_gitops_sources{controller="argocd"} 3.0' in text
    assert ('drift_auditor_sync_lag_commits{owner="Application argocd/web",'
            'source="argocd:argocd/web"} 1.0') in text
    assert "drift_auditor_namespaces_not_under_gitops " in text
    [seconds] = [line for line in text.splitlines()
                 if line.startswith('drift_auditor_sync_lag_seconds{owner="Application argocd/web"')]
    assert 2 * HOUR <= float(seconds.rsplit(" ", 1)[1]) < 2 * HOUR + 600
