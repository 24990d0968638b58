"""Exceptions per occurrence, monitoring gaps as exception intervals, and the matrix's wording
and criteria mappings, on ledgers written through the ledger API (see samplefixtures)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from auditor.config import Config, ReportsConfig
from auditor.engine.records import DriftItem, ObjectResult, ResourceKey, SourceInfo
from auditor.ledger import Ledger, Observation
from auditor.report import period
from auditor.report.controls import CRITERIA, MAPPINGS, MONITORED
from auditor.report.html import render_html
from auditor.report.model import Control, Report

from .samplefixtures import START, SampleLedger, build_sample_ledger


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> SampleLedger:
    return build_sample_ledger(tmp_path_factory.mktemp("occurrence"))


@pytest.fixture(scope="module")
def day(ledger: SampleLedger) -> Report:
    return period.build(ledger.path, ledger.start, ledger.end, ledger.cfg)


def _controls(report: Report) -> dict[str, Control]:
    return {c.id: c for c in report.controls}


def _hrefs(control: Control) -> set[str]:
    return {e.href for e in control.evidence}


def test_two_occurrences_of_one_drift_count_as_two(day: Report) -> None:
    web = [d for d in day.drifts if d.name == "web"]
    assert [(d.anchor, d.occurrence, d.state_at_end, d.sla_breach) for d in web] == [
        ("drift-1", 1, "resolved", True), ("drift-1-2", 2, "resolved", True)]
    controls = _controls(day)
    da3 = controls["DA-3"]
    # Both occurrences were resolved by the period's end: counted per object open at the end
    # they were no exception; per occurrence each is one.
    assert {"#drift-1", "#drift-1-2"} <= _hrefs(da3)
    # 2 unauthorized image changes + 2 occurrences + 1 monitoring gap.
    assert da3.exceptions == 5 and da3.result == "exceptions"
    assert "2 drift occurrences beyond the SLA" in da3.note
    for cid in ("DA-7", "DA-8"):
        assert {"#drift-1", "#drift-1-2"} <= _hrefs(controls[cid]), cid
    # DA-7: the web occurrences (breached) and the Role drift still open at the end; the
    # accepted Secret drift (within the SLA) is evaluated, no exception. Plus the gap.
    assert controls["DA-7"].exceptions == 3 + 1
    assert "#drift-2" in _hrefs(controls["DA-7"]) and "#drift-3" not in _hrefs(controls["DA-7"])


def test_a_monitoring_gap_is_an_exception_of_every_dependent_control(day: Report) -> None:
    assert [(g.start, g.missed) for g in day.monitoring.gaps] == [("2026-03-01T10:00:00Z", 3)]
    assert day.header.integrity.ok is True
    controls = _controls(day)
    for cid, control in controls.items():
        if control.result == "not-applicable":
            # Nothing of its kind happened (no policy evaluated): no gap makes it testable.
            assert control.note.startswith("Not applicable in period"), cid
            assert control.population == control.exceptions == 0, cid
        elif cid in MONITORED:
            assert "#gap-0" in _hrefs(control), cid
            assert "1 monitoring gap (3 scheduled runs missed)" in control.note, cid
            assert control.result == ("not-tested" if control.population == 0
                                      else "exceptions"), cid
        else:
            assert "monitoring gap" not in control.note, cid
    # The ledger verifies, yet the trail has an interval nothing was recorded in.
    assert (controls["DA-6"].exceptions, controls["DA-6"].result) == (1, "exceptions")
    assert controls["DA-2"].result == "not-tested"  # no boundary object: nothing concluded
    assert controls["DA-4"].exceptions == 3  # the missed runs themselves, as before


def test_without_a_gap_the_same_controls_find_none(ledger: SampleLedger) -> None:
    # 13:00 onwards: every hour has its run; the Role drift stays open, the rest is clean.
    report = period.build(ledger.path, ledger.start + timedelta(hours=13), ledger.end,
                          ledger.cfg)
    assert report.monitoring.gaps == []
    controls = _controls(report)
    assert controls["DA-6"].result == "pass" and controls["DA-6"].exceptions == 0
    assert controls["DA-5"].result == "pass"
    page = render_html(report)
    assert ">No exceptions found by the tool</span>" in page
    assert ">No exceptions</span>" not in page
    assert ">No gaps found by the tool</span>" in page


def _demo_like(path: Path) -> None:
    """What `make demo` leaves: the ledger's first two runs late in the day, one slot."""
    web = ResourceKey("apps", "Deployment", "shop", "web")

    def content(image: str) -> dict[str, object]:
        return {"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "namespace": "shop"},
                "spec": {"template": {"spec": {"containers": [{"name": "web",
                                                               "image": image}]}}}}

    with Ledger.open(path, tool_version="0.1.0", config_hash="d" * 64) as ledger:
        for minute, image, manager, category in ((5, "shop/web:1.0", "argocd-controller",
                                                  "gitops"),
                                                 (35, "shop/web:6.6", "kubectl-set", "human")):
            moment = START + timedelta(hours=10, minutes=minute)
            run = ledger.begin_run(cluster="demo", git_commits={"shop": "e" * 40},
                                   started_at=moment)
            body = content(image)
            digest = hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()
            run.observe(Observation(web, "apps/v1", str(minute), digest, body, manager,
                                    "Update", moment.strftime("%Y-%m-%dT%H:%M:%SZ"), category))
            items = () if category == "gitops" else (DriftItem(
                "spec.template.spec.containers[name=web].image", "changed", "shop/web:1.0",
                image, manager, "Update", "", category),)
            run.record(ObjectResult(web, "apps/v1", "drifted" if items else "in-sync", items,
                                    SourceInfo("apps/web.yaml", commit="e" * 40)))
            run.finish("complete", counts={"in-sync": 0 if items else 1,
                                           "drifted": len(items)})


