"""Live cluster access: the only module that imports the ``kubernetes`` client.

It builds an API client from a kubeconfig or the in-cluster service account, discovers the
API resources (preferred version per group), and lists every in-scope kind page by page
(``limit``/``continue``) as raw JSON bytes decoded with orjson — never through the generated
model classes, which cost ~20x more to build.

Faults are handled per kind so one bad kind never sinks a run: a 403 skips the kind and says
so; a 410 Gone on an expired continue token restarts that kind's list; 429 honours
``Retry-After``; 5xx and timeouts retry with exponential backoff up to a bound. Failing to
reach the API at all raises :class:`ClusterUnreachableError`.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from queue import Empty, Queue
from typing import Any
from urllib.parse import quote

import orjson
import urllib3
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from auditor.config import ClusterConfig, ScopeConfig
from auditor.engine.records import Problem
from auditor.engine.scope import kind_in_scope, namespace_in_scope
from auditor.errors import ClusterError, ClusterUnreachableError, ConfigError, ForbiddenError

log = logging.getLogger(__name__)

USER_AGENT = "drift-auditor/0.1"


@dataclass(frozen=True, slots=True)
class APIResource:
    """One listable kind as discovery describes it."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    verbs: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_kind(self) -> str:
        return f"{self.kind}.{self.group}" if self.group else self.kind

    def path(self, namespace: str = "") -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if namespace and self.namespaced:
            return f"{base}/namespaces/{quote(namespace, safe='')}/{self.plural}"
        return f"{base}/{self.plural}"


@dataclass(frozen=True, slots=True)
class Page:
    """One page of one kind's list: items already carry ``apiVersion`` and ``kind``."""

    resource: APIResource
    items: list[dict[str, Any]]
    raw_bytes: int
    last: bool
    # True on the first page after an expired continue token restarted the list: items of
    # this kind may repeat what earlier pages carried (consumers keep the later copy).
    restarted: bool = False


@dataclass
class ListStats:
    """What a snapshot did, for the progress display, the ledger and the benchmark."""

    kinds: int = 0
    objects: int = 0
    pages: int = 0
    bytes: int = 0
    retries: int = 0
    restarts: int = 0
    problems: list[Problem] = field(default_factory=list)
    skipped_kinds: list[str] = field(default_factory=list)


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


class Cluster(_Writes):
    """A connection to one Kubernetes API server."""

    def __init__(self, config: ClusterConfig, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self.config = config
        self._sleep = sleep
        self._api = k8s_client.ApiClient(self._configuration(config))
        self._api.user_agent = USER_AGENT
        self.server = self._api.configuration.host
        self.retries = 0
        self._lock = threading.Lock()

    @staticmethod
    def _configuration(config: ClusterConfig) -> k8s_client.Configuration:
        conf = k8s_client.Configuration()
        try:
            if config.in_cluster:
                k8s_config.load_incluster_config(client_configuration=conf)
            else:
                k8s_config.load_kube_config(
                    config_file=config.kubeconfig or None,
                    context=config.context or None,
                    client_configuration=conf,
                )
        except (ConfigException, FileNotFoundError, OSError) as exc:
            where = "in-cluster service account" if config.in_cluster else (
                config.kubeconfig or "~/.kube/config")
            ctx = f" (context {config.context!r})" if config.context else ""
            raise ConfigError(f"cluster: cannot load {where}{ctx}: {exc}") from None
        # Retries are ours (bounded, 429-aware); urllib3 must not retry behind our back.
        conf.retries = False
        conf.connection_pool_maxsize = max(4, config.concurrency * 2)
        return conf

    def close(self) -> None:
        self._api.close()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------- HTTP

    def _get_once(self, path: str, query: list[tuple[str, str]]) -> bytes:
        request = self._api.param_serialize(
            "GET", path, query_params=query or None,
            header_params={"Accept": "application/json"}, auth_settings=["BearerToken"],
        )
        try:
            response = self._api.call_api(*request, _request_timeout=self.config.timeout_seconds)
            body = response.read()
        except ApiException as exc:
            # The client wraps connection and TLS failures as status 0.
            raise ClusterUnreachableError(f"{self.server}: {exc.reason}") from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise ClusterUnreachableError(f"{self.server}: {_short(exc)}") from None
        if response.status >= 300:
            raise _HTTPStatusError(response.status, body or b"",
                                   _retry_after(response.getheader("Retry-After")))
        return body or b""

    def get_raw(self, path: str, query: list[tuple[str, str]] | None = None) -> bytes:
        """GET with bounded retries on 429, 5xx and timeouts."""
        attempt = 0
        while True:
            try:
                return self._get_once(path, query or [])
            except _HTTPStatusError as exc:
                if exc.status not in (429, 500, 502, 503, 504) or attempt >= self.config.retries:
                    raise
                delay = exc.retry_after if exc.retry_after is not None else self._backoff(attempt)
                log.info("GET %s answered %d; retrying in %.1fs", path, exc.status, delay)
            except ClusterUnreachableError:
                if attempt >= self.config.retries:
                    raise
                delay = self._backoff(attempt)
                log.info("GET %s failed to connect; retrying in %.1fs", path, delay)
            attempt += 1
            self._count_retry()
            self._sleep(delay)

    def _backoff(self, attempt: int) -> float:
        return float(min(8.0, 0.2 * 2**attempt) * (0.5 + random.random() / 2))

    def _count_retry(self) -> None:
        with self._lock:
            self.retries += 1

    def get_json(self, path: str, query: list[tuple[str, str]] | None = None) -> Any:
        return orjson.loads(self.get_raw(path, query))

    # ------------------------------------------------------------ discovery

    def discover(self) -> list[APIResource]:
        """Every listable resource at its group's preferred version, sorted by group and kind."""
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
                # An aggregated API that is down (503) must not stop the audit of the rest.
                log.warning("discovery of %s failed with HTTP %d; skipping it", path, exc.status)
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
                   namespace: str = "") -> Iterator[Page]:
        """One kind's objects page by page. A 410 on a continue token restarts the list.

        Raises :class:`ForbiddenError` on 403. Items get ``apiVersion``/``kind`` set because a
        list response leaves them out of its items.
        """
        stats = stats or ListStats()
        path = resource.path(namespace)
        token = ""
        restarts = 0
        restarted = False
        while True:
            query = [("limit", str(self.config.page_size))]
            if token:
                query.append(("continue", token))
            try:
                body = self.get_raw(path, query)
            except _HTTPStatusError as exc:
                if exc.status == 403:
                    raise ForbiddenError(
                        f"{resource.group_kind}: forbidden to list {path} ({exc.message()})"
                    ) from None
                if exc.status == 410 and token and restarts < self.config.retries:
                    # The continue token expired (compaction): the only correct move is to
                    # start over; a partial list would report objects as missing.
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
            api_version, kind = resource.api_version, resource.kind
            for item in items:
                item["apiVersion"] = api_version
                item["kind"] = kind
            token = (doc.get("metadata") or {}).get("continue") or ""
            stats.pages += 1
            stats.bytes += size
            yield Page(resource, items, size, last=not token, restarted=restarted)
            restarted = False
            if not token:
                return


