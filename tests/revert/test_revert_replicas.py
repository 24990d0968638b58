"""Replicas and controllers: a revert never resets what an autoscaler (or whoever scales a
workload whose replicas Git leaves open) owns, and never claims a revert it did not make."""

from __future__ import annotations

import http.client
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest
from gitopsfixtures import config_file, sync_from_git

from auditor import config as config_mod
from auditor.config import Config, RevertConfig
from auditor.ledger import reading
from auditor.ledger import reverts as ledger_reverts
from auditor.pipeline import RunOutcome, run_once
from auditor.sandbox import Sandbox

pytestmark = pytest.mark.kubectl

AUTOSCALED = """\
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - {name: web, image: shop/web:1.0.0}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web, namespace: shop}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 2
  maxReplicas: 10
  metrics:
    - type: Resource
      resource: {name: cpu, target: {type: Utilization, averageUtilization: 70}}
"""


@pytest.fixture
def autoscaled(tmp_path: Path, kubeconfig: Path, kubectl: Any) -> dict[str, Any]:
    git = tmp_path / "git"
    git.mkdir()
    sync_from_git(kubectl, git, AUTOSCALED)
    cfg_file = config_file(tmp_path, kubeconfig, extra="revert: {mode: enforce}\n")
    return {"git": git, "cfg": config_mod.load(cfg_file, env={}), "ledger": tmp_path / "ledger.db"}


def run(setup: dict[str, Any], **kw: Any) -> RunOutcome:
    cfg: Config = setup["cfg"]
    if kw:
        cfg = replace(cfg, revert=RevertConfig(**{"mode": "enforce", **kw}))
    return run_once(cfg, desired_path=str(setup["git"]))


def hpa_scales(sandbox: Sandbox, replicas: int) -> None:
    """What the HPA controller does: an Update of the scale subresource."""
    conn = http.client.HTTPConnection(sandbox.host, sandbox.port)
    conn.request("PATCH", "/apis/apps/v1/namespaces/shop/deployments/web/scale"
                 "?fieldManager=kube-controller-manager",
                 body=orjson.dumps({"spec": {"replicas": replicas}}),
                 headers={"Content-Type": "application/merge-patch+json"})
    response = conn.getresponse()
    assert response.status == 200, response.read()
    conn.close()


def deployment(kubectl: Any) -> dict[str, Any]:
    doc: dict[str, Any] = orjson.loads(kubectl("-n", "shop", "get", "deployment/web", "-o",
                                               "json", "--show-managed-fields").stdout)
    return doc


def test_revert_keeps_the_autoscaler_replicas(autoscaled: dict[str, Any], kubectl: Any,
                                              sandbox: Sandbox) -> None:
    hpa_scales(sandbox, 4)
    assert {r.status for r in run(autoscaled).audit.results} == {"in-sync"}
    kubectl("-n", "shop", "set", "image", "deployment/web", "web=shop/web:6.6.6-hotfix")
    out = run(autoscaled)
    assert revert_results(autoscaled) == ["reverted"]
    web = deployment(kubectl)
    assert web["spec"]["template"]["spec"]["containers"][0]["image"] == "shop/web:1.0.0"
    assert web["spec"]["replicas"] == 4
    owners = {(e["manager"], e.get("subresource", "")) for e in web["metadata"]["managedFields"]
              if "f:replicas" in e["fieldsV1"].get("f:spec", {})}
    assert owners == {("kube-controller-manager", "scale")}
    assert {r.status for r in run(autoscaled).audit.results} == {"in-sync"}
    assert out.status == "complete"


def test_replicas_git_leaves_open_are_not_reset(autoscaled: dict[str, Any],
                                                kubectl: Any) -> None:
    run(autoscaled)
    kubectl("-n", "shop", "scale", "deployment/web", "--replicas=7")
    out = run(autoscaled)
    [web] = [r for r in out.audit.results if r.key.kind == "Deployment"]
    assert web.status == "drifted"  # reported (a human scaled) ...
    assert deployment(kubectl)["spec"]["replicas"] == 7  # ... but not reset to the default
    assert revert_results(autoscaled) == []
    # Mixed with a real change, the image is reverted and the replicas are still left alone.
    kubectl("-n", "shop", "set", "image", "deployment/web", "web=shop/web:6.6.6-hotfix")
    run(autoscaled)
    web_now = deployment(kubectl)
    assert web_now["spec"]["replicas"] == 7
    assert web_now["spec"]["template"]["spec"]["containers"][0]["image"] == "shop/web:1.0.0"
    assert revert_results(autoscaled) == ["reverted"]


def revert_results(setup: dict[str, Any]) -> list[str]:
    with reading(setup["ledger"]) as conn:
        return [r["result"] for r in ledger_reverts.history(conn)]
