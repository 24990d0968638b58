"""API audit events as a change source of the watch: a tailed audit log and the webhook.

* ``watch.audit-log``: kube-apiserver's ``--audit-log-path`` file, followed across rotation
  (:class:`auditor.live.audittail.AuditTail`) from the position the ledger recorded with the
  file's last events, so a restarted watch neither skips nor repeats a line. Read every
  ``watch.audit-poll-seconds``; each read is one ledger write with its position.
* ``watch.webhook-port``: kube-apiserver's audit webhook backend POSTs ``EventList``
  batches here (:class:`auditor.web.auditwebhook.AuditWebhook`), authenticated by a bearer
  token or a client certificate; a batch is answered only once it is in the ledger.

Both record through :meth:`auditor.ledger.Ledger.record_audit_events` (idempotent by
auditID: the same request from both sources is one row). When a source has nothing new it
still writes a heartbeat now and then, so that the report can tell a quiet API server from a
source that stopped delivering (:mod:`auditor.ledger.completeness`).
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Mapping
from typing import Any

from auditor.config import Config
from auditor.errors import AuditorError
from auditor.ledger.auditevents import HEARTBEAT_SECONDS
from auditor.live.audittail import AuditTail
from auditor.web.access import BearerToken, tls_context
from auditor.web.auditwebhook import AuditWebhook, mtls_context

from .writer import LedgerWriter

log = logging.getLogger(__name__)

# Events per read of the log: one ledger write each; bounds what is held at once.
READ_EVENTS = 5000
# kube-apiserver's batches (400 events, ~1.5 KB each at Metadata) are well under this; with
# 32 connections it bounds what bodies being read can hold at once to 512 MiB.
WEBHOOK_MAX_BODY = 16 << 20


class AuditSources:
    """The configured audit sources of one watch, started and stopped together."""

    def __init__(self, cfg: Config, writer: LedgerWriter, kinds: Mapping[tuple[str, str], str],
                 stop: threading.Event) -> None:
        self._cfg = cfg
        self._writer = writer
        self._kinds = dict(kinds)
        self._stop = stop
        self._halt = threading.Event()
        self.problems: list[str] = []
        self._tail_thread: threading.Thread | None = None
        self.webhook: AuditWebhook | None = None
        wc = cfg.watch
        if wc.audit_log:
            self._tail_thread = threading.Thread(target=self._follow, args=(wc.audit_log,),
                                                 name="watch-audit-log", daemon=True)
        if wc.webhook_port:
            self.webhook = AuditWebhook(self._record_webhook, host=wc.webhook_host,
                                        port=wc.webhook_port, path=wc.webhook_path,
                                        token=BearerToken.from_file(wc.webhook_token_file)
                                        if wc.webhook_token_file else None,
                                        tls=_webhook_tls(cfg), max_body=WEBHOOK_MAX_BODY)

    def start(self) -> None:
        if self._tail_thread is not None:
            self._tail_thread.start()
        if self.webhook is not None:
            self.webhook.start()
            log.info("watch: audit webhook on %s", self.webhook.url)

    def stop(self) -> None:
        self._halt.set()
        if self.webhook is not None:
            self.webhook.stop()
        if self._tail_thread is not None and self._tail_thread.is_alive():
            self._tail_thread.join(timeout=30.0)

    # ---------------------------------------------------------------------- webhook

    def _record_webhook(self, events: list[dict[str, Any]]) -> int:
        with self._writer.open() as ledger:
            return ledger.record_audit_events(events, source="webhook", kinds=self._kinds)

    # --------------------------------------------------------------------- log file

    def _stopping(self) -> bool:
        return self._halt.is_set() or self._stop.is_set()

    def _follow(self, path: str) -> None:
        """Follow the log until stopped; a ledger that cannot be written is retried from
        the last recorded position after a pause (nothing read is lost: it is read again)."""
        while not self._stopping():
            try:
                self._follow_from_ledger(path)
                return
            except AuditorError as exc:
                self._problem(f"audit log {path}: not recorded, retrying: {exc}")
                self._halt.wait(self._cfg.watch.backoff_max_seconds)

    def _follow_from_ledger(self, path: str) -> None:
        source = f"file:{path}"
        with self._writer.open() as ledger:
            position = ledger.audit_position(source)
        told: set[str] = set()
        last_write = 0.0
        with AuditTail(path, position) as tail:
            while not self._stopping():
                batch = tail.read(READ_EVENTS)
                for problem in batch.problems:
                    if problem not in told:
                        told.add(problem)
                        self._problem(problem)
                # Nothing new still writes now and then: a heartbeat, the source is alive.
                if batch.events or time.monotonic() - last_write >= HEARTBEAT_SECONDS:
                    with self._writer.open() as ledger:
                        ledger.record_audit_events(batch.events, source=source,
                                                   position=batch.position, kinds=self._kinds)
                    last_write = time.monotonic()
                if len(batch.events) < READ_EVENTS:
                    self._halt.wait(self._cfg.watch.audit_poll_seconds)

    def _problem(self, message: str) -> None:
        log.warning("watch: %s", message)
        self.problems.append(message)


def _webhook_tls(cfg: Config) -> ssl.SSLContext | None:
    wc = cfg.watch
    if not wc.webhook_tls_cert_file:
        return None
    if wc.webhook_client_ca_file:
        # Every configured credential is required: a certificate signed by this CA, and the
        # token as well when one is set.
        return mtls_context(wc.webhook_tls_cert_file, wc.webhook_tls_key_file,
                            wc.webhook_client_ca_file)
    return tls_context(wc.webhook_tls_cert_file, wc.webhook_tls_key_file)
