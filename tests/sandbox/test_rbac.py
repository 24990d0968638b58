"""RBAC authorization, its 403 and the default roles, as pure functions (no HTTP).

Each table row cites where Kubernetes states the behaviour:

* [docs] kubernetes.io/docs/reference/access-authn-authz/rbac/ (kubernetes/website
  ``content/en/docs/reference/access-authn-authz/rbac.md``) and its examples;
* [rbac_test] kubernetes/kubernetes ``plugin/pkg/auth/authorizer/rbac/rbac_test.go``
  (``TestAuthorizer``, ``TestRuleMatches``);
* [rule_test] ``pkg/registry/rbac/validation/rule_test.go`` (``TestAppliesTo``,
  ``TestDefaultRuleResolver``);
* [locator_test] ``plugin/pkg/auth/authorizer/rbac/subject_locator_test.go``;
* [aggregation_test] ``pkg/controller/clusterroleaggregation/clusterroleaggregation_controller_test.go``;
* [rule.go], [errors.go], [requestinfo.go]: the source the expectation is read from
  (``pkg/registry/rbac/validation/rule.go``,
  ``staging/src/k8s.io/apiserver/pkg/endpoints/handlers/responsewriters/errors.go`` with
  ``apimachinery/pkg/api/errors.NewForbidden``,
  ``staging/src/k8s.io/apiserver/pkg/endpoints/request/requestinfo.go``);
* [bootstrap]: ``plugin/pkg/auth/authorizer/rbac/bootstrappolicy/testdata/*.yaml``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pytest

from auditor.sandbox.rbac import (
    Attributes,
    Authorizer,
    Decision,
    UserInfo,
    aggregate_cluster_roles,
    aggregated_rules,
    bootstrap_objects,
    denial_message,
    forbidden_error,
    forbidden_message,
    forbidden_status,
    go_quote,
    label_selector_matches,
    name_from_field_selector,
    rule_allows,
)
from auditor.sandbox.rbac_defaults import default_cluster_role_bindings

Obj = dict[str, Any]
RBAC = "rbac.authorization.k8s.io"


# --- building RBAC objects and requests ------------------------------------------------------


def rule(verbs: str, groups: str = "", resources: str = "", urls: str = "",
         names: str = "") -> Obj:
    """A PolicyRule from comma lists, like rbac_test.go's ``newRule``."""
    out: Obj = {"verbs": verbs.split(",")}
    if urls:
        out["nonResourceURLs"] = urls.split(",")
    else:
        out["apiGroups"] = groups.split(",")
        out["resources"] = resources.split(",")
    if names:
        out["resourceNames"] = names.split(",")
    return out


def role(name: str, namespace: str, *rules: Obj) -> Obj:
    return {"kind": "Role", "metadata": {"name": name, "namespace": namespace},
            "rules": list(rules)}


def cluster_role(name: str, *rules: Obj, labels: Mapping[str, str] | None = None,
                 selectors: list[Obj] | None = None) -> Obj:
    obj: Obj = {"kind": "ClusterRole", "metadata": {"name": name, "labels": dict(labels or {})},
                "rules": list(rules)}
    if selectors is not None:
        obj["aggregationRule"] = {"clusterRoleSelectors": selectors}
    return obj


def subject(text: str) -> Obj:
    """``Kind:name`` or ``ServiceAccount:namespace/name`` (rbac_test.go's subject strings)."""
    kind, _, name = text.partition(":")
    if kind == "ServiceAccount":
        namespace, _, sa = name.rpartition("/")
        out: Obj = {"kind": kind, "name": sa}
        if namespace:
            out["namespace"] = namespace
        return out
    return {"kind": kind, "apiGroup": RBAC, "name": name}


def binding(name: str, role_name: str, *subjects: str, namespace: str = "",
            role_kind: str = "ClusterRole") -> Obj:
    """A RoleBinding in ``namespace``, or a ClusterRoleBinding without one."""
    meta: Obj = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    return {"kind": "RoleBinding" if namespace else "ClusterRoleBinding", "metadata": meta,
            "subjects": [subject(s) for s in subjects],
            "roleRef": {"apiGroup": RBAC, "kind": role_kind, "name": role_name}}


def authorizer(objects: Iterable[Obj]) -> Authorizer:
    stored = list(objects)

    def lookup(kind: str, namespace: str | None) -> list[Obj]:
        return [o for o in stored if o["kind"] == kind
                and (o["metadata"].get("namespace") or None) == namespace]

    return Authorizer(lookup)


def req(user: str, verb: str, resource: str = "", *, groups: Iterable[str] = (),
        ns: str = "", group: str = "", sub: str = "", name: str = "",
        path: str | None = None) -> Attributes:
    who = UserInfo(user, groups=tuple(groups))
    if path is not None:
        return Attributes(who, verb, resource_request=False, path=path)
    return Attributes(who, verb, namespace=ns, api_group=group, resource=resource,
                      subresource=sub, name=name)


# --- [docs] the examples of "Using RBAC Authorization" ---------------------------------------

DOCS_OBJECTS = [
    # Role example: pod-reader in "default", bound to jane by RoleBinding read-pods.
    role("pod-reader", "default", rule("get,watch,list", "", "pods")),
    binding("read-pods", "pod-reader", "User:jane", namespace="default", role_kind="Role"),
    # ClusterRole example: secret-reader, granted to dave in "development" only by a
    # RoleBinding, and to the "manager" group everywhere by a ClusterRoleBinding.
    cluster_role("secret-reader", rule("get,watch,list", "", "secrets")),
    binding("read-secrets", "secret-reader", "User:dave", namespace="development"),
    binding("read-secrets-global", "secret-reader", "Group:manager"),
    # Referring to resources: pods and the pods/log subresource.
    role("pod-and-pod-logs-reader", "default", rule("get,list", "", "pods,pods/log")),
    binding("logs", "pod-and-pod-logs-reader", "User:logger", namespace="default",
            role_kind="Role"),
    # resourceNames: get and update one ConfigMap.
    role("configmap-updater", "default",
         rule("update,get", "", "configmaps", names="my-configmap")),
    binding("cm", "configmap-updater", "User:cm-user", namespace="default", role_kind="Role"),
    # nonResourceURLs "/healthz" and all its subpaths, GET and POST.
    cluster_role("healthz", rule("get,post", urls="/healthz,/healthz/*")),
    binding("healthz", "healthz", "User:prober"),
    # Aggregated ClusterRoles: monitoring, filled from monitoring-endpoints.
    cluster_role("monitoring", selectors=[
        {"matchLabels": {"rbac.example.com/aggregate-to-monitoring": "true"}}]),
    cluster_role("monitoring-endpoints", rule("get,list,watch", "", "services,endpoints,pods"),
                 labels={"rbac.example.com/aggregate-to-monitoring": "true"}),
    binding("monitoring", "monitoring", "User:monitor"),
    # Role binding examples: the default ServiceAccount of kube-system, all ServiceAccounts
    # of "qa", all ServiceAccounts.
    binding("sa-reads-pods", "pod-reader", "ServiceAccount:kube-system/default",
            namespace="default", role_kind="Role"),
    binding("qa-secrets", "secret-reader", "Group:system:serviceaccounts:qa", namespace="qa"),
]

