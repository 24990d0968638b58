"""The sandbox over HTTP: discovery, CRUD, status codes, lists, selectors, dry-run, watch."""

from __future__ import annotations

import http.client
import json
import threading
import time
from typing import Any

import pytest

from auditor.sandbox import Sandbox


def call(sb: Sandbox, method: str, path: str, body: Any = None,
         content_type: str = "application/json",
         headers: dict[str, str] | None = None) -> tuple[int, Any]:
    conn = http.client.HTTPConnection(sb.host, sb.port, timeout=10)
    data = None
    if body is not None:
        data = body if isinstance(body, bytes | str) else json.dumps(body)
    hdrs = {"Content-Type": content_type, "User-Agent": "pytest-client/1.0", **(headers or {})}
    conn.request(method, path, body=data, headers=hdrs)
    resp = conn.getresponse()
    raw = resp.read()
    conn.close()
    try:
        return resp.status, json.loads(raw)
    except json.JSONDecodeError:
        return resp.status, raw.decode()


def deployment(name: str = "web", ns: str = "default", replicas: int | None = 2,
               image: str = "nginx:1.25") -> dict[str, Any]:
    spec: dict[str, Any] = {
        "selector": {"matchLabels": {"app": name}},
        "template": {"metadata": {"labels": {"app": name}},
                     "spec": {"containers": [{"name": name, "image": image,
                                              "ports": [{"containerPort": 80}]}]}},
    }
    if replicas is not None:
        spec["replicas"] = replicas
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": ns, "labels": {"app": name}}, "spec": spec}


DEPLOYS = "/apis/apps/v1/namespaces/default/deployments"


def test_discovery_lists_builtin_groups_and_resources(sandbox: Sandbox) -> None:
    status, version = call(sandbox, "GET", "/version")
    assert status == 200 and version["major"] == "1" and version["minor"] == "35"
    status, core = call(sandbox, "GET", "/api/v1")
    names = {r["name"]: r for r in core["resources"]}
    assert names["configmaps"]["shortNames"] == ["cm"] and names["configmaps"]["namespaced"]
    assert names["namespaces"]["namespaced"] is False
    assert "pods/status" in names
    status, groups = call(sandbox, "GET", "/apis")
    by_name = {g["name"]: g for g in groups["groups"]}
    assert by_name["autoscaling"]["preferredVersion"]["version"] == "v2"
    assert {"apps", "batch", "networking.k8s.io", "rbac.authorization.k8s.io", "policy",
            "discovery.k8s.io", "coordination.k8s.io", "apiextensions.k8s.io",
            "storage.k8s.io", "scheduling.k8s.io", "admissionregistration.k8s.io",
            "events.k8s.io"} <= set(by_name)
    status, apps = call(sandbox, "GET", "/apis/apps/v1")
    deploy = next(r for r in apps["resources"] if r["name"] == "deployments")
    assert deploy["kind"] == "Deployment" and deploy["singularName"] == "deployment"
    assert "watch" in deploy["verbs"] and deploy["categories"] == ["all"]
    scale = next(r for r in apps["resources"] if r["name"] == "deployments/scale")
    assert (scale["group"], scale["version"], scale["kind"]) == ("autoscaling", "v1", "Scale")


def test_seeded_cluster_objects(sandbox: Sandbox) -> None:
    _, nss = call(sandbox, "GET", "/api/v1/namespaces")
    assert [n["metadata"]["name"] for n in nss["items"]] == [
        "default", "kube-node-lease", "kube-public", "kube-system"]
    ns = nss["items"][0]
    assert ns["metadata"]["labels"] == {"kubernetes.io/metadata.name": "default"}
    assert ns["spec"] == {"finalizers": ["kubernetes"]} and ns["status"] == {"phase": "Active"}
    for name in ("default", "kube-system"):
        assert sandbox.get("v1", "ServiceAccount", name, "default") is not None
        cm = sandbox.get("v1", "ConfigMap", name, "kube-root-ca.crt")
        assert cm is not None and "ca.crt" in cm["data"]
        assert cm["metadata"]["managedFields"][0]["manager"] == "kube-controller-manager"
    svc = sandbox.get("v1", "Service", "default", "kubernetes")
    assert svc is not None and svc["spec"]["clusterIP"] == "10.96.0.1"


