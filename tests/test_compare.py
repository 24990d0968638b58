"""The comparison against realistic live objects (tests/data/compare) changed the way real
clients change them: each case records the write in managedFields as the API server does
(manager names as kubectl 1.35, the HPA and Argo CD record them)."""

from __future__ import annotations

import copy
import time
from typing import Any

import orjson
import pytest
import yaml
from compare_support import DATA, DELETE, load_pair, record_update, without_managed_fields

from auditor.config import CompareConfig, IgnoreRule, ScopeConfig
from auditor.engine import compare as compare_mod
from auditor.engine.compare import CompareSettings, compare_all, compare_object
from auditor.engine.records import ObjectResult, ResourceKey

KEY = b"0123456789abcdef0123456789abcdef"
SETTINGS = CompareSettings(secret_key=KEY)

CONTAINER = ["spec", "template", "spec", "containers", {"name": "web"}]
WEB = "spec.template.spec.containers[name=web]"


def run(desired: dict[str, Any], live: dict[str, Any] | None,
        settings: CompareSettings = SETTINGS) -> ObjectResult:
    return compare_object(ResourceKey.of(desired), desired, live, settings=settings)


def summary(result: ObjectResult) -> list[tuple[str, str, str, str]]:
    return [(d.path, d.op, d.manager, d.category) for d in result.drifts]


# --------------------------------------------------------------------------- in sync


@pytest.mark.parametrize("name", ["deployment-web", "service-web", "configmap-web", "secret-web"])
def test_applied_objects_are_in_sync(name: str) -> None:
    desired, live = load_pair(name)
    assert run(desired, live).status == "in-sync"
    # `kubectl get -o json` omits managedFields: defaults still are not drift.
    assert run(desired, without_managed_fields(live)).status == "in-sync"


def test_reordered_lists_are_matched_by_key_not_index() -> None:
    desired, live = load_pair("deployment-web")
    container = desired["spec"]["template"]["spec"]["containers"][0]
    container["env"] = [{"name": "A", "value": "1"}, {"name": "LOG_LEVEL", "value": "info"}]
    live = record_update(live, "argocd-controller", [([*CONTAINER, "env", {"name": "A"}],
                                                      {"name": "A", "value": "1"})],
                         operation="Apply")
    live_env = live["spec"]["template"]["spec"]["containers"][0]["env"]
    assert [e["name"] for e in live_env] == ["LOG_LEVEL", "A"]
    assert run(desired, live).status == "in-sync"


def test_protocol_defaults_to_tcp_when_matching_ports() -> None:
    desired, live = load_pair("service-web")
    assert "protocol" not in desired["spec"]["ports"][0]
    assert live["spec"]["ports"][0]["protocol"] == "TCP"
    assert run(desired, live).status == "in-sync"


def test_controller_and_webhook_additions_are_not_drift() -> None:
    desired, live = load_pair("deployment-web")
    live = record_update(live, "linkerd-proxy-injector", [
        (["spec", "template", "metadata", "annotations", "linkerd.io/inject"], "enabled")])
    live = record_update(live, "kube-controller-manager", [
        (["metadata", "annotations", "deployment.kubernetes.io/revision"], "2")])
    assert run(desired, live).status == "in-sync"


def test_hpa_scaling_with_replicas_omitted_in_git_is_not_drift() -> None:
    desired, live = load_pair("deployment-web")
    del desired["spec"]["replicas"]
    live = record_update(live, "kube-controller-manager", [(["spec", "replicas"], 7)],
                         subresource="scale")
    assert run(desired, live).status == "in-sync"


# --------------------------------------------------------------------------- declared fields changed

