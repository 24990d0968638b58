"""Watch streams: every in-scope kind's changes as the API server reports them.

A :class:`Watcher` follows each in-scope kind (the listing's scope decisions:
:func:`auditor.live.client.in_scope`, and the namespaces, one stream per namespace when the
scope names them, else one across the cluster filtered by namespace) and hands on one
:class:`WatchEvent` at a time, from one thread per stream through one bounded queue. It
behaves as client-go's reflector (``staging/src/k8s.io/client-go/tools/cache/reflector.go``)
and the API concepts page ("Efficient detection of changes", "Watch bookmarks",
https://kubernetes.io/docs/reference/using-api/api-concepts/) say a client must:

* Without a position (no ``resume`` for the kind), and whenever the server answers that a
  position is gone (``410``, reason ``Expired`` or ``Gone``, as an HTTP status or as an
  ``ERROR`` event in the stream: etcd compacted it), the kind is listed page by page, each
  object handed on as ``ADDED``, then one ``LISTED`` event with every key the list saw and
  the list's resourceVersion, from which the watch starts. A key the consumer knew that
  ``LISTED`` lacks was deleted while nobody watched.
* Watches ask for ``allowWatchBookmarks=true`` and a ``timeoutSeconds`` drawn from
  [``watch_timeout``, 2 x ``watch_timeout``] as the reflector does (5 to 10 minutes), so
  that watches end and are re-established from their position now and then; a BOOKMARK
  moves the position on and is handed on so it can be stored.
* A watch the server ends (its timeout) is re-established at once from the last position;
  one ending within a second without any event ("very short watch"), a dropped connection
  or an error status is retried from the last position after a bounded exponential
  backoff (``Retry-After`` on 429).

Nothing is handed on twice for the same resourceVersion of the same object, and nothing is
skipped across reconnects: a watch from position P returns exactly the changes after P. A
list (after a 410, or one whose pages were not one snapshot, as a restarted list's are) is
the one place where versions already handed on could come again, so a relist from an
expired position P hands on only the objects changed after P (the first list hands on
all), and what a list handed on is not handed on again by the watch that follows it. Both
compare resourceVersions, which Kubernetes 1.35 allows for objects of one kind (KEP-5504,
"Comparable Resource Version", https://www.kubernetes.dev/resources/keps/5504/); a server
whose resourceVersions are not decimal integers gets no such filtering, and its relists
hand on every object again. Events of one stream come in order; between streams (kinds,
or the namespaces of one kind) there is none.

A kind that cannot be watched (403 on its list or its watch, the API offering no ``watch``
verb, or failing ``max_failures`` times in a row while the server answers other requests)
is named in ``stats`` (a ``Problem`` and ``skipped_kinds``) and its stream ends; the others
go on. A server that does not answer at all is waited for, with the same bounded backoff.

Memory follows the number of streams and of objects changing during a list, never the
cluster's size, but for the key set a list gathers for its ``LISTED`` event (keys only).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from queue import Empty, Full, Queue
from typing import Any

import orjson

from auditor.config import ScopeConfig
from auditor.engine.records import Problem, ResourceKey
from auditor.engine.scope import namespace_in_scope, namespaces_to_list
from auditor.errors import ClusterError, ClusterUnreachableError
from auditor.live.client import (
    APIResource,
    APIStatusError,
    Cluster,
    ListForbiddenError,
    ListStats,
    WatchStream,
    in_scope,
)

log = logging.getLogger(__name__)

# The reflector's minWatchTimeout: each watch asks for a timeout in [this, twice this].
WATCH_TIMEOUT = 300.0
# Events waiting for the consumer: with one page being listed per list slot, what bounds
# the objects held at once.
QUEUE_SIZE = 256
# A watch the server ends sooner than this without an event is treated as a failure.
SHORT_WATCH = 1.0
# How long stopping waits for the streams' threads in all (a list request in flight may
# take up to the cluster's request timeout; its thread is a daemon and ends after it).
JOIN_TIMEOUT = 5.0

EVENT_TYPES = ("ADDED", "MODIFIED", "DELETED", "LISTED", "BOOKMARK")


@dataclass(frozen=True)
class WatchEvent:
    """One thing a watch saw.

    ``resource_version`` is the position to resume the kind from after this event (the
    value for ``resume``): the object's resourceVersion for ADDED/MODIFIED/DELETED from a
    watch, the bookmark's for BOOKMARK, the list's for LISTED, and for the ADDED events of
    a list the position before the list ("" when there was none), since a list cannot be
    resumed halfway. A kind watched namespace by namespace has one position per namespace,
    written ``ns1=rv1,ns2=rv2``; treat it as opaque.

    ``keys`` (LISTED only) is every key the list saw, in scope; ``namespace`` (LISTED only)
    the namespace it covered, "" for every in-scope namespace of the kind: an object of that
    kind and namespace the consumer knew that is not in ``keys`` is gone.
    """

    type: str
    resource: APIResource
    obj: dict[str, Any] | None
    resource_version: str
    keys: frozenset[ResourceKey] | None = None
    namespace: str = ""

    @property
    def key(self) -> ResourceKey | None:
        """The object's key (None for BOOKMARK and LISTED)."""
        return ResourceKey.of(self.obj) if self.obj is not None else None


