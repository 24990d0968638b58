"""Ledger tables for compliance policy results: what each run found, per policy and object,
and how results changed over time.

Cost follows change, as in the rest of the ledger: a run writes one row per (policy, object)
whose result *changed* (``policy_results``, append-only, each row mirrored by a
``policy_result`` chain event), one summary row (``policy_runs``, chained as
``policy_run``) with counts per policy and severity and the compliance score, and refreshes
two caches: ``policy_state`` (the current result per policy and object) and
``policy_cache`` (per object: the content hash evaluated and each policy's outcome, so a
steady-state run re-evaluates only objects whose content or policies changed).

Both tables' rows are the payloads of plain events (``schema.EVENT_ROWS``), so
``drift-auditor verify`` checks them against the chain like every chained row.

Tables
  policy_results  id, seq, run_id, at, policy, grp, kind, namespace, name, api_version,
                  status (pass|fail|skip|error|absent), prev_status, severity, messages,
                  exemption
  policy_runs     run_id, seq, at, score, policies, results, evaluated, reused, counts,
                  problems; ``counts`` maps each policy to its pass/fail/skip/error/exempted
                  counts plus its title, severity, category, controls, description and
                  remediation
  policy_state    cache: the newest result per (policy, object)
  policy_cache    cache: per object ref, content hash and outcomes per policy slot
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from auditor.engine.records import ResourceKey

from . import chain
from .schema import EVENT_ROWS

if TYPE_CHECKING:
    from .store import Run

RESULT_COLUMNS = EVENT_ROWS["policy_results"][0]
RUN_COLUMNS = EVENT_ROWS["policy_runs"][0]
# Outcomes cached per object: {slot: [status, [messages]]}.
CachedObject = tuple[str, Mapping[str, tuple[str, tuple[str, ...]]]]


class ResultLike(Protocol):
    """What the ledger needs of a policy result (``auditor.policies.PolicyResult``)."""

    @property
    def policy(self) -> str: ...
    @property
    def key(self) -> ResourceKey: ...
    @property
    def api_version(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def severity(self) -> str: ...
    @property
    def messages(self) -> tuple[str, ...]: ...
    @property
    def exemption(self) -> Any: ...


@dataclass
class PolicyRunRecord:
    """One run's policy evaluation, as the ledger stores it.

    ``cache`` holds only the objects whose cache entry changed; ``seen`` every object ref
    evaluated this run (cache entries of the others are dropped when the run is complete).
    """

    results: Sequence[ResultLike]
    score: float
    policies: int
    evaluated: int = 0
    reused: int = 0
    problems: Sequence[str] = ()
    cache: Mapping[str, CachedObject] = field(default_factory=dict)
    seen: Collection[str] | None = None
    skipped_kinds: Collection[str] = ()
    complete: bool = True
    # Per policy: title, severity, category, controls, description, remediation — so outputs
    # reading the ledger can describe policies (and list those that matched nothing).
    catalog: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


@dataclass
class PolicyRunSummary:
    changed: int = 0
    newly_failing: int = 0
    fixed: int = 0
    absent: int = 0


def _json(value: Any) -> str:
    return chain.canonical(value).decode()


def _exemption(value: Any) -> str | None:
    if value is None:
        return None
    doc = (dataclasses.asdict(value) if dataclasses.is_dataclass(value)
           and not isinstance(value, type) else dict(value))
    return _json(doc)


def load_cache(conn: sqlite3.Connection) -> dict[str, CachedObject]:
    """The per-object outcome cache, for the engine's steady-state skip."""
    out: dict[str, CachedObject] = {}
    for ref, digest, outcomes in conn.execute(
            "SELECT ref, content_hash, outcomes FROM policy_cache"):
        raw = orjson.loads(outcomes)
        out[ref] = (digest, {slot: (v[0], tuple(v[1])) for slot, v in raw.items()})
    return out