def test_create_sets_server_metadata_and_defaults(sandbox: Sandbox) -> None:
    status, created = call(sandbox, "POST", DEPLOYS, deployment(replicas=None))
    assert status == 201
    meta = created["metadata"]
    assert len(meta["uid"]) == 36 and meta["generation"] == 1
    assert meta["creationTimestamp"].endswith("Z") and len(meta["creationTimestamp"]) == 20
    assert int(meta["resourceVersion"]) > 0
    spec = created["spec"]
    assert spec["replicas"] == 1 and spec["revisionHistoryLimit"] == 10
    assert spec["progressDeadlineSeconds"] == 600
    assert spec["strategy"] == {"type": "RollingUpdate",
                                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}
    pod = spec["template"]["spec"]
    assert (pod["dnsPolicy"], pod["restartPolicy"], pod["schedulerName"]) == (
        "ClusterFirst", "Always", "default-scheduler")
    assert pod["terminationGracePeriodSeconds"] == 30 and pod["securityContext"] == {}
    c = pod["containers"][0]
    assert c["imagePullPolicy"] == "IfNotPresent" and c["ports"][0]["protocol"] == "TCP"
    assert c["terminationMessagePath"] == "/dev/termination-log"
    assert created["status"] == {}
    entry = meta["managedFields"][0]
    assert entry["manager"] == "pytest-client" and entry["operation"] == "Update"


def test_error_statuses_look_like_kube_apiserver(sandbox: Sandbox) -> None:
    status, body = call(sandbox, "GET", DEPLOYS + "/nope")
    assert status == 404
    assert body == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": 'deployments.apps "nope" not found', "reason": "NotFound",
                    "details": {"name": "nope", "group": "apps", "kind": "deployments"},
                    "code": 404}
    assert call(sandbox, "POST", DEPLOYS, deployment())[0] == 201
    status, body = call(sandbox, "POST", DEPLOYS, deployment())
    assert (status, body["reason"]) == (409, "AlreadyExists")
    status, body = call(sandbox, "POST", "/apis/apps/v1/namespaces/ghost/deployments",
                        deployment(ns="ghost"))
    assert (status, body["message"]) == (404, 'namespaces "ghost" not found')
    status, body = call(sandbox, "POST", DEPLOYS, b"\x0a\x0b", "application/vnd.kubernetes.protobuf")
    assert (status, body["reason"]) == (415, "UnsupportedMediaType")
    bad = deployment(name="bad")
    bad["spec"]["template"]["metadata"]["labels"] = {"app": "other"}
    status, body = call(sandbox, "POST", DEPLOYS, bad)
    assert (status, body["reason"]) == (422, "Invalid")
    assert body["details"]["causes"][0]["field"] == "spec.template.metadata.labels"
    status, body = call(sandbox, "GET", "/apis/nothing.example.com/v1/things")
    assert status == 404


def test_put_requires_current_resource_version(sandbox: Sandbox) -> None:
    _, created = call(sandbox, "POST", DEPLOYS, deployment())
    stale = json.loads(json.dumps(created))
    created["spec"]["replicas"] = 5
    status, updated = call(sandbox, "PUT", DEPLOYS + "/web", created)
    assert status == 200 and updated["metadata"]["generation"] == 2
    assert int(updated["metadata"]["resourceVersion"]) > int(stale["metadata"]["resourceVersion"])
    stale["spec"]["replicas"] = 7
    status, body = call(sandbox, "PUT", DEPLOYS + "/web", stale)
    assert status == 409 and body["reason"] == "Conflict"
    assert "the object has been modified" in body["message"]
    # a label change is not a spec change: generation stays
    updated["metadata"]["labels"]["team"] = "a"
    _, relabelled = call(sandbox, "PUT", DEPLOYS + "/web", updated)
    assert relabelled["metadata"]["generation"] == 2


def test_status_is_not_writable_through_the_main_resource(sandbox: Sandbox) -> None:
    _, created = call(sandbox, "POST", DEPLOYS, {**deployment(), "status": {"replicas": 9}})
    assert created["status"] == {}
    created["status"] = {"replicas": 3}
    _, updated = call(sandbox, "PUT", DEPLOYS + "/web", created)
    assert updated["status"] == {}
    status, body = call(sandbox, "PATCH", DEPLOYS + "/web/status",
                        {"status": {"replicas": 2, "readyReplicas": 2}},
                        "application/merge-patch+json")
    assert status == 200 and body["status"] == {"replicas": 2, "readyReplicas": 2}
    entry = next(e for e in body["metadata"]["managedFields"] if e.get("subresource") == "status")
    assert entry["fieldsV1"] == {"f:status": {"f:readyReplicas": {}, "f:replicas": {}}}


