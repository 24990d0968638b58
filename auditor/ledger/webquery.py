"""Read-only queries for ``drift-auditor serve``'s lists, diff views, charts and JSON API
(:mod:`auditor.web.serve`): drifts, objects and changes filtered by namespace, kind, actor,
category, state and free text, a page at a time (keyset pagination, stable under new rows);
one version's stored content; the open drift per day and the changes per category per day.
Like the other readers, nothing here writes.

Filters mean the same on every list:

* ``namespace``: exact; ``_`` is "no namespace" (cluster-scoped objects);
* ``kind``: ``Kind`` or ``Kind.group`` (as ``drift-auditor history --kind``);
* ``actor``: a field manager or an authenticated user, exact;
* ``category``: a manager category (``human``, ``gitops``, ``controller``, …), exact;
* ``state``: a drift's state (``open``, ``accepted``, ``resolved``); an object's
  (``drifting``, ``accepted``, ``in-sync``, ``deleted``); a change's authorization
  (``authorized``, ``out-of-band``, ``unverified``);
* ``q``: case-insensitive text in the object's identity, and for drifts in the drifted paths
  and values (Secret values are stored as keyed hashes only), for changes in the manager
  and user, for objects in the latest stored content (never a Secret's).
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from . import schema
from .dialect import dialect_of

DRIFT_STATES = ("open", "accepted", "resolved")
OBJECT_STATES = ("drifting", "accepted", "in-sync", "deleted")
CHANGE_STATES = ("authorized", "out-of-band", "unverified")
MAX_LIMIT = 500


@dataclass(frozen=True)
class ListFilter:
    """``""`` matches anything (see the module docstring)."""

    namespace: str = ""
    kind: str = ""
    actor: str = ""
    category: str = ""
    state: str = ""
    q: str = ""


def _identity(f: ListFilter, clauses: list[str], params: list[Any]) -> None:
    if f.namespace:
        clauses.append("o.namespace = ?")
        params.append("" if f.namespace == "_" else f.namespace)
    if f.kind:
        kind, _, group = f.kind.partition(".")
        clauses.append("o.kind = ?")
        params.append(kind)
        if group:
            clauses.append("o.grp = ?")
            params.append(group)


def _text(expr: str) -> str:
    return f"instr(lower({expr}), lower(?)) > 0"


_IDENT = "o.kind || '.' || o.grp || ' ' || o.namespace || '/' || o.name"


def _page(rows: list[Any], limit: int) -> tuple[list[Any], bool]:
    return rows[:limit], len(rows) > limit


def _limit(limit: int) -> int:
    return max(1, min(int(limit), MAX_LIMIT))


# --------------------------------------------------------------------------- drifts

_DRIFTS = """
SELECT d.id, o.grp, o.kind, o.namespace, o.name, d.status, d.category, d.manager, d.items,
       d.source_file, d.source_commit, d.opened_at, s.state, s.since, s.accepted_until,
       d.live_hash, d.run_id