SA_KUBE_SYSTEM = "system:serviceaccount:kube-system:default"

DOCS_CASES: list[tuple[str, Attributes, bool, str]] = [
    # (case, request, allowed, reason if allowed / forbidden message if denied)
    ("pod-reader lets jane read pods in default",
     req("jane", "get", "pods", ns="default", name="web"), True,
     'RBAC: allowed by RoleBinding "read-pods/default" of Role "pod-reader" to User "jane"'),
    ("pod-reader: list is one of its verbs",
     req("jane", "list", "pods", ns="default"), True,
     'RBAC: allowed by RoleBinding "read-pods/default" of Role "pod-reader" to User "jane"'),
    ("a Role grants only in its namespace",
     req("jane", "list", "pods", ns="kube-system"), False,
     'pods is forbidden: User "jane" cannot list resource "pods" in API group "" '
     'in the namespace "kube-system"'),
    ("pod-reader does not create",
     req("jane", "create", "pods", ns="default"), False,
     'pods is forbidden: User "jane" cannot create resource "pods" in API group "" '
     'in the namespace "default"'),
    ("a RoleBinding to a ClusterRole grants in the binding's namespace",
     req("dave", "get", "secrets", ns="development", name="db"), True,
     'RBAC: allowed by RoleBinding "read-secrets/development" of ClusterRole "secret-reader" '
     'to User "dave"'),
    ("... and only there",
     req("dave", "get", "secrets", ns="default", name="db"), False,
     'secrets "db" is forbidden: User "dave" cannot get resource "secrets" in API group "" '
     'in the namespace "default"'),
    ("... not across all namespaces",
     req("dave", "list", "secrets"), False,
     'secrets is forbidden: User "dave" cannot list resource "secrets" in API group "" '
     'at the cluster scope'),
    ("a ClusterRoleBinding grants in every namespace",
     req("erin", "watch", "secrets", groups=["manager"], ns="prod"), True,
     'RBAC: allowed by ClusterRoleBinding "read-secrets-global" of ClusterRole "secret-reader" '
     'to Group "manager"'),
    ("... and across all namespaces",
     req("erin", "list", "secrets", groups=["manager"]), True,
     'RBAC: allowed by ClusterRoleBinding "read-secrets-global" of ClusterRole "secret-reader" '
     'to Group "manager"'),
    ("names are case sensitive",
     req("Dave", "get", "secrets", ns="development", name="db"), False,
     'secrets "db" is forbidden: User "Dave" cannot get resource "secrets" in API group "" '
     'in the namespace "development"'),
    ("pods/log is granted as resource/subresource",
     req("logger", "get", "pods", ns="default", sub="log", name="web"), True,
     'RBAC: allowed by RoleBinding "logs/default" of Role "pod-and-pod-logs-reader" '
     'to User "logger"'),
    ("pods/log does not grant pods/exec",
     req("logger", "create", "pods", ns="default", sub="exec", name="web"), False,
     'pods "web" is forbidden: User "logger" cannot create resource "pods/exec" '
     'in API group "" in the namespace "default"'),
    ("resourceNames: get my-configmap",
     req("cm-user", "get", "configmaps", ns="default", name="my-configmap"), True,
     'RBAC: allowed by RoleBinding "cm/default" of Role "configmap-updater" to User "cm-user"'),
    ("resourceNames: update my-configmap",
     req("cm-user", "update", "configmaps", ns="default", name="my-configmap"), True,
     'RBAC: allowed by RoleBinding "cm/default" of Role "configmap-updater" to User "cm-user"'),
    ("resourceNames: another ConfigMap is not granted (the message has no name in it)",
     req("cm-user", "get", "configmaps", ns="default", name="other"), False,
     'configmaps "other" is forbidden: User "cm-user" cannot get resource "configmaps" '
     'in API group "" in the namespace "default"'),
    ("resourceNames: a list carries no name, so it is not granted",
     req("cm-user", "list", "configmaps", ns="default"), False,
     'configmaps is forbidden: User "cm-user" cannot list resource "configmaps" '
     'in API group "" in the namespace "default"'),
    ("resourceNames: nor is a create",
     req("cm-user", "create", "configmaps", ns="default"), False,
     'configmaps is forbidden: User "cm-user" cannot create resource "configmaps" '
     'in API group "" in the namespace "default"'),
    ("resourceNames: a delete of the named ConfigMap is not one of the verbs",
     req("cm-user", "delete", "configmaps", ns="default", name="my-configmap"), False,
     'configmaps "my-configmap" is forbidden: User "cm-user" cannot delete resource '
     '"configmaps" in API group "" in the namespace "default"'),
    ("nonResourceURLs: /healthz exactly",
     req("prober", "get", path="/healthz"), True,
     'RBAC: allowed by ClusterRoleBinding "healthz" of ClusterRole "healthz" to User "prober"'),
    ("nonResourceURLs: /healthz/* is a suffix glob",
     req("prober", "post", path="/healthz/etcd"), True,
     'RBAC: allowed by ClusterRoleBinding "healthz" of ClusterRole "healthz" to User "prober"'),
    ("nonResourceURLs: /healthzx matches neither",
     req("prober", "get", path="/healthzx"), False,
     'forbidden: User "prober" cannot get path "/healthzx"'),
    ("nonResourceURLs: other paths are not granted",
     req("prober", "get", path="/version"), False,
     'forbidden: User "prober" cannot get path "/version"'),
    ("nonResourceURLs: verbs are HTTP methods in lower case",
     req("prober", "put", path="/healthz"), False,
     'forbidden: User "prober" cannot put path "/healthz"'),
    ("aggregated monitoring has monitoring-endpoints' rules",
     req("monitor", "list", "endpoints", ns="prod"), True,
     'RBAC: allowed by ClusterRoleBinding "monitoring" of ClusterRole "monitoring" '
     'to User "monitor"'),
    ("aggregated monitoring has nothing else",
     req("monitor", "list", "secrets", ns="prod"), False,
     'secrets is forbidden: User "monitor" cannot list resource "secrets" in API group "" '
     'in the namespace "prod"'),
    ("ServiceAccount subject with a namespace",
     req(SA_KUBE_SYSTEM, "list", "pods", ns="default"), True,
     'RBAC: allowed by RoleBinding "sa-reads-pods/default" of Role "pod-reader" '
     'to ServiceAccount "default/kube-system"'),
    ("... is that namespace's ServiceAccount only",
     req("system:serviceaccount:default:default", "list", "pods", ns="default"), False,
     'pods is forbidden: User "system:serviceaccount:default:default" cannot list resource '
     '"pods" in API group "" in the namespace "default"'),
    ("all ServiceAccounts of qa, through their group",
     req("system:serviceaccount:qa:ci", "get", "secrets",
         groups=["system:serviceaccounts", "system:serviceaccounts:qa",
                 "system:authenticated"], ns="qa", name="token"), True,
     'RBAC: allowed by RoleBinding "qa-secrets/qa" of ClusterRole "secret-reader" '
     'to Group "system:serviceaccounts:qa"'),
]


@pytest.mark.parametrize(("attrs", "allowed", "text"),
                         [c[1:] for c in DOCS_CASES], ids=[c[0] for c in DOCS_CASES])