def test_list_pagination_selectors_and_item_shape(sandbox: Sandbox) -> None:
    for i in range(7):
        d = deployment(name=f"app-{i}")
        d["metadata"]["labels"]["tier"] = "front" if i % 2 else "back"
        assert call(sandbox, "POST", DEPLOYS, d)[0] == 201
    status, page = call(sandbox, "GET", DEPLOYS + "?limit=3")
    assert page["kind"] == "DeploymentList" and page["apiVersion"] == "apps/v1"
    assert page["metadata"]["remainingItemCount"] == 4
    # a real server's JSON list items of built-in kinds carry no apiVersion/kind
    assert "kind" not in page["items"][0] and "apiVersion" not in page["items"][0]
    names = [i["metadata"]["name"] for i in page["items"]]
    while page["metadata"].get("continue"):
        _, page = call(sandbox, "GET", DEPLOYS + "?limit=3&continue=" + page["metadata"]["continue"])
        names += [i["metadata"]["name"] for i in page["items"]]
    assert names == [f"app-{i}" for i in range(7)]
    _, sel = call(sandbox, "GET", DEPLOYS + "?labelSelector=tier%3Dfront")
    assert [i["metadata"]["name"] for i in sel["items"]] == ["app-1", "app-3", "app-5"]
    _, sel = call(sandbox, "GET", DEPLOYS + "?labelSelector=tier%20notin%20(front),app")
    assert len(sel["items"]) == 4
    _, sel = call(sandbox, "GET", DEPLOYS + "?labelSelector=!tier")
    assert sel["items"] == []
    _, sel = call(sandbox, "GET", "/apis/apps/v1/deployments?fieldSelector=metadata.name%3Dapp-2")
    assert [i["metadata"]["name"] for i in sel["items"]] == ["app-2"]
    _, sel = call(sandbox, "GET", DEPLOYS + "?fieldSelector=metadata.name!%3Dapp-2")
    assert len(sel["items"]) == 6
    status, body = call(sandbox, "GET", DEPLOYS + "?continue=garbage")
    assert status == 400
    _, page = call(sandbox, "GET", DEPLOYS + "?limit=2")
    sandbox.faults.expire_continue()
    status, body = call(sandbox, "GET", DEPLOYS + "?limit=2&continue=" + page["metadata"]["continue"])
    assert (status, body["reason"], body["code"]) == (410, "Expired", 410)


def test_dry_run_mutates_nothing(sandbox: Sandbox) -> None:
    rv_before = sandbox.store.rv
    status, body = call(sandbox, "POST", DEPLOYS + "?dryRun=All", deployment())
    assert status == 201 and body["spec"]["replicas"] == 2 and body["metadata"]["uid"]
    assert sandbox.get("apps/v1", "Deployment", "default", "web") is None
    assert sandbox.store.rv == rv_before
    call(sandbox, "POST", DEPLOYS, deployment())
    rv_before = sandbox.store.rv
    status, body = call(sandbox, "PATCH", DEPLOYS + "/web?dryRun=All",
                        {"spec": {"replicas": 9}}, "application/merge-patch+json")
    assert status == 200 and body["spec"]["replicas"] == 9
    status, _ = call(sandbox, "DELETE", DEPLOYS + "/web?dryRun=All")
    assert status == 200
    stored = sandbox.get("apps/v1", "Deployment", "default", "web")
    assert stored is not None and stored["spec"]["replicas"] == 2
    assert sandbox.store.rv == rv_before


def test_delete_and_namespace_cascade(sandbox: Sandbox) -> None:
    call(sandbox, "POST", "/api/v1/namespaces", {"metadata": {"name": "shop"}})
    assert sandbox.get("v1", "ServiceAccount", "shop", "default") is not None
    call(sandbox, "POST", "/apis/apps/v1/namespaces/shop/deployments", deployment(ns="shop"))
    status, body = call(sandbox, "DELETE", "/apis/apps/v1/namespaces/shop/deployments/web")
    assert status == 200 and body["status"] == "Success" and body["details"]["name"] == "web"
    call(sandbox, "POST", "/apis/apps/v1/namespaces/shop/deployments", deployment(ns="shop"))
    sandbox.store.namespace_deletion_delay = 0.3
    status, body = call(sandbox, "DELETE", "/api/v1/namespaces/shop")
    assert status == 200 and body["kind"] == "Namespace"
    assert body["status"]["phase"] == "Terminating" and "deletionTimestamp" in body["metadata"]
    # while terminating, contents are still there and can be deleted, but not added to
    status, _ = call(sandbox, "DELETE", "/apis/apps/v1/namespaces/shop/deployments/web")
    assert status == 200
    status, body = call(sandbox, "POST", "/api/v1/namespaces/shop/configmaps",
                        {"metadata": {"name": "late"}})
    assert (status, body["reason"]) == (403, "Forbidden")
    assert "because it is being terminated" in body["message"]
    time.sleep(0.6)
    assert sandbox.get("v1", "Namespace", None, "shop") is None
    assert sandbox.get("v1", "ConfigMap", "shop", "kube-root-ca.crt") is None


