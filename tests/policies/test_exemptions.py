"""Exemptions: by annotation, by config entry with approver and expiry; expired ones fail
again and say so."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from auditor.config import PoliciesConfig, PolicyExemption
from auditor.errors import PolicyError
from auditor.policies import PolicyEngine, PolicyResult

from .examples import _set, _with, deployment

POLICIES = Path(__file__).resolve().parents[2] / "policies"
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
PRIVILEGED = _with(deployment(), _set("securityContext.privileged", True))


def _result(engine: PolicyEngine, obj: dict[str, Any]) -> PolicyResult:
    return next(r for r in engine.evaluate(obj) if r.policy == "disallow-privileged")


def _engine(*entries: PolicyExemption) -> PolicyEngine:
    return PolicyEngine.load(POLICIES, PoliciesConfig(exemptions=entries), now=NOW)


def test_annotation_exempts_that_policy_only() -> None:
    obj = _with(PRIVILEGED, lambda o: o["metadata"].setdefault("annotations", {}).update(
        {"exempt.policies.drift-auditor.io/disallow-privileged": "CNI agent needs it"}))
    obj["spec"]["template"]["spec"]["hostNetwork"] = True
    results = {r.policy: r for r in _engine().evaluate(obj)}
    exempted = results["disallow-privileged"]
    assert exempted.status == "skip"
    assert exempted.exemption is not None
    assert (exempted.exemption.source, exempted.exemption.justification) == (
        "annotation", "CNI agent needs it")
    assert results["disallow-host-network"].status == "fail"


def test_config_exemption_with_approver_and_expiry() -> None:
    entry = PolicyExemption(policy="disallow-privileged", kind="Deployment", namespace="shop",
                            name="web", justification="vendor agent, ticket SEC-12",
                            approver="alice@example.com", expires="2026-12-31")
    result = _result(_engine(entry), PRIVILEGED)
    assert result.status == "skip"
    ex = result.exemption
    assert ex is not None
    assert (ex.source, ex.approver, ex.expires, ex.expired) == (
        "config", "alice@example.com", "2026-12-31", False)
    other = _result(_engine(entry), _with(PRIVILEGED, lambda o: o["metadata"].update(
        name="api")))
    assert other.status == "fail"


def test_expired_exemption_fails_again_and_says_so() -> None:
    entry = PolicyExemption(policy="disallow-*", justification="migration window",
                            approver="bob", expires="2026-11-24")
    result = _result(_engine(entry), PRIVILEGED)
    assert result.status == "fail"
    assert result.exemption is not None and result.exemption.expired
    assert result.messages[0] == ("exemption expired on 2026-11-24 (approved by bob: "
                                  "migration window)")
    assert "privileged containers: web" in result.messages
    # The same entry on its last day still exempts (a date is valid through that day).
    still = _result(PolicyEngine.load(POLICIES, PoliciesConfig(exemptions=(entry,)),
                                      now=datetime(2026, 11, 24, 23, 0, tzinfo=UTC)),
                    PRIVILEGED)
    assert still.status == "skip"


def test_passing_results_are_not_touched_by_exemptions() -> None:
    entry = PolicyExemption(policy="*", justification="j", approver="a", expires="2030-01-01")
    assert all(r.status == "pass" and r.exemption is None
               for r in _engine(entry).evaluate(deployment())
               if r.policy != "require-networkpolicy")


@pytest.mark.parametrize(("entry", "message"), [
    (PolicyExemption(policy="p", approver="a", expires="2030-01-01"), "justification is required"),
    (PolicyExemption(policy="p", justification="j", expires="2030-01-01"), "approver is required"),
    (PolicyExemption(policy="p", justification="j", approver="a"), "expires is required"),
    (PolicyExemption(policy="p", justification="j", approver="a", expires="soon"),
     "expected an ISO 8601 date"),
])
def test_incomplete_exemptions_are_rejected(entry: PolicyExemption, message: str) -> None:
    with pytest.raises(PolicyError, match=message) as err:
        _engine(entry)
    assert "policies.exemptions[0] (policy 'p')" in str(err.value)


def test_exemptions_load_from_the_config_file(tmp_path: Path) -> None:
    from auditor.config import load

    path = tmp_path / "drift-auditor.yaml"
    path.write_text("policies:\n  exemptions:\n  - policy: disallow-privileged\n"
                    "    namespace: shop\n    justification: j\n    approver: a\n"
                    "    expires: '2027-01-01'\n  disabled: [require-replicas-ha]\n")
    cfg = load(path)
    assert cfg.policies.exemptions[0].namespace == "shop"
    engine = PolicyEngine.load(POLICIES, cfg.policies, now=NOW)
    assert "require-replicas-ha" not in {p.name for p in engine.policies}
    assert _result(engine, PRIVILEGED).status == "skip"
