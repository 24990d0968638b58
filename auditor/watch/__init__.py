"""Watch mode: every change recorded as it happens, between the scheduled runs.

:func:`watch` is the loop (:mod:`.loop`): watch streams (:mod:`auditor.live.watch`) gathered
into batches (:mod:`.batches`), each judged and recorded as one watch run (:mod:`.judge`)
through one writer per process (:mod:`.writer`), and the API server's audit events from a
tailed log and the audit webhook recorded beside them (:mod:`.auditsources`).

Layer: above :mod:`auditor.pipeline` (whose per-object observation and settings it shares
with ``run``) and :mod:`auditor.web` (the webhook endpoint); below the CLI.
"""

from __future__ import annotations

from .loop import BatchReport, WatchOutcome, watch

__all__ = ["BatchReport", "WatchOutcome", "watch"]
