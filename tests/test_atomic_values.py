"""Atomic values, as the schemas mark them: a map or struct with
``x-kubernetes-map-type: atomic`` and a list without a map/set list type is one value, owned
whole by whoever wrote it last. A change inside one (a removal included) is that owner's; an
atomic list's drift is said item by item, with the leaf inside an item that changed."""

from __future__ import annotations

from typing import Any

import pytest

from auditor.engine import schema
from auditor.engine.compare import CompareSettings, compare_object
from auditor.engine.records import ResourceKey

SETTINGS = CompareSettings(secret_key=b"k" * 32)
T0, T1 = "2026-05-01T08:00:00Z", "2026-05-02T09:30:00Z"


def entry(manager: str, operation: str, fields: dict[str, Any], time: str = T1,
          api_version: str = "v1") -> dict[str, Any]:
    return {"manager": manager, "operation": operation, "apiVersion": api_version,
            "time": time, "fieldsType": "FieldsV1", "fieldsV1": fields}


def drifts(desired: dict[str, Any], live: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    result = compare_object(ResourceKey.of(live), desired, live, settings=SETTINGS)
    return [(d.path, d.op, d.manager, d.category) for d in result.drifts]


def with_meta(obj: dict[str, Any], managed: list[dict[str, Any]] | None) -> dict[str, Any]:
    meta = {**obj["metadata"], "uid": "u-1", "resourceVersion": "7"}
    if managed is not None:
        meta["managedFields"] = managed
    return {**obj, "metadata": meta}


# --------------------------------------------------------------------- the schema's marks


@pytest.mark.parametrize(("group", "version", "kind", "path", "atomic"), [
    ("", "v1", "Service", ("spec", "selector"), True),                       # map-type atomic
    ("apps", "v1", "Deployment", ("spec", "selector"), True),                # LabelSelector
    ("policy", "v1", "PodDisruptionBudget", ("spec", "selector"), True),
    ("networking.k8s.io", "v1", "NetworkPolicy", ("spec", "podSelector"), True),
    ("apps", "v1", "Deployment",
     ("spec", "template", "spec", "containers", "[]", "env", "[]", "valueFrom",
      "configMapKeyRef"), True),                                             # struct atomic
    ("rbac.authorization.k8s.io", "v1", "Role", ("rules",), True),           # atomic list
    ("autoscaling", "v2", "HorizontalPodAutoscaler", ("spec", "metrics"), True),
    ("", "v1", "ConfigMap", ("metadata", "labels"), False),                  # granular map
    ("apps", "v1", "Deployment", ("spec", "template", "spec", "containers"), False),
    ("", "v1", "Service", ("spec", "ports"), False),
    ("example.com", "v1", "Widget", ("spec", "anything"), None),            # no schema
])
def test_atomicity_comes_from_the_schema(group: str, version: str, kind: str,
                                         path: tuple[str, ...], atomic: bool | None) -> None:
    assert schema.is_atomic(group, version, kind, path) is atomic


def test_every_struct_the_schemas_mark_atomic_is_atomic_where_it_is_used() -> None:
    # Walk the built-in kinds' schemas: wherever a property resolves to a definition marked
    # map-type atomic, the engine calls the value atomic.
    definitions = schema._definitions()
    marked = {name for name, node in definitions.items()
              if node.get("x-kubernetes-map-type") == "atomic"}
    seen: set[str] = set()

    def walk(group: str, version: str, kind: str, node: dict[str, Any],
             path: tuple[str, ...], depth: int) -> None:
        if depth > 9:
            return
        for name, prop in (node.get("properties") or {}).items():
            ref = prop.get("$ref") or (prop.get("items") or {}).get("$ref") \
                if isinstance(prop, dict) else None
            target = ref.rpartition("/")[2] if isinstance(ref, str) else None
            here = (*path, name) if "$ref" in prop or "items" not in prop else (*path, name, "[]")
            if target in marked and "$ref" in prop:
                assert schema.is_atomic(group, version, kind, here) is True, (kind, here)
                seen.add(target)
            if target in definitions:
                walk(group, version, kind, definitions[target], here, depth + 1)

    for group, version, kind in (("apps", "v1", "Deployment"), ("", "v1", "Service"),
                                 ("networking.k8s.io", "v1", "NetworkPolicy"),
                                 ("policy", "v1", "PodDisruptionBudget")):
        name = schema._kind_definition(group, version, kind)
        assert name is not None
        walk(group, version, kind, definitions[name], (), 0)
    assert {"io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector",
            "io.k8s.api.core.v1.ConfigMapKeySelector"} <= seen


# --------------------------------------------------------------------- atomic maps/structs

SVC = {"apiVersion": "v1", "kind": "Service",
       "metadata": {"name": "api", "namespace": "pay", "labels": {"team": "pay", "tier": "b"}},
       "spec": {"selector": {"app": "api", "track": "stable"}, "ports": [{"port": 443}]}}


def service(selector: dict[str, str], labels: dict[str, str], managed: Any) -> dict[str, Any]:
    live = with_meta(SVC, managed)
    live["metadata"]["labels"] = labels
    live["spec"] = {"selector": selector, "type": "ClusterIP", "clusterIP": "10.1.2.3",
                    "ports": [{"port": 443, "protocol": "TCP", "targetPort": 443}]}
    return live


def test_a_key_removed_from_an_atomic_selector_is_its_owners_change() -> None:
    managed = [entry("flux", "Apply", {"f:metadata": {"f:labels": {"f:team": {}}},
                                       "f:spec": {"f:ports": {}}}, T0),
               entry("kubectl-edit", "Update", {"f:spec": {"f:selector": {}}})]
    live = service({"app": "api"}, {"team": "pay", "tier": "b"}, managed)
    assert drifts(SVC, live) == [("spec.selector.track", "removed", "kubectl-edit", "human")]


def test_a_label_removed_from_a_granular_map_still_has_no_owner() -> None:
    # `labels` is granular: an entry owning the (once empty) map is not the owner of a key.
    managed = [entry("flux", "Apply", {"f:metadata": {"f:labels": {}},
                                       "f:spec": {"f:selector": {}, "f:ports": {}}}, T0)]
    live = service({"app": "api", "track": "stable"}, {"team": "pay"}, managed)
    assert drifts(SVC, live) == [("metadata.labels.tier", "removed", "", "unknown")]


def test_a_match_label_changed_inside_a_label_selector_struct() -> None:
    pdb = {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
           "metadata": {"name": "api", "namespace": "pay"},
           "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "api",
                                                                       "track": "stable"}}}}
    live = with_meta(pdb, [entry("argocd-controller", "Apply", {"f:spec": {
        "f:maxUnavailable": {}}}, T0, "policy/v1"), entry("k9s", "Update", {"f:spec": {
            "f:selector": {}}}, api_version="policy/v1")])
    live["spec"] = {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "api2"}}}
    assert drifts(pdb, live) == [
        ("spec.selector.matchLabels.app", "changed", "k9s", "human"),
        ("spec.selector.matchLabels.track", "removed", "k9s", "human")]