def test_docs_examples(attrs: Attributes, allowed: bool, text: str) -> None:
    decision = authorizer(DOCS_OBJECTS).authorize(attrs)
    assert decision.allowed is allowed
    if allowed:
        assert decision.reason == text
    else:
        assert decision.reason == ""
        assert forbidden_message(attrs, decision.reason) == text


def test_docs_aggregated_custom_resource_roles() -> None:
    """[docs] "aggregate-cron-tabs-edit" / "-view" extend the default admin, edit and view."""
    objects = [
        *bootstrap_objects(aggregated=False),
        cluster_role("aggregate-cron-tabs-edit",
                     rule("get,list,watch,create,update,patch,delete", "stable.example.com",
                          "crontabs"),
                     labels={f"{RBAC}/aggregate-to-admin": "true",
                             f"{RBAC}/aggregate-to-edit": "true"}),
        cluster_role("aggregate-cron-tabs-view", rule("get,list,watch", "stable.example.com",
                                                      "crontabs"),
                     labels={f"{RBAC}/aggregate-to-view": "true"}),
        binding("ed", "edit", "User:ed", namespace="shop"),
        binding("vi", "view", "User:vi", namespace="shop"),
        binding("ad", "admin", "User:ad", namespace="shop"),
    ]
    authz = authorizer(objects)

    def can(user: str, verb: str) -> bool:
        attrs = req(user, verb, "crontabs", ns="shop", group="stable.example.com")
        return authz.authorize(attrs).allowed

    assert can("ed", "create") and can("ad", "delete") and can("vi", "list")
    assert not can("vi", "create")


# --- [docs] default roles and their user-facing behaviour ------------------------------------

DEFAULTS = [
    *bootstrap_objects(),
    binding("viewers", "view", "User:viewer", namespace="shop"),
    binding("editors", "edit", "User:editor", namespace="shop"),
    binding("admins", "admin", "User:shop-admin", namespace="shop"),
    binding("root-in-shop", "cluster-admin", "User:shop-root", namespace="shop"),
]
AUTHENTICATED = ("system:authenticated",)
ANONYMOUS = ("system:unauthenticated",)

DEFAULT_ROLE_CASES: list[tuple[str, Attributes, bool]] = [
    # view: "read-only access to see most objects in a namespace"
    ("view reads pods", req("viewer", "list", "pods", ns="shop"), True),
    ("view reads deployments", req("viewer", "get", "deployments", ns="shop", group="apps",
                                   name="web"), True),
    ("view reads deployments/scale", req("viewer", "get", "deployments", ns="shop",
                                         group="apps", sub="scale", name="web"), True),
    ("view reads its namespace", req("viewer", "get", "namespaces", ns="shop", name="shop"),
     True),
    ("view writes nothing", req("viewer", "update", "deployments", ns="shop", group="apps",
                                sub="scale", name="web"), False),
    ("view does not read secrets (escalating)", req("viewer", "list", "secrets", ns="shop"),
     False),
    ("view does not read roles", req("viewer", "list", "roles", ns="shop", group=RBAC), False),
    ("view does not read rolebindings", req("viewer", "get", "rolebindings", ns="shop",
                                            group=RBAC, name="x"), False),
    ("view is only in its binding's namespace", req("viewer", "list", "pods", ns="prod"),
     False),
    # edit: "read/write access to most objects in a namespace"; no roles or rolebindings
    ("edit creates deployments", req("editor", "create", "deployments", ns="shop",
                                     group="apps"), True),
    ("edit patches secrets", req("editor", "patch", "secrets", ns="shop", name="db"), True),
    ("edit reads secrets", req("editor", "get", "secrets", ns="shop", name="db"), True),
    ("edit execs into pods", req("editor", "create", "pods", ns="shop", sub="exec",
                                 name="web"), True),
    ("edit has view's reads (aggregated)", req("editor", "get", "pods", ns="shop", sub="log",
                                              name="web"), True),
    ("edit does not read roles", req("editor", "list", "roles", ns="shop", group=RBAC), False),
    ("edit does not create rolebindings", req("editor", "create", "rolebindings", ns="shop",
                                              group=RBAC), False),
    ("edit does not write resourcequotas", req("editor", "update", "resourcequotas",
                                               ns="shop", name="q"), False),
    # admin: edit plus roles and rolebindings; no write to quota or the namespace itself
    ("admin creates rolebindings", req("shop-admin", "create", "rolebindings", ns="shop",
                                       group=RBAC), True),
    ("admin has edit's writes (aggregated)", req("shop-admin", "delete", "deployments",
                                                 ns="shop", group="apps", name="web"), True),
    ("admin has view's reads (aggregated twice)", req("shop-admin", "get", "resourcequotas",
                                                      ns="shop", name="q"), True),
    ("admin does not write resourcequotas", req("shop-admin", "update", "resourcequotas",
                                                ns="shop", name="q"), False),
    ("admin does not delete its namespace", req("shop-admin", "delete", "namespaces",
                                                ns="shop", name="shop"), False),
    # cluster-admin in a RoleBinding: "full control over every resource in the rolebinding's
    # namespace, including the namespace itself"
    ("cluster-admin via RoleBinding deletes its namespace",
     req("shop-root", "delete", "namespaces", ns="shop", name="shop"), True),
    ("cluster-admin via RoleBinding stops at its namespace",
     req("shop-root", "list", "pods", ns="prod"), False),
    ("cluster-admin via RoleBinding has no cluster scope",
     req("shop-root", "list", "nodes"), False),
    # cluster-admin is bound to system:masters
    ("system:masters may do anything", req("root", "escalate", "clusterroles", group=RBAC,
                                           groups=["system:masters"]), True),
    # Discovery roles
    ("system:discovery for authenticated users", req("alice", "get", path="/apis/apps/v1",
                                                     groups=AUTHENTICATED), True),
    ("system:discovery: /openapi/*", req("alice", "get", path="/openapi/v3",
                                         groups=AUTHENTICATED), True),
    ("system:discovery is not bound to unauthenticated users (since 1.14)",
     req("system:anonymous", "get", path="/api", groups=ANONYMOUS), False),
    ("system:public-info-viewer for unauthenticated users",
     req("system:anonymous", "get", path="/version", groups=ANONYMOUS), True),
    ("system:public-info-viewer: /readyz", req("system:anonymous", "get", path="/readyz",
                                               groups=ANONYMOUS), True),
    ("system:public-info-viewer: nothing below /healthz",
     req("system:anonymous", "get", path="/healthz/etcd", groups=ANONYMOUS), False),
    ("system:basic-user: selfsubjectaccessreviews",
     req("alice", "create", "selfsubjectaccessreviews", group="authorization.k8s.io",
         groups=AUTHENTICATED), True),
    ("system:basic-user: selfsubjectreviews (kubectl auth whoami)",
     req("alice", "create", "selfsubjectreviews", group="authentication.k8s.io",
         groups=AUTHENTICATED), True),
    ("no default grants resources to authenticated users",
     req("alice", "list", "pods", ns="default", groups=AUTHENTICATED), False),
    ("deny is the default", req("nobody", "get", "pods", ns="shop", name="web"), False),
]