FROM drifts d JOIN drift_state s ON s.drift_id = d.id JOIN objects o ON o.id = d.object_id
WHERE {where} ORDER BY d.id DESC LIMIT ?"""


def drift_list(conn: sqlite3.Connection, f: ListFilter, limit: int = 50,
               before: int | None = None) -> tuple[list[dict[str, Any]], int | None]:
    """Drifts matching ``f``, newest first, ``limit`` of them with an id below ``before``;
    returns ``(rows, the next page's before)`` (``None``: this was the last page)."""
    limit = _limit(limit)
    clauses: list[str] = []
    params: list[Any] = []
    _identity(f, clauses, params)
    # The drift's items (a JSON array of objects) through the dialect: SQLite's json_each
    # and json_extract have no textual PostgreSQL twin.
    dialect = dialect_of(conn)
    items = dialect.json_values("d.items", "j")
    if f.actor:
        clauses.append(f"(d.manager = ? OR EXISTS (SELECT 1 FROM {items} WHERE "
                       f"{dialect.json_field('j.value', 'manager')} = ? OR "
                       f"{dialect.json_field('j.value', 'user')} = ?))")
        params += [f.actor] * 3
    if f.category:
        clauses.append(f"(d.category = ? OR EXISTS (SELECT 1 FROM {items} WHERE "
                       f"{dialect.json_field('j.value', 'category')} = ?))")
        params += [f.category] * 2
    if f.state:
        clauses.append("s.state = ?")
        params.append(f.state)
    if f.q:
        clauses.append(_text(f"{_IDENT} || ' ' || coalesce(d.manager, '') || ' ' || "
                             "coalesce(d.items, '')"))
        params.append(f.q)
    if before is not None:
        clauses.append("d.id < ?")
        params.append(before)
    rows, more = _page(conn.execute(_DRIFTS.format(where=" AND ".join(clauses) or "1 = 1"),
                                    (*params, limit + 1)).fetchall(), limit)
    out = [_drift_row(r) for r in rows]
    return out, (out[-1]["id"] if more and out else None)


def _drift_row(r: Any) -> dict[str, Any]:
    (did, grp, kind, ns, name, status, category, manager, items, source_file, source_commit,
     opened_at, state, since, until, live_hash, run_id) = r
    return {"id": did, "api_group": grp, "kind": kind, "namespace": ns, "name": name,
            "status": status, "state": state, "category": category or "",
            "manager": manager or "", "items": orjson.loads(items or "[]"),
            "source_file": source_file or "", "source_commit": source_commit or "",
            "opened_at": opened_at or "", "state_since": since or "",
            "accepted_until": until or "", "live_hash": live_hash or "", "run_id": run_id}


def drift(conn: sqlite3.Connection, drift_id: int) -> dict[str, Any] | None:
    """One drift by id (with its object's identity), or ``None``."""
    row = conn.execute(_DRIFTS.format(where="d.id = ?"), (drift_id, 1)).fetchone()
    return _drift_row(row) if row else None


def object_drift_rows(conn: sqlite3.Connection, oid: int) -> list[dict[str, Any]]:
    """Every drift of the object ``oid``, newest first (as :func:`drift_list` rows)."""
    return [_drift_row(r) for r in conn.execute(
        _DRIFTS.format(where="d.object_id = ?"), (oid, 10_000))]


# --------------------------------------------------------------------------- objects

_OBJECTS = """
SELECT o.id, o.grp, o.kind, o.namespace, o.name, coalesce(l.deleted, 0), v.observed_at,
       v.api_version, l.version_id,
       (SELECT count(*) FROM drift_state s WHERE s.object_id = o.id AND s.state = 'open'),
       (SELECT count(*) FROM drift_state s WHERE s.object_id = o.id AND s.state = 'accepted'),
       (SELECT c.manager || char(31) || coalesce(c.user, '') || char(31) ||
               coalesce(c.category, '') || char(31) || c.time
        FROM changes c WHERE c.object_id = o.id ORDER BY c.id DESC LIMIT 1)
FROM objects o LEFT JOIN latest l ON l.object_id = o.id
LEFT JOIN object_versions v ON v.id = l.version_id
WHERE {where} ORDER BY {namespace}, o.kind, o.name, o.id LIMIT ?"""

_OPEN = "EXISTS (SELECT 1 FROM drift_state s WHERE s.object_id = o.id AND s.state = '{}')"


def object_list(conn: sqlite3.Connection, f: ListFilter, limit: int = 50,
                after: tuple[str, str, str, int] | None = None
                ) -> tuple[list[dict[str, Any]], tuple[str, str, str, int] | None]:
    """Objects matching ``f`` by namespace, kind, name; ``after`` the key (namespace,
    kind, name, id) the previous page ended with. Returns the rows and the next ``after``."""
    limit = _limit(limit)
    clauses: list[str] = []
    params: list[Any] = []
    _identity(f, clauses, params)
    if f.actor:
        clauses.append("(EXISTS (SELECT 1 FROM changes c WHERE c.object_id = o.id AND "
                       "(c.manager = ? OR c.user = ?)) OR EXISTS (SELECT 1 FROM drifts d "
                       "WHERE d.object_id = o.id AND d.manager = ?))")
        params += [f.actor] * 3
    if f.category:
        clauses.append("(EXISTS (SELECT 1 FROM changes c WHERE c.object_id = o.id AND "
                       "c.category = ?) OR EXISTS (SELECT 1 FROM drifts d WHERE "
                       "d.object_id = o.id AND d.category = ?))")
        params += [f.category] * 2
    if f.state == "drifting":
        clauses.append(_OPEN.format("open"))
    elif f.state == "accepted":
        clauses.append(_OPEN.format("accepted"))
    elif f.state == "deleted":
        clauses.append("coalesce(l.deleted, 0) = 1")
    elif f.state == "in-sync":
        clauses.append(f"coalesce(l.deleted, 0) = 0 AND NOT {_OPEN.format('open')} AND NOT "
                       f"{_OPEN.format('accepted')}")
    elif f.state:
        clauses.append("1 = 0")
    if f.q:
        # The latest stored content is searched too, never a Secret's (keyed hashes only,
        # but a hash is no thing to find a Secret by).
        clauses.append(f"({_text(_IDENT)} OR (NOT (o.grp = '' AND o.kind = 'Secret') AND "
                       "EXISTS (SELECT 1 FROM contents ct WHERE ct.version_id = l.version_id "
                       f"AND {_text('ct.content')})))")
        params += [f.q, f.q]
    if after is not None:
        clauses.append("(o.namespace, o.kind, o.name, o.id) > (?, ?, ?, ?)")
        params += list(after)
    # A NULL namespace sorts first on both back ends (PostgreSQL would put it last).
    sql = _OBJECTS.format(where=" AND ".join(clauses) or "1 = 1",
                          namespace=dialect_of(conn).nulls_first("o.namespace"))
    rows, more = _page(conn.execute(sql, (*params, limit + 1)).fetchall(), limit)
    out = []
    for (oid, grp, kind, ns, name, deleted, observed, api_version, vid, n_open, n_accepted,
         last) in rows:
        manager, user, category, time = [*(last or "").split("\x1f"), "", "", "", ""][:4]
        out.append({"id": oid, "api_group": grp, "kind": kind, "namespace": ns, "name": name,
                    "deleted": bool(deleted), "observed_at": observed or "",
                    "api_version": api_version or "", "version_id": vid,
                    "open_drifts": n_open, "accepted_drifts": n_accepted,
                    "last_change": ({"manager": manager, "user": user, "category": category,
                                     "time": time} if last else None)})
    nxt = None
    if more and out:
        last_row = out[-1]
        nxt = (last_row["namespace"], last_row["kind"], last_row["name"], last_row["id"])
    return out, nxt


# --------------------------------------------------------------------------- changes

_CHANGES = """
SELECT c.id, c.time, c.change, o.grp, o.kind, o.namespace, o.name, c.manager, c.operation,
       c.category, c.user, c.authorized, c.run_id, c.version_id, c.prev_version_id
FROM changes c JOIN objects o ON o.id = c.object_id
WHERE {where} ORDER BY c.id DESC LIMIT ?"""


def change_list(conn: sqlite3.Connection, f: ListFilter, limit: int = 50,
                before: int | None = None) -> tuple[list[dict[str, Any]], int | None]:
    """Live changes matching ``f``, newest first (as :func:`drift_list` pages)."""
    limit = _limit(limit)
    clauses: list[str] = []
    params: list[Any] = []
    _identity(f, clauses, params)
    if f.actor:
        clauses.append("(c.manager = ? OR c.user = ?)")
        params += [f.actor] * 2
    if f.category:
        clauses.append("c.category = ?")
        params.append(f.category)
    if f.state == "authorized":
        clauses.append("c.authorized = 1")
    elif f.state == "out-of-band":
        clauses.append("c.authorized = 0")
    elif f.state == "unverified":
        clauses.append("c.authorized IS NULL")
    elif f.state:
        clauses.append("1 = 0")
    if f.q:
        clauses.append(_text(f"{_IDENT} || ' ' || coalesce(c.manager, '') || ' ' || "
                             "coalesce(c.user, '') || ' ' || coalesce(c.change, '')"))
        params.append(f.q)
    if before is not None:
        clauses.append("c.id < ?")
        params.append(before)
    rows, more = _page(conn.execute(_CHANGES.format(where=" AND ".join(clauses) or "1 = 1"),
                                    (*params, limit + 1)).fetchall(), limit)
    out = []
    for (cid, time, change, grp, kind, ns, name, manager, operation, category, user,
         authorized, run_id, vid, prev) in rows:
        out.append({"id": cid, "time": time or "", "change": change or "", "api_group": grp,
                    "kind": kind, "namespace": ns, "name": name, "manager": manager or "",
                    "operation": operation or "", "category": category or "",
                    "user": user or "",
                    "authorized": None if authorized is None else bool(authorized),
                    "run_id": run_id, "version_id": vid, "prev_version_id": prev})
    return out, (out[-1]["id"] if more and out else None)


# --------------------------------------------------------------------------- facets, runs

def facets(conn: sqlite3.Connection) -> dict[str, list[str]]:
    """The values the filters can take in this ledger: namespaces, kinds (``Kind`` or
    ``Kind.group``), categories and actors (at most 500 of each), sorted."""
    namespaces = [r[0] for r in conn.execute(
        f"SELECT DISTINCT namespace FROM objects ORDER BY {dialect_of(conn).nulls_first('1')} "
        "LIMIT 500")]
    kinds = [f"{k}.{g}" if g else k for k, g in conn.execute(
        "SELECT DISTINCT kind, grp FROM objects ORDER BY 1, 2 LIMIT 500")]
    categories = [r[0] for r in conn.execute(
        "SELECT category FROM changes WHERE category != '' UNION "
        "SELECT category FROM drifts WHERE category != '' ORDER BY 1 LIMIT 500")]
    actors = [r[0] for r in conn.execute(
        "SELECT manager FROM changes WHERE manager != '' UNION SELECT user FROM changes "
        "WHERE user != '' UNION SELECT manager FROM drifts WHERE manager != '' "
        "ORDER BY 1 LIMIT 500")]
    return {"namespaces": namespaces, "kinds": kinds, "categories": categories,
            "actors": actors}


def run_list(conn: sqlite3.Connection, limit: int = 50,
             before: int | None = None) -> tuple[list[dict[str, Any]], int | None]:
    """Runs (scheduled runs and watch batches), newest first, a page at a time."""
    limit = _limit(limit)
    mode = "mode" if schema.has_run_mode(conn) else "'run'"
    where, params = ("id < ?", [before]) if before is not None else ("1 = 1", [])
    rows, more = _page(conn.execute(
        f"SELECT id, cluster, {mode}, started_at, ended_at, status, git_commits, counts, "
        f"skipped_kinds, problems, tool_version, config_hash FROM runs WHERE {where} "
        f"ORDER BY id DESC LIMIT ?", (*params, limit + 1)).fetchall(), limit)
    out = []
    for (rid, cluster, run_mode, started, ended, status, commits, counts, skipped, problems,
         version, config_hash) in rows:
        out.append({"id": rid, "cluster": cluster or "", "mode": str(run_mode),
                    "started_at": started or "", "ended_at": ended or "",
                    "status": status, "git_commits": orjson.loads(commits or "{}"),
                    "counts": orjson.loads(counts or "{}"),
                    "skipped_kinds": orjson.loads(skipped or "[]"),
                    "problems": orjson.loads(problems or "[]"),
                    "tool_version": version or "", "config_hash": config_hash or ""})
    return out, (out[-1]["id"] if more and out else None)


# --------------------------------------------------------------------------- contents

def version(conn: sqlite3.Connection, oid: int, vid: int) -> dict[str, Any] | None:
    """Version ``vid`` of object ``oid`` with its stored content decoded (``content`` is
    ``None`` when pruned, or for a deletion); ``None`` when no such version of that object."""
    row = conn.execute(
        "SELECT v.id, v.run_id, v.api_version, v.resource_version, v.content_hash, "
        "v.observed_at, v.deleted, c.content FROM object_versions v LEFT JOIN contents c "
        "ON c.version_id = v.id WHERE v.id = ? AND v.object_id = ?", (vid, oid)).fetchone()
    if row is None:
        return None
    vid, run_id, api_version, rv, content_hash, observed, deleted, content = row
    return {"id": vid, "run_id": run_id, "api_version": api_version or "",
            "resource_version": rv or "", "content_hash": content_hash or "",
            "observed_at": observed or "", "deleted": bool(deleted),
            "content": orjson.loads(content) if content else None}


def latest_version_id(conn: sqlite3.Connection, oid: int) -> int | None:
    row = conn.execute("SELECT max(id) FROM object_versions WHERE object_id = ?",
                       (oid,)).fetchone()
    return int(row[0]) if row and row[0] is not None else None


def version_with_hash(conn: sqlite3.Connection, oid: int, content_hash: str) -> int | None:
    """The newest version of ``oid`` whose content hash is ``content_hash`` (a drift's
    ``live_hash``: the live content the drift was found in)."""
    row = conn.execute("SELECT max(id) FROM object_versions WHERE object_id = ? AND "
                       "content_hash = ?", (oid, content_hash)).fetchone()
    return int(row[0]) if row and row[0] is not None else None


def version_changes(conn: sqlite3.Connection, oid: int) -> dict[int, dict[str, Any]]:
    """The change that produced each version of ``oid`` (by version id): who, when, how."""
    out: dict[int, dict[str, Any]] = {}
    for vid, manager, user, category, time, change, authorized in conn.execute(
            "SELECT version_id, manager, user, category, time, change, authorized FROM "
            "changes WHERE object_id = ? ORDER BY id", (oid,)):
        out[vid] = {"manager": manager or "", "user": user or "", "category": category or "",
                    "time": time or "", "change": change or "",
                    "authorized": None if authorized is None else bool(authorized)}
    return out


# --------------------------------------------------------------------------- charts

def _day(stamp: str) -> str:
    return stamp[:10]


def open_drift_by_day(conn: sqlite3.Connection, days: int = 30,
                      now: datetime | None = None) -> list[tuple[str, int, int]]:
    """``(YYYY-MM-DD, open, accepted)`` at the end of each of the last ``days`` days (UTC),
    oldest first, replayed from the drift lifecycle events."""
    now = now or datetime.now(UTC)
    dates = [(now - timedelta(days=n)).strftime("%Y-%m-%d") for n in range(days - 1, -1, -1)]
    state: dict[int, str] = {}
    counts: list[tuple[str, int, int]] = []
    events = conn.execute(f"SELECT drift_id, at, event FROM drift_events ORDER BY "
                          f"{dialect_of(conn).nulls_first('at')}, seq")
    pending = next(events, None)
    for date in dates:
        while pending is not None and _day(pending[1] or "") <= date:
            drift_id, _, event = pending
            if event in ("opened", "reopened", "expired"):
                state[drift_id] = "open"
            elif event == "accepted":
                state[drift_id] = "accepted"
            elif event == "resolved":
                state.pop(drift_id, None)
            pending = next(events, None)
        values = list(state.values())
        counts.append((date, values.count("open"), values.count("accepted")))
    return counts


def changes_by_category(conn: sqlite3.Connection, days: int = 30,
                        now: datetime | None = None) -> list[tuple[str, dict[str, int]]]:
    """``(YYYY-MM-DD, {category: changes})`` for each of the last ``days`` days, oldest
    first."""
    now = now or datetime.now(UTC)
    dates = [(now - timedelta(days=n)).strftime("%Y-%m-%d") for n in range(days - 1, -1, -1)]
    by_day: dict[str, dict[str, int]] = defaultdict(dict)
    for day, category, n in conn.execute(
            "SELECT substr(time, 1, 10), coalesce(nullif(category, ''), 'unknown'), count(*) "
            "FROM changes WHERE time >= ? GROUP BY 1, 2", (dates[0],)):
        by_day[day][category] = int(n)
    return [(d, dict(sorted(by_day.get(d, {}).items()))) for d in dates]
