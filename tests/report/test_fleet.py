"""Fleet reports (``drift-auditor report --ledger A --ledger B``) over ledgers written by real
runs: one sandbox API server audited by two installations under two cluster names
(``prod-eu`` and ``prod-us``), each with its own ledger, and real kubectl 1.35 changes
between their runs so the two clusters end the period with different drift:

    GitOps apply → eu run 1, us run 1 (baselines)
    kubectl set image (by hand)             → eu run 2 (image drift opens)
    kubectl patch the ConfigMap (by hand)   → us run 2 (image + ConfigMap drift open)
    GitOps re-apply (force)                 → eu run 3 (image drift resolves)

so prod-eu ends with 0 open drifts and 1 unauthorized change, prod-us with 2 and 2.

Checked: the per-cluster breakdown re-performs from each cluster's own single-ledger report,
the fleet totals from the merged rows; a monitoring gap in one cluster shows for that cluster
only (two ledgers built through the ledger API, as the single-ledger gap tests do); every
anchor is cluster-qualified, unique and resolves; the CSVs carry the cluster and round-trip;
one tampered ledger fails only its own cluster and the command exits 1; the page renders in
headless Chromium without errors.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from auditor import config as config_mod
from auditor.cli.common import Context
from auditor.cli.report import report_cmd
from auditor.config import Config, ReportsConfig
from auditor.pipeline import run_once
from auditor.report import export, period, summaryform
from auditor.report.fleet import FleetModel, load_fleet
from auditor.report.html import render_html
from auditor.sandbox import Sandbox
from bench.report_bench import build_ledger
from tests.conftest import kubectl_binary

from .browser import Browser, available
from .conftest import APPS, NAMESPACE, POLICIES, _git

pytestmark = pytest.mark.kubectl

CLUSTERS = ("prod-eu", "prod-us")


@dataclass(frozen=True)
class Fleet:
    ledgers: dict[str, Path]  # cluster name → ledger
    configs: dict[str, Path]
    start: datetime
    end: datetime
    tmp: Path

    @property
    def paths(self) -> list[Path]:
        return [self.ledgers[c] for c in CLUSTERS]

    def cfg(self) -> Config:
        return config_mod.load(self.configs["prod-eu"])


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    tmp = tmp_path_factory.mktemp("fleet")
    repo = tmp / "gitops"
    (repo / "apps").mkdir(parents=True)
    _git(repo, "init", "-q", "-b", "main")
    (repo / "apps" / "namespace.yaml").write_text(NAMESPACE)
    (repo / "apps" / "shop.yaml").write_text(APPS)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m",
         "Add the storefront (#42)\n\nReviewed-by: Dana Ops <dana@example.com>")
    binary = kubectl_binary()
    start = datetime.now(UTC).replace(microsecond=0)
    with Sandbox() as sandbox:
        kubeconfig = sandbox.write_kubeconfig(tmp / "kubeconfig")
        env = {**os.environ, "KUBECONFIG": str(kubeconfig), "HOME": str(tmp),
               "KUBECACHEDIR": str(tmp / "kube-cache"), "KUBE_EDITOR": "true"}

        def kubectl(*args: str) -> None:
            proc = subprocess.run([str(binary), *args], env=env, capture_output=True, text=True,
                                  timeout=60)
            assert proc.returncode == 0, proc.stderr

        def sync(force: bool = False) -> None:
            for name in ("namespace.yaml", "shop.yaml"):
                kubectl("apply", "--server-side", "--field-manager=argocd-controller",
                        *(["--force-conflicts"] if force else []), "-f",
                        str(repo / "apps" / name))

        configs, ledgers = {}, {}
        for cluster in CLUSTERS:
            ledgers[cluster] = tmp / f"{cluster}.db"
            configs[cluster] = tmp / f"{cluster}.yaml"
            configs[cluster].write_text(f"""
sources:
  - {{name: shop, url: {repo}, revision: main, paths: [apps]}}
