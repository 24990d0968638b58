"""Every shipped policy: it loads and compiles, carries its metadata, accepts its passing
examples and catches its failing ones with a message that says what is wrong."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from auditor.policies import PolicyEngine, evaluate_objects

from .examples import EXAMPLES, deployment, namespace, network_policy

POLICIES = Path(__file__).resolve().parents[2] / "policies"


@pytest.fixture(scope="module")
def engine() -> PolicyEngine:
    return PolicyEngine.load(POLICIES)


def _results(engine: PolicyEngine, obj: dict[str, Any], policy: str,
             covered: bool = True) -> list[Any]:
    # A passing namespace needs its NetworkPolicy beside it, else coverage fails for it.
    extra = [network_policy(obj["metadata"]["name"])] \
        if obj["kind"] == "Namespace" and covered else []
    evaluation = evaluate_objects(engine, [obj, *extra])
    return [r for r in evaluation.results if r.policy == policy and r.key.kind == obj["kind"]]


def test_the_pack_loads_clean_with_enough_policies(engine: PolicyEngine) -> None:
    assert engine.problems == []
    assert len(engine.compiled) >= 25
    for policy in engine.policies:
        assert policy.severity in ("critical", "high", "medium", "low")
        assert policy.description and policy.remediation and policy.category
        assert policy.controls and all(re.fullmatch(r"(CC|A|C|PI|P)\d+\.\d+", c)
                                       for c in policy.controls), policy.name


def test_every_shipped_policy_has_examples(engine: PolicyEngine) -> None:
    assert {p.name for p in engine.policies} == set(EXAMPLES)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_passing_examples_pass(engine: PolicyEngine, name: str) -> None:
    good, _bad, _fragment = EXAMPLES[name]
    statuses = []
    for obj in good:
        results = _results(engine, obj, name)
        # Not applicable (no result) is acceptable for objects outside the policy's scope...
        assert all(r.status == "pass" for r in results), [r.messages for r in results]
        statuses.extend(r.status for r in results)
    # ...but at least one example really passes.
    assert "pass" in statuses


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_failing_examples_fail_with_a_message(engine: PolicyEngine, name: str) -> None:
    _good, bad, fragment = EXAMPLES[name]
    for obj in bad:
        results = _results(engine, obj, name, covered=False)
        assert [r.status for r in results] == ["fail"], [r.messages for r in results]
        assert fragment in results[0].message
        assert results[0].severity == next(p.severity for p in engine.policies
                                           if p.name == name)


def test_the_hardened_set_passes_every_policy(engine: PolicyEngine) -> None:
    evaluation = evaluate_objects(engine, [namespace(), network_policy(), deployment()])
    assert evaluation.results
    assert [(r.policy, r.messages) for r in evaluation.results if r.status != "pass"] == []


def test_credential_values_never_appear_in_messages(engine: PolicyEngine) -> None:
    _good, bad, _ = EXAMPLES["disallow-credentials-in-env-values"]
    results = evaluate_objects(engine, bad).results
    assert any(r.policy == "disallow-credentials-in-env-values" and r.status == "fail"
               for r in results)
    assert all("s3cr3t-value" not in m for r in results for m in r.messages)
