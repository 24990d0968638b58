"""The receiver of kube-apiserver's audit webhook backend: ``EventList`` POSTs, authenticated,
recorded into the ledger before they are acknowledged.

kube-apiserver (``--audit-webhook-config-file``, a kubeconfig naming this receiver's URL and
the credentials to present) POSTs ``audit.k8s.io/v1`` ``EventList`` bodies as JSON, up to
``--audit-webhook-batch-max-size`` (400) events each in ``batch`` mode, one event each in
``blocking`` mode. It treats any answer but 2xx as a failure: it retries (following
``Retry-After``) and, in the end, drops the batch. So this receiver answers 200 only once the
request's events are committed by the :class:`AuditSink` (by default :class:`LedgerSink`:
:meth:`auditor.ledger.Ledger.record_audit_events`, idempotent by ``auditID``, chained, Secrets
redacted); whatever it cannot commit it answers 503 with ``Retry-After``, never 200. A
delivery repeated after a lost answer is recorded once.

Throughput: one writer thread drains what the handlers accepted and commits it through the
sink in as few calls as it can (every request that arrived while the previous commit ran, up
to ``max_flush_events``): one ledger open and one transaction per 2,000 events instead of
one per request. A request waits for the commit that holds its events.

Bounds, so that a burst or a hostile client costs bounded memory and threads:

* at most ``max_connections`` connections are served at once (a semaphore taken before a
  connection gets its thread; the others wait in the listen backlog);
* a request (TLS handshake, headers and body; for a kept-alive connection also the idle time
  before it) must arrive within ``read_timeout`` seconds in total, or the connection is cut:
  a client trickling bytes holds one slot that long at most;
* the body needs a ``Content-Length`` (411 otherwise; chunked bodies are refused) of at most
  ``max_body`` bytes (413);
* at most ``max_pending_events`` events are accepted but not yet committed; a request beyond
  that waits for room, and answers 503 with ``Retry-After`` if none comes within
  ``commit_timeout`` (which also bounds the wait for the commit itself: kube-apiserver gives
  a webhook call 30 s). Pending requests are held as their body bytes, not as parsed objects.

What is refused, before anything is recorded: another path (404), another method (405), a
missing or wrong bearer token (401), a body that is not JSON or not an ``audit.k8s.io/v1``
``EventList`` or ``Event`` (400, with a one-line reason). Answers are ``v1`` ``Status``
objects, as the Kubernetes REST client expects; a 503's carries ``retryAfterSeconds`` (the
client retries only then). The token and the events are never logged.

Authentication is required: a bearer token (:class:`~.access.BearerToken`, re-read when its
file changes), or a TLS context that requires client certificates (:func:`mtls_context`:
the webhook kubeconfig's ``client-certificate``/``client-key``), or both.
"""

from __future__ import annotations

import collections
import http
import logging
import socket
import ssl
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

import orjson

from auditor.errors import AuditorError, ConfigError
from auditor.ledger import Ledger, backend
from auditor.ledger.backend import StoreLedger

from .access import BearerToken, tls_context

if TYPE_CHECKING:
    from auditor.config import Config

log = logging.getLogger("auditor.web.auditwebhook")

API_VERSION = "audit.k8s.io/v1"
SOURCE = "webhook"  # the ledger's name for what this receiver delivers
# Events one sink call commits at most: a burst is absorbed in few ledger opens, while the
# parsed events of one flush (the only time events are held as objects) stay bounded. The
# ledger commits them in transactions of 2,000 (:data:`auditor.ledger.auditevents.CHUNK`).
MAX_FLUSH_EVENTS = 20_000
# Seconds a 503 asks the sender to wait: for room (a burst drains in about a second) and
# after a failed commit (the ledger may be locked by a run for a while).
RETRY_BUSY = 1
RETRY_FAILED = 5
# A body refused before it was read (wrong token, path, encoding) is read and dropped up to
# this size, so that the sender gets the answer on a clean connection; beyond it the
# connection is closed instead.
DRAIN_LIMIT = 1 << 20
# How often the watchdog looks for connections past their deadline.
_WATCH_INTERVAL = 0.1