cluster: {{name: {cluster}, kubeconfig: {kubeconfig}, retries: 1}}
ledger: {{path: {ledgers[cluster]}}}
policies: {{directory: {POLICIES}}}
reports: {{schedule-minutes: 60, remediation-sla-hours: 24}}
""")
        eu, us = (config_mod.load(configs[c]) for c in CLUSTERS)
        sync()
        run_once(eu)
        run_once(us)
        kubectl("-n", "shop", "set", "image", "deployment/web", "web=shop/web:6.6.6-hotfix")
        run_once(eu)
        kubectl("-n", "shop", "patch", "configmap", "settings", "--type=merge", "-p",
                '{"data": {"MODE": "debug"}}')
        run_once(us)
        sync(force=True)
        run_once(eu)
    yield Fleet(ledgers, configs, start,
                datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1), tmp)


@pytest.fixture(scope="module")
def model(fleet: Fleet) -> FleetModel:
    return load_fleet(fleet.paths, fleet.start, fleet.end, fleet.cfg())


def _cli(fleet: Fleet, *args: str, ledgers: list[Path] | None = None) -> tuple[int, str]:
    paths = fleet.paths if ledgers is None else ledgers
    result = CliRunner().invoke(
        report_cmd, [*(a for p in paths for a in ("--ledger", str(p))), "--from",
                     _stamp(fleet.start), "--to", _stamp(fleet.end), *args],
        obj=Context(str(fleet.configs["prod-eu"])))
    return result.exit_code, result.output


class _Anchors(HTMLParser):
    """Every element id and every in-page link of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name == "id" and value:
                self.ids.append(value)
            elif name == "href" and value and value.startswith("#"):
                self.links.append(value[1:])


def _anchors(page: str) -> _Anchors:
    parser = _Anchors()
    parser.feed(page)
    return parser


def test_breakdown_reperforms_from_each_clusters_own_report(fleet: Fleet,
                                                            model: FleetModel) -> None:
    cfg = fleet.cfg()
    report = model.report
    assert [m.cluster for m in model.members] == list(CLUSTERS)
    assert report.header.clusters == list(CLUSTERS)
    singles = {c: period.build(fleet.ledgers[c], fleet.start, fleet.end, cfg) for c in CLUSTERS}
    for member in model.members:
        own = singles[member.cluster]
        # The breakdown row is the cluster's own report, figure for figure.
        assert member.summary == own.summary
        assert member.coverage_pct == own.monitoring.coverage_pct
        assert member.changes_csv_sha256 == own.header.changes_csv_sha256
        assert member.integrity.ok is True and member.integrity.checkpoint_seq is not None
        assert member.integrity.checkpoint_hash == own.header.integrity.checkpoint_hash
        # … and re-performs from the fleet's own rows of that cluster.
        mine = [c for c in report.changes if c.cluster == member.cluster]
        drifts = [d for d in report.drifts if d.cluster == member.cluster]
        runs = [r for r in report.monitoring.runs if r.cluster == member.cluster]
        assert len(mine) == member.summary.changes == len(own.changes)
        assert sum(c.authorization == "unauthorized" for c in mine) == member.summary.unauthorized
        assert sum(d.state_at_end == "open" for d in drifts) == member.summary.open_drifts_at_end
        assert len(runs) == member.runs_actual == len(own.monitoring.runs)
        checked = sum(r.in_sync + r.drifted + r.missing + r.orphan for r in runs)
        assert member.summary.compliance_score == round(
            100.0 * sum(r.in_sync for r in runs) / checked, 2)
    eu, us = (singles[c].summary for c in CLUSTERS)
    # Different drift in the two clusters (see the module docstring).
    assert (eu.unauthorized, eu.open_drifts_at_end, eu.resolved_in_period) == (1, 0, 1)
    assert (us.unauthorized, us.open_drifts_at_end, us.resolved_in_period) == (2, 2, 0)
    assert eu.mttr_s is not None and us.mttr_s is None
    # Fleet totals: sums of counts, ratios of sums (not means of per-cluster ratios).
    total = report.summary
    assert total.changes == eu.changes + us.changes
    assert total.unauthorized == 3 and total.open_drifts_at_end == 2
    assert total.score_checked == eu.score_checked + us.score_checked
    assert total.compliance_score == round(
        100.0 * (eu.score_in_sync + us.score_in_sync) / total.score_checked, 2)
    ttrs = [d.time_to_remediate_s for c in CLUSTERS for d in singles[c].drifts
            if d.resolved_at and d.how != "superseded" and d.time_to_remediate_s is not None]
    assert total.mttr_s == round(statistics.fmean(ttrs))
    assert (total.runs_expected, total.runs_covered) == (
        eu.runs_expected + us.runs_expected, eu.runs_covered + us.runs_covered)
    page = render_html(report)
    row = re.search(r'<tr id="cluster-prod-us">(.*?)</tr>', page, re.S)
    assert row is not None
    assert '<span class="badge fail">2</span>' in row.group(1)  # open drift and unauthorized
    # Policies per cluster: each section has its own evaluation count and tables.
    assert [m.policies.evaluated_runs for m in model.members] == [3, 2]
    assert 'id="policies-prod-eu"' in page and 'id="t-policies-2"' in page