class _Halted(Exception):
    """The watcher is stopping: a stream's thread unwinds."""


@dataclass(eq=False)
class _Stream:
    """One watch: a kind, in one namespace or across the cluster."""

    resource: APIResource
    namespace: str
    filtering: bool  # objects outside the scope's namespaces arrive and are dropped
    shared: bool  # one of several streams of its kind (positions per namespace)
    position: str = ""  # where the watch resumes; "" = list first
    handed: str = ""  # during a relist: the position before it (versions up to it were handed on)
    # "namespace/name" -> the resourceVersion a list handed on that is newer than the list's
    # own: the watch from the list's position replays it, and that replay is dropped.
    ahead: dict[str, int] = field(default_factory=dict)
    opened: bool = False  # the current watch request was answered 200
    lines: int = 0  # lines the current connection has delivered

    @property
    def name(self) -> str:
        where = f" in {self.namespace}" if self.namespace else ""
        return f"{self.resource.group_kind}{where}"

    def forget_position(self, *, keep_handed: bool) -> None:
        """The position is gone: list again. ``keep_handed``: what was handed on up to it
        need not be handed on again (false when the position itself is suspect)."""
        if keep_handed and self.position:
            self.handed = self.position
        elif not keep_handed:
            self.handed = ""
        self.position = ""
        self.ahead.clear()

    def advance(self, rv: str) -> None:
        if not rv:
            return
        self.position = rv
        if self.ahead:
            now = _rv_int(rv)
            if now is not None:
                for name in [n for n, v in self.ahead.items() if v <= now]:
                    del self.ahead[name]

    def replayed(self, obj: Mapping[str, Any], rv: str) -> bool:
        """Whether a watch event repeats a version a list already handed on."""
        meta = obj.get("metadata") or {}
        name = f"{meta.get('namespace') or ''}/{meta.get('name') or ''}"
        listed = self.ahead.get(name)
        if listed is None:
            return False
        now = _rv_int(rv)
        if now is not None and now <= listed:
            return True
        del self.ahead[name]
        return False


