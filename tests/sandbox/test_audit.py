"""The audit log of an authenticating sandbox: ``audit.k8s.io/v1`` events for real kubectl
1.35 requests, written to a file (``--audit-log-path``) and POSTed to a real local webhook
receiver (``--audit-webhook-config-file``), at the level the policy's first matching rule
gives."""

from __future__ import annotations

import json
import pathlib
import re
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
import yaml
from kubernetes import client, config, watch

from auditor.engine.records import ResourceKey
from auditor.ledger.auditlog import AuditLog
from auditor.sandbox import AuditConfig, Sandbox
from auditor.sandbox.auditpolicy import Policy
from auditor.sandbox.rbac import UserInfo
from auditor.sandbox.requestinfo import request_info
from auditor.sandbox.tls import make_serving_certs
from tests.sandbox.authkit import (
    audit_receiver,
    completed,
    jwt_claims,
    kubectl_for,
    raw,
    read_events,
)

pytestmark = pytest.mark.kubectl

Start = Callable[..., Sandbox]

API = "audit.k8s.io/v1"
MICRO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
# Discovery and health checks are noise in these tests, as in most real policies.
QUIET_DISCOVERY = {"level": "None", "nonResourceURLs": ["/api", "/api/*", "/apis", "/apis/*",
                                                        "/openapi/*", "/version"]}
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


def configmap(name: str, namespace: str = "default") -> str:
    return (f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: "
            f"{namespace}}}\ndata: {{a: '1'}}\n")


def policy(*rules: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"apiVersion": API, "kind": "Policy", "rules": list(rules), **extra}


def by_id(events: list[dict[str, Any]], audit_id: str) -> list[dict[str, Any]]:
    return [e for e in events if e["auditID"] == audit_id]


# -- a kubectl apply, an edit and a delete -----------------------------------------------------


