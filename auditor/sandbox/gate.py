"""The security filter chain of an authenticating sandbox, and its configuration.

kube-apiserver runs every request through the same chain (``DefaultBuildHandlerChain`` in
staging/src/k8s.io/apiserver/pkg/server/config.go), outermost first: request info →
authentication (a failure is answered 401 and audited by ``WithFailedAuthenticationAudit``
as one ``ResponseStarted`` event with an empty user) → audit (the policy is evaluated for
the authenticated user and ``RequestReceived`` is sent) → impersonation → authorization
(``authorization.k8s.io/decision`` and ``/reason`` annotations; a denial is 403) → the
handler; ``ResponseComplete`` is sent when the response is done (a watch first sends
``ResponseStarted``). Every response carries the ``Audit-Id`` header (``WithAuditInit``; a
client's own ``Audit-ID`` is kept).

:class:`AuthConfig` turns it on for a :class:`auditor.sandbox.Sandbox`; without it the sandbox
accepts anything as an administrator, as before. With it, the sandbox also knows a built-in
administrator (``kubernetes-admin`` in ``system:masters``, whose token the default kubeconfig
carries) and serves the TokenRequest and SelfSubjectReview APIs.
"""

from __future__ import annotations

import pathlib
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from auditor.sandbox.audit import (
    AuditConfig,
    AuditEvent,
    Auditor,
    Headers,
    new_audit_id,
    new_event,
    source_ips,
)
from auditor.sandbox.auditpolicy import level_at_least
from auditor.sandbox.authn import Authenticator, StaticToken, read_token_file
from auditor.sandbox.impersonation import impersonate
from auditor.sandbox.rbac import (
    SYSTEM_MASTERS,
    Attributes,
    Authorizer,
    Decision,
    Lookup,
    UserInfo,
    forbidden_error,
)
from auditor.sandbox.requestinfo import RequestInfo, request_info
from auditor.sandbox.serviceaccounts import DEFAULT_ISSUER, Getter, ServiceAccountTokens
from auditor.sandbox.status import ApiError
from auditor.sandbox.tls import ServingCerts, make_serving_certs

# kubeadm's administrator; system:masters is allowed everything ahead of RBAC.
ADMIN_USER = "kubernetes-admin"
DECISION_KEY = "authorization.k8s.io/decision"
REASON_KEY = "authorization.k8s.io/reason"


@dataclass(frozen=True)
class AuthConfig:
    """How an authenticating sandbox authenticates, authorizes and audits.

    ``tls``: serve HTTPS with a CA of its own (``Sandbox.url`` becomes ``https://``). On by
    default: kubectl (client-go's clientcmd) sends a kubeconfig's credentials only over TLS,
    so over plain HTTP every kubectl request would be anonymous.
    ``users``: user name → groups; each gets a random static token (``token_for(name)``).
    ``token_file``: a ``--token-auth-file`` (CSV ``token,user,uid,"group1,group2"``).
    ``anonymous``: ``--anonymous-auth`` (kube-apiserver's default is true): requests without a
    token are ``system:anonymous``; off, they are 401. ``rbac``: ``--authorization-mode=RBAC``
    with the bootstrap roles (off: AlwaysAllow). ``audit``: the audit policy and backends.
    ``service_account_issuer`` / ``api_audiences``: ``--service-account-issuer`` and
    ``--api-audiences`` (defaulting to the issuer).
    """

    tls: bool = True
    users: Mapping[str, Sequence[str]] = field(default_factory=dict)
    token_file: str | pathlib.Path | None = None
    anonymous: bool = True
    rbac: bool = False
    audit: AuditConfig | None = None
    service_account_issuer: str = DEFAULT_ISSUER
    api_audiences: tuple[str, ...] = ()


@dataclass
class Exchange:
    """One request's way through the chain: who it acts as, its audit event, and the error
    it was refused with (then the handler does not run)."""

    gate: Gate
    audit_id: str
    info: RequestInfo
    user: UserInfo | None
    event: AuditEvent | None = None
    refusal: ApiError | None = None
    unauthenticated: bool = False
    completed: bool = False

    def log_request_object(self, obj: Mapping[str, Any], api_version: str = "",
                           kind: str = "") -> None:
        if self.event is not None:
            self.event.log_request_object(obj, api_version, kind)

    def log_request_patch(self, patch: Any) -> None:
        if self.event is not None:
            self.event.log_request_patch(patch)

    def annotate(self, key: str, value: str) -> None:
        if self.event is not None:
            self.event.annotate(key, value)

    def wants_response_object(self) -> bool:
        return self.event is not None and level_at_least(self.event.level, "RequestResponse")


