"""Policy files: shapes accepted, bad ones named precisely while the others still run,
coexistence with DriftIgnore documents, matching, admission-only policies."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from auditor.cli import main
from auditor.cli.policies import COMMANDS
from auditor.engine.ignore import load_policies as load_ignores
from auditor.policies import PolicyEngine, evaluate_objects

from .examples import deployment, namespace

GOOD = """\
apiVersion: drift-auditor.io/v1
kind: CompliancePolicy
metadata: {name: %(name)s}
spec:
  severity: high
  category: Test
  controls: [CC6.1]
  description: Replicas are at least two.
  remediation: Scale up.
  matchConstraints:
    resourceRules:
    - apiGroups: [apps]
      resources: [deployments]
  validations:
  - expression: "object.spec.replicas >= 2"
    messageExpression: "'replicas: ' + string(object.spec.replicas)"
"""


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def _policy(name: str, spec_extra: str = "", validation: str = "object.spec.replicas >= 2",
            rules: str = "- apiGroups: [apps]\n      resources: [deployments]") -> str:
    return (f"apiVersion: drift-auditor.io/v1\nkind: CompliancePolicy\nmetadata: {{name: {name}}}\n"
            f"spec:\n  severity: medium\n  category: Test\n  controls: [CC7.1]\n"
            f"  description: d\n  remediation: r\n"
            f"  matchConstraints:\n    resourceRules:\n    {rules}\n{spec_extra}"
            f"  validations:\n  - expression: {validation!r}\n    message: failed\n")


@pytest.fixture
def registered() -> Any:
    for command in COMMANDS:
        main.add_command(command)
    return main


def test_bad_policies_are_named_and_the_others_still_run(tmp_path: Path) -> None:
    _write(tmp_path, "good.yaml", GOOD % {"name": "replicas"})
    _write(tmp_path, "broken-yaml.yaml", "apiVersion: [unclosed\n")
    _write(tmp_path, "bad-cel.yaml", _policy("bad-cel", validation="object.spec.+"))
    _write(tmp_path, "bad-fn.yaml", _policy("bad-fn", validation="object.nope().x"))
    _write(tmp_path, "bad-key.yaml", _policy("bad-key").replace("validations:", "validatons:"))
    _write(tmp_path, "bad-severity.yaml", _policy("bad-sev").replace("medium", "urgent"))
    _write(tmp_path, "dup.yaml", GOOD % {"name": "replicas"})
    engine = PolicyEngine.load(tmp_path)
    assert [p.name for p in engine.policies] == ["replicas"]
    problems = {Path(p.file).name: (p.policy, p.message) for p in engine.problems}
    assert problems["broken-yaml.yaml"][1].startswith("line ")
    assert "invalid YAML" in problems["broken-yaml.yaml"][1]
    assert problems["bad-cel.yaml"][0] == "bad-cel"
    assert "spec.validations[0].expression: does not compile" in problems["bad-cel.yaml"][1]
    assert problems["bad-fn.yaml"] == ("bad-fn", "spec.validations[0].expression: unknown "
                                                 "function nope")
    assert problems["bad-key.yaml"][1].startswith("spec.validatons: unknown key")
    assert "spec.severity: expected one of critical, high, medium, low" in \
        problems["bad-severity.yaml"][1]
    # dup.yaml sorts first, so good.yaml is the duplicate; either way one is reported.
    assert problems["good.yaml"] == ("replicas", f"duplicate policy name (also in "
                                                 f"{tmp_path / 'dup.yaml'})")
    # The good policy still evaluates.
    obj = deployment()
    obj["spec"]["replicas"] = 1
    (result,) = engine.evaluate(obj)
    assert (result.policy, result.status, result.messages) == ("replicas", "fail",
                                                               ("replicas: 1",))


def test_drift_ignore_and_policies_share_a_folder(tmp_path: Path) -> None:
    _write(tmp_path, "both.yaml", GOOD % {"name": "replicas"} + """\
---
apiVersion: drift-auditor.io/v1
kind: DriftIgnore
metadata: {name: hpa}
spec:
  match: {kind: Deployment}
  paths: [spec.replicas]
