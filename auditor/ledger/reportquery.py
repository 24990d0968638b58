"""Read-only queries behind ``drift-auditor report``: the rows of one period, as plain tuples
and dicts, for :mod:`auditor.report.period` to turn into a report.

Nothing here writes. Period bounds are ledger timestamps (``start`` inclusive, ``end``
exclusive); ledger timestamps are fixed-width UTC strings, so string order is time order.

Which rows belong to a period is a definition the report states in its appendix:
  - a run belongs to the period its ``started_at`` falls in; ``runs_between`` gives the
    scheduled runs (``mode = 'run'``) unless asked for watch batches too;
  - a change belongs to the period of the run that detected (recorded) it, a scheduled run
    or a watch batch;
  - a drift is in scope when it was open at any moment of the period, which needs its whole
    event history up to the period's end;
  - a revert attempt (and a ``revert_capped`` event) belongs to the period of its run;
  - an adoption belongs to the period it was made in and to the one its drift resolved in,
    seen as of the period's end (a merge seen later is not known to the period).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from . import schema
from .completeness import transient_change_sql
from .dialect import dialect_of
from .verify import VerifyResult, verify

_CHUNK = 500


@dataclass(frozen=True, slots=True)
class RunRow:
    id: int
    cluster: str
    started_at: str
    ended_at: str
    status: str
    git_commits: dict[str, str]
    counts: dict[str, Any]
    tool_version: str
    config_hash: str
    problems: list[dict[str, Any]]
    skipped_kinds: list[str]
    mode: str = "run"  # run: a scheduled audit; watch: one batch of watch events


@dataclass(frozen=True, slots=True)
class ChangeRow:
    id: int
    seq: int
    run_id: int
    detected_at: str
    cluster: str
    object_id: int
    group: str
    kind: str
    namespace: str
    name: str
    change: str
    time: str
    manager: str
    operation: str
    category: str
    user: str
    user_source: str
    authorized: bool | None
    version_id: int
    prev_version_id: int | None
    mode: str = "run"  # of the run that recorded it
    # No scheduled run saw this version as current (:mod:`.completeness`).
    transient: bool = False


@dataclass(frozen=True, slots=True)
class DriftRow:
    id: int
    seq: int
    object_id: int
    group: str
    kind: str
    namespace: str
    name: str
    status: str
    items: list[dict[str, Any]]
    category: str
    manager: str
    source_file: str
    source_commit: str
    run_id: int
    opened_at: str


@dataclass(frozen=True, slots=True)
class DriftEventRow:
    id: int
    seq: int
    drift_id: int
    run_id: int | None
    at: str
    event: str
    how: str
    by: str
    reason: str
    expires: str
    related_drift_id: int | None


@dataclass(frozen=True, slots=True)
class CommitRow:
    id: int
    run_id: int | None
    repo: str
    sha: str
    author: str
    author_email: str
    date: str
    subject: str
    pr: int | None
    trailers: list[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class CheckpointRow:
    id: int
    run_id: int | None
    seq: int
    head_hash: str
    at: str
    signed: bool


def _loads(text: str | None, default: Any) -> Any:
    return orjson.loads(text) if text else default


def _mode_column(conn: sqlite3.Connection, alias: str = "") -> str:
    """``runs.mode`` where the ledger has it (schema step 6), else every run is scheduled."""
    return f"{alias}mode" if schema.has_run_mode(conn) else "'run'"


def runs_between(conn: sqlite3.Connection, start: str, end: str,
                 modes: tuple[str, ...] = ("run",)) -> list[RunRow]:
    """Every run of ``modes`` (default: scheduled runs only; ``("run", "watch")`` adds the
    watch batches) that started in ``[start, end)``, oldest first, whatever its status."""
    mode = _mode_column(conn)
    out = []
    for (rid, cluster, started, ended, status, commits, counts, version, config_hash, problems,
         skipped, run_mode) in conn.execute(
            f"SELECT id, cluster, started_at, ended_at, status, git_commits, counts, "
            f"tool_version, config_hash, problems, skipped_kinds, {mode} FROM runs "
            f"WHERE started_at >= ? AND started_at < ? AND {mode} IN "
            f"({', '.join('?' * len(modes))}) ORDER BY started_at, id", (start, end, *modes)):
        out.append(RunRow(int(rid), cluster or "", started, ended or "", status,
                          _loads(commits, {}), _loads(counts, {}), version or "",
                          config_hash or "", _loads(problems, []), _loads(skipped, []),
                          str(run_mode)))
    return out


def runs_by_id(conn: sqlite3.Connection, run_ids: Iterable[int]) -> dict[int, RunRow]:
    """The runs ``run_ids`` (any mode), read in chunks."""
    ids = sorted(set(run_ids))
    mode = _mode_column(conn)
    out: dict[int, RunRow] = {}
    for i in range(0, len(ids), _CHUNK):
        chunk = ids[i:i + _CHUNK]
        for (rid, cluster, started, ended, status, commits, counts, version, config_hash,
             problems, skipped, run_mode) in conn.execute(
                f"SELECT id, cluster, started_at, ended_at, status, git_commits, counts, "
                f"tool_version, config_hash, problems, skipped_kinds, {mode} FROM runs "
                f"WHERE id IN ({','.join('?' * len(chunk))})", chunk):
            out[int(rid)] = RunRow(int(rid), cluster or "", started, ended or "", status,
                                   _loads(commits, {}), _loads(counts, {}), version or "",
                                   config_hash or "", _loads(problems, []),
                                   _loads(skipped, []), str(run_mode))
    return out


def first_runs(conn: sqlite3.Connection) -> dict[str, str]:
    """``{cluster: start of its first scheduled run}`` over the whole ledger."""
    return {str(c or ""): str(t) for c, t in conn.execute(
        f"SELECT cluster, min(started_at) FROM runs WHERE {_mode_column(conn)} = 'run' "
        "GROUP BY cluster")}


def cluster_names(conn: sqlite3.Connection) -> list[str]:
    """The cluster names the ledger's runs recorded, most recently used first (a fleet report
    names a ledger by its cluster, even when the period has no run of it)."""
    return [str(c) for c, in conn.execute(
        "SELECT cluster FROM runs WHERE cluster IS NOT NULL AND cluster != '' "
        "GROUP BY cluster ORDER BY max(started_at) DESC, cluster")]


def changes_between(conn: sqlite3.Connection, start: str, end: str) -> list[ChangeRow]:
    """Every change recorded by a run that started in ``[start, end)``, in chain order."""
    out = []
    watched = schema.has_run_mode(conn)
    mode = "r.mode" if watched else "'run'"
    transient = (transient_change_sql("c", "r", "o", dialect=dialect_of(conn)) if watched
                 else "0")
    for row in conn.execute(
            f"SELECT c.id, c.seq, c.run_id, r.started_at, r.cluster, c.object_id, o.grp, "
            f"o.kind, o.namespace, o.name, c.change, c.time, c.manager, c.operation, "
            f"c.category, c.user, c.user_source, c.authorized, c.version_id, "
            f"c.prev_version_id, {mode}, {transient} "
            f"FROM changes c JOIN runs r ON r.id = c.run_id JOIN objects o ON o.id = c.object_id "
            f"WHERE r.started_at >= ? AND r.started_at < ? ORDER BY c.seq", (start, end)):
        (cid, seq, run_id, detected, cluster, oid, grp, kind, ns, name, change, time, manager,
         operation, category, user, user_source, authorized, vid, prev, run_mode,
         is_transient) = row
        out.append(ChangeRow(int(cid), int(seq), int(run_id), detected, cluster or "", int(oid),
                             grp or "", kind, ns or "", name, change, time or "", manager or "",
                             operation or "", category or "unknown", user or "",
                             user_source or "",
                             None if authorized is None else bool(authorized), int(vid),
                             None if prev is None else int(prev), str(run_mode),
                             bool(is_transient)))
    return out


def drift_history(conn: sqlite3.Connection, end: str) -> tuple[list[DriftRow], list[DriftEventRow]]:
    """Every drift opened before ``end`` and every lifecycle event before ``end`` (in chain
    order), so a drift's state at any moment of the period can be replayed."""
    drifts = []
    for row in conn.execute(
            "SELECT d.id, d.seq, d.object_id, o.grp, o.kind, o.namespace, o.name, d.status, "
            "d.items, d.category, d.manager, d.source_file, d.source_commit, d.run_id, "
            "d.opened_at FROM drifts d JOIN objects o ON o.id = d.object_id "
            "WHERE d.opened_at < ? ORDER BY d.id", (end,)):
        (did, seq, oid, grp, kind, ns, name, status, items, category, manager, source_file,
         source_commit, run_id, opened) = row
        drifts.append(DriftRow(int(did), int(seq), int(oid), grp or "", kind, ns or "", name,
                               status, _loads(items, []), category or "unknown", manager or "",
                               source_file or "", source_commit or "", int(run_id), opened))
    events = []
    for (eid, seq, did, run_id, at, event, how, by, reason, expires, related) in conn.execute(
            "SELECT id, seq, drift_id, run_id, at, event, how, by, reason, expires, "
            "related_drift_id FROM drift_events WHERE at < ? ORDER BY seq", (end,)):
        events.append(DriftEventRow(int(eid), int(seq), int(did),
                                    None if run_id is None else int(run_id), at, event,
                                    how or "", by or "", reason or "", expires or "",
                                    None if related is None else int(related)))
    return drifts, events


