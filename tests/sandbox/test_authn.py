"""Authentication against an authenticating sandbox, with real kubectl 1.35 and the Python
client: TLS with the sandbox's CA, static tokens, ServiceAccount tokens from ``kubectl create
token``, anonymous requests, impersonation, and 401 against 403 as kubectl prints them."""

from __future__ import annotations

import base64
import http.client
import json
import pathlib
import socket
import ssl
import time
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from auditor.sandbox import Sandbox
from auditor.sandbox.authn import format_token_file, parse_token_file, read_token_file
from tests.sandbox.authkit import Kubectl, jwt_claims, kubectl_for, raw

pytestmark = pytest.mark.kubectl

Start = Callable[..., Sandbox]

TEAM = """\
apiVersion: v1
kind: Namespace
metadata: {name: team}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: robot, namespace: team}
"""

# Alice may impersonate bob and the group "dev", and no one else.
IMPERSONATOR = [
    {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
     "metadata": {"name": "impersonate-bob"},
     "rules": [{"apiGroups": [""], "resources": ["users"], "verbs": ["impersonate"],
                "resourceNames": ["bob"]},
               {"apiGroups": [""], "resources": ["groups"], "verbs": ["impersonate"],
                "resourceNames": ["dev"]}]},
    {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
     "metadata": {"name": "alice-impersonates-bob"},
     "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                 "name": "impersonate-bob"},
     "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice"}]},
]


def whoami(kubectl: Kubectl, *args: str) -> dict[str, Any]:
    """``kubectl auth whoami -o json``: the SelfSubjectReview's user."""
    return json.loads(kubectl("auth", "whoami", "-o", "json", *args).stdout)["status"]["userInfo"]


# -- TLS --------------------------------------------------------------------------------------


def test_tls_serves_a_certificate_from_the_sandbox_ca(auth_sandbox: Start,
                                                      tmp_path: pathlib.Path) -> None:
    sb = auth_sandbox(tls=True)
    assert sb.url == f"https://127.0.0.1:{sb.port}" and sb.ca_pem is not None
    kubectl = kubectl_for(sb, tmp_path)
    assert "namespace/kube-system" in kubectl("get", "ns", "-o", "name").stdout

    written = yaml.safe_load(kubectl.kubeconfig.read_text())
    cluster = written["clusters"][0]["cluster"]
    assert cluster["server"] == sb.url
    assert base64.b64decode(cluster["certificate-authority-data"]) == sb.ca_pem

    # The certificate verifies against the CA for the names clients dial.
    context = ssl.create_default_context(cadata=sb.ca_pem.decode())
    for name in ("127.0.0.1", "localhost"):
        with socket.create_connection(("127.0.0.1", sb.port), timeout=5) as plain, \
                context.wrap_socket(plain, server_hostname=name) as tls:
            assert tls.version() in ("TLSv1.2", "TLSv1.3")

    # Without the CA kubectl refuses the server, as it would a real one.
    del cluster["certificate-authority-data"]
    untrusted = tmp_path / "untrusted"
    untrusted.write_text(yaml.safe_dump(written))
    out = Kubectl(untrusted, tmp_path)("get", "ns", check=False)
    assert out.returncode == 1
    assert "x509: certificate signed by unknown authority" in out.stderr

    # The Python client verifies with the kubeconfig's CA too.
    api = config.new_client_from_config(config_file=str(kubectl.kubeconfig))
    names = {ns.metadata.name for ns in client.CoreV1Api(api).list_namespace().items}
    assert {"default", "kube-system"} <= names


# -- static tokens ----------------------------------------------------------------------------


