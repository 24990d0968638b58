"""Ledger tables for adoptions: drift written back into Git by ``drift-auditor adopt``.

An adoption is recorded when its commit is made: the drift it adopts (when the ledger has
one open for the object), the paths, the branch and commit, who ran it. The row is
append-only and its content is an ``adoption`` event in the hash chain, so ``verify`` covers
it. Nothing else is written later: whether the branch merged is read from what the runs
record — the drift resolves as ``git-changed`` once Git matches live, and the run that
resolved it records the object's new last commit in ``commits`` — so :func:`adoptions`
links the adoption commit to that resolution at read time.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from auditor.engine.records import ResourceKey

from . import accountability, times
from .schema import EVENT_ROWS

if TYPE_CHECKING:
    from .accountability import Identity
    from .store import Ledger

TABLE = "adoptions"
EVENT = "adoption"
# The commit trailer ``drift-auditor adopt`` writes; it survives squash merges.
TRAILER = "Drift-Auditor-Drift"
_COLUMNS = EVENT_ROWS[TABLE][0]


@dataclass(frozen=True, slots=True)
class Adoption:
    """What one ``adopt`` commit did, as recorded."""

    key: ResourceKey
    paths: tuple[str, ...]
    files: tuple[str, ...]
    branch: str
    commit_sha: str
    base_commit: str = ""
    repo: str = ""
    drift_id: int | None = None
    actor: str = ""  # the manager(s) whose live change is adopted
    by: str = ""  # who ran adopt, as typed (--by)
    pushed: bool = False
    # Who ran adopt as authenticated (recorded beside the row, :mod:`.accountability`).
    identity: Identity | None = None


def record(ledger: Ledger, adoption: Adoption) -> int:
    """Append ``adoption`` (row + chain event + checkpoint) in one transaction; its id."""
    conn = ledger.conn
    new_id = int(conn.execute(f"SELECT coalesce(max(id), 0) FROM {TABLE}").fetchone()[0]) + 1
    at = times.stamp(times.now())
    key = adoption.key
    row: dict[str, Any] = {
        "id": new_id, "at": at, "drift_id": adoption.drift_id, "grp": key.group,
        "kind": key.kind, "namespace": key.namespace, "name": key.name,
        "paths": orjson.dumps(list(adoption.paths)).decode(),
        "files": orjson.dumps(list(adoption.files)).decode(), "repo": adoption.repo,
        "branch": adoption.branch, "base_commit": adoption.base_commit,
        "commit_sha": adoption.commit_sha, "actor": adoption.actor, "by": adoption.by,
        "pushed": int(adoption.pushed)}
    batch = ledger._batch()
    event = batch.event(EVENT, at, None, row)
    batch.plain(f"INSERT INTO {TABLE} (seq, {', '.join(_COLUMNS)}) "
                f"VALUES (?, {', '.join('?' * len(_COLUMNS))})",
                (event.seq, *(row[c] for c in _COLUMNS)))
    if adoption.identity is not None:
        accountability.stage_adopter(conn, batch, adoption_id=new_id, at=at, by=adoption.by,
                                     identity=adoption.identity)
    ledger._checkpoint(batch, None, at)
    ledger._write(batch)
    return new_id


def open_drift(conn: sqlite3.Connection, key: ResourceKey) -> dict[str, Any] | None:
    """The open (or accepted) drift of ``key``: id, opened_at, items; None without one."""
    row = conn.execute(
        "SELECT d.id, d.opened_at, d.items, s.state FROM drifts d "
        "JOIN drift_state s ON s.drift_id = d.id JOIN objects o ON o.id = d.object_id "
        "WHERE s.state IN ('open', 'accepted') AND o.grp = ? AND o.kind = ? "
        "AND o.namespace = ? AND o.name = ? ORDER BY d.id DESC LIMIT 1",
        (key.group, key.kind, key.namespace, key.name)).fetchone()
    if row is None:
        return None
    return {"id": int(row[0]), "opened_at": row[1], "items": orjson.loads(row[2]),
            "state": row[3]}


def users(conn: sqlite3.Connection, drift_id: int) -> list[str]:
    """The people behind a drift, as the API-server audit log named them for the changes
    detected by the run that opened it (empty without an audit log)."""
    return [str(r[0]) for r in conn.execute(
        "SELECT DISTINCT c.user FROM changes c JOIN drifts d ON d.object_id = c.object_id "
        "AND c.run_id = d.run_id WHERE d.id = ? AND c.user IS NOT NULL AND c.user != '' "
        "ORDER BY c.user", (drift_id,))]


def drift_key(conn: sqlite3.Connection, drift_id: int) -> tuple[ResourceKey, str] | None:
    """``(object key, state)`` of drift ``drift_id``."""
    row = conn.execute(
        "SELECT o.grp, o.kind, o.namespace, o.name, s.state FROM drifts d "
        "JOIN drift_state s ON s.drift_id = d.id JOIN objects o ON o.id = d.object_id "
        "WHERE d.id = ?", (drift_id,)).fetchone()
    if row is None:
        return None
    return ResourceKey(row[0], row[1], row[2], row[3]), str(row[4])


def open_drift_keys(conn: sqlite3.Connection) -> list[tuple[int, ResourceKey]]:
    """Every open drift (not accepted ones: accepting is a decision to leave it) by id,
    whatever its status (missing and orphan ones too, so they can be refused by name)."""
    return [(int(r[0]), ResourceKey(r[1], r[2], r[3], r[4])) for r in conn.execute(
        "SELECT d.id, o.grp, o.kind, o.namespace, o.name FROM drifts d "
        "JOIN drift_state s ON s.drift_id = d.id JOIN objects o ON o.id = d.object_id "
        "WHERE s.state = 'open' ORDER BY d.id")]


def adoptions(conn: sqlite3.Connection, drift_ids: Sequence[int] | None = None
              ) -> list[dict[str, Any]]:
    """Adoptions, oldest first, each with the outcome of its drift.

    ``resolution`` is the drift's resolution (``git-changed`` when Git was changed to match);
    ``resolved_at`` and ``resolved_run`` say when; ``merged`` is True when a run has since
    audited the adoption commit, or a commit carrying its ``Drift-Auditor-Drift`` trailer (a
    squash merge), and ``merged_commit`` is that commit; ``outcome`` is one
    line for reports: ``resolved: Git changed to match (commit abc1234)`` — the commit is
    linked only when a run audited it — or ``pending merge``.
    """
    where = ""
    params: list[Any] = []
    if drift_ids is not None:
        where = f"WHERE a.drift_id IN ({', '.join('?' * len(drift_ids))})"
        params = list(drift_ids)
    rows = conn.execute(
        f"SELECT a.id, a.at, a.drift_id, a.grp, a.kind, a.namespace, a.name, a.paths, a.files, "
        f"a.repo, a.branch, a.base_commit, a.commit_sha, a.actor, a.by, a.pushed, s.state, "
        f"(SELECT e.how || char(31) || e.at || char(31) || coalesce(CAST(e.run_id AS TEXT), '') "
        f" FROM drift_events e WHERE e.drift_id = a.drift_id AND e.event = 'resolved' "
        f" AND e.at >= a.at ORDER BY e.seq DESC LIMIT 1), "
        f"(SELECT c.run_id FROM commits c WHERE c.sha = a.commit_sha ORDER BY c.id LIMIT 1), "
        # A squash merge lands another sha; its message keeps the adoption's trailer.
        f"(SELECT c.sha FROM commits c WHERE a.drift_id IS NOT NULL AND c.trailers LIKE "
        f"'%[\"{TRAILER}\",\"' || a.drift_id || '\"]%' ORDER BY c.id LIMIT 1) "
        f"FROM {TABLE} a LEFT JOIN drift_state s ON s.drift_id = a.drift_id {where} "
        f"ORDER BY a.id", params).fetchall()
    out = []
    for (aid, at, drift_id, grp, kind, ns, name, paths, files, repo, branch, base, sha, actor,
         by, pushed, state, resolved, merged_run, squashed) in rows:
        how, resolved_at, run = [*resolved.split("\x1f"), "", ""][:3] if resolved \
            else ("", "", "")
        gk = f"{kind}.{grp}" if grp else kind
        merged_as = sha if merged_run is not None else squashed
        if how == "git-changed" and merged_as:
            outcome = f"resolved: Git changed to match (commit {merged_as[:12]})"
        elif how == "git-changed":
            # Git moved, but not through this adoption's commit (never audited by a run).
            outcome = "resolved: Git changed to match by another change (branch not merged)"
        elif how:
            outcome = f"resolved otherwise ({how})"
        else:
            outcome = "pending merge" if not merged_as else "merged, drift still open"
        out.append({
            "id": aid, "at": at, "drift_id": drift_id,
            "object": f"{gk} {ns + '/' if ns else ''}{name}", "api_group": grp, "kind": kind,
            "namespace": ns, "name": name, "paths": orjson.loads(paths),
            "files": orjson.loads(files), "repo": repo, "branch": branch, "base_commit": base,
            "commit": sha, "actor": actor, "by": by, "pushed": bool(pushed),
            "drift_state": state, "resolution": how or None, "resolved_at": resolved_at or None,
            "resolved_run": int(run) if run else None, "merged": bool(merged_as),
            "merged_commit": merged_as or None,
            "outcome": outcome})
    return out
