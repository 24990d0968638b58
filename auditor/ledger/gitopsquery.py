"""Read-only reads of what runs recorded about the GitOps controllers.

A run whose sources come from Argo CD or Flux (``sources: [{from: argocd}]``) keeps the
controllers' view in its counts under :data:`GITOPS_KEY` (:meth:`auditor.pipeline.GitopsView.counts`):
the derived sources, the skipped controller objects, each source's sync lag (Git ahead of the
commit the controller applied: ``behind`` commits since ``since``; -1 when the applied commit
is not in the ref's history) and the namespaces in scope no source claims. Runs without
controller sources have no such key. This module parses that dict (tolerantly: it is JSON
from the ledger) for the metrics (:mod:`auditor.ledger.metricsquery`), the report and the
Slack news (:mod:`auditor.outputs.alerts`), so the three read it the same way.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from . import schema

GITOPS_KEY = "gitops"
CONTROLLERS = ("argocd", "flux")


@dataclass(frozen=True, slots=True)
class Lag:
    """One source's sync lag as a run recorded it."""

    source: str
    owner: str
    ref: str
    applied: str
    head: str
    behind: int  # -1: the applied commit is not in the ref's history
    since: str = ""  # the first commit not applied (ISO 8601); '' when unknown


@dataclass(frozen=True, slots=True)
class GitopsRun:
    """The controllers' view of one run."""

    run_id: int
    cluster: str
    started_at: str
    status: str
    # (name, owner, via, ref, applied) of each derived source (the URL is left out: it may
    # carry credentials and no output needs it)
    sources: list[dict[str, str]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    lags: list[Lag] = field(default_factory=list)
    not_under_gitops: list[str] = field(default_factory=list)


def controller(source_name: str) -> str:
    """``argocd`` / ``flux`` from a derived source's name (``argocd:argocd/shop``)."""
    prefix, sep, _ = source_name.partition(":")
    return prefix if sep and prefix else "unknown"


def epoch(stamp: str | None) -> float | None:
    """An ISO 8601 time (``Z`` or an offset; naive is UTC) as Unix seconds; None if unreadable."""
    if not stamp:
        return None
    try:
        moment = datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _lag(raw: Mapping[str, Any]) -> Lag:
    return Lag(source=str(raw.get("source") or ""), owner=str(raw.get("owner") or ""),
               ref=str(raw.get("ref") or ""), applied=str(raw.get("applied") or ""),
               head=str(raw.get("head") or ""), behind=_int(raw.get("behind"), -1),
               since=str(raw.get("since") or ""))


def parse(run_id: int, cluster: str, started_at: str, status: str,
          counts: Mapping[str, Any] | None) -> GitopsRun | None:
    """The controllers' view in a run's ``counts``; None when the run had no controller
    sources."""
    raw = counts.get(GITOPS_KEY) if isinstance(counts, Mapping) else None
    if not isinstance(raw, Mapping):
        return None

    def rows(key: str) -> list[Mapping[str, Any]]:
        value = raw.get(key)
        return [r for r in value if isinstance(r, Mapping)] if isinstance(value, list) else []

    sources = [{k: str(s.get(k) or "") for k in ("name", "owner", "via", "ref", "applied")}
               for s in rows("sources")]
    skipped = [{"owner": str(s.get("owner") or ""), "reason": str(s.get("reason") or "")}
               for s in rows("skipped")]
    uncovered = raw.get("not_under_gitops")
    return GitopsRun(run_id=run_id, cluster=cluster, started_at=started_at, status=status,
                     sources=sources, skipped=skipped,
                     lags=[_lag(r) for r in rows("sync_lag")],
                     not_under_gitops=sorted({str(n) for n in uncovered})
                     if isinstance(uncovered, list) else [])


def _scheduled(conn: sqlite3.Connection) -> str:
    return "mode = 'run'" if schema.has_run_mode(conn) else "1 = 1"


_SELECT = "SELECT id, cluster, started_at, status, counts FROM runs"


def _row(row: tuple[Any, ...] | None) -> GitopsRun | None:
    if row is None:
        return None
    return parse(int(row[0]), str(row[1] or ""), str(row[2] or ""), str(row[3] or ""),
                 orjson.loads(row[4] or "{}"))


def latest(conn: sqlite3.Connection) -> GitopsRun | None:
    """The controllers' view of the newest complete scheduled run; None when that run did
    not read the controllers. Every run configured with controller sources records the view,
    so a newest complete run without one means the controllers are no longer the sources
    (and their last view is not the cluster's state). One row is read, never the history: a
    year of runs with their per-kind breakdowns would cost every scrape ~0.1 s to scan."""
    return _row(conn.execute(f"{_SELECT} WHERE status = 'complete' AND {_scheduled(conn)} "
                             f"ORDER BY id DESC LIMIT 1").fetchone())


def newly_lagging(conn: sqlite3.Connection, run_id: int) -> tuple[GitopsRun | None, list[Lag]]:
    """Run ``run_id``'s view and the sources behind Git in it whose owner was not behind in
    the scheduled run before it (complete or partial: a failed run saw nothing). A run
    before the controllers were read counts as nothing behind. ``(None, [])`` for a run
    without controller sources, a watch batch or a failed run."""
    row = conn.execute(f"{_SELECT} WHERE id = ? AND {_scheduled(conn)} "
                       f"AND status IN ('complete', 'partial')", (run_id,)).fetchone()
    now = _row(row)
    if now is None or not now.lags:
        return now, []
    before = _row(conn.execute(f"{_SELECT} WHERE id < ? AND {_scheduled(conn)} AND status IN "
                               f"('complete', 'partial') ORDER BY id DESC LIMIT 1",
                               (run_id,)).fetchone())
    lagging = {lag.owner for lag in before.lags} if before is not None else set()
    return now, [lag for lag in now.lags if lag.owner not in lagging]