def commits(conn: sqlite3.Connection) -> list[CommitRow]:
    """Every Git commit the ledger audited."""
    out = []
    for cid, run_id, repo, sha, author, email, date, subject, pr, trailers in conn.execute(
            "SELECT id, run_id, repo, sha, author, author_email, date, subject, pr, trailers "
            "FROM commits ORDER BY id"):
        out.append(CommitRow(int(cid), None if run_id is None else int(run_id), repo or "", sha, author or "", email or "", date or "",
                             subject or "", None if pr is None else int(pr),
                             [(str(k), str(v)) for k, v in _loads(trailers, [])]))
    return out


def checkpoint_at(conn: sqlite3.Connection, end: str | None = None) -> CheckpointRow | None:
    """The newest checkpoint written before ``end`` (``None``: the newest of all)."""
    sql = "SELECT id, run_id, seq, head_hash, at, signature FROM checkpoints"
    params: tuple[Any, ...] = ()
    if end is not None:
        sql += " WHERE at < ?"
        params = (end,)
    row = conn.execute(sql + " ORDER BY id DESC LIMIT 1", params).fetchone()
    if row is None:
        return None
    cid, run_id, seq, head_hash, at, signature = row
    return CheckpointRow(int(cid), None if run_id is None else int(run_id), int(seq), head_hash,
                         at, bool(signature))


