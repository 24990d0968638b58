"""The audit log, as kube-apiserver writes it: ``audit.k8s.io/v1`` events for each request.

Grounded in staging/src/k8s.io/apiserver: ``pkg/apis/audit/v1/types.go`` (``Event``, its
JSON field order kept), ``pkg/audit/request.go`` and ``context.go`` (what each level records),
``endpoints/filters/audit.go`` (the stages). Metadata: who (``user``; ``impersonatedUser``),
what (``verb``, ``requestURI``, ``objectRef`` — completed from the request body's
name/namespace/uid/resourceVersion on create and update), ``sourceIPs``, ``userAgent``,
``responseStatus`` (``code`` only on success; status, message, reason, details of a
``Status`` answer) and ``annotations`` (``authorization.k8s.io/decision`` and ``/reason``);
Request adds ``requestObject`` (the body as sent; a patch verbatim; a delete's
``DeleteOptions``); RequestResponse adds ``responseObject``. Non-resource requests never carry
objects. Stages: ``RequestReceived`` (sent before impersonation and authorization, so without
``impersonatedUser`` or annotations), ``ResponseStarted`` (a watch's headers; a failed
authentication's only event), ``ResponseComplete``. Timestamps are ``metav1.MicroTime`` (UTC,
six fraction digits). Which requests and at which level: :mod:`auditor.sandbox.auditpolicy`;
where the events go: :mod:`auditor.sandbox.auditbackends`. Not written:
``apiserver.latency.k8s.io/*`` annotations.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import pathlib
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from auditor.sandbox.auditbackends import LogBackend, WebhookBackend, WebhookTarget
from auditor.sandbox.auditpolicy import (
    API_VERSION,
    Policy,
    RequestAuditConfig,
    level_at_least,
)
from auditor.sandbox.rbac import UserInfo
from auditor.sandbox.requestinfo import RequestInfo

_MAX_USER_AGENT = 1024

# The policy a sandbox uses when its AuditConfig names none: everything at Metadata.
METADATA_EVERYTHING = {"apiVersion": API_VERSION, "kind": "Policy",
                       "rules": [{"level": "Metadata"}]}


@dataclass(frozen=True)
class AuditConfig:
    """Where audit events go and which: the ``--audit-*`` flags of kube-apiserver.

    ``policy`` is a Policy object (a dict), or a path to one in YAML or JSON; None logs every
    request at Metadata. ``log_path`` is ``--audit-log-path`` (JSON lines), ``webhook_config``
    ``--audit-webhook-config-file`` (a kubeconfig naming the receiver's ``server`` URL),
    ``webhook_mode`` ``batch`` or ``blocking``, and the batch limits those of
    ``--audit-webhook-batch-max-size`` / ``-max-wait`` (seconds).
    """

    policy: Mapping[str, Any] | str | pathlib.Path | None = None
    log_path: str | pathlib.Path | None = None
    webhook_config: str | pathlib.Path | None = None
    webhook_mode: str = "batch"
    webhook_batch_max_size: int = 400
    webhook_batch_max_wait: float = 30.0

    def load_policy(self) -> Policy:
        if self.policy is None:
            return Policy.from_object(METADATA_EVERYTHING)
        if isinstance(self.policy, Mapping):
            return Policy.from_object(self.policy)
        return Policy.load(self.policy)


def micro_time(epoch: float) -> str:
    """``metav1.MicroTime`` JSON: RFC 3339 in UTC with microseconds."""
    moment = dt.datetime.fromtimestamp(epoch, dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def user_info(user: UserInfo | None) -> dict[str, Any]:
    """``authentication/v1.UserInfo`` JSON (every field omitted when empty; extra sorted, as
    Go writes maps)."""
    if user is None:
        return {}
    out: dict[str, Any] = {}
    if user.name:
        out["username"] = user.name
    if user.uid:
        out["uid"] = user.uid
    if user.groups:
        out["groups"] = list(user.groups)
    if user.extra:
        out["extra"] = {k: list(user.extra[k]) for k in sorted(user.extra)}
    return out


class Headers(Protocol):
    """Request headers as :class:`http.client.HTTPMessage` offers them."""

    def get(self, name: str, failobj: None = None) -> str | None: ...


def source_ips(headers: Headers, remote: str) -> list[str]:
    """``utilnet.SourceIPs``: X-Forwarded-For's valid IPs, X-Real-Ip when not among them, then
    the connection's address unless it is already the last one."""

    def parse(text: str) -> str | None:
        try:
            return str(ipaddress.ip_address(text.strip()))
        except ValueError:
            return None

    out: list[str] = []
    forwarded = headers.get("X-Forwarded-For") or ""
    if forwarded:
        out.extend(ip for ip in (parse(p) for p in forwarded.split(",")) if ip)
    real = parse(headers.get("X-Real-Ip") or "") if headers.get("X-Real-Ip") else None
    if real and real not in out:
        out.append(real)
    peer = parse(remote)
    if peer and (not out or out[-1] != peer):
        out.append(peer)
    return out


def _without_managed_fields(obj: Any) -> Any:
    """``copyWithoutManagedFields``: the object, a list's items, a Table's rows' objects."""
    if not isinstance(obj, dict):
        return obj
    out = dict(obj)
    if isinstance(out.get("metadata"), dict) and "managedFields" in out["metadata"]:
        out["metadata"] = {k: v for k, v in out["metadata"].items() if k != "managedFields"}
    if isinstance(out.get("items"), list):
        out["items"] = [_without_managed_fields(i) for i in out["items"]]
    if out.get("kind") == "Table" and isinstance(out.get("rows"), list):
        out["rows"] = [{**row, "object": _without_managed_fields(row.get("object"))}
                       if isinstance(row, dict) and "object" in row else row
                       for row in out["rows"]]
    return out


@dataclass
class AuditEvent:
    """One request's event, filled in as the request goes through the chain and emitted at
    each stage."""

    config: RequestAuditConfig
    audit_id: str
    request_uri: str
    verb: str
    user: UserInfo | None
    source_ips: list[str]
    user_agent: str
    object_ref: dict[str, str] | None
    received: float
    resource_request: bool
    impersonated_user: UserInfo | None = None
    response_status: dict[str, Any] | None = None
    request_object: Any = None
    response_object: Any = None
    annotations: dict[str, str] = field(default_factory=dict)

    @property
    def level(self) -> str:
        return self.config.level

    def annotate(self, key: str, value: str) -> None:
        # LogAnnotation: a key keeps its first value.
        self.annotations.setdefault(key, value)

    def log_request_object(self, obj: Mapping[str, Any], api_version: str = "",
                           kind: str = "") -> None:
        """``LogRequestObject``: complete ``objectRef`` from the object's metadata, and keep
        the object at Request level and above (with ``apiVersion``/``kind`` as encoded)."""
        meta = obj.get("metadata") if isinstance(obj.get("metadata"), Mapping) else None
        if self.object_ref is not None and meta is not None:
            for key in ("namespace", "name", "uid", "resourceVersion"):
                if not self.object_ref.get(key) and meta.get(key):
                    self.object_ref[key] = str(meta[key])
        if not level_at_least(self.level, "Request") or not self.resource_request:
            return
        encoded = {"kind": kind or obj.get("kind"), "apiVersion": api_version or obj.get(
            "apiVersion")} if (kind or api_version) else {}
        # A copy: the handler goes on to fill in the very dict it decoded (uid, defaults...),
        # and the event must show the request as it came.
        body = orjson.loads(orjson.dumps(
            {**encoded, **{k: v for k, v in obj.items() if k not in encoded}}))
        self.request_object = _without_managed_fields(body) if \
            self.config.omit_managed_fields else body

    def log_request_patch(self, patch: Any) -> None:
        """``LogRequestPatch``: the patch as sent, at Request level and above."""
        if level_at_least(self.level, "Request") and self.resource_request:
            self.request_object = patch

    def log_response(self, code: int, obj: Any) -> None:
        """``LogResponseObject`` and the status code the response writer saw."""
        if isinstance(obj, dict) and obj.get("kind") == "Status":
            status: dict[str, Any] = {"metadata": {}}
            for key in ("status", "message", "reason", "details"):
                if obj.get(key) not in (None, ""):
                    status[key] = obj[key]
            status["code"] = obj.get("code") or code
            self.response_status = status
        if level_at_least(self.level, "RequestResponse") and self.resource_request \
                and obj is not None:
            self.response_object = _without_managed_fields(obj) if \
                self.config.omit_managed_fields else obj
        self.set_code(code)

    def set_code(self, code: int) -> None:
        if self.response_status is None:
            self.response_status = {"metadata": {}}
        self.response_status["code"] = code

    def render(self, stage: str, stage_time: float) -> dict[str, Any]:
        """The event at ``stage`` as ``audit.k8s.io/v1`` JSON (without kind/apiVersion)."""
        out: dict[str, Any] = {
            "level": self.level,
            "auditID": self.audit_id,
            "stage": stage,
            "requestURI": self.request_uri,
            "verb": self.verb,
            "user": user_info(self.user),
        }
        if self.impersonated_user is not None:
            out["impersonatedUser"] = user_info(self.impersonated_user)
        if self.source_ips:
            out["sourceIPs"] = list(self.source_ips)
        if self.user_agent:
            out["userAgent"] = self.user_agent
        if self.object_ref is not None:
            out["objectRef"] = {k: self.object_ref[k] for k in _OBJECT_REF_ORDER
                                if self.object_ref.get(k)}
        if self.response_status is not None:
            out["responseStatus"] = dict(self.response_status)
        if self.request_object is not None:
            out["requestObject"] = self.request_object
        if self.response_object is not None:
            out["responseObject"] = self.response_object
        out["requestReceivedTimestamp"] = micro_time(self.received)
        out["stageTimestamp"] = micro_time(stage_time)
        if self.annotations:
            out["annotations"] = {k: self.annotations[k] for k in sorted(self.annotations)}
        return out


_OBJECT_REF_ORDER = ("resource", "namespace", "name", "uid", "apiGroup", "apiVersion",
                     "resourceVersion", "subresource")


def new_event(config: RequestAuditConfig, info: RequestInfo, user: UserInfo | None, *,
              audit_id: str, request_uri: str, ips: list[str], user_agent: str,
              received: float) -> AuditEvent:
    """``NewEventFromRequest``."""
    if len(user_agent) > _MAX_USER_AGENT:
        user_agent = user_agent[:_MAX_USER_AGENT] + "...TRUNCATED"
    ref = None
    if info.resource_request:
        ref = {"resource": info.resource, "namespace": info.namespace, "name": info.name,
               "apiGroup": info.api_group, "apiVersion": info.api_version,
               "subresource": info.subresource}
    return AuditEvent(config, audit_id, request_uri, info.verb, user, ips, user_agent, ref,
                      received, info.resource_request)


def new_audit_id() -> str:
    return str(uuid.uuid4())


class Auditor:
    """The policy and the backends of one sandbox."""

    def __init__(self, config: AuditConfig) -> None:
        self.policy = config.load_policy()
        self.log = LogBackend(config.log_path) if config.log_path else None
        self.webhook = WebhookBackend(
            WebhookTarget.from_kubeconfig(config.webhook_config), mode=config.webhook_mode,
            max_size=config.webhook_batch_max_size,
            max_wait=config.webhook_batch_max_wait) if config.webhook_config else None

    def evaluate(self, info: RequestInfo, user: UserInfo | None) -> RequestAuditConfig:
        return self.policy.evaluate(info, user)

    def emit(self, event: AuditEvent, stage: str) -> None:
        """Send the event at ``stage`` to every backend, unless the policy omits the stage.
        RequestReceived is stamped with the time the request arrived, the others with now."""
        if event.level == "None" or stage in event.config.omit_stages:
            return
        stamp = event.received if stage == "RequestReceived" else time.time()
        rendered = event.render(stage, stamp)
        if self.log is not None:
            self.log.process(rendered)
        if self.webhook is not None:
            self.webhook.process(rendered)

    def flush(self) -> None:
        if self.webhook is not None:
            self.webhook.flush()

    def close(self) -> None:
        if self.webhook is not None:
            self.webhook.close()
        if self.log is not None:
            self.log.close()