@pytest.mark.parametrize(("attrs", "allowed"), [c[1:] for c in DEFAULT_ROLE_CASES],
                         ids=[c[0] for c in DEFAULT_ROLE_CASES])
def test_default_roles(attrs: Attributes, allowed: bool) -> None:
    assert authorizer(DEFAULTS).authorize(attrs).allowed is allowed


def test_system_masters_is_allowed_before_rbac_with_no_reason() -> None:
    """authorizerfactory's privileged-group authorizer: allowed, reason "", no binding needed."""
    attrs = req("root", "delete", "pods", groups=["system:masters"], ns="x", name="y")
    assert authorizer([]).authorize(attrs) == Decision(True, "")


def test_default_reason_names_the_bootstrap_binding() -> None:
    decision = authorizer(DEFAULTS).authorize(
        req("system:anonymous", "get", path="/livez", groups=ANONYMOUS))
    assert decision.reason == ('RBAC: allowed by ClusterRoleBinding "system:public-info-viewer" '
                               'of ClusterRole "system:public-info-viewer" '
                               'to Group "system:unauthenticated"')


# --- [rbac_test] TestAuthorizer ---------------------------------------------------------------

# (objects, should pass, should fail); attributes as defaultAttributes{user, groups, verb,
# resource, subresource, namespace, apiGroup}; groups "" is one empty group, as Split gives.
RBAC_TEST_CASES: list[tuple[list[Obj], list[Attributes], list[Attributes]]] = [
    ([cluster_role("admin", rule("*", "*", "*")),
      binding("b", "admin", "User:admin", "Group:admins", namespace="ns1")],
     [req("admin", "get", "Pods", groups=[""], ns="ns1"),
      req("admin", "watch", "Pods", groups=[""], ns="ns1"),
      req("admin", "watch", "Foobar", groups=["group1"], ns="ns1"),
      req("joe", "watch", "Foobar", groups=["admins"], ns="ns1"),
      req("joe", "watch", "Foobar", groups=["group1", "admins"], ns="ns1")],
     [req("admin", "GET", "Pods", groups=[""], ns="ns2"),
      req("admin", "GET", "Nodes", groups=[""]),
      req("admin", "GET", "Pods", groups=["admins"], ns="ns2"),
      req("admin", "GET", "Nodes", groups=["admins"])]),
    # non-resource-url tests
    ([cluster_role("non-resource-url-getter", rule("get", urls="/apis")),
      cluster_role("non-resource-url", rule("*", urls="/apis")),
      cluster_role("non-resource-url-prefix", rule("get", urls="/apis/*")),
      binding("a", "non-resource-url-getter", "User:foo", "Group:bar"),
      binding("b", "non-resource-url", "User:admin", "Group:admin"),
      binding("c", "non-resource-url-prefix", "User:prefixed", "Group:prefixed")],
     [req("foo", "get", path="/apis"), req("", "get", path="/apis", groups=["bar"]),
      req("admin", "get", path="/apis"), req("", "get", path="/apis", groups=["admin"]),
      req("admin", "watch", path="/apis"), req("", "watch", path="/apis", groups=["admin"]),
      req("prefixed", "get", path="/apis/v1"),
      req("", "get", path="/apis/v1", groups=["prefixed"]),
      req("prefixed", "get", path="/apis/v1/foobar"),
      req("", "get", path="/apis/v1/foorbar", groups=["prefixed"])],
     [req("foo", "watch", path="/apis"), req("", "watch", path="/apis", groups=["bar"]),
      req("foo", "get", path="/api/v1"), req("", "get", path="/api/v1", groups=["bar"]),
      req("admin", "get", path="/api/v1"), req("", "get", path="/api/v1", groups=["admin"]),
      req("prefixed", "get", path="/api/v1"),
      req("", "get", path="/api/v1", groups=["prefixed"])]),
    # subresource resolution: "pods" does not cover pods/status
    ([cluster_role("admin", rule("*", "*", "pods")),
      binding("b", "admin", "User:admin", "Group:admins", namespace="ns1")],
     [req("admin", "get", "pods", ns="ns1")],
     [req("admin", "get", "pods", sub="status", ns="ns1")]),
    # subresource resolution: pods/status and */scale
    ([cluster_role("admin", rule("*", "*", "pods/status"), rule("*", "*", "*/scale")),
      binding("b", "admin", "User:admin", "Group:admins", namespace="ns1")],
     [req("admin", "get", "pods", sub="status", ns="ns1"),
      req("admin", "get", "pods", sub="scale", ns="ns1"),
      req("admin", "get", "deployments", sub="scale", ns="ns1"),
      req("admin", "get", "anything", sub="scale", ns="ns1")],
     [req("admin", "get", "pods", ns="ns1")]),
]


@pytest.mark.parametrize(("objects", "should_pass", "should_fail"), RBAC_TEST_CASES,
                         ids=["rolebinding-to-clusterrole", "non-resource-urls",
                              "resource-excludes-subresource", "subresource-and-star-scale"])
def test_rbac_test_authorizer(objects: list[Obj], should_pass: list[Attributes],
                              should_fail: list[Attributes]) -> None:
    authz = authorizer(objects)
    assert [a for a in should_pass if not authz.authorize(a).allowed] == []
    assert [a for a in should_fail if authz.authorize(a).allowed] == []


# --- [rbac_test] TestRuleMatches --------------------------------------------------------------


def _resource(verb: str, group: str, resource: str, sub: str = "") -> Attributes:
    return req("", verb, resource, group=group, sub=sub)


def _url(verb: str, path: str) -> Attributes:
    return req("", verb, path=path)


