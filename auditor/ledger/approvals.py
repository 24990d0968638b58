"""Ledger rows for approvals: each mainline change's approval evidence and verdict, and the
branch protection, as a run read them from the git host (:mod:`auditor.githost`).

One ``approvals`` row per judged change per run that judged it, written in the run's batch
(it commits with the run, and a crashed run leaves none) as an ``approval`` event of the
hash chain, so ``verify`` covers it (schema step 8). ``kind`` says what the row is:

  change      a first-parent commit of the audited range: the pull request, every review
              (reviewer, state, time, commit), the independent approvers, the author, the
              last pusher, who merged, the checks, the verdict (``authorized``,
              ``exception`` with its reason, or ``unknown``: the host could not be asked
              that run) and where the evidence came from (``git host (github)`` or the
              trailer label); ``objects`` are the desired objects whose file it brought in.
  protection  the branch protection snapshot of a source, once per run.

A change judged ``unknown`` is asked about again by later runs (:func:`pending`) until a
verdict is recorded: its newest row is the one that counts. Rows are never updated.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, is_dataclass
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from . import chain, schema
from .schema import EVENT_ROWS

if TYPE_CHECKING:
    from .store import Run

TABLE = "approvals"
EVENT = "approval"
COLUMNS = EVENT_ROWS[TABLE][0]
_JSON = ("approvers", "reviews", "checks", "protection", "objects", "trailers", "authors")
# How many unknown changes one run asks about again (oldest verdicts last forever anyway).
PENDING_LIMIT = 200


class ChangeLike(Protocol):
    """What a judged change carries (:class:`auditor.githost.Change`)."""

    @property
    def source(self) -> str: ...
    @property
    def repo(self) -> str: ...
    @property
    def sha(self) -> str: ...
    @property
    def subject(self) -> str: ...
    @property
    def author(self) -> str: ...
    @property
    def authors(self) -> tuple[str, ...]: ...
    @property
    def trailers(self) -> tuple[tuple[str, str], ...]: ...
    @property
    def objects(self) -> tuple[tuple[str, str, str, str], ...]: ...


class ApprovalLike(Protocol):
    """A verdict on one change (:class:`auditor.githost.Approval`)."""

    @property
    def change(self) -> ChangeLike: ...
    @property
    def verdict(self) -> str: ...
    @property
    def reason(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def provider(self) -> str: ...
    @property
    def pr(self) -> int | None: ...
    @property
    def author(self) -> str: ...
    @property
    def last_pusher(self) -> str: ...
    @property
    def merged_by(self) -> str: ...
    @property
    def approvers(self) -> tuple[str, ...]: ...
    @property
    def reviews(self) -> Sequence[Any]: ...
    @property
    def checks(self) -> Sequence[Any]: ...
    @property
    def head(self) -> str: ...
    @property
    def fetched_at(self) -> str: ...
    @property
    def cached(self) -> bool: ...


class ProtectionLike(Protocol):
    """A branch protection snapshot (:class:`auditor.githost.Protection`)."""

    @property
    def provider(self) -> str: ...
    @property
    def repo(self) -> str: ...
    @property
    def branch(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def detail(self) -> str: ...
    @property
    def fetched_at(self) -> str: ...
    @property
    def cached(self) -> bool: ...


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _json(value: Any) -> str:
    return chain.canonical(_plain(value)).decode()


def change_row(approval: ApprovalLike) -> dict[str, Any]:
    """The row of one verdict (without id, run, time)."""
    c = approval.change
    return {
        "kind": "change", "source": c.source, "repo": c.repo, "branch": "", "sha": c.sha,
        "subject": c.subject, "commit_author": c.author, "pr": approval.pr,
        "provider": approval.provider, "evidence": approval.source,
        "verdict": approval.verdict, "reason": approval.reason, "author": approval.author,
        "last_pusher": approval.last_pusher, "merged_by": approval.merged_by,
        "approvers": _json(list(approval.approvers)), "reviews": _json(list(approval.reviews)),
        "checks": _json(list(approval.checks)), "head": approval.head, "protection": None,
        "objects": _json([list(o) for o in c.objects]),
        "trailers": _json([list(t) for t in c.trailers]),
        "authors": _json(list(c.authors)), "fetched_at": approval.fetched_at,
        "cached": int(approval.cached)}


def protection_row(source: str, protection: ProtectionLike) -> dict[str, Any]:
    """The row of one branch protection snapshot."""
    return {
        "kind": "protection", "source": source, "repo": protection.repo,
        "branch": protection.branch, "sha": "", "subject": "", "commit_author": "", "pr": None,
        "provider": protection.provider, "evidence": f"git host ({protection.provider})",
        "verdict": protection.state, "reason": protection.detail,
        "author": "", "last_pusher": "", "merged_by": "", "approvers": "[]", "reviews": "[]",
        "checks": "[]", "head": "", "protection": _json(protection), "objects": "[]",
        "trailers": "[]", "authors": "[]", "fetched_at": protection.fetched_at,
        "cached": int(protection.cached)}


def record(run: Run, approvals: Iterable[ApprovalLike],
           protections: Iterable[tuple[str, ProtectionLike]] = ()) -> int:
    """Stage the run's verdicts and protection snapshots in its batch (they commit with the
    run's end); how many rows."""
    run._check_open()
    batch = run._batch
    at = run.started_at
    next_id = int(run.ledger.conn.execute(
        f"SELECT coalesce(max(id), 0) FROM {TABLE}").fetchone()[0]) + 1
    rows = [change_row(a) for a in approvals] + [protection_row(s, p) for s, p in protections]
    for row in rows:
        row.update({"id": next_id, "run_id": run.id, "at": at})
        event = batch.event(EVENT, at, run.id, {c: row[c] for c in COLUMNS})
        batch.plain(f"INSERT INTO {TABLE} (seq, {', '.join(COLUMNS)}) "
                    f"VALUES (?, {', '.join('?' * len(COLUMNS))})",
                    (event.seq, *(row[c] for c in COLUMNS)))
        next_id += 1
    run._flush_if_full()
    return len(rows)


