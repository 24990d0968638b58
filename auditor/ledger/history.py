"""``drift-auditor history``: one timeline of live changes, drift lifecycle events and the
API server's audit writes, filtered by object, namespace, kind, actor, category and period,
rendered as text, JSON or CSV.

Entries are ordered by time, then by chain sequence number, so the output is deterministic.
A change or an audit write that no scheduled run saw as current — changed and changed back
(or changed again) between two runs, :mod:`.completeness` — has ``transient`` true (JSON,
CSV) and is marked ``[transient]`` in text; ``detected_by`` says what recorded it: a
scheduled ``run``, a ``watch`` batch, or the audit source (``audit:<source>``).
"""

from __future__ import annotations

import csv
import io
import sqlite3
from dataclasses import dataclass
from typing import Any

import orjson

from . import keys, schema
from .auditlog import plural
from .completeness import transient_audit_sql, transient_change_sql
from .dialect import dialect_of

FIELDS = ("time", "seq", "type", "event", "object", "api_group", "kind", "namespace", "name",
          "actor", "user", "category", "authorized", "how", "reason", "expires", "drift_id",
          "run_id", "paths", "transient", "detected_by")
TYPES = ("change", "drift", "audit")


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
    types: tuple[str, ...] = ("change", "drift")  # of TYPES
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
    return (" AND ".join(clauses) or "1 = 1"), params


_CHANGES = ("SELECT c.time, c.seq, 'change', c.change, o.grp, o.kind, o.namespace, o.name, "
            "c.manager, c.user, c.category, c.authorized, NULL, NULL, NULL, NULL, c.run_id, NULL, "
            "{transient}, {mode} FROM changes c JOIN objects o ON o.id = c.object_id "
            "JOIN runs r ON r.id = c.run_id WHERE {where}")
_DRIFTS = ("SELECT de.at, de.seq, 'drift', de.event, o.grp, o.kind, o.namespace, o.name, "
           "d.manager, de.by, d.category, NULL, de.how, de.reason, de.expires, d.id, de.run_id, "
           "d.items, NULL, NULL FROM drift_events de JOIN drifts d ON d.id = de.drift_id "
           "JOIN objects o ON o.id = d.object_id WHERE {where}")
# An audit write's time to the second, as the ledger's own timestamps read; its ``reason``
# column carries the response code, impersonated user and subresource for the detail.
_AUDIT = ("SELECT substr(a.stage_at, 1, 19) || 'Z', a.seq, 'audit', a.verb, a.grp, "
          "CASE WHEN a.kind != '' THEN a.kind ELSE a.resource END, a.namespace, a.name, "
          "a.manager, a.user, NULL, NULL, NULL, "
          "a.code || char(31) || a.impersonated_user || char(31) || a.subresource, NULL, NULL, "
          "NULL, NULL, {transient}, 'audit:' || a.source FROM audit_events a WHERE {where}")


def _audit_where(f: HistoryFilter) -> tuple[str, list[Any]]:
    """:func:`_where` for audit rows: the kind is the one the event named, or, without one,
    the resource whose plural it is; times are the events' own (microseconds)."""
    from .auditevents import micro_bound

    clauses: list[str] = ["a.name != ''"]
    params: list[Any] = []

    def kind_is(kind: str, group: str | None) -> None:
        clauses.append("(a.kind = ? OR (a.kind = '' AND a.resource = ?))")
        params.extend((kind, plural(kind)))
        if group is not None:
            clauses.append("a.grp = ?")
            params.append(group)

    if f.object:
        pattern = keys.parse(f.object)
        clauses.append("a.name = ?")
        params.append(pattern.name)
        if pattern.namespace is not None:
            clauses.append("a.namespace = ?")
            params.append(pattern.namespace)
        if pattern.kind is not None:
            kind_is(pattern.kind, pattern.group)
    if f.namespace is not None:
        clauses.append("a.namespace = ?")
        params.append(f.namespace)
    if f.kind:
        kind, _, group = f.kind.partition(".")
        kind_is(kind, group or None)
    if f.actor:
        clauses.append("(a.manager = ? OR a.user = ? OR a.impersonated_user = ?)")
        params += [f.actor] * 3
    if f.category:
        clauses.append("1 = 0")  # an audit write has no actor category
    if f.since:
        clauses.append("a.stage_at >= ?")
        params.append(micro_bound(f.since))
    if f.until:
        clauses.append("a.stage_at < ?")
        params.append(micro_bound(f.until))
    return " AND ".join(clauses), params