def namespaces_until(conn: sqlite3.Connection, end: str) -> list[str]:
    """Namespaces of the objects the ledger had observed before ``end``."""
    return [str(r[0]) for r in conn.execute(
        "SELECT DISTINCT o.namespace FROM objects o WHERE o.namespace != '' AND EXISTS "
        "(SELECT 1 FROM object_versions v WHERE v.object_id = o.id AND v.observed_at < ?) "
        "ORDER BY 1", (end,))]


def object_count_until(conn: sqlite3.Connection, end: str) -> int:
    return int(conn.execute("SELECT count(DISTINCT object_id) FROM object_versions "
                            "WHERE observed_at < ?", (end,)).fetchone()[0])


def contents(conn: sqlite3.Connection, version_ids: Iterable[int]) -> Iterator[tuple[int, bytes]]:
    """``(version_id, content JSON)`` for the versions whose content retention kept."""
    ids = sorted(set(version_ids))
    for i in range(0, len(ids), _CHUNK):
        chunk = ids[i:i + _CHUNK]
        marks = ",".join("?" * len(chunk))
        for vid, content in conn.execute(
                f"SELECT version_id, content FROM contents WHERE version_id IN ({marks})", chunk):
            yield int(vid), content.encode() if isinstance(content, str) else content


def _has_table(conn: sqlite3.Connection, name: str) -> bool:
    return name in schema.tables(conn)