class AuditSink(Protocol):
    """What receives the decoded events: records them, returns how many were new; may raise
    :class:`~auditor.errors.AuditorError` (then none of them is acknowledged)."""

    def __call__(self, events: list[dict[str, Any]]) -> int: ...


class LedgerSink:
    """The default sink: opens the ledger per flush (taking the writer lock, waiting up to
    ``lock_wait`` seconds for a ``run`` or the watch loop holding it) and records the events
    with source ``webhook``. Not kept open: the other writers need the lock between flushes.
    ``kinds`` maps ``(apiGroup, resource)`` to the kind for events that carry no object
    (Metadata level), as discovery knows it."""

    def __init__(self, ledger_path: str | Path | StoreLedger, *, tool_version: str = "",
                 config_hash: str = "", lock_wait: float = 60.0,
                 signing_key_file: str | None = None, sign: bool = True,
                 kinds: Mapping[tuple[str, str], str] | None = None) -> None:
        # A file, or one cluster's ledger in the fleet store (its URL, cluster, password).
        self.ledger_path: Path | StoreLedger = (
            ledger_path if isinstance(ledger_path, StoreLedger) else
            backend.as_target(ledger_path))
        self.tool_version = tool_version
        self.config_hash = config_hash
        self.lock_wait = lock_wait
        self.signing_key_file = signing_key_file
        self.sign = sign
        self.kinds = dict(kinds or {})

    @classmethod
    def configured(cls, cfg: Config, *, tool_version: str = "",
                   kinds: Mapping[tuple[str, str], str] | None = None) -> LedgerSink:
        """The sink writing the configured ledger (``ledger.url`` + ``ledger.cluster``, else
        ``ledger.path``) as every other writer does: its signing key, ``ledger.sign``, its
        lock wait."""
        from auditor.ledger import keyfile

        target = backend.configured_ledger(cfg.ledger)
        return cls(target, tool_version=tool_version, config_hash=cfg.digest(),
                   lock_wait=cfg.ledger.lock_wait_seconds, sign=cfg.ledger.sign,
                   signing_key_file=keyfile.signing_key_file(
                       cfg.ledger, backend.key_location(target), create=True),
                   kinds=kinds)

    def __call__(self, events: list[dict[str, Any]]) -> int:
        where, store = backend.location(self.ledger_path)
        with Ledger.open(where, tool_version=self.tool_version,
                         config_hash=self.config_hash, signing_key_file=self.signing_key_file,
                         lock_wait=self.lock_wait, sign=self.sign, **store) as ledger:
            return ledger.record_audit_events(events, source=SOURCE, kinds=self.kinds or None)


def mtls_context(cert_file: str | Path, key_file: str | Path,
                 client_ca_file: str | Path) -> ssl.SSLContext:
    """:func:`~.access.tls_context` that also requires a client certificate signed by
    ``client_ca_file`` (PEM): the webhook kubeconfig's ``client-certificate`` then
    authenticates kube-apiserver."""
    context = tls_context(cert_file, key_file)
    try:
        context.load_verify_locations(cafile=str(client_ca_file))
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(f"audit webhook: cannot use the client CA {client_ca_file}: "
                          f"{getattr(exc, 'reason', None) or getattr(exc, 'strerror', None) or exc}"
                          ) from None
    context.verify_mode = ssl.CERT_REQUIRED
    return context


