"""`policies check` over files, a snapshot and the sandbox cluster, and the shapes of its
outputs: text, JSON, SARIF 2.1.0 and wgpolicyk8s.io/v1alpha2 PolicyReports."""

from __future__ import annotations

import json
import pathlib
import subprocess
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from click.testing import CliRunner

from auditor.cli import main
from auditor.cli.policies import COMMANDS
from auditor.policies import PolicyEngine, evaluate_objects
from auditor.policies import outputs as out
from auditor.sandbox import Sandbox

from .examples import _set, _with, deployment, namespace, network_policy, service

POLICIES = str(Path(__file__).resolve().parents[2] / "policies")
SECRET_VALUE = "hunter2-do-not-print"


@pytest.fixture(autouse=True)
def _registered() -> None:
    for command in COMMANDS:
        main.add_command(command)


def _manifests() -> list[dict[str, Any]]:
    bad = _with(deployment(name="api"), _set("securityContext.privileged", True))
    bad = _with(bad, _set("env", [{"name": "DB_PASSWORD", "value": SECRET_VALUE}]))
    return [namespace(), network_policy(), deployment(), bad, service("LoadBalancer"),
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
             "metadata": {"name": "ops-admin"},
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                         "name": "cluster-admin"},
             "subjects": [{"kind": "Group", "name": "ops"}]}]


def _repo(tmp_path: Path) -> Path:
    """A Git repository holding the manifests, as a CI job checks it out."""
    repo = tmp_path / "repo"
    (repo / "apps").mkdir(parents=True)
    (repo / "apps" / "shop.yaml").write_text(yaml.safe_dump_all(_manifests()))
    for args in (["init", "-q"], ["add", "."],
                 ["-c", "user.name=Dev", "-c", "user.email=dev@example.com", "commit", "-qm",
                  "shop"]):
        subprocess.run(["git", *args], cwd=repo, check=True)
    return repo


def _check(*args: str) -> Any:
    return CliRunner().invoke(main, ["policies", "check", "--policies", POLICIES, *args])


def test_check_git_manifests_text_and_exit_status(tmp_path: Path) -> None:
    result = _check("--desired", str(_repo(tmp_path)))
    assert result.exit_code == 1, result.output
    assert "CRITICAL disallow-privileged  Deployment.apps shop/api" in result.output
    assert "privileged containers: web" in result.output
    assert "CRITICAL disallow-cluster-admin-binding  ClusterRoleBinding.rbac.authorization.k8s.io ops-admin" in result.output
    assert "web/DB_PASSWORD" in result.output and SECRET_VALUE not in result.output
    assert "compliance score" in result.output
    # Only critical failures break this build: there are some, so still 1.
    assert _check("--desired", str(_repo(tmp_path / "b")), "--fail-on", "critical").exit_code == 1
    clean = tmp_path / "clean"
    clean.mkdir()
    (clean / "ok.yaml").write_text(yaml.safe_dump_all([namespace(), network_policy(),
                                                       deployment()]))
    assert _check("--desired", str(clean)).exit_code == 0


