"""The default ClusterRoles and ClusterRoleBindings kube-apiserver creates when RBAC is on.

Copied from kubernetes/kubernetes ``plugin/pkg/auth/authorizer/rbac/bootstrappolicy``:
``policy.go`` builds them, and its golden files ``testdata/cluster-roles.yaml`` and
``testdata/cluster-role-bindings.yaml`` list them as an apiserver writes them (rules sorted
by the rule builder). The roles were read from a recent copy of that golden file (the one
whose ``system:kube-scheduler`` has ``leasecandidates`` and ``system:monitoring`` has
``/statusz``, as carried by aks-lts/kubernetes at ec451e29). Only the roles a user meets are here: ``cluster-admin``, the aggregated
``admin`` / ``edit`` / ``view`` with the ``system:aggregate-to-*`` roles that feed them,
``system:discovery``, ``system:basic-user`` and ``system:public-info-viewer``, and their
bindings; the component and controller roles (``system:node``, ``system:controller:*``, ...)
are left out. The aggregate roles keep every group upstream lists, served here or not, so
their rules read as on a real cluster.

Every object carries the ``kubernetes.io/bootstrapping: rbac-defaults`` label and the
``rbac.authorization.kubernetes.io/autoupdate: "true"`` annotation (``addDefaultMetadata``).
Bindings follow current clusters: ``system:discovery`` and ``system:basic-user`` are bound to
``system:authenticated`` only (``system:unauthenticated`` was dropped in 1.14), and
``system:public-info-viewer`` to both.

The roles are as the apiserver creates them: ``admin``, ``edit`` and ``view`` with
``rules: null`` until the clusterrole-aggregation controller fills them;
:func:`auditor.sandbox.rbac.bootstrap_objects` gives them filled, as a running cluster
shows them.
"""

from __future__ import annotations

import copy
from typing import Any

RBAC_GROUP = "rbac.authorization.k8s.io"
API_VERSION = f"{RBAC_GROUP}/v1"
BOOTSTRAP_LABEL = {"kubernetes.io/bootstrapping": "rbac-defaults"}
AUTOUPDATE_ANNOTATION = {"rbac.authorization.kubernetes.io/autoupdate": "true"}
AGGREGATE_TO_ADMIN = f"{RBAC_GROUP}/aggregate-to-admin"
AGGREGATE_TO_EDIT = f"{RBAC_GROUP}/aggregate-to-edit"
AGGREGATE_TO_VIEW = f"{RBAC_GROUP}/aggregate-to-view"

# bootstrappolicy's verb sets, sorted as the rule builder sorts them.
READ = ("get", "list", "watch")
WRITE = ("create", "delete", "deletecollection", "patch", "update")
READ_WRITE = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


def _rule(verbs: tuple[str, ...] | str, groups: tuple[str, ...] | str = (),
          resources: tuple[str, ...] | str = (), urls: tuple[str, ...] = ()) -> dict[str, Any]:
    """A PolicyRule, keys in the API's field order."""
    def listed(value: tuple[str, ...] | str) -> list[str]:
        return [value] if isinstance(value, str) else list(value)

    rule: dict[str, Any] = {"verbs": listed(verbs)}
    if urls:
        rule["nonResourceURLs"] = list(urls)
    else:
        rule["apiGroups"] = listed(groups)
        rule["resources"] = listed(resources)
    return rule


# system:aggregate-to-admin: the admin powers beyond edit.
_AGGREGATE_TO_ADMIN_RULES = [
    _rule("create", "authorization.k8s.io", "localsubjectaccessreviews"),
    _rule(READ_WRITE, RBAC_GROUP, ("rolebindings", "roles")),
]

# system:aggregate-to-edit: writes to user workloads, reads of escalating resources.
_AGGREGATE_TO_EDIT_RULES = [
    _rule(READ, "", ("pods/attach", "pods/exec", "pods/portforward", "pods/proxy", "secrets",
                     "services/proxy")),
    _rule("impersonate", "", "serviceaccounts"),
    _rule(WRITE, "", ("pods", "pods/attach", "pods/exec", "pods/portforward", "pods/proxy")),
    _rule("create", "", "pods/eviction"),
    _rule(WRITE, "", ("configmaps", "persistentvolumeclaims", "replicationcontrollers",
                      "replicationcontrollers/scale", "secrets", "serviceaccounts", "services",
                      "services/proxy")),
    _rule("create", "", "serviceaccounts/token"),
    _rule(WRITE, ("", "events.k8s.io"), "events"),
    _rule(WRITE, "apps", ("daemonsets", "deployments", "deployments/rollback",
                          "deployments/scale", "replicasets", "replicasets/scale",
                          "statefulsets", "statefulsets/scale")),
    _rule(WRITE, "autoscaling", "horizontalpodautoscalers"),
    _rule(WRITE, "batch", ("cronjobs", "jobs")),
    _rule(WRITE, "extensions", ("daemonsets", "deployments", "deployments/rollback",
                                "deployments/scale", "ingresses", "networkpolicies",
                                "replicasets", "replicasets/scale",
                                "replicationcontrollers/scale")),
    _rule(WRITE, "policy", "poddisruptionbudgets"),
    _rule(WRITE, "networking.k8s.io", ("ingresses", "networkpolicies")),
    _rule(READ_WRITE, "coordination.k8s.io", "leases"),
    _rule(WRITE, "resource.k8s.io", ("resourceclaims", "resourceclaimtemplates")),
]

