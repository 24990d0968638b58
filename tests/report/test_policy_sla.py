"""The policy SLA (``reports.policy-sla-hours``): a critical or high failure that stayed
failing longer than the SLA at some moment of the period is an exception of DA-10, fixed by
the period's end or not; a medium one, an exempted one or a short one is not."""

from __future__ import annotations

from typing import Any

import pytest

from auditor.config import ReportsConfig
from auditor.errors import ConfigError
from auditor.report import controls, policies
from auditor.report.html import render_html
from auditor.report.model import Integrity, Monitoring

START, UNTIL = "2026-03-01T00:00:00Z", "2026-03-11T00:00:00Z"


def _t(at: str, name: str, status: str, severity: str = "high",
       exemption: Any = None, policy: str = "no-privileged") -> dict[str, Any]:
    return {"at": at, "policy": policy, "group": "apps", "kind": "Deployment",
            "namespace": "shop", "name": name, "status": status, "prev_status": "",
            "severity": severity, "messages": ["privileged container"],
            "exemption": exemption}


RUNS = [{"run_id": 9, "at": "2026-03-10T00:00:00Z", "score": 0.5,
         "counts": {"no-privileged": {"severity": "high", "pass": 1, "fail": 1}}}]
TRANSITIONS = [
    # Failing 5 days (from before the period), fixed inside it: a breach.
    _t("2026-02-27T00:00:00Z", "fixed-late", "fail"),
    _t("2026-03-03T00:00:00Z", "fixed-late", "pass"),
    # Failing 1 day, fixed: within the SLA.
    _t("2026-03-04T00:00:00Z", "quick", "fail"),
    _t("2026-03-05T00:00:00Z", "quick", "pass"),
    # Still failing at the end, for 4 days: a breach, and a failure at the end (counted once).
    _t("2026-03-07T00:00:00Z", "still", "fail"),
    # Medium, or exempted: never an SLA breach.
    _t("2026-03-01T00:00:00Z", "medium", "fail", severity="medium"),
    _t("2026-03-01T00:00:00Z", "exempt", "fail", exemption={"reason": "x"}),
    # Fixed long before the period: not this period's breach.
    _t("2026-01-01T00:00:00Z", "old", "fail"),
    _t("2026-01-10T00:00:00Z", "old", "pass"),
]


def test_breaches_of_the_policy_sla() -> None:
    pol = policies.build(RUNS, TRANSITIONS, start=START, until=UNTIL, sla_hours=72)
    assert [(f.object, f.since) for f in pol.sla_breaches] == [
        ("Deployment.apps shop/fixed-late", "2026-02-27T00:00:00Z"),
        ("Deployment.apps shop/still", "2026-03-07T00:00:00Z")]
    assert "failing until 2026-03-03T00:00:00Z" in pol.sla_breaches[0].messages
    assert policies.build(RUNS, TRANSITIONS, start=START, until=UNTIL,
                          sla_hours=24 * 30).sla_breaches == []


def test_a_breach_is_an_exception_of_da10_counted_once() -> None:
    pol = policies.build(RUNS, TRANSITIONS, start=START, until=UNTIL, sla_hours=72)
    # At the end: still, medium (exempt is exempted); beyond the SLA and fixed: fixed-late.
    assert {f.object.rsplit("/", 1)[1] for f in pol.failing} == {"still", "medium"}
    mon = Monitoring(60, 0, 0, 0, None, UNTIL, [], [], [])
    integ = Integrity(True, "ok", 1, 1, "h", 1, "h", UNTIL, False)
    da10 = next(c for c in controls.build([], [], mon, integ, [], 24, pol) if c.id == "DA-10")
    assert da10.exceptions == 3 and da10.result == "exceptions"
    assert "1 critical or high failure" not in da10.note and "2 critical or high failures" \
        in da10.note
    assert "#pol-sla-0" in [e.href for e in da10.evidence]
    assert "72 h" in da10.check


def test_policy_sla_config_default_and_validation() -> None:
    assert ReportsConfig().policy_sla_hours == 72
    with pytest.raises(ConfigError, match="policy-sla-hours"):
        ReportsConfig(policy_sla_hours=0)


def test_breaches_table_in_the_html(tmp_path: Any) -> None:
    from .test_responses import _report

    report = _report(tmp_path)
    pol = policies.build(RUNS, TRANSITIONS, start=START, until=UNTIL, sla_hours=72)
    report.policies = pol
    page = render_html(report)
    assert 'id="t-policy-sla"' in page and 'id="pol-sla-1"' in page
