"""Read-only aggregates of the ledger for Prometheus metrics (:mod:`auditor.outputs.metrics`).

Everything is an aggregate over bounded labels (status, namespace, kind, category, how):
never object names. Run figures (the last run, runs by status) are of scheduled runs only;
changes and drift events count whatever recorded them, watch batches included. Counters are counts of chained rows (runs, drift events, changes), so
they only grow as long as the ledger does — which is what Prometheus expects of a counter
that is recomputed rather than incremented.

The GitOps figures (sources derived from Argo CD / Flux, sync lag, namespaces not under
GitOps) are those of the newest complete scheduled run, when it read the controllers
(:func:`auditor.ledger.gitopsquery.latest`).
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from auditor.engine.records import ObjectResult

from . import gitopsquery, outbox, schema
from .dialect import dialect_of

# Upper bounds (seconds) of the open-drift age bands, and their label values.
AGE_BANDS: tuple[tuple[float, str], ...] = (
    (3600.0, "lt_1h"), (86400.0, "1h_to_1d"), (7 * 86400.0, "1d_to_7d"),
    (float("inf"), "gt_7d"))
CATEGORIES = ("human", "controller", "gitops", "unknown")
BREAKDOWN_KEY = "by_namespace_kind"


def _epoch(stamp: str | None) -> float | None:
    if not stamp:
        return None
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def age_band(seconds: float) -> str:
    for bound, label in AGE_BANDS:
        if seconds < bound:
            return label
    return AGE_BANDS[-1][1]


def breakdown(results: Iterable[ObjectResult]) -> list[list[Any]]:
    """``[[namespace, kind, group, status, count], ...]`` of one run's results — what the
    pipeline may store in the run's counts under :data:`BREAKDOWN_KEY` so that in-sync
    objects per namespace and kind (which the ledger does not otherwise keep) can be
    reported."""
    counts = Counter((r.key.namespace, r.key.kind, r.key.group, r.status) for r in results)
    return [[*k, n] for k, n in sorted(counts.items())]


@dataclass
class LedgerStats:
    """What the metrics show, read from one ledger at one moment."""

    now: float
    cluster: str = ""
    last_run: dict[str, Any] | None = None
    last_complete_at: float | None = None
    runs_by_status: dict[str, int] = field(default_factory=dict)
    # (namespace, kind, group, status) -> objects
    objects: dict[tuple[str, str, str, str], int] = field(default_factory=dict)
    objects_breakdown_complete: bool = False
    open_by_category_age: dict[tuple[str, str], int] = field(default_factory=dict)
    oldest_open_by_category: dict[str, float] = field(default_factory=dict)
    accepted_by_category: dict[str, int] = field(default_factory=dict)
    opened_by_category: dict[str, int] = field(default_factory=dict)
    resolved_by_how: dict[str, int] = field(default_factory=dict)
    # category -> (count, sum of seconds) of remediated drift episodes
    remediation: dict[str, tuple[int, float]] = field(default_factory=dict)
    changes: dict[tuple[str, str], int] = field(default_factory=dict)
    outbox: dict[str, int] = field(default_factory=dict)
    head_seq: int = 0
    # (policy, severity, status) -> objects, from the current policy results
    policies: dict[tuple[str, str, str], int] = field(default_factory=dict)
    policy_score: float | None = None
    # (namespace, kind, group, name, category) -> age, only when asked for (object_labels)
    open_drift_ages: dict[tuple[str, str, str, str, str], float] = field(default_factory=dict)
    # The newest complete run's view of the GitOps controllers (None: no run read them).
    gitops: gitopsquery.GitopsRun | None = None


def read(conn: sqlite3.Connection, *, now: float, object_labels: bool = False) -> LedgerStats:
    """All aggregates in one pass of small GROUP BY queries; ``object_labels`` adds the age
    of each open drift by object."""
    stats = LedgerStats(now=now)
    # Runs are the scheduled audits: a watch batch (runs.mode 'watch') judges only the
    # objects it saw, so neither its counts nor its success say anything of the cluster.
    scheduled = "mode = 'run'" if schema.has_run_mode(conn) else "1 = 1"
    row = conn.execute(f"SELECT id, cluster, started_at, ended_at, status, counts, "
                       f"skipped_kinds, problems FROM runs WHERE status != 'running' "
                       f"AND {scheduled} ORDER BY id DESC LIMIT 1").fetchone()
    if row is not None:
        counts = orjson.loads(row[5] or "{}")
        stats.cluster = str(row[1] or "")
        stats.last_run = {"id": row[0], "cluster": row[1], "started": _epoch(row[2]),
                          "ended": _epoch(row[3]), "status": row[4], "counts": counts,
                          "skipped_kinds": len(orjson.loads(row[6] or "[]")),
                          "problems": len(orjson.loads(row[7] or "[]"))}
        rows = counts.get(BREAKDOWN_KEY) if isinstance(counts, Mapping) else None
        if isinstance(rows, list):
            stats.objects_breakdown_complete = True
            for ns, kind, grp, status, n in rows:
                if status != "ignored":
                    stats.objects[(str(ns), str(kind), str(grp), str(status))] = int(n)
    last_ok = conn.execute(f"SELECT max(ended_at) FROM runs WHERE status = 'complete' "
                           f"AND {scheduled}").fetchone()
    stats.last_complete_at = _epoch(last_ok[0]) if last_ok else None
    for status, n in conn.execute(f"SELECT status, count(*) FROM runs WHERE status != 'running' "
                                  f"AND {scheduled} GROUP BY status"):
        stats.runs_by_status[str(status)] = int(n)
    if not stats.objects_breakdown_complete:
        # Without the run's breakdown, the ledger still knows every object that is not in
        # sync: exactly its open (or accepted) drifts.
        for ns, kind, grp, status, n in conn.execute(
                "SELECT o.namespace, o.kind, o.grp, d.status, count(*) FROM drift_state s "
                "JOIN drifts d ON d.id = s.drift_id JOIN objects o ON o.id = d.object_id "
                "WHERE s.state IN ('open', 'accepted') GROUP BY 1, 2, 3, 4"):
            stats.objects[(str(ns), str(kind), str(grp), str(status))] = int(n)
    for category, state, episode, ns, kind, grp, name in conn.execute(
            "SELECT d.category, s.state, (SELECT max(e.at) FROM drift_events e WHERE "
            "e.drift_id = d.id AND e.event IN ('opened', 'reopened')), o.namespace, o.kind, "
            "o.grp, o.name FROM drift_state s JOIN drifts d ON d.id = s.drift_id "
            "JOIN objects o ON o.id = d.object_id WHERE s.state IN ('open', 'accepted')"):
        cat = str(category or "unknown")
        if state == "accepted":
            stats.accepted_by_category[cat] = stats.accepted_by_category.get(cat, 0) + 1
            continue
        age = max(0.0, now - (_epoch(episode) or now))
        band = (cat, age_band(age))
        stats.open_by_category_age[band] = stats.open_by_category_age.get(band, 0) + 1
        stats.oldest_open_by_category[cat] = max(stats.oldest_open_by_category.get(cat, 0.0), age)
        if object_labels:
            ident = (str(ns), str(kind), str(grp), str(name), cat)
            stats.open_drift_ages[ident] = max(stats.open_drift_ages.get(ident, 0.0), age)
    for category, n in conn.execute(
            "SELECT d.category, count(*) FROM drift_events e JOIN drifts d ON d.id = e.drift_id "
            "WHERE e.event IN ('opened', 'reopened') GROUP BY 1"):
        stats.opened_by_category[str(category or "unknown")] = int(n)
    for how, n in conn.execute("SELECT how, count(*) FROM drift_events WHERE event = 'resolved' "
                               "GROUP BY 1"):
        stats.resolved_by_how[str(how or "unknown")] = int(n)
    # Time to remediation: from the episode's opening to its resolution. A superseded drift
    # was not remediated (the object still drifts, differently), so it is left out.
    for category, resolved_at, opened_at in conn.execute(
            "SELECT d.category, r.at, (SELECT max(o.at) FROM drift_events o WHERE "
            "o.drift_id = r.drift_id AND o.event IN ('opened', 'reopened') AND o.seq < r.seq) "
            "FROM drift_events r JOIN drifts d ON d.id = r.drift_id "
            "WHERE r.event = 'resolved' AND coalesce(r.how, '') != 'superseded'"):
        start, end = _epoch(opened_at), _epoch(resolved_at)
        if start is None or end is None:
            continue
        cat = str(category or "unknown")
        count, total = stats.remediation.get(cat, (0, 0.0))
        stats.remediation[cat] = (count + 1, total + max(0.0, end - start))
    for category, authorized, n in conn.execute(
            "SELECT category, authorized, count(*) FROM changes GROUP BY 1, 2"):
        verdict = "unknown" if authorized is None else "true" if authorized else "false"
        key = (str(category or "unknown"), verdict)
        stats.changes[key] = stats.changes.get(key, 0) + int(n)
    stats.outbox = outbox.read_counts(conn)
    tables = schema.tables(conn)
    if {"policy_state", "policy_runs"} <= tables:
        # 'absent': the object is gone; its last result is history, not a current finding.
        for policy, severity, status, n in conn.execute(
                "SELECT policy, severity, status, count(*) FROM policy_state "
                "WHERE status != 'absent' GROUP BY 1, 2, 3"):
            stats.policies[(str(policy), str(severity or ""), str(status))] = int(n)
        # run_id may be NULL: last, as SQLite orders DESC (PostgreSQL would put it first).
        score = conn.execute("SELECT score FROM policy_runs ORDER BY "
                             f"{dialect_of(conn).nulls_last_desc('run_id')} LIMIT 1").fetchone()
        stats.policy_score = None if score is None or score[0] is None else float(score[0])
    stats.gitops = gitopsquery.latest(conn)
    head = conn.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()
    stats.head_seq = int(head[0]) if head else 0
    return stats
