"""Does every change reach the ledger? Read-only queries that test it, for the report
(:mod:`auditor.report.period`), ``history`` and the UI.

**Transient changes.** Between two scheduled runs (``runs.mode = 'run'``) a change can be
made and undone, or made and changed again; a scheduled run then never lists it. Such a
change is *transient*:

- an object version recorded by a watch run (:mod:`.watch`) is transient when the object's
  next version was recorded before any scheduled run that finished ``complete`` or
  ``partial`` without skipping the object's kind started after the version's run: no
  scheduled run saw it as the object's current state ("changed and changed back between
  runs", or changed again). A version no newer version has replaced yet is not transient
  (it is still current); a version a scheduled run recorded never is. A deletion undone by a
  re-creation is transient too. (:func:`transient_change_sql`)
- an API-server audit write (:mod:`.auditevents`) on an object (subresource none or
  ``scale``) is transient when another such write on the same object completed after it and
  before the first scheduled run (``complete`` or ``partial``, not skipping its kind) that
  started after it; with no such run yet, any later write makes it so.
  (:func:`transient_audit_sql`)

**Completeness**, as an auditor tests it (:func:`audit_completeness`): every in-scope
``create``, ``update``, ``patch`` or ``delete`` audit event of the period is matched to a
ledger change of the same object, or it is an exception (an *unmatched write*).

- In scope: a named object (subresource none, or ``scale``, which writes
  ``spec.replicas``; ``status`` and other subresources change nothing the ledger keeps) of
  a kind the ledger audits (it holds objects of that group and kind) in a namespace it
  audits (it holds objects there; cluster-scoped objects always). The kind is the one the
  event names (request or response object, or discovery through ``kinds``), else the one
  other events of the same resource named, else the audited kind whose plural is the
  resource. ``deletecollection`` names no object: counted, not matched.
- Matched: a change of the object (a version or a deletion; a ``delete`` only by a deletion,
  any other verb only by a creation or update) whose time lies in the write's window: its
  own time (managedFields, or the watch's) within [request received − 1 s, response +
  :data:`MATCH_WINDOW_SECONDS`] — the API server stamps managedFields while it handles the
  request, to the second, and a watch batch records shortly after; for a change the ledger
  could only date by its run (a deletion found missing from a list, an object without
  managedFields), the write completed between the start of the previous scheduled run
  (complete or partial) and the end of the run that recorded the change. Each change
  matches at most one write; writes take, in time order, the earliest change that fits.
- Also exceptions: every *gap* of the audit stream — a stretch longer than the threshold in
  which no source delivered any event (any verb: the stream's own pulse), found from the
  sources' deliveries (:mod:`.auditevents`), named with whether a source was alive
  (heartbeats) and silent or not delivering at all; and every scheduled run that skipped
  kinds (the report's run log says which).

Memory: the audit events of the period are read through one cursor in object order, each
object's changes with one indexed query, the deliveries through one cursor in time order;
only the exceptions and per-kind counters are kept.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import lru_cache

from . import schema
from .auditevents import micro_bound
from .auditlog import plural
from .dialect import SQLITE, Dialect, dialect_of

MATCH_WINDOW_SECONDS = 120
GAP_THRESHOLD_SECONDS = 15 * 60
IN_SCOPE_SUBRESOURCES = ("", "scale")
MATCHED_VERBS = ("create", "update", "patch", "delete")
_FAR = "9999-12-31T23:59:59Z"
# A scheduled run's kinds it could not list (a JSON array; NULL before any was skipped).
_SKIPPED = "coalesce(s.skipped_kinds, '[]')"


def _transient_sql(run_id: str, object_id: str, version_id: str, mode: str, obj: str,
                   dialect: Dialect = SQLITE) -> str:
    # CAST(EXISTS … AS INTEGER): PostgreSQL's EXISTS is a boolean, not SQLite's 0/1.
    return (
        f"(CASE WHEN {mode} = 'watch' THEN coalesce(("
        f"SELECT CAST(NOT EXISTS (SELECT 1 FROM runs s WHERE s.mode = 'run' "
        f"AND s.id > {run_id} AND s.id < n.run_id AND s.status IN ('complete', 'partial') "
        f"AND NOT EXISTS (SELECT 1 FROM "
        f"{dialect.json_values(_SKIPPED, 'j')} "
        f"WHERE j.value IN ({obj}.kind, {obj}.kind || '.' || {obj}.grp))) AS INTEGER) "
        f"FROM object_versions n WHERE n.object_id = {object_id} "
        f"AND n.id > {version_id} ORDER BY n.id LIMIT 1), 0) ELSE 0 END)")


def transient_change_sql(change: str = "c", run: str = "r", obj: str = "o", *,
                         dialect: Dialect = SQLITE) -> str:
    """SQL (1 or 0) for whether the change row ``change`` (of run ``run``, object ``obj``)
    is transient; needs ``runs.mode`` (:func:`.schema.has_run_mode`)."""
    return _transient_sql(f"{change}.run_id", f"{change}.object_id", f"{change}.version_id",
                          f"{run}.mode", obj, dialect)


def transient_version_sql(version: str = "v", run: str = "r", obj: str = "o", *,
                          dialect: Dialect = SQLITE) -> str:
    """:func:`transient_change_sql` for an ``object_versions`` row."""
    return _transient_sql(f"{version}.run_id", f"{version}.object_id", f"{version}.id",
                          f"{run}.mode", obj, dialect)


def transient_audit_sql(event: str = "a", *, dialect: Dialect = SQLITE) -> str:
    """SQL (1 or 0) for whether the audit event row ``event`` is transient."""
    next_run = (
        "(SELECT substr(min(s.started_at), 1, 19) || '.000000Z' FROM runs s "
        f"WHERE s.mode = 'run' AND s.started_at > substr({event}.stage_at, 1, 19) || 'Z' "
        "AND s.status IN ('complete', 'partial') AND NOT EXISTS (SELECT 1 FROM "
        f"{dialect.json_values(_SKIPPED, 'j')} WHERE j.value IN "
        f"({event}.kind, {event}.kind || '.' || {event}.grp)))")
    return (
        f"(CASE WHEN {event}.subresource IN ('', 'scale') AND {event}.name != '' "
        f"AND {event}.verb != 'deletecollection' THEN CAST(EXISTS (SELECT 1 FROM audit_events n "
        f"WHERE n.grp = {event}.grp AND n.resource = {event}.resource "
        f"AND n.namespace = {event}.namespace AND n.name = {event}.name "
        f"AND n.stage_at > {event}.stage_at AND n.subresource IN ('', 'scale') "
        f"AND n.verb != 'deletecollection' AND n.stage_at < coalesce({next_run}, '9999')) "
        f"AS INTEGER) ELSE 0 END)")


@lru_cache(maxsize=65536)
def _epoch(text: str) -> float:
    if not text:
        return 0.0
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _stamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class AuditWrite:
    """One audit write as the completeness test saw it (the exceptions are these)."""

    id: int
    seq: int
    audit_id: str
    source: str
    verb: str
    user: str
    impersonated_user: str
    manager: str
    user_agent: str
    group: str
    resource: str
    subresource: str
    kind: str
    namespace: str
    name: str
    code: int
    received_at: str
    stage_at: str
    resource_version: str
    transient: bool
    reason: str = ""  # why no ledger change matched it ('' when one did)


@dataclass
class KindCoverage:
    group: str
    kind: str
    writes: int = 0
    matched: int = 0
    unmatched: int = 0
    transient: int = 0


@dataclass(frozen=True, slots=True)
class StreamGap:
    """A stretch of the period in which no audit source delivered any event."""

    start: str
    end: str
    seconds: int
    heartbeats: int
    reason: str


@dataclass(frozen=True, slots=True)
class SourceSummary:
    source: str
    deliveries: int
    events: int
    recorded: int
    first_event: str
    last_event: str
    last_heartbeat: str


@dataclass
class AuditCompleteness:
    """The test of one period; ``tested`` is False when no audit source ever delivered an
    event up to the period's end (nothing to test against)."""

    tested: bool = False
    window_s: int = MATCH_WINDOW_SECONDS
    gap_threshold_s: int = GAP_THRESHOLD_SECONDS
    first_event: str = ""
    writes: int = 0  # in scope
    matched: int = 0
    transient: int = 0
    out_of_scope: int = 0
    collections: int = 0  # deletecollection: no object to match
    kinds: list[KindCoverage] = field(default_factory=list)
    unmatched: list[AuditWrite] = field(default_factory=list)
    gaps: list[StreamGap] = field(default_factory=list)
    sources: list[SourceSummary] = field(default_factory=list)


