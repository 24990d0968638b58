"""Patch formats and server defaulting, without HTTP."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from auditor.sandbox import ApiError, Sandbox
from auditor.sandbox.patch import json_merge_patch, json_patch, strategic_merge_patch
from auditor.sandbox.schema import root

DEPLOY = root("Deployment")


def pod_deployment() -> dict[str, Any]:
    return {"spec": {"strategy": {"type": "RollingUpdate",
                                  "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
                     "template": {"spec": {
                         "containers": [
                             {"name": "web", "image": "web:1",
                              "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                              "ports": [{"containerPort": 80, "protocol": "TCP"}],
                              "args": ["--a", "--b"]},
                             {"name": "sidecar", "image": "proxy:1"}],
                         "volumes": [{"name": "cfg", "configMap": {"name": "c"}}],
                         "tolerations": [{"key": "a", "operator": "Exists"}]}}}}


def containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = obj["spec"]["template"]["spec"]["containers"]
    return result


def test_strategic_merge_uses_merge_keys_not_indexes() -> None:
    out = strategic_merge_patch(pod_deployment(), {"spec": {"template": {"spec": {
        "containers": [{"name": "sidecar", "image": "proxy:2"},
                       {"name": "web", "env": [{"name": "B", "value": "3"},
                                               {"name": "C", "value": "4"}]}]}}}}, DEPLOY)
    web, sidecar = containers(out)
    assert (web["image"], sidecar["image"]) == ("web:1", "proxy:2")
    assert web["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "3"},
                          {"name": "C", "value": "4"}]
    # lists without a patch strategy are replaced
    out = strategic_merge_patch(pod_deployment(), {"spec": {"template": {"spec": {
        "tolerations": [{"key": "b", "operator": "Exists"}],
        "containers": [{"name": "web", "args": ["--c"]}]}}}}, DEPLOY)
    assert out["spec"]["template"]["spec"]["tolerations"] == [{"key": "b", "operator": "Exists"}]
    assert containers(out)[0]["args"] == ["--c"]


def test_strategic_merge_directives() -> None:
    base = pod_deployment()
    out = strategic_merge_patch(base, {"spec": {"template": {"spec": {
        "containers": [{"name": "sidecar", "$patch": "delete"}]}}}}, DEPLOY)
    assert [c["name"] for c in containers(out)] == ["web"]
    out = strategic_merge_patch(base, {"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "sidecar"}, {"name": "web"}],
        "containers": [{"name": "web", "image": "web:2"}]}}}}, DEPLOY)
    assert [c["name"] for c in containers(out)] == ["sidecar", "web"]
    out = strategic_merge_patch(base, {"spec": {"strategy": {
        "$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": None}}}, DEPLOY)
    assert out["spec"]["strategy"] == {"type": "Recreate"}
    out = strategic_merge_patch(base, {"spec": {"template": {"spec": {"containers": [
        {"name": "web", "$deleteFromPrimitiveList/args": ["--a"]}]}}}}, DEPLOY)
    assert containers(out)[0]["args"] == ["--b"]
    out = strategic_merge_patch(base, {"spec": {"template": {"spec": {"containers": [
        {"name": "only", "image": "x"}, {"$patch": "replace"}]}}}}, DEPLOY)
    assert containers(out) == [{"name": "only", "image": "x"}]
    out = strategic_merge_patch(base, {"spec": {"template": {"spec": {
        "volumes": [{"name": "cfg", "$patch": "delete"}]}}}}, DEPLOY)
    assert out["spec"]["template"]["spec"]["volumes"] == []
    assert base == pod_deployment()  # the original is never modified
    with pytest.raises(ApiError):
        strategic_merge_patch(base, {"spec": {"template": {"spec": {
            "containers": [{"image": "no-name"}]}}}}, DEPLOY)


def test_json_merge_patch_rfc7386() -> None:
    assert json_merge_patch({"a": "b", "c": {"d": "e", "f": "g"}},
                            {"a": "z", "c": {"f": None}}) == {"a": "z", "c": {"d": "e"}}
    assert json_merge_patch({"a": [1, 2]}, {"a": [3]}) == {"a": [3]}
    assert json_merge_patch({"a": "b"}, {"b": {"c": None}}) == {"a": "b", "b": {}}


def test_json_patch_rfc6902() -> None:
    doc = {"a": {"b": [1, 2]}, "x~y": 1, "p/q": 2}
    out = json_patch(doc, [{"op": "add", "path": "/a/b/1", "value": 9},
                           {"op": "add", "path": "/a/b/-", "value": 10},
                           {"op": "remove", "path": "/x~0y"},
                           {"op": "replace", "path": "/p~1q", "value": 3},
                           {"op": "copy", "from": "/a/b", "path": "/c"},
                           {"op": "move", "from": "/c", "path": "/d"},
                           {"op": "test", "path": "/d/0", "value": 1}])
    assert out == {"a": {"b": [1, 9, 2, 10]}, "p/q": 3, "d": [1, 9, 2, 10]}
    with pytest.raises(ApiError) as info:
        json_patch(doc, [{"op": "test", "path": "/a/b/0", "value": 5}])
    assert info.value.code == 422
    with pytest.raises(ApiError):
        json_patch(doc, [{"op": "replace", "path": "/missing", "value": 1}])


def create(sb: Sandbox, obj: dict[str, Any]) -> dict[str, Any]:
    res = sb.resource_for(obj["apiVersion"], obj["kind"])
    ns = obj["metadata"].get("namespace", "default") if res.namespaced else ""
    return sb.store.create(res, ns, obj, manager="test")


def test_service_defaults_and_allocation(sandbox: Sandbox) -> None:
    svc = create(sandbox, {"apiVersion": "v1", "kind": "Service",
                           "metadata": {"name": "web", "namespace": "default"},
                           "spec": {"type": "NodePort", "selector": {"app": "web"},
                                    "ports": [{"port": 80}, {"port": 443, "targetPort": "https"}]}})
    spec = svc["spec"]
    assert spec["clusterIP"].startswith("10.9") and spec["clusterIPs"] == [spec["clusterIP"]]
    assert spec["clusterIP"] != "10.96.0.1"
    assert (spec["ipFamilies"], spec["ipFamilyPolicy"]) == (["IPv4"], "SingleStack")
    assert (spec["sessionAffinity"], spec["internalTrafficPolicy"]) == ("None", "Cluster")
    assert spec["externalTrafficPolicy"] == "Cluster"
    p80, p443 = spec["ports"]
    assert (p80["protocol"], p80["targetPort"]) == ("TCP", 80) and p443["targetPort"] == "https"
    assert 30000 <= p80["nodePort"] <= 32767 and p80["nodePort"] != p443["nodePort"]
    headless = create(sandbox, {"apiVersion": "v1", "kind": "Service",
                                "metadata": {"name": "db", "namespace": "default"},
                                "spec": {"clusterIP": "None", "ports": [{"port": 5432}]}})
    assert headless["spec"]["clusterIP"] == "None" and headless["spec"]["type"] == "ClusterIP"
    lb = create(sandbox, {"apiVersion": "v1", "kind": "Service",
                          "metadata": {"name": "lb", "namespace": "default"},
                          "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}})
    assert lb["spec"]["allocateLoadBalancerNodePorts"] is True


def test_job_statefulset_secret_rbac_namespace_defaults(sandbox: Sandbox) -> None:
    job = create(sandbox, {"apiVersion": "batch/v1", "kind": "Job",
                           "metadata": {"name": "migrate", "namespace": "default"},
                           "spec": {"template": {"spec": {"restartPolicy": "Never",
                                                          "containers": [{"name": "m",
                                                                          "image": "m"}]}}}})
    uid = job["metadata"]["uid"]
    spec = job["spec"]
    assert spec["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    assert spec["template"]["metadata"]["labels"] == {
        "batch.kubernetes.io/controller-uid": uid, "batch.kubernetes.io/job-name": "migrate",
        "controller-uid": uid, "job-name": "migrate"}
    assert (spec["backoffLimit"], spec["completions"], spec["parallelism"]) == (6, 1, 1)
    assert (spec["completionMode"], spec["suspend"], spec["podReplacementPolicy"]) == (
        "NonIndexed", False, "TerminatingOrFailed")
    assert spec["template"]["spec"]["restartPolicy"] == "Never"
    # SetDefaults_Job on read: the Job gets its template's labels, owned by nobody
    assert job["metadata"]["labels"] == spec["template"]["metadata"]["labels"]
    owned = job["metadata"]["managedFields"][0]["fieldsV1"]
    assert "f:labels" not in owned.get("f:metadata", {})
    assert spec["template"]["spec"]["containers"][0]["imagePullPolicy"] == "Always"
    sts = create(sandbox, {"apiVersion": "apps/v1", "kind": "StatefulSet",
                           "metadata": {"name": "db", "namespace": "default"},
                           "spec": {"serviceName": "db", "selector": {"matchLabels": {"a": "b"}},
                                    "template": {"metadata": {"labels": {"a": "b"}},
                                                 "spec": {"containers": [{"name": "db",
                                                                          "image": "pg:16"}]}},
                                    "volumeClaimTemplates": [{"metadata": {"name": "data"},
                                                              "spec": {"accessModes": [
                                                                  "ReadWriteOnce"]}}]}})
    s = sts["spec"]
    assert (s["podManagementPolicy"], s["revisionHistoryLimit"]) == ("OrderedReady", 10)
    assert s["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}
    assert s["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain",
                                                         "whenScaled": "Retain"}
    vct = s["volumeClaimTemplates"][0]
    assert (vct["apiVersion"], vct["kind"], vct["spec"]["volumeMode"], vct["status"]) == (
        "v1", "PersistentVolumeClaim", "Filesystem", {"phase": "Pending"})
    secret = create(sandbox, {"apiVersion": "v1", "kind": "Secret",
                              "metadata": {"name": "s", "namespace": "default"},
                              "stringData": {"password": "hunter2"}, "data": {"u": "YQ=="}})
    assert secret["type"] == "Opaque" and "stringData" not in secret
    assert base64.b64decode(secret["data"]["password"]) == b"hunter2"
    rb = create(sandbox, {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                          "metadata": {"name": "rb", "namespace": "default"},
                          "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                      "name": "r"},
                          "subjects": [{"kind": "User", "name": "alice"},
                                       {"kind": "ServiceAccount", "name": "sa",
                                        "namespace": "default"}]})
    assert rb["subjects"][0]["apiGroup"] == "rbac.authorization.k8s.io"
    assert "apiGroup" not in rb["subjects"][1]
    ds = create(sandbox, {"apiVersion": "apps/v1", "kind": "DaemonSet",
                          "metadata": {"name": "agent", "namespace": "default"},
                          "spec": {"selector": {"matchLabels": {"a": "b"}},
                                   "template": {"metadata": {"labels": {"a": "b"}},
                                                "spec": {"containers": [{"name": "a",
                                                                         "image": "a:1"}],
                                                         "volumes": [{"name": "c",
                                                                      "configMap": {"name": "c"}},
                                                                     {"name": "tmp"}]}}}})
    assert ds["spec"]["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {
        "maxUnavailable": 1, "maxSurge": 0}}
    vols = ds["spec"]["template"]["spec"]["volumes"]
    assert vols[0]["configMap"]["defaultMode"] == 420 and vols[1]["emptyDir"] == {}
    cj = create(sandbox, {"apiVersion": "batch/v1", "kind": "CronJob",
                          "metadata": {"name": "nightly", "namespace": "default"},
                          "spec": {"schedule": "0 1 * * *", "jobTemplate": {"spec": {
                              "template": {"spec": {"restartPolicy": "OnFailure",
                                                    "containers": [{"name": "c",
                                                                    "image": "c:1"}]}}}}}})
    assert (cj["spec"]["concurrencyPolicy"], cj["spec"]["successfulJobsHistoryLimit"],
            cj["spec"]["failedJobsHistoryLimit"], cj["spec"]["suspend"]) == ("Allow", 3, 1, False)
    job_tmpl = cj["spec"]["jobTemplate"]["spec"]
    assert "backoffLimit" not in job_tmpl  # Job defaults are not applied to templates
    assert job_tmpl["template"]["spec"]["dnsPolicy"] == "ClusterFirst"
    pvc = create(sandbox, {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                           "metadata": {"name": "d", "namespace": "default"},
                           "spec": {"accessModes": ["ReadWriteOnce"],
                                    "resources": {"requests": {"storage": "1Gi"}}}})
    assert pvc["spec"]["volumeMode"] == "Filesystem" and pvc["status"] == {"phase": "Pending"}


def test_pod_admission_defaults(sandbox: Sandbox) -> None:
    pod = create(sandbox, {"apiVersion": "v1", "kind": "Pod",
                           "metadata": {"name": "p", "namespace": "default"},
                           "spec": {"containers": [{
                               "name": "c", "image": "busybox",
                               "resources": {"limits": {"cpu": "1", "memory": "1Gi"}},
                               "readinessProbe": {"httpGet": {"port": 8080}}}]}})
    spec = pod["spec"]
    c = spec["containers"][0]
    assert c["resources"]["requests"] == {"cpu": "1", "memory": "1Gi"}
    assert c["readinessProbe"] == {"httpGet": {"port": 8080, "path": "/", "scheme": "HTTP"},
                                   "timeoutSeconds": 1, "periodSeconds": 10,
                                   "successThreshold": 1, "failureThreshold": 3}
    assert (spec["serviceAccountName"], spec["enableServiceLinks"], spec["priority"]) == (
        "default", True, 0)
    assert {t["key"] for t in spec["tolerations"]} == {"node.kubernetes.io/not-ready",
                                                       "node.kubernetes.io/unreachable"}
    assert pod["status"]["qosClass"] == "Guaranteed" and pod["metadata"]["generation"] == 1


@pytest.mark.parametrize(("written", "stored"), [
    ("0.5", "500m"), ("1024Mi", "1Gi"), ("1.5Ki", "1536"), ("0.1Ki", "102400m"),
    ("1000", "1k"), ("2e3", "2e3"), ("1.5Gi", "1536Mi"), ("2000m", "2"), (1, "1"),
    (0.25, "250m"), ("100u", "1m"), ("129e6", "129e6"), ("128974848", "128974848"),
])
def test_resource_quantities_are_stored_canonically(sandbox: Sandbox, written: Any,
                                                    stored: str) -> None:
    deploy = create(sandbox, {"apiVersion": "apps/v1", "kind": "Deployment",
                              "metadata": {"name": "q", "namespace": "default"},
                              "spec": {"selector": {"matchLabels": {"a": "b"}},
                                       "template": {"metadata": {"labels": {"a": "b"}},
                                                    "spec": {"containers": [{
                                                        "name": "c", "image": "c:1",
                                                        "resources": {"requests": {
                                                            "cpu": written}}}]}}}})
    requests = deploy["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]
    assert requests == {"cpu": stored}


def test_other_quantity_holders_are_canonical(sandbox: Sandbox) -> None:
    pvc = create(sandbox, {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                           "metadata": {"name": "d", "namespace": "default"},
                           "spec": {"accessModes": ["ReadWriteOnce"],
                                    "resources": {"requests": {"storage": "1024Mi"}}}})
    assert pvc["spec"]["resources"]["requests"] == {"storage": "1Gi"}
    quota = create(sandbox, {"apiVersion": "v1", "kind": "ResourceQuota",
                             "metadata": {"name": "q", "namespace": "default"},
                             "spec": {"hard": {"requests.cpu": "0.5", "pods": "10"}}})
    assert quota["spec"]["hard"] == {"requests.cpu": "500m", "pods": "10"}
    limits = create(sandbox, {"apiVersion": "v1", "kind": "LimitRange",
                              "metadata": {"name": "l", "namespace": "default"},
                              "spec": {"limits": [{"type": "Container",
                                                   "max": {"memory": "2048Mi"}}]}})
    item = limits["spec"]["limits"][0]
    assert item["default"] == {"memory": "2Gi"} and item["defaultRequest"] == {"memory": "2Gi"}
