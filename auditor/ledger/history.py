"""``drift-auditor history``: one timeline of live changes and drift lifecycle events, filtered
by object, namespace, kind, actor, category and period, rendered as text, JSON or CSV.

Entries are ordered by time, then by chain sequence number, so the output is deterministic.
"""

from __future__ import annotations

import csv
import io
import sqlite3
from dataclasses import dataclass
from typing import Any

import orjson

from . import keys

FIELDS = ("time", "seq", "type", "event", "object", "api_group", "kind", "namespace", "name",
          "actor", "user", "category", "authorized", "how", "reason", "expires", "drift_id",
          "run_id", "paths")


@dataclass(frozen=True)
class HistoryFilter:
    """``None`` matches anything. ``actor`` matches a field manager or a user; ``since`` and
    ``until`` are ledger timestamps (``until`` exclusive)."""

    object: str | None = None
    namespace: str | None = None
    kind: str | None = None
    actor: str | None = None
    category: str | None = None
    since: str | None = None
    until: str | None = None
    types: tuple[str, ...] = ("change", "drift")
    limit: int | None = None


def _where(f: HistoryFilter, time_col: str, actor_cols: tuple[str, str],
           category_col: str) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if f.object:
        pattern = keys.parse(f.object)
        clauses.append("o.name = ?")
        params.append(pattern.name)
        for col, value in (("o.namespace", pattern.namespace), ("o.kind", pattern.kind),
                           ("o.grp", pattern.group)):
            if value is not None:
                clauses.append(f"{col} = ?")
                params.append(value)
    if f.namespace is not None:
        clauses.append("o.namespace = ?")
        params.append(f.namespace)
    if f.kind:
        kind, _, group = f.kind.partition(".")
        clauses.append("o.kind = ?")
        params.append(kind)
        if group:
            clauses.append("o.grp = ?")
            params.append(group)
    if f.actor:
        clauses.append(f"({actor_cols[0]} = ? OR {actor_cols[1]} = ?)")
        params += [f.actor, f.actor]
    if f.category:
        clauses.append(f"{category_col} = ?")
        params.append(f.category)
    if f.since:
        clauses.append(f"{time_col} >= ?")
        params.append(f.since)
    if f.until:
        clauses.append(f"{time_col} < ?")
        params.append(f.until)
    return (" AND ".join(clauses) or "1"), params


_CHANGES = ("SELECT c.time, c.seq, 'change', c.change, o.grp, o.kind, o.namespace, o.name, "
            "c.manager, c.user, c.category, c.authorized, NULL, NULL, NULL, NULL, c.run_id, NULL "
            "FROM changes c JOIN objects o ON o.id = c.object_id WHERE {where}")
_DRIFTS = ("SELECT de.at, de.seq, 'drift', de.event, o.grp, o.kind, o.namespace, o.name, "
           "d.manager, de.by, d.category, NULL, de.how, de.reason, de.expires, d.id, de.run_id, "
           "d.items FROM drift_events de JOIN drifts d ON d.id = de.drift_id "
           "JOIN objects o ON o.id = d.object_id WHERE {where}")


def query(conn: sqlite3.Connection, f: HistoryFilter) -> list[dict[str, Any]]:
    parts: list[str] = []
    params: list[Any] = []
    if "change" in f.types:
        where, p = _where(f, "c.time", ("c.manager", "c.user"), "c.category")
        parts.append(_CHANGES.format(where=where))
        params += p
    if "drift" in f.types:
        where, p = _where(f, "de.at", ("d.manager", "de.by"), "d.category")
        parts.append(_DRIFTS.format(where=where))
        params += p
    if not parts:
        return []
    sql = " UNION ALL ".join(parts) + " ORDER BY 1, 2"
    if f.limit:
        sql += f" LIMIT {int(f.limit)}"
    out = []
    for (time, seq, type_, event, grp, kind, ns, name, actor, user, category, authorized, how,
         reason, expires, drift_id, run_id, items) in conn.execute(sql, params):
        gk = f"{kind}.{grp}" if grp else kind
        paths = [i["path"] for i in orjson.loads(items)] if items else []
        out.append({
            "time": time, "seq": seq, "type": type_, "event": event,
            "object": f"{gk} {ns + '/' if ns else ''}{name}", "api_group": grp, "kind": kind,
            "namespace": ns, "name": name, "actor": actor or "", "user": user or "",
            "category": category or "",
            "authorized": None if authorized is None else bool(authorized),
            "how": how or "", "reason": reason or "", "expires": expires or "",
            "drift_id": drift_id, "run_id": run_id, "paths": paths})
    return out


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ";".join(str(v) for v in value)
    return str(value)