CHANGED_CASES = [
    # (id, manager, operation, subresource, path steps, value, expected path, category)
    ("kubectl-set-image", "kubectl-set", "Update", "", [*CONTAINER, "image"], "shop/web:1.5.0-rc1",
     f"{WEB}.image", "human"),
    ("kubectl-scale", "kubectl", "Update", "scale", ["spec", "replicas"], 5, "spec.replicas", "human"),
    ("hpa-scale", "kube-controller-manager", "Update", "scale", ["spec", "replicas"], 8,
     "spec.replicas", "controller"),
    ("kubectl-edit-memory", "kubectl-edit", "Update", "", [*CONTAINER, "resources", "limits", "memory"],
     "512Mi", f"{WEB}.resources.limits.memory", "human"),
    ("kubectl-set-env", "kubectl-set", "Update", "", [*CONTAINER, "env", {"name": "LOG_LEVEL"}, "value"],
     "debug", f"{WEB}.env[name=LOG_LEVEL].value", "human"),
    ("kubectl-patch-probe", "kubectl-patch", "Update", "",
     [*CONTAINER, "readinessProbe", "httpGet", "path"], "/ready",
     f"{WEB}.readinessProbe.httpGet.path", "human"),
    ("kubectl-label-overwrite", "kubectl-label", "Update", "",
     ["metadata", "labels", "app.kubernetes.io/part-of"], "payments",
     'metadata.labels["app.kubernetes.io/part-of"]', "human"),
    ("go-http-client", "Go-http-client", "Update", "", [*CONTAINER, "image"], "shop/web:evil",
     f"{WEB}.image", "unknown"),
    ("dashboard", "Mozilla", "Update", "", ["spec", "replicas"], 1, "spec.replicas", "human"),
    ("lens", "node-fetch", "Update", "", [*CONTAINER, "image"], "shop/web:lens",
     f"{WEB}.image", "human"),
    ("argocd-stale-sync", "argocd-controller", "Apply", "", [*CONTAINER, "image"], "shop/web:1.3.0",
     f"{WEB}.image", "gitops"),
    ("operator", "shop-operator", "Update", "", [*CONTAINER, "image"], "shop/web:1.4.3",
     f"{WEB}.image", "controller"),
]


@pytest.mark.parametrize(("manager", "operation", "subresource", "steps", "value", "path", "category"),
                         [c[1:] for c in CHANGED_CASES], ids=[c[0] for c in CHANGED_CASES])
def test_declared_field_changed_is_attributed_to_the_live_owner(
        manager: str, operation: str, subresource: str, steps: list[Any], value: Any, path: str,
        category: str) -> None:
    desired, live = load_pair("deployment-web")
    live = record_update(live, manager, [(steps, value)], operation=operation,
                         subresource=subresource, time="2026-11-21T09:12:44Z")
    result = run(desired, live)
    assert result.status == "drifted"
    assert len(result.drifts) == 1
    drift = result.drifts[0]
    assert (drift.path, drift.op, drift.manager, drift.operation, drift.time, drift.category) == (
        path, "changed", manager, operation, "2026-11-21T09:12:44Z", category)
    assert drift.live == value


def test_changed_value_without_managed_fields_is_unknown() -> None:
    desired, live = load_pair("deployment-web")
    live = without_managed_fields(live)
    live["spec"]["template"]["spec"]["containers"][0]["image"] = "shop/web:9"
    result = run(desired, live)
    assert summary(result) == [(f"{WEB}.image", "changed", "", "unknown")]
    assert (result.drifts[0].desired, result.drifts[0].live) == ("shop/web:1.4.2", "shop/web:9")


def test_atomic_selector_change_is_attributed_through_the_atomic_owner() -> None:
    desired, live = load_pair("service-web")
    live = record_update(live, "kubectl-edit", [(["spec", "selector"], {"app.kubernetes.io/name": "x"})])
    # The fixture's argocd entry owns `f:selector: {}` whole; kubectl-edit now owns it.
    result = run(desired, live)
    assert summary(result) == [('spec.selector["app.kubernetes.io/name"]', "changed",
                                "kubectl-edit", "human")]


# --------------------------------------------------------------------------- undeclared fields added

