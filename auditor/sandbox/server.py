"""HTTP front of the sandbox: routing, content negotiation, discovery and streaming.

Speaks HTTP/1.1 keep-alive with exact Content-Length (watches use chunked encoding), JSON
only: protobuf request bodies get 415 and an Accept listing protobuf *and* JSON gets JSON,
as a real server answering a client that prefers protobuf would.

kubectl 1.35 asks ``/api`` and ``/apis`` for aggregated discovery with
``Accept: application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,
application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json``;
the sandbox answers with the aggregated ``APIGroupDiscoveryList`` (two requests instead of
one per group version); clients that do not ask get legacy discovery.

With an :class:`auditor.sandbox.gate.Gate` (a sandbox started with ``AuthConfig``) every
request first goes through it (authentication, audit, impersonation, authorization), the
server speaks TLS when the gate holds certificates, and it serves the two authentication
APIs kubectl needs: ``serviceaccounts/token`` (``kubectl create token``) and
``selfsubjectreviews`` (``kubectl auth whoami``). Without a gate none of this runs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import socket
import ssl
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qs, urlsplit

import orjson
import yaml

from auditor.sandbox import openapi, tables
from auditor.sandbox.audit import user_info
from auditor.sandbox.catalog import Catalog, Resource, api_resource
from auditor.sandbox.rbac import forbidden_error
from auditor.sandbox.serviceaccounts import ISSUED_CREDENTIAL_ID, decode_token_request
from auditor.sandbox.status import ApiError
from auditor.sandbox.store import convert_in, convert_out, scale_of

if TYPE_CHECKING:
    from auditor.sandbox.faults import Faults
    from auditor.sandbox.gate import Exchange, Gate
    from auditor.sandbox.store import Store


class Host(Protocol):
    """What the HTTP server needs of the sandbox that runs it (:class:`auditor.sandbox.Sandbox`)."""

    store: Store
    catalog: Catalog
    faults: Faults
    gate: Gate | None
    host: str
    port: int

    @property
    def url(self) -> str: ...

VERSION_INFO = {
    "major": "1",
    "minor": "35",
    "emulationMajor": "1",
    "emulationMinor": "35",
    "minCompatibilityMajor": "1",
    "minCompatibilityMinor": "34",
    "gitVersion": "v1.35.0",
    "gitCommit": "66452049f3d692768c39c797b21b793dce80314e",
    "gitTreeState": "clean",
    "buildDate": "2025-12-17T12:41:00Z",
    "goVersion": "go1.25.5",
    "compiler": "gc",
    "platform": "linux/amd64",
}
_PATCH_TYPES = ("application/json-patch+json", "application/merge-patch+json",
                "application/strategic-merge-patch+json", "application/apply-patch+yaml")


class SandboxHTTPServer(ThreadingHTTPServer):
    """A threading server that knows its sandbox and does not wait for handler threads."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], sandbox: Host,
                 tls: ssl.SSLContext | None = None) -> None:
        self.sandbox = sandbox
        self.tls = tls
        self.stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = super().get_request()
        if self.tls is not None:
            # The handshake runs in the connection's own thread (Handler.setup), so a slow or
            # failing client does not hold up accepting others.
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        with self._connections_lock:
            self._connections.add(sock)
        return sock, addr

    def handle_error(self, request: Any, client_address: Any) -> None:
        if self.tls is not None and isinstance(sys.exc_info()[1], OSError):
            return  # a client that refused our certificate, or spoke plain HTTP
        super().handle_error(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def drop_connections(self) -> None:
        """Cut open keep-alive connections, so a stopped sandbox is really unreachable."""
        with self._connections_lock:
            connections = list(self._connections)
        for sock in connections:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class Handler(BaseHTTPRequestHandler):
    """One connection; requests on it are served one after the other (keep-alive)."""

    protocol_version = "HTTP/1.1"
    # Without this every small response waits for the peer's delayed ACK (~40 ms).
    disable_nagle_algorithm = True
    server: SandboxHTTPServer
    # The request's way through the gate, when the sandbox has one.
    _exchange: Exchange | None = None

    def setup(self) -> None:
        if isinstance(self.request, ssl.SSLSocket):
            self.request.do_handshake()
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    # -- plumbing --------------------------------------------------------------------------

    def _send(self, code: int, body: bytes, content_type: str = "application/json",
              headers: dict[str, str] | None = None) -> None:
        exchange = self._exchange
        if exchange is not None:
            exchange.gate.responded(exchange, code, body if "json" in content_type else None)
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache, private")
        if exchange is not None:
            self.send_header("Audit-Id", exchange.audit_id)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _drop(self) -> None:
        """Promise a body, send half of it, and cut the connection (an injected fault)."""
        body = b'{"kind":"List","apiVersion":"v1","metadata":{},"items":[' + b" " * 200
        if self._exchange is not None:
            self._exchange.gate.responded(self._exchange, 200, None)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(2 * len(body)))
        self.end_headers()
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.wfile.write(body)
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)

    def _send_json(self, code: int, obj: Any) -> None:
        self._send(code, orjson.dumps(obj))

    def _send_error(self, err: ApiError) -> None:
        self._send(err.code, orjson.dumps(err.status()), headers=err.headers)

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _dispatch(self) -> None:
        body = self._body()
        split = urlsplit(self.path)
        path = split.path
        query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        gate = self.server.sandbox.gate
        if gate is None:
            self._serve(path, query, body)
            return
        # Through the gate: a refused request gets its error, the others are served as the
        # user they act as; the audit event completes either way.
        exchange = gate.admit(self.command, self.path, path,
                              parse_qs(split.query, keep_blank_values=True), self.headers,
                              self.headers.items(), self.client_address[0])
        self._exchange = exchange
        try:
            if exchange.refusal is not None:
                self._send_error(exchange.refusal)
            else:
                self._serve(path, query, body)
        finally:
            self._exchange = None
            gate.complete(exchange)

    def _serve(self, path: str, query: dict[str, str], body: bytes) -> None:
        sb = self.server.sandbox
        try:
            outcome = sb.faults.match(self.command, path, continued=bool(query.get("continue")),
                                      watch=_is_watch(path, query))
            if outcome.delay:
                time.sleep(outcome.delay)
            if outcome.drop:
                self._drop()
                return
            if outcome.error is not None:
                raise outcome.error
            accept = self.headers.get("Accept", "")
            if accept and "json" not in accept and "*/*" not in accept and \
                    "yaml" not in accept and not path.startswith("/openapi"):
                raise ApiError("NotAcceptable", "only the following media types are accepted: "
                               "application/json, application/yaml", code=406)
            self._handle(path, query, body)
        except ApiError as err:
            self._send_error(err)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:  # a bug in the sandbox should look like a 500, not a hang
            self._send_error(ApiError("InternalError",
                                      f"sandbox error: {type(exc).__name__}: {exc}"))

    do_GET = _dispatch
    do_POST = _dispatch
    do_PUT = _dispatch
    do_PATCH = _dispatch
    do_DELETE = _dispatch
    do_HEAD = _dispatch

    # -- routing ---------------------------------------------------------------------------

    def _handle(self, path: str, query: dict[str, str], body: bytes) -> None:
        sb = self.server.sandbox
        parts = [p for p in path.split("/") if p]
        if self.command == "GET" and self._discovery(path, parts):
            return
        if self._exchange is not None and self.command == "POST" and \
                self._authentication_api(self._exchange, parts, body):
            return
        if parts[:2] == ["api", "v1"]:
            group, version, rest = "", "v1", parts[2:]
        elif len(parts) >= 3 and parts[0] == "apis":
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise ApiError("NotFound", "the server could not find the requested resource",
                           details={})
        watch_path = bool(rest) and rest[0] == "watch"
        if watch_path:
            rest = rest[1:]
        ns: str | None = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            candidate = sb.catalog.find(group, version, rest[2])
            if candidate is not None and candidate.namespaced:
                ns, rest = rest[1], rest[2:]
        if not rest:
            raise ApiError("NotFound", "the server could not find the requested resource")
        res = sb.catalog.find(group, version, rest[0])
        if res is None:
            raise ApiError("NotFound", "the server could not find the requested resource",
                           details={})
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else ""
        if len(rest) > 3 or (sub and sub not in res.subresources):
            raise ApiError("NotFound", "the server could not find the requested resource")
        if res.namespaced and name is not None and ns is None:
            raise ApiError("NotFound", "the server could not find the requested resource")
        if watch_path or (name is None and query.get("watch") in ("true", "1")):
            if self.command != "GET":
                raise ApiError("MethodNotAllowed", "watch requires GET", code=405)
            self._watch(res, ns, query)
            return
        if name is None:
            self._collection(res, ns, query, body)
        else:
            self._object(res, ns or "", name, sub, query, body)

    def _discovery(self, path: str, parts: list[str]) -> bool:
        sb = self.server.sandbox
        if path in ("/healthz", "/livez", "/readyz"):
            self._send(200, b"ok", "text/plain; charset=utf-8")
            return True
        if path in ("/version", "/version/"):
            self._send_json(200, VERSION_INFO)
            return True
        if path.startswith("/openapi/"):
            found = openapi.serve(sb.catalog, path, sb.url)
            if found is None:
                raise ApiError("NotFound", "the server could not find the requested resource")
            self._send(200, found)
            return True
        if parts in (["api"], ["apis"]) and _AGGREGATED in self.headers.get("Accept", ""):
            body = _aggregated(sb.catalog, core=parts == ["api"])
            self._send(200, orjson.dumps(body), "application/json;g=apidiscovery.k8s.io;v=v2;"
                       "as=APIGroupDiscoveryList")
            return True
        if parts == ["api"]:
            host = f"{sb.host}:{sb.port}"
            self._send_json(200, {"kind": "APIVersions", "versions": ["v1"],
                                  "serverAddressByClientCIDRs": [
                                      {"clientCIDR": "0.0.0.0/0", "serverAddress": host}]})
            return True
        if parts == ["api", "v1"]:
            self._send_json(200, _resource_list("v1", sb.catalog.in_group_version("", "v1")))
            return True
        if parts == ["apis"]:
            groups = [_group(g, vs) for g, vs in sb.catalog.groups().items() if g]
            self._send_json(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
            return True
        if len(parts) == 2 and parts[0] == "apis":
            versions = sb.catalog.groups().get(parts[1])
            if not versions:
                raise ApiError("NotFound", "the server could not find the requested resource")
            self._send_json(200, {"apiVersion": "v1", **_group(parts[1], versions)})
            return True
        if len(parts) == 3 and parts[0] == "apis":
            resources = sb.catalog.in_group_version(parts[1], parts[2])
            if not resources:
                raise ApiError("NotFound", "the server could not find the requested resource")
            self._send_json(200, _resource_list(f"{parts[1]}/{parts[2]}", resources))
            return True
        return False

    # -- authentication APIs (authenticating sandboxes only) -------------------------------

    def _authentication_api(self, exchange: Exchange, parts: list[str], body: bytes) -> bool:
        """``serviceaccounts/NAME/token`` (TokenRequest) and ``selfsubjectreviews``; False
        for any other path."""
        ctype = (self.headers.get("Content-Type") or "application/json").split(";")[0].strip()
        if len(parts) == 7 and parts[:3] == ["api", "v1", "namespaces"] and \
                parts[4] == "serviceaccounts" and parts[6] == "token":
            request = decode_token_request(body, ctype)
            exchange.log_request_object(request, "authentication.k8s.io/v1", "TokenRequest")
            out, jti = exchange.gate.service_accounts.token_request(request, parts[3], parts[5])
            exchange.annotate(ISSUED_CREDENTIAL_ID, f"JTI={jti}")
            self._send(201, orjson.dumps(out))
            return True
        if parts == ["apis", "authentication.k8s.io", "v1", "selfsubjectreviews"]:
            # pkg/registry/authentication/selfsubjectreview: the requester, as authenticated
            # (after impersonation); the body carries nothing.
            exchange.log_request_object({"metadata": {}}, "authentication.k8s.io/v1",
                                        "SelfSubjectReview")
            self._send(201, orjson.dumps({
                "kind": "SelfSubjectReview", "apiVersion": "authentication.k8s.io/v1",
                "metadata": {"creationTimestamp": _now()},
                "status": {"userInfo": user_info(exchange.user)}}))
            return True
        return False

    def _log_request(self, obj: dict[str, Any], res: Resource, api_version: str = "",
                     kind: str = "") -> None:
        """The decoded body, for the audit event (kube's handlers call LogRequestObject)."""
        if self._exchange is not None:
            self._exchange.log_request_object(obj, api_version or res.group_version,
                                              kind or res.kind)

    # -- handlers --------------------------------------------------------------------------

    def _wants_table(self) -> bool:
        # kubectl get asks for "application/json;as=Table;v=v1;g=meta.k8s.io,...,application/json"
        accept = self.headers.get("Accept", "")
        return "as=Table" in accept and "g=meta.k8s.io" in accept

    def _authorize_create(self) -> None:
        """A server-side apply that creates the object needs ``create`` as well as ``patch``
        (staging/src/k8s.io/apiserver/pkg/endpoints/handlers/patch.go: the apply path's
        createAuthorizerAttributes, checked when the object does not exist yet)."""
        exchange = self._exchange
        if exchange is None or exchange.user is None:
            return
        attrs = dataclasses.replace(exchange.info.attributes(exchange.user), verb="create")
        decision = exchange.gate.authorize(attrs)
        if not decision.allowed:
            raise forbidden_error(attrs, decision.reason)

    def _manager(self, query: dict[str, str]) -> str:
        manager = query.get("fieldManager", "")
        if len(manager) > 128:
            raise ApiError("BadRequest", "fieldManager: Too long: may not be longer than 128")
        return manager

    def _ua_manager(self) -> str:
        # kube-apiserver's prefixFromUserAgent: everything before the first "/".
        return (self.headers.get("User-Agent") or "").split("/")[0]

    def _dry_run(self, query: dict[str, str]) -> bool:
        value = query.get("dryRun")
        if value in (None, ""):
            return False
        if value != "All":
            raise ApiError("BadRequest", f'Invalid value: "{value}": supported values: "All"')
        return True

    def _decode(self, body: bytes) -> dict[str, Any]:
        ctype = (self.headers.get("Content-Type") or "application/json").split(";")[0].strip()
        if ctype == "application/vnd.kubernetes.protobuf":
            raise ApiError("UnsupportedMediaType", "the body of the request was in an unknown "
                           "format - accepted media types include: application/json, "
                           "application/yaml")
        try:
            obj = yaml.safe_load(body) if ctype == "application/yaml" else orjson.loads(body)
        except (orjson.JSONDecodeError, yaml.YAMLError) as exc:
            raise ApiError("BadRequest", f"error decoding request body: {exc}") from exc
        if not isinstance(obj, dict):
            raise ApiError("BadRequest", "the request body must be an object")
        return obj

    def _check_type(self, res: Resource, obj: dict[str, Any]) -> None:
        if obj.get("kind") not in (None, res.kind) or \
                obj.get("apiVersion") not in (None, res.group_version):
            raise ApiError("BadRequest", f"the API version in the data ({obj.get('apiVersion')}) "
                           f"does not match the expected API version ({res.group_version})")

    def _collection(self, res: Resource, ns: str | None, query: dict[str, str],
                    body: bytes) -> None:
        store = self.server.sandbox.store
        sb = self.server.sandbox
        if self.command in ("GET", "HEAD"):
            cont = query.get("continue") or None
            expired = bool(cont) and sb.faults.take_expired_continue(urlsplit(self.path).path)
            limit = int(query.get("limit") or 0)
            data = store.list_bytes(res, ns, label_selector=query.get("labelSelector"),
                                    field_selector=query.get("fieldSelector"), limit=limit,
                                    continue_token=cont, expired=expired)
            if self._wants_table():
                listing = orjson.loads(data)
                meta = listing["metadata"]
                self._send_json(200, tables.table(
                    res.kind, listing["items"], meta["resourceVersion"],
                    query.get("includeObject", "PartialObjectMetadata"),
                    meta.get("continue", ""), json.loads(res.printer_columns or "[]")))
                return
            self._send(200, data)
        elif self.command == "POST":
            if res.namespaced and ns is None:
                raise ApiError("MethodNotAllowed", "the server does not allow this method on "
                               "the requested resource", code=405)
            obj = self._decode(body)
            self._log_request(obj, res)
            self._check_type(res, obj)
            meta = obj.get("metadata") or {}
            if res.namespaced and meta.get("namespace") not in (None, "", ns):
                raise ApiError("BadRequest", "the namespace of the provided object does not "
                               "match the namespace sent on the request")
            manager = self._manager(query) or self._ua_manager()
            created = store.create(res, ns or "", convert_in(obj, res), manager=manager,
                                   dry_run=self._dry_run(query),
                                   field_validation=query.get("fieldValidation"))
            self._send(201, orjson.dumps(convert_out(created, res)))
        elif self.command == "DELETE":
            if res.namespaced and ns is None:
                raise ApiError("MethodNotAllowed", "the server does not allow this method on "
                               "the requested resource", code=405)
            dry_run = self._dry_run(query)
            raw = store.list_bytes(res, ns, label_selector=query.get("labelSelector"),
                                   field_selector=query.get("fieldSelector"))
            items = orjson.loads(raw)["items"]
            for item in items:
                store.delete(res, item["metadata"].get("namespace", ""),
                             item["metadata"]["name"], dry_run=dry_run)
            out = orjson.loads(raw)
            out["kind"] = f"{res.kind}List"
            self._send(200, orjson.dumps(out))
        else:
            raise ApiError("MethodNotAllowed", "the server does not allow this method on the "
                           "requested resource", code=405)

    def _object(self, res: Resource, ns: str, name: str, sub: str, query: dict[str, str],
                body: bytes) -> None:
        store = self.server.sandbox.store
        dry_run = self._dry_run(query)
        if self.command in ("GET", "HEAD"):
            rec = store.require(res, ns, name)
            if sub == "" and self._wants_table():
                obj = convert_out(rec.obj, res)
                self._send_json(200, tables.table(
                    res.kind, [obj], obj["metadata"].get("resourceVersion", ""),
                    query.get("includeObject", "PartialObjectMetadata"), "",
                    json.loads(res.printer_columns or "[]")))
            elif sub == "scale":
                self._send_json(200, scale_of(res, rec.obj))
            elif res.version == res.storage_version:
                self._send(200, rec.full)
            else:
                self._send_json(200, convert_out(rec.obj, res))
        elif self.command == "PUT":
            obj = self._decode(body)
            if sub == "scale":
                self._log_request(obj, res, "autoscaling/v1", "Scale")
            else:
                self._log_request(obj, res)
            manager = self._manager(query) or self._ua_manager()
            if sub == "scale":
                out = store.update_scale(res, ns, name, obj, manager=manager, dry_run=dry_run)
                self._send_json(200, out)
                return
            self._check_type(res, obj)
            updated = store.update(res, ns, name, convert_in(obj, res), manager=manager,
                                   dry_run=dry_run, subresource=sub,
                                   field_validation=query.get("fieldValidation"))
            self._send_json(200, convert_out(updated, res))
        elif self.command == "PATCH":
            ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
            if ctype not in _PATCH_TYPES:
                raise ApiError("UnsupportedMediaType", "the body of the request was in an "
                               "unknown format - accepted media types include: "
                               + ", ".join(_PATCH_TYPES))
            if self._exchange is not None:
                self._exchange.log_request_patch(_patch_for_audit(body))
            force = query.get("force") in ("true", "1")
            if force and ctype != "application/apply-patch+yaml":
                raise ApiError("BadRequest", "force: Forbidden: may not be specified for "
                               "non-apply patch")
            if ctype == "application/apply-patch+yaml" and not sub and \
                    store.get(res, ns, name) is None:
                self._authorize_create()
            result, created = store.patch(res, ns, name, ctype, body,
                                          manager=self._manager(query) or None, dry_run=dry_run,
                                          force=force, subresource=sub,
                                          user_agent_manager=self._ua_manager(),
                                          field_validation=query.get("fieldValidation"))
            if sub != "scale":
                result = convert_out(result, res)
            self._send_json(201 if created else 200, result)
        elif self.command == "DELETE":
            opts: dict[str, Any] = {}
            if body.strip():
                with contextlib.suppress(orjson.JSONDecodeError):
                    opts = orjson.loads(body) or {}
                if self._exchange is not None and isinstance(opts, dict):
                    # The delete handler decodes the body as DeleteOptions, meta.k8s.io/v1
                    # unless the body names another version, and logs it at that version.
                    self._exchange.log_request_object(
                        opts, str(opts.get("apiVersion") or "meta.k8s.io/v1"), "DeleteOptions")
            if "All" in (opts.get("dryRun") or []):
                dry_run = True
            pre = opts.get("preconditions") or {}
            out, gone = store.delete(res, ns, name, dry_run=dry_run,
                                     precondition_rv=pre.get("resourceVersion"),
                                     precondition_uid=pre.get("uid"))
            # 202: accepted, the object waits for its finalizers
            self._send_json(200 if gone else 202,
                            convert_out(out, res) if out.get("kind") != "Status" else out)
        else:
            raise ApiError("MethodNotAllowed", "the server does not allow this method on the "
                           "requested resource", code=405)

    def _watch(self, res: Resource, ns: str | None, query: dict[str, str]) -> None:
        store = self.server.sandbox.store
        timeout = float(query.get("timeoutSeconds") or 1800)
        try:
            events: Iterator[bytes] = store.watch(
                res, ns, query.get("resourceVersion"),
                label_selector=query.get("labelSelector"),
                field_selector=query.get("fieldSelector"), timeout=timeout,
                stop=self.server.stopping,
                send_initial_events=query.get("sendInitialEvents") == "true",
                bookmarks=query.get("allowWatchBookmarks") == "true")
        except ApiError as err:
            if err.code != 410:
                raise
            # A real server accepts the watch, then reports the expiry as an ERROR event.
            events = iter([orjson.dumps({"type": "ERROR", "object": err.status()}) + b"\n"])
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        exchange = self._exchange
        if exchange is not None:
            self.send_header("Audit-Id", exchange.audit_id)
            exchange.gate.response_started(exchange, 200)
        self.end_headers()
        faults = self.server.sandbox.faults
        path = urlsplit(self.path).path
        sent = 0
        try:
            for line in events:
                if not line:
                    continue  # the store's sign of life while no event is due
                if faults.watch_cut(path, sent):
                    self._cut(line)
                    return
                self._chunk(line)
                sent += 1
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _cut(self, line: bytes) -> None:
        """Send half of ``line`` as a chunk promising all of it, then cut the connection."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.wfile.write(f"{len(line):x}\r\n".encode() + line[:len(line) // 2])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


def _is_watch(path: str, query: dict[str, str]) -> bool:
    """Whether a request is a watch, as :meth:`Handler._handle` routes it."""
    parts = [p for p in path.split("/") if p]
    rest = parts[2:] if parts[:1] == ["api"] else parts[3:]
    return rest[:1] == ["watch"] or query.get("watch") in ("true", "1")


def _patch_for_audit(body: bytes) -> Any:
    """A patch body as the audit event holds it: the JSON as sent (kubectl sends JSON, even
    for apply patches); a YAML apply patch is decoded so the event stays JSON."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    try:
        return yaml.safe_load(body)
    except yaml.YAMLError:
        return body.decode("utf-8", "replace")


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _resource_list(group_version: str, resources: list[Resource]) -> dict[str, Any]:
    out: list[dict[str, Any]] = []
    for r in resources:
        out.extend(api_resource(r))
    body: dict[str, Any] = {"kind": "APIResourceList", "groupVersion": group_version,
                            "resources": out}
    if "/" in group_version:
        body["apiVersion"] = "v1"
    return body


def _group(name: str, versions: list[str]) -> dict[str, Any]:
    vs = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"kind": "APIGroup", "name": name, "versions": vs, "preferredVersion": vs[0]}