def test_sarif_shape(tmp_path: Path) -> None:
    result = _check("--desired", str(_repo(tmp_path)), "-o", "sarif")
    doc = json.loads(result.output)
    assert doc["version"] == "2.1.0" and doc["$schema"].endswith("sarif-2.1.0.json")
    run = doc["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    assert len(rules) == len(PolicyEngine.load(POLICIES).policies)
    by_id = {r["id"]: r for r in rules}
    assert by_id["disallow-privileged"]["properties"]["security-severity"] == "9.5"
    assert "CC6.1" in by_id["disallow-privileged"]["properties"]["tags"]
    assert "Remediation:" in by_id["disallow-privileged"]["help"]["text"]
    (priv,) = [r for r in run["results"] if r["ruleId"] == "disallow-privileged"]
    assert priv["level"] == "error"
    assert rules[priv["ruleIndex"]]["id"] == "disallow-privileged"
    location = priv["locations"][0]
    assert location["physicalLocation"]["artifactLocation"]["uri"] == "apps/shop.yaml"
    assert location["logicalLocations"][0]["fullyQualifiedName"] == "Deployment.apps/shop/api"
    assert SECRET_VALUE not in result.output
    assert {r["level"] for r in run["results"]} <= {"error", "warning", "note"}


def test_policy_report_shape(tmp_path: Path) -> None:
    snapshot = tmp_path / "live.json"
    snapshot.write_bytes(orjson.dumps({"apiVersion": "v1", "kind": "List",
                                       "items": _manifests()}))
    result = _check("--live", str(snapshot), "-o", "policyreport")
    doc = json.loads(result.output)
    assert doc["kind"] == "List"
    reports = {(i["kind"], i["metadata"].get("namespace")): i for i in doc["items"]}
    assert set(reports) == {("ClusterPolicyReport", None), ("PolicyReport", "shop")}
    shop = reports[("PolicyReport", "shop")]
    assert shop["apiVersion"] == "wgpolicyk8s.io/v1alpha2"
    results = shop["results"]
    assert shop["summary"]["fail"] == sum(1 for r in results if r["result"] == "fail")
    assert shop["summary"]["pass"] == sum(1 for r in results if r["result"] == "pass")
    priv = next(r for r in results if r["policy"] == "disallow-privileged"
                and r["result"] == "fail")
    assert priv["severity"] == "critical" and priv["source"] == "drift-auditor"
    assert priv["resources"] == [{"apiVersion": "apps/v1", "kind": "Deployment",
                                  "name": "api", "namespace": "shop"}]
    assert set(priv["timestamp"]) == {"seconds", "nanos"}
    assert {r["result"] for r in results} <= {"pass", "fail", "warn", "error", "skip"}
    cluster = reports[("ClusterPolicyReport", None)]
    # Cluster-scoped objects, Namespaces among them, go to the ClusterPolicyReport.
    assert {(r["policy"], r["resources"][0]["kind"]) for r in cluster["results"]} >= {
        ("disallow-cluster-admin-binding", "ClusterRoleBinding"),
        ("require-networkpolicy", "Namespace")}


def test_json_output_and_score(tmp_path: Path) -> None:
    result = _check("--desired", str(_repo(tmp_path)), "-o", "json")
    doc = json.loads(result.output)
    s = doc["summary"]
    assert s["fail"] == sum(1 for r in doc["results"] if r["status"] == "fail")
    assert s["failing_by_severity"]["critical"] == 2
    assert 0 < s["score"] < 100
    assert doc["policies"][0]["remediation"]


def test_compliance_score_weights_severity() -> None:
    engine = PolicyEngine.load(POLICIES)
    clean = evaluate_objects(engine, [namespace(), network_policy(), deployment()]).results
    assert out.compliance_score(clean) == 100.0
    low = _with(deployment(), lambda o: o["spec"].pop("replicas"))
    critical = _with(deployment(), _set("securityContext.privileged", True))
    score_low = out.compliance_score(evaluate_objects(engine, [low]).results)
    score_critical = out.compliance_score(evaluate_objects(engine, [critical]).results)
    assert score_critical < score_low < 100.0


def test_check_against_the_sandbox_cluster(sandbox: Sandbox, kubeconfig: pathlib.Path,
                                           tmp_path: Path) -> None:
    sandbox.load(_manifests())
    result = _check("--kubeconfig", str(kubeconfig), "-o", "json")
    assert result.exit_code == 1, result.output
    doc = json.loads(result.output)
    failing = {(r["policy"], r["kind"], r["name"]) for r in doc["results"]
               if r["status"] == "fail"}
    assert ("disallow-privileged", "Deployment", "api") in failing
    assert ("disallow-service-loadbalancer", "Service", "web") in failing
    assert ("disallow-cluster-admin-binding", "ClusterRoleBinding", "ops-admin") in failing
    assert ("disallow-privileged", "Deployment", "web") not in failing
    # The sandbox serves the default namespace without a NetworkPolicy: coverage says so.
    assert ("require-networkpolicy", "Namespace", "default") in failing
    assert SECRET_VALUE not in result.output