def test_single_ledger_is_the_single_report(fleet: Fleet) -> None:
    cfg = fleet.cfg()
    now = fleet.end + timedelta(days=1)
    one = load_fleet([fleet.ledgers["prod-us"]], fleet.start, fleet.end, cfg, now=now)
    plain = period.build(fleet.ledgers["prod-us"], fleet.start, fleet.end, cfg, now=now)
    assert one.report.fleet == [] and [m.cluster for m in one.members] == ["prod-us"]
    assert render_html(one.report) == render_html(plain)
    assert export.population_csv(one.report) == export.changes_csv(plain.changes)
    code, out = _cli(fleet, "--format", "csv", ledgers=[fleet.ledgers["prod-us"]])
    assert code == 0 and out.startswith("change_id,"), out


def test_anchors_are_qualified_unique_and_resolve(model: FleetModel) -> None:
    report = model.report
    page = render_html(report)
    found = _anchors(page)
    duplicates = {i for i in found.ids if found.ids.count(i) > 1}
    assert duplicates == set()  # the same change/drift ID exists in both ledgers
    ids = set(found.ids)
    assert set(found.links) <= ids, set(found.links) - ids
    for control in report.controls:
        for evidence in control.evidence:
            assert evidence.href[1:] in ids, evidence
    listed = summaryform.shown(report)
    for c in report.changes:
        # The summary form lists the changes needing attention (all of them, so few here);
        # every change is in the population CSV.
        assert c.anchor == c.ref == f"{c.cluster}:change-{c.id}"
        assert (c.anchor in ids) == (c in listed.changes.rows)
        assert c.authorization == "authorized" or c.anchor in ids
        if c.drift_id is not None:
            assert c.drift_anchor.startswith(f"{c.cluster}:drift-{c.drift_id}")
    for d in report.drifts:
        assert d.anchor.startswith(f"{d.cluster}:drift-{d.drift_id}")
        assert (d.anchor in ids) == (d in listed.drifts.rows)
        assert not (d.state_at_end == "open" or d.sla_breach) or d.anchor in ids
    # Change 1 of each ledger is a different change: both are there, told apart.
    ones = {c.ref for c in report.changes if c.id == report.changes[0].id}
    assert len(ones) == 2
    # The unauthorized changes of both clusters are DA-9's evidence, qualified.
    da9 = {c.id: c for c in report.controls}["DA-9"]
    labels = {e.label for e in da9.evidence}
    assert {c.ref for c in report.changes if c.authorization == "unauthorized"} <= labels
    assert da9.exceptions == 3