def policy_runs_between(conn: sqlite3.Connection, start: str, end: str) -> list[dict[str, Any]]:
    """The policy summary of each run that started in ``[start, end)``: ``run_id``, ``at``,
    ``score`` and ``counts`` (per policy: pass/fail/skip/error/exempted with its catalog
    entry). Empty when the policy feature never ran."""
    if not _has_table(conn, "policy_runs"):
        return []
    out = []
    for run_id, at, score, counts in conn.execute(
            "SELECT p.run_id, p.at, p.score, p.counts FROM policy_runs p "
            "JOIN runs r ON r.id = p.run_id WHERE r.started_at >= ? AND r.started_at < ? "
            "ORDER BY r.started_at, p.run_id", (start, end)):
        out.append({"run_id": int(run_id), "at": at, "score": score,
                    "counts": _loads(counts, {})})
    return out


def policy_transitions_until(conn: sqlite3.Connection, end: str) -> list[dict[str, Any]]:
    """Every change of a policy result recorded by a run that started before ``end``, in
    chain order (replaying them gives each (policy, object)'s result at any moment)."""
    if not _has_table(conn, "policy_results"):
        return []
    out = []
    for (rid, run_id, started, policy, grp, kind, ns, name, status, prev, severity, messages,
         exemption) in conn.execute(
            "SELECT p.id, p.run_id, r.started_at, p.policy, p.grp, p.kind, p.namespace, p.name, "
            "p.status, p.prev_status, p.severity, p.messages, p.exemption FROM policy_results p "
            "JOIN runs r ON r.id = p.run_id WHERE r.started_at < ? ORDER BY p.seq", (end,)):
        out.append({"id": int(rid), "run_id": int(run_id), "at": started, "policy": policy,
                    "group": grp or "", "kind": kind, "namespace": ns or "", "name": name,
                    "status": status, "prev_status": prev or "", "severity": severity or "",
                    "messages": _loads(messages, []), "exemption": _loads(exemption, None)})
    return out


def verify_ledger(conn: sqlite3.Connection) -> VerifyResult:
    """The ledger's own verification, read-only: the chain, every chained row (policy rows
    and adoptions included), every stored content and every checkpoint (:mod:`.verify`)."""
    return verify(conn)


def _run_clusters(conn: sqlite3.Connection, run_ids: Iterable[int]) -> dict[int, str]:
    ids = sorted(set(run_ids))
    out: dict[int, str] = {}
    for i in range(0, len(ids), _CHUNK):
        chunk = ids[i:i + _CHUNK]
        out.update((int(r), str(c or "")) for r, c in conn.execute(
            f"SELECT id, cluster FROM runs WHERE id IN ({','.join('?' * len(chunk))})", chunk))
    return out


def reverts_between(conn: sqlite3.Connection, start: str, end: str) -> list[dict[str, Any]]:
    """Every revert attempt made in ``[start, end)`` (its run's start time), oldest first, as
    :func:`auditor.ledger.reverts.history` gives it, plus the run's ``cluster``. Empty for a
    ledger written before auto-revert existed."""
    if not _has_table(conn, "reverts"):
        return []
    from .reverts import history

    rows = [r for r in history(conn, since=start) if r["at"] < end]
    clusters = _run_clusters(conn, (int(r["run_id"]) for r in rows))
    return [{**r, "cluster": clusters.get(int(r["run_id"]), "")} for r in rows]


