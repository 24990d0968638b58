"""`drift-auditor report` on ledgers built by real runs (sandbox, kubectl 1.35, Git) and by the
ledger API (a period with a monitoring gap): content of the HTML, the change population CSV
(round trip, SHA-256 printed in the report, reproducible bytes), JSON, an empty period, and
Secret values never reaching any output."""

from __future__ import annotations

import csv
import hashlib
import io
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from auditor import config as config_mod
from auditor.cli.common import Context
from auditor.cli.report import parse_bound, report_cmd
from auditor.config import Config, ReportsConfig
from auditor.report import export, period
from auditor.report.fields import changed_paths
from auditor.report.html import render_html
from bench.report_bench import build_ledger

from .conftest import SECRET_LIVE, SECRET_PLAIN, RealLedger

pytestmark = pytest.mark.kubectl


def _cli(real: RealLedger, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(report_cmd, ["--ledger", str(real.path), *args],
                                obj=Context(str(real.config)))
    return result.exit_code, result.output


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture(scope="module")
def html_report(real_ledger: RealLedger) -> tuple[Path, Path]:
    out = real_ledger.tmp / "reports" / "today.html"
    code, output = _cli(real_ledger, "--from", _stamp(real_ledger.start),
                        "--to", _stamp(real_ledger.end), "--output-file", str(out))
    assert code == 0, output
    return out, out.with_suffix(".changes.csv")


def test_html_header_names_scope_sources_and_integrity(real_ledger: RealLedger,
                                                       html_report: tuple[Path, Path]) -> None:
    page = html_report[0].read_text()
    cfg = config_mod.load(real_ledger.config)
    assert "test-cluster" in page
    assert ">shop</strong>" in page or "shop" in page
    assert f"{_stamp(real_ledger.start)}</time>" in page
    assert cfg.digest() in page
    head = re.search(r"\b([0-9a-f]{40})\b", (real_ledger.repo / ".git" / "refs" / "heads" /
                                             "main").read_text()).group(1)  # type: ignore[union-attr]
    assert head[:10] in page and "branch <code>main</code>" in page
    assert "badge pass\">verified</span> ledger OK" in page
    assert re.search(r"event #\d+ at \d{4}-\d\d-\d\dT", page)
    # Self-contained: no external reference of any kind.
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", page)
    assert "default-src 'none'" in page


def test_csv_sha256_in_the_report_is_the_files(html_report: tuple[Path, Path]) -> None:
    page, csv_path = html_report[0].read_text(), html_report[1]
    digest = hashlib.sha256(csv_path.read_bytes()).hexdigest()
    assert f'id="csv-sha256">{digest}<' in page
    assert csv_path.name in page


def test_change_population_rows(real_ledger: RealLedger) -> None:
    cfg = config_mod.load(real_ledger.config)
    report = period.build(real_ledger.path, real_ledger.start, real_ledger.end, cfg)
    by_actor = {(c.kind, c.manager): c for c in report.changes}
    image = by_actor[("Deployment", "kubectl-set")]
    assert image.authorization == "unauthorized"
    assert image.fields == ["spec.template.spec.containers[name=web].image"]
    assert image.category == "human" and image.identity_source == "managedFields"
    assert image.remediation.startswith(f"drift {image.drift_id} resolved (fixed-live)")
    assert image.time_to_remediate_s is not None and image.time_to_remediate_s >= 0
    # No approval shown beside an unauthorized change.
    assert image.pr is None and image.approvers == []
    fix = by_actor[("Deployment", "argocd-controller")]
    assert fix.authorization == "authorized" and fix.pr == 42
    assert fix.approvers == ["Dana Ops <dana@example.com>"]
    assert fix.remediation == f"remediates drift {image.drift_id} (fixed-live)"
    assert [c.seq for c in report.changes] == sorted(c.seq for c in report.changes)
    # Summary figures re-performed from the rows.
    s = report.summary
    assert s.changes == len(report.changes)
    assert s.unauthorized == sum(c.authorization == "unauthorized" for c in report.changes) == 2
    assert s.opened_in_period == 2 and s.resolved_in_period == 2 and s.open_drifts_at_end == 0
    ttrs = [d.time_to_remediate_s for d in report.drifts if d.how != "superseded"]
    assert s.mttr_s == round(sum(t or 0 for t in ttrs) / len(ttrs))
    runs = report.monitoring.runs
    assert s.score_in_sync == sum(r.in_sync for r in runs if r.status == "complete")
    assert s.score_checked == sum(r.in_sync + r.drifted + r.missing + r.orphan for r in runs)


def test_drifts_acceptance_and_controls(real_ledger: RealLedger) -> None:
    cfg = config_mod.load(real_ledger.config)
    report = period.build(real_ledger.path, real_ledger.start, real_ledger.end, cfg)
    secret = next(d for d in report.drifts if d.kind == "Secret")
    assert secret.accepted_by == "Dana Ops" and secret.accepted_reason
    assert secret.accepted_until > secret.accepted_at
    assert [a.by for a in report.acceptances] == ["Dana Ops"]
    assert all(d.state_at_end == "resolved" and d.how == "fixed-live" for d in report.drifts)
    criteria = {cc for c in report.controls for cc in c.criteria}
    assert {"CC6.1", "CC6.6", "CC6.8", "CC7.1", "CC7.2", "CC7.3", "CC7.4", "CC8.1"} <= criteria
    results = {c.id: c for c in report.controls}
    # Two unauthorized changes: change management has exceptions, and so does the unreviewed
    # bootstrap commit; the ledger verifies.
    assert results["DA-9"].result == "exceptions" and results["DA-9"].exceptions == 3
    assert results["DA-6"].result == "pass"
    assert any(e.href == f"#chg-{c.id}" for c in report.changes
               if c.authorization == "unauthorized" for e in results["DA-9"].evidence)
    page = render_html(report)
    for control in report.controls:
        for evidence in control.evidence:
            assert f'id="{evidence.href[1:]}"' in page, evidence


def test_secret_values_never_leave(real_ledger: RealLedger, html_report: tuple[Path, Path]) -> None:
    cfg = config_mod.load(real_ledger.config)
    report = period.build(real_ledger.path, real_ledger.start, real_ledger.end, cfg)
    outputs = [html_report[0].read_text(), html_report[1].read_text(),
               export.to_json(report).decode(), export.to_csv(report, "drifts")]
    for text in outputs:
        assert SECRET_PLAIN not in text and SECRET_LIVE not in text
        assert "hmac-sha256:" not in text  # not even the keyed hashes
    assert "data.token" in outputs[1]  # the key name is the evidence


def test_csv_round_trip_and_reproducible(real_ledger: RealLedger,
                                         html_report: tuple[Path, Path]) -> None:
    cfg = config_mod.load(real_ledger.config)
    report = period.build(real_ledger.path, real_ledger.start, real_ledger.end, cfg)
    text = html_report[1].read_text()
    assert text == export.changes_csv(report.changes)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == len(report.changes)
    for row, change in zip(rows, report.changes, strict=True):
        assert list(row) == [name for name, _ in export.CHANGE_COLUMNS]
        for name, get in export.CHANGE_COLUMNS:
            assert row[name] == export.cell(get(change)), name
        assert row["fields"].split(";") == (change.fields or [""])
        assert int(row["change_id"]) == change.id
    # Same ledger, same period → the same bytes (so the same SHA-256), whenever generated.
    again = period.build(real_ledger.path, real_ledger.start, real_ledger.end, cfg,
                         now=datetime.now(UTC) + timedelta(days=30))
    assert export.changes_csv(again.changes) == text
    assert again.header.changes_csv_sha256 == report.header.changes_csv_sha256


def test_json_and_csv_formats_from_the_command(real_ledger: RealLedger) -> None:
    code, out = _cli(real_ledger, "--from", _stamp(real_ledger.start), "--to",
                     _stamp(real_ledger.end), "--format", "json")
    assert code == 0
    doc = orjson.loads(out[out.index("{"):])
    assert doc["summary"]["changes"] == len(doc["changes"]) == 4
    assert {d[0] for d in doc["definitions"]} >= {"In-sync ratio", "MTTR", "Time to detect",
                                                  "Authorized / unauthorized"}
    # The JSON keeps the earlier key beside the new one: the same figure.
    assert doc["summary"]["in_sync_ratio"] == doc["summary"]["compliance_score"]
    code, out = _cli(real_ledger, "--from", _stamp(real_ledger.start), "--to",
                     _stamp(real_ledger.end), "--format", "csv", "--table", "runs")
    assert code == 0
    runs = list(csv.DictReader(io.StringIO(out)))
    assert [r["status"] for r in runs] == ["complete"] * 3


def test_empty_period(real_ledger: RealLedger) -> None:
    cfg = config_mod.load(real_ledger.config)
    start, end = datetime(2020, 1, 1, tzinfo=UTC), datetime(2020, 4, 1, tzinfo=UTC)
    report = period.build(real_ledger.path, start, end, cfg)
    assert report.changes == [] and report.drifts == [] and report.monitoring.runs == []
    assert report.summary.compliance_score is None and report.summary.mttr_s is None
    assert report.monitoring.expected == 91 * 24 and report.monitoring.covered == 0
    assert report.monitoring.gaps[0].reason.endswith("(before the ledger's first run of this cluster)")
    assert {c.id: c.result for c in report.controls}["DA-9"] == "not-tested"
    page = render_html(report)
    assert "No change was recorded in this period." in page
    assert "No policy results in this period." in page
    assert export.changes_csv(report.changes).count("\n") == 1  # the header only
    orjson.loads(export.to_json(report))


@pytest.fixture(scope="module")
def gap_ledger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("gap") / "ledger.db"
    build_ledger(path, start=datetime(2026, 3, 1, tzinfo=UTC), end=datetime(2026, 3, 3, tzinfo=UTC),
                 changes_per_run=3, objects=40,
                 outage=(datetime(2026, 3, 1, 10, tzinfo=UTC), datetime(2026, 3, 1, 13, tzinfo=UTC)),
                 failed_at=datetime(2026, 3, 2, 5, tzinfo=UTC))
    return path


def test_monitoring_gap(gap_ledger: Path) -> None:
    cfg = Config(reports=ReportsConfig(schedule_minutes=60))
    report = period.build(gap_ledger, datetime(2026, 3, 1, tzinfo=UTC),
                          datetime(2026, 3, 3, tzinfo=UTC), cfg,
                          now=datetime(2026, 3, 10, tzinfo=UTC))
    mon = report.monitoring
    assert (mon.expected, mon.actual, mon.covered) == (48, 45, 44)
    assert [(g.start, g.end, g.missed, g.reason) for g in mon.gaps] == [
        ("2026-03-01T10:00:00Z", "2026-03-01T13:00:00Z", 3, "no run"),
        ("2026-03-02T05:00:00Z", "2026-03-02T06:00:00Z", 1, "run failed")]
    control = {c.id: c for c in report.controls}["DA-4"]
    assert control.result == "exceptions" and control.exceptions == 4
    page = render_html(report)
    assert 'id="gap-0"' in page and 'id="gap-1"' in page
    assert "2026-03-01T10:00:00Z" in page
    # The chart's buckets agree with the table.
    assert sum(b.expected_runs for b in report.buckets) == 48
    assert sum(b.covered_runs for b in report.buckets) == 44


def test_period_still_running_does_not_blame_the_future(gap_ledger: Path) -> None:
    cfg = Config(reports=ReportsConfig(schedule_minutes=60))
    report = period.build(gap_ledger, datetime(2026, 3, 2, tzinfo=UTC),
                          datetime(2026, 3, 5, tzinfo=UTC), cfg,
                          now=datetime(2026, 3, 2, 12, 30, tzinfo=UTC))
    # 12 whole hours up to 12:30 plus the 12:00 slot its run already covered.
    assert report.monitoring.expected == 13
    assert [g.start for g in report.monitoring.gaps] == ["2026-03-02T05:00:00Z"]


def test_bounds_and_errors(real_ledger: RealLedger) -> None:
    assert parse_bound("2026-09-30", end=True) == datetime(2026, 10, 1, tzinfo=UTC)
    assert parse_bound("2026-07-01", end=False) == datetime(2026, 7, 1, tzinfo=UTC)
    assert parse_bound("2026-07-01T02:00:00+02:00", end=False) == datetime(2026, 7, 1, tzinfo=UTC)
    code, out = _cli(real_ledger, "--from", "2026-07-02", "--to", "2026-07-01")
    assert code == 2 and "--to must be after --from" in out
    code, out = _cli(real_ledger, "--from", "yesterday")
    assert code == 2 and "not a date" in out


def test_changed_paths() -> None:
    old = {"metadata": {"labels": {"app.kubernetes.io/name": "a"}, "resourceVersion": "1"},
           "spec": {"containers": [{"name": "web", "image": "1"}, {"name": "side", "image": "x"}]}}
    new = {"metadata": {"labels": {"app.kubernetes.io/name": "b"}, "resourceVersion": "2"},
           "spec": {"containers": [{"name": "side", "image": "x"}, {"name": "web", "image": "2"}]}}
    assert changed_paths(old, new) == ['metadata.labels["app.kubernetes.io/name"]',
                                       "spec.containers[name=web].image"]
    assert changed_paths(None, new) == []


def test_policy_section_from_real_policy_runs(real_ledger: RealLedger) -> None:
    cfg = config_mod.load(real_ledger.config)
    report = period.build(real_ledger.path, real_ledger.start, real_ledger.end, cfg)
    pol = report.policies
    assert pol.evaluated_runs == 3 and pol.score_end is not None
    assert pol.as_of_run == report.monitoring.runs[-1].id
    failing = {(f.policy, f.object) for f in pol.failing}
    # The shop's namespace has no NetworkPolicy: a real finding of the shipped policy set.
    assert ("require-networkpolicy", "Namespace shop") in failing
    by_policy = {r.policy: r for r in pol.rows}
    assert by_policy["require-networkpolicy"].failed >= 1
    assert "CC6.6" in by_policy["require-networkpolicy"].controls
    # The end state replayed from transitions agrees with the last run's counts.
    for row in pol.rows:
        assert row.failed == sum(1 for f in pol.failing if f.policy == row.policy), row.policy
    control = {c.id: c for c in report.controls}["DA-10"]
    assert control.exceptions == len(pol.failing) and control.result == "exceptions"
    page = render_html(report)
    assert "No policy results in this period." not in page
    assert 'id="pol-0"' in page and "Namespace without NetworkPolicy" in page


def test_no_policy_results_in_a_ledger_without_them(gap_ledger: Path) -> None:
    report = period.build(gap_ledger, datetime(2026, 3, 1, tzinfo=UTC),
                          datetime(2026, 3, 3, tzinfo=UTC), Config(),
                          now=datetime(2026, 3, 10, tzinfo=UTC))
    assert report.policies.evaluated_runs == 0 and report.policies.failing == []
    da10 = {c.id: c for c in report.controls}["DA-10"]
    assert (da10.result, da10.population) == ("not-applicable", 0)
    page = render_html(report)
    assert "No policy results in this period." in page
    assert 'id="ctl-DA-10"' in page and "Not applicable in period" in page


def test_tampered_ledger_is_called_out(real_ledger: RealLedger, tmp_path: Path) -> None:
    """An auditor re-performing the report on an edited ledger must see it: the header says
    FAILED, the integrity control has an exception and the command exits 1."""
    import shutil
    import sqlite3

    copy = tmp_path / "ledger.db"
    shutil.copy(real_ledger.path, copy)
    conn = sqlite3.connect(copy, isolation_level=None)
    conn.execute("DROP TRIGGER changes_no_update")
    # Make the out-of-band image change look like a GitOps sync.
    conn.execute("UPDATE changes SET manager = 'argocd-controller', category = 'gitops', "
                 "authorized = 1 WHERE manager = 'kubectl-set'")
    conn.close()
    cfg = config_mod.load(real_ledger.config)
    report = period.build(copy, real_ledger.start, real_ledger.end, cfg)
    assert report.header.integrity.ok is False
    assert "differs from its chained event" in report.header.integrity.message
    assert {c.id: c.result for c in report.controls}["DA-6"] == "exceptions"
    assert "badge fail\">FAILED</span>" in render_html(report)
    result = CliRunner().invoke(report_cmd, [
        "--ledger", str(copy), "--from", _stamp(real_ledger.start), "--to",
        _stamp(real_ledger.end), "--output-file", str(tmp_path / "r.html")], obj=Context(str(real_ledger.config)))
    assert result.exit_code == 1 and "ledger tampered" in result.output
    skipped = CliRunner().invoke(report_cmd, [
        "--ledger", str(copy), "--from", _stamp(real_ledger.start), "--to",
        _stamp(real_ledger.end), "--output-file", str(tmp_path / "s.html"), "--skip-verify"],
        obj=Context(str(real_ledger.config)))
    assert skipped.exit_code == 0
    assert "not verified (--skip-verify)" in (tmp_path / "s.html").read_text()


def test_charts_are_well_formed_svg() -> None:
    import xml.etree.ElementTree as ET

    from auditor.report import charts

    ns = "{http://www.w3.org/2000/svg}"
    line = ET.fromstring(charts.line("Score <&>", ["a", "b", "c", "d"], [90.0, None, 80.0, 85.5]))
    assert line.find(f"{ns}title").text == "Score <&>"  # type: ignore[union-attr]
    assert "lowest 80.0%" in line.get("aria-label", "")
    # The gap (None) splits the line: a lone point, then a two-point polyline.
    assert len(line.findall(f"{ns}circle")) == 1 and len(line.findall(f"{ns}polyline")) == 1
    bars = ET.fromstring(charts.stacked("Changes", ["x", "y"], [("ok", [2, 0]), ("bad", [1, 3])]))
    assert len([r for r in bars.findall(f"{ns}rect") if r.find(f"{ns}title") is not None]) == 3
    assert bars.get("aria-label") == "Changes: ok 2, bad 4"
