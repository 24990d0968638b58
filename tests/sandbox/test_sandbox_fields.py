"""managedFields and server-side apply, checked against recorded real-cluster output."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest

from auditor.sandbox import Sandbox
from auditor.sandbox.apply import ApplyConflict
from auditor.sandbox.fieldset import decode, encode, path_string

# Recorded from a real (GKE) cluster: a Deployment created by the Cloud Console, then the
# deployment controller's status update (github.com/murageshyadwad/crud, crud/kubernetes.yaml).
REAL_CREATE_FIELDS = {
    "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
    "f:spec": {
        "f:progressDeadlineSeconds": {}, "f:replicas": {}, "f:revisionHistoryLimit": {},
        "f:selector": {},
        "f:strategy": {"f:rollingUpdate": {".": {}, "f:maxSurge": {}, "f:maxUnavailable": {}},
                       "f:type": {}},
        "f:template": {
            "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
            "f:spec": {
                "f:containers": {'k:{"name":"crud-sha256-1"}': {
                    ".": {}, "f:image": {}, "f:imagePullPolicy": {}, "f:name": {},
                    "f:resources": {}, "f:terminationMessagePath": {},
                    "f:terminationMessagePolicy": {}}},
                "f:dnsPolicy": {}, "f:restartPolicy": {}, "f:schedulerName": {},
                "f:securityContext": {}, "f:terminationGracePeriodSeconds": {}}}},
}
_CONDITION = {".": {}, "f:lastTransitionTime": {}, "f:lastUpdateTime": {}, "f:message": {},
              "f:reason": {}, "f:status": {}, "f:type": {}}
REAL_STATUS_FIELDS = {
    "f:metadata": {"f:annotations": {".": {}, "f:deployment.kubernetes.io/revision": {}}},
    "f:status": {
        "f:conditions": {".": {}, 'k:{"type":"Available"}': _CONDITION,
                         'k:{"type":"Progressing"}': _CONDITION},
        "f:observedGeneration": {}, "f:replicas": {}, "f:unavailableReplicas": {},
        "f:updatedReplicas": {}},
}


def crud_deployment() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "crud", "namespace": "default", "labels": {"app": "crud"}},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "crud"}},
                 "template": {"metadata": {"labels": {"app": "crud"}},
                              "spec": {"containers": [{"name": "crud-sha256-1",
                                                       "image": "gcr.io/p/crud:abc123"}]}}},
    }


def entries(obj: dict[str, Any]) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {(e["manager"], e["operation"], e.get("subresource", "")): e["fieldsV1"]
            for e in obj["metadata"]["managedFields"]}


def test_update_ownership_matches_a_real_cluster(sandbox: Sandbox) -> None:
    res = sandbox.resource_for("apps/v1", "Deployment")
    created = sandbox.store.create(res, "default", crud_deployment(),
                                   manager="GoogleCloudConsole")
    assert entries(created) == {("GoogleCloudConsole", "Update", ""): REAL_CREATE_FIELDS}
    status_update = copy.deepcopy(created)
    status_update["metadata"]["annotations"] = {"deployment.kubernetes.io/revision": "1"}
    status_update["spec"]["replicas"] = 99  # ignored: spec is reset on the status subresource
    cond = {"lastTransitionTime": "t", "lastUpdateTime": "t", "message": "m", "reason": "r",
            "status": "True"}
    status_update["status"] = {
        "conditions": [{**cond, "type": "Progressing"}, {**cond, "type": "Available"}],
        "observedGeneration": 1, "replicas": 3, "unavailableReplicas": 3, "updatedReplicas": 3}
    after = sandbox.store.update(res, "default", "crud", status_update,
                                 manager="kube-controller-manager", subresource="status")
    assert after["spec"]["replicas"] == 3
    assert after["metadata"]["annotations"] == {"deployment.kubernetes.io/revision": "1"}
    assert entries(after) == {
        ("GoogleCloudConsole", "Update", ""): REAL_CREATE_FIELDS,
        ("kube-controller-manager", "Update", "status"): REAL_STATUS_FIELDS,
    }
    # the server's order: Apply before Update, then by time, then manager
    assert [e["manager"] for e in after["metadata"]["managedFields"]] == [
        "GoogleCloudConsole", "kube-controller-manager"]


def test_noop_update_keeps_entries_and_resource_version(sandbox: Sandbox) -> None:
    res = sandbox.resource_for("apps/v1", "Deployment")
    created = sandbox.store.create(res, "default", crud_deployment(), manager="a")
    again = sandbox.store.update(res, "default", "crud", created, manager="b")
    assert again["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
    assert [e["manager"] for e in again["metadata"]["managedFields"]] == ["a"]


def test_server_side_apply_owns_only_applied_fields_and_prunes(sandbox: Sandbox) -> None:
    cfg = crud_deployment()
    cfg["metadata"]["labels"]["team"] = "shop"
    out = sandbox.apply(cfg, "gitops")
    applied = entries(out)[("gitops", "Apply", "")]
    assert applied["f:metadata"] == {"f:labels": {"f:app": {}, "f:team": {}}}
    assert "f:progressDeadlineSeconds" not in applied["f:spec"]
    assert out["spec"]["progressDeadlineSeconds"] == 600  # defaulted, owned by nobody
    # dropping a field from the applied config removes it from the object
    del cfg["metadata"]["labels"]["team"]
    out = sandbox.apply(cfg, "gitops")
    assert out["metadata"]["labels"] == {"app": "crud"}
    # unless another manager also owns it (shared ownership keeps it)
    cfg["metadata"]["labels"]["team"] = "shop"
    sandbox.apply(cfg, "gitops")
    sandbox.apply({"apiVersion": "apps/v1", "kind": "Deployment",
                   "metadata": {"name": "crud", "namespace": "default",
                                "labels": {"team": "shop"}}}, "other")
    del cfg["metadata"]["labels"]["team"]
    out = sandbox.apply(cfg, "gitops")
    assert out["metadata"]["labels"] == {"app": "crud", "team": "shop"}


def test_apply_conflict_message_and_force(sandbox: Sandbox) -> None:
    sandbox.apply(crud_deployment(), "gitops")
    res = sandbox.resource_for("apps/v1", "Deployment")
    sandbox.store.patch(res, "default", "crud", "application/merge-patch+json",
                        b'{"spec":{"replicas":5}}', manager="kubectl-edit")
    cfg = crud_deployment()
    with pytest.raises(ApplyConflict) as info:
        sandbox.apply(cfg, "gitops")
    err = info.value
    assert err.code == 409 and err.reason == "Conflict"
    assert err.message == ('Apply failed with 1 conflict: conflict with "kubectl-edit" using '
                           "apps/v1: .spec.replicas")
    assert err.details == {"causes": [{"type": "FieldManagerConflict",
                                       "message": 'conflict with "kubectl-edit" using apps/v1',
                                       "field": ".spec.replicas"}]}
    # applying the live value is no conflict: both share it
    cfg["spec"]["replicas"] = 5
    out = sandbox.apply(cfg, "gitops")
    assert "f:replicas" in entries(out)[("kubectl-edit", "Update", "")]["f:spec"]
    cfg["spec"]["replicas"] = 3
    out = sandbox.apply(cfg, "gitops", force=True)
    assert out["spec"]["replicas"] == 3
    assert ("kubectl-edit", "Update", "") not in entries(out)


def test_fieldsv1_round_trip_and_paths() -> None:
    assert encode(decode(REAL_STATUS_FIELDS)) == REAL_STATUS_FIELDS
    assert encode(decode(REAL_CREATE_FIELDS)) == REAL_CREATE_FIELDS
    assert path_string(("f:spec", "f:template", "f:spec", "f:containers", 'k:{"name":"web"}',
                        "f:ports", 'k:{"containerPort":80,"protocol":"TCP"}')) == \
        '.spec.template.spec.containers[name="web"].ports[containerPort=80,protocol="TCP"]'
    assert path_string(("f:metadata", "f:finalizers", 'v:"x"')) == '.metadata.finalizers[="x"]'


def test_loaded_objects_keep_given_history_and_status(sandbox: Sandbox) -> None:
    obj = crud_deployment()
    obj["status"] = {"replicas": 3}
    obj["metadata"]["managedFields"] = [{
        "manager": "argocd-controller", "operation": "Apply", "apiVersion": "apps/v1",
        "time": "2026-01-01T00:00:00Z", "fieldsType": "FieldsV1",
        "fieldsV1": {"f:spec": {"f:replicas": {}}}}]
    sandbox.load([obj])
    got = sandbox.get("apps/v1", "Deployment", "default", "crud")
    assert got is not None and got["status"] == {"replicas": 3}
    assert got["metadata"]["managedFields"] == obj["metadata"]["managedFields"]
    sandbox.load([{"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "c", "namespace": "fresh"}, "data": {"k": "v"}}])
    cm = sandbox.get("v1", "ConfigMap", "fresh", "c")
    assert cm is not None and entries(cm) == {
        ("sandbox-loader", "Update", ""): {"f:data": {".": {}, "f:k": {}}}}


def test_clients_can_reset_or_rewrite_managed_fields(sandbox: Sandbox) -> None:
    res = sandbox.resource_for("apps/v1", "Deployment")
    sandbox.store.create(res, "default", crud_deployment(), manager="creator")
    out, _ = sandbox.store.patch(res, "default", "crud", "application/merge-patch+json",
                                 b'{"metadata":{"managedFields":[{}]}}', manager="resetter")
    assert "managedFields" not in out["metadata"]  # reset, and the reset itself owns nothing
    out, _ = sandbox.store.patch(res, "default", "crud", "application/merge-patch+json",
                                 b'{"spec":{"paused":true}}', manager="pauser")
    assert entries(out) == {("pauser", "Update", ""): {"f:spec": {"f:paused": {}}}}
    # a PUT that sends back the managedFields it read changes nothing about them
    again = sandbox.store.update(res, "default", "crud", out, manager="pauser")
    assert again["metadata"]["resourceVersion"] == out["metadata"]["resourceVersion"]
    with pytest.raises(Exception, match="managedFields must be nil"):
        sandbox.apply({**crud_deployment(), "metadata": {
            "name": "crud", "namespace": "default", "managedFields": []}}, "x")


def test_apply_to_status_and_scale_subresources(sandbox: Sandbox) -> None:
    sandbox.apply(crud_deployment(), "gitops")
    res = sandbox.resource_for("apps/v1", "Deployment")
    status_cfg = {"apiVersion": "apps/v1", "kind": "Deployment",
                  "metadata": {"name": "crud", "namespace": "default"},
                  "spec": {"replicas": 42}, "status": {"replicas": 3, "readyReplicas": 1}}
    out, _ = sandbox.store.server_side_apply(res, "default", "crud", status_cfg,
                                             manager="my-controller", subresource="status")
    assert out["status"] == {"replicas": 3, "readyReplicas": 1} and out["spec"]["replicas"] == 3
    scale_cfg = {"apiVersion": "autoscaling/v1", "kind": "Scale",
                 "metadata": {"name": "crud", "namespace": "default"}, "spec": {"replicas": 7}}
    with pytest.raises(ApplyConflict, match=re.escape('conflict with "gitops": .spec.replicas')):
        sandbox.store.server_side_apply(res, "default", "crud", scale_cfg, manager="hpa",
                                        subresource="scale")
    scale, _ = sandbox.store.server_side_apply(res, "default", "crud", scale_cfg, manager="hpa",
                                               subresource="scale", force=True)
    assert scale["kind"] == "Scale" and scale["spec"]["replicas"] == 7
    got = sandbox.get("apps/v1", "Deployment", "default", "crud")
    assert got is not None
    assert entries(got)[("hpa", "Apply", "scale")] == {"f:spec": {"f:replicas": {}}}
    assert entries(got)[("my-controller", "Apply", "status")] == {
        "f:status": {"f:readyReplicas": {}, "f:replicas": {}}}
    assert "f:replicas" not in entries(got)[("gitops", "Apply", "")]["f:spec"]


def test_immutable_fields_are_refused(sandbox: Sandbox) -> None:
    from auditor.sandbox import ApiError

    sandbox.apply(crud_deployment(), "gitops")
    res = sandbox.resource_for("apps/v1", "Deployment")
    with pytest.raises(ApiError) as info:
        sandbox.store.patch(res, "default", "crud", "application/merge-patch+json",
                            b'{"spec":{"selector":{"matchLabels":{"app":"x"}},"template":'
                            b'{"metadata":{"labels":{"app":"x"}}}}}', manager="m")
    assert info.value.code == 422 and "field is immutable" in info.value.message
    cm = sandbox.resource_for("v1", "ConfigMap")
    sandbox.store.create(cm, "default", {"metadata": {"name": "frozen"}, "immutable": True,
                                         "data": {"a": "1"}}, manager="m")
    with pytest.raises(ApiError) as info:
        sandbox.store.patch(cm, "default", "frozen", "application/merge-patch+json",
                            b'{"data":{"a":"2"}}', manager="m")
    assert info.value.code == 422


def test_custom_resource_ownership_follows_the_crd_schema(sandbox: Sandbox) -> None:
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "routes.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
                 "names": {"plural": "routes", "singular": "route", "kind": "Route"},
                 "versions": [{"name": "v1", "served": True, "storage": True, "schema": {
                     "openAPIV3Schema": {"type": "object", "properties": {
                         "spec": {"type": "object", "properties": {
                             "hosts": {"type": "array", "items": {"type": "string"},
                                       "x-kubernetes-list-type": "set"},
                             "backends": {"type": "array", "x-kubernetes-list-type": "map",
                                          "x-kubernetes-list-map-keys": ["name"],
                                          "items": {"type": "object", "properties": {
                                              "name": {"type": "string"},
                                              "weight": {"type": "integer"}}}},
                             "tags": {"type": "object",
                                      "additionalProperties": {"type": "string"}}}}}}}}]},
    }
    sandbox.apply(crd, "setup")
    route = {"apiVersion": "example.com/v1", "kind": "Route",
             "metadata": {"name": "r", "namespace": "default"},
             "spec": {"hosts": ["a.example.com"], "tags": {"team": "x"},
                      "backends": [{"name": "blue", "weight": 90}, {"name": "green",
                                                                     "weight": 10}]}}
    out = sandbox.apply(route, "gitops")
    assert entries(out)[("gitops", "Apply", "")] == {"f:spec": {
        "f:backends": {'k:{"name":"blue"}': {".": {}, "f:name": {}, "f:weight": {}},
                       'k:{"name":"green"}': {".": {}, "f:name": {}, "f:weight": {}}},
        "f:hosts": {'v:"a.example.com"': {}},
        "f:tags": {"f:team": {}}}}
    # a second manager changes one backend only: a conflict on that key, nothing else
    canary = {"apiVersion": "example.com/v1", "kind": "Route",
              "metadata": {"name": "r", "namespace": "default"},
              "spec": {"backends": [{"name": "green", "weight": 50}]}}
    with pytest.raises(ApplyConflict) as info:
        sandbox.apply(canary, "flagger")
    assert info.value.message.endswith('.spec.backends[name="green"].weight')
    out = sandbox.apply(canary, "flagger", force=True)
    assert out["spec"]["backends"] == [{"name": "blue", "weight": 90},
                                       {"name": "green", "weight": 50}]


def test_apply_compares_quantities_canonically(sandbox: Sandbox) -> None:
    cfg = crud_deployment()
    container = cfg["spec"]["template"]["spec"]["containers"][0]
    container["resources"] = {"requests": {"cpu": "0.5", "memory": "1024Mi"}}
    res = sandbox.resource_for("apps/v1", "Deployment")
    created = sandbox.store.create(res, "default", cfg, manager="kubectl-client-side-apply")
    stored = created["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert stored == {"requests": {"cpu": "500m", "memory": "1Gi"}}
    # the same config applied by another manager changes nothing: shared, no conflict
    out = sandbox.apply(cfg, "gitops")
    assert out["spec"] == created["spec"]
    owners = entries(out)
    for key in (("gitops", "Apply", ""), ("kubectl-client-side-apply", "Update", "")):
        c = owners[key]["f:spec"]["f:template"]["f:spec"]["f:containers"]
        assert "f:cpu" in c['k:{"name":"crud-sha256-1"}']["f:resources"]["f:requests"]
    container["resources"]["requests"]["cpu"] = "750m"
    with pytest.raises(ApplyConflict):
        sandbox.apply(cfg, "gitops")


def _with_env(names: list[str]) -> dict[str, Any]:
    cfg = crud_deployment()
    cfg["spec"]["template"]["spec"]["containers"][0]["env"] = [
        {"name": n, "value": "1"} for n in names]
    return cfg


def _env(obj: dict[str, Any]) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = obj["spec"]["template"]["spec"]["containers"][0].get(
        "env", [])
    return result


def test_prune_removes_a_dropped_list_item_as_a_whole(sandbox: Sandbox) -> None:
    sandbox.apply(_with_env(["A", "B"]), "gitops")
    res = sandbox.resource_for("apps/v1", "Deployment")
    # an Update manager changes a field inside item B: it owns that field, not the item
    sandbox.store.patch(res, "default", "crud", "application/strategic-merge-patch+json",
                        b'{"spec":{"template":{"spec":{"containers":[{"name":"crud-sha256-1",'
                        b'"env":[{"name":"B","value":"2"}]}]}}}}', manager="kubectl-set")
    out = sandbox.apply(_with_env(["A"]), "gitops")
    # structured-merge-diff removes the item: nobody but gitops owned the item itself
    assert _env(out) == [{"name": "A", "value": "1"}]


def test_ownership_handed_over_through_managed_fields_is_pruned(sandbox: Sandbox) -> None:
    sandbox.apply(crud_deployment(), "gitops")
    res = sandbox.resource_for("apps/v1", "Deployment")
    sandbox.store.patch(res, "default", "crud", "application/strategic-merge-patch+json",
                        b'{"spec":{"template":{"spec":{"containers":[{"name":"crud-sha256-1",'
                        b'"env":[{"name":"DEBUG","value":"1"}]}]}}}}', manager="kubectl-set")
    live = sandbox.get("apps/v1", "Deployment", "default", "crud")
    assert live is not None and _env(live) == [{"name": "DEBUG", "value": "1"}]
    # move kubectl-set's fields (item and children) into gitops' Apply entry, as a revert
    # tool or csaupgrade does, then apply Git's version, which lacks the item
    managed = live["metadata"]["managedFields"]
    human = next(e for e in managed if e["manager"] == "kubectl-set")
    mine = next(e for e in managed if e["manager"] == "gitops")
    container = 'k:{"name":"crud-sha256-1"}'
    env = human["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"][container]["f:env"]
    mine["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"][container]["f:env"] = env
    handed = [e for e in managed if e["manager"] != "kubectl-set"]
    body = json.dumps([{"op": "test", "path": "/metadata/resourceVersion",
                        "value": live["metadata"]["resourceVersion"]},
                       {"op": "replace", "path": "/metadata/managedFields", "value": handed}])
    sandbox.store.patch(res, "default", "crud", "application/json-patch+json", body.encode(),
                        manager="revert")
    out = sandbox.apply(crud_deployment(), "gitops")
    assert _env(out) == []
    assert [e["manager"] for e in out["metadata"]["managedFields"]] == ["gitops"]
