"""The cluster-scoped kinds table, checked against Kubernetes' own generated client and schemas."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import kubernetes.client
import kubernetes_validate

from auditor.engine.kinds import CLUSTER_SCOPED, group_of, is_namespaced, scopes_from_crds

# Kinds no longer (or never) in the built-in OpenAPI: metrics-server's, and PSP (removed 1.25).
_NOT_IN_SCHEMAS = {("metrics.k8s.io", "NodeMetrics"), ("policy", "PodSecurityPolicy")}


def _client_operations() -> tuple[set[str], set[str]]:
    """Normalised kind names the generated client creates without / with a namespace."""
    cluster: set[str] = set()
    namespaced: set[str] = set()
    for name, cls in inspect.getmembers(kubernetes.client, inspect.isclass):
        if not name.endswith("Api") or name == "ApiClient":
            continue
        for method in dir(cls):
            if method.endswith("_with_http_info"):
                continue
            if method.startswith("create_namespaced_"):
                namespaced.add(method.removeprefix("create_namespaced_").replace("_", ""))
            elif method.startswith("create_"):
                cluster.add(method.removeprefix("create_").replace("_", ""))
    return cluster, namespaced


def test_table_matches_the_generated_client() -> None:
    cluster, namespaced = _client_operations()
    table = {kind.lower() for _group, kind in CLUSTER_SCOPED}
    # Every kind the client creates cluster-wide is in the table (except the generic custom one)…
    assert cluster - {"clustercustomobject"} <= table, cluster - table
    # …and nothing in the table is created inside a namespace.
    assert not table & namespaced


def test_table_kinds_exist_in_the_shipped_schemas() -> None:
    root = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    seen: set[tuple[str, str]] = set()
    for folder in root.glob("v*-local"):
        defs = json.loads((folder / "_definitions.json").read_text())["$defs"]
        for schema in defs.values():
            for gvk in schema.get("x-kubernetes-group-version-kind", []):
                seen.add((gvk["group"], gvk["kind"]))
    assert seen >= CLUSTER_SCOPED - _NOT_IN_SCHEMAS, CLUSTER_SCOPED - _NOT_IN_SCHEMAS - seen


def test_builtin_scopes() -> None:
    assert not is_namespaced("", "Namespace")
    assert not is_namespaced("rbac.authorization.k8s.io", "ClusterRoleBinding")
    assert not is_namespaced("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding")
    assert not is_namespaced("apiextensions.k8s.io", "CustomResourceDefinition")
    assert is_namespaced("apps", "Deployment")
    assert is_namespaced("rbac.authorization.k8s.io", "RoleBinding")
    assert is_namespaced("authorization.k8s.io", "LocalSubjectAccessReview")
    # Same kind name, other group: the group matters.
    assert is_namespaced("example.com", "Namespace")
    # Unknown custom kinds default to namespaced.
    assert is_namespaced("example.com", "Widget")


def test_discovery_wins_over_the_table() -> None:
    discovered = {("example.com", "Widget"): False, ("", "Namespace"): True}
    assert not is_namespaced("example.com", "Widget", discovered)
    assert is_namespaced("", "Namespace", discovered)
    assert not is_namespaced("", "Node", discovered)


def test_scopes_from_crds() -> None:
    crds = [
        {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
         "metadata": {"name": "clusterwidgets.example.com"},
         "spec": {"group": "example.com", "scope": "Cluster",
                  "names": {"kind": "ClusterWidget", "plural": "clusterwidgets"}}},
        {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
         "metadata": {"name": "widgets.example.com"},
         "spec": {"group": "example.com", "scope": "Namespaced", "names": {"kind": "Widget"}}},
        {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
         "metadata": {"name": "broken"}, "spec": "nonsense"},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}},
    ]
    scopes = scopes_from_crds(crds)
    assert scopes == {("example.com", "ClusterWidget"): False, ("example.com", "Widget"): True}
    assert not is_namespaced("example.com", "ClusterWidget", scopes)


def test_group_of() -> None:
    assert group_of("v1") == ""
    assert group_of("apps/v1") == "apps"
    assert group_of("rbac.authorization.k8s.io/v1") == "rbac.authorization.k8s.io"