def test_apply_edit_delete_at_request_response(auth_sandbox: Start,
                                               tmp_path: pathlib.Path) -> None:
    log = tmp_path / "audit.log"
    sb = auth_sandbox(audit=AuditConfig(policy=policy(QUIET_DISCOVERY,
                                                      {"level": "RequestResponse"}),
                                        log_path=log))
    kubectl = kubectl_for(sb, tmp_path)
    manifest = tmp_path / "web.yaml"
    manifest.write_text(WEB)
    kubectl("apply", "-f", str(manifest))
    kubectl("edit", "deployment", "web",
            env={"KUBE_EDITOR": "sed -i s/nginx:1.25/nginx:1.26/"})
    kubectl("delete", "deployment", "web")
    events = read_events(log)
    assert all(e["kind"] == "Event" and e["apiVersion"] == API for e in events)

    # kubectl apply: a GET that finds nothing, then the create.
    get = completed(events, "get", "deployments")[0]
    assert get["responseStatus"] == {
        "metadata": {}, "status": "Failure", "message": 'deployments.apps "web" not found',
        "reason": "NotFound", "details": {"name": "web", "group": "apps", "kind": "deployments"},
        "code": 404}
    [create] = completed(events, "create", "deployments")
    stored_uid = create["responseObject"]["metadata"]["uid"]
    assert create["level"] == "RequestResponse"
    assert create["requestURI"] == \
        "/apis/apps/v1/namespaces/default/deployments?fieldManager=kubectl-client-side-apply" \
        "&fieldValidation=Strict"
    assert create["user"] == {"username": "kubernetes-admin",
                              "groups": ["system:masters", "system:authenticated"]}
    assert create["sourceIPs"] == ["127.0.0.1"]
    assert create["userAgent"].startswith("kubectl/v1.35.")
    # The name comes from the body (the URL of a create has none).
    assert create["objectRef"] == {"resource": "deployments", "namespace": "default",
                                   "name": "web", "apiGroup": "apps", "apiVersion": "v1"}
    assert create["responseStatus"] == {"metadata": {}, "code": 201}
    assert create["requestObject"]["kind"] == "Deployment"
    # The request as sent: nothing the server then set (uid, defaults, managedFields).
    assert set(create["requestObject"]["metadata"]) == {"name", "namespace", "annotations"}
    assert "strategy" not in create["requestObject"]["spec"]
    assert "kubectl.kubernetes.io/last-applied-configuration" in \
        create["requestObject"]["metadata"]["annotations"]
    assert create["responseObject"]["metadata"]["name"] == "web"
    assert create["annotations"] == {"authorization.k8s.io/decision": "allow",
                                     "authorization.k8s.io/reason": ""}
    for key in ("requestReceivedTimestamp", "stageTimestamp"):
        assert MICRO.match(create[key]), create[key]
    assert create["stageTimestamp"] >= create["requestReceivedTimestamp"]
    # The same request's RequestReceived event: before authorization and the handler.
    [received] = [e for e in by_id(events, create["auditID"]) if e["stage"] == "RequestReceived"]
    assert received["stageTimestamp"] == received["requestReceivedTimestamp"] == \
        create["requestReceivedTimestamp"]
    assert not {"annotations", "responseStatus", "requestObject", "responseObject"} & \
        set(received)
    assert received["objectRef"] == {"resource": "deployments", "namespace": "default",
                                     "apiGroup": "apps", "apiVersion": "v1"}

    # kubectl edit: a strategic-merge patch, logged verbatim.
    [edit] = completed(events, "patch", "deployments")
    assert "fieldManager=kubectl-edit" in edit["requestURI"]
    assert edit["objectRef"]["name"] == "web"
    containers = edit["requestObject"]["spec"]["template"]["spec"]["containers"]
    assert containers == [{"image": "nginx:1.26", "name": "web"}]
    assert edit["responseObject"]["spec"]["template"]["spec"]["containers"][0]["image"] == \
        "nginx:1.26"
    assert edit["responseStatus"] == {"metadata": {}, "code": 200}

    # kubectl delete: the body is DeleteOptions.
    [delete] = completed(events, "delete", "deployments")
    assert delete["objectRef"]["name"] == "web"
    assert delete["requestObject"] == {"kind": "DeleteOptions", "apiVersion": "meta.k8s.io/v1",
                                       "propagationPolicy": "Background"}
    # A deleted Deployment is answered with a Success Status, which the event keeps.
    details = {"name": "web", "group": "apps", "kind": "deployments", "uid": stored_uid}
    assert delete["responseObject"]["details"] == details
    assert delete["responseStatus"] == {"metadata": {}, "status": "Success",
                                        "details": details, "code": 200}
    # Every request's events share one auditID, which the response's Audit-Id header carries.
    status, _, headers = raw(sb, "GET", "/api/v1/namespaces", token=sb.admin_token)
    assert status == 200
    [listed] = completed(read_events(log), "list", "namespaces")
    assert listed["auditID"] == headers["Audit-Id"]


# -- levels and the policy ---------------------------------------------------------------------