def record(run: Run, rec: PolicyRunRecord) -> PolicyRunSummary:
    """Stage one run's policy results in the run's batch: they commit with the run's end,
    so a crashed run leaves none of them. Call before :meth:`Run.finish`."""
    run._check_open()
    conn = run.ledger.conn
    batch = run._batch
    at = run.started_at
    state: dict[tuple[str, str, str, str, str], tuple[str, str, str | None]] = {
        (p, g, k, ns, n): (s, m, e) for p, g, k, ns, n, s, m, e in conn.execute(
            "SELECT policy, grp, kind, namespace, name, status, messages, exemption "
            "FROM policy_state")}
    next_id = int(conn.execute("SELECT coalesce(max(id), 0) FROM policy_results")
                  .fetchone()[0]) + 1
    summary = PolicyRunSummary()
    counts: dict[str, dict[str, Any]] = {
        name: {**dict(meta), "pass": 0, "fail": 0, "skip": 0, "error": 0, "exempted": 0}
        for name, meta in rec.catalog.items()}
    seen_pairs = set()

    def transition(ident: tuple[str, str, str, str, str], api_version: str, status: str,
                   prev: str | None, severity: str, messages: str,
                   exemption: str | None) -> None:
        nonlocal next_id
        row = {"id": next_id, "run_id": run.id, "at": at, "policy": ident[0], "grp": ident[1],
               "kind": ident[2], "namespace": ident[3], "name": ident[4],
               "api_version": api_version, "status": status, "prev_status": prev,
               "severity": severity, "messages": messages, "exemption": exemption}
        event = batch.event("policy_result", at, run.id, row)
        batch.plain(f"INSERT INTO policy_results (seq, {', '.join(RESULT_COLUMNS)}) VALUES "
                    f"({', '.join('?' * (len(RESULT_COLUMNS) + 1))})",
                    (event.seq, *(row[c] for c in RESULT_COLUMNS)))
        if status == "absent":
            batch.plain("DELETE FROM policy_state WHERE policy = ? AND grp = ? AND kind = ? "
                        "AND namespace = ? AND name = ?", ident)
        else:
            # The portable upsert (SQLite and PostgreSQL): every column is listed, so
            # updating the non-key ones is the row INSERT OR REPLACE would have written.
            batch.plain("INSERT INTO policy_state (policy, grp, kind, namespace, "
                        "name, status, severity, messages, exemption, since_run, result_id) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                        "ON CONFLICT (policy, grp, kind, namespace, name) DO UPDATE SET "
                        "status = excluded.status, severity = excluded.severity, "
                        "messages = excluded.messages, exemption = excluded.exemption, "
                        "since_run = excluded.since_run, result_id = excluded.result_id",
                        (*ident, status, severity, messages, exemption, run.id, next_id))
        next_id += 1
        summary.changed += 1
        if status == "fail" and prev != "fail":
            summary.newly_failing += 1
        if prev == "fail" and status in ("pass", "skip"):
            summary.fixed += 1
        run._flush_if_full()

    for r in rec.results:
        key = r.key
        ident = (r.policy, key.group, key.kind, key.namespace, key.name)
        seen_pairs.add(ident)
        c = counts.setdefault(r.policy, {"severity": r.severity, "pass": 0, "fail": 0,
                                         "skip": 0, "error": 0, "exempted": 0})
        c[r.status] = c.get(r.status, 0) + 1
        if r.status == "skip" and r.exemption is not None:
            c["exempted"] += 1
        messages = _json(list(r.messages))
        exemption = _exemption(r.exemption)
        prev = state.get(ident)
        if prev is not None and prev == (r.status, messages, exemption):
            continue
        transition(ident, r.api_version, r.status, prev[0] if prev else None, r.severity,
                   messages, exemption)
    if rec.complete:
        skipped = set(rec.skipped_kinds)
        for ident, (status, _m, _e) in sorted(state.items()):
            if ident in seen_pairs:
                continue
            group_kind = f"{ident[2]}.{ident[1]}" if ident[1] else ident[2]
            if ident[2] in skipped or group_kind in skipped:
                continue
            # Object gone, out of scope, or the policy removed: the pair has no result now.
            transition(ident, "", "absent", status, "", "[]", None)
            summary.absent += 1
    row = {"run_id": run.id, "at": at, "score": float(rec.score), "policies": rec.policies,
           "results": len(rec.results), "evaluated": rec.evaluated, "reused": rec.reused,
           "counts": _json(dict(sorted(counts.items()))), "problems": _json(list(rec.problems))}
    event = batch.event("policy_run", at, run.id, row)
    batch.plain(f"INSERT INTO policy_runs (seq, {', '.join(RUN_COLUMNS)}) VALUES "
                f"({', '.join('?' * (len(RUN_COLUMNS) + 1))})",
                (event.seq, *(row[c] for c in RUN_COLUMNS)))
    for ref, (digest, outcomes) in rec.cache.items():
        batch.plain("INSERT INTO policy_cache (ref, content_hash, outcomes) "
                    "VALUES (?, ?, ?) ON CONFLICT (ref) DO UPDATE SET "
                    "content_hash = excluded.content_hash, outcomes = excluded.outcomes",
                    (ref, digest, _json({k: [v[0], list(v[1])] for k, v in outcomes.items()})))
    if rec.complete and rec.seen is not None:
        seen = set(rec.seen)
        for (ref,) in conn.execute("SELECT ref FROM policy_cache"):
            if ref not in seen and ref not in rec.cache:
                batch.plain("DELETE FROM policy_cache WHERE ref = ?", (ref,))
    run._flush_if_full()
    return summary