def test_token_file_is_read_in_kube_apiserver_format(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "tokens.csv"
    path.write_text('t-alice,alice,1001,"dev,ops"\n'
                    "\n"
                    "t-bob,bob,1002\n"
                    ",nobody,1003\n"  # an empty token is skipped
                    "t-bob,robert,1004,\n")  # a duplicate token: the later line wins
    tokens = {t.token: t.user for t in read_token_file(path)}
    assert set(tokens) == {"t-alice", "t-bob"}
    assert (tokens["t-alice"].name, tokens["t-alice"].uid,
            tokens["t-alice"].groups) == ("alice", "1001", ("dev", "ops"))
    # An empty fourth column is one empty group name (strings.Split("", ",")).
    assert (tokens["t-bob"].name, tokens["t-bob"].groups) == ("robert", ("",))
    with pytest.raises(ValueError, match="must have at least 3 columns"):
        parse_token_file("t,alice\n")
    assert parse_token_file(format_token_file(read_token_file(path))) == read_token_file(path)


def test_alice_authenticates_with_a_static_token(auth_sandbox: Start,
                                                 tmp_path: pathlib.Path) -> None:
    path = tmp_path / "tokens.csv"
    path.write_text('s3cr3t-alice,alice,1001,"dev,ops"\n')
    sb = auth_sandbox(tls=True, token_file=path, users={"carol": ["qa"]})
    assert sb.token_for("alice") == "s3cr3t-alice"
    alice = whoami(kubectl_for(sb, tmp_path, "alice"))
    # every authenticated user is also in system:authenticated
    assert alice == {"username": "alice", "uid": "1001",
                     "groups": ["dev", "ops", "system:authenticated"]}
    carol = whoami(kubectl_for(sb, tmp_path, "carol"))
    assert carol == {"username": "carol", "groups": ["qa", "system:authenticated"]}
    admin = whoami(kubectl_for(sb, tmp_path))
    assert admin == {"username": "kubernetes-admin",
                     "groups": ["system:masters", "system:authenticated"]}
    with pytest.raises(KeyError):
        sb.token_for("mallory")


# -- ServiceAccount tokens --------------------------------------------------------------------


def test_kubectl_create_token_issues_a_bound_service_account_token(
        auth_sandbox: Start, tmp_path: pathlib.Path) -> None:
    sb = auth_sandbox(tls=True, anonymous=False)
    admin = kubectl_for(sb, tmp_path)
    admin("apply", "-f", "-", input=TEAM)
    token = admin("create", "token", "robot", "-n", "team").stdout.strip()

    claims = jwt_claims(token)
    sa = sb.get("v1", "ServiceAccount", "team", "robot")
    assert sa is not None
    assert claims["iss"] == "https://kubernetes.default.svc.cluster.local"
    assert claims["aud"] == ["https://kubernetes.default.svc.cluster.local"]
    assert claims["sub"] == "system:serviceaccount:team:robot"
    assert claims["kubernetes.io"] == {"namespace": "team", "serviceaccount": {
        "name": "robot", "uid": sa["metadata"]["uid"]}}
    assert claims["exp"] - claims["iat"] == 3600 and claims["nbf"] == claims["iat"]

    robot = kubectl_for(sb, tmp_path, token=token, name="robot")
    user = whoami(robot)
    assert user["username"] == "system:serviceaccount:team:robot"
    assert user["uid"] == sa["metadata"]["uid"]
    assert user["groups"] == ["system:serviceaccounts", "system:serviceaccounts:team",
                              "system:authenticated"]
    assert user["extra"] == {"authentication.kubernetes.io/credential-id":
                             [f"JTI={claims['jti']}"]}

    # The sandbox's own helper issues the same kind of token.
    helper = kubectl_for(sb, tmp_path, "system:serviceaccount:team:robot")
    assert whoami(helper)["username"] == "system:serviceaccount:team:robot"

    # Deleting the ServiceAccount invalidates its tokens.
    admin("delete", "serviceaccount", "robot", "-n", "team")
    out = robot("auth", "whoami", check=False)
    assert out.returncode == 1
    assert "error: You must be logged in to the server (Unauthorized)" in out.stderr


def test_token_requests_that_kube_apiserver_refuses(auth_sandbox: Start,
                                                    tmp_path: pathlib.Path) -> None:
    sb = auth_sandbox()
    admin = kubectl_for(sb, tmp_path)
    admin("apply", "-f", "-", input=TEAM)
    missing = admin("create", "token", "ghost", "-n", "team", check=False)
    assert missing.stderr.strip() == \
        'error: failed to create token: serviceaccounts "ghost" not found'
    short = admin("create", "token", "robot", "-n", "team", "--duration=1m", check=False)
    assert short.stderr.strip() == (
        'error: failed to create token: TokenRequest.authentication.k8s.io "" is invalid: '
        "spec.expirationSeconds: Invalid value: 60: may not specify a duration less than "
        "10 minutes")
    # A token for another audience is not accepted by the API server.
    vault = admin("create", "token", "robot", "-n", "team", "--audience=vault").stdout.strip()
    assert jwt_claims(vault)["aud"] == ["vault"]
    out = kubectl_for(sb, tmp_path, token=vault, name="vault")("auth", "whoami", check=False)
    assert out.stderr.strip() == "error: You must be logged in to the server (Unauthorized)"


def test_token_bound_to_a_secret_dies_with_it(auth_sandbox: Start,
                                              tmp_path: pathlib.Path) -> None:
    sb = auth_sandbox()
    admin = kubectl_for(sb, tmp_path)
    admin("apply", "-f", "-", input=TEAM + "---\napiVersion: v1\nkind: Secret\n"
          "metadata: {name: anchor, namespace: team}\n")
    token = admin("create", "token", "robot", "-n", "team", "--bound-object-kind=Secret",
                  "--bound-object-name=anchor").stdout.strip()
    secret = sb.get("v1", "Secret", "team", "anchor")
    assert secret is not None
    assert jwt_claims(token)["kubernetes.io"]["secret"] == {
        "name": "anchor", "uid": secret["metadata"]["uid"]}
    robot = kubectl_for(sb, tmp_path, token=token, name="robot")
    assert whoami(robot)["username"] == "system:serviceaccount:team:robot"
    admin("delete", "secret", "anchor", "-n", "team")
    assert "(Unauthorized)" in robot("auth", "whoami", check=False).stderr


def test_python_client_token_request(auth_sandbox: Start, tmp_path: pathlib.Path) -> None:
    sb = auth_sandbox(tls=True)
    sb.load(yaml.safe_load_all(TEAM))
    api = config.new_client_from_config(config_file=str(sb.write_kubeconfig(tmp_path / "kc")))
    core = client.CoreV1Api(api)
    review = core.create_namespaced_service_account_token(
        "robot", "team", {"spec": {"expirationSeconds": 7200, "audiences": ["a", "b"]}})
    assert review.spec.expiration_seconds == 7200 and review.spec.audiences == ["a", "b"]
    assert review.metadata.name == "robot" and review.metadata.namespace == "team"
    claims = jwt_claims(review.status.token)
    assert claims["exp"] - claims["iat"] == 7200
    assert abs(review.status.expiration_timestamp.timestamp() - claims["exp"]) <= 1


# -- anonymous requests -----------------------------------------------------------------------


# kubectl prompts (on a terminal only) for a username and password when a kubeconfig for an
# HTTPS server holds no credentials. Giving them as flags sends basic auth, a header
# kube-apiserver no longer reads (basic auth was removed in 1.19): the request is anonymous,
# as against a real cluster.
NO_CREDENTIALS = ("--username=someone", "--password=something")


def test_anonymous_requests_when_anonymous_auth_is_on(auth_sandbox: Start,
                                                     tmp_path: pathlib.Path) -> None:
    sb = auth_sandbox(anonymous=True, rbac=True)
    path = sb.write_kubeconfig(tmp_path / "anonymous", user="system:anonymous")
    assert yaml.safe_load(path.read_text())["users"][0]["user"] == {}
    api = config.new_client_from_config(config_file=str(path))
    # The bootstrap role system:public-info-viewer lets anyone read /version and /healthz.
    assert client.VersionApi(api).get_code().minor == "35"
    with pytest.raises(ApiException) as denied:
        client.CoreV1Api(api).list_namespaced_pod("default")
    assert denied.value.status == 403
    assert json.loads(denied.value.body)["message"] == (
        'pods is forbidden: User "system:anonymous" cannot list resource "pods" in API group '
        '"" in the namespace "default"')
    kubectl = Kubectl(path, tmp_path)
    assert kubectl("get", "--raw", "/healthz", *NO_CREDENTIALS).stdout == "ok"
    out = kubectl("get", "--raw", "/api/v1/namespaces/default/pods", *NO_CREDENTIALS,
                  check=False)
    assert out.stderr.strip() == (
        'Error from server (Forbidden): pods is forbidden: User "system:anonymous" cannot '
        'list resource "pods" in API group "" in the namespace "default"')
    # An invalid token is not anonymous: it is refused.
    status, body, _ = raw(sb, "GET", "/version", token="not-a-token")
    assert (status, body["reason"], body["message"]) == (401, "Unauthorized", "Unauthorized")


def test_anonymous_identity_without_rbac(auth_sandbox: Start, tmp_path: pathlib.Path) -> None:
    sb = auth_sandbox(anonymous=True)
    kubectl = Kubectl(sb.write_kubeconfig(tmp_path / "anonymous", user="system:anonymous"),
                      tmp_path)
    assert whoami(kubectl, *NO_CREDENTIALS) == {
        "username": "system:anonymous", "groups": ["system:unauthenticated"]}


def test_without_anonymous_auth_no_token_is_401(auth_sandbox: Start,
                                                tmp_path: pathlib.Path) -> None:
    sb = auth_sandbox(anonymous=False)
    path = sb.write_kubeconfig(tmp_path / "anonymous", user="system:anonymous")
    out = Kubectl(path, tmp_path)("auth", "whoami", *NO_CREDENTIALS, check=False)
    assert out.returncode == 1
    assert out.stderr.strip() == "error: You must be logged in to the server (Unauthorized)"
    with pytest.raises(ApiException) as refused:
        client.CoreV1Api(config.new_client_from_config(config_file=str(path))).list_namespace()
    assert refused.value.status == 401
    status, body, headers = raw(sb, "GET", "/api/v1/namespaces/default/pods")
    assert status == 401
    assert body == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": "Unauthorized", "reason": "Unauthorized", "code": 401}
    assert headers["Audit-Id"]
    # A scheme other than Bearer is not a token: with anonymous off, still 401.
    assert raw(sb, "GET", "/version", headers={"Authorization": "Basic YTpi"})[0] == 401
    assert raw(sb, "GET", "/version", token=sb.admin_token)[0] == 200


# -- 401 against 403 --------------------------------------------------------------------------


def test_unauthorized_and_forbidden_as_kubectl_prints_them(auth_sandbox: Start,
                                                          tmp_path: pathlib.Path) -> None:
    sb = auth_sandbox(tls=True, users={"alice": ["dev"]}, rbac=True, anonymous=False)
    stranger = kubectl_for(sb, tmp_path, token="no-such-token", name="stranger")
    assert stranger("auth", "whoami", check=False).stderr.strip() == \
        "error: You must be logged in to the server (Unauthorized)"
    # kubectl get asks discovery first, and client-go's discovery reads a 401 body as raw
    # bytes, so kubectl prints client-go's generic text (as against a real cluster).
    out = stranger("get", "secrets", check=False)
    assert out.stderr.strip().endswith("error: You must be logged in to the server (the server "
                                       "has asked for the client to provide credentials)")
    alice = kubectl_for(sb, tmp_path, "alice")
    out = alice("get", "secrets", check=False)
    assert out.returncode == 1
    assert out.stderr.strip() == (
        'Error from server (Forbidden): secrets is forbidden: User "alice" cannot list resource '
        '"secrets" in API group "" in the namespace "default"')
    out = alice("get", "deployment", "web", "-n", "shop", check=False)
    assert out.stderr.strip() == (
        'Error from server (Forbidden): deployments.apps "web" is forbidden: User "alice" '
        'cannot get resource "deployments" in API group "apps" in the namespace "shop"')
    # What alice may do, she does: discovery and her own identity (system:basic-user).
    assert whoami(alice)["username"] == "alice"

    api = config.new_client_from_config(config_file=str(alice.kubeconfig))
    with pytest.raises(ApiException) as denied:
        client.CoreV1Api(api).list_namespaced_secret("default")
    body = json.loads(denied.value.body)
    assert denied.value.status == 403 and body["reason"] == "Forbidden"
    assert body["details"] == {"kind": "secrets"}


# -- impersonation ----------------------------------------------------------------------------


def test_kubectl_as_is_allowed_when_rbac_allows_impersonate(auth_sandbox: Start,
                                                            tmp_path: pathlib.Path) -> None:
    sb = auth_sandbox(tls=True, users={"alice": []}, rbac=True)
    sb.load(IMPERSONATOR)
    alice = kubectl_for(sb, tmp_path, "alice")
    assert whoami(alice, "--as=bob") == {"username": "bob", "groups": ["system:authenticated"]}
    assert whoami(alice, "--as=bob", "--as-group=dev") == {
        "username": "bob", "groups": ["dev", "system:authenticated"]}
    # The administrator (system:masters) may impersonate anyone, ServiceAccounts included,
    # which get their account groups.
    admin = kubectl_for(sb, tmp_path)
    assert whoami(admin, "--as=system:serviceaccount:team:robot") == {
        "username": "system:serviceaccount:team:robot",
        "groups": ["system:serviceaccounts", "system:serviceaccounts:team",
                   "system:authenticated"]}
    assert whoami(admin, "--as=ghost", "--as-uid=42") == {
        "username": "ghost", "uid": "42", "groups": ["system:authenticated"]}
    # The request is authorized as the impersonated user.
    out = alice("get", "pods", "--as=bob", check=False)
    assert out.stderr.strip() == (
        'Error from server (Forbidden): pods is forbidden: User "bob" cannot list resource '
        '"pods" in API group "" in the namespace "default"')


def test_kubectl_as_is_refused_without_impersonate(auth_sandbox: Start,
                                                   tmp_path: pathlib.Path) -> None:
    sb = auth_sandbox(users={"alice": [], "bob": []}, rbac=True)
    sb.load(IMPERSONATOR)
    bob = kubectl_for(sb, tmp_path, "bob")
    pods = "/api/v1/namespaces/default/pods"
    out = bob("get", "--raw", pods, "--as=alice", check=False)
    assert out.returncode == 1
    assert out.stderr.strip() == (
        'Error from server (Forbidden): users "alice" is forbidden: User "bob" cannot '
        'impersonate resource "users" in API group "" at the cluster scope')
    alice = kubectl_for(sb, tmp_path, "alice")
    out = alice("get", "--raw", pods, "--as=bob", "--as-group=ops", check=False)
    assert out.stderr.strip() == (
        'Error from server (Forbidden): groups "ops" is forbidden: User "alice" cannot '
        'impersonate resource "groups" in API group "" at the cluster scope')
    out = alice("get", "--raw", pods, "--as=system:serviceaccount:team:robot", check=False)
    assert out.stderr.strip() == (
        'Error from server (Forbidden): serviceaccounts "robot" is forbidden: User "alice" '
        'cannot impersonate resource "serviceaccounts" in API group "" in the namespace "team"')
    # kubectl's discovery reads a 403 body as raw bytes: "unknown", as on a real cluster.
    out = bob("get", "pods", "--as=alice", check=False)
    assert out.stderr.strip().endswith("Error from server (Forbidden): unknown")
    # Groups without a user: kube-apiserver answers 500 (kubectl refuses to send it).
    status, body, _ = raw(sb, "GET", "/api", token=sb.admin_token,
                          headers={"Impersonate-Group": "dev"})
    assert status == 500 and body["message"] == (
        "Internal error occurred: requested [{Group  dev    }] without impersonating a user")


def test_impersonating_user_extras(auth_sandbox: Start) -> None:
    sb = auth_sandbox(users={"alice": []}, rbac=True)
    sb.load(IMPERSONATOR)
    review = "/apis/authentication.k8s.io/v1/selfsubjectreviews"
    headers = {"Impersonate-User": "bob", "Impersonate-Extra-Scopes": "view",
               "Impersonate-Extra-Example.org%2fteam": "blue",
               "Content-Type": "application/json"}
    status, body, _ = raw(sb, "POST", review, token=sb.admin_token, headers=headers, body=b"{}")
    assert status == 201
    # Extra keys are lowercased and %-decoded (unescapeExtraKey).
    assert body["status"]["userInfo"] == {
        "username": "bob", "groups": ["system:authenticated"],
        "extra": {"example.org/team": ["blue"], "scopes": ["view"]}}
    # Alice may impersonate bob, but no extras: "userextras/<key>" in authentication.k8s.io.
    status, body, _ = raw(sb, "POST", review, token=sb.token_for("alice"), headers=headers,
                          body=b"{}")
    assert status == 403 and body["message"] == (
        'userextras.authentication.k8s.io "blue" is forbidden: User "alice" cannot impersonate '
        'resource "userextras/example.org/team" in API group "authentication.k8s.io" at the '
        "cluster scope")


# -- speed ------------------------------------------------------------------------------------


def test_authentication_costs_little_per_request(auth_sandbox: Start) -> None:
    sb = auth_sandbox(tls=False, users={"alice": []}, rbac=True)
    token = sb.token_for("alice")
    conn = http.client.HTTPConnection(sb.host, sb.port, timeout=10)
    started = time.perf_counter()
    for _ in range(200):
        conn.request("GET", "/apis", headers={"Authorization": f"Bearer {token}"})
        response = conn.getresponse()
        response.read()
        assert response.status == 200
    elapsed = time.perf_counter() - started
    conn.close()
    # About 0.1 s here; the bound leaves room for a busy machine.
    assert elapsed < 5.0, f"200 authenticated, RBAC-authorized requests took {elapsed:.2f}s"