def _has(conn: sqlite3.Connection, table: str) -> bool:
    return table in schema.tables(conn)


@dataclass(frozen=True, slots=True)
class _Change:
    id: int
    change: str
    time: str
    run_id: int
    started: str
    ended: str


class _Matcher:
    """Per-object lookups, cached where several writes share them."""

    def __init__(self, conn: sqlite3.Connection, start: str, end: str, window: int,
                 now: str) -> None:
        self.conn = conn
        self.window = window
        self.now = now
        self.low = _stamp(_epoch(start) - 2 * window - 60)
        row = conn.execute(
            "SELECT coalesce(ended_at, started_at) FROM runs WHERE mode = 'run' "
            "AND started_at >= ? AND status IN ('complete', 'partial') ORDER BY started_at "
            "LIMIT 1", (end,)).fetchone()
        self.horizon = str(row[0]) if row else _FAR
        self.audited = {(str(g), str(k)) for g, k in conn.execute(
            "SELECT DISTINCT grp, kind FROM objects")}
        self.namespaces = {str(n) for (n,) in conn.execute(
            "SELECT DISTINCT namespace FROM objects")}
        self._kinds: dict[tuple[str, str], str] = {}
        self._prev: dict[int, float] = {}

    def kind(self, group: str, resource: str, given: str) -> str:
        if given:
            return given
        found = self._kinds.get((group, resource))
        if found is None:
            row = self.conn.execute(
                "SELECT kind FROM audit_events WHERE grp = ? AND resource = ? AND kind != '' "
                "LIMIT 1", (group, resource)).fetchone()
            found = str(row[0]) if row else next(
                (k for g, k in sorted(self.audited) if g == group and plural(k) == resource), "")
            self._kinds[(group, resource)] = found
        return found

    def in_scope(self, group: str, kind: str, namespace: str) -> bool:
        return (group, kind) in self.audited and (namespace == "" or namespace in self.namespaces)

    def object_id(self, group: str, kind: str, namespace: str, name: str) -> int | None:
        row = self.conn.execute("SELECT id FROM objects WHERE grp = ? AND kind = ? AND "
                                "namespace = ? AND name = ?", (group, kind, namespace, name)
                                ).fetchone()
        return None if row is None else int(row[0])

    def changes(self, oid: int) -> list[_Change]:
        return [_Change(int(i), str(ch), str(t or ""), int(rid), str(s), str(e or ""))
                for i, ch, t, rid, s, e in self.conn.execute(
                    "SELECT c.id, c.change, c.time, c.run_id, r.started_at, r.ended_at "
                    "FROM changes c JOIN runs r ON r.id = c.run_id WHERE c.object_id = ? "
                    "AND coalesce(r.ended_at, ?) >= ? AND r.started_at < ? ORDER BY c.id",
                    (oid, _FAR, self.low, self.horizon))]

    def previous_scheduled(self, run_id: int) -> float:
        """Start of the last scheduled run (complete or partial) before ``run_id``."""
        found = self._prev.get(run_id)
        if found is None:
            row = self.conn.execute(
                "SELECT started_at FROM runs WHERE mode = 'run' AND id < ? AND status IN "
                "('complete', 'partial') ORDER BY id DESC LIMIT 1", (run_id,)).fetchone()
            found = self._prev[run_id] = _epoch(str(row[0])) if row else float("-inf")
        return found

    def fits(self, write: AuditWrite, c: _Change) -> bool:
        if (write.verb == "delete") != (c.change == "deleted"):
            return False
        stage = _epoch(write.stage_at)
        if c.time and c.time != c.started:
            t = _epoch(c.time)
            return _epoch(write.received_at) - 1.0 <= t <= stage + self.window
        # Dated by its run: it happened after the previous scheduled run listed the object
        # and before this run ended (ledger times are to the second: the write's own
        # microseconds may pass the run's end by less than one).
        return self.previous_scheduled(c.run_id) <= stage < _epoch(c.ended or self.now) + 1.0


