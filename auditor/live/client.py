"""Live cluster access: the only module that imports the ``kubernetes`` client.

It builds an API client from a kubeconfig or the in-cluster service account, discovers the
API resources (preferred version per group), and lists every in-scope kind page by page
(``limit``/``continue``) as raw JSON bytes decoded with orjson — never through the generated
model classes, which cost ~20x more to build.

Faults are handled per kind so one bad kind never sinks a run: a 403 skips the kind and says
so ("not audited: no permission to list secrets cluster-wide", with the missing RBAC verb
and resource and the API server's own message); a 410 Gone on an expired continue token
restarts that kind's list, handing on only the objects the interrupted list had not already
handed on; 429 honours ``Retry-After``; 5xx, timeouts and dropped connections retry with
exponential backoff up to a bound, and a kind that keeps failing is skipped. Failing to
reach the API at all (discovery, or every request while a list fails) raises
:class:`ClusterUnreachableError`; a kubeconfig that cannot be read raises
:class:`ConfigError`, one line naming the file.

Watches (:meth:`Cluster.open_watch`) are single long requests read line by line as the
server sends them, on a connection pool of their own so that one open watch per kind never
starves the lists; what a watch means (resuming, relisting) is :mod:`auditor.live.watch`'s.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from queue import Empty, Queue
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import orjson
import urllib3

# The client itself (~0.3 s to import) is imported where a Cluster is made and used, so a
# `diff --live FILE` that never talks to a cluster never loads it.
if TYPE_CHECKING:
    from kubernetes import client as k8s_client
    from kubernetes.client import rest as k8s_rest

from auditor.config import ClusterConfig, ScopeConfig
from auditor.engine.records import Problem
from auditor.engine.scope import namespace_in_scope, namespaces_to_list
from auditor.errors import ClusterError, ClusterUnreachableError, ConfigError, ForbiddenError
from auditor.live.records import APIResource, ListStats, Page, in_scope
from auditor.support import yamlsafe

__all__ = ["APIResource", "Cluster", "ListStats", "Page", "in_scope", "iter_live"]

log = logging.getLogger(__name__)

USER_AGENT = "drift-auditor/0.1"
# Connections the watch pool keeps for reuse: one per open watch, up to this many kinds.
WATCH_POOL_SIZE = 256


class _NoAnswer(ClusterUnreachableError):
    """A request that got no complete response: refused, timed out, or cut off midway.

    Whether that means the cluster is unreachable depends on what was asked: discovery
    failing this way is fatal, one kind's list failing this way is that kind's problem when
    the server still answers other requests (:meth:`Cluster.list_pages`).
    """

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class _HTTPStatusError(Exception):
    def __init__(self, status: int, body: bytes, retry_after: float | None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.retry_after = retry_after

    def message(self) -> str:
        try:
            return str(orjson.loads(self.body).get("message") or "")
        except (orjson.JSONDecodeError, AttributeError):
            return self.body[:200].decode("utf-8", "replace")


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


class APIStatusError(ClusterError):
    """An error the API server answered (a watch's, as an HTTP status or an ``ERROR`` event):
    ``status`` the HTTP code, ``reason`` the Status reason (``Expired``, ``Forbidden``,
    ``TooManyRequests`` ...), ``retry_after`` the seconds ``Retry-After`` asked for."""

    def __init__(self, status: int, reason: str, api_message: str,
                 retry_after: float | None = None) -> None:
        super().__init__(f"HTTP {status}{f' {reason}' if reason else ''}: {api_message}")
        self.status = status
        self.reason = reason
        self.api_message = api_message
        self.retry_after = retry_after

    @classmethod
    def of_status(cls, doc: Mapping[str, Any], status: int = 0,
                  retry_after: float | None = None) -> APIStatusError:
        """From a ``Status`` object (an ``ERROR`` event's, or an error response's body, whose
        HTTP ``status`` then wins over the body's ``code``)."""
        details = doc.get("details") or {}
        if retry_after is None and isinstance(details, Mapping):
            retry_after = _retry_after(str(details.get("retryAfterSeconds") or ""))
        return cls(int(status or doc.get("code") or 500), str(doc.get("reason") or ""),
                   _one_line(str(doc.get("message") or "")), retry_after)


class WatchStream:
    """One open watch response, read line by line (one JSON event a line) as it arrives.

    :meth:`abort` may be called from another thread: it shuts the socket, so that a read
    blocked on a quiet watch returns at once.
    """

    def __init__(self, response: urllib3.BaseHTTPResponse, server: str, path: str) -> None:
        self._response = response
        self._server = server
        self._path = path
        self._ended = False

    def lines(self) -> Iterator[bytes]:
        """Each complete line. Ends when the server ends the response (its ``timeoutSeconds``
        passed); raises :class:`ClusterUnreachableError` when the connection broke, timed
        out or was aborted, a partial last line being dropped."""
        pending: list[bytes] = []
        try:
            for chunk in self._response.stream(64 * 1024, decode_content=True):
                start = 0
                while (end := chunk.find(b"\n", start)) >= 0:
                    line = chunk[start:end]
                    if pending:
                        line = b"".join((*pending, line))
                        pending.clear()
                    if line.strip():
                        yield line
                    start = end + 1
                if start < len(chunk):
                    pending.append(chunk[start:])
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            reason = _short(exc)
            raise _NoAnswer(f"{self._server}: watch {self._path}: {reason}", reason) from None
        if any(part.strip() for part in pending):
            reason = "connection dropped before the response was complete"
            raise _NoAnswer(f"{self._server}: watch {self._path}: {reason}", reason)
        self._ended = True

    def abort(self) -> None:
        """Cut the connection (from any thread); a blocked read then fails at once."""
        with contextlib.suppress(OSError, ValueError, RuntimeError, AttributeError):
            self._response.shutdown()

    def close(self) -> None:
        """Let go of the response: a connection left mid-stream is closed, never reused."""
        if not self._ended:
            with contextlib.suppress(OSError, urllib3.exceptions.HTTPError):
                self._response.close()
        with contextlib.suppress(OSError, urllib3.exceptions.HTTPError):
            self._response.release_conn()

    def __enter__(self) -> WatchStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ------------------------------------------------------------------ writes (revert)
#
# Used only by :mod:`auditor.revert`, and only when ``revert.mode`` is not ``off``: a
# read-only install never sends any of these. Each one is a single request answered in raw
# JSON; failures are raised with the verb, the resource and the namespace named, so a 403
# tells the operator exactly which RBAC rule is missing.

APPLY_CONTENT_TYPE = "application/apply-patch+yaml"
JSON_PATCH_CONTENT_TYPE = "application/json-patch+json"


class WriteError(ClusterError):
    """A write the API refused (other than 403): ``status`` is the HTTP status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class WriteForbiddenError(ForbiddenError):
    """A 403 on a write: the service account lacks ``verb`` on ``resource``."""

    def __init__(self, message: str, *, verb: str, resource: str, namespace: str) -> None:
        super().__init__(message)
        self.verb = verb
        self.resource = resource
        self.namespace = namespace


def _resource_name(resource: APIResource) -> str:
    return f"{resource.plural}.{resource.group}" if resource.group else resource.plural


def _object_path(resource: APIResource, namespace: str, name: str) -> str:
    return f"{resource.path(namespace)}/{quote(name, safe='')}"


def _write_query(field_manager: str, *, force: bool = False,
                 dry_run: bool = False) -> list[tuple[str, str]]:
    query = [("fieldManager", field_manager)] if field_manager else []
    if force:
        query.append(("force", "true"))
    if dry_run:
        query.append(("dryRun", "All"))
    return query


class _Writes:
    """The write half of :class:`Cluster` (mixed in below to keep the read path untouched)."""

    config: ClusterConfig
    server: str
    _api: k8s_client.ApiClient
    _sleep: Callable[[float], None]

    def _count_retry(self) -> None:  # pragma: no cover - Cluster defines it
        raise NotImplementedError

    def _send_once(self, method: str, path: str, query: list[tuple[str, str]],
                   body: Any, content_type: str) -> bytes:
        from kubernetes.client.exceptions import ApiException

        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        request = self._api.param_serialize(
            method, path, query_params=query or None, header_params=headers,
            auth_settings=["BearerToken"])
        method_, url, header_params, _, _ = request
        try:
            # The client serialises ``body`` by content type: JSON types and
            # ``apply-patch+yaml`` (JSON is YAML) with json.dumps; a JSON patch must be a list.
            response = self._api.call_api(method_, url, header_params=header_params,
                                          body=body, _request_timeout=self.config.timeout_seconds)
            data = response.read()
        except ApiException as exc:
            raise ClusterUnreachableError(f"{self.server}: {exc.reason}") from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise ClusterUnreachableError(f"{self.server}: {_short(exc)}") from None
        if response.status >= 300:
            raise _HTTPStatusError(response.status, data or b"",
                                   _retry_after(response.getheader("Retry-After")))
        return data or b""

    def _write(self, verb: str, method: str, resource: APIResource, namespace: str, name: str,
               query: list[tuple[str, str]], body: Any = None,
               content_type: str = "application/json") -> bytes:
        """One write; 429 and 503 are retried a bounded number of times (every write here is
        idempotent or guarded by a precondition, so sending it twice is safe)."""
        path = _object_path(resource, namespace, name)
        attempt = 0
        while True:
            try:
                return self._send_once(method, path, query, body, content_type)
            except _HTTPStatusError as exc:
                if exc.status in (429, 503) and attempt < self.config.retries:
                    delay = exc.retry_after if exc.retry_after is not None else min(
                        8.0, 0.2 * 2**attempt)
                    attempt += 1
                    self._count_retry()
                    self._sleep(delay)
                    continue
                where = f" in namespace {namespace}" if namespace and resource.namespaced else ""
                what = f"{_resource_name(resource)} {name}{where}"
                if exc.status == 403:
                    raise WriteForbiddenError(
                        f"forbidden: cannot {verb} {what}: the service account needs the RBAC "
                        f"verb '{verb}' on resource '{_resource_name(resource)}'"
                        f"{where or ' (cluster-wide)'} ({exc.message()})",
                        verb=verb, resource=_resource_name(resource),
                        namespace=namespace if resource.namespaced else "") from None
                raise WriteError(f"{verb} {what} failed with HTTP {exc.status}: "
                                 f"{exc.message()}", exc.status) from None

    def get_object(self, resource: APIResource, namespace: str, name: str) -> dict[str, Any] | None:
        """The live object, or ``None`` when it does not exist (404)."""
        try:
            doc: dict[str, Any] = orjson.loads(self._write(
                "get", "GET", resource, namespace, name, []))
        except WriteError as exc:
            if exc.status == 404:
                return None
            raise
        doc.setdefault("apiVersion", resource.api_version)
        doc.setdefault("kind", resource.kind)
        return doc

    def apply(self, resource: APIResource, obj: dict[str, Any], *, field_manager: str,
              force: bool = True, dry_run: bool = False) -> dict[str, Any]:
        """Server-side apply ``obj`` (creating it when absent); returns the resulting object.

        JSON is valid YAML, so the apply-patch body is the object as JSON.
        """
        meta = obj.get("metadata") or {}
        out: dict[str, Any] = orjson.loads(self._write(
            "patch", "PATCH", resource, str(meta.get("namespace") or ""), str(meta["name"]),
            _write_query(field_manager, force=force, dry_run=dry_run), obj,
            APPLY_CONTENT_TYPE))
        return out

    def json_patch(self, resource: APIResource, namespace: str, name: str,
                   ops: list[dict[str, Any]], *, field_manager: str,
                   dry_run: bool = False) -> dict[str, Any]:
        """An RFC 6902 JSON patch (an ``Update`` by ``field_manager``)."""
        out: dict[str, Any] = orjson.loads(self._write(
            "patch", "PATCH", resource, namespace, name,
            _write_query(field_manager, dry_run=dry_run), list(ops),
            JSON_PATCH_CONTENT_TYPE))
        return out

    def delete(self, resource: APIResource, namespace: str, name: str, *, uid: str = "",
               resource_version: str = "", dry_run: bool = False) -> bool:
        """Delete one object (background propagation). Preconditions on ``uid`` and
        ``resource_version`` make the API refuse (409) if the object changed since it was
        read. Returns ``False`` when it was already gone."""
        preconditions = {k: v for k, v in (("uid", uid), ("resourceVersion", resource_version))
                         if v}
        options: dict[str, Any] = {"apiVersion": "v1", "kind": "DeleteOptions",
                                   "propagationPolicy": "Background"}
        if preconditions:
            options["preconditions"] = preconditions
        if dry_run:
            options["dryRun"] = ["All"]
        try:
            self._write("delete", "DELETE", resource, namespace, name,
                        _write_query("", dry_run=dry_run), options)
        except WriteError as exc:
            if exc.status == 404:
                return False
            raise
        return True


class ListForbiddenError(ForbiddenError):
    """A 403 on a kind's list: the kind is not audited this run, for want of the RBAC verb
    ``list`` on its resource. ``reason`` says so without the kind's name (a run's problem
    names the kind itself); the message is the kind's name and the reason."""

    def __init__(self, resource: APIResource, namespace: str, api_message: str) -> None:
        name = _resource_name(resource)
        where = f"in namespace {namespace}" if namespace and resource.namespaced \
            else "cluster-wide"
        self.reason = (f"not audited: no permission to list {name} {where} (403 forbidden: "
                       f"the RBAC verb 'list' on resource '{name}' {where} is missing). "
                       f"The API server said: {api_message}")
        super().__init__(f"{resource.group_kind}: {self.reason}")


class Cluster(_Writes):
    """A connection to one Kubernetes API server."""

    def __init__(self, config: ClusterConfig, *, sleep: Callable[[float], None] = time.sleep) -> None:
        from kubernetes import client as k8s_client

        self.config = config
        self._sleep = sleep
        self._api = k8s_client.ApiClient(self._configuration(config))
        self._api.user_agent = USER_AGENT
        self.server = self._api.configuration.host
        self.retries = 0
        self._lock = threading.Lock()
        # API group -> why discovery could not read it (see :meth:`discover`).
        self.undiscovered: dict[str, str] = {}
        self._watch_rest: k8s_rest.RESTClientObject | None = None

    @staticmethod
    def _configuration(config: ClusterConfig) -> k8s_client.Configuration:
        from kubernetes import client as k8s_client
        from kubernetes import config as k8s_config
        from kubernetes.config.config_exception import ConfigException

        conf = k8s_client.Configuration()
        # Without a path the client reads $KUBECONFIG (a list of files) or ~/.kube/config.
        files = config.kubeconfig or k8s_config.KUBE_CONFIG_DEFAULT_LOCATION
        where = "in-cluster service account" if config.in_cluster else files
        ctx = f" (context {config.context!r})" if config.context else ""
        if not config.in_cluster and not any(
                Path(f).expanduser().exists() for f in files.split(os.pathsep) if f):
            # The client would say "No configuration found", which hides the cause.
            raise ConfigError(f"cluster: cannot load {where}: file not found")
        try:
            if config.in_cluster:
                k8s_config.load_incluster_config(client_configuration=conf)
            else:
                k8s_config.load_kube_config(
                    config_file=config.kubeconfig or None,
                    context=config.context or None,
                    client_configuration=conf,
                )
        except yamlsafe.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            name = str(getattr(mark, "name", "") or "")
            file = name if name and not name.startswith("<") else where  # which of a list
            line = f" line {mark.line + 1}:" if mark is not None else ""
            problem = getattr(exc, "problem", None) or _one_line(str(exc))
            raise ConfigError(f"cluster: cannot load {file}:{line} invalid YAML: "
                              f"{problem}") from None
        except (ConfigException, OSError) as exc:
            raise ConfigError(f"cluster: cannot load {where}{ctx}: {_one_line(str(exc))}") \
                from None
        except (ValueError, TypeError, AttributeError, KeyError, IndexError) as exc:
            # Valid YAML of the wrong shape (a list, a string, ``clusters: 5``) or bytes
            # that are not UTF-8: the client trips over it without saying where.
            raise ConfigError(f"cluster: cannot load {where}{ctx}: not a valid kubeconfig "
                              f"({type(exc).__name__}: {_one_line(str(exc))})") from None
        # Retries are ours (bounded, 429-aware); urllib3 must not retry behind our back.
        conf.retries = False
        conf.connection_pool_maxsize = max(4, config.concurrency * 2)
        return conf

    def close(self) -> None:
        self._api.close()
        if self._watch_rest is not None:
            self._watch_rest.pool_manager.clear()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------- HTTP

    def _get_once(self, path: str, query: list[tuple[str, str]]) -> bytes:
        from kubernetes.client.exceptions import ApiException

        request = self._api.param_serialize(
            "GET", path, query_params=query or None,
            header_params={"Accept": "application/json"}, auth_settings=["BearerToken"],
        )
        try:
            response = self._api.call_api(*request, _request_timeout=self.config.timeout_seconds)
            body = response.read()
        except ApiException as exc:
            # The client wraps connection and TLS failures as status 0.
            reason = _one_line(str(exc.reason))
            raise _NoAnswer(f"{self.server}: {reason}", reason) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            reason = _short(exc)
            if reason == "timed out":
                reason = f"timed out after {self.config.timeout_seconds:g}s"
            raise _NoAnswer(f"{self.server}: {reason} (GET {path})", reason) from None
        if response.status >= 300:
            raise _HTTPStatusError(response.status, body or b"",
                                   _retry_after(response.getheader("Retry-After")))
        return body or b""

    def get_raw(self, path: str, query: list[tuple[str, str]] | None = None, *,
                sleep: Callable[[float], None] | None = None) -> bytes:
        """GET with bounded retries on 429, 5xx, timeouts and dropped connections (waiting
        with ``sleep``, by default the cluster's).

        Raises :class:`ClusterUnreachableError` (a ``_NoAnswer``) when the last attempt got
        no complete response, ``_HTTPStatusError`` when it got an error status.
        """
        attempt = 0
        while True:
            try:
                return self._get_once(path, query or [])
            except _HTTPStatusError as exc:
                if exc.status not in (429, 500, 502, 503, 504) or attempt >= self.config.retries:
                    raise
                delay = exc.retry_after if exc.retry_after is not None else self._backoff(attempt)
                log.info("GET %s answered %d; retrying in %.1fs", path, exc.status, delay)
            except _NoAnswer as exc:
                if attempt >= self.config.retries:
                    raise
                delay = self._backoff(attempt)
                log.info("GET %s got no answer (%s); retrying in %.1fs", path, exc.reason, delay)
            attempt += 1
            self._count_retry()
            (sleep or self._sleep)(delay)

    def _backoff(self, attempt: int) -> float:
        return float(min(8.0, 0.2 * 2**attempt) * (0.5 + random.random() / 2))

    def _count_retry(self) -> None:
        with self._lock:
            self.retries += 1

    def get_json(self, path: str, query: list[tuple[str, str]] | None = None) -> Any:
        return orjson.loads(self.get_raw(path, query))

    def answers(self) -> bool:
        """Whether the API server answers a trivial request now (any status is an answer)."""
        try:
            self._get_once("/version", [])
        except _HTTPStatusError:
            return True
        except _NoAnswer:
            return False
        return True

    def whoami(self) -> str:
        """The user name the API server authenticated these credentials as: a
        ``SelfSubjectReview`` (``authentication.k8s.io/v1``, as ``kubectl auth whoami``).
        One attempt, no retries: it names who acknowledges a drift, and a caller falls back
        to the kubeconfig's user name. Raises :class:`ClusterError` when the server cannot
        say (unreachable, the API not served, forbidden, no user name in the answer)."""
        path = "/apis/authentication.k8s.io/v1/selfsubjectreviews"
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
        try:
            data = self._send_once("POST", path, [], body, "application/json")
        except _HTTPStatusError as exc:
            raise ClusterError(f"{self.server}: SelfSubjectReview answered HTTP {exc.status}: "
                               f"{exc.message()}") from None
        try:
            doc = orjson.loads(data)
            name = doc["status"]["userInfo"]["username"]
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            raise ClusterError(f"{self.server}: SelfSubjectReview without a user name "
                               f"({type(exc).__name__})") from None
        if not isinstance(name, str) or not name:
            raise ClusterError(f"{self.server}: SelfSubjectReview without a user name")
        return name

    # -------------------------------------------------------------- watches

    def open_watch(self, path: str, query: list[tuple[str, str]], *,
                   read_timeout: float) -> WatchStream:
        """Open one watch request, once: retrying, resuming and relisting are the caller's.

        ``read_timeout`` bounds each wait for the next bytes (the watch's ``timeoutSeconds``
        plus slack, so a silent dead connection is noticed). Raises :class:`APIStatusError`
        on an error status, :class:`ClusterUnreachableError` when there was no answer.
        """
        from kubernetes.client.exceptions import ApiException

        method, url, headers, _, _ = self._api.param_serialize(
            "GET", path, query_params=query or None,
            header_params={"Accept": "application/json"}, auth_settings=["BearerToken"])
        try:
            response = self._watch_client().request(
                method, url, headers=headers,
                _request_timeout=(self.config.timeout_seconds, read_timeout))
        except ApiException as exc:
            reason = _one_line(str(exc.reason))
            raise _NoAnswer(f"{self.server}: {reason}", reason) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            reason = _short(exc)
            raise _NoAnswer(f"{self.server}: {reason} (watch {path})", reason) from None
        raw: urllib3.BaseHTTPResponse = response.response
        if response.status < 300:
            return WatchStream(raw, self.server, path)
        retry_after = _retry_after(response.getheader("Retry-After"))
        try:
            body = raw.data or b""
        except (urllib3.exceptions.HTTPError, OSError):
            body = b""
        finally:
            raw.release_conn()
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            doc = None
        if isinstance(doc, dict):
            raise APIStatusError.of_status(doc, response.status, retry_after)
        raise APIStatusError(response.status, "", _one_line(body[:200].decode("utf-8", "replace")),
                             retry_after)

    def _watch_client(self) -> k8s_rest.RESTClientObject:
        """The REST client watches use: the same TLS and proxy settings, a pool of its own
        (credentials travel in each request's headers, refreshed by the main client)."""
        from kubernetes.client import rest as k8s_rest

        with self._lock:
            if self._watch_rest is None:
                conf = copy.copy(self._api.configuration)
                conf.connection_pool_maxsize = WATCH_POOL_SIZE
                self._watch_rest = k8s_rest.RESTClientObject(conf)
            return self._watch_rest

    # ------------------------------------------------------------ discovery

    def discover(self) -> list[APIResource]:
        """Every listable resource at its group's preferred version, sorted by group and kind.

        A group (an aggregated API that is down) whose version cannot be read is left out
        and named in :attr:`undiscovered` with the reason: its kinds are unknown this run,
        not absent, and whoever compares must not take its objects for missing. The core
        group is never aggregated: failing to read it, like failing to read ``/api`` or
        ``/apis``, raises :class:`ClusterError`.
        """
        self.undiscovered = {}
        try:
            core = self.get_json("/api")
            groups = self.get_json("/apis")
        except _HTTPStatusError as exc:
            raise ClusterError(f"{self.server}: discovery failed with HTTP {exc.status}: "
                               f"{exc.message()}") from None
        versions: list[tuple[str, str]] = [("", v) for v in core.get("versions", [])[:1]]
        for group in groups.get("groups", []):
            preferred = (group.get("preferredVersion") or {}).get("version")
            if not preferred and group.get("versions"):
                preferred = group["versions"][0]["version"]
            if preferred:
                versions.append((group["name"], preferred))
        resources: list[APIResource] = []
        for group, version in versions:
            path = f"/apis/{group}/{version}" if group else f"/api/{version}"
            try:
                listing = self.get_json(path)
            except _HTTPStatusError as exc:
                reason = f"discovery of {path} failed with HTTP {exc.status}: {exc.message()}"
                if not group:
                    raise ClusterError(f"{self.server}: {reason}") from None
                # An aggregated API that is down (503) must not stop the audit of the rest.
                log.warning("%s; its kinds are not audited this run", reason)
                self.undiscovered[group] = reason
                continue
            for res in listing.get("resources", []):
                if "/" in res.get("name", "") or "list" not in res.get("verbs", []):
                    continue
                resources.append(APIResource(
                    group=group, version=version, kind=res["kind"], plural=res["name"],
                    namespaced=bool(res.get("namespaced")), verbs=tuple(res.get("verbs", ())),
                ))
        resources.sort(key=lambda r: (r.group, r.kind))
        return resources

    # ---------------------------------------------------------------- lists

    def list_pages(self, resource: APIResource, *, stats: ListStats | None = None,
                   namespace: str = "", rehand: bool = False,
                   sleep: Callable[[float], None] | None = None) -> Iterator[Page]:
        """One kind's objects page by page, each object handed on once.

        A 410 on a continue token (etcd compacted the revision the list was reading) restarts
        the list from the first page. What the interrupted list already handed on has been
        recorded and compared downstream and cannot be taken back, so the restarted list
        hands on only the objects it had not: nothing twice, nothing lost. That takes the
        keys handed on so far, kept while more pages follow (about a hundred bytes per
        object, never the objects). client-go's pager instead re-reads the whole kind in one
        unpaginated request, which would hold a 90,000-object kind in memory at once.

        ``rehand=True`` makes a restarted list hand on every object again, a consistent list
        at its new resourceVersion, for a caller (the watch) that needs one and recognises
        what it already has; nothing is kept between pages then. ``sleep`` waits between
        retries (a caller that must stop promptly passes one that can be interrupted).

        Raises :class:`ListForbiddenError` on 403 (the kind "not audited: no permission",
        naming the missing RBAC verb and resource), :class:`ClusterError` when the kind
        keeps failing (an error status, or no answer while the server still answers other
        requests), :class:`ClusterUnreachableError` when the server stopped answering
        altogether. Items get ``apiVersion``/``kind`` set because a list response leaves
        them out of its items.
        """
        stats = stats or ListStats()
        path = resource.path(namespace)
        token = ""
        restarts = 0
        restarted = False
        # "namespace/name" of every object handed on, while the list may still restart.
        handed: set[str] = set()
        while True:
            query = [("limit", str(self.config.page_size))]
            if token:
                query.append(("continue", token))
            try:
                body = self.get_raw(path, query, sleep=sleep)
            except _NoAnswer as exc:
                raise self._no_answer(resource, path, exc) from None
            except _HTTPStatusError as exc:
                if exc.status == 403:
                    raise ListForbiddenError(resource, namespace, exc.message()) from None
                if exc.status == 410 and token and restarts < self.config.retries:
                    # The continue token expired (compaction). A 410 may carry a token that
                    # continues from the same key at the newest revision, but that list is
                    # inconsistent; starting over gives a consistent list for what remains.
                    restarts += 1
                    stats.restarts += 1
                    log.info("%s: continue token expired; restarting the list", resource.group_kind)
                    token = ""
                    restarted = True
                    continue
                raise ClusterError(f"{resource.group_kind}: listing {path} failed with HTTP "
                                   f"{exc.status}: {exc.message()}") from None
            doc = orjson.loads(body)
            size = len(body)
            del body  # the decoded page is what travels on; the bytes need not wait with it
            items = doc.get("items") or []
            token = (doc.get("metadata") or {}).get("continue") or ""
            list_rv = str((doc.get("metadata") or {}).get("resourceVersion") or "")
            if restarts and not rehand:
                items = [item for item in items if _list_key(item) not in handed]
            if token and not rehand:
                handed.update(map(_list_key, items))
            else:
                handed.clear()
            api_version, kind = resource.api_version, resource.kind
            for item in items:
                item["apiVersion"] = api_version
                item["kind"] = kind
            stats.pages += 1
            stats.bytes += size
            yield Page(resource, items, size, last=not token, restarted=restarted,
                       resource_version=list_rv)
            restarted = False
            if not token:
                return

    def _no_answer(self, resource: APIResource, path: str, exc: _NoAnswer) -> ClusterError:
        """What a list that got no answer, retries spent, means: the kind's own problem
        (skip it, as a kind answering 5xx is skipped) while the server answers a trivial
        request, an unreachable cluster when it does not."""
        try:
            self._get_once("/version", [])
        except _HTTPStatusError:
            pass  # an answer all the same
        except _NoAnswer as probe:
            return ClusterUnreachableError(
                f"{self.server}: the API stopped answering while listing "
                f"{resource.group_kind} ({exc.reason}; GET /version: {probe.reason})")
        attempts = self.config.retries + 1
        return ClusterError(
            f"{resource.group_kind}: listing {path} {exc.reason} "
            f"({attempts} attempt{'s' if attempts > 1 else ''}) while the API server answers "
            "other requests")


def _list_key(item: dict[str, Any]) -> str:
    """An object's identity within one kind's list."""
    meta = item.get("metadata") or {}
    return f"{meta.get('namespace') or ''}/{meta.get('name') or ''}"


def _one_line(text: str) -> str:
    """Error text as one line: the CLI prints each error on exactly one."""
    return " ".join(text.split())[:300]


def _short(exc: BaseException) -> str:
    text = str(exc)
    if "Connection refused" in text:
        return "connection refused"
    if "timed out" in text.lower():
        return "timed out"
    if isinstance(exc, urllib3.exceptions.ProtocolError | ConnectionResetError) or \
            "IncompleteRead" in text or "Connection broken" in text:
        return "connection dropped before the response was complete"
    if "Name or service not known" in text or "nodename nor servname" in text:
        return "host not found"
    return text.splitlines()[0][:200] if text else type(exc).__name__


# ------------------------------------------------------------------- scope


# ---------------------------------------------------------------- snapshot


def iter_live(cluster: Cluster, scope: ScopeConfig, *, stats: ListStats,
              on_kind: Callable[[APIResource, int, bool], None] | None = None,
              resources: list[APIResource] | None = None) -> Iterator[Page]:
    """Stream every in-scope kind's pages, listing up to ``concurrency`` kinds at once.

    Pages arrive in completion order; a consumer that needs determinism sorts its output.
    Each object is handed on once, even when an expired continue token restarted its list.
    A 403 or a kind that keeps failing (error statuses, or no answer while the server answers
    other requests) becomes a ``Problem`` in ``stats`` and the kind's name in
    ``stats.skipped_kinds``: a partial read must never be taken for an empty kind. A server
    that stopped answering altogether raises :class:`ClusterUnreachableError`.
    ``on_kind(resource, objects, ok)`` is called as each kind finishes (for progress).
    """
    if resources is None:
        resources = [r for r in cluster.discover() if in_scope(r, scope)]
    stats.kinds = len(resources)
    namespaces = namespaces_to_list(scope)
    done: Queue[tuple[str, Any]] = Queue(maxsize=max(2, cluster.config.concurrency))

    def work(resource: APIResource) -> None:
        count = 0
        try:
            targets = namespaces if (namespaces and resource.namespaced) else ("",)
            for ns in targets:
                for page in cluster.list_pages(resource, stats=stats, namespace=ns):
                    if stopping.is_set():
                        return
                    kept = page.items if not filtering else [
                        o for o in page.items
                        if namespace_in_scope((o.get("metadata") or {}).get("namespace", ""), scope)]
                    count += len(page.items)
                    done.put(("page", Page(resource, kept, page.raw_bytes, page.last,
                                           page.restarted)))
            done.put(("done", (resource, count, True)))
        except ForbiddenError as exc:
            # The problem names the kind: its message is the reason alone.
            reason = exc.reason if isinstance(exc, ListForbiddenError) else str(exc)
            done.put(("problem", (resource, Problem(resource.group_kind, reason, "forbidden"))))
        except ClusterUnreachableError as exc:
            done.put(("fatal", exc))
        except ClusterError as exc:
            done.put(("problem", (resource, Problem(resource.group_kind, str(exc), "list-failed"))))
        except Exception as exc:  # a bug in one kind must not hang the run
            done.put(("problem", (resource, Problem(resource.group_kind,
                                                    f"unexpected error: {exc!r}", "list-failed"))))

    stopping = threading.Event()
    filtering = bool(scope.include_namespaces or scope.exclude_namespaces)
    pending = len(resources)
    pool = ThreadPoolExecutor(max_workers=max(1, cluster.config.concurrency),
                              thread_name_prefix="list")
    try:
        for resource in resources:
            pool.submit(work, resource)
        while pending:
            what, payload = done.get()
            if what == "page":
                stats.objects += len(payload.items)
                yield payload
            elif what == "done":
                pending -= 1
                if on_kind:
                    on_kind(payload[0], payload[1], True)
            elif what == "problem":
                pending -= 1
                resource, problem = payload
                stats.problems.append(problem)
                stats.skipped_kinds.append(resource.group_kind)
                log.warning("skipping %s: %s", resource.group_kind, problem.message)
                if on_kind:
                    on_kind(resource, 0, False)
            elif what == "fatal":
                raise ClusterUnreachableError(str(payload))
    finally:
        stopping.set()
        pool.shutdown(wait=False, cancel_futures=True)
        # Workers blocked on a full queue must be able to finish when we stop early.
        while pending and any(t.is_alive() for t in getattr(pool, "_threads", ())):
            with contextlib.suppress(Empty):
                done.get(timeout=0.05)
        stats.retries = cluster.retries