def _decoded(names: Sequence[str], values: Sequence[Any]) -> dict[str, Any]:
    row = dict(zip(names, values, strict=True))
    for name in _JSON:
        if isinstance(row.get(name), str):
            row[name] = orjson.loads(row[name])
    row["cached"] = bool(row.get("cached"))
    return row


def _has_table(conn: sqlite3.Connection) -> bool:
    return TABLE in schema.tables(conn)


def pending(conn: sqlite3.Connection, limit: int = PENDING_LIMIT) -> list[dict[str, Any]]:
    """Changes whose newest row is ``unknown``: to be asked about again, newest first."""
    if not _has_table(conn):
        return []
    cur = conn.execute(
        f"SELECT {', '.join(COLUMNS)} FROM {TABLE} a WHERE a.kind = 'change' AND a.id = "
        f"(SELECT max(b.id) FROM {TABLE} b WHERE b.kind = 'change' AND b.repo = a.repo "
        f"AND b.sha = a.sha) AND a.verdict = 'unknown' ORDER BY a.id DESC LIMIT ?", (limit,))
    names = [d[0] for d in cur.description]
    return [_decoded(names, r) for r in cur.fetchall()]


def rows_until(conn: sqlite3.Connection, end: str) -> list[dict[str, Any]]:
    """Every row recorded before ``end`` (a ledger timestamp), oldest first, JSON decoded;
    empty on a ledger before schema step 8."""
    if not _has_table(conn):
        return []
    cur = conn.execute(f"SELECT {', '.join(COLUMNS)} FROM {TABLE} WHERE at < ? ORDER BY id",
                       (end,))
    names = [d[0] for d in cur.description]
    return [_decoded(names, r) for r in cur.fetchall()]


def latest(rows: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """The newest change row per ``(repo, sha)`` of ``rows`` (oldest first)."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        if row.get("kind") == "change":
            out[(str(row["repo"]), str(row["sha"]))] = dict(row)
    return out
