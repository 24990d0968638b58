"""Ledger records of auto-revert: every attempt to put Git's state back, on the chain.

One ``reverts`` row per attempt (schema step 4), chained like every other history row: what
(the object key and the action), why (the drift items, desired vs. previous live, Secret
values only as keyed hashes), how it went (``reverted``, ``dry-run``, ``failed``) and the
resourceVersions before and after. A run whose revert was refused as a whole (more objects
than the configured cap) records one ``revert_capped`` event instead.

Rows are written (and committed) as each attempt ends, not at the run's end: the cluster has
changed by then, and the ledger must say so even if the process dies before the run
finishes. Read helpers here serve the revert planner (failure backoff, dry-run dedup) and the
outputs (Slack, the report's remediation section).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from auditor.engine.records import ResourceKey

from . import chain, redact

if TYPE_CHECKING:
    from .store import Run

TABLE = "reverts"
RESULTS = ("reverted", "dry-run", "failed")


def _items(key: ResourceKey, items: Sequence[dict[str, Any]]) -> str:
    # The planner hands over items already redacted; redact again (last line of defence):
    # a Secret value must never reach SQLite.
    safe = [{**i, "desired": redact.drift_value(key, str(i.get("path", "")), i.get("desired")),
             "live": redact.drift_value(key, str(i.get("path", "")), i.get("live"))}
            for i in items]
    return chain.canonical(safe).decode()


def record(run: Run, key: ResourceKey, *, action: str, mode: str, result: str, reason: str,
           items: Sequence[dict[str, Any]] = (), desired_hash: str = "", live_hash: str = "",
           resource_version_before: str = "", resource_version_after: str = "",
           managers: Sequence[str] = (), error: str = "") -> int:
    """Append one attempt to the chain and commit it now; returns the row id."""
    if result not in RESULTS:
        raise ValueError(f"revert result {result!r}: expected one of {', '.join(RESULTS)}")
    run._check_open()
    batch = run._batch
    row_id = batch.chained(TABLE, {
        "run_id": run.id, "at": run.started_at, "grp": key.group, "kind": key.kind,
        "namespace": key.namespace, "name": key.name, "action": action, "mode": mode,
        "result": result, "reason": reason, "items": _items(key, items),
        "desired_hash": desired_hash, "live_hash": live_hash,
        "resource_version_before": resource_version_before,
        "resource_version_after": resource_version_after,
        "managers": chain.canonical(sorted(managers)).decode(), "error": error},
        run.started_at, run.id)
    run.ledger._write(batch)
    return row_id


def record_capped(run: Run, *, mode: str, planned: Sequence[ResourceKey], cap: int) -> None:
    """One chained event: this run planned more reverts than the cap and did none."""
    run._check_open()
    batch = run._batch
    batch.event("revert_capped", run.started_at, run.id, {
        "mode": mode, "cap": cap, "planned": len(planned),
        "keys": [str(k) for k in sorted(planned)]})
    run.ledger._write(batch)


@dataclass(frozen=True, slots=True)
class LastAttempt:
    """The newest attempt on one object, and the failures in a row that led up to it."""

    key: ResourceKey
    result: str
    mode: str
    at: str
    desired_hash: str
    live_hash: str
    failures: int


def last_attempts(conn: sqlite3.Connection) -> dict[ResourceKey, LastAttempt]:
    """Per object: its newest revert row and how many failures end its history.

    Bounded by the objects ever reverted, not by runs: one pass over the table's index.
    """
    out: dict[ResourceKey, LastAttempt] = {}
    streak: dict[ResourceKey, int] = {}
    for grp, kind, ns, name, result, mode, at, dh, lh in conn.execute(
            f"SELECT grp, kind, namespace, name, result, mode, at, desired_hash, live_hash "
            f"FROM {TABLE} ORDER BY id"):
        key = ResourceKey(grp, kind, ns, name)
        if result == "failed":
            streak[key] = streak.get(key, 0) + 1
        elif mode == "enforce":
            streak[key] = 0
        out[key] = LastAttempt(key, result, mode, at, dh or "", lh or "", streak.get(key, 0))
    return out


def history(conn: sqlite3.Connection, *, run_id: int | None = None,
            since: str | None = None) -> list[dict[str, Any]]:
    """Revert rows (newest last) for outputs: one run's, or every one since a time."""
    where: list[str] = []
    params: list[Any] = []
    if run_id is not None:
        where.append("run_id = ?")
        params.append(run_id)
    if since is not None:
        where.append("at >= ?")
        params.append(since)
    sql = (f"SELECT id, run_id, at, grp, kind, namespace, name, action, mode, result, reason, "
           f"items, desired_hash, live_hash, resource_version_before, resource_version_after, "
           f"managers, error FROM {TABLE}"
           + (f" WHERE {' AND '.join(where)}" if where else "") + " ORDER BY id")
    cols = ("id", "run_id", "at", "group", "kind", "namespace", "name", "action", "mode",
            "result", "reason", "items", "desired_hash", "live_hash",
            "resource_version_before", "resource_version_after", "managers", "error")
    out = []
    for row in conn.execute(sql, params):
        doc = dict(zip(cols, row, strict=True))
        doc["items"] = orjson.loads(doc["items"] or "[]")
        doc["managers"] = orjson.loads(doc["managers"] or "[]")
        out.append(doc)
    return out