ADDED_CASES = [
    ("kubectl-label", "kubectl-label", ["metadata", "labels", "team"], "payments",
     "metadata.labels.team"),
    ("kubectl-annotate", "kubectl-annotate", ["metadata", "annotations", "example.com/owner"], "bob",
     'metadata.annotations["example.com/owner"]'),
    ("kubectl-rollout-restart", "kubectl-rollout",
     ["spec", "template", "metadata", "annotations", "kubectl.kubernetes.io/restartedAt"],
     "2026-11-21T09:12:44Z",
     'spec.template.metadata.annotations["kubectl.kubernetes.io/restartedAt"]'),
    ("kubectl-set-env-new", "kubectl-set", [*CONTAINER, "env", {"name": "DEBUG"}],
     {"name": "DEBUG", "value": "1"}, f"{WEB}.env[name=DEBUG]"),
    ("kubectl-patch-sidecar", "kubectl-patch",
     ["spec", "template", "spec", "containers", {"name": "sidecar"}],
     {"name": "sidecar", "image": "busybox:1.36", "imagePullPolicy": "IfNotPresent",
      "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File"},
     "spec.template.spec.containers[name=sidecar]"),
    ("kubectl-edit-port", "kubectl-edit", [*CONTAINER, "ports", {"containerPort": 9090, "protocol": "TCP"}],
     {"containerPort": 9090, "protocol": "TCP", "name": "metrics"},
     f"{WEB}.ports[containerPort=9090,protocol=TCP]"),
    ("kubectl-edit-limit", "kubectl-edit", [*CONTAINER, "resources", "limits", "cpu"], "1",
     f"{WEB}.resources.limits.cpu"),
    ("kubectl-ssa", "kubectl", ["spec", "minReadySeconds"], 10, "spec.minReadySeconds"),
    ("k9s", "k9s", ["spec", "paused"], True, "spec.paused"),
    ("openapi-script", "OpenAPI-Generator", ["metadata", "labels", "scripted"], "yes",
     "metadata.labels.scripted"),
    ("kubectl-scale-undeclared", "kubectl", ["spec", "replicas"], 6, "spec.replicas"),
]


@pytest.mark.parametrize(("manager", "steps", "value", "path"), [c[1:] for c in ADDED_CASES],
                         ids=[c[0] for c in ADDED_CASES])
def test_undeclared_field_added_by_a_human_is_drift(manager: str, steps: list[Any], value: Any,
                                                    path: str) -> None:
    desired, live = load_pair("deployment-web")
    if path == "spec.replicas":
        del desired["spec"]["replicas"]
    live = record_update(live, manager, [(steps, value)],
                         subresource="scale" if path == "spec.replicas" else "")
    result = run(desired, live)
    assert summary(result) == [(path, "added", manager, "human")]
    assert result.drifts[0].desired is None


@pytest.mark.parametrize("manager", ["kube-controller-manager", "Go-http-client", "argocd-controller",
                                     "cert-manager-cainjector"])
def test_undeclared_field_added_by_a_non_human_is_not_drift(manager: str) -> None:
    desired, live = load_pair("deployment-web")
    live = record_update(live, manager, [(["metadata", "labels", "team"], "payments")])
    assert run(desired, live).status == "in-sync"


def test_human_owned_server_default_is_not_drift() -> None:
    desired, live = load_pair("deployment-web")
    # kubectl edit rewrote the defaulted pull policy with the same value it had.
    live = record_update(live, "kubectl-edit", [([*CONTAINER, "imagePullPolicy"], "IfNotPresent")])
    assert run(desired, live).status == "in-sync"


def test_additions_without_managed_fields_are_unknown() -> None:
    desired, live = load_pair("deployment-web")
    live = without_managed_fields(live)
    live["metadata"]["labels"]["team"] = "payments"
    live["metadata"]["annotations"]["deployment.kubernetes.io/revision"] = "4"
    result = run(desired, live)
    assert summary(result) == [("metadata.labels.team", "added", "", "unknown")]


def test_last_applied_configuration_is_evidence_of_a_terminal_apply() -> None:
    desired, live = load_pair("configmap-web")
    applied = orjson.dumps(desired).decode()
    live = record_update(live, "kubectl-client-side-apply", [
        (["metadata", "annotations", "kubectl.kubernetes.io/last-applied-configuration"], applied)])
    result = run(desired, live)
    assert summary(result) == [('metadata.annotations["kubectl.kubernetes.io/last-applied-configuration"]',
                                "added", "kubectl-client-side-apply", "human")]


# --------------------------------------------------------------------------- removed