_WRITE_COLUMNS = ("a.id, a.seq, a.audit_id, a.source, a.verb, a.user, a.impersonated_user, "
                  "a.manager, a.user_agent, a.grp, a.resource, a.subresource, a.kind, "
                  "a.namespace, a.name, a.code, a.received_at, a.stage_at, a.resource_version")


def _writes(conn: sqlite3.Connection, start: str, end: str) -> Iterator[AuditWrite]:
    for row in conn.execute(
            f"SELECT {_WRITE_COLUMNS}, {transient_audit_sql('a', dialect=dialect_of(conn))} FROM audit_events a "
            "WHERE a.stage_at >= ? AND a.stage_at < ? "
            "ORDER BY a.grp, a.resource, a.namespace, a.name, a.stage_at, a.id",
            (micro_bound(start), micro_bound(end))):
        (aid, seq, audit_id, source, verb, user, imp, manager, agent, grp, resource, sub, kind,
         ns, name, code, received, stage, rv, transient) = row
        yield AuditWrite(int(aid), int(seq), str(audit_id), str(source or ""), str(verb),
                         str(user or ""), str(imp or ""), str(manager or ""), str(agent or ""),
                         str(grp or ""), str(resource or ""), str(sub or ""), str(kind or ""),
                         str(ns or ""), str(name or ""), int(code or 0), str(received or ""),
                         str(stage), str(rv or ""), bool(transient))


