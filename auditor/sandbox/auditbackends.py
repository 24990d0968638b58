"""Where audit events go: kube-apiserver's log and webhook backends.

* ``plugin/pkg/audit/log`` (``--audit-log-path``, JSON format): each event as one JSON line,
  with its ``kind``/``apiVersion``.
* ``plugin/pkg/audit/webhook`` and ``buffered`` (``--audit-webhook-config-file``, a kubeconfig
  naming the receiver's ``server`` and the credentials to use): ``EventList`` bodies POSTed
  as JSON, in batches of at most ``--audit-webhook-batch-max-size`` (400) sent at least every
  ``--audit-webhook-batch-max-wait`` (30 s), or one request per event in ``blocking`` mode.
  The list's items are internal events converted with the list, so they carry no
  ``kind``/``apiVersion`` of their own.

Sandbox simplifications: no log rotation or ``legacy`` format; a failed POST is retried twice
(0.1 s, 0.2 s) and then counted in :attr:`WebhookBackend.failures` and dropped (kube-apiserver
backs off from 10 s).
"""

from __future__ import annotations

import base64
import http.client
import os
import pathlib
import ssl
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson
import yaml

from auditor.sandbox.auditpolicy import API_VERSION

# kube-apiserver's clients identify as the binary (rest.DefaultKubernetesUserAgent).
_USER_AGENT = "kube-apiserver/v1.35.0 (linux/amd64) kubernetes/66452049"


class LogBackend:
    """``--audit-log-path``: each event as one JSON line, flushed as written."""

    def __init__(self, path: str | pathlib.Path) -> None:
        self.path = pathlib.Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._file = self.path.open("ab")

    def process(self, event: dict[str, Any]) -> None:
        line = orjson.dumps({"kind": "Event", "apiVersion": API_VERSION, **event}) + b"\n"
        with self._lock:
            if not self._file.closed:
                self._file.write(line)
                self._file.flush()

    def close(self) -> None:
        with self._lock:
            self._file.close()


@dataclass(frozen=True)
class WebhookTarget:
    """Where and how to POST, from a kubeconfig (the cluster and user of its current context)."""

    url: str
    ssl_context: ssl.SSLContext | None
    headers: tuple[tuple[str, str], ...]

    @classmethod
    def from_kubeconfig(cls, path: str | pathlib.Path) -> WebhookTarget:
        config = yaml.safe_load(pathlib.Path(path).read_text(encoding="utf-8")) or {}
        base = pathlib.Path(path).parent
        contexts = {c.get("name"): c.get("context") or {} for c in config.get("contexts") or []}
        context = contexts.get(config.get("current-context")) or next(
            iter(contexts.values()), {})
        clusters = {c.get("name"): c.get("cluster") or {} for c in config.get("clusters") or []}
        users = {u.get("name"): u.get("user") or {} for u in config.get("users") or []}
        cluster = clusters.get(context.get("cluster")) or next(iter(clusters.values()), {})
        user = users.get(context.get("user")) or (next(iter(users.values()), {})
                                                  if not context else {})
        url = str(cluster.get("server") or "")
        if not url:
            raise ValueError(f"{path}: the audit webhook kubeconfig names no server")
        headers: list[tuple[str, str]] = []
        if user.get("token"):
            headers.append(("Authorization", f"Bearer {user['token']}"))
        elif user.get("username"):
            basic = base64.b64encode(
                f"{user['username']}:{user.get('password', '')}".encode()).decode()
            headers.append(("Authorization", f"Basic {basic}"))
        context_ssl = None
        if url.startswith("https://"):
            context_ssl = ssl.create_default_context()
            if cluster.get("insecure-skip-tls-verify"):
                context_ssl.check_hostname = False
                context_ssl.verify_mode = ssl.CERT_NONE
            elif cluster.get("certificate-authority-data"):
                context_ssl = ssl.create_default_context(cadata=base64.b64decode(
                    cluster["certificate-authority-data"]).decode())
            elif cluster.get("certificate-authority"):
                context_ssl = ssl.create_default_context(
                    cafile=str(base / cluster["certificate-authority"]))
            cert = _pem(user, "client-certificate", base)
            key = _pem(user, "client-key", base)
            if cert:
                _load_client_cert(context_ssl, cert, key)
        return cls(url, context_ssl, tuple(headers))