def test_watch_streams_changes_after_resource_version(sandbox: Sandbox) -> None:
    _, listing = call(sandbox, "GET", DEPLOYS)
    rv = listing["metadata"]["resourceVersion"]
    lines: list[dict[str, Any]] = []

    def watch() -> None:
        conn = http.client.HTTPConnection(sandbox.host, sandbox.port, timeout=10)
        conn.request("GET", f"{DEPLOYS}?watch=true&resourceVersion={rv}&timeoutSeconds=2")
        resp = conn.getresponse()
        for raw in resp:
            if raw.strip():
                lines.append(json.loads(raw))
        conn.close()

    t = threading.Thread(target=watch)
    t.start()
    time.sleep(0.2)
    call(sandbox, "POST", DEPLOYS, deployment())
    call(sandbox, "PATCH", DEPLOYS + "/web", {"spec": {"replicas": 4}},
         "application/merge-patch+json")
    call(sandbox, "DELETE", DEPLOYS + "/web")
    t.join(timeout=5)
    assert [e["type"] for e in lines] == ["ADDED", "MODIFIED", "DELETED"]
    assert lines[1]["object"]["spec"]["replicas"] == 4
    assert lines[0]["object"]["kind"] == "Deployment"


def test_faults_answer_with_status_and_retry_after(sandbox: Sandbox) -> None:
    sandbox.faults.add(method="GET", path_regex=r"/apis/apps/v1/deployments", status=429,
                       times=1, retry_after=1)
    conn = http.client.HTTPConnection(sandbox.host, sandbox.port, timeout=10)
    conn.request("GET", "/apis/apps/v1/deployments")
    resp = conn.getresponse()
    body = json.loads(resp.read())
    assert resp.status == 429 and resp.getheader("Retry-After") == "1"
    assert body["reason"] == "TooManyRequests"
    conn.request("GET", "/apis/apps/v1/deployments")  # same keep-alive connection
    resp = conn.getresponse()
    assert resp.status == 200 and json.loads(resp.read())["kind"] == "DeploymentList"
    conn.close()
    sandbox.faults.add(path_regex="/api/v1/configmaps", status=403)
    status, body = call(sandbox, "GET", "/api/v1/configmaps")
    assert (status, body["reason"]) == (403, "Forbidden")
    sandbox.faults.add(path_regex="/api/v1/secrets", delay=0.3, times=1)
    start = time.monotonic()
    assert call(sandbox, "GET", "/api/v1/secrets")[0] == 200
    assert time.monotonic() - start >= 0.3


def test_a_dropped_connection_cuts_the_response_midway(sandbox: Sandbox) -> None:
    sandbox.faults.add(method="GET", path_regex=r"^/api/v1/configmaps$", drop=True, times=1)
    conn = http.client.HTTPConnection(sandbox.host, sandbox.port, timeout=10)
    conn.request("GET", "/api/v1/configmaps")
    resp = conn.getresponse()
    assert resp.status == 200
    with pytest.raises(http.client.IncompleteRead):
        resp.read()
    conn.close()
    assert call(sandbox, "GET", "/api/v1/configmaps")[0] == 200, "once only"
    with pytest.raises(ValueError, match="either"):
        sandbox.faults.add(status=500, drop=True)


def test_faults_can_target_a_lists_first_page_or_its_continuations(sandbox: Sandbox) -> None:
    for i in range(4):
        call(sandbox, "POST", "/api/v1/namespaces/default/configmaps",
             {"metadata": {"name": f"cm-{i}"}})
    path = "/api/v1/namespaces/default/configmaps"
    sandbox.faults.add(path_regex=path, status=503, continued=True)
    status, first = call(sandbox, "GET", path + "?limit=2")
    assert status == 200
    status, _ = call(sandbox, "GET", f"{path}?limit=2&continue={first['metadata']['continue']}")
    assert status == 503
    sandbox.faults.clear()
    sandbox.faults.add(path_regex=path, status=503, continued=False)
    assert call(sandbox, "GET", path + "?limit=2")[0] == 503
    assert call(sandbox, "GET", f"{path}?limit=2&continue={first['metadata']['continue']}")[0] \
        == 200