def test_a_field_gitops_applied_and_git_dropped_is_not_out_of_band_drift() -> None:
    # Git no longer declares the `tier` label; only the GitOps manager ever owned it (it will
    # prune it on its next sync): the object is in sync as far as out-of-band changes go.
    desired = {**SVC, "metadata": {"name": "api", "namespace": "pay", "labels": {"team": "pay"}}}
    managed = [entry("argocd-controller", "Apply", {
        "f:metadata": {"f:labels": {"f:team": {}, "f:tier": {}}},
        "f:spec": {"f:selector": {}, "f:ports": {}}}, T0)]
    live = service({"app": "api", "track": "stable"}, {"team": "pay", "tier": "b"}, managed)
    assert drifts(desired, live) == []


# --------------------------------------------------------------------------- atomic lists

ROLE = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "deployer"},
        "rules": [{"apiGroups": ["apps"], "resources": ["deployments"],
                   "verbs": ["get", "list", "patch"]},
                  {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]}
RBAC = "rbac.authorization.k8s.io/v1"


def role(rules: list[dict[str, Any]], owner: str | None = "kubectl-edit") -> dict[str, Any]:
    managed = None if owner is None else [
        entry(owner, "Update", {"f:rules": {}}, api_version=RBAC)]
    live = with_meta(ROLE, managed)
    live["rules"] = rules
    return live


def test_a_rule_added_is_named_at_its_position_with_the_lists_owner() -> None:
    secrets = {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}
    live = role([*ROLE["rules"][:1], secrets, *ROLE["rules"][1:]])
    assert drifts(ROLE, live) == [("rules[1]", "added", "kubectl-edit", "human")]
    result = compare_object(ResourceKey.of(live), ROLE, live, settings=SETTINGS)
    assert result.drifts[0].live == secrets and result.drifts[0].desired is None


def test_a_rule_removed_is_named_at_its_position_in_git() -> None:
    live = role(ROLE["rules"][1:], owner="rbac-manager")
    assert drifts(ROLE, live) == [
        ("rules[0]", "removed", "rbac-manager", "controller")]


def test_a_rule_that_changed_says_which_leaf() -> None:
    changed = {**ROLE["rules"][0], "verbs": ["get", "list", "patch", "delete"]}
    live = role([changed, ROLE["rules"][1]])
    assert drifts(ROLE, live) == [("rules[0].verbs[3]", "added", "kubectl-edit", "human")]
    replaced = {**ROLE["rules"][1], "resources": ["secrets"]}
    live = role([ROLE["rules"][0], replaced])
    assert drifts(ROLE, live) == [("rules[1].resources[0]", "changed", "kubectl-edit", "human")]


def test_reordered_rules_are_the_list_changed() -> None:
    live = role(list(reversed(ROLE["rules"])))
    assert drifts(ROLE, live) == [("rules", "changed", "kubectl-edit", "human")]


def test_without_managed_fields_items_have_no_owner() -> None:
    secrets = {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}
    live = role([*ROLE["rules"], secrets], owner=None)
    assert drifts(ROLE, live) == [("rules[2]", "added", "", "unknown")]


def test_container_args_are_an_atomic_list_of_scalars() -> None:
    deploy = {"apiVersion": "apps/v1", "kind": "Deployment",
              "metadata": {"name": "w", "namespace": "pay"},
              "spec": {"selector": {"matchLabels": {"app": "w"}}, "template": {
                  "metadata": {"labels": {"app": "w"}}, "spec": {"containers": [
                      {"name": "w", "image": "w:1", "args": ["--port=80", "--v=1"]}]}}}}
    live = with_meta(deploy, [entry("kubectl-edit", "Update", {"f:spec": {"f:template": {
        "f:spec": {"f:containers": {'k:{"name":"w"}': {"f:args": {}}}}}}},
        api_version="apps/v1")])
    live["spec"] = {**deploy["spec"], "template": {**deploy["spec"]["template"], "spec": {
        "containers": [{"name": "w", "image": "w:1", "args": ["--port=80", "--v=4"]}]}}}
    assert drifts(deploy, live) == [
        ("spec.template.spec.containers[name=w].args[1]", "changed", "kubectl-edit", "human")]