def test_declared_list_item_missing_live_is_removed_with_unknown_owner() -> None:
    desired, live = load_pair("deployment-web")
    container = desired["spec"]["template"]["spec"]["containers"][0]
    container["ports"].append({"name": "metrics", "containerPort": 9090})
    result = run(desired, live)
    assert summary(result) == [(f"{WEB}.ports[containerPort=9090,protocol=TCP]", "removed", "", "unknown")]
    assert result.drifts[0].desired == {"name": "metrics", "containerPort": 9090}
    assert result.drifts[0].live is None


def test_declared_field_removed_live() -> None:
    desired, live = load_pair("deployment-web")
    live = record_update(live, "kubectl-edit", [([*CONTAINER, "readinessProbe"], DELETE)])
    result = run(desired, live)
    assert summary(result) == [(f"{WEB}.readinessProbe", "removed", "", "unknown")]


# --------------------------------------------------------------------------- kinds


def test_service_port_added_by_kubectl_edit() -> None:
    desired, live = load_pair("service-web")
    live = record_update(live, "kubectl-edit", [(["spec", "ports", {"port": 443, "protocol": "TCP"}],
                                                 {"name": "https", "port": 443, "protocol": "TCP",
                                                  "targetPort": 8443})])
    result = run(desired, live)
    assert summary(result) == [("spec.ports[port=443,protocol=TCP]", "added", "kubectl-edit", "human")]


def test_service_target_port_changed() -> None:
    desired, live = load_pair("service-web")
    live = record_update(live, "kubectl-patch", [(["spec", "ports", {"port": 80, "protocol": "TCP"},
                                                   "targetPort"], 8081)])
    result = run(desired, live)
    assert summary(result) == [("spec.ports[port=80,protocol=TCP].targetPort", "changed",
                                "kubectl-patch", "human")]
    assert (result.drifts[0].desired, result.drifts[0].live) == ("http", 8081)


def test_configmap_data_key_with_dots_is_quoted() -> None:
    desired, live = load_pair("configmap-web")
    new = live["data"]["app.properties"].replace("cache.ttl=300", "cache.ttl=5")
    live = record_update(live, "kubectl-edit", [(["data", "app.properties"], new)])
    result = run(desired, live)
    assert summary(result) == [('data["app.properties"]', "changed", "kubectl-edit", "human")]
    assert result.drifts[0].live == new


def test_quantities_compare_canonically() -> None:
    desired, live = load_pair("deployment-web")
    container = desired["spec"]["template"]["spec"]["containers"][0]
    container["resources"]["limits"]["memory"] = "0.25Gi"
    assert run(desired, live).status == "in-sync"
    container["resources"]["limits"]["memory"] = "300Mi"
    assert summary(run(desired, live)) == [(f"{WEB}.resources.limits.memory", "changed",
                                            "argocd-controller", "gitops")]


def test_secret_values_never_appear_in_results() -> None:
    desired, live = load_pair("secret-web")
    live = record_update(live, "kubectl-edit", [(["data", "password"], "aHVudGVyMg=="),
                                                (["data", "token"], "aHVudGVyMg==")])
    result = run(desired, live)
    assert summary(result) == [("data.password", "changed", "kubectl-edit", "human"),
                               ("data.token", "added", "kubectl-edit", "human")]
    text = repr(result)
    for raw in ("s3cr3t", "czNjcjN0", "hunter2", "aHVudGVyMg=="):
        assert raw not in text
    # values are the keyed hashes normalisation made, or nothing
    password = result.drifts[0]
    assert password.desired.startswith("hmac-sha256:") and password.live.startswith("hmac-sha256:")
    assert password.desired != password.live
    assert result.drifts[1].desired is None
    assert result.drifts[1].live.startswith("hmac-sha256:")


def test_secret_last_applied_annotation_is_redacted() -> None:
    desired, live = load_pair("secret-web")
    applied = orjson.dumps(desired).decode()
    live = record_update(live, "kubectl-client-side-apply", [
        (["metadata", "annotations", "kubectl.kubernetes.io/last-applied-configuration"], applied)])
    result = run(desired, live)
    assert [d.op for d in result.drifts] == ["added"]
    assert "s3cr3t" not in repr(result)


# --------------------------------------------------------------------------- ignore rules


def _settings(*rules: IgnoreRule) -> CompareSettings:
    return CompareSettings.from_config(CompareConfig(ignore=rules), secret_key=KEY)


