"""Read-only queries for ``drift-auditor serve`` (:mod:`auditor.web.serve`): one object's identity,
its versions (with what recorded each and whether it was transient) and its drifts. Everything else the UI shows comes from :mod:`.history`
(``runs``, ``drifts``, ``query``). Like the other readers, nothing here writes.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import orjson

from . import schema
from .completeness import transient_version_sql
from .dialect import dialect_of


def object_id(conn: sqlite3.Connection, group: str, kind: str, namespace: str,
              name: str) -> int | None:
    """The ledger's id of the object ``(group, kind, namespace, name)`` (namespace ``""`` for
    cluster-scoped objects), or ``None`` when the ledger never saw it."""
    row = conn.execute("SELECT id FROM objects WHERE grp = ? AND kind = ? AND namespace = ? "
                       "AND name = ?", (group, kind, namespace, name)).fetchone()
    return int(row[0]) if row else None


def versions(conn: sqlite3.Connection, oid: int, limit: int = 200) -> list[dict[str, Any]]:
    """The object's recorded versions, newest first (a version per content change), each
    with what recorded it (``detected_by``: a scheduled ``run`` or a ``watch`` batch) and
    whether it was ``transient`` (no scheduled run saw it as current, :mod:`.completeness`)."""
    watched = schema.has_run_mode(conn)
    mode = "r.mode" if watched else "'run'"
    transient = (transient_version_sql("v", "r", "o", dialect=dialect_of(conn)) if watched
                 else "0")
    out = []
    for vid, run_id, api_version, rv, content_hash, observed_at, deleted, by, fleeting in \
            conn.execute(
                f"SELECT v.id, v.run_id, v.api_version, v.resource_version, v.content_hash, "
                f"v.observed_at, v.deleted, {mode}, {transient} FROM object_versions v "
                f"JOIN runs r ON r.id = v.run_id JOIN objects o ON o.id = v.object_id "
                f"WHERE v.object_id = ? ORDER BY v.id DESC LIMIT ?", (oid, limit)):
        out.append({"id": vid, "run_id": run_id, "api_version": api_version or "",
                    "resource_version": rv or "", "content_hash": content_hash or "",
                    "observed_at": observed_at or "", "deleted": bool(deleted),
                    "detected_by": str(by), "transient": bool(fleeting)})
    return out


def object_drifts(conn: sqlite3.Connection, oid: int) -> list[dict[str, Any]]:
    """Every drift of the object with its current state, newest first, items decoded."""
    out = []
    for (did, status, items, category, manager, source_file, source_commit, opened_at, state,
         since, until) in conn.execute(
            "SELECT d.id, d.status, d.items, d.category, d.manager, d.source_file, "
            "d.source_commit, d.opened_at, s.state, s.since, s.accepted_until FROM drifts d "
            "JOIN drift_state s ON s.drift_id = d.id WHERE d.object_id = ? ORDER BY d.id DESC",
            (oid,)):
        out.append({"id": did, "status": status, "items": orjson.loads(items or "[]"),
                    "category": category or "", "manager": manager or "",
                    "source_file": source_file or "", "source_commit": source_commit or "",
                    "opened_at": opened_at or "", "state": state, "state_since": since or "",
                    "accepted_until": until or ""})
    return out


def health(conn: sqlite3.Connection) -> tuple[int, str]:
    """``(runs, newest run's start)`` — proof that the ledger's tables can be read."""
    count, newest = conn.execute("SELECT count(*), max(started_at) FROM runs").fetchone()
    return int(count), newest or ""


def policy_score(conn: sqlite3.Connection) -> float | None:
    """The newest policy evaluation's compliance score (0–100), ``None`` for a ledger whose
    runs never evaluated policies (or one older than the policy tables). The same reading as
    the ``drift_auditor_policy_compliance_score`` metric, without the metrics' aggregates."""
    tables = schema.tables(conn)
    if "policy_runs" not in tables:
        return None
    # run_id may be NULL: last, as SQLite orders DESC (PostgreSQL would put it first).
    row = conn.execute("SELECT score FROM policy_runs ORDER BY "
                       f"{dialect_of(conn).nulls_last_desc('run_id')} LIMIT 1").fetchone()
    return None if row is None or row[0] is None else float(row[0])


def head_seq(conn: sqlite3.Connection) -> int:
    """The hash chain's head sequence number (the number of events)."""
    row = conn.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()
    return int(row[0]) if row else 0