def audit_completeness(conn: sqlite3.Connection, start: str, end: str, *, until: str,
                       window_s: int = MATCH_WINDOW_SECONDS,
                       gap_threshold_s: int = GAP_THRESHOLD_SECONDS) -> AuditCompleteness:
    """The completeness test of ``[start, end)`` (ledger timestamps), observed up to
    ``until`` (the period's end, or now for a running period). See the module docstring."""
    out = AuditCompleteness(window_s=window_s, gap_threshold_s=max(gap_threshold_s, 60))
    if not _has(conn, "audit_events") or not schema.has_run_mode(conn):
        return out
    row = conn.execute("SELECT min(first_at) FROM audit_deliveries WHERE first_at IS NOT NULL"
                       ).fetchone()
    out.first_event = str(row[0]) if row and row[0] else ""
    if not out.first_event or out.first_event >= micro_bound(end):
        return out
    out.tested = True
    matcher = _Matcher(conn, start, end, window_s, until)
    kinds: dict[tuple[str, str], KindCoverage] = {}
    for (grp, resource, ns, name), group in itertools.groupby(
            _writes(conn, start, end), key=lambda w: (w.group, w.resource, w.namespace,
                                                      w.name)):
        _match_object(matcher, out, kinds, grp, resource, ns, name, list(group))
    out.kinds = [kinds[k] for k in sorted(kinds)]
    out.matched = sum(k.matched for k in out.kinds)
    out.writes = sum(k.writes for k in out.kinds)
    out.transient = sum(k.transient for k in out.kinds)
    out.unmatched.sort(key=lambda w: (w.stage_at, w.id))
    out.gaps = _gaps(conn, start, until, out.first_event, out.gap_threshold_s)
    out.sources = _sources(conn, start, end)
    return out