def test_ignore_whole_object() -> None:
    desired, live = load_pair("deployment-web")
    live = record_update(live, "kubectl-set", [([*CONTAINER, "image"], "x")])
    result = run(desired, live, _settings(IgnoreRule(kind="Deployment", name="w*", reason="legacy")))
    assert (result.status, result.reason, result.drifts) == ("ignored", "legacy", ())


def test_ignore_paths_and_trusted_managers() -> None:
    desired, live = load_pair("deployment-web")
    live = record_update(live, "kubectl-set", [([*CONTAINER, "image"], "x")])
    live = record_update(live, "kubectl", [(["spec", "replicas"], 9)], subresource="scale")
    live = record_update(live, "kubectl-label", [(["metadata", "labels", "team"], "a")])
    both = run(desired, live, _settings(
        IgnoreRule(group="apps", paths=("spec.replicas", "spec.template.spec.containers[name=*].image"))))
    assert summary(both) == [("metadata.labels.team", "added", "kubectl-label", "human")]
    trusted = run(desired, live, _settings(IgnoreRule(managers=("kubectl-*",))))
    assert summary(trusted) == [("spec.replicas", "changed", "kubectl", "human")]
    other_ns = run(desired, live, _settings(IgnoreRule(namespace="prod", paths=("spec",))))
    assert len(other_ns.drifts) == 3


# --------------------------------------------------------------------------- streams and orphans


def _live_stream() -> list[dict[str, Any]]:
    out = []
    for name in ("deployment-web", "service-web", "configmap-web"):
        out.append(load_pair(name)[1])
    return out


def _builtin(kind: str, name: str, ns: str = "shop") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": kind, "metadata": {"name": name, "namespace": ns}}


def test_compare_all_statuses_and_orphans() -> None:
    desired = {}
    for name in ("deployment-web", "service-web", "configmap-web", "secret-web"):
        d = load_pair(name)[0]
        desired[ResourceKey.of(d)] = d
    stray = copy.deepcopy(load_pair("configmap-web")[1])
    stray["metadata"]["name"] = "hand-made"
    owned = copy.deepcopy(stray)
    owned["metadata"]["name"] = "owned"
    owned["metadata"]["ownerReferences"] = [{"apiVersion": "v1", "kind": "Foo", "name": "x", "uid": "1"}]
    elsewhere = copy.deepcopy(stray)
    elsewhere["metadata"]["namespace"] = "kube-system"
    event = {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e1", "namespace": "shop"}}
    cluster_scoped = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                      "metadata": {"name": "stray"}}
    live = [*_live_stream(), stray, owned, elsewhere, event, cluster_scoped,
            _builtin("ServiceAccount", "default"), _builtin("ConfigMap", "kube-root-ca.crt"),
            _builtin("Service", "kubernetes", "default")]
    desired[ResourceKey("", "Namespace", "", "default")] = {
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}}
    results = list(compare_all(desired, iter(live), settings=SETTINGS))
    got = {(r.key.kind, r.key.namespace, r.key.name): r.status for r in results}
    assert got == {
        ("Deployment", "shop", "web"): "in-sync",
        ("Service", "shop", "web"): "in-sync",
        ("ConfigMap", "shop", "web-config"): "in-sync",
        ("ConfigMap", "shop", "hand-made"): "orphan",
        ("Secret", "shop", "web-db"): "missing",
        ("Namespace", "", "default"): "missing",
    }


def test_compare_all_is_streaming() -> None:
    desired_obj, live_obj = load_pair("deployment-web")
    desired = {ResourceKey.of(desired_obj): desired_obj}
    consumed: list[int] = []

    def live() -> Any:
        for i in range(3):
            consumed.append(i)
            yield live_obj

    results = compare_all(desired, live(), settings=SETTINGS)
    first = next(results)
    assert first.status == "in-sync" and consumed == [0]
    assert list(results) == []  # the duplicate listings are compared once


def test_cluster_scoped_orphans_only_when_enabled() -> None:
    cr = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
          "metadata": {"name": "stray"}}
    enabled = CompareSettings(secret_key=KEY, cluster_scoped_orphans=True)
    assert [r.status for r in compare_all({}, [cr], settings=enabled)] == ["orphan"]
    assert list(compare_all({}, [cr], settings=SETTINGS)) == []