def test_each_level_records_what_it_should(auth_sandbox: Start, tmp_path: pathlib.Path) -> None:
    log = tmp_path / "audit.log"
    users = {"meta": [], "req": [], "full": [], "quiet": []}
    sb = auth_sandbox(users=users, audit=AuditConfig(log_path=log, policy=policy(
        {"level": "None", "users": ["quiet"]},
        {"level": "Metadata", "users": ["meta"]},
        {"level": "Request", "users": ["req"]},
        {"level": "RequestResponse", "users": ["full"]})))
    for user in users:
        kubectl_for(sb, tmp_path, user)("apply", "-f", "-", input=configmap(f"cm-{user}"))
    created = {e["user"]["username"]: e for e in completed(read_events(log), "create")}
    assert set(created) == {"meta", "req", "full"}  # level None writes nothing
    assert {e["level"] for e in created.values()} == {"Metadata", "Request", "RequestResponse"}
    meta, req, full = created["meta"], created["req"], created["full"]
    assert meta["level"] == "Metadata" and "requestObject" not in meta \
        and "responseObject" not in meta
    assert meta["objectRef"]["name"] == "cm-meta"  # Metadata still completes objectRef
    assert req["requestObject"]["data"] == {"a": "1"} and "responseObject" not in req
    assert full["requestObject"]["metadata"]["name"] == "cm-full"
    assert full["responseObject"]["metadata"]["uid"]
    assert {e["responseStatus"]["code"] for e in created.values()} == {201}
    # Non-resource requests never carry objects, whatever the level.
    raw(sb, "GET", "/version", token=sb.token_for("full"))
    [version] = completed(read_events(log), "get")[-1:]
    assert version["requestURI"] == "/version" and version["level"] == "RequestResponse"
    assert "objectRef" not in version and "responseObject" not in version


def test_the_first_matching_rule_wins(auth_sandbox: Start, tmp_path: pathlib.Path) -> None:
    quiet_first = policy(
        QUIET_DISCOVERY,
        {"level": "None", "resources": [{"group": "", "resources": ["configmaps"]}],
         "namespaces": ["quiet"]},
        {"level": "RequestResponse", "resources": [{"group": "", "resources": ["configmaps"]}],
         "omitStages": ["RequestReceived"]},
        {"level": "Metadata"})
    rules = quiet_first["rules"]
    loud_first = policy(rules[0], rules[2], rules[1], rules[3])
    for name, chosen in (("quiet-first", quiet_first), ("loud-first", loud_first)):
        log = tmp_path / f"{name}.log"
        sb = auth_sandbox(audit=AuditConfig(policy=chosen, log_path=log))
        kubectl = kubectl_for(sb, tmp_path, name=name)
        kubectl("apply", "-f", "-", input="apiVersion: v1\nkind: Namespace\nmetadata: {name: quiet}\n"
                "---\n" + configmap("a", "quiet") + "---\n"
                + configmap("b", "default") + "---\napiVersion: v1\nkind: Secret\n"
                "metadata: {name: s, namespace: default}\n")
        events = read_events(log)
        levels = {e["objectRef"]["name"]: e["level"] for e in completed(events, "create")
                  if e["objectRef"]["resource"] != "namespaces"}
        if name == "quiet-first":
            assert levels == {"b": "RequestResponse", "s": "Metadata"}
        else:
            assert levels == {"a": "RequestResponse", "b": "RequestResponse", "s": "Metadata"}
        # The configmap rule omits RequestReceived; the catch-all does not.
        stages = {(e["objectRef"].get("resource"), e["stage"]) for e in events
                  if e["verb"] == "create"}
        assert ("configmaps", "RequestReceived") not in stages
        assert ("secrets", "RequestReceived") in stages