# system:aggregate-to-view: reads of non-escalating resources (no secrets, no RBAC).
_AGGREGATE_TO_VIEW_RULES = [
    _rule(READ, "", ("configmaps", "endpoints", "persistentvolumeclaims",
                     "persistentvolumeclaims/status", "pods", "replicationcontrollers",
                     "replicationcontrollers/scale", "serviceaccounts", "services",
                     "services/status")),
    _rule(READ, "", ("bindings", "limitranges", "namespaces/status", "pods/log", "pods/status",
                     "replicationcontrollers/status", "resourcequotas",
                     "resourcequotas/status")),
    # Reading namespaces at the namespace scope means reading *this* namespace.
    _rule(READ, "", "namespaces"),
    _rule(READ, ("", "events.k8s.io"), "events"),
    _rule(READ, "discovery.k8s.io", "endpointslices"),
    _rule(READ, "apps", ("controllerrevisions", "daemonsets", "daemonsets/status",
                         "deployments", "deployments/scale", "deployments/status",
                         "replicasets", "replicasets/scale", "replicasets/status",
                         "statefulsets", "statefulsets/scale", "statefulsets/status")),
    _rule(READ, "autoscaling", ("horizontalpodautoscalers", "horizontalpodautoscalers/status")),
    _rule(READ, "batch", ("cronjobs", "cronjobs/status", "jobs", "jobs/status")),
    _rule(READ, "extensions", ("daemonsets", "daemonsets/status", "deployments",
                               "deployments/scale", "deployments/status", "ingresses",
                               "ingresses/status", "networkpolicies", "replicasets",
                               "replicasets/scale", "replicasets/status",
                               "replicationcontrollers/scale")),
    _rule(READ, "policy", ("poddisruptionbudgets", "poddisruptionbudgets/status")),
    _rule(READ, "networking.k8s.io", ("ingresses", "ingresses/status", "networkpolicies")),
    _rule(READ, "resource.k8s.io", ("resourceclaims", "resourceclaims/status",
                                    "resourceclaimtemplates")),
]


def _metadata(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    # Labels sorted by key, as the API server's JSON writes a map.
    return {"name": name,
            "labels": dict(sorted({**BOOTSTRAP_LABEL, **(labels or {})}.items())),
            "annotations": dict(AUTOUPDATE_ANNOTATION)}


def _cluster_role(name: str, rules: list[dict[str, Any]] | None, *,
                  labels: dict[str, str] | None = None,
                  aggregate_label: str = "") -> dict[str, Any]:
    role: dict[str, Any] = {"kind": "ClusterRole", "apiVersion": API_VERSION,
                            "metadata": _metadata(name, labels), "rules": copy.deepcopy(rules)}
    if aggregate_label:
        role["aggregationRule"] = {"clusterRoleSelectors": [
            {"matchLabels": {aggregate_label: "true"}}]}
    return role


def _cluster_role_binding(name: str, groups: tuple[str, ...]) -> dict[str, Any]:
    return {"kind": "ClusterRoleBinding", "apiVersion": API_VERSION,
            "metadata": _metadata(name),
            "subjects": [{"kind": "Group", "apiGroup": RBAC_GROUP, "name": g} for g in groups],
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": name}}


def default_cluster_roles() -> list[dict[str, Any]]:
    """The default ClusterRoles, sorted by name as the golden file lists them; fresh copies
    on each call."""
    return [
        _cluster_role("admin", None, aggregate_label=AGGREGATE_TO_ADMIN),
        # A "root" role which can do absolutely anything.
        _cluster_role("cluster-admin", [_rule("*", "*", "*"), _rule("*", urls=("*",))]),
        _cluster_role("edit", None, labels={AGGREGATE_TO_ADMIN: "true"},
                      aggregate_label=AGGREGATE_TO_EDIT),
        _cluster_role("system:aggregate-to-admin", _AGGREGATE_TO_ADMIN_RULES,
                      labels={AGGREGATE_TO_ADMIN: "true"}),
        _cluster_role("system:aggregate-to-edit", _AGGREGATE_TO_EDIT_RULES,
                      labels={AGGREGATE_TO_EDIT: "true"}),
        _cluster_role("system:aggregate-to-view", _AGGREGATE_TO_VIEW_RULES,
                      labels={AGGREGATE_TO_VIEW: "true"}),
        # Enough for a user to learn about themselves.
        _cluster_role("system:basic-user", [
            _rule("create", "authorization.k8s.io",
                  ("selfsubjectaccessreviews", "selfsubjectrulesreviews")),
            _rule("create", "authentication.k8s.io", "selfsubjectreviews")]),
        # Enough to tell the server is ready and to discover and negotiate API versions.
        _cluster_role("system:discovery", [_rule("get", urls=(
            "/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi",
            "/openapi/*", "/readyz", "/version", "/version/"))]),
        # Non-sensitive cluster information, for anyone.
        _cluster_role("system:public-info-viewer", [_rule("get", urls=(
            "/healthz", "/livez", "/readyz", "/version", "/version/"))]),
        _cluster_role("view", None, labels={AGGREGATE_TO_EDIT: "true"},
                      aggregate_label=AGGREGATE_TO_VIEW),
    ]


def default_cluster_role_bindings() -> list[dict[str, Any]]:
    """The default ClusterRoleBindings of those roles, sorted by name."""
    return [
        _cluster_role_binding("cluster-admin", ("system:masters",)),
        _cluster_role_binding("system:basic-user", ("system:authenticated",)),
        _cluster_role_binding("system:discovery", ("system:authenticated",)),
        _cluster_role_binding("system:public-info-viewer",
                              ("system:authenticated", "system:unauthenticated")),
    ]