""")
    engine = PolicyEngine.load(tmp_path)
    assert [p.name for p in engine.policies] == ["replicas"] and engine.problems == []
    (rule,) = load_ignores(tmp_path)
    assert rule.paths == ("spec.replicas",)


def test_admission_only_policies_are_skipped_not_failed(tmp_path: Path) -> None:
    _write(tmp_path, "p.yaml", _policy("who", validation="request.userInfo.username != 'x'"))
    engine = PolicyEngine.load(tmp_path)
    (result,) = engine.evaluate(deployment())
    assert result.status == "skip"
    assert "request" in result.messages[0] and "admission time" in result.messages[0]


def test_match_constraints_selectors_conditions_and_params(tmp_path: Path) -> None:
    extra = textwrap.indent(textwrap.dedent("""\
        matchConditions:
        - name: not-canary
          expression: "!object.metadata.name.endsWith('-canary')"
        params: {minimum: 3}
        """), "  ")
    text = _policy("ha", extra, validation="object.spec.replicas >= params.minimum")
    text = text.replace("resources: [deployments]\n", textwrap.dedent("""\
        resources: [deployments]
            namespaceSelector:
              matchExpressions: [{key: env, operator: In, values: [prod]}]
            objectSelector:
              matchLabels: {owner: team-shop}
            excludeNamespaces: ["scratch-*"]
        """))
    _write(tmp_path, "p.yaml", text)
    engine = PolicyEngine.load(tmp_path)
    assert engine.problems == []
    prod = namespace("shop")
    prod["metadata"]["labels"]["env"] = "prod"
    dev = namespace("dev")
    scratch = namespace("scratch-1")
    scratch["metadata"]["labels"]["env"] = "prod"
    objs = [prod, dev, scratch, deployment("shop", "web"), deployment("dev", "web"),
            deployment("scratch-1", "web"), deployment("shop", "web-canary")]
    unlabelled = deployment("shop", "other")
    del unlabelled["metadata"]["labels"]["owner"]
    results = evaluate_objects(engine, [*objs, unlabelled]).results
    # Only prod-labelled, not excluded, owner-labelled, not canary; 3 replicas >= 3.
    assert [(r.key.namespace, r.key.name, r.status) for r in results] == [
        ("shop", "web", "pass")]


def test_namespace_object_and_inventory_in_expressions(tmp_path: Path) -> None:
    _write(tmp_path, "p.yaml", _policy(
        "ns-label", validation="namespaceObject.metadata.labels.owner == "
                               "object.metadata.labels.owner"))
    engine = PolicyEngine.load(tmp_path)
    other = namespace("shop")
    other["metadata"]["labels"]["owner"] = "someone-else"
    # The deployment comes before its namespace: it waits for it.
    results = evaluate_objects(engine, [deployment(), other]).results
    assert [(r.key.name, r.status) for r in results] == [("web", "fail")]


def test_validate_command(tmp_path: Path, registered: Any) -> None:
    runner = CliRunner()
    _write(tmp_path, "good.yaml", GOOD % {"name": "replicas"})
    ok = runner.invoke(registered, ["policies", "validate", str(tmp_path)])
    assert ok.exit_code == 0 and "1 policies OK, 0 with errors" in ok.output
    _write(tmp_path, "bad.yaml", _policy("bad", validation="object.spec.("))
    bad = runner.invoke(registered, ["policies", "validate", str(tmp_path)])
    assert bad.exit_code == 2
    assert f"{tmp_path / 'bad.yaml'}: policy bad: spec.validations[0].expression: " \
           "does not compile" in bad.output
    shipped = runner.invoke(registered, ["policies", "validate",
                                         str(Path(__file__).parents[2] / "policies")])
    assert shipped.exit_code == 0, shipped.output


def test_variables_that_cannot_be_inlined_are_evaluated_eagerly(tmp_path: Path) -> None:
    extra = textwrap.indent(textwrap.dedent("""\
        variables:
        - name: spec
          expression: object.spec
        - name: replicas
          expression: "has(variables.spec.replicas) ? variables.spec.replicas : 1"
        """), "  ")
    _write(tmp_path, "p.yaml", _policy("eager", extra,
                                       validation="has(variables.spec) && variables.replicas >= 2"))
    _write(tmp_path, "q.yaml", _policy("inlined", extra, validation="variables.replicas >= 2"))
    engine = PolicyEngine.load(tmp_path)
    assert engine.problems == []
    eager = next(c for c in engine.compiled if c.policy.name == "eager")
    inlined = next(c for c in engine.compiled if c.policy.name == "inlined")
    assert eager.variables and not inlined.variables
    one = deployment()
    one["spec"]["replicas"] = 1
    for obj, expected in ((deployment(), "pass"), (one, "fail")):
        assert {r.policy: r.status for r in engine.evaluate(obj)} == {
            "eager": expected, "inlined": expected}


def test_a_failing_variable_is_an_error_result(tmp_path: Path) -> None:
    extra = "  variables:\n  - name: x\n    expression: object.spec.nothing.here\n"
    _write(tmp_path, "p.yaml", _policy("bad-var", extra,
                                       validation="has(variables.x) || variables.x == 1"))
    (result,) = PolicyEngine.load(tmp_path).evaluate(deployment())
    assert result.status == "error"
    assert result.messages == ("variable x: no such key: nothing",)