def revert_caps_between(conn: sqlite3.Connection, start: str, end: str) -> list[dict[str, Any]]:
    """The ``revert_capped`` chain events of runs in ``[start, end)``: ``seq``, ``run_id``,
    ``at``, ``cluster`` and the event's ``mode``, ``cap``, ``planned`` and ``keys``.
    (reverts.py has no reader for them: the outbox reads them one run at a time.)"""
    out = []
    for seq, at, run_id, payload, cluster in conn.execute(
            "SELECT e.seq, e.at, e.run_id, e.payload, r.cluster FROM events e "
            "LEFT JOIN runs r ON r.id = e.run_id WHERE e.type = 'revert_capped' "
            "AND e.at >= ? AND e.at < ? ORDER BY e.seq", (start, end)):
        doc = _loads(payload, {})
        out.append({"seq": int(seq), "at": at, "run_id": None if run_id is None else int(run_id),
                    "cluster": cluster or "", "mode": str(doc.get("mode", "")),
                    "cap": int(doc.get("cap", 0) or 0), "planned": int(doc.get("planned", 0) or 0),
                    "keys": [str(k) for k in doc.get("keys", [])]})
    return out


def adoptions_between(conn: sqlite3.Connection, start: str, end: str) -> list[dict[str, Any]]:
    """Adoptions that belong to ``[start, end)``: made in it, or whose drift was resolved in
    it (the merge a later period saw still evidences an earlier emergency change).

    Each is :func:`auditor.ledger.adoptions.adoptions`'s dict as of now, plus ``users`` (the
    audit-log identities behind the drift), ``resolved_heads`` (the Git heads the resolving
    run compared against: a merge commit lands there) and ``cluster`` (of the resolving run,
    else of the run that opened the drift). A resolution after ``end`` is not known to the
    period: resolution fields are cleared and the outcome reads as pending at the end.
    """
    if not _has_table(conn, "adoptions"):
        return []
    from .adoptions import adoptions, users

    out = []
    for a in adoptions(conn):
        resolved_at = a["resolved_at"] or ""
        made_in = start <= a["at"] < end
        resolved_in = bool(resolved_at) and start <= resolved_at < end
        if not made_in and not resolved_in:
            continue
        if resolved_at and resolved_at >= end:
            # The period's view: the resolution had not been seen yet.
            a = {**a, "resolution": None, "resolved_at": None, "resolved_run": None,
                 "outcome": "pending merge at the period's end"}
        if a["merged_commit"]:
            # Nor the merge, unless a run of the period (or before) audited the commit.
            seen = conn.execute("SELECT min(r.started_at) FROM commits c JOIN runs r "
                                "ON r.id = c.run_id WHERE c.sha = ?",
                                (a["merged_commit"],)).fetchone()[0]
            if not seen or seen >= end:
                a = {**a, "merged": False, "merged_commit": None}
        heads: dict[str, str] = {}
        cluster = ""
        if a["resolved_run"] is not None:
            row = conn.execute("SELECT git_commits, cluster FROM runs WHERE id = ?",
                               (a["resolved_run"],)).fetchone()
            if row is not None:
                heads, cluster = _loads(row[0], {}), str(row[1] or "")
        if not cluster and a["drift_id"] is not None:
            row = conn.execute("SELECT r.cluster FROM drifts d JOIN runs r ON r.id = d.run_id "
                               "WHERE d.id = ?", (a["drift_id"],)).fetchone()
            cluster = str(row[0] or "") if row else ""
        out.append({**a, "users": users(conn, a["drift_id"]) if a["drift_id"] is not None
                    else [], "resolved_heads": heads, "cluster": cluster})
    return out