RULE_MATCH_CASES: list[tuple[str, Obj, list[tuple[Attributes, bool]]]] = [
    ("star verb, exact match other", rule("*", "group1", "resource1"), [
        (_resource("verb1", "group1", "resource1"), True),
        (_resource("verb1", "group2", "resource1"), False),
        (_resource("verb1", "group1", "resource2"), False),
        (_resource("verb1", "group2", "resource2"), False),
        (_resource("verb2", "group1", "resource1"), True),
        (_resource("verb2", "group2", "resource1"), False),
        (_resource("verb2", "group1", "resource2"), False),
        (_resource("verb2", "group2", "resource2"), False)]),
    ("star group, exact match other", rule("verb1", "*", "resource1"), [
        (_resource("verb1", "group1", "resource1"), True),
        (_resource("verb1", "group2", "resource1"), True),
        (_resource("verb1", "group1", "resource2"), False),
        (_resource("verb1", "group2", "resource2"), False),
        (_resource("verb2", "group1", "resource1"), False),
        (_resource("verb2", "group2", "resource1"), False)]),
    ("star resource, exact match other", rule("verb1", "group1", "*"), [
        (_resource("verb1", "group1", "resource1"), True),
        (_resource("verb1", "group2", "resource1"), False),
        (_resource("verb1", "group1", "resource2"), True),
        (_resource("verb1", "group2", "resource2"), False),
        (_resource("verb2", "group1", "resource1"), False)]),
    ("tuple expansion", rule("verb1,verb2", "group1,group2", "resource1,resource2"), [
        (_resource(v, g, r), True) for v in ("verb1", "verb2") for g in ("group1", "group2")
        for r in ("resource1", "resource2")]),
    ("subresource expansion", rule("*", "*", "resource1/subresource1"), [
        (_resource("verb1", "group1", "resource1", "subresource1"), True),
        (_resource("verb1", "group2", "resource1", "subresource2"), False),
        (_resource("verb1", "group1", "resource2", "subresource1"), False),
        (_resource("verb2", "group1", "resource1", "subresource1"), True),
        (_resource("verb2", "group2", "resource1", "subresource2"), False)]),
    ("star nonresource, exact match other", rule("verb1", urls="*"), [
        (_url("verb1", "/foo"), True), (_url("verb1", "/foo/bar"), True),
        (_url("verb1", "/foo/baz"), True), (_url("verb1", "/foo/bar/one"), True),
        (_url("verb1", "/foo/baz/one"), True), (_url("verb2", "/foo"), False),
        (_url("verb2", "/foo/bar"), False), (_url("verb2", "/foo/bar/one"), False)]),
    ("star nonresource subpath", rule("verb1", urls="/foo/*"), [
        (_url("verb1", "/foo"), False), (_url("verb1", "/foo/bar"), True),
        (_url("verb1", "/foo/baz"), True), (_url("verb1", "/foo/bar/one"), True),
        (_url("verb1", "/foo/baz/one"), True), (_url("verb1", "/notfoo"), False),
        (_url("verb1", "/notfoo/bar"), False), (_url("verb1", "/notfoo/baz"), False),
        (_url("verb1", "/notfoo/bar/one"), False), (_url("verb1", "/notfoo/baz/one"), False)]),
    ("star verb, exact nonresource", rule("*", urls="/foo,/foo/bar/one"), [
        (_url("verb1", "/foo"), True), (_url("verb1", "/foo/bar"), False),
        (_url("verb1", "/foo/baz"), False), (_url("verb1", "/foo/bar/one"), True),
        (_url("verb1", "/foo/baz/one"), False), (_url("verb2", "/foo"), True),
        (_url("verb2", "/foo/bar"), False), (_url("verb2", "/foo/bar/one"), True)]),
]


@pytest.mark.parametrize(("rule_", "expected"), [c[1:] for c in RULE_MATCH_CASES],
                         ids=[c[0] for c in RULE_MATCH_CASES])
def test_rbac_test_rule_matches(rule_: Obj, expected: list[tuple[Attributes, bool]]) -> None:
    assert [(a, rule_allows(a, rule_)) for a, _ in expected] == expected


# [rule.go]/evaluation_helpers.go: matching details the Go tests leave implicit.
EVALUATION_CASES: list[tuple[str, Obj, Attributes, bool]] = [
    ('"" is the core group only', rule("get", "", "deployments"),
     _resource("get", "apps", "deployments"), False),
    ("*/scale needs a subresource", rule("get", "*", "*/scale"),
     _resource("get", "", "scale"), False),
    ("*/scale does not match a longer subresource", rule("get", "*", "*/scale"),
     _resource("get", "", "pods", "xscale"), False),
    ("* covers subresources", rule("get", "*", "*"),
     _resource("get", "", "pods", "log"), True),
    ("resource/* is no wildcard (ResourceMatches has none)", rule("get", "", "pods/*"),
     _resource("get", "", "pods", "log"), False),
    ("a resource rule does not grant paths", rule("*", "*", "*"),
     _url("get", "/healthz"), False),
    ("a path rule does not grant resources", rule("*", urls="*"),
     _resource("get", "", "pods"), False),
    ("resourceNames match the name", rule("get", "", "secrets", names="a,b"),
     req("", "get", "secrets", name="b"), True),
    ("resourceNames do not match an empty name", rule("watch", "", "secrets", names="a"),
     req("", "watch", "secrets"), False),
    ("resourceNames apply to subresources", rule("get", "", "pods/log", names="web"),
     req("", "get", "pods", sub="log", name="db"), False),
]


@pytest.mark.parametrize(("rule_", "attrs", "allowed"), [c[1:] for c in EVALUATION_CASES],
                         ids=[c[0] for c in EVALUATION_CASES])
def test_evaluation_helpers(rule_: Obj, attrs: Attributes, allowed: bool) -> None:
    assert rule_allows(attrs, rule_) is allowed


# --- [rule_test] TestAppliesTo: the reason names the first subject that applies -------------

ANYTHING = cluster_role("anything", rule("*", "*", "*"))
APPLIES_TO_CASES: list[tuple[str, list[str], UserInfo, str, str | None]] = [
    # (case, subjects, user, namespace, subject named in the reason, or None: no match)
    ("single subject that matches username", ["User:foobar"], UserInfo("foobar"), "",
     'User "foobar"'),
    ("multiple subjects, one that matches username", ["User:barfoo", "User:foobar"],
     UserInfo("foobar"), "", 'User "foobar"'),
    ("multiple subjects, none that match username", ["User:barfoo", "User:foobar"],
     UserInfo("zimzam"), "", None),
    ("multiple subjects, one that match group", ["User:barfoo", "Group:foobar"],
     UserInfo("zimzam", groups=("foobar",)), "", 'Group "foobar"'),
    ("multiple subjects, one that match group, should ignore namespace",
     ["User:barfoo", "Group:foobar"], UserInfo("zimzam", groups=("foobar",)), "namespace1",
     'Group "foobar"'),
    ("multiple subjects with a service account that matches",
     ["User:barfoo", "Group:foobar", "ServiceAccount:kube-system/default"],
     UserInfo("system:serviceaccount:kube-system:default"), "default",
     'ServiceAccount "default/kube-system"'),
    ("* user subject name doesn't match all users", ["User:*"], UserInfo("foobar"), "default",
     None),
    ("binding to all authenticated and unauthenticated subjects matches authenticated user",
     ["Group:system:authenticated", "Group:system:unauthenticated"],
     UserInfo("foobar", groups=("system:authenticated",)), "default",
     'Group "system:authenticated"'),
    ("binding to all authenticated and unauthenticated subjects matches anonymous user",
     ["Group:system:authenticated", "Group:system:unauthenticated"],
     UserInfo("system:anonymous", groups=("system:unauthenticated",)), "default",
     'Group "system:unauthenticated"'),
    # [rule.go] appliesToUser: a ServiceAccount subject without a namespace takes the
    # RoleBinding's, and matches nothing in a ClusterRoleBinding.
    ("namespaceless ServiceAccount takes the RoleBinding's namespace",
     ["ServiceAccount:builder"], UserInfo("system:serviceaccount:ci:builder"), "ci",
     'ServiceAccount "builder/ci"'),
    ("namespaceless ServiceAccount in a ClusterRoleBinding matches nothing",
     ["ServiceAccount:builder"], UserInfo("system:serviceaccount:ci:builder"), "", None),
    ("a ServiceAccount username is exact", ["ServiceAccount:ci/builder"],
     UserInfo("system:serviceaccount:ci:builder2"), "ci", None),
    ("unknown subject kinds match nothing", ["Robot:foobar"], UserInfo("foobar"), "", None),
]