def test_demo_day_is_measured_from_the_first_run_and_still_reads_its_exceptions(
        tmp_path: Path) -> None:
    # `make demo`'s report: --from today, the ledger's first run at 10:05. The ten hours
    # before it are not missed runs (the tool did not exist yet): coverage is measured from
    # the first run's slot, and the report says so. The human change is still an exception.
    path = tmp_path / "demo.db"
    _demo_like(path)
    cfg = Config(reports=ReportsConfig(schedule_minutes=60, remediation_sla_hours=24))
    report = period.build(path, START, datetime(2026, 3, 1, 11, tzinfo=UTC), cfg,
                          now=datetime(2026, 3, 1, 10, 50, tzinfo=UTC))
    mon = report.monitoring
    assert (mon.covered, mon.expected, mon.gaps) == (1, 1, [])
    assert mon.measured_from == mon.clusters[0].measured_from == "2026-03-01T10:05:00Z"
    controls = _controls(report)
    assert "coverage measured from the first run at 2026-03-01T10:05:00Z" in controls["DA-4"].note
    assert controls["DA-9"].result == controls["DA-7"].result == "exceptions"
    page = render_html(report)
    assert "coverage measured from the first run at" in page
    assert 'id="measured-from"' in page and "1/1" in page
    # A period wholly before the ledger keeps its slots, each a gap before the first run.
    early = period.build(path, START - timedelta(days=1), START, cfg,
                         now=datetime(2026, 3, 1, 10, 50, tzinfo=UTC))
    assert early.monitoring.measured_from == "" and early.monitoring.expected == 24
    assert early.monitoring.gaps[0].reason.endswith("(before the ledger's first run of this "
                                                    "cluster)")


def test_wording_and_criteria_mappings(day: Report) -> None:
    controls = _controls(day)
    assert controls["DA-6"].criteria == []
    assert "reliability of the evidence" in controls["DA-6"].check
    assert controls["DA-14"].criteria == ["CC6.2", "CC6.3"]
    assert controls["DA-1"].criteria == ["CC6.1"]
    # The Role's change and drift are RBAC evidence, not credentials evidence.
    assert "#drift-2" in _hrefs(controls["DA-14"]) and "#drift-2" not in _hrefs(controls["DA-1"])
    assert controls["DA-14"].population == 2 and controls["DA-1"].population == 2
    # The reviewed-software claim says how the reviewed images were pinned.
    assert "1 pinned by digest, 1 by tag only, 0 without a tag" in controls["DA-3"].note
    # Every criterion in the matrix is defined, and every control's mapping explained.
    terms = dict(day.definitions)
    assert {c.id for c in day.controls if c.id.startswith("DA-")} - set(MAPPINGS) <= {"DA-15"}
    for control in day.controls:
        if control.id not in MAPPINGS:
            continue  # DA-15 (the tool's own configuration) is defined beside its section
        assert all(cc in CRITERIA for cc in control.criteria), control.id
        entry = next(t for t in terms if t.startswith(f"Mapping {control.id} "))
        for cc in control.criteria:
            # DA-10's entry names the policies' criteria, CC7.1 in its text when none.
            assert (cc in entry or control.id == "DA-10") and cc in terms[entry], (control.id, cc)
    assert terms["Mapping DA-6 → none"].startswith("Not mapped to a criterion")
    assert "Monitoring gap as an exception" in terms
    assert "Drift exceptions per occurrence" in terms
    page = render_html(day)
    assert "none: supports the reliability of the evidence" in page
    assert ">No exceptions</span>" not in page
    assert "<dt>CC6.2</dt>" in page and "<dt>CC6.3</dt>" in page
