"""The cluster module's write methods against the sandbox: server-side apply (create, force,
dry-run), JSON patch with a resourceVersion test, guarded delete, and errors that name the
RBAC permission a 403 lacks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from auditor.config import ClusterConfig
from auditor.live.client import APIResource, Cluster, WriteError, WriteForbiddenError
from auditor.sandbox import Sandbox

CM = APIResource("", "v1", "ConfigMap", "configmaps", True)
DEPLOY = APIResource("apps", "v1", "Deployment", "deployments", True)
NS = APIResource("", "v1", "Namespace", "namespaces", False)


def configmap(name: str = "settings", **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "default"}, "data": data}


@pytest.fixture
def cluster(kubeconfig: Path) -> Iterator[Cluster]:
    with Cluster(ClusterConfig(kubeconfig=str(kubeconfig), retries=1)) as c:
        yield c


def test_apply_creates_then_forces_and_dry_run_changes_nothing(cluster: Cluster) -> None:
    assert cluster.get_object(CM, "default", "settings") is None
    assert cluster.apply(CM, configmap(MODE="prod"), field_manager="drift-auditor",
                         dry_run=True)["data"] == {"MODE": "prod"}
    assert cluster.get_object(CM, "default", "settings") is None
    made = cluster.apply(CM, configmap(MODE="prod"), field_manager="drift-auditor")
    assert [(e["manager"], e["operation"]) for e in made["metadata"]["managedFields"]] == [
        ("drift-auditor", "Apply")]
    # Another manager changes the value; a forced apply takes it back.
    cluster.apply(CM, configmap(MODE="debug"), field_manager="someone", force=True)
    rv = cluster.get_object(CM, "default", "settings")["metadata"]["resourceVersion"]  # type: ignore[index]
    dry = cluster.apply(CM, configmap(MODE="prod"), field_manager="drift-auditor", dry_run=True)
    assert dry["data"] == {"MODE": "prod"}
    now = cluster.get_object(CM, "default", "settings")
    assert now is not None and now["data"] == {"MODE": "debug"}
    assert now["metadata"]["resourceVersion"] == rv
    assert cluster.apply(CM, configmap(MODE="prod"), field_manager="drift-auditor")[
        "data"] == {"MODE": "prod"}


def test_without_force_a_conflict_is_a_409(cluster: Cluster) -> None:
    cluster.apply(CM, configmap(MODE="prod"), field_manager="argocd-controller")
    with pytest.raises(WriteError) as err:
        cluster.apply(CM, configmap(MODE="debug"), field_manager="drift-auditor", force=False)
    assert err.value.status == 409
    assert "patch configmaps settings in namespace default failed with HTTP 409" in str(err.value)


def test_json_patch_with_a_stale_resource_version_is_refused(cluster: Cluster) -> None:
    made = cluster.apply(CM, configmap(MODE="prod"), field_manager="drift-auditor")
    rv = made["metadata"]["resourceVersion"]
    ops = [{"op": "test", "path": "/metadata/resourceVersion", "value": rv},
           {"op": "add", "path": "/metadata/labels", "value": {"a": "b"}}]
    patched = cluster.json_patch(CM, "default", "settings", ops, field_manager="drift-auditor")
    assert patched["metadata"]["labels"] == {"a": "b"}
    with pytest.raises(WriteError) as err:
        cluster.json_patch(CM, "default", "settings", ops, field_manager="drift-auditor")
    assert err.value.status in (409, 422)


def test_delete_is_guarded_by_preconditions(cluster: Cluster) -> None:
    made = cluster.apply(CM, configmap("stray", a="b"), field_manager="someone")
    uid, rv = made["metadata"]["uid"], made["metadata"]["resourceVersion"]
    assert cluster.delete(CM, "default", "stray", uid=uid, resource_version=rv, dry_run=True)
    assert cluster.get_object(CM, "default", "stray") is not None
    with pytest.raises(WriteError) as err:
        cluster.delete(CM, "default", "stray", uid=uid, resource_version=str(int(rv) - 1))
    assert err.value.status == 409
    assert cluster.delete(CM, "default", "stray", uid=uid, resource_version=rv)
    assert cluster.get_object(CM, "default", "stray") is None
    assert cluster.delete(CM, "default", "stray") is False


def test_403_names_the_verb_the_resource_and_the_namespace(cluster: Cluster,
                                                           sandbox: Sandbox) -> None:
    sandbox.faults.add(method="PATCH", path_regex=r"/deployments/", status=403)
    sandbox.faults.add(method="DELETE", path_regex=r"/namespaces/gone$", status=403)
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment",
                  "metadata": {"name": "web", "namespace": "shop"}, "spec": {}}
    with pytest.raises(WriteForbiddenError) as err:
        cluster.apply(DEPLOY, deployment, field_manager="drift-auditor", dry_run=True)
    assert (err.value.verb, err.value.resource, err.value.namespace) == (
        "patch", "deployments.apps", "shop")
    assert "needs the RBAC verb 'patch' on resource 'deployments.apps' in namespace shop" \
        in str(err.value)
    with pytest.raises(WriteForbiddenError, match=r"verb 'delete' on resource 'namespaces' "
                                                  r"\(cluster-wide\)"):
        cluster.delete(NS, "", "gone")


def test_429_is_retried(cluster: Cluster, sandbox: Sandbox) -> None:
    fault = sandbox.faults.add(method="PATCH", path_regex=r"/configmaps/settings$", status=429,
                               times=1, retry_after=0)
    assert cluster.apply(CM, configmap(MODE="prod"), field_manager="drift-auditor")["data"] == {
        "MODE": "prod"}
    assert fault.hits == 1 and cluster.retries == 1


def test_an_applier_dropping_a_list_item_removes_it_whole(cluster: Cluster) -> None:
    def deployment(*env: str) -> dict[str, Any]:
        return {"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "namespace": "default"},
                "spec": {"selector": {"matchLabels": {"app": "web"}},
                         "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                             "containers": [{"name": "web", "image": "nginx",
                                             "env": [{"name": e, "value": "1"} for e in env]}]}}}}

    # (kube-apiserver removes the item whole; the sandbox left a remnant before 78fb740,
    # depending on set order: hence a few rounds)
    for _ in range(5):
        cluster.apply(DEPLOY, deployment("A", "FOO"), field_manager="m")
        out = cluster.apply(DEPLOY, deployment("A"), field_manager="m")
        assert out["spec"]["template"]["spec"]["containers"][0]["env"] == [
            {"name": "A", "value": "1"}]