def _match_object(matcher: _Matcher, out: AuditCompleteness,
                  kinds: dict[tuple[str, str], KindCoverage], grp: str, resource: str, ns: str,
                  name: str, writes: list[AuditWrite]) -> None:
    """One object's writes of the period against its changes (writes in time order)."""
    scoped: list[AuditWrite] = []
    for w in writes:
        if w.verb == "deletecollection":
            out.collections += 1
            continue
        kind = matcher.kind(grp, resource, w.kind)
        if (w.subresource not in IN_SCOPE_SUBRESOURCES or w.verb not in MATCHED_VERBS
                or not name or not kind or not matcher.in_scope(grp, kind, ns)):
            out.out_of_scope += 1
            continue
        scoped.append(w if w.kind == kind else replace(w, kind=kind))
    if not scoped:
        return
    kind = scoped[0].kind
    counter = kinds.setdefault((grp, kind), KindCoverage(grp, kind))
    oid = matcher.object_id(grp, kind, ns, name)
    # The earliest change first: each write takes the earliest one that fits.
    changes = sorted(matcher.changes(oid) if oid is not None else [], key=lambda c: (
        _epoch(c.time if c.time and c.time != c.started else c.started), c.id))
    claimed: set[int] = set()
    for w in scoped:
        counter.writes += 1
        counter.transient += int(w.transient)
        found = next((c for c in changes if c.id not in claimed and matcher.fits(w, c)), None)
        if found is not None:
            claimed.add(found.id)
            counter.matched += 1
            continue
        counter.unmatched += 1
        if oid is None:
            reason = "the ledger holds no version of this object"
        else:
            reason = "no change of the object was recorded in the write's window"
        if w.transient:
            reason += "; changed again before the next scheduled run (transient)"
        out.unmatched.append(replace(w, reason=reason))


def _gaps(conn: sqlite3.Connection, start: str, until: str, first_event: str,
          threshold: int) -> list[StreamGap]:
    """Stretches over ``threshold`` seconds in ``[start, until)`` no delivered event covers:
    one sweep over the deliveries in order of their first event."""
    lo, hi = _epoch(start), _epoch(until)
    out: list[StreamGap] = []

    def gap(a: float, b: float, reason: str) -> None:
        if b - a <= threshold:
            return
        beats = int(conn.execute(
            "SELECT count(*) FROM audit_deliveries WHERE events = 0 AND at >= ? AND at < ?",
            (_stamp(a), _stamp(b))).fetchone()[0])
        why = reason or (f"no audit event; the sources were alive ({beats} heartbeat"
                         f"{'s' * (beats != 1)}) but delivered nothing" if beats else
                         "no audit event and no heartbeat: the audit source was down or not "
                         "delivering")
        out.append(StreamGap(_stamp(a), _stamp(b), int(b - a), beats, why))

    first = _epoch(first_event)
    reach = lo
    if first > lo:
        gap(lo, min(first, hi), "before the audit stream's first event")
        reach = first
    for first_at, last_at in conn.execute(
            "SELECT first_at, last_at FROM audit_deliveries WHERE first_at IS NOT NULL "
            "AND last_at >= ? AND first_at < ? ORDER BY first_at",
            (micro_bound(start), micro_bound(until))):
        a, b = _epoch(str(first_at)), _epoch(str(last_at))
        if a - reach > threshold:
            gap(reach, a, "")
        reach = max(reach, b)
    if reach < hi:
        gap(reach, hi, "")
    return out


def _sources(conn: sqlite3.Connection, start: str, end: str) -> list[SourceSummary]:
    lo, hi = micro_bound(start), micro_bound(end)
    out = []
    for source, deliveries, events, recorded, first, last, beat in conn.execute(
            "SELECT source, count(*), sum(events), sum(recorded), min(first_at), max(last_at), "
            "max(CASE WHEN events = 0 THEN at END) FROM audit_deliveries "
            "WHERE (first_at >= ? AND first_at < ?) OR (events = 0 AND at >= ? AND at < ?) "
            "GROUP BY source ORDER BY source", (lo, hi, start, end)):
        out.append(SourceSummary(str(source), int(deliveries), int(events or 0),
                                 int(recorded or 0), str(first or ""), str(last or ""),
                                 str(beat or "")))
    return out


def watch_runs(conn: sqlite3.Connection, start: str, end: str) -> dict[str, int]:
    """``{status: count}`` of the watch runs (batches) that started in ``[start, end)``."""
    if not schema.has_run_mode(conn):
        return {}
    return {str(s): int(n) for s, n in conn.execute(
        "SELECT status, count(*) FROM runs WHERE mode = 'watch' AND started_at >= ? "
        "AND started_at < ? GROUP BY status ORDER BY status", (start, end))}