# ------------------------------------------------------------------------- reads


def _rows(conn: sqlite3.Connection, sql: str, params: Iterable[Any] = ()) -> list[dict[str, Any]]:
    cur = conn.execute(sql, tuple(params))
    names = [d[0] for d in cur.description]
    out = []
    for values in cur.fetchall():
        row = dict(zip(names, values, strict=True))
        for name in ("messages", "counts", "problems"):
            if isinstance(row.get(name), str):
                row[name] = orjson.loads(row[name])
        if isinstance(row.get("exemption"), str):
            row["exemption"] = orjson.loads(row["exemption"])
        out.append(row)
    return out


def latest_run(conn: sqlite3.Connection) -> dict[str, Any] | None:
    """The newest run's policy summary: score, counts per policy (with severity)."""
    rows = _rows(conn, "SELECT * FROM policy_runs ORDER BY run_id DESC LIMIT 1")
    return rows[0] if rows else None


def run_summary(conn: sqlite3.Connection, run_id: int) -> dict[str, Any] | None:
    rows = _rows(conn, "SELECT * FROM policy_runs WHERE run_id = ?", (run_id,))
    return rows[0] if rows else None


def scores(conn: sqlite3.Connection, limit: int = 100) -> list[dict[str, Any]]:
    """``[{run_id, at, score}]``, oldest first (the score's trend for reports)."""
    rows = _rows(conn, "SELECT run_id, at, score FROM policy_runs ORDER BY run_id DESC LIMIT ?",
                 (limit,))
    return rows[::-1]


def newly_failing(conn: sqlite3.Connection, run_id: int,
                  severities: Sequence[str] = ("critical", "high")) -> list[dict[str, Any]]:
    """Results that started failing in ``run_id`` (for Slack: alert once, not every run)."""
    marks = ", ".join("?" * len(severities))
    return _rows(conn, f"SELECT * FROM policy_results WHERE run_id = ? AND status = 'fail' "
                       f"AND coalesce(prev_status, '') != 'fail' AND severity IN ({marks}) "
                       "ORDER BY id", (run_id, *severities))


def current(conn: sqlite3.Connection, status: str | None = None) -> list[dict[str, Any]]:
    """The current result per policy and object (optionally only one status)."""
    if status:
        return _rows(conn, "SELECT * FROM policy_state WHERE status = ? ORDER BY policy, grp, "
                           "kind, namespace, name", (status,))
    return _rows(conn, "SELECT * FROM policy_state ORDER BY policy, grp, kind, namespace, name")


def transitions(conn: sqlite3.Connection, *, policy: str | None = None,
                namespace: str | None = None, name: str | None = None,
                since_run: int | None = None) -> list[dict[str, Any]]:
    """Changes of result over time, oldest first."""
    clauses: list[str] = []
    params: list[Any] = []
    for column, value in (("policy", policy), ("namespace", namespace), ("name", name)):
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    if since_run is not None:
        clauses.append("run_id >= ?")
        params.append(since_run)
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    return _rows(conn, f"SELECT * FROM policy_results{where} ORDER BY id", params)


def verify_rows(conn: sqlite3.Connection) -> list[tuple[int, str]]:
    """Each policy row against its chain event: ``[(seq, problem)]``, empty when intact
    (``verify`` checks them as part of the whole ledger)."""
    from .verify import rows_against_events

    return rows_against_events(conn, ("policy_results", "policy_runs"))