class Rejected(AuditorError):
    """A request refused with ``status`` and a one-line ``reason`` (sent back, logged)."""

    def __init__(self, status: int, reason: str, *, retry_after: int | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.retry_after = retry_after


def _shown(value: object) -> str:
    """A value of the body in a reason: short, one line (repr escapes newlines)."""
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"


def decode(body: bytes) -> list[dict[str, Any]]:
    """The events of a webhook body: the items of an ``audit.k8s.io/v1`` ``EventList``, or
    one ``Event``. Raises :class:`Rejected` (400) naming what is wrong."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        # Position only: orjson's messages and the body itself stay out of answers and logs.
        raise Rejected(400, f"the body is not JSON (line {exc.lineno}, column {exc.colno})"
                       ) from None
    if not isinstance(doc, dict):
        raise Rejected(400, "the body is not a JSON object")
    kind, api_version = doc.get("kind"), doc.get("apiVersion")
    if api_version != API_VERSION:
        raise Rejected(400, f"apiVersion {_shown(api_version)}: expected {API_VERSION}")
    if kind == "Event":
        return [doc]
    if kind != "EventList":
        raise Rejected(400, f"kind {_shown(kind)}: expected EventList or Event")
    items = doc.get("items")
    if items is None:
        return []
    if not isinstance(items, list):
        raise Rejected(400, "items is not a list")
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise Rejected(400, f"items[{i}] is not an object")
        # kube-apiserver's items carry no kind/apiVersion of their own; if they do, they
        # must be events.
        if item.get("kind", "Event") != "Event" or \
                item.get("apiVersion", API_VERSION) != API_VERSION:
            raise Rejected(400, f"items[{i}] is a {_shown(item.get('kind'))} of "
                                f"{_shown(item.get('apiVersion'))}: expected Event of "
                                f"{API_VERSION}")
    return items


@dataclass(frozen=True)
class WebhookStats:
    """What the receiver did since it started. ``accepted_*`` counts requests answered 200
    and their events; ``rejected`` counts every other answer by status; ``committed_events``
    the events of successful sink calls (``new_events`` of them were new to the sink),
    ``commit_batches``/``failed_batches`` those calls."""

    accepted_requests: int = 0
    accepted_events: int = 0
    rejected: Mapping[int, int] = field(default_factory=dict)
    committed_events: int = 0
    new_events: int = 0
    commit_batches: int = 0
    failed_batches: int = 0
    pending_events: int = 0


_QUEUED, _FLUSHING, _DONE = "queued", "flushing", "done"


class _Ticket:
    """One accepted request's events (as their body bytes) on their way to the sink."""

    __slots__ = ("body", "count", "done", "ok", "state")

    def __init__(self, body: bytes, count: int) -> None:
        self.body = body
        self.count = count
        self.state = _QUEUED
        self.ok = False
        self.done = threading.Event()


class AuditWebhook:
    """The receiver: binds at construction (so :attr:`port` and :attr:`url` are known),
    serves from :meth:`start` in background threads, :meth:`stop` to end."""

    def __init__(self, sink: AuditSink, *, host: str = "0.0.0.0", port: int = 8443,
                 token: BearerToken | None = None, tls: ssl.SSLContext | None = None,
                 path: str = "/audit", max_body: int = 64 << 20,
                 max_pending_events: int = 50_000, max_connections: int = 32,
                 read_timeout: float = 30.0, commit_timeout: float = 25.0,
                 max_flush_events: int = MAX_FLUSH_EVENTS) -> None:
        if token is None and (tls is None or tls.verify_mode != ssl.CERT_REQUIRED):
            # Anyone able to connect could otherwise write forged "audit events" into the
            # tamper-evident record.
            raise ConfigError("audit webhook: no authentication configured: give a bearer "
                              "token, or TLS that requires client certificates")
        for name, value in (("max_body", max_body), ("max_pending_events", max_pending_events),
                            ("max_connections", max_connections),
                            ("max_flush_events", max_flush_events)):
            if value < 1:
                raise ConfigError(f"audit webhook: {name} must be at least 1, not {value}")
        if read_timeout <= 0 or commit_timeout <= 0:
            raise ConfigError("audit webhook: read_timeout and commit_timeout must be positive")
        if not path.startswith("/"):
            raise ConfigError(f"audit webhook: path {path!r} must start with /")
        if token is not None and tls is None and host not in ("127.0.0.1", "::1", "localhost"):
            log.warning("audit webhook: the bearer token travels in clear text (no TLS)")
        self.sink = sink
        self.host = host
        self.token = token
        self.tls = tls
        self.path = path
        self.max_body = max_body
        self.max_pending_events = max_pending_events
        self.read_timeout = read_timeout
        self.commit_timeout = commit_timeout
        self.max_flush_events = max_flush_events
        self._cond = threading.Condition()
        self._queue: collections.deque[_Ticket] = collections.deque()
        self._pending = 0
        self._closing = False
        self._counts: dict[str, int] = collections.Counter()
        self._rejected: dict[int, int] = collections.Counter()
        self._writer: threading.Thread | None = None
        self._serving: threading.Thread | None = None
        try:
            self._server = _Server(self, (host, port), max_connections)
        except OSError as exc:
            raise ConfigError(f"audit webhook: cannot listen on {host}:{port}: "
                              f"{exc.strerror or exc}") from None

    # -------------------------------------------------------------------- the outside

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """The URL to POST to from this machine (a wildcard host reads as loopback)."""
        host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(self.host, self.host)
        if ":" in host:
            host = f"[{host}]"
        return f"{'https' if self.tls is not None else 'http'}://{host}:{self.port}{self.path}"

    @property
    def stats(self) -> WebhookStats:
        with self._cond:
            c = self._counts
            return WebhookStats(
                accepted_requests=c["accepted_requests"], accepted_events=c["accepted_events"],
                rejected=dict(self._rejected), committed_events=c["committed_events"],
                new_events=c["new_events"], commit_batches=c["commit_batches"],
                failed_batches=c["failed_batches"], pending_events=self._pending)

    def start(self) -> None:
        if self._serving is not None:
            return
        self._writer = threading.Thread(target=self._drain, name="audit-webhook-writer",
                                        daemon=True)
        self._writer.start()
        self._server.start_watchdog()
        self._serving = threading.Thread(target=self._server.serve_forever,
                                         kwargs={"poll_interval": 0.1},
                                         name="audit-webhook-accept", daemon=True)
        self._serving.start()
        log.info("audit webhook: listening on %s", self.url)

    def stop(self) -> None:
        """Stop accepting, answer every request already read (its events committed, or a
        503), commit what was accepted, and join the threads."""
        server = self._server
        server.stopping.set()
        if self._serving is not None:
            server.shutdown()
            self._serving.join()
        server.server_close()
        # Connections reading a request (or idle between requests) are cut: nothing of
        # theirs was accepted. Those waiting for a commit get their answer.
        server.cut_readers()
        server.join_connections(self.commit_timeout + self.read_timeout + 5)
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._writer is not None:
            self._writer.join()
        server.stop_watchdog()
        self._serving = None

    def __enter__(self) -> AuditWebhook:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------- handlers' side

    def _count(self, **counts: int) -> None:
        with self._cond:
            for name, n in counts.items():
                self._counts[name] += n

    def _rejection(self, status: int) -> None:
        with self._cond:
            self._rejected[status] += 1

    def _submit(self, body: bytes, count: int) -> None:
        """Queue a request's ``count`` events (its body) and return once they are committed;
        raises :class:`Rejected` (503) when there is no room or no commit in time."""
        ticket = _Ticket(body, count)
        deadline = time.monotonic() + self.commit_timeout
        with self._cond:
            # A request larger than the whole allowance still goes in, alone.
            while self._pending and self._pending + count > self.max_pending_events:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise Rejected(503, f"busy: {self._pending} events wait to be recorded",
                                   retry_after=RETRY_BUSY)
                self._cond.wait(left)
            self._pending += count
            self._queue.append(ticket)
            self._cond.notify_all()
        if ticket.done.wait(max(0.0, deadline - time.monotonic())) and ticket.ok:
            return
        with self._cond:
            if ticket.state == _DONE and ticket.ok:
                return  # committed just as the wait ran out
            if ticket.state == _QUEUED:
                # Not taken by the writer yet: withdrawn, so that it is not committed after
                # the sender was told it failed (its retry would record it anyway).
                self._queue.remove(ticket)
                self._pending -= count
                self._cond.notify_all()
        if ticket.state == _DONE and not ticket.ok:
            raise Rejected(503, "not recorded: the ledger could not be written; send again",
                           retry_after=RETRY_FAILED)
        # Still being committed: not acknowledged; a retry is recorded once (auditID).
        raise Rejected(503, "not recorded in time; send again", retry_after=RETRY_FAILED)

    # --------------------------------------------------------------------- writer

    def _drain(self) -> None:
        """The writer: takes every queued request (up to ``max_flush_events``), commits them
        in one sink call, tells their handlers; until stopped and empty."""
        while True:
            with self._cond:
                while not self._queue:
                    if self._closing:
                        return
                    self._cond.wait()
                batch: list[_Ticket] = []
                size = 0
                while self._queue and (not batch or
                                       size + self._queue[0].count <= self.max_flush_events):
                    ticket = self._queue.popleft()
                    ticket.state = _FLUSHING
                    batch.append(ticket)
                    size += ticket.count
            ok, new = self._commit(batch, size)
            with self._cond:
                self._pending -= size
                if ok:
                    self._counts["committed_events"] += size
                    self._counts["new_events"] += new
                    self._counts["commit_batches"] += 1
                else:
                    self._counts["failed_batches"] += 1
                for ticket in batch:
                    ticket.ok, ticket.state = ok, _DONE
                    ticket.body = b""  # answered from here on: the bytes can go
                    ticket.done.set()
                self._cond.notify_all()

    def _commit(self, batch: list[_Ticket], size: int) -> tuple[bool, int]:
        try:
            events = [event for ticket in batch for event in decode(ticket.body)]
            return True, self.sink(events)
        except AuditorError as exc:
            log.warning("audit webhook: %d events from %d requests not recorded: %s",
                        size, len(batch), exc)
        except Exception:  # a bug or SQLite trouble: answered 503, the details logged
            log.exception("audit webhook: %d events from %d requests not recorded",
                          size, len(batch))
        return False, 0


class _Server(ThreadingHTTPServer):
    """The HTTP(S) server: a bounded number of connection threads, each connection's TLS
    handshake in its own thread, and a watchdog cutting connections past their deadline."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # connections beyond max_connections wait here

    def __init__(self, hook: AuditWebhook, address: tuple[str, int],
                 max_connections: int) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.hook = hook
        self.stopping = threading.Event()
        self._slots = threading.BoundedSemaphore(max_connections)
        self._guard = threading.Lock()
        # connection thread -> [socket fd, deadline (monotonic) or None while not reading]
        self._deadlines: dict[int, list[Any]] = {}
        self._conn_threads: set[threading.Thread] = set()
        self._watch_stop = threading.Event()
        self._watchdog: threading.Thread | None = None
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        # Wait for a free slot here, in the accepting thread: further connections stay in the
        # listen backlog instead of each getting a thread.
        while not self._slots.acquire(timeout=0.1):
            if self.stopping.is_set():
                self.shutdown_request(request)
                return
        thread = threading.Thread(target=self._connection, args=(request, client_address),
                                  name="audit-webhook-conn", daemon=True)
        with self._guard:
            self._conn_threads.add(thread)
        try:
            thread.start()
        except RuntimeError:  # no thread to be had: refuse this one, keep serving
            log.warning("audit webhook: cannot start a connection thread")
            with self._guard:
                self._conn_threads.discard(thread)
            self._slots.release()
            self.shutdown_request(request)

    def _connection(self, request: socket.socket, client_address: Any) -> None:
        me = threading.get_ident()
        with self._guard:
            self._deadlines[me] = [request.fileno(),
                                   time.monotonic() + self.hook.read_timeout]
        conn = request
        try:
            request.settimeout(self.hook.read_timeout)
            if self.hook.tls is not None:
                try:
                    conn = self.hook.tls.wrap_socket(request, server_side=True)
                except (ssl.SSLError, OSError) as exc:
                    log.debug("audit webhook: TLS handshake with %s failed: %s",
                              client_address[0], exc)
                    return
            self.finish_request(conn, client_address)
        except Exception:
            log.debug("audit webhook: connection from %s failed", client_address[0],
                      exc_info=True)
        finally:
            # Forget the descriptor before it is closed: the watchdog must never cut a
            # reused one.
            with self._guard:
                del self._deadlines[me]
            self.shutdown_request(conn)
            if conn is not request:
                request.close()  # detached by the TLS socket: releases nothing twice
            self._slots.release()
            with self._guard:
                self._conn_threads.discard(threading.current_thread())

    def deadline(self, seconds: float | None) -> None:
        """This connection must deliver its next request within ``seconds`` (None: it is
        not reading now)."""
        with self._guard:
            entry = self._deadlines.get(threading.get_ident())
            if entry is not None:
                entry[1] = None if seconds is None else time.monotonic() + seconds

    def start_watchdog(self) -> None:
        self._watchdog = threading.Thread(target=self._watch, name="audit-webhook-watchdog",
                                          daemon=True)
        self._watchdog.start()

    def stop_watchdog(self) -> None:
        self._watch_stop.set()
        if self._watchdog is not None:
            self._watchdog.join()

    def _watch(self) -> None:
        while not self._watch_stop.wait(_WATCH_INTERVAL):
            self._cut(time.monotonic())

    def cut_readers(self) -> None:
        self._cut(float("inf"))

    def _cut(self, now: float) -> None:
        """Shut down every connection reading past its deadline: its thread's blocked read
        returns at once. (A socket timeout alone bounds each read, not the request.)"""
        with self._guard:
            for entry in self._deadlines.values():
                fd, deadline = entry
                if deadline is not None and deadline <= now:
                    entry[1] = None
                    _shutdown_fd(fd)

    def join_connections(self, timeout: float) -> None:
        end = time.monotonic() + timeout
        while True:
            with self._guard:
                threads = list(self._conn_threads)
            if not threads or time.monotonic() >= end:
                return
            threads[0].join(max(0.0, end - time.monotonic()))

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("audit webhook: connection from %s failed", client_address, exc_info=True)


def _shutdown_fd(fd: int) -> None:
    # A socket object over the same descriptor, detached again: shutdown acts on the
    # connection (whatever object the handler reads through, TLS or not), closes nothing.
    try:
        sock = socket.socket(fileno=fd)
    except OSError:
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        sock.detach()


class _Handler(BaseHTTPRequestHandler):
    """One connection's requests (HTTP/1.1, kept alive as Go's client does)."""

    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "drift-auditor"
    # Headers and body go out as two writes: without this, Nagle's algorithm and the
    # client's delayed ACK hold each answer back ~40 ms (one event per request in blocking
    # mode).
    disable_nagle_algorithm = True
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        pass  # request lines are noise here; what matters is logged by the handler

    def handle_expect_100(self) -> bool:
        # Refuse before the client sends the body (curl asks for bodies over 1 MB).
        try:
            self._check_headers()
        except Rejected as exc:
            self._answer(exc.status, exc.reason, retry_after=exc.retry_after, close=True)
            return False
        return super().handle_expect_100()

    def do_POST(self) -> None:
        hook = self.server.hook
        read = False
        try:
            length = self._check_headers()
            body = self.rfile.read(length) if length else b""
            if len(body) != length:
                # Cut (deadline) or closed mid-body: nobody to answer.
                self.close_connection = True
                return
            read = True
            self.server.deadline(None)  # from here on the time is ours, not the client's
            events = decode(body)
            if events:
                hook._submit(body, len(events))
        except Rejected as exc:
            # A body refused unread is still on the wire: a small one is read and dropped so
            # that the connection (and the answer) survive; a larger one closes it.
            keep = read or self._discard()
            self._answer(exc.status, exc.reason, retry_after=exc.retry_after, close=not keep)
            return
        hook._count(accepted_requests=1, accepted_events=len(events))
        self._answer(200, f"{len(events)} events recorded")

    def _discard(self) -> bool:
        """Read and drop an unread body of at most :data:`DRAIN_LIMIT` bytes; whether the
        connection can go on."""
        text = (self.headers.get("Content-Length") or "").strip()
        if self.headers.get("Transfer-Encoding") or not (text.isascii() and text.isdigit()) \
                or int(text) > DRAIN_LIMIT:
            return False
        left = int(text)
        while left:
            chunk = self.rfile.read(min(left, 1 << 16))
            if not chunk:
                return False
            left -= len(chunk)
        return True

    def _other(self) -> None:
        try:
            self._check_path()
            raise Rejected(405, f"{self.command} is not allowed: audit events are POSTed")
        except Rejected as exc:
            self._answer(exc.status, exc.reason, close=True)

    do_GET = do_HEAD = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_TRACE = _other

    def _check_path(self) -> None:
        if urlsplit(self.path).path != self.server.hook.path:
            raise Rejected(404, "no such path")

    def _check_headers(self) -> int:
        """The checks before the body is read; its length."""
        hook = self.server.hook
        self._check_path()
        if self.command != "POST":
            raise Rejected(405, f"{self.command} is not allowed: audit events are POSTed")
        if hook.token is not None and not hook.token.matches(
                self.headers.get("Authorization", "")):
            raise Rejected(401, "a valid bearer token is required")
        if self.headers.get("Transfer-Encoding"):
            raise Rejected(411, "the body needs a Content-Length (chunked bodies are refused)")
        text = self.headers.get("Content-Length")
        if text is None:
            raise Rejected(411, "the body needs a Content-Length")
        if not (text.strip().isascii() and text.strip().isdigit()):
            raise Rejected(400, "Content-Length is not a number")
        length = int(text)
        if length > hook.max_body:
            raise Rejected(413, f"the body is {length} bytes; at most {hook.max_body} "
                                f"are accepted")
        encoding = self.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            raise Rejected(415, "the body must not be compressed")
        return length

    def _answer(self, status: int, message: str, *, retry_after: int | None = None,
                close: bool = False) -> None:
        hook = self.server.hook
        if status != 200:
            hook._rejection(status)
            # The reason, never the body or the headers (the token).
            level = logging.DEBUG if status == 503 else logging.INFO
            log.log(level, "audit webhook: %d to %s: %s", status, self.client_address[0],
                    message)
        phrase = http.HTTPStatus(status).phrase
        status_obj: dict[str, Any] = {
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Success" if status == 200 else "Failure", "message": message,
            "reason": "" if status == 200 else phrase.replace(" ", ""), "code": status}
        if retry_after is not None:
            # The Kubernetes REST client retries a 5xx only when it suggests a delay.
            status_obj["details"] = {"retryAfterSeconds": retry_after}
        body = orjson.dumps(status_obj)
        close = close or self.server.stopping.is_set()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        if retry_after is not None:
            self.send_header("Retry-After", str(retry_after))
        if status == 401:
            self.send_header("WWW-Authenticate", 'Bearer realm="drift-auditor-audit"')
        if status == 405:
            self.send_header("Allow", "POST")
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        # The next request on this connection has read_timeout from now.
        self.server.deadline(hook.read_timeout)