class Watcher:
    """Watch ``resources`` (filtered by ``scope``) until ``stop``; see the module docstring.

    ``resume`` maps a kind's ``group_kind`` to the position its last event carried;
    ``stats`` receives the skipped kinds and the list counters; ``backoff_max`` caps the
    wait before a retry; ``watch_timeout`` is the shortest ``timeoutSeconds`` a watch asks
    for; ``max_failures`` (default: the cluster's ``retries`` + 1) consecutive failures of a
    kind while the server answers other requests skip it.
    """

    def __init__(self, cluster: Cluster, resources: Sequence[APIResource], scope: ScopeConfig, *,
                 resume: Mapping[str, str] | None = None, stats: ListStats | None = None,
                 backoff_max: float = 30.0, watch_timeout: float = WATCH_TIMEOUT,
                 max_failures: int | None = None) -> None:
        self._cluster = cluster
        self._scope = scope
        self._stats = stats if stats is not None else ListStats()
        self._backoff_max = max(0.0, backoff_max)
        self._watch_timeout = max(1.0, watch_timeout)
        self._max_failures = max(1, max_failures if max_failures is not None
                                 else cluster.config.retries + 1)
        self._queue: Queue[tuple[Any, ...]] = Queue(maxsize=QUEUE_SIZE)
        self._halt = threading.Event()
        self._open: set[WatchStream] = set()
        self._open_lock = threading.Lock()
        self._list_slots = threading.Semaphore(max(1, cluster.config.concurrency))
        self._started = False
        # group_kind -> namespace -> position, for kinds watched namespace by namespace
        self._parts: dict[str, dict[str, str]] = {}
        self._unwatchable: list[APIResource] = []
        self._streams = self._plan([r for r in resources if in_scope(r, scope)], resume or {})

    @property
    def stats(self) -> ListStats:
        return self._stats

    def _plan(self, resources: list[APIResource], resume: Mapping[str, str]) -> list[_Stream]:
        namespaces = namespaces_to_list(self._scope)
        filtering = bool(self._scope.include_namespaces or self._scope.exclude_namespaces)
        streams: list[_Stream] = []
        seen: set[str] = set()
        for res in resources:
            if res.group_kind in seen:
                continue
            seen.add(res.group_kind)
            if res.verbs and "watch" not in res.verbs:
                self._unwatchable.append(res)
                continue
            saved = resume.get(res.group_kind, "")
            if namespaces and res.namespaced:
                parts = _parse_parts(saved)
                self._parts[res.group_kind] = {ns: parts[ns] for ns in namespaces if ns in parts}
                streams.extend(_Stream(res, ns, filtering, True, parts.get(ns, ""))
                               for ns in namespaces)
            else:
                start = "" if "=" in saved or saved == "0" else saved
                streams.append(_Stream(res, "", filtering and res.namespaced, False, start))
        self._stats.kinds = len(seen)
        return streams

    # ------------------------------------------------------------------ consumer side

    def events(self, stop: threading.Event) -> Iterator[WatchEvent]:
        """Every kind's events until ``stop`` is set (or every kind was skipped); then each
        stream's connection is cut and its thread joined. One call per Watcher."""
        if self._started:
            raise RuntimeError("a Watcher streams once; make a new one to watch again")
        self._started = True
        for res in self._unwatchable:
            self._skip(res, Problem(res.group_kind, f"not watched: the API server offers no "
                                    f"'watch' on {res.plural}", "watch-failed"))
        threads = [threading.Thread(target=self._run, args=(s,), daemon=True,
                                    name=f"watch-{s.name}") for s in self._streams]
        for t in threads:
            t.start()
        live = len(threads)
        try:
            while live and not stop.is_set():
                try:
                    message = self._queue.get(timeout=0.05)
                except Empty:
                    continue
                what, stream = message[0], message[1]
                if what in ("event", "listed"):
                    _, _, kind, obj, part, keys = message
                    if what == "listed":
                        self._stats.objects += 1
                    yield WatchEvent(kind, stream.resource, obj, self._position(stream, part),
                                     keys, stream.namespace if kind == "LISTED" else "")
                elif what == "problem":
                    self._skip(stream.resource, message[2])
                elif what == "done":
                    live -= 1
        finally:
            self._shutdown(threads)

    def _position(self, stream: _Stream, part: str) -> str:
        if not stream.shared:
            return part
        parts = self._parts[stream.resource.group_kind]
        if part:
            parts[stream.namespace] = part
        else:
            parts.pop(stream.namespace, None)
        return ",".join(f"{ns}={rv}" for ns, rv in sorted(parts.items()))

    def _skip(self, res: APIResource, problem: Problem) -> None:
        if res.group_kind not in self._stats.skipped_kinds:
            self._stats.skipped_kinds.append(res.group_kind)
        self._stats.problems.append(problem)
        log.warning("not watching %s: %s", problem.where, problem.message)

    def _shutdown(self, threads: list[threading.Thread]) -> None:
        self._halt.set()
        with self._open_lock:
            for stream in self._open:
                stream.abort()
        deadline = time.monotonic() + JOIN_TIMEOUT
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        lingering = [t.name for t in threads if t.is_alive()]
        if lingering:
            log.info("watch threads still finishing a request: %s", ", ".join(lingering))
        self._stats.retries = self._cluster.retries

    # ------------------------------------------------------------------ stream threads

    def _send(self, message: tuple[Any, ...]) -> None:
        while True:
            if self._halt.is_set():
                raise _Halted
            try:
                self._queue.put(message, timeout=0.1)
                return
            except Full:
                continue

    def _pause(self, seconds: float) -> None:
        if self._halt.wait(seconds):
            raise _Halted

    def _delay(self, failures: int) -> float:
        """Exponential backoff with jitter, capped at ``backoff_max``."""
        return float(min(self._backoff_max, 0.2 * 2 ** max(0, failures - 1))
                     * (0.5 + random.random() / 2))

    def _run(self, stream: _Stream) -> None:
        try:
            self._follow(stream)
        except _Halted:
            return
        except Exception as exc:  # a bug in one stream must not end the others silently
            log.exception("watch of %s failed", stream.name)
            try:
                self._send(("problem", stream, Problem(
                    stream.resource.group_kind, f"not watched: unexpected error: {exc!r}",
                    "watch-failed")))
            except _Halted:
                return
        try:
            self._send(("done", stream))
        except _Halted:
            return

    def _follow(self, stream: _Stream) -> None:
        kind = stream.resource.group_kind
        failures = 0  # consecutive attempts that got nowhere: the backoff
        strikes = 0  # those that were the kind's own fault: the skip
        while True:
            if self._halt.is_set():
                raise _Halted
            if not stream.position:
                try:
                    self._relist(stream)
                except ListForbiddenError as exc:
                    self._send(("problem", stream, Problem(kind, exc.reason, "forbidden")))
                    return
                except ClusterUnreachableError as exc:
                    # The server stopped answering: wait for it, the kind is not at fault.
                    failures += 1
                    log.info("listing %s: %s; retrying", stream.name, exc)
                    self._pause(self._delay(failures))
                    continue
                except ClusterError as exc:
                    self._send(("problem", stream, Problem(kind, str(exc), "list-failed")))
                    return
                failures = strikes = 0
                continue
            started = time.monotonic()
            try:
                self._watch(stream)
            except APIStatusError as exc:
                if self._halt.is_set():
                    raise _Halted from None
                if stream.lines:
                    failures = strikes = 0
                if exc.status == 403:
                    self._send(("problem", stream, Problem(kind, _forbidden(stream, exc),
                                                           "forbidden")))
                    return
                if _expired(exc) or _too_large(exc):
                    # The position is gone: list again, as the reflector does. A position
                    # the server has not reached yet says nothing about what was handed on.
                    log.info("watch of %s from %s: %s; listing again", stream.name,
                             stream.position, exc.api_message)
                    stream.forget_position(keep_handed=not _too_large(exc))
                    continue
                failures += 1
                if exc.status != 429:  # throttling is the server's state, not the kind's
                    strikes += 1
                if strikes >= self._max_failures:
                    self._send(("problem", stream, Problem(
                        kind, f"not watched: watching {stream.resource.path(stream.namespace)} "
                        f"failed {strikes} times in a row: {exc}", "watch-failed")))
                    return
                delay = exc.retry_after if exc.retry_after is not None else self._delay(failures)
                log.info("watch of %s: %s; retrying in %.1fs", stream.name, exc, delay)
                self._pause(delay)
                continue
            except ClusterUnreachableError as exc:
                if self._halt.is_set():
                    raise _Halted from None
                if stream.lines:
                    failures = strikes = 0
                failures += 1
                # A watch that was answered and then cut is the connection's trouble; one
                # that gets no answer while the server answers others is the kind's.
                if not stream.opened and self._cluster.answers():
                    strikes += 1
                    if strikes >= self._max_failures:
                        self._send(("problem", stream, Problem(
                            kind, f"not watched: {exc} ({strikes} times in a row while the "
                            "API server answers other requests)", "watch-failed")))
                        return
                delay = self._delay(failures)
                log.info("watch of %s: %s; resuming from %s in %.1fs", stream.name, exc,
                         stream.position, delay)
                self._pause(delay)
                continue
            except ClusterError as exc:
                if self._halt.is_set():
                    raise _Halted from None
                failures += 1
                strikes += 1
                if strikes >= self._max_failures:
                    self._send(("problem", stream, Problem(kind, f"not watched: {exc}",
                                                           "watch-failed")))
                    return
                self._pause(self._delay(failures))
                continue
            if stream.lines == 0 and time.monotonic() - started < SHORT_WATCH:
                # The reflector's "very short watch": ended at once, nothing said. Back off.
                failures += 1
                self._pause(self._delay(failures))
            else:
                failures = strikes = 0

    def _relist(self, stream: _Stream) -> None:
        """List the stream's kind (and namespace), hand on what it holds, then LISTED."""
        while not self._list_slots.acquire(timeout=0.1):
            if self._halt.is_set():
                raise _Halted
        try:
            self._list(stream)
        finally:
            self._list_slots.release()

    def _list(self, stream: _Stream) -> None:
        prior = stream.handed
        floor = _rv_int(prior)  # versions up to it were handed on before the list
        listed: dict[ResourceKey, str] = {}
        before: dict[ResourceKey, str] = {}  # what attempts before a restart handed on
        list_rv = ""
        ahead: dict[str, int] = {}
        for page in self._cluster.list_pages(stream.resource, stats=self._stats,
                                             namespace=stream.namespace, rehand=True,
                                             sleep=self._pause):
            if self._halt.is_set():
                raise _Halted
            if page.restarted:
                # An expired continue token: the list starts over at a newer
                # resourceVersion, one consistent list again; what the first attempt
                # handed on at the same version is not handed on twice.
                before.update(listed)
                listed, ahead, list_rv = {}, {}, ""
            list_rv = list_rv or page.resource_version
            base = _rv_int(list_rv)
            for item in page.items:
                meta = item.get("metadata") or {}
                if stream.filtering and not namespace_in_scope(
                        str(meta.get("namespace") or ""), self._scope):
                    continue
                key = ResourceKey.of(item)
                rv = str(meta.get("resourceVersion") or "")
                listed[key] = rv
                if before.get(key) == rv:
                    continue
                version = _rv_int(rv)
                if version is not None:
                    if floor is not None and version <= floor:
                        continue
                    if base is not None and version > base:
                        ahead[f"{key.namespace}/{key.name}"] = version
                self._send(("listed", stream, "ADDED", item, prior, None))
        if not list_rv:
            raise ClusterError(f"{stream.resource.group_kind}: the list of "
                               f"{stream.resource.path(stream.namespace)} carried no "
                               "resourceVersion to watch from")
        stream.position, stream.handed, stream.ahead = list_rv, "", ahead
        self._send(("event", stream, "LISTED", None, list_rv, frozenset(listed)))

    def _watch(self, stream: _Stream) -> None:
        """One watch request from the stream's position, read to its end."""
        timeout = int(self._watch_timeout * (1.0 + random.random()))
        query = [("watch", "1"), ("allowWatchBookmarks", "true"),
                 ("resourceVersion", stream.position), ("timeoutSeconds", str(timeout))]
        path = stream.resource.path(stream.namespace)
        stream.lines, stream.opened = 0, False
        opened = self._cluster.open_watch(
            path, query, read_timeout=timeout + self._cluster.config.timeout_seconds)
        stream.opened = True
        with self._open_lock:
            if self._halt.is_set():
                opened.close()
                raise _Halted
            self._open.add(opened)
        api_version, kind_name = stream.resource.api_version, stream.resource.kind
        try:
            for line in opened.lines():
                stream.lines += 1
                try:
                    event = orjson.loads(line)
                except orjson.JSONDecodeError:
                    raise ClusterError(f"{stream.name}: the watch sent a line that is not "
                                       f"JSON: {line[:80]!r}") from None
                kind = event.get("type")
                obj = event.get("object") or {}
                if kind == "ERROR":
                    raise APIStatusError.of_status(obj)
                rv = str((obj.get("metadata") or {}).get("resourceVersion") or "")
                if kind == "BOOKMARK":
                    if rv:
                        stream.advance(rv)
                        self._send(("event", stream, "BOOKMARK", None, rv, None))
                    continue
                if kind not in ("ADDED", "MODIFIED", "DELETED"):
                    log.info("watch of %s: ignoring an event of type %r", stream.name, kind)
                    continue
                replayed = bool(stream.ahead) and stream.replayed(obj, rv)
                stream.advance(rv)
                if replayed:
                    continue
                if stream.filtering and not namespace_in_scope(
                        str((obj.get("metadata") or {}).get("namespace") or ""), self._scope):
                    continue
                obj["apiVersion"] = api_version
                obj["kind"] = kind_name
                self._send(("event", stream, kind, obj, rv, None))
        finally:
            with self._open_lock:
                self._open.discard(opened)
            opened.close()