@pytest.mark.parametrize(("subjects", "user", "namespace", "named"),
                         [c[1:] for c in APPLIES_TO_CASES], ids=[c[0] for c in APPLIES_TO_CASES])
def test_rule_test_applies_to(subjects: list[str], user: UserInfo, namespace: str,
                              named: str | None) -> None:
    bound = binding("b", "anything", *subjects, namespace=namespace)
    attrs = Attributes(user, "get", namespace=namespace or "any", resource="pods")
    decision = authorizer([ANYTHING, bound]).authorize(attrs)
    assert decision.allowed is (named is not None)
    if named is not None:
        kind = f'RoleBinding "b/{namespace}"' if namespace else 'ClusterRoleBinding "b"'
        assert decision.reason == f'RBAC: allowed by {kind} of ClusterRole "anything" to {named}'


def test_rule_test_default_rule_resolver() -> None:
    """[rule_test] TestDefaultRuleResolver: the rules that apply to a user in a namespace."""
    read_pods = {"verbs": ["GET", "WATCH"], "apiGroups": ["v1"], "resources": ["pods"]}
    read_services = {"verbs": ["GET", "WATCH"], "apiGroups": ["v1"], "resources": ["services"]}
    write_nodes = {"verbs": ["PUT", "CREATE", "UPDATE"], "apiGroups": ["v1"],
                   "resources": ["nodes"]}
    admin = {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}
    authz = authorizer([
        role("readthings", "namespace1", read_pods, read_services),
        cluster_role("cluster-admin", admin), cluster_role("write-nodes", write_nodes),
        binding("rb", "readthings", "User:foobar", "Group:group1", namespace="namespace1",
                role_kind="Role"),
        binding("crb", "cluster-admin", "User:admin", "Group:admin"),
    ])
    assert authz.rules_for(UserInfo("foobar"), "namespace1") == [read_pods, read_services]
    assert authz.rules_for(UserInfo("foobar"), "namespace2") == []
    # Without a namespace only cluster rules apply.
    assert authz.rules_for(UserInfo("foobar", groups=("admin",)), "") == [admin]
    assert authz.rules_for(UserInfo(""), "") == []


# --- [locator_test] TestSubjectLocator, as the decisions for each subject --------------------


def test_subject_locator_no_super_user_star_matches_star() -> None:
    authz = authorizer([
        cluster_role("admin", rule("*", "*", "*")),
        binding("crb", "admin", "User:super-admin", "Group:super-admins"),
        binding("rb", "admin", "User:admin", "Group:admins", namespace="ns1"),
    ])

    def allowed(user: UserInfo, namespace: str) -> bool:
        return authz.authorize(Attributes(user, "get", namespace=namespace,
                                          resource="Pods")).allowed

    everyone = [UserInfo("x", groups=("system:masters",)), UserInfo("super-admin"),
                UserInfo("x", groups=("super-admins",)), UserInfo("admin"),
                UserInfo("x", groups=("admins",))]
    assert all(allowed(u, "ns1") for u in everyone)
    # "empty ns": only the cluster-wide subjects
    assert [allowed(u, "") for u in everyone] == [True, True, True, False, False]
    assert not allowed(UserInfo("someone-else"), "ns1")


def test_subject_locator_local_roles_work() -> None:
    authz = authorizer([
        cluster_role("admin", rule("*", "*", "*")),
        binding("crb", "admin", "User:super-admin", "Group:super-admins"),
        role("admin", "ns1", rule("get", "*", "Pods")),
        binding("rb", "admin", "User:admin", "Group:admins", namespace="ns1", role_kind="Role"),
    ])

    def allowed(user: str, verb: str, namespace: str) -> bool:
        return authz.authorize(req(user, verb, "Pods", ns=namespace)).allowed

    assert allowed("admin", "get", "ns1") and allowed("super-admin", "get", "ns1")
    # verb matches correctly
    assert not allowed("admin", "create", "ns1") and allowed("super-admin", "create", "ns1")
    # binding only works in correct ns
    assert not allowed("admin", "get", "ns2") and allowed("super-admin", "get", "ns2")


# --- [rule.go] resolution errors and visit order ---------------------------------------------


def test_missing_role_is_a_denial_reason_and_in_the_message() -> None:
    authz = authorizer([binding("b", "missing", "User:alice")])
    attrs = req("alice", "list", "pods", ns="shop")
    decision = authz.authorize(attrs)
    assert decision == Decision(
        False, 'RBAC: clusterrole.rbac.authorization.k8s.io "missing" not found')
    # [errors.go] the reason follows the message after ": "
    assert forbidden_message(attrs, decision.reason) == (
        'pods is forbidden: User "alice" cannot list resource "pods" in API group "" in the '
        'namespace "shop": RBAC: clusterrole.rbac.authorization.k8s.io "missing" not found')


def test_several_errors_are_aggregated_once_each() -> None:
    authz = authorizer([
        binding("a", "missing", "User:alice"),
        binding("b", "gone", "User:alice", namespace="shop", role_kind="Role"),
        binding("c", "gone", "User:alice", namespace="shop", role_kind="Role"),
        binding("d", "x", "User:alice", namespace="shop", role_kind="Secret"),
    ])
    assert authz.authorize(req("alice", "get", "pods", ns="shop")).reason == (
        'RBAC: [clusterrole.rbac.authorization.k8s.io "missing" not found, '
        'role.rbac.authorization.k8s.io "gone" not found, '
        'unsupported role reference kind: "Secret"]')


def test_an_error_does_not_hide_a_grant() -> None:
    authz = authorizer([binding("a", "missing", "User:alice"),
                        cluster_role("reader", rule("get", "", "pods")),
                        binding("b", "reader", "User:alice")])
    assert authz.authorize(req("alice", "get", "pods", ns="x")).allowed


def test_cluster_role_bindings_are_visited_before_role_bindings() -> None:
    authz = authorizer([
        cluster_role("reader", rule("get", "", "pods")),
        binding("local", "reader", "User:alice", namespace="shop"),
        binding("global", "reader", "User:alice"),
    ])
    assert authz.authorize(req("alice", "get", "pods", ns="shop")).reason == (
        'RBAC: allowed by ClusterRoleBinding "global" of ClusterRole "reader" to User "alice"')


def test_a_role_binding_reads_roles_of_its_own_namespace() -> None:
    authz = authorizer([role("reader", "other", rule("get", "", "pods")),
                        binding("b", "reader", "User:alice", namespace="shop",
                                role_kind="Role")])
    decision = authz.authorize(req("alice", "get", "pods", ns="shop"))
    assert decision == Decision(False, 'RBAC: role.rbac.authorization.k8s.io "reader" not found')


# --- [aggregation_test] TestSyncClusterRole, and label selectors ----------------------------

HAMMER = [{"verbs": ["hammer"], "resources": ["nails"]},
          {"verbs": ["hammer"], "resources": ["wedges"]}]
CHISEL = [{"verbs": ["chisel"], "resources": ["mortises"]}]
SAW = [{"verbs": ["saw"], "resources": ["boards"]}]


def _tool(name: str, foo: str, rules: list[Obj]) -> Obj:
    return cluster_role(name, *rules, labels={"foo": foo})