def _short(exc: BaseException) -> str:
    text = str(exc)
    if "Connection refused" in text:
        return "connection refused"
    if "timed out" in text.lower():
        return "timed out"
    if "Name or service not known" in text or "nodename nor servname" in text:
        return "host not found"
    return text.splitlines()[0][:200] if text else type(exc).__name__


# ------------------------------------------------------------------- scope


def in_scope(resource: APIResource, scope: ScopeConfig) -> bool:
    """Whether a discovered kind is audited under the scope configuration."""
    return kind_in_scope(resource.group, resource.kind, scope)


# ---------------------------------------------------------------- snapshot


def iter_live(cluster: Cluster, scope: ScopeConfig, *, stats: ListStats,
              on_kind: Callable[[APIResource, int, bool], None] | None = None,
              resources: list[APIResource] | None = None) -> Iterator[Page]:
    """Stream every in-scope kind's pages, listing up to ``concurrency`` kinds at once.

    Pages arrive in completion order; a consumer that needs determinism sorts its output.
    A 403 or a kind that keeps failing becomes a ``Problem`` in ``stats`` and the kind's name
    in ``stats.skipped_kinds``: a partial read must never be taken for an empty kind.
    ``on_kind(resource, objects, ok)`` is called as each kind finishes (for progress).
    """
    if resources is None:
        resources = [r for r in cluster.discover() if in_scope(r, scope)]
    stats.kinds = len(resources)
    namespaces = scope.include_namespaces
    done: Queue[tuple[str, Any]] = Queue(maxsize=max(2, cluster.config.concurrency))

    def work(resource: APIResource) -> None:
        count = 0
        try:
            targets = namespaces if (namespaces and resource.namespaced) else ("",)
            for ns in targets:
                for page in cluster.list_pages(resource, stats=stats, namespace=ns):
                    if stopping.is_set():
                        return
                    if page.restarted:
                        count = 0
                    kept = page.items if not filtering else [
                        o for o in page.items
                        if namespace_in_scope((o.get("metadata") or {}).get("namespace", ""), scope)]
                    count += len(page.items)
                    done.put(("page", Page(resource, kept, page.raw_bytes, page.last,
                                           page.restarted)))
            done.put(("done", (resource, count, True)))
        except ForbiddenError as exc:
            done.put(("problem", (resource, Problem(resource.group_kind, str(exc), "forbidden"))))
        except ClusterUnreachableError:
            done.put(("fatal", resource))
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
                raise ClusterUnreachableError(f"{cluster.server}: the API stopped answering "
                                              f"while listing {payload.group_kind}")
    finally:
        stopping.set()
        pool.shutdown(wait=False, cancel_futures=True)
        # Workers blocked on a full queue must be able to finish when we stop early.
        while pending and any(t.is_alive() for t in getattr(pool, "_threads", ())):
            with contextlib.suppress(Empty):
                done.get(timeout=0.05)
        stats.retries = cluster.retries

