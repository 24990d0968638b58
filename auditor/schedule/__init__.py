"""Scheduled mode: one long-running process that runs drift-auditor commands on cron
schedules, each as a fresh child process, as a Kubernetes CronJob with
``concurrencyPolicy: Forbid`` would, so that one pod can hold the ledger's volume and run the
audits beside ``serve`` and ``watch``.

:func:`run_schedule` is the loop (:mod:`.loop`): the configured jobs with their parsed cron
expressions (:mod:`.jobs`), each run a child process with its deadline (:mod:`.child`).
The cron arithmetic is :mod:`auditor.support.cron`.

Layer: beside :mod:`auditor.watch`, below the CLI; it runs the CLI's commands only as child
processes, never by import.
"""

from __future__ import annotations

from .jobs import Job, select
from .loop import Outcome, run_schedule

__all__ = ["Job", "Outcome", "run_schedule", "select"]