def render_json(entries: list[dict[str, Any]]) -> str:
    return orjson.dumps(entries, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode() + "\n"


def render_csv(entries: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(FIELDS)
    for entry in entries:
        writer.writerow([_cell(entry[f]) for f in FIELDS])
    return buf.getvalue()


def _detail(entry: dict[str, Any]) -> str:
    if entry["type"] == "change":
        auth = entry["authorized"]
        verdict = "authorized" if auth else "out-of-band" if auth is False else "unverified"
        return f"{verdict}" + (f" user={entry['user']}" if entry["user"] else "")
    bits = [f"drift {entry['drift_id']}"]
    if entry["how"]:
        bits.append(f"how={entry['how']}")
    if entry["event"] == "accepted":
        bits.append(f"by={entry['user']}")
        bits.append(f"until={entry['expires'] or 'changed'}")
        bits.append(f"reason={entry['reason']!r}")
    if entry["event"] in ("opened", "reopened") and entry["paths"]:
        shown = ", ".join(entry["paths"][:3])
        more = f" (+{len(entry['paths']) - 3})" if len(entry["paths"]) > 3 else ""
        bits.append(f"paths={shown}{more}")
    return " ".join(bits)


def render_text(entries: list[dict[str, Any]]) -> str:
    if not entries:
        return "no matching history\n"
    rows = [(e["time"], f"{e['type']}:{e['event']}", e["object"], e["actor"] or "-",
             e["category"] or "-", _detail(e)) for e in entries]
    header = ("TIME", "EVENT", "OBJECT", "ACTOR", "CATEGORY", "DETAIL")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(5)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r[:5], widths, strict=True)) + "  " + r[5]
             for r in [header, *rows]]
    return "\n".join(line.rstrip() for line in lines) + "\n"


def render(entries: list[dict[str, Any]], fmt: str) -> str:
    return {"json": render_json, "csv": render_csv}.get(fmt, render_text)(entries)


_DRIFT_ROWS = """
SELECT d.id, o.grp, o.kind, o.namespace, o.name, d.status, d.category, d.manager, d.items,
       d.source_file, d.source_commit, d.opened_at, s.state, s.since, s.accepted_until,
       (SELECT how FROM drift_events e WHERE e.drift_id = d.id AND e.event = 'resolved'
        ORDER BY e.seq DESC LIMIT 1),
       (SELECT e.by || char(31) || e.reason FROM drift_events e
        WHERE e.drift_id = d.id AND e.event = 'accepted' ORDER BY e.seq DESC LIMIT 1)
FROM drifts d JOIN drift_state s ON s.drift_id = d.id JOIN objects o ON o.id = d.object_id
WHERE {where} ORDER BY d.id"""


def drifts(conn: sqlite3.Connection, states: tuple[str, ...] = ("open", "accepted"),
           since: str | None = None) -> list[dict[str, Any]]:
    """Drifts in ``states`` (``open``, ``accepted``, ``resolved``) with their current state;
    ``since`` keeps those whose state changed at or after that time. For reports and alerts:
    ``opened_at`` is when the drift was first seen, ``state_since`` when it entered its state
    (for a resolved drift: when it was resolved)."""
    clauses = [f"s.state IN ({', '.join('?' * len(states))})"]
    params: list[Any] = list(states)
    if since:
        clauses.append("s.since >= ?")
        params.append(since)
    out = []
    for (did, grp, kind, ns, name, status, category, manager, items, source_file,
         source_commit, opened_at, state, state_since, until, how, accepted) in conn.execute(
            _DRIFT_ROWS.format(where=" AND ".join(clauses)), params):
        by, _, reason = (accepted or "").partition("\x1f")
        gk = f"{kind}.{grp}" if grp else kind
        out.append({
            "id": did, "object": f"{gk} {ns + '/' if ns else ''}{name}", "api_group": grp,
            "kind": kind, "namespace": ns, "name": name, "status": status,
            "category": category, "manager": manager, "items": orjson.loads(items),
            "source_file": source_file, "source_commit": source_commit,
            "opened_at": opened_at, "state": state, "state_since": state_since,
            "accepted_until": until, "resolved_how": how if state == "resolved" else None,
            "accepted_by": by or None, "accepted_reason": reason or None})
    return out


def runs(conn: sqlite3.Connection, limit: int = 20) -> list[dict[str, Any]]:
    """The latest runs, newest first, JSON columns decoded."""
    out = []
    for (rid, cluster, started, ended, status, commits, counts, skipped, problems, version,
         config_hash) in conn.execute(
            "SELECT id, cluster, started_at, ended_at, status, git_commits, counts, "
            "skipped_kinds, problems, tool_version, config_hash FROM runs ORDER BY id DESC "
            "LIMIT ?", (limit,)):
        out.append({"id": rid, "cluster": cluster, "started_at": started, "ended_at": ended,
                    "status": status, "git_commits": orjson.loads(commits or "{}"),
                    "counts": orjson.loads(counts or "{}"),
                    "skipped_kinds": orjson.loads(skipped or "[]"),
                    "problems": orjson.loads(problems or "[]"), "tool_version": version,
                    "config_hash": config_hash})
    return out