class Gate:
    """Authentication, impersonation, authorization and audit for one sandbox."""

    def __init__(self, config: AuthConfig, *, host: str, get: Getter,
                 rbac_objects: Lookup) -> None:
        self.config = config
        self.certs: ServingCerts | None = make_serving_certs(host) if config.tls else None
        self.service_accounts = ServiceAccountTokens(
            get, config.service_account_issuer, tuple(config.api_audiences))
        self.admin_token = secrets.token_urlsafe(32)
        static = [StaticToken(self.admin_token, UserInfo(ADMIN_USER, "", (SYSTEM_MASTERS,)))]
        static += [StaticToken(secrets.token_urlsafe(24), UserInfo(name, "", tuple(groups)))
                   for name, groups in config.users.items()]
        if config.token_file is not None:
            static += read_token_file(config.token_file)
        self.static_tokens: tuple[StaticToken, ...] = tuple(static)
        self.authenticator = Authenticator(static, self.service_accounts,
                                           anonymous=config.anonymous)
        self.authorizer = Authorizer(rbac_objects) if config.rbac else None
        self.auditor: Auditor | None = None

    # -- lifecycle (backends hold files and a sender thread) ------------------------------

    def start(self) -> None:
        if self.config.audit is not None and self.auditor is None:
            self.auditor = Auditor(self.config.audit)

    def stop(self) -> None:
        auditor, self.auditor = self.auditor, None
        if auditor is not None:
            auditor.close()

    def flush_audit(self) -> None:
        if self.auditor is not None:
            self.auditor.flush()

    # -- identities ------------------------------------------------------------------------

    def token_for(self, user: str) -> str:
        """The static token of ``user`` (the first one, if the token file lists several)."""
        for entry in self.static_tokens:
            if entry.user.name == user:
                return entry.token
        raise KeyError(f"no static token for user {user!r}")

    def authorize(self, attrs: Attributes) -> Decision:
        """The authorizer chain: RBAC (which allows ``system:masters`` first), or AlwaysAllow."""
        if self.authorizer is None:
            return Decision(True, "")
        return self.authorizer.authorize(attrs)

    # -- the chain -------------------------------------------------------------------------

    def admit(self, method: str, request_uri: str, path: str,
              query: Mapping[str, Sequence[str]], headers: Headers,
              header_items: Iterable[tuple[str, str]], remote: str) -> Exchange:
        """Run a request through authentication, audit, impersonation and authorization."""
        received = time.time()
        audit_id = headers.get("Audit-ID") or new_audit_id()
        info = request_info(method, path, query)
        auditor = self.auditor

        def event_for(user: UserInfo | None) -> AuditEvent | None:
            if auditor is None:
                return None
            decided = auditor.evaluate(info, user)
            if decided.level == "None":
                return None
            return new_event(decided, info, user, audit_id=audit_id, request_uri=request_uri,
                             ips=source_ips(headers, remote),
                             user_agent=headers.get("User-Agent") or "", received=received)

        try:
            user = self.authenticator.authenticate(headers.get("Authorization"))
        except ApiError as err:
            return Exchange(self, audit_id, info, None, event_for(None), refusal=err,
                            unauthenticated=True)
        exchange = Exchange(self, audit_id, info, user, event_for(user))
        if exchange.event is not None and auditor is not None:
            auditor.emit(exchange.event, "RequestReceived")
        try:
            acting = impersonate(user, header_items, self.authorize)
        except ApiError as err:
            exchange.refusal = err
            return exchange
        if acting is not None:
            exchange.user = acting
            if exchange.event is not None:
                exchange.event.impersonated_user = acting
        attrs = info.attributes(acting or user)
        decision = self.authorize(attrs)
        exchange.annotate(DECISION_KEY, "allow" if decision.allowed else "forbid")
        exchange.annotate(REASON_KEY, decision.reason)
        if not decision.allowed:
            exchange.refusal = forbidden_error(attrs, decision.reason)
        return exchange

    def responded(self, exchange: Exchange, code: int, body: bytes | None) -> None:
        """The handler (or the refusal) answers ``code`` with ``body``, about to be written.

        The last stage is sent now, before the bytes: kube-apiserver's response reaches the
        client once the handler (and the deferred audit) returned, so a client that has its
        answer finds the event in the log, and a blocking webhook has had it."""
        event = exchange.event
        if event is None:
            return
        obj = None
        if body and (body.startswith(b'{"kind":"Status"') or (
                exchange.wants_response_object() and body[:1] == b"{")):
            try:
                obj = orjson.loads(body)
            except orjson.JSONDecodeError:
                obj = None
        event.log_response(code, obj)
        self.complete(exchange)

    def response_started(self, exchange: Exchange, code: int) -> None:
        """A long-running response (a watch) sent its headers: the ResponseStarted stage."""
        event, auditor = exchange.event, self.auditor
        if event is None or auditor is None:
            return
        event.set_code(code)
        auditor.emit(event, "ResponseStarted")

    def complete(self, exchange: Exchange) -> None:
        """The response is done: ResponseComplete (a failed authentication's only event is
        ResponseStarted, sent when its 401 is written)."""
        event, auditor = exchange.event, self.auditor
        if event is None or auditor is None or exchange.completed:
            return
        exchange.completed = True
        if event.response_status is None:
            # WithAudit's fakedSuccessStatus for a response that never wrote a status code.
            event.response_status = {"metadata": {}, "status": "Success",
                                     "message": "Connection closed early", "code": 200}
        auditor.emit(event, "ResponseStarted" if exchange.unauthenticated else "ResponseComplete")