def test_continue_tokens_expire_for_one_path_after_some_pages(sandbox: Sandbox) -> None:
    for i in range(6):
        call(sandbox, "POST", "/api/v1/namespaces/default/configmaps",
             {"metadata": {"name": f"cm-{i}"}})
    sandbox.faults.expire_continue(path_regex=r"^/api/v1/configmaps$", after=1)
    # A continuation of another list neither expires nor counts.
    _, other = call(sandbox, "GET", "/api/v1/namespaces?limit=1")
    other_token = other["metadata"]["continue"]
    assert call(sandbox, "GET", f"/api/v1/namespaces?limit=1&continue={other_token}")[0] == 200
    _, first = call(sandbox, "GET", "/api/v1/configmaps?limit=2")
    token = first["metadata"]["continue"]
    status, second = call(sandbox, "GET", f"/api/v1/configmaps?limit=2&continue={token}")
    assert status == 200, "the first continuation passes"
    token = second["metadata"]["continue"]
    status, body = call(sandbox, "GET", f"/api/v1/configmaps?limit=2&continue={token}")
    assert (status, body["reason"]) == (410, "Expired")
    assert call(sandbox, "GET", f"/api/v1/configmaps?limit=2&continue={token}")[0] == 200


def test_stopped_sandbox_refuses_connections() -> None:
    sb = Sandbox().start()
    port = sb.port
    assert call(sb, "GET", "/version")[0] == 200
    pooled = http.client.HTTPConnection(sb.host, port, timeout=5)
    pooled.request("GET", "/version")
    assert pooled.getresponse().read()
    sb.stop()
    # an already open keep-alive connection is cut too
    with pytest.raises((ConnectionError, http.client.HTTPException, OSError)):
        pooled.request("GET", "/version")
        pooled.getresponse().read()
    with pytest.raises(ConnectionRefusedError):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        conn.request("GET", "/version")


def test_restart_on_the_same_port_keeps_objects() -> None:
    sb = Sandbox().start()
    try:
        call(sb, "POST", DEPLOYS, deployment())
        port = sb.port
        sb.stop()
        sb.start()
        assert sb.port == port
        status, body = call(sb, "GET", DEPLOYS + "/web")
        assert status == 200 and body["spec"]["replicas"] == 2
    finally:
        sb.stop()


def test_watch_from_a_compacted_resource_version_is_gone(sandbox: Sandbox) -> None:
    sandbox.store.events.clear()
    call(sandbox, "POST", DEPLOYS, deployment())
    status, body = call(sandbox, "GET", DEPLOYS + "?watch=true&resourceVersion=2")
    # accepted, then a single ERROR event carrying the 410, as kube-apiserver does
    assert status == 200 and body["type"] == "ERROR"
    assert (body["object"]["reason"], body["object"]["code"]) == ("Expired", 410)
    assert body["object"]["message"].startswith("too old resource version: 2")


def test_watch_with_selector_sees_objects_enter_and_leave(sandbox: Sandbox) -> None:
    sandbox.load([deployment()])
    _, listing = call(sandbox, "GET", DEPLOYS)
    rv = listing["metadata"]["resourceVersion"]
    lines: list[dict[str, Any]] = []

    def watch() -> None:
        conn = http.client.HTTPConnection(sandbox.host, sandbox.port, timeout=10)
        conn.request("GET", f"{DEPLOYS}?watch=1&labelSelector=tier%3Dfront"
                     f"&resourceVersion={rv}&timeoutSeconds=1")
        lines.extend(json.loads(raw) for raw in conn.getresponse() if raw.strip())
        conn.close()

    t = threading.Thread(target=watch)
    t.start()
    time.sleep(0.2)
    for labels in ({"tier": "front"}, {"tier": "front", "x": "1"}, {"tier": "back"},
                   {"tier": "other"}):
        call(sandbox, "PATCH", DEPLOYS + "/web", {"metadata": {"labels": labels}},
             "application/merge-patch+json")
    t.join(timeout=5)
    assert [e["type"] for e in lines] == ["ADDED", "MODIFIED", "DELETED"]
    assert lines[-1]["object"]["metadata"]["labels"]["tier"] == "back"