_AGGREGATED = "g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"


def _aggregated(catalog: Catalog, *, core: bool) -> dict[str, Any]:
    """``apidiscovery.k8s.io/v2`` APIGroupDiscoveryList: /api (core) or /apis (groups)."""
    items = []
    for group, versions in catalog.groups().items():
        if (group == "") != core:
            continue
        version_items = []
        for version in versions:
            resources = []
            for r in catalog.in_group_version(group, version):
                entry: dict[str, Any] = {
                    "resource": r.plural,
                    "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
                    "scope": "Namespaced" if r.namespaced else "Cluster",
                    "singularResource": r.singular,
                    "verbs": list(r.verbs),
                }
                if r.short_names:
                    entry["shortNames"] = list(r.short_names)
                if r.categories:
                    entry["categories"] = list(r.categories)
                subs = []
                if "status" in r.subresources:
                    subs.append({"subresource": "status", "responseKind": entry["responseKind"],
                                 "verbs": ["get", "patch", "update"]})
                if "scale" in r.subresources:
                    subs.append({"subresource": "scale", "responseKind": {
                        "group": "autoscaling", "version": "v1", "kind": "Scale"},
                        "verbs": ["get", "patch", "update"]})
                if subs:
                    entry["subresources"] = subs
                resources.append(entry)
            version_items.append({"version": version, "resources": resources,
                                  "freshness": "Current"})
        items.append({"metadata": {"name": group, "creationTimestamp": None},
                      "versions": version_items})
    return {"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2",
            "metadata": {}, "items": items}