def test_policy_matching_follows_kube_apiserver() -> None:
    pol = Policy.from_object(policy(
        {"level": "Request", "resources": [{"group": "apps", "resources": ["*/scale"]}]},
        {"level": "RequestResponse", "resources": [{"group": "", "resources": ["pods/*"]}]},
        {"level": "Metadata", "resources": [{"group": "", "resources": ["secrets"],
                                             "resourceNames": ["keep"]}]},
        {"level": "None", "userGroups": ["system:nodes"]},
        {"level": "Metadata", "nonResourceURLs": ["/healthz*"]},
        omitStages=["RequestReceived"], omitManagedFields=True))

    alice = UserInfo("alice", "", ("system:authenticated",))

    def level(path: str, method: str = "GET", query: dict[str, list[str]] | None = None) -> str:
        return pol.evaluate(request_info(method, path, query or {}), alice).level

    assert level("/apis/apps/v1/namespaces/d/deployments/web/scale") == "Request"
    assert level("/apis/apps/v1/namespaces/d/deployments/web") == "None"
    assert level("/api/v1/namespaces/d/pods/p/log") == "RequestResponse"
    # checker.go compares "res/*" with the resource alone: it matches pods too, not only
    # their subresources as the type's comment says.
    assert level("/api/v1/namespaces/d/pods/p") == "RequestResponse"
    assert level("/api/v1/namespaces/d/secrets/keep") == "Metadata"
    assert level("/api/v1/namespaces/d/secrets/other") == "None"
    assert level("/healthz/etcd") == "Metadata"
    # Without a user (a failed authentication) user and group conditions do not exclude.
    assert pol.evaluate(request_info("GET", "/healthz", {}), None).level == "None"
    decided = pol.evaluate(request_info("GET", "/api/v1/namespaces/d/pods/p/log", {}), None)
    assert decided.omit_stages == ("RequestReceived",) and decided.omit_managed_fields
    with pytest.raises(ValueError, match="0 rules"):
        Policy.from_object(policy())
    with pytest.raises(ValueError, match="both regular resources and non-resource URLs"):
        Policy.from_object(policy({"level": "Metadata", "nonResourceURLs": ["/x"],
                                   "resources": [{"group": ""}]}))
    with pytest.raises(ValueError, match="Unsupported value"):
        Policy.from_object(policy({"level": "Everything"}))


def test_omit_managed_fields(auth_sandbox: Start, tmp_path: pathlib.Path) -> None:
    log = tmp_path / "audit.log"
    sb = auth_sandbox(audit=AuditConfig(log_path=log, policy=policy(
        QUIET_DISCOVERY, {"level": "RequestResponse", "omitManagedFields": True})))
    kubectl_for(sb, tmp_path)("apply", "--server-side", "-f", "-", input=configmap("c"))
    [applied] = completed(read_events(log), "patch", "configmaps")
    assert applied["responseObject"]["metadata"]["name"] == "c"
    assert "managedFields" not in applied["responseObject"]["metadata"]
    assert "fieldManager=kubectl" in applied["requestURI"]


# -- who: impersonation, denials, failed authentication ----------------------------------------


def test_an_impersonated_request_records_both_users(auth_sandbox: Start,
                                                    tmp_path: pathlib.Path) -> None:
    log = tmp_path / "audit.log"
    sb = auth_sandbox(users={"alice": ["sre"]},
                      audit=AuditConfig(log_path=log, policy=policy(QUIET_DISCOVERY,
                                                                    {"level": "Metadata"})))
    alice = kubectl_for(sb, tmp_path, "alice")
    alice("apply", "-f", "-", "--as=bob", "--as-group=dev", input=configmap("as-bob"))
    events = read_events(log)
    [create] = completed(events, "create", "configmaps")
    assert create["user"] == {"username": "alice", "groups": ["sre", "system:authenticated"]}
    assert create["impersonatedUser"] == {"username": "bob",
                                          "groups": ["dev", "system:authenticated"]}
    # RequestReceived is written before impersonation: only the requester.
    [received] = [e for e in by_id(events, create["auditID"]) if e["stage"] == "RequestReceived"]
    assert "impersonatedUser" not in received
    stored = sb.get("v1", "ConfigMap", "default", "as-bob")
    assert stored is not None