def test_load_accepts_lists_and_orders_definitions_first(sandbox: Sandbox) -> None:
    widget = {"apiVersion": "example.com/v1", "kind": "Widget",
              "metadata": {"name": "w", "namespace": "team"}}
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": "widgets.example.com"},
           "spec": {"group": "example.com", "scope": "Namespaced",
                    "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                    "versions": [{"name": "v1", "served": True, "storage": True}]}}
    n = sandbox.load([{"apiVersion": "v1", "kind": "List", "items": [widget, crd]}])
    assert n == 2
    assert sandbox.get("example.com/v1", "Widget", "team", "w") is not None


def test_finalizers_hold_deletion_until_removed(sandbox: Sandbox) -> None:
    cms = "/api/v1/namespaces/default/configmaps"
    call(sandbox, "POST", cms, {"metadata": {"name": "held", "finalizers": ["example.com/x"]}})
    status, body = call(sandbox, "DELETE", cms + "/held")
    assert status == 202 and "deletionTimestamp" in body["metadata"]
    assert sandbox.get("v1", "ConfigMap", "default", "held") is not None
    status, body = call(sandbox, "PATCH", cms + "/held",
                        {"metadata": {"finalizers": ["example.com/x", "example.com/y"]}},
                        "application/merge-patch+json")
    assert status == 422 and "no new finalizers" in body["message"]
    status, _ = call(sandbox, "PATCH", cms + "/held", {"metadata": {"finalizers": None}},
                     "application/merge-patch+json")
    assert status == 200
    assert sandbox.get("v1", "ConfigMap", "default", "held") is None
    # the PVC protection finalizer is added on create and released at once on delete
    pvcs = "/api/v1/namespaces/default/persistentvolumeclaims"
    _, pvc = call(sandbox, "POST", pvcs, {"metadata": {"name": "data"}, "spec": {
        "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})
    assert pvc["metadata"]["finalizers"] == ["kubernetes.io/pvc-protection"]
    owned = pvc["metadata"]["managedFields"][0]["fieldsV1"]
    assert "f:finalizers" not in owned.get("f:metadata", {})  # admission's, not the client's
    status, _ = call(sandbox, "DELETE", pvcs + "/data")
    assert status == 200 and sandbox.get("v1", "PersistentVolumeClaim", "default", "data") is None


def test_aggregated_discovery_when_asked(sandbox: Sandbox) -> None:
    accept = ("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
              "application/json")
    _, apis = call(sandbox, "GET", "/apis", headers={"Accept": accept})
    assert apis["kind"] == "APIGroupDiscoveryList"
    groups = {g["metadata"]["name"]: g for g in apis["items"]}
    assert "" not in groups and [v["version"] for v in groups["autoscaling"]["versions"]] == [
        "v2", "v1"]
    deploy = next(r for r in groups["apps"]["versions"][0]["resources"]
                  if r["resource"] == "deployments")
    assert deploy["responseKind"] == {"group": "apps", "version": "v1", "kind": "Deployment"}
    assert deploy["scope"] == "Namespaced" and deploy["shortNames"] == ["deploy"]
    assert {s["subresource"] for s in deploy["subresources"]} == {"status", "scale"}
    _, core = call(sandbox, "GET", "/api", headers={"Accept": accept})
    assert [g["metadata"]["name"] for g in core["items"]] == [""]
    _, legacy = call(sandbox, "GET", "/api")
    assert legacy["kind"] == "APIVersions"


def test_concurrent_clients_get_consistent_answers(sandbox: Sandbox) -> None:
    errors: list[Any] = []

    def worker(n: int) -> None:
        try:
            for i in range(15):
                name = f"w{n}-{i}"
                status, _ = call(sandbox, "POST", "/api/v1/namespaces/default/configmaps",
                                 {"metadata": {"name": name}, "data": {"i": str(i)}})
                assert status == 201
                status, _ = call(sandbox, "PATCH", f"/api/v1/namespaces/default/configmaps/{name}",
                                 {"data": {"j": "x"}}, "application/merge-patch+json")
                assert status == 200
                status, page = call(sandbox, "GET", "/api/v1/configmaps?limit=7")
                assert status == 200 and 0 < len(page["items"]) <= 7
        except Exception as exc:  # collected: assertion errors in threads are otherwise lost
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == []
    _, listing = call(sandbox, "GET", "/api/v1/namespaces/default/configmaps")
    assert len(listing["items"]) == 6 * 15 + 1
    rvs = [int(i["metadata"]["resourceVersion"]) for i in listing["items"]]
    assert len(set(rvs)) == len(rvs)  # every write got its own resourceVersion