# ---------------------------------------------------------------------- helpers


def _rv_int(rv: str) -> int | None:
    """A resourceVersion as a number, when it is one (etcd's revisions are)."""
    return int(rv) if rv.isdigit() and len(rv) < 40 else None


def _parse_parts(saved: str) -> dict[str, str]:
    """``ns1=rv1,ns2=rv2`` (a kind watched namespace by namespace) as a mapping."""
    parts: dict[str, str] = {}
    for item in saved.split(","):
        ns, sep, rv = item.partition("=")
        if sep and ns and rv and rv != "0":
            parts[ns] = rv
    return parts


def _expired(exc: APIStatusError) -> bool:
    # Servers up to 1.17 said Gone, later ones Expired; both are 410 (reflector.go).
    return exc.status == 410 or exc.reason in ("Expired", "Gone")


def _too_large(exc: APIStatusError) -> bool:
    # A position ahead of the server (a restored etcd, a lagging cache): the reflector
    # lists again from the newest state.
    return "too large resource version" in exc.api_message.lower()


def _forbidden(stream: _Stream, exc: APIStatusError) -> str:
    res = stream.resource
    name = f"{res.plural}.{res.group}" if res.group else res.plural
    where = f"in namespace {stream.namespace}" if stream.namespace else "cluster-wide"
    return (f"not watched: no permission to watch {name} {where} (403 forbidden: the RBAC "
            f"verb 'watch' on resource '{name}' {where} is missing). The API server said: "
            f"{exc.api_message}")