def _combined(selectors: list[str], rules: list[Obj] | None = None) -> Obj:
    return cluster_role("combined", *(rules or []),
                        selectors=[{"matchLabels": {"foo": s}} for s in selectors])


AGGREGATION_CASES: list[tuple[str, list[Obj], list[Obj]]] = [
    ("remove dead rules", [_tool("hammer", "bar", HAMMER), _combined(["bar"], SAW)], HAMMER),
    ("strip rules", [_tool("hammer", "not-bar", HAMMER), _combined(["bar"], HAMMER)], []),
    ("select properly and put in order",
     [_tool("hammer", "bar", HAMMER), _tool("chisel", "bar", CHISEL),
      _tool("saw", "not-bar", SAW), _combined(["bar"])], CHISEL + HAMMER),
    ("select properly with multiple selectors",
     [_tool("hammer", "bar", HAMMER), _tool("chisel", "bar", CHISEL),
      _tool("saw", "not-bar", SAW), _combined(["bar", "not-bar"])], CHISEL + HAMMER + SAW),
    ("select properly remove duplicates",
     [_tool("hammer", "bar", HAMMER), _tool("chisel", "bar", CHISEL),
      _tool("saw", "bar", SAW), _tool("other-saw", "not-bar", SAW),
      _combined(["bar", "not-bar"])], CHISEL + HAMMER + SAW),
    ("no diff skip", [_tool("hammer", "bar", HAMMER), _combined(["bar"], HAMMER)], HAMMER),
]


@pytest.mark.parametrize(("roles", "expected"), [c[1:] for c in AGGREGATION_CASES],
                         ids=[c[0] for c in AGGREGATION_CASES])
def test_aggregation_controller(roles: list[Obj], expected: list[Obj]) -> None:
    combined = next(r for r in roles if r["metadata"]["name"] == "combined")
    assert aggregated_rules(combined, roles) == expected
    filled = {r["metadata"]["name"]: r for r in aggregate_cluster_roles(roles)}
    assert filled["combined"]["rules"] == expected
    assert combined["rules"] is not filled["combined"]["rules"]  # copies, inputs untouched


def test_aggregation_skips_the_role_itself_and_survives_cycles() -> None:
    a = cluster_role("a", rule("get", "", "pods"), labels={"agg": "yes"},
                     selectors=[{"matchLabels": {"agg": "yes"}}])
    b = cluster_role("b", rule("get", "", "services"), labels={"agg": "yes"},
                     selectors=[{"matchLabels": {"agg": "yes"}}])
    # a selects b; b, met again under a, selects a, whose stored rules it contributes.
    assert aggregated_rules(a, [a, b]) == [rule("get", "", "pods")]
    assert aggregated_rules(b, [a, b]) == [rule("get", "", "services")]