def _pem(user: Mapping[str, Any], key: str, base: pathlib.Path) -> bytes:
    if user.get(f"{key}-data"):
        return base64.b64decode(user[f"{key}-data"])
    if user.get(key):
        return (base / str(user[key])).read_bytes()
    return b""


def _load_client_cert(context: ssl.SSLContext, cert: bytes, key: bytes) -> None:
    # ssl loads client certificates from files only.
    fd, path = tempfile.mkstemp(prefix="sandbox-webhook-client-", suffix=".pem")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(cert + b"\n" + key)
        context.load_cert_chain(path)
    finally:
        os.unlink(path)


class WebhookBackend:
    """``--audit-webhook-config-file``: ``EventList`` POSTs, batched or one per event."""

    def __init__(self, target: WebhookTarget, *, mode: str = "batch", max_size: int = 400,
                 max_wait: float = 30.0) -> None:
        if mode not in ("batch", "blocking", "blocking-strict"):
            raise ValueError(f"unknown audit webhook mode {mode!r}")
        self.target = target
        self.mode = mode
        self.max_size = max(1, max_size)
        self.max_wait = max_wait
        self.failures = 0
        self.sent_batches = 0
        self._pending: list[dict[str, Any]] = []
        self._first_at = 0.0
        self._in_flight = 0
        self._flush_requested = False
        self._closed = False
        self._cond = threading.Condition()
        self._send_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        if mode == "batch":
            self._thread = threading.Thread(target=self._run, name="sandbox-audit-webhook",
                                            daemon=True)
            self._thread.start()

    def process(self, event: dict[str, Any]) -> None:
        if self.mode != "batch":
            self._post([event])
            return
        with self._cond:
            if self._closed:
                return
            if not self._pending:
                self._first_at = time.monotonic()
            self._pending.append(event)
            # the first event starts the max-wait clock; a full batch goes at once
            if len(self._pending) == 1 or len(self._pending) >= self.max_size:
                self._cond.notify_all()

    def flush(self, timeout: float = 10.0) -> None:
        """Send what is pending now; return once it has been sent (or given up on)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._flush_requested = True
            self._cond.notify_all()
            while self._pending or self._in_flight:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            self._flush_requested = False

    def close(self) -> None:
        self.flush()
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _due(self) -> bool:
        return bool(self._pending) and (
            len(self._pending) >= self.max_size or self._flush_requested or self._closed
            or time.monotonic() - self._first_at >= self.max_wait)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._due():
                    if self._closed:
                        return
                    self._cond.wait(self.max_wait - (time.monotonic() - self._first_at)
                                    if self._pending else None)
                batch = self._pending[:self.max_size]
                self._pending = self._pending[self.max_size:]
                self._first_at = time.monotonic()
                self._in_flight += 1
            try:
                self._post(batch)
            finally:
                with self._cond:
                    self._in_flight -= 1
                    self._cond.notify_all()

    def _post(self, events: Sequence[dict[str, Any]]) -> None:
        body = orjson.dumps({"kind": "EventList", "apiVersion": API_VERSION, "metadata": {},
                             "items": list(events)})
        split = urlsplit(self.target.url)
        path = (split.path or "/") + (f"?{split.query}" if split.query else "")
        headers = {"Content-Type": "application/json", "Accept": "application/json, */*",
                   "User-Agent": _USER_AGENT, **dict(self.target.headers)}
        with self._send_lock:
            for attempt in range(3):
                try:
                    conn: http.client.HTTPConnection
                    if split.scheme == "https":
                        conn = http.client.HTTPSConnection(split.hostname or "", split.port,
                                                           timeout=5,
                                                           context=self.target.ssl_context)
                    else:
                        conn = http.client.HTTPConnection(split.hostname or "", split.port,
                                                          timeout=5)
                    try:
                        conn.request("POST", path, body=body, headers=headers)
                        status = conn.getresponse().status
                    finally:
                        conn.close()
                    if 200 <= status < 300:
                        self.sent_batches += 1
                        return
                except OSError:
                    pass
                time.sleep(0.1 * (attempt + 1))
            self.failures += 1
