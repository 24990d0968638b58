"""The revert planner and the managedFields rewrite, as pure functions over small records."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import pytest

from auditor.config import RevertConfig
from auditor.engine.managers import Classifier
from auditor.engine.records import DriftItem, ObjectResult, ResourceKey
from auditor.errors import ConfigError
from auditor.ledger.reverts import LastAttempt
from auditor.revert.execute import apply_body, ownership_transfer
from auditor.revert.plan import opted_out, parse_selector, plan, rank

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
classify = Classifier(("argocd-controller", "drift-auditor"))


def key(kind: str, name: str, ns: str = "shop", group: str = "") -> ResourceKey:
    return ResourceKey(group, kind, ns, name)


def obj(k: ResourceKey, labels: dict[str, str] | None = None,
        annotations: dict[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": k.name, "namespace": k.namespace}
    if labels:
        meta["labels"] = labels
    if annotations:
        meta["annotations"] = annotations
    api = f"{k.group}/v1" if k.group else "v1"
    return {"apiVersion": api, "kind": k.kind, "metadata": meta, **extra}


def drifted(k: ResourceKey, *items: tuple[str, str]) -> ObjectResult:
    """``items``: (path, category)."""
    return ObjectResult(k, "v1", "drifted", tuple(
        DriftItem(path=p, op="changed", desired=1, live=2, manager=f"m-{c}", category=c)  # type: ignore[arg-type]
        for p, c in items))


def cfg(**kw: Any) -> RevertConfig:
    return RevertConfig(**{"mode": "enforce", **kw})


WEB = key("Deployment", "web", group="apps")
SVC = key("Service", "web")
NS = key("Namespace", "shop", ns="")
CM = key("ConfigMap", "settings")
CR = key("Widget", "w", group="example.com")
ROLE = key("Role", "reader", group="rbac.authorization.k8s.io")


def test_actions_come_in_dependency_order_and_deletions_last_in_reverse() -> None:
    stray_cm, stray_dep = key("ConfigMap", "stray"), key("Deployment", "old", group="apps")
    results = [drifted(CR, ("spec.size", "human")), drifted(WEB, ("spec.replicas", "human")),
               ObjectResult(SVC, "v1", "missing"), ObjectResult(NS, "v1", "missing"),
               drifted(ROLE, ("rules", "human")), drifted(CM, ("data.a", "human")),
               ObjectResult(stray_cm, "v1", "orphan"), ObjectResult(stray_dep, "apps/v1", "orphan")]
    desired = {k: obj(k) for k in (CR, WEB, SVC, NS, ROLE, CM)}
    live = {k: obj(k) for k in (CR, WEB, ROLE, CM, stray_cm, stray_dep)}
    p = plan(cfg(recreate_missing=True, prune=True, max_objects=20), results, desired, live, now=NOW)
    assert [(a.verb, a.key.kind) for a in p.actions] == [
        ("apply", "Namespace"), ("apply", "Role"), ("apply", "ConfigMap"), ("apply", "Service"),
        ("apply", "Deployment"), ("apply", "Widget"),
        ("delete", "Deployment"), ("delete", "ConfigMap")]
    assert rank(NS) < rank(key("CustomResourceDefinition", "x", "", "apiextensions.k8s.io")) \
        < rank(key("ServiceAccount", "a")) < rank(ROLE) < rank(CM) < rank(SVC) < rank(WEB) < rank(CR)


def test_missing_and_orphans_need_their_switches() -> None:
    results = [ObjectResult(SVC, "v1", "missing"), ObjectResult(CM, "v1", "orphan")]
    p = plan(cfg(), results, {SVC: obj(SVC)}, {CM: obj(CM)}, now=NOW)
    assert p.actions == ()
    assert {(s.key, s.why) for s in p.skipped} == {(SVC, "missing"), (CM, "orphan")}


def test_scope_by_kind_namespace_and_labels() -> None:
    other = key("ConfigMap", "x", ns="other")
    results = [drifted(WEB, ("spec.replicas", "human")), drifted(CM, ("data.a", "human")),
               drifted(other, ("data.a", "human"))]
    desired = {WEB: obj(WEB, {"tier": "front"}), CM: obj(CM, {"tier": "back"}), other: obj(other)}
    live = {k: obj(k) for k in desired}
    assert [a.key for a in plan(cfg(kinds=("Deployment.apps",)), results, desired, live,
                                now=NOW).actions] == [WEB]
    assert [a.key for a in plan(cfg(namespaces=("other",)), results, desired, live,
                                now=NOW).actions] == [other]
    selected = plan(cfg(label_selector="tier in (front, middle)"), results, desired, live, now=NOW)
    assert [a.key for a in selected.actions] == [WEB]
    # Git's labels decide, not live ones a human could change.
    live[WEB] = obj(WEB, {"tier": "none"})
    assert [a.key for a in plan(cfg(label_selector="tier=front"), results, desired, live,
                                now=NOW).actions] == [WEB]


@pytest.mark.parametrize(("text", "labels", "ok"), [
    ("app=web", {"app": "web"}, True),
    ("app==web,tier!=db", {"app": "web", "tier": "db"}, False),
    ("tier!=db", {}, True),
    ("app", {"app": "x"}, True),
    ("!app", {"app": "x"}, False),
    ("env notin (prod,staging)", {"env": "dev"}, True),
    ("env notin (prod,staging)", {"env": "prod"}, False),
    ("env in (prod, staging),app", {"env": "staging", "app": "a"}, True),
])
def test_label_selectors(text: str, labels: dict[str, str], ok: bool) -> None:
    assert all(r.matches(labels) for r in parse_selector(text)) is ok


def test_bad_selector_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"revert\.label_selector"):
        parse_selector("app in prod)")


def test_opt_out_on_live_or_in_git() -> None:
    ann = {"drift-auditor.io/revert": "false"}
    results = [drifted(WEB, ("spec.replicas", "human")), drifted(CM, ("data.a", "human"))]
    desired = {WEB: obj(WEB), CM: obj(CM, annotations=ann)}
    live = {WEB: obj(WEB, annotations=ann), CM: obj(CM)}
    p = plan(cfg(), results, desired, live, now=NOW)
    assert p.actions == () and {s.why for s in p.skipped} == {"opt-out"}
    assert not opted_out(obj(WEB, annotations={"drift-auditor.io/revert": "true"}),
                         "drift-auditor.io/revert")


def test_cap_blocks_the_whole_plan() -> None:
    keys = [key("ConfigMap", f"c{i}") for i in range(4)]
    results = [drifted(k, ("data.a", "human")) for k in keys]
    desired = {k: obj(k) for k in keys}
    assert plan(cfg(max_objects=4), results, desired, desired, now=NOW).capped is False
    capped = plan(cfg(max_objects=3), results, desired, desired, now=NOW)
    assert capped.capped and len(capped.actions) == 4


def test_controller_changes_are_not_reverted() -> None:
    only = drifted(WEB, ("spec.replicas", "controller"))
    mixed = drifted(CM, ("data.a", "human"), ("metadata.annotations.x", "controller"))
    listy = drifted(SVC, ("spec.ports[port=80].targetPort", "controller"),
                    ("spec.type", "human"))
    desired = {k: obj(k) for k in (WEB, CM, SVC)}
    p = plan(cfg(), [only, mixed, listy], desired, desired, now=NOW)
    assert {s.key: s.why for s in p.skipped} == {WEB: "controller", SVC: "controller"}
    [action] = p.actions
    assert action.key == CM and action.controller_paths == ("metadata.annotations.x",)
    body = apply_body(obj(CM, annotations={"x": "git", "y": "git"}),
                      drop=action.controller_paths)
    assert body["metadata"]["annotations"] == {"y": "git"}


def test_failed_reverts_back_off_unless_git_changed() -> None:
    results = [drifted(WEB, ("spec.replicas", "human"))]
    desired = {WEB: obj(WEB)}

    def last(failures: int, minutes_ago: int, dh: str = "h1") -> dict[ResourceKey, LastAttempt]:
        at = NOW.timestamp() - minutes_ago * 60
        stamp = datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {WEB: LastAttempt(WEB, "failed", "enforce", stamp, dh, "l", failures)}

    def planned(attempts: dict[ResourceKey, LastAttempt]) -> bool:
        p = plan(cfg(failure_backoff_minutes=60), results, desired, desired, last=attempts,
                 desired_hash=lambda o: "h1", now=NOW)
        return bool(p.actions)

    assert not planned(last(1, 30))
    assert planned(last(1, 61))
    assert not planned(last(3, 200))     # 60 * 2**2 = 240 minutes
    assert planned(last(3, 241))
    assert planned(last(1, 1, dh="h0"))  # Git changed since the failure: try now


def test_apply_body_strips_server_fields_and_turns_string_data_into_data() -> None:
    secret = {"apiVersion": "v1", "kind": "Secret",
              "metadata": {"name": "t", "namespace": "shop", "resourceVersion": "9",
                           "uid": "u", "managedFields": [{}]},
              "stringData": {"token": "v"}, "data": {"other": "eA=="}, "status": {}}
    body = apply_body(secret)
    assert body == {"apiVersion": "v1", "kind": "Secret",
                    "metadata": {"name": "t", "namespace": "shop"},
                    "data": {"other": "eA==", "token": base64.b64encode(b"v").decode()}}
    assert "stringData" in secret  # the desired object is not modified


def entry(manager: str, operation: str, fields: dict[str, Any], **kw: Any) -> dict[str, Any]:
    return {"manager": manager, "operation": operation, "apiVersion": "apps/v1",
            "time": "2026-11-25T10:00:00Z", "fieldsType": "FieldsV1", "fieldsV1": fields, **kw}


ENV_FOO: dict[str, Any] = {"f:spec": {"f:template": {"f:spec": {"f:containers": {'k:{"name":"web"}': {
    "f:env": {'k:{"name":"FOO"}': {".": {}, "f:name": {}, "f:value": {}}},
    "f:image": {}}}}}}}


def live_with(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop", "resourceVersion": "41",
                         "managedFields": list(entries)}}


def test_transfer_moves_human_fields_into_the_tool_apply_entry() -> None:
    argo = entry("argocd-controller", "Apply", {"f:spec": {"f:selector": {}}})
    hpa = entry("kube-controller-manager", "Update", {"f:spec": {"f:replicas": {}}},
                subresource="scale")
    human = entry("kubectl-set", "Update", ENV_FOO)
    label = entry("kubectl-label", "Update", {"f:metadata": {"f:labels": {"f:x": {}}}})
    body = {"apiVersion": "apps/v1", "kind": "Deployment", "spec": {}}
    t = ownership_transfer(live_with(argo, hpa, human, label), body, classify=classify,
                           field_manager="drift-auditor", now="2026-11-25T12:00:00Z")
    assert t is not None and t.managers == ("kubectl-label", "kubectl-set")
    test, replace = t.ops
    assert test == {"op": "test", "path": "/metadata/resourceVersion", "value": "41"}
    entries = replace["value"]
    assert [e["manager"] for e in entries] == ["argocd-controller", "kube-controller-manager",
                                                "drift-auditor"]
    mine = entries[-1]
    assert mine["operation"] == "Apply" and mine["apiVersion"] == "apps/v1"
    container = mine["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"][
        'k:{"name":"web"}']
    # The human's set as it was, so the next apply removes the item they added.
    assert container == {"f:env": {'k:{"name":"FOO"}': {".": {}, "f:name": {}, "f:value": {}}},
                         "f:image": {}}
    assert mine["fieldsV1"]["f:metadata"] == {"f:labels": {"f:x": {}}}


def test_transfer_leaves_replicas_alone_unless_git_declares_them() -> None:
    edit = entry("kubectl-edit", "Update", {"f:spec": {"f:replicas": {}, "f:paused": {}}})
    scale = entry("kubectl", "Update", {"f:spec": {"f:replicas": {}}}, subresource="scale")
    live = live_with(edit, scale)
    t = ownership_transfer(live, {"apiVersion": "apps/v1", "spec": {}}, classify=classify,
                           field_manager="drift-auditor", now="t")
    assert t is not None
    by = {(e["manager"], e.get("subresource", "")): e["fieldsV1"] for e in t.ops[1]["value"]}
    assert by[("kubectl-edit", "")] == {"f:spec": {"f:replicas": {}}}
    assert by[("kubectl", "scale")] == {"f:spec": {"f:replicas": {}}}
    assert by[("drift-auditor", "")] == {"f:spec": {"f:paused": {}}}
    declared = ownership_transfer(live, {"apiVersion": "apps/v1", "spec": {"replicas": 2}},
                                  classify=classify, field_manager="drift-auditor", now="t")
    assert declared is not None
    assert {e["manager"] for e in declared.ops[1]["value"]} == {"kubectl", "drift-auditor"}


def test_no_transfer_without_human_fields_or_at_another_version() -> None:
    argo = entry("argocd-controller", "Apply", {"f:spec": {"f:selector": {}}})
    body = {"apiVersion": "apps/v1"}
    assert ownership_transfer(live_with(argo), body, classify=classify,
                              field_manager="drift-auditor", now="t") is None
    old = {**entry("kubectl-set", "Update", ENV_FOO), "apiVersion": "apps/v1beta2"}
    assert ownership_transfer(live_with(old), body, classify=classify,
                              field_manager="drift-auditor", now="t") is None


def test_live_keeper_keeps_drifted_and_orphan_objects_only() -> None:
    from auditor.revert.stage import LiveKeeper

    stray = key("ConfigMap", "stray")
    elsewhere = key("ConfigMap", "x", ns="other")
    owned = obj(key("ConfigMap", "child"))
    owned["metadata"]["ownerReferences"] = [{"uid": "u"}]
    stream = [obj(WEB), obj(CM), obj(stray), obj(elsewhere), owned]
    keeper = LiveKeeper(iter(stream), {WEB: {}, CM: {}})
    results = {WEB: drifted(WEB, ("spec.replicas", "human")),
               CM: ObjectResult(CM, "v1", "in-sync"), stray: ObjectResult(stray, "v1", "orphan")}
    passed = []
    for item in keeper:
        k = ResourceKey.of(item)
        # Objects outside Git's namespaces, or owned by another object, never wait.
        assert (k in keeper.pending) == (k in results)
        if k in results:  # the pipeline notes a result before asking for the next object
            keeper.note(results[k])
        passed.append(item)
    assert passed == stream
    assert set(keeper.kept) == {WEB, stray} and keeper.pending == {}
    passthrough = LiveKeeper(iter(stream), None)
    assert list(passthrough) == stream and passthrough.pending == {}
