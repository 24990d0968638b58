"""Authorization of an authenticating sandbox: the request attributes it builds (as
kube-apiserver's request-info resolver does), RBAC with the bootstrap roles, and the 403s."""

from __future__ import annotations

import json
import pathlib
from collections.abc import Callable

import pytest
import yaml

from auditor.sandbox import Sandbox
from auditor.sandbox.rbac import Attributes, Decision
from auditor.sandbox.requestinfo import request_info
from tests.sandbox.authkit import kubectl_for, raw

pytestmark = pytest.mark.kubectl

Start = Callable[..., Sandbox]

WEB = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: "nginx:1.25"}]}
"""

DEPLOYER = """\
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: deployer, namespace: default}
rules:
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list]
- apiGroups: [apps]
  resources: [deployments/scale]
  verbs: [get, update, patch]
- apiGroups: [""]
  resources: [pods]
  verbs: [list]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: alice-deploys, namespace: default}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: deployer}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: alice}]
"""


class Recorder:
    """Wraps a sandbox's authorizer and keeps the attributes of every request."""

    def __init__(self, sb: Sandbox) -> None:
        assert sb.gate is not None
        self.seen: list[Attributes] = []
        inner = sb.gate.authorize

        def authorize(attrs: Attributes) -> Decision:
            self.seen.append(attrs)
            return inner(attrs)

        sb.gate.authorize = authorize  # type: ignore[method-assign]

    def last(self) -> Attributes:
        return self.seen[-1]


def fields(attrs: Attributes) -> tuple[str, ...]:
    if not attrs.resource_request:
        return (attrs.verb, attrs.path)
    return (attrs.verb, attrs.api_group, attrs.api_version, attrs.namespace, attrs.resource,
            attrs.subresource, attrs.name)


DEPLOYS = "/apis/apps/v1/namespaces/default/deployments"

# (method, URL, the attributes kube-apiserver's RequestInfo gives it)
ATTRIBUTES = [
    ("GET", "/api/v1/namespaces/default/pods", ("list", "", "v1", "default", "pods", "", "")),
    ("GET", "/api/v1/namespaces/default/pods?watch=true&timeoutSeconds=1",
     ("watch", "", "v1", "default", "pods", "", "")),
    ("GET", "/api/v1/namespaces/default/pods?watch=false",
     ("list", "", "v1", "default", "pods", "", "")),
    ("GET", "/api/v1/watch/namespaces/default/pods?timeoutSeconds=1",
     ("watch", "", "v1", "default", "pods", "", "")),
    ("GET", "/api/v1/namespaces/default/pods?fieldSelector=metadata.name%3Dweb-1",
     ("list", "", "v1", "default", "pods", "", "web-1")),
    ("GET", "/api/v1/namespaces/default/pods/web-1", ("get", "", "v1", "default", "pods", "",
                                                      "web-1")),
    ("HEAD", "/api/v1/namespaces/default/pods/web-1", ("get", "", "v1", "default", "pods", "",
                                                       "web-1")),
    ("POST", DEPLOYS, ("create", "apps", "v1", "default", "deployments", "", "")),
    ("PUT", f"{DEPLOYS}/web", ("update", "apps", "v1", "default", "deployments", "", "web")),
    ("PATCH", f"{DEPLOYS}/web", ("patch", "apps", "v1", "default", "deployments", "", "web")),
    ("DELETE", f"{DEPLOYS}/web", ("delete", "apps", "v1", "default", "deployments", "", "web")),
    ("DELETE", "/api/v1/namespaces/default/configmaps",
     ("deletecollection", "", "v1", "default", "configmaps", "", "")),
    ("GET", f"{DEPLOYS}/web/scale", ("get", "apps", "v1", "default", "deployments", "scale",
                                     "web")),
    ("PUT", f"{DEPLOYS}/web/status", ("update", "apps", "v1", "default", "deployments",
                                      "status", "web")),
    ("GET", "/api/v1/namespaces/kube-system", ("get", "", "v1", "kube-system", "namespaces",
                                               "", "kube-system")),
    ("PUT", "/api/v1/namespaces/team/finalize", ("update", "", "v1", "team", "namespaces",
                                                 "finalize", "team")),
    ("GET", "/apis/rbac.authorization.k8s.io/v1/clusterroles",
     ("list", "rbac.authorization.k8s.io", "v1", "", "clusterroles", "", "")),
    ("POST", "/api/v1/namespaces/team/serviceaccounts/robot/token",
     ("create", "", "v1", "team", "serviceaccounts", "token", "robot")),
    ("GET", "/version", ("get", "/version")),
    ("GET", "/api", ("get", "/api")),
    ("GET", "/api/v1", ("get", "/api/v1")),
    ("GET", "/apis", ("get", "/apis")),
    ("GET", "/apis/apps/v1", ("get", "/apis/apps/v1")),
    ("GET", "/openapi/v2", ("get", "/openapi/v2")),
    ("GET", "/healthz", ("get", "/healthz")),
    ("HEAD", "/healthz", ("head", "/healthz")),
    ("POST", "/metrics", ("post", "/metrics")),
]