def test_a_denied_request_is_audited_with_the_decision(auth_sandbox: Start,
                                                       tmp_path: pathlib.Path) -> None:
    log = tmp_path / "audit.log"
    sb = auth_sandbox(users={"alice": []}, rbac=True,
                      audit=AuditConfig(log_path=log, policy=policy(QUIET_DISCOVERY,
                                                                    {"level": "Metadata"})))
    alice = kubectl_for(sb, tmp_path, "alice")
    assert alice("get", "secrets", check=False).returncode == 1
    [denied] = completed(read_events(log), "list", "secrets")
    assert denied["user"]["username"] == "alice"
    assert denied["annotations"] == {"authorization.k8s.io/decision": "forbid",
                                     "authorization.k8s.io/reason": ""}
    assert denied["responseStatus"] == {
        "metadata": {}, "status": "Failure",
        "message": 'secrets is forbidden: User "alice" cannot list resource "secrets" in API '
                   'group "" in the namespace "default"',
        "reason": "Forbidden", "details": {"kind": "secrets"}, "code": 403}
    # An allowed request names the binding that allowed it.
    alice("auth", "whoami")
    [review] = completed(read_events(log), "create", "selfsubjectreviews")
    assert review["annotations"]["authorization.k8s.io/reason"] == (
        'RBAC: allowed by ClusterRoleBinding "system:basic-user" of ClusterRole '
        '"system:basic-user" to Group "system:authenticated"')
    # A refused impersonation is audited too; impersonation checks add no annotations.
    alice("get", "--raw", "/api/v1/namespaces/default/configmaps", "--as=root", check=False)
    [refused] = [e for e in completed(read_events(log), "list", "configmaps")]
    assert refused["responseStatus"]["code"] == 403 and "impersonatedUser" not in refused
    assert "annotations" not in refused


def test_a_failed_authentication_is_one_response_started_event(auth_sandbox: Start,
                                                               tmp_path: pathlib.Path) -> None:
    log = tmp_path / "audit.log"
    sb = auth_sandbox(anonymous=False, audit=AuditConfig(log_path=log))
    status, _, _ = raw(sb, "GET", "/api/v1/namespaces/default/pods", token="wrong")
    assert status == 401
    [event] = read_events(log)
    assert event["stage"] == "ResponseStarted" and event["user"] == {}
    assert event["verb"] == "list" and event["objectRef"]["resource"] == "pods"
    assert event["responseStatus"] == {"metadata": {}, "status": "Failure",
                                       "message": "Unauthorized", "reason": "Unauthorized",
                                       "code": 401}
    assert "annotations" not in event


def test_token_request_records_the_issued_credential(auth_sandbox: Start,
                                                     tmp_path: pathlib.Path) -> None:
    log = tmp_path / "audit.log"
    sb = auth_sandbox(audit=AuditConfig(log_path=log, policy=policy(QUIET_DISCOVERY,
                                                                    {"level": "Metadata"})))
    sb.load([{"apiVersion": "v1", "kind": "ServiceAccount",
              "metadata": {"name": "robot", "namespace": "default"}}])
    token = kubectl_for(sb, tmp_path)("create", "token", "robot").stdout.strip()
    [issued] = completed(read_events(log), "create", "serviceaccounts")
    assert issued["objectRef"] == {"resource": "serviceaccounts", "namespace": "default",
                                   "name": "robot", "apiVersion": "v1", "subresource": "token"}
    credential = f"JTI={jwt_claims(token)['jti']}"
    assert issued["annotations"]["authentication.kubernetes.io/issued-credential-id"] == \
        credential
    kubectl_for(sb, tmp_path, token=token, name="robot")("auth", "whoami")
    [used] = completed(read_events(log), "create", "selfsubjectreviews")
    assert used["user"]["extra"] == {"authentication.kubernetes.io/credential-id": [credential]}


def test_a_watch_has_a_response_started_stage(auth_sandbox: Start,
                                              tmp_path: pathlib.Path) -> None:
    log = tmp_path / "audit.log"
    sb = auth_sandbox(audit=AuditConfig(log_path=log))
    api = config.new_client_from_config(
        config_file=str(sb.write_kubeconfig(tmp_path / "kubeconfig")))
    for _ in watch.Watch().stream(client.CoreV1Api(api).list_namespaced_config_map,
                                  "default", timeout_seconds=1):
        pass
    events = [e for e in read_events(log) if e["verb"] == "watch"]
    assert [e["stage"] for e in events] == ["RequestReceived", "ResponseStarted",
                                            "ResponseComplete"]
    assert events[1]["responseStatus"] == {"metadata": {}, "code": 200}