def query(conn: sqlite3.Connection, f: HistoryFilter) -> list[dict[str, Any]]:
    parts: list[str] = []
    params: list[Any] = []
    watched = schema.has_run_mode(conn)  # a reader never migrates: an older ledger lacks it
    if "change" in f.types:
        where, p = _where(f, "c.time", ("c.manager", "c.user"), "c.category")
        parts.append(_CHANGES.format(
            where=where, transient=transient_change_sql("c", "r", "o", dialect=dialect_of(conn)) if watched else "0",
            mode="r.mode" if watched else "'run'"))
        params += p
    if "drift" in f.types:
        where, p = _where(f, "de.at", ("d.manager", "de.by"), "d.category")
        parts.append(_DRIFTS.format(where=where))
        params += p
    if "audit" in f.types and "audit_events" in schema.tables(conn):
        where, p = _audit_where(f)
        parts.append(_AUDIT.format(where=where, transient=transient_audit_sql("a", dialect=dialect_of(conn))))
        params += p
    if not parts:
        return []
    # A change's or drift event's time may be NULL: first, as SQLite orders it.
    sql = " UNION ALL ".join(parts) + f" ORDER BY {dialect_of(conn).nulls_first('1')}, 2"
    if f.limit:
        sql += f" LIMIT {int(f.limit)}"
    out = []
    for (time, seq, type_, event, grp, kind, ns, name, actor, user, category, authorized, how,
         reason, expires, drift_id, run_id, items, transient, detected_by) in conn.execute(
            sql, params):
        gk = f"{kind}.{grp}" if grp else kind
        paths = [i["path"] for i in orjson.loads(items)] if items else []
        entry = {
            "time": time, "seq": seq, "type": type_, "event": event,
            "object": f"{gk} {ns + '/' if ns else ''}{name}", "api_group": grp, "kind": kind,
            "namespace": ns, "name": name, "actor": actor or "", "user": user or "",
            "category": category or "",
            "authorized": None if authorized is None else bool(authorized),
            "how": how or "", "reason": reason or "", "expires": expires or "",
            "drift_id": drift_id, "run_id": run_id, "paths": paths,
            "transient": None if transient is None else bool(transient),
            "detected_by": detected_by or ""}
        if type_ == "audit":
            code, impersonated, subresource = [*str(reason or "").split("\x1f"), "", ""][:3]
            entry.update(reason="", code=int(code) if code.isdigit() else None,
                         impersonated_user=impersonated, subresource=subresource)
        out.append(entry)
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


TRANSIENT_MARK = "[transient]"


def _detail(entry: dict[str, Any]) -> str:
    mark = f" {TRANSIENT_MARK}" if entry.get("transient") else ""
    if entry["type"] == "change":
        auth = entry["authorized"]
        verdict = "authorized" if auth else "out-of-band" if auth is False else "unverified"
        by = " (watch)" if entry.get("detected_by") == "watch" else ""
        return f"{verdict}" + (f" user={entry['user']}" if entry["user"] else "") + by + mark
    if entry["type"] == "audit":
        bits = [f"audit {entry.get('code') or ''}".rstrip()]
        if entry.get("subresource"):
            bits.append(f"subresource={entry['subresource']}")
        if entry["user"]:
            bits.append(f"user={entry['user']}")
        if entry.get("impersonated_user"):
            bits.append(f"as={entry['impersonated_user']}")
        bits.append(f"source={entry['detected_by'].removeprefix('audit:')}")
        return " ".join(bits) + mark
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


def runs(conn: sqlite3.Connection, limit: int = 20,
         modes: tuple[str, ...] = ("run",)) -> list[dict[str, Any]]:
    """The latest runs of ``modes`` (default: scheduled runs; ``("run", "watch")`` adds the
    watch batches), newest first, JSON columns decoded."""
    mode = "mode" if schema.has_run_mode(conn) else "'run'"
    out = []
    for (rid, cluster, started, ended, status, commits, counts, skipped, problems, version,
         config_hash, run_mode) in conn.execute(
            f"SELECT id, cluster, started_at, ended_at, status, git_commits, counts, "
            f"skipped_kinds, problems, tool_version, config_hash, {mode} FROM runs "
            f"WHERE {mode} IN ({', '.join('?' * len(modes))}) ORDER BY id DESC LIMIT ?",
            (*modes, limit)):
        out.append({"id": rid, "cluster": cluster, "started_at": started, "ended_at": ended,
                    "status": status, "git_commits": orjson.loads(commits or "{}"),
                    "counts": orjson.loads(counts or "{}"),
                    "skipped_kinds": orjson.loads(skipped or "[]"),
                    "problems": orjson.loads(problems or "[]"), "tool_version": version,
                    "config_hash": config_hash, "mode": str(run_mode)})
    return out


def watch_summary(conn: sqlite3.Connection) -> dict[str, Any] | None:
    """The watch's latest batch and how many batches it recorded (``None``: no watch ever
    wrote this ledger)."""
    if not schema.has_run_mode(conn):
        return None
    row = conn.execute("SELECT count(*), max(id) FROM runs WHERE mode = 'watch'").fetchone()
    if not row or not row[0]:
        return None
    last = conn.execute("SELECT started_at, ended_at, status FROM runs WHERE id = ?",
                        (row[1],)).fetchone()
    return {"batches": int(row[0]), "last_id": int(row[1]), "last_started_at": last[0],
            "last_ended_at": last[1] or "", "last_status": last[2]}