def test_request_attributes_are_those_of_kube_apiserver(auth_sandbox: Start) -> None:
    sb = auth_sandbox(tls=False)
    recorder = Recorder(sb)
    for method, url, expected in ATTRIBUTES:
        raw(sb, method, url, token=sb.admin_token,
            body=b"{}" if method in ("POST", "PUT", "PATCH") else None,
            headers={"Content-Type": "application/merge-patch+json"} if method == "PATCH"
            else None)
        attrs = recorder.last()
        assert fields(attrs) == expected, (method, url)
        assert attrs.user.name == "kubernetes-admin"
        assert attrs.resource_request == (len(expected) > 2)


def test_request_info_edge_cases() -> None:
    # requestinfo.go: "watch" takes any value but false/0; proxy takes no subresource.
    assert request_info("GET", "/api/v1/pods", {"watch": ["1"]}).verb == "watch"
    assert request_info("GET", "/api/v1/pods", {"watch": ["0"]}).verb == "list"
    proxy = request_info("GET", "/api/v1/proxy/namespaces/ns/pods/p/extra", {})
    assert (proxy.verb, proxy.resource, proxy.name, proxy.subresource) == ("proxy", "pods", "p",
                                                                          "")
    # /apis/GROUP alone and unknown prefixes are non-resource requests.
    assert not request_info("GET", "/apis/apps", {}).resource_request
    assert not request_info("GET", "/logs/kube-apiserver.log", {}).resource_request
    # A field selector pins the name only when it is a valid path segment.
    assert request_info("GET", "/api/v1/pods",
                        {"fieldSelector": ["metadata.name=a/b"]}).name == ""


def test_rbac_with_the_bootstrap_roles(auth_sandbox: Start, tmp_path: pathlib.Path) -> None:
    sb = auth_sandbox(users={"alice": ["dev"]}, rbac=True)
    admin = kubectl_for(sb, tmp_path)
    # The bootstrap roles are there, as kube-apiserver's post-start hook creates them.
    roles = json.loads(admin("get", "clusterroles", "-o", "json",
                             "--show-managed-fields").stdout)["items"]
    names = {r["metadata"]["name"] for r in roles}
    assert {"cluster-admin", "admin", "edit", "view", "system:discovery", "system:basic-user",
            "system:public-info-viewer"} <= names
    view = next(r for r in roles if r["metadata"]["name"] == "view")
    assert view["metadata"]["labels"]["kubernetes.io/bootstrapping"] == "rbac-defaults"
    assert {e["manager"] for e in view["metadata"]["managedFields"]} == {"kube-apiserver"}
    bindings = json.loads(admin("get", "clusterrolebindings", "-o", "json").stdout)["items"]
    assert "system:discovery" in {b["metadata"]["name"] for b in bindings}

    admin("apply", "-f", "-", input=WEB + "---\n" + DEPLOYER)
    alice = kubectl_for(sb, tmp_path, "alice")
    assert alice("get", "deployment", "web", "-o", "name").stdout.strip() == \
        "deployment.apps/web"
    # The scale subresource is its own resource to RBAC: deployments/scale.
    assert alice("scale", "deployment", "web", "--replicas=3").stdout.strip() == \
        "deployment.apps/web scaled"
    web = sb.get("apps/v1", "Deployment", "default", "web")
    assert web is not None and web["spec"]["replicas"] == 3
    out = alice("delete", "deployment", "web", check=False)
    assert out.stderr.strip() == (
        'Error from server (Forbidden): deployments.apps "web" is forbidden: User "alice" '
        'cannot delete resource "deployments" in API group "apps" in the namespace "default"')
    out = alice("patch", "deployment", "web", "-p", '{"spec":{"paused":true}}', check=False)
    assert out.stderr.strip() == (
        'Error from server (Forbidden): deployments.apps "web" is forbidden: User "alice" '
        'cannot patch resource "deployments" in API group "apps" in the namespace "default"')
    # list without watch: a watch is its own verb.
    status, body, _ = raw(sb, "GET", "/api/v1/namespaces/default/pods?watch=1",
                          token=sb.token_for("alice"))
    assert status == 403 and body["message"] == (
        'pods is forbidden: User "alice" cannot watch resource "pods" in API group "" in the '
        'namespace "default"')
    # Non-resource URLs: the bootstrap roles allow discovery, nothing more.
    assert alice("get", "--raw", "/openapi/v3").returncode == 0
    out = alice("get", "--raw", "/metrics", check=False)
    assert out.stderr.strip() == ('Error from server (Forbidden): forbidden: User "alice" '
                                  'cannot get path "/metrics"')