# -- the webhook backend -----------------------------------------------------------------------


def test_webhook_receives_the_same_events_in_batches(auth_sandbox: Start,
                                                     tmp_path: pathlib.Path) -> None:
    log = tmp_path / "audit.log"
    with audit_receiver() as receiver:
        sb = auth_sandbox(audit=AuditConfig(
            policy=policy(QUIET_DISCOVERY, {"level": "Request"}), log_path=log,
            webhook_config=receiver.write_kubeconfig(tmp_path / "webhook.yaml"),
            webhook_batch_max_size=3, webhook_batch_max_wait=0.2))
        kubectl = kubectl_for(sb, tmp_path)
        kubectl("apply", "-f", "-", input=WEB)
        kubectl("delete", "deployment", "web")
        sb.flush_audit()
        from_file = read_events(log)
        deadline = time.monotonic() + 5
        while len(receiver.events()) < len(from_file) and time.monotonic() < deadline:
            time.sleep(0.05)
        bodies = receiver.bodies()
        path, headers, _ = receiver.posts[0]
    assert path == "/k8s-audit"
    assert headers["Content-Type"] == "application/json"
    assert headers["Authorization"] == "Bearer receiver-token"
    assert all(b["kind"] == "EventList" and b["apiVersion"] == API for b in bodies)
    assert all(1 <= len(b["items"]) <= 3 for b in bodies) and len(bodies) >= 2
    # The list's items are the file's events without their own kind/apiVersion.
    assert receiver.events() == [{k: v for k, v in e.items() if k not in ("kind", "apiVersion")}
                                 for e in from_file]
    assert {e["verb"] for e in receiver.events()} >= {"get", "create", "delete"}


def test_webhook_blocking_mode_posts_each_event(auth_sandbox: Start,
                                                tmp_path: pathlib.Path) -> None:
    # The receiver serves HTTPS; the webhook kubeconfig carries its CA.
    with audit_receiver(make_serving_certs("127.0.0.1")) as receiver:
        sb = auth_sandbox(audit=AuditConfig(
            policy=policy({"level": "Metadata", "omitStages": ["RequestReceived"]}),
            webhook_config=receiver.write_kubeconfig(tmp_path / "webhook.yaml"),
            webhook_mode="blocking"))
        raw(sb, "GET", "/version", token=sb.admin_token)
        raw(sb, "GET", "/healthz", token=sb.admin_token)
        # Blocking: each event is sent before the response.
        bodies = receiver.bodies()
    assert [len(b["items"]) for b in bodies] == [1, 1]
    assert [b["items"][0]["requestURI"] for b in bodies] == ["/version", "/healthz"]
    assert all(b["items"][0]["stage"] == "ResponseComplete" for b in bodies)


# -- the product reads it -------------------------------------------------------------------


def test_the_auditors_audit_log_reader_attributes_a_change(auth_sandbox: Start,
                                                           tmp_path: pathlib.Path) -> None:
    log = tmp_path / "audit.log"
    sb = auth_sandbox(users={"alice": ["sre"]},
                      audit=AuditConfig(log_path=log, policy=policy(QUIET_DISCOVERY,
                                                                    {"level": "Metadata"})))
    kubectl_for(sb, tmp_path, "alice")("apply", "-f", "-", input=configmap("settings"))
    stored = sb.get("v1", "ConfigMap", "default", "settings")
    assert stored is not None
    entry = stored["metadata"]["managedFields"][0]
    reader = AuditLog.load(log)
    user = reader.user_for(ResourceKey("", "ConfigMap", "default", "settings"), entry["time"],
                           entry["manager"])
    assert user == "alice"
    assert datetime.fromisoformat(entry["time"].replace("Z", "+00:00"))
    assert yaml.safe_dump(json.loads(log.read_text().splitlines()[0]))  # plain JSON lines