def test_summary_form_lists_what_needs_attention_and_every_cited_row(
        model: FleetModel, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fleet report's HTML lists, per cluster and table, the first rows needing attention
    (one here) and every row the control matrix cites; it says so under each shortened
    table, every link still resolves, and the figures count every row."""
    report = model.report
    monkeypatch.setattr(summaryform, "FLEET_HTML_ROWS", 1)
    listed = summaryform.shown(report)
    page = render_html(report)
    found = _anchors(page)
    ids = set(found.ids)
    assert set(found.links) <= ids, set(found.links) - ids
    cited = {e.href[1:] for c in report.controls for e in c.evidence}
    for c in report.changes:
        needs = c.authorization != "authorized" or c.spoofed or c.transient
        assert (c.anchor in ids) == (c in listed.changes.rows)
        if c.anchor in cited:
            assert c.anchor in ids
        if not needs:
            assert c.anchor not in ids  # authorized rows: the CSV has them
    attention = [c for c in listed.changes.rows if c.anchor not in cited]
    for cluster in CLUSTERS:
        assert sum(c.cluster == cluster for c in attention) <= 1
    assert listed.changes.shortened and listed.changes.total == len(report.changes)
    assert (f"Listed: {len(listed.changes.rows)} of {len(report.changes)} changes — per "
            "cluster the first 1 needing attention") in page
    # The summary and the breakdown still count every change.
    assert report.summary.changes == len(report.changes) == sum(
        m.summary.changes for m in model.members)


def test_single_ledger_report_lists_every_row(fleet: Fleet) -> None:
    plain = period.build(fleet.ledgers["prod-eu"], fleet.start, fleet.end, fleet.cfg())
    listed = summaryform.shown(plain, limit=0)
    assert list(listed.changes.rows) == plain.changes and not listed.changes.shortened
    assert listed.href("anything", "drifts") == "#anything"
    assert "Listed: " not in render_html(plain)


def test_parallel_build_equals_the_serial_one(fleet: Fleet) -> None:
    """Ledgers built in forked workers (one per core) merge into the same report and the
    same population file as built one after the other; the file the workers' rows make is
    the one the merged rows make. In a fresh process: fork_map forks only where no other
    thread runs, and earlier tests leave servers' request threads behind."""
    now = fleet.end + timedelta(days=1)
    script = f"""
import hashlib, threading
from datetime import datetime
from auditor import config
from auditor.report import export
from auditor.report import fleet as F
from auditor.support import parallel
cfg = config.load({str(fleet.configs["prod-eu"])!r})
paths = {[str(p) for p in fleet.paths]!r}
s, e, now = (datetime.fromisoformat(x) for x in
             ({fleet.start.isoformat()!r}, {fleet.end.isoformat()!r}, {now.isoformat()!r}))
assert threading.active_count() == 1
children = []
real_fork = parallel.os.fork
def counting_fork():
    pid = real_fork()
    children.append(pid)
    return pid
parallel.os.fork = counting_fork
F.workers = parallel.workers = lambda: 2  # fork even on a one-core runner
forked = F.load_fleet(paths, s, e, cfg, now=now)
assert children, "no worker was forked"
F.workers = lambda: 1
serial = F.load_fleet(paths, s, e, cfg, now=now)
assert export.to_json(forked.report) == export.to_json(serial.report)
assert forked.population_csv() == serial.population_csv()
assert forked.population_csv() == export.fleet_changes_csv(forked.report.changes)
digest = hashlib.sha256(forked.population_csv().encode()).hexdigest()
assert digest == forked.report.header.changes_csv_sha256
print("ok", len(children))
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300, cwd=fleet.tmp)
    assert proc.returncode == 0 and proc.stdout.startswith("ok"), proc.stdout + proc.stderr


def test_csv_has_the_cluster_and_round_trips(fleet: Fleet, model: FleetModel) -> None:
    out = fleet.tmp / "out" / "fleet.html"
    code, output = _cli(fleet, "--output-file", str(out))
    assert code == 0, output
    csv_path = out.with_suffix(".changes.csv")
    text = csv_path.read_text()
    page = out.read_text()
    assert f'id="csv-sha256">{hashlib.sha256(text.encode()).hexdigest()}<' in page
    assert hashlib.sha256(text.encode()).hexdigest() in output
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0])[:1] == ["ref"] and "cluster" in rows[0]
    ids = set(_anchors(page).ids)
    report = model.report
    assert len(rows) == len(report.changes)
    for row, change in zip(rows, report.changes, strict=True):
        for name, get in export.FLEET_CHANGE_COLUMNS:
            assert row[name] == export.cell(get(change)), name
        assert row["ref"] == f"{row['cluster']}:change-{row['change_id']}"
        # The HTML's summary form lists the changes needing attention; the CSV every one.
        assert row["ref"] in ids or change.authorization == "authorized"
    # Each cluster's rows are exactly its own single-ledger population (less the ref).
    cfg = fleet.cfg()
    for cluster in CLUSTERS:
        own = period.build(fleet.ledgers[cluster], fleet.start, fleet.end, cfg)
        mine = [{k: v for k, v in r.items() if k != "ref"} for r in rows
                if r["cluster"] == cluster]
        assert mine == list(csv.DictReader(io.StringIO(export.changes_csv(own.changes))))
    # Bytes depend on the ledgers and the period only.
    assert text == export.population_csv(load_fleet(
        fleet.paths, fleet.start, fleet.end, cfg, now=fleet.end + timedelta(days=9)).report)
    code, drifts = _cli(fleet, "--format", "csv", "--table", "drifts")
    assert code == 0
    drift_rows = list(csv.DictReader(io.StringIO(drifts)))
    assert sorted(r["cluster"] for r in drift_rows) == ["prod-eu", "prod-us", "prod-us"]
    assert all(r["ref"] == f"{r['cluster']}:drift-{r['drift_id']}" for r in drift_rows)
    code, runs = _cli(fleet, "--format", "csv", "--table", "runs")
    assert code == 0
    assert [r["cluster"] for r in csv.DictReader(io.StringIO(runs))].count("prod-eu") == 3
    code, doc_text = _cli(fleet, "--format", "json")
    assert code == 0
    doc = orjson.loads(doc_text[doc_text.index("{"):])
    assert [m["cluster"] for m in doc["fleet"]] == list(CLUSTERS)
    assert doc["summary"]["unauthorized"] == 3
    assert {c["cluster"] for c in doc["changes"]} == set(CLUSTERS)


def test_a_gap_in_one_cluster_shows_for_that_cluster_only(tmp_path: Path) -> None:
    # Both bench ledgers name their cluster "prod": the ledger file names tell them apart.
    gappy, steady = tmp_path / "eu.db", tmp_path / "us.db"
    start, end = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 3, tzinfo=UTC)
    build_ledger(gappy, start=start, end=end, changes_per_run=2, objects=30,
                 outage=(datetime(2026, 3, 1, 10, tzinfo=UTC),
                         datetime(2026, 3, 1, 13, tzinfo=UTC)), failed_at=None)
    build_ledger(steady, start=start, end=end, changes_per_run=2, objects=30, outage=None,
                 failed_at=None, seed=11)
    cfg = Config(reports=ReportsConfig(schedule_minutes=60))
    model = load_fleet([gappy, steady], start, end, cfg, now=datetime(2026, 3, 10, tzinfo=UTC))
    mon = model.report.monitoring
    by_cluster = {c.cluster: c for c in mon.clusters}
    assert list(by_cluster) == ["prod@eu.db", "prod@us.db"]
    assert (by_cluster["prod@eu.db"].expected, by_cluster["prod@eu.db"].covered) == (48, 45)
    assert (by_cluster["prod@us.db"].expected, by_cluster["prod@us.db"].covered) == (48, 48)
    assert by_cluster["prod@us.db"].gaps == []
    # The steady cluster's runs in 10:00–13:00 do not cover the other's missing slots.
    assert [(g.cluster, g.start, g.end, g.missed, g.anchor) for g in mon.gaps] == [
        ("prod@eu.db", "2026-03-01T10:00:00Z", "2026-03-01T13:00:00Z", 3, "prod@eu.db:gap-0")]
    assert (mon.expected, mon.covered) == (96, 93)
    summaries = {m.cluster: m.summary for m in model.members}
    assert summaries["prod@eu.db"].gaps == 1 and summaries["prod@us.db"].gaps == 0
    da4 = {c.id: c for c in model.report.controls}["DA-4"]
    assert da4.exceptions == 3 and any(e.href == "#prod@eu.db:gap-0" for e in da4.evidence)
    assert sum(b.expected_runs for b in model.report.buckets) == 96
    assert sum(b.covered_runs for b in model.report.buckets) == 93
    page = render_html(model.report)
    assert 'id="prod@eu.db:gap-0"' in page
    row = re.search(r'<tr id="cluster-prod@us.db">(.*?)</tr>', page, re.S)
    assert row is not None and "48/48" in row.group(1)
    found = _anchors(page)
    assert set(found.links) <= set(found.ids)
    assert len(found.ids) == len(set(found.ids))


def test_a_tampered_ledger_fails_only_its_cluster(fleet: Fleet, tmp_path: Path) -> None:
    copy = tmp_path / "prod-us.db"
    shutil.copy(fleet.ledgers["prod-us"], copy)
    conn = sqlite3.connect(copy, isolation_level=None)
    conn.execute("DROP TRIGGER changes_no_update")
    # Make the out-of-band image change look like a GitOps sync.
    conn.execute("UPDATE changes SET manager = 'argocd-controller', category = 'gitops', "
                 "authorized = 1 WHERE manager = 'kubectl-set'")
    conn.close()
    ledgers = [fleet.ledgers["prod-eu"], copy]
    model = load_fleet(ledgers, fleet.start, fleet.end, fleet.cfg())
    eu, us = model.members
    assert eu.integrity.ok is True and us.integrity.ok is False
    assert [m.cluster for m in model.failed] == ["prod-us"]
    assert model.report.header.integrity.ok is False
    assert {c.id: c.result for c in model.report.controls}["DA-6"] == "exceptions"
    page = render_html(model.report)
    ledger_rows = dict(re.findall(r'<tr id="ledger-([^"]+)">(.*?)</tr>', page, re.S))
    assert 'badge pass">verified' in ledger_rows["prod-eu"]
    assert 'badge fail">FAILED' in ledger_rows["prod-us"]
    assert "FAILED" not in ledger_rows["prod-eu"]
    out = tmp_path / "r.html"
    code, output = _cli(fleet, "--output-file", str(out), ledgers=ledgers)
    assert code == 1
    assert "prod-us" in output and "ledger tampered" in output
    assert "warning: prod-eu" not in output
    code, _ = _cli(fleet, "--format", "json", ledgers=ledgers)
    assert code == 1


def test_errors(fleet: Fleet) -> None:
    code, output = _cli(fleet, ledgers=[fleet.ledgers["prod-eu"], fleet.ledgers["prod-eu"]])
    assert code == 2 and "given twice" in output


@pytest.mark.slow
def test_fleet_page_renders_in_chromium(model: FleetModel, tmp_path: Path) -> None:
    if not available():
        pytest.fail("chromium not found: apt-get install -y chromium", pytrace=False)
    page = tmp_path / "fleet.html"
    page.write_text(render_html(model.report), encoding="utf-8")
    shots = Path(os.environ.get("DRIFT_AUDITOR_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    target = next(d.anchor for d in model.report.drifts if d.cluster == "prod-us")
    with Browser() as browser:
        browser.open(page, width=1280)
        assert browser.errors() == []
        assert browser.eval("document.querySelectorAll('#t-clusters tbody tr').length") == 2
        # A cluster-qualified anchor works as a URL fragment (the script opens its section).
        browser.eval(f"location.hash = {orjson.dumps(target).decode()}")
        assert browser.eval("document.querySelector(':target') && "
                            "document.querySelector(':target').id") == target
        browser.screenshot(shots / "fleet-desktop.png", height=2000)
        browser.section_screenshot("summary", shots / "fleet-summary.png")
        browser.section_screenshot("changes", shots / "fleet-changes.png")
        browser.open(page, width=390)
        assert browser.errors() == []
        assert browser.eval("document.documentElement.scrollWidth") <= 390
        browser.screenshot(shots / "fleet-phone.png", height=2400)


def test_a_period_without_runs_still_names_each_cluster(fleet: Fleet) -> None:
    # The reader's configuration is prod-eu's: without each ledger's own name, both clusters
    # would be counted as prod-eu and one cluster's silence would vanish into the other's.
    model = load_fleet(fleet.paths, datetime(2020, 1, 1, tzinfo=UTC),
                       datetime(2020, 4, 1, tzinfo=UTC), fleet.cfg())
    mon = model.report.monitoring
    assert [c.cluster for c in mon.clusters] == list(CLUSTERS)
    assert [(c.expected, c.covered) for c in mon.clusters] == [(91 * 24, 0)] * 2
    assert [g.cluster for g in mon.gaps] == list(CLUSTERS)
    assert all(g.reason.endswith("(before the ledger's first run of this cluster)")
               for g in mon.gaps)
    assert model.report.changes == [] and model.report.summary.compliance_score is None
    found = _anchors(render_html(model.report))
    assert set(found.links) <= set(found.ids)


def test_names_for_same_cluster_and_same_file_name(tmp_path: Path) -> None:
    from auditor.report.fleet import member_names

    a, b, c = tmp_path / "eu" / "ledger.db", tmp_path / "us" / "ledger.db", tmp_path / "x.db"
    assert member_names([a, b, c], [["prod"], ["prod"], ["dev cluster"]]) == [
        f"prod@{a}", f"prod@{b}", "dev-cluster"]
    assert member_names([a, c], [[], []]) == ["ledger", "x"]
    assert member_names([a, c], [["prod"], ["prod"]]) == ["prod@ledger.db", "prod@x.db"]