SELECTOR_CASES: list[tuple[str, Obj | None, dict[str, str], bool]] = [
    # metav1.LabelSelectorAsSelector: nil selects nothing, empty selects everything.
    ("nil selector", None, {"a": "1"}, False),
    ("empty selector", {}, {"a": "1"}, True),
    ("matchLabels", {"matchLabels": {"a": "1"}}, {"a": "1", "b": "2"}, True),
    ("matchLabels mismatch", {"matchLabels": {"a": "1"}}, {"a": "2"}, False),
    ("In", {"matchExpressions": [{"key": "a", "operator": "In", "values": ["1", "2"]}]},
     {"a": "2"}, True),
    ("In without the key", {"matchExpressions": [{"key": "a", "operator": "In",
                                                  "values": ["1"]}]}, {}, False),
    ("NotIn", {"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]},
     {"a": "1"}, False),
    ("NotIn holds without the key", {"matchExpressions": [
        {"key": "a", "operator": "NotIn", "values": ["1"]}]}, {}, True),
    ("Exists", {"matchExpressions": [{"key": "a", "operator": "Exists"}]}, {"a": ""}, True),
    ("DoesNotExist", {"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]},
     {"a": "1"}, False),
    ("requirements are ANDed", {"matchLabels": {"a": "1"}, "matchExpressions": [
        {"key": "b", "operator": "Exists"}]}, {"a": "1"}, False),
    ("unknown operator selects nothing", {"matchExpressions": [
        {"key": "a", "operator": "Gt", "values": ["1"]}]}, {"a": "2"}, False),
]


@pytest.mark.parametrize(("selector", "labels", "matches"), [c[1:] for c in SELECTOR_CASES],
                         ids=[c[0] for c in SELECTOR_CASES])
def test_label_selector(selector: Obj | None, labels: dict[str, str], matches: bool) -> None:
    assert label_selector_matches(selector, labels) is matches


def test_aggregation_by_match_expressions_grants() -> None:
    authz = authorizer([
        cluster_role("ops", selectors=[{"matchExpressions": [
            {"key": "team", "operator": "In", "values": ["ops", "sre"]}]}]),
        cluster_role("sre-bits", rule("get", "", "nodes"), labels={"team": "sre"}),
        cluster_role("dev-bits", rule("get", "", "secrets"), labels={"team": "dev"}),
        binding("ops", "ops", "Group:ops"),
    ])
    assert authz.authorize(req("o", "get", "nodes", groups=["ops"])).allowed
    assert not authz.authorize(req("o", "get", "secrets", groups=["ops"], ns="x")).allowed


def test_stored_rules_of_an_aggregated_role_are_replaced() -> None:
    """[aggregation_test] "remove dead rules": the controller owns an aggregated role's rules."""
    authz = authorizer([cluster_role("agg", rule("*", "*", "*"), selectors=[
        {"matchLabels": {"x": "y"}}]), binding("b", "agg", "User:u")])
    assert not authz.authorize(req("u", "get", "pods", ns="a")).allowed


# --- [errors.go] the 403 ----------------------------------------------------------------------

MESSAGE_CASES: list[tuple[str, Attributes, str]] = [
    ("cluster scope, core group", req("alice", "list", "secrets"),
     'secrets is forbidden: User "alice" cannot list resource "secrets" in API group "" '
     'at the cluster scope'),
    ("namespace", req("alice", "list", "secrets", ns="shop"),
     'secrets is forbidden: User "alice" cannot list resource "secrets" in API group "" '
     'in the namespace "shop"'),
    ("named object: the name prefixes, the denial omits it",
     req("alice", "get", "configmaps", ns="shop", name="my-configmap"),
     'configmaps "my-configmap" is forbidden: User "alice" cannot get resource "configmaps" '
     'in API group "" in the namespace "shop"'),
    ("group-qualified prefix, subresource in the denial",
     req("alice", "patch", "deployments", ns="shop", group="apps", sub="scale", name="web"),
     'deployments.apps "web" is forbidden: User "alice" cannot patch resource '
     '"deployments/scale" in API group "apps" in the namespace "shop"'),
    # As a real cluster writes it, quoted in operator-framework/operator-controller#1195.
    ("a real ServiceAccount denial",
     req("system:serviceaccount:argocd:argocd-installer", "list", "customresourcedefinitions",
         group="apiextensions.k8s.io"),
     'customresourcedefinitions.apiextensions.k8s.io is forbidden: User '
     '"system:serviceaccount:argocd:argocd-installer" cannot list resource '
     '"customresourcedefinitions" in API group "apiextensions.k8s.io" at the cluster scope'),
    ("a Namespace object is in its own namespace",
     req("alice", "get", "namespaces", ns="shop", name="shop"),
     'namespaces "shop" is forbidden: User "alice" cannot get resource "namespaces" '
     'in API group "" in the namespace "shop"'),
    ("non-resource", req("x", "get", path="/version"),
     'forbidden: User "x" cannot get path "/version"'),
    ("anonymous", req("system:anonymous", "get", path="/api"),
     'forbidden: User "system:anonymous" cannot get path "/api"'),
    ("HTML-looking text is escaped, quotes are Go's", req('a"<b>&', "get", path="/x<y>"),
     'forbidden: User "a\\"&lt;b&gt;&amp;" cannot get path "/x&lt;y&gt;"'),
]


@pytest.mark.parametrize(("attrs", "message"), [c[1:] for c in MESSAGE_CASES],
                         ids=[c[0] for c in MESSAGE_CASES])
def test_forbidden_message(attrs: Attributes, message: str) -> None:
    assert forbidden_message(attrs) == message


def test_denial_message_is_the_part_after_the_prefix() -> None:
    attrs = req("alice", "get", "configmaps", ns="shop", name="my-configmap")
    assert denial_message(attrs) == ('User "alice" cannot get resource "configmaps" in API '
                                     'group "" in the namespace "shop"')


def test_forbidden_status_bodies() -> None:
    named = req("alice", "get", "deployments", ns="shop", group="apps", name="web")
    assert forbidden_status(named) == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": 'deployments.apps "web" is forbidden: User "alice" cannot get resource '
                   '"deployments" in API group "apps" in the namespace "shop"',
        "reason": "Forbidden",
        "details": {"name": "web", "group": "apps", "kind": "deployments"},
        "code": 403}
    # StatusDetails omits empty fields: no group for core, no name for a list
    assert forbidden_status(req("alice", "list", "pods"))["details"] == {"kind": "pods"}
    assert forbidden_status(req("x", "get", path="/metrics"))["details"] == {}
    error = forbidden_error(req("alice", "list", "pods"), "RBAC: oops")
    assert (error.code, error.reason) == (403, "Forbidden")
    assert error.message.endswith("at the cluster scope: RBAC: oops")


def test_go_quote() -> None:
    assert go_quote('a"b\\c\n\x01é') == '"a\\"b\\\\c\\n\\x01é"'


# --- [requestinfo.go] the name of a list or watch ---------------------------------------------

FIELD_SELECTOR_CASES: list[tuple[str | None, str]] = [
    ("metadata.name=my-configmap", "my-configmap"),
    ("metadata.name==my-configmap", "my-configmap"),
    ("status.phase=Running,metadata.name=web", "web"),
    ("metadata.name!=web", ""),
    ("metadata.namespace=shop", ""),
    ("metadata.name=a/b", ""),
    ("metadata.name=..", ""),
    ("metadata.name=a\\,b", "a,b"),
    ("", ""),
    (None, ""),
]


@pytest.mark.parametrize(("selector", "name"), FIELD_SELECTOR_CASES)
def test_name_from_field_selector(selector: str | None, name: str) -> None:
    assert name_from_field_selector(selector) == name


def test_resource_names_allow_a_list_by_name_field_selector() -> None:
    """[requestinfo.go] a list with ``fieldSelector=metadata.name=X`` carries the name X, so
    a rule with ``resourceNames: [X]`` and the list verb allows it (and only it)."""
    authz = authorizer([
        role("cm-lister", "default", rule("list,watch", "", "configmaps", names="my-configmap")),
        binding("b", "cm-lister", "User:cm-user", namespace="default", role_kind="Role")])

    def can_list(selector: str) -> bool:
        name = name_from_field_selector(selector)
        return authz.authorize(req("cm-user", "list", "configmaps", ns="default",
                                   name=name)).allowed

    assert can_list("metadata.name=my-configmap")
    assert not can_list("metadata.name=other") and not can_list("")


# --- [bootstrap] the default objects ----------------------------------------------------------


def test_bootstrap_objects_metadata() -> None:
    objects = bootstrap_objects()
    names = [(o["kind"], o["metadata"]["name"]) for o in objects]
    assert names == [
        ("ClusterRole", n) for n in (
            "admin", "cluster-admin", "edit", "system:aggregate-to-admin",
            "system:aggregate-to-edit", "system:aggregate-to-view", "system:basic-user",
            "system:discovery", "system:public-info-viewer", "view")
    ] + [("ClusterRoleBinding", n) for n in (
        "cluster-admin", "system:basic-user", "system:discovery", "system:public-info-viewer")]
    for obj in objects:
        assert obj["apiVersion"] == "rbac.authorization.k8s.io/v1"
        assert obj["metadata"]["labels"]["kubernetes.io/bootstrapping"] == "rbac-defaults"
        assert obj["metadata"]["annotations"] == {
            "rbac.authorization.kubernetes.io/autoupdate": "true"}
    assert bootstrap_objects() == objects
    assert bootstrap_objects()[0] is not objects[0]


def test_bootstrap_bindings() -> None:
    subjects = {b["metadata"]["name"]: [s["name"] for s in b["subjects"]]
                for b in default_cluster_role_bindings()}
    assert subjects == {
        "cluster-admin": ["system:masters"],
        "system:basic-user": ["system:authenticated"],
        "system:discovery": ["system:authenticated"],
        "system:public-info-viewer": ["system:authenticated", "system:unauthenticated"]}
    for b in default_cluster_role_bindings():
        assert b["roleRef"] == {"apiGroup": RBAC, "kind": "ClusterRole",
                                "name": b["metadata"]["name"]}


def test_bootstrap_aggregation_labels_and_rules() -> None:
    roles = {r["metadata"]["name"]: r for r in bootstrap_objects() if r["kind"] == "ClusterRole"}
    labels = {n: {k: v for k, v in r["metadata"]["labels"].items()
                  if k.startswith(RBAC)} for n, r in roles.items()}
    assert labels["edit"] == {f"{RBAC}/aggregate-to-admin": "true"}
    assert labels["view"] == {f"{RBAC}/aggregate-to-edit": "true"}
    assert labels["system:aggregate-to-view"] == {f"{RBAC}/aggregate-to-view": "true"}
    assert roles["admin"]["aggregationRule"] == {"clusterRoleSelectors": [
        {"matchLabels": {f"{RBAC}/aggregate-to-admin": "true"}}]}
    # The controller's fill: view = aggregate-to-view; edit = aggregate-to-edit + view
    # (selected roles by name); admin = edit + aggregate-to-admin.
    view = roles["system:aggregate-to-view"]["rules"]
    edit = roles["system:aggregate-to-edit"]["rules"]
    assert roles["view"]["rules"] == view
    assert roles["edit"]["rules"] == edit + view
    assert roles["admin"]["rules"] == edit + view + roles["system:aggregate-to-admin"]["rules"]
    # As the apiserver creates them, before the controller runs.
    raw = {r["metadata"]["name"]: r for r in bootstrap_objects(aggregated=False)}
    assert raw["admin"]["rules"] is None and raw["view"]["rules"] is None