def test_scope_excludes_kinds_from_orphans() -> None:
    cm = _builtin("ConfigMap", "stray")
    scoped = CompareSettings(secret_key=KEY, scope=ScopeConfig(exclude_kinds=("ConfigMap",)))
    assert list(compare_all({}, [cm], settings=scoped, managed_namespaces={"shop"})) == []
    assert [r.status for r in compare_all({}, [cm], settings=SETTINGS,
                                          managed_namespaces={"shop"})] == ["orphan"]


def test_orphans_honour_whole_object_ignore() -> None:
    cm = _builtin("ConfigMap", "stray")
    settings = _settings(IgnoreRule(kind="ConfigMap", name="stray"))
    assert [r.status for r in compare_all({}, [cm], settings=settings,
                                          managed_namespaces={"shop"})] == ["ignored"]


# --------------------------------------------------------------------------- fast path


def test_in_sync_path_does_not_walk(monkeypatch: pytest.MonkeyPatch) -> None:
    desired, live = load_pair("deployment-web")

    def boom(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("the in-sync path walked the object")

    monkeypatch.setattr(compare_mod._Walk, "node", boom)
    monkeypatch.setattr(compare_mod, "ownership", boom)
    assert run(desired, live).status == "in-sync"


def test_in_sync_compare_is_cheap() -> None:
    desired, live = load_pair("deployment-web")
    want = SETTINGS.normalise(desired)
    have = SETTINGS.normalise(live)
    started = time.perf_counter()
    for _ in range(2000):
        assert compare_mod._subset(want, have)
    per_pair = (time.perf_counter() - started) / 2000
    assert per_pair < 200e-6  # deepdiff takes milliseconds per Deployment pair


def test_client_side_applied_deployment_from_live_fixtures() -> None:
    # tests/data/live (the normalisation fixtures): `kubectl apply -f` then `kubectl set image`.
    # Client-side apply is an Update, so kubectl-client-side-apply owns the defaulted fields
    # too (progressDeadlineSeconds, strategy, …): they must still not count as additions.
    live = yaml.safe_load((DATA.parent / "live" / "deployment-web.yaml").read_text())
    applied = live["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
    desired = orjson.loads(applied)
    result = run(desired, live)
    assert summary(result) == [
        ('metadata.annotations["kubectl.kubernetes.io/last-applied-configuration"]', "added",
         "kubectl-client-side-apply", "human"),
        ("spec.template.spec.containers[name=web].image", "changed", "kubectl-set", "human"),
    ]
    assert result.drifts[1].time == "2026-11-20T09:12:44Z"


# --------------------------------------------------------------------------- every kind in the corpus


def _corpus() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    from live_fixtures import desired_objects, live_objects

    live = live_objects()
    out = []
    for key, desired in sorted(desired_objects().items()):
        if key in live and run(desired, live[key]).status == "in-sync" and key[1] != "Secret":
            out.append(("/".join(key[:2]) + "/" + key[3], desired, live[key]))
    return out


CORPUS = _corpus()


def _first_leaf(desired: dict[str, Any], api_version: str, kind: str) -> tuple[list[Any], Any, str]:
    """The first declared scalar reachable through maps and keyed lists: its steps for
    record_update, its value, and its expected text path (written out independently)."""
    from auditor.engine.schema import merge_keys

    def plain(name: str) -> bool:
        return name.replace("_", "a").replace("-", "a").isalnum() and not name[0].isdigit()

    def walk(node: Any, steps: list[Any], text: str, schema_path: tuple[str, ...]) -> Any:
        if isinstance(node, dict):
            for k in sorted(node):
                if (not steps and k in ("apiVersion", "kind", "metadata")):
                    continue
                part = (("." if text else "") + k) if plain(k) else f'["{k}"]'
                found = walk(node[k], [*steps, k], text + part, (*schema_path, k))
                if found is not None:
                    return found
            return None
        if isinstance(node, list):
            group = api_version.rpartition("/")[0]
            keys = merge_keys(group, api_version.rpartition("/")[2], kind, schema_path, node)
            if not keys or not node or not isinstance(node[0], dict):
                return None
            item = node[0]
            ident = {k: item.get(k, "TCP" if k == "protocol" else None) for k in keys}
            part = "[" + ",".join(f"{k}={v}" for k, v in ident.items()) + "]"
            # merge-key fields identify the item: changing one is a remove plus an add
            rest = {k: v for k, v in item.items() if k not in keys}
            return walk(rest, [*steps, ident], text + part, (*schema_path, "[]"))
        if isinstance(node, str | int) and not isinstance(node, bool):
            return steps, node, text
        return None

    found = walk(desired, [], "", ())
    if found is None:  # objects whose spec is all atomic lists (RBAC): use the name label
        return ["metadata", "labels", "audited"], "x", "metadata.labels.audited"
    return found


@pytest.mark.parametrize(("desired", "live"), [c[1:] for c in CORPUS], ids=[c[0] for c in CORPUS])
def test_every_kind_human_addition_is_drift(desired: dict[str, Any], live: dict[str, Any]) -> None:
    changed = record_update(live, "kubectl-label", [(["metadata", "labels", "audit-owner"], "ops")])
    assert summary(run(desired, changed)) == [("metadata.labels.audit-owner", "added", "kubectl-label", "human")]
    by_controller = record_update(live, "some-operator", [(["metadata", "labels", "audit-owner"], "ops")])
    assert run(desired, by_controller).status == "in-sync"


@pytest.mark.parametrize(("desired", "live"), [c[1:] for c in CORPUS], ids=[c[0] for c in CORPUS])
def test_every_kind_declared_change_is_drift(desired: dict[str, Any], live: dict[str, Any]) -> None:
    steps, value, path = _first_leaf(desired, desired["apiVersion"], desired["kind"])
    if path == "metadata.labels.audited":
        desired = copy.deepcopy(desired)
        desired.setdefault("metadata", {}).setdefault("labels", {})["audited"] = "x"
        live = record_update(live, "argocd-controller", [(steps, "x")], operation="Apply")
        assert run(desired, live).status == "in-sync"
    new = value + 1 if isinstance(value, int) else f"{value}-edited"
    changed = record_update(live, "kubectl-edit", [(steps, new)])
    result = run(desired, changed)
    assert summary(result) == [(path, "changed", "kubectl-edit", "human")]
    assert result.drifts[0].live == new


def test_compare_all_records_problems_and_goes_on() -> None:
    from auditor.engine.records import Problem

    good_desired, good_live = load_pair("configmap-web")
    bad_desired, bad_live = load_pair("deployment-web")
    bad_desired["spec"] = "not a mapping"

    def fussy(obj: dict[str, Any], *, secret_key: bytes) -> dict[str, Any]:
        if not isinstance(obj.get("spec", {}), dict):
            raise ValueError("spec: expected a mapping")
        return SETTINGS.normalise(obj)

    settings = CompareSettings(secret_key=KEY, normaliser=fussy)
    desired = {ResourceKey.of(good_desired): good_desired, ResourceKey.of(bad_desired): bad_desired}
    problems: list[Problem] = []
    results = list(compare_all(desired, [bad_live, good_live], settings=settings, problems=problems))
    assert [(r.key.name, r.status) for r in results] == [("web-config", "in-sync")]
    assert problems == [Problem(where="Deployment.apps shop/web",
                                message="cannot compare: spec: expected a mapping")]
    with pytest.raises(ValueError, match="spec: expected a mapping"):
        list(compare_all(desired, [bad_live], settings=settings))


def test_flux_applied_deployment_changed_with_kubectl_edit() -> None:
    desired, live = load_pair("deployment-api-flux")
    result = run(desired, live)
    # Flux's own labels are owned by a GitOps manager: not drift.
    assert summary(result) == [
        (f"{WEB}.env[name=DEBUG]", "added", "kubectl-edit", "human"),
        (f"{WEB}.resources.limits.memory", "changed", "kubectl-edit", "human"),
    ]
    assert result.drifts[1].time == "2026-11-21T14:03:27Z"
    assert result.drifts[0].live == {"name": "DEBUG", "value": "1"}