def test_a_binding_to_a_missing_role_is_the_reason_of_the_denial(
        auth_sandbox: Start, tmp_path: pathlib.Path) -> None:
    sb = auth_sandbox(users={"alice": []}, rbac=True)
    sb.load(yaml.safe_load_all("""\
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: dangling}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: gone}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: alice}]
"""))
    out = kubectl_for(sb, tmp_path, "alice")("get", "configmaps", check=False)
    assert out.stderr.strip() == (
        'Error from server (Forbidden): configmaps is forbidden: User "alice" cannot list '
        'resource "configmaps" in API group "" in the namespace "default": RBAC: '
        'clusterrole.rbac.authorization.k8s.io "gone" not found')


def test_without_rbac_every_authenticated_request_is_allowed(auth_sandbox: Start,
                                                            tmp_path: pathlib.Path) -> None:
    sb = auth_sandbox(users={"alice": []})
    alice = kubectl_for(sb, tmp_path, "alice")
    alice("apply", "-f", "-", input=WEB)
    assert alice("delete", "deployment", "web").stdout.strip() == \
        'deployment.apps "web" deleted from default namespace'


def test_setup_methods_are_never_authorized(auth_sandbox: Start) -> None:
    sb = auth_sandbox(rbac=True, anonymous=False)
    assert sb.load(yaml.safe_load_all(WEB)) == 1
    applied = sb.apply({"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": "c", "namespace": "other"}, "data": {"a": "1"}},
                       field_manager="setup")
    assert applied["data"] == {"a": "1"} and sb.get("apps/v1", "Deployment", "default", "web")


APPLIER = """\
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: applier, namespace: default}
rules:
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, patch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: alice-applies, namespace: default}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: applier}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: alice}]
"""


def test_a_server_side_apply_that_creates_needs_create(auth_sandbox: Start,
                                                       tmp_path: pathlib.Path) -> None:
    # kube-apiserver's patch handler checks `create` too when an apply makes the object
    # (staging/src/k8s.io/apiserver/pkg/endpoints/handlers/patch.go).
    sb = auth_sandbox(users={"alice": []}, rbac=True)
    admin = kubectl_for(sb, tmp_path)
    admin("apply", "-f", "-", input=APPLIER)
    alice = kubectl_for(sb, tmp_path, "alice")
    settings = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: %s, namespace: default}\n" \
               "data: {a: b}\n"
    out = alice("apply", "--server-side", "-f", "-", input=settings % "fresh", check=False)
    assert 'cannot create resource "configmaps" in API group "" in the namespace ' \
           '"default"' in out.stderr, out.stderr
    assert sb.get("v1", "ConfigMap", "default", "fresh") is None
    admin("apply", "-f", "-", input=settings % "existing")
    out = alice("apply", "--server-side", "-f", "-", input=settings % "existing")
    assert "serverside-applied" in out.stdout
