"""Ledger tables for the alert outbox: Slack messages queued until delivered, and what each
drift was last announced as.

Tables
  alert_outbox   one row per message to deliver: what (payload), where (channel or webhook
                 env name), how (post, reply in the thread of ``parent_id``, update the
                 message ``parent_id``), and its delivery state (attempts, last error, the
                 Slack ``ts``/channel id once delivered, a short lease while being sent)
  alert_drifts   per drift (object + fingerprint): the state it was last announced in
                 (open/resolved/accepted/suppressed), the message that announced it (for
                 threading) and when it was last announced or reminded
  alert_meta     small key/value facts (``initialized``: the first summary was queued;
                 ``news_from_run``: the first run whose per-run news was considered)
  alert_runs     per run: its per-run news (newly failing policy results, failed, capped
                 and dry-run reverts, reverts of drifts never announced) was decided and
                 queued (or suppressed in quiet mode), so a second pass over the same run
                 posts nothing; added after step 2, so :func:`.schema.ensure_outbox` creates it on ledgers
                 made before; pruned with the outbox, raising ``news_from_run`` past the
                 runs whose marks go (:meth:`Outbox.prune`)

These tables are *not* part of the hash chain. Delivery state is mutable by nature (a row
goes pending → delivered, attempts grow), while the chain is append-only; and nothing here is
evidence: every alert is derived from chained facts (drifts and their lifecycle events), so
an auditor checks those, not our delivery bookkeeping. ``verify`` therefore ignores them,
and they carry no append-only triggers.

A message is decided and queued in one transaction together with the drift states it
announces, so a crash can neither lose an alert nor queue it twice; it is sent afterwards,
outside any transaction (the network must never hold the SQLite write lock).

On PostgreSQL (one cluster's schema in the fleet store) the SQL is the same text: JSON lists
of drift ids are read through :meth:`.dialect.Dialect.json_values`, new message ids come from
``INSERT … RETURNING id``, and a write transaction also takes an advisory lock per cluster's
outbox (:meth:`.dialect.Dialect.exclusive`), PostgreSQL's ``BEGIN`` locking nothing.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from auditor.errors import LedgerError

from . import backend, policyresults, reverts, schema
from .dialect import dialect_of

ACTIONS = ("post", "reply", "update")
NOTIFIED_STATES = ("open", "resolved", "accepted", "suppressed")


@dataclass(frozen=True, slots=True)
class Message:
    """One queued message as stored."""

    id: int
    created_at: str
    run_id: int | None
    kind: str
    action: str
    parent_id: int | None
    channel: str
    webhook_env: str
    payload: dict[str, Any]
    drift_ids: tuple[int, ...]
    status: str
    attempts: int
    last_error: str
    slack_ts: str
    slack_channel: str


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A message to queue. ``ref`` names it within one :meth:`Outbox.enqueue` call so that a
    later message of the same call (or a drift mark) can point at it before ids exist;
    ``parent_id`` points at an already stored message instead."""

    kind: str
    payload: dict[str, Any]
    channel: str = ""
    webhook_env: str = ""
    action: str = "post"
    parent_id: int | None = None
    parent_ref: str = ""
    ref: str = ""
    drift_ids: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class DriftMark:
    """Record that a drift was announced in ``state``. ``message_ref`` (a :class:`NewMessage`
    ref of the same call) becomes the drift's thread when given; ``reminded`` only moves the
    reminder clock."""

    drift_id: int
    fingerprint: str
    state: str
    message_ref: str = ""
    reminded: bool = False


@dataclass(frozen=True, slots=True)
class AlertState:
    drift_id: int
    fingerprint: str
    notified_state: str
    message_id: int | None
    notified_at: str
    reminded_at: str


_DRIFT_SELECT = """
SELECT d.id, o.grp, o.kind, o.namespace, o.name, d.fingerprint, d.status, d.category,
       d.manager, d.items, d.source_file, d.source_commit, d.opened_at, s.state, s.since,
       s.accepted_until,
       (SELECT e.how || char(31) || coalesce(CAST(e.related_drift_id AS TEXT), '')
        FROM drift_events e
        WHERE e.drift_id = d.id AND e.event = 'resolved' ORDER BY e.seq DESC LIMIT 1),
       (SELECT e.by || char(31) || e.reason FROM drift_events e
        WHERE e.drift_id = d.id AND e.event = 'accepted' ORDER BY e.seq DESC LIMIT 1),
       c.author, c.date, c.subject, c.pr, c.repo,
       a.notified_state, a.message_id, a.notified_at, a.reminded_at, a.fingerprint
FROM drifts d JOIN drift_state s ON s.drift_id = d.id JOIN objects o ON o.id = d.object_id
LEFT JOIN commits c ON c.id = (SELECT min(id) FROM commits WHERE sha = d.source_commit)
LEFT JOIN alert_drifts a ON a.drift_id = d.id
WHERE {where} ORDER BY d.id"""


def _drift_row(row: Sequence[Any]) -> tuple[dict[str, Any], AlertState | None]:
    (did, grp, kind, ns, name, fp, status, category, manager, items, source_file,
     source_commit, opened_at, state, since, until, resolved, accepted, author, date, subject,
     pr, repo, notified, message_id, notified_at, reminded_at, alert_fp) = row
    how, _, related = (resolved or "").partition("\x1f")
    by, _, reason = (accepted or "").partition("\x1f")
    gk = f"{kind}.{grp}" if grp else kind
    drift = {
        "id": did, "object": f"{gk} {ns + '/' if ns else ''}{name}", "api_group": grp,
        "kind": kind, "namespace": ns, "name": name, "fingerprint": fp, "status": status,
        "category": category, "manager": manager or "", "items": orjson.loads(items or "[]"),
        "source_file": source_file or "", "source_commit": source_commit or "",
        "commit_author": author or "", "commit_date": date or "", "commit_subject": subject or "",
        "commit_pr": pr, "commit_repo": repo or "", "opened_at": opened_at, "state": state, "state_since": since,
        "accepted_until": until, "resolved_how": (how or None) if state == "resolved" else None,
        "superseded_by": int(related) if state == "resolved" and related else None,
        "accepted_by": by or None, "accepted_reason": reason or None}
    alert = None if notified is None else AlertState(
        did, alert_fp or "", notified, message_id, notified_at or "", reminded_at or "")
    return drift, alert


def _message(row: Sequence[Any]) -> Message:
    (mid, created, run_id, kind, action, parent, channel, webhook_env, payload, drift_ids,
     status, attempts, last_error, ts, slack_channel) = row
    return Message(mid, created, run_id, kind, action, parent, channel or "", webhook_env or "",
                   orjson.loads(payload), tuple(orjson.loads(drift_ids or "[]")), status,
                   int(attempts or 0), last_error or "", ts or "", slack_channel or "")


_MESSAGE_COLS = ("id, created_at, run_id, kind, action, parent_id, channel, webhook_env, "
                 "payload, drift_ids, status, attempts, last_error, slack_ts, slack_channel")


class Outbox:
    """The alert outbox of one ledger (a file, or a cluster's schema in the fleet store).
    Short transactions of its own; never holds the run writer's lock (its tables are outside the chain, so a run never reads them)."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path

    @classmethod
    @contextmanager
    def open(cls, path: str | Path | backend.StoreLedger, *, cluster: str | None = None,
             password: str | None = None) -> Iterator[Outbox]:
        """``with Outbox.open(path) as box:`` — the ledger must exist (a run made it).
        ``path`` may be a ``postgresql://`` URL: ``cluster``'s ledger in the fleet store,
        whose outbox tables exist from its creation; or a :class:`.backend.StoreLedger`
        (:func:`.backend.configured_ledger`), which carries both."""
        if isinstance(path, backend.StoreLedger):
            cluster, password = path.cluster, path.password
            path = path.url
        if backend.is_url(path):
            from . import pgconn  # psycopg only for a PostgreSQL ledger

            if not cluster:
                raise LedgerError("a PostgreSQL ledger needs its cluster's name "
                                  "(ledger.cluster)")
            pg = pgconn.connect(path, cluster, password=password)
            try:
                pgconn.check_readable(pg)  # a missing or too-new ledger, as connect_reader
                # The part of sqlite3.Connection the outbox uses (see pgconn's docstring).
                yield cls(pg, Path(pg.where))  # type: ignore[arg-type]
            finally:
                pg.close()
            return
        reader = schema.connect_reader(path)  # refuses a missing or too-new ledger
        reader.close()
        conn = schema.connect(path)
        try:
            schema.ensure_outbox(conn)
            yield cls(conn, Path(path))
        finally:
            conn.close()

    @contextmanager
    def locked(self) -> Iterator[Outbox]:
        """One write transaction around deciding and queueing, so that two concurrent
        passes (a run's and a manual ``alerts send``) never both queue the same news."""
        with self._write():
            yield self

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        if self.conn.in_transaction:
            yield self.conn  # inside locked(): its transaction commits
            return
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            # On PostgreSQL BEGIN locks nothing: an advisory lock per cluster's outbox makes
            # two passes take turns, as SQLite's write lock does.
            exclusive = dialect_of(self.conn).exclusive(
                f"outbox:{getattr(self.conn, 'cluster', '')}")
            if exclusive is not None:
                self.conn.execute(*exclusive)
            yield self.conn
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise

    # ------------------------------------------------------------------ decisions

    def meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM alert_meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _scheduled(self) -> str:
        """The condition of a scheduled run (a watch batch audits only what it saw)."""
        # "1 = 1", not "1": PostgreSQL wants a boolean condition.
        return "mode = 'run'" if schema.has_run_mode(self.conn) else "1 = 1"

    def cluster(self) -> str:
        row = self.conn.execute("SELECT cluster FROM runs WHERE status != 'running' "
                                "ORDER BY id DESC LIMIT 1").fetchone()
        return str(row[0]) if row else ""

    def last_run(self) -> dict[str, Any] | None:
        """The last finished scheduled run (its counts are the whole cluster's)."""
        row = self.conn.execute(
            f"SELECT id, cluster, started_at, ended_at, status, counts FROM runs "
            f"WHERE status != 'running' AND {self._scheduled()} ORDER BY id DESC LIMIT 1"
        ).fetchone()
        if row is None:
            return None
        return {"id": row[0], "cluster": row[1], "started_at": row[2], "ended_at": row[3],
                "status": row[4], "counts": orjson.loads(row[5] or "{}")}

    def to_announce(self) -> list[dict[str, Any]]:
        """Open drifts not announced in their current episode: never announced, or last
        announced as resolved/accepted (reopened, or an acknowledgement expired)."""
        where = ("s.state = 'open' AND (a.drift_id IS NULL "
                 "OR a.notified_state IN ('resolved', 'accepted'))")
        return [d for d, _ in self._drifts(where)]

    def to_follow_up(self) -> list[tuple[dict[str, Any], AlertState]]:
        """Announced (or, in quiet mode, suppressed) drifts whose state moved on since
        (resolved or accepted)."""
        where = "a.notified_state IN ('open', 'suppressed') AND s.state != 'open'"
        return [(d, a) for d, a in self._drifts(where) if a is not None]

    def to_remind(self, before: str) -> list[tuple[dict[str, Any], AlertState]]:
        """Announced, still-open drifts last announced or reminded before ``before``."""
        where = ("s.state = 'open' AND a.notified_state = 'open' "
                 "AND coalesce(a.reminded_at, a.notified_at) < ?")
        return [(d, a) for d, a in self._drifts(where, (before,)) if a is not None]

    def announcements(self, drift_id: int, since: str) -> list[Message]:
        """The messages that announced ``drift_id`` in its current episode (posted at or
        after ``since``): one per channel/webhook it was routed to."""
        return [_message(r) for r in self.conn.execute(
            f"SELECT {_MESSAGE_COLS} FROM alert_outbox WHERE action = 'post' "
            "AND kind IN ('drift', 'group', 'summary') AND created_at >= ? "
            "AND EXISTS (SELECT 1 FROM "
            f"{dialect_of(self.conn).json_values('alert_outbox.drift_ids', 'j')} "
            "WHERE CAST(j.value AS BIGINT) = ?) ORDER BY id", (since, drift_id))]

    # ------------------------------------------------------------ per-run news

    def last_finished_run(self) -> int | None:
        row = self.conn.execute("SELECT max(id) FROM runs WHERE status != 'running'").fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def runs_without_news(self, floor: int) -> list[int]:
        """Finished runs from ``floor`` on whose per-run news is not queued yet, oldest first.
        A run still running is left for a later pass (its revert rows are committed as they
        happen, its policy results only at its end)."""
        return [int(r[0]) for r in self.conn.execute(
            "SELECT id FROM runs WHERE status != 'running' AND id >= ? "
            "AND id NOT IN (SELECT run_id FROM alert_runs) ORDER BY id", (floor,))]

    def news_done(self, run_id: int) -> bool:
        return self.conn.execute("SELECT 1 FROM alert_runs WHERE run_id = ?",
                                 (run_id,)).fetchone() is not None

    def policy_failures(self, run_id: int, severities: Sequence[str]) -> list[dict[str, Any]]:
        """Results that started failing in ``run_id`` at ``severities``, each with its policy's
        title, category, controls and remediation from the run's catalog."""
        rows = policyresults.newly_failing(self.conn, run_id, severities)
        if not rows:
            return []
        summary = policyresults.run_summary(self.conn, run_id) or {}
        catalog = summary.get("counts") or {}
        for row in rows:
            meta = catalog.get(row["policy"]) or {}
            row["title"] = str(meta.get("title") or row["policy"])
            row["category"] = str(meta.get("category") or "")
            row["controls"] = list(meta.get("controls") or [])
            row["remediation"] = str(meta.get("remediation") or "")
        return rows

    def revert_rows(self, run_id: int) -> list[dict[str, Any]]:
        """The run's revert attempts; a ``reverted`` row gets ``followed_up`` when its drift
        was announced as open, so the drift's own follow-up (thread reply, updated message)
        already tells the channel — the others (a drift opened and reverted in one run,
        one suppressed in quiet mode) are news of their own."""
        rows = reverts.history(self.conn, run_id=run_id)
        for row in rows:
            row["followed_up"] = row["result"] == "reverted" and self.conn.execute(
                "SELECT 1 FROM drift_events e JOIN drifts d ON d.id = e.drift_id "
                "JOIN objects o ON o.id = d.object_id "
                "JOIN alert_drifts a ON a.drift_id = d.id AND a.notified_state = 'open' "
                "WHERE e.run_id = ? AND e.event = 'resolved' AND e.how = 'reverted' "
                "AND o.grp = ? AND o.kind = ? AND o.namespace = ? AND o.name = ? LIMIT 1",
                (run_id, row["group"], row["kind"], row["namespace"], row["name"])
            ).fetchone() is not None
        return rows

    def revert_caps(self, run_id: int) -> list[dict[str, Any]]:
        """The run's ``revert_capped`` events (mode, cap, planned, keys), each with
        ``repeat``: the run before it was refused the very same revert (same objects, same
        cap) — a wrong Git revision stays wrong until someone acts, and every run of a
        CronJob saying so again is noise."""
        def caps(rid: int) -> list[dict[str, Any]]:
            # A run's events lie between the checkpoint before its own and its own: a range
            # of the chain's primary key. The events table has no index by run, and reading
            # the whole chain per Slack pass grew with the ledger (measured: a pass after
            # each watch batch doubled in time over a 10-minute soak).
            end = self.conn.execute("SELECT max(seq) FROM checkpoints WHERE run_id = ?",
                                    (rid,)).fetchone()[0]
            low, high = 0, end if end is not None else 2**62
            if end is not None:
                low = self.conn.execute("SELECT coalesce(max(seq), 0) FROM checkpoints "
                                        "WHERE seq < ? AND (run_id IS NULL OR run_id != ?)",
                                        (end, rid)
                                        ).fetchone()[0]
            return [orjson.loads(p) for (p,) in self.conn.execute(
                "SELECT payload FROM events WHERE seq > ? AND seq <= ? "
                "AND type = 'revert_capped' AND run_id = ? ORDER BY seq", (low, high, rid))]

        found = caps(run_id)
        if not found:
            return []
        # The run before of the same mode: a watch batch between two scheduled runs tried
        # no revert, and must not make the second's refusal look new.
        same = ("mode = (SELECT mode FROM runs WHERE id = ?)" if schema.has_run_mode(self.conn)
                else "? IS NOT NULL")
        row = self.conn.execute(f"SELECT max(id) FROM runs WHERE id < ? AND status != 'running' "
                                f"AND {same}", (run_id, run_id)).fetchone()
        before = {(e.get("cap"), tuple(e.get("keys") or ())) for e in caps(int(row[0]))} \
            if row and row[0] is not None else set()
        for event in found:
            event["repeat"] = (event.get("cap"), tuple(event.get("keys") or ())) in before
        return found

    def skipped_kinds(self, run_id: int) -> tuple[str, dict[str, str], list[str] | None]:
        """Run ``run_id``'s status, the kinds it could not list, each with the reason its
        problem gives (the run row's ``skipped_kinds`` and ``problems``), and the kinds that
        the last audit before it (a scheduled run, complete or partial) could not list: None
        when none. A watch batch lists nothing: its status reads ``watch`` here, so it is
        neither a partial audit nor one that audited every kind again."""
        scheduled = self._scheduled()
        row = self.conn.execute(
            f"SELECT status, skipped_kinds, problems, {scheduled} FROM runs WHERE id = ?",
            (run_id,)).fetchone()
        if row is None:
            return "", {}, None
        if not row[3]:
            return "watch", {}, None
        reasons = {str(p.get("where")): str(p.get("message") or "")
                   for p in orjson.loads(row[2] or "[]") if isinstance(p, dict)}
        skipped = {str(k): reasons.get(str(k), "") for k in orjson.loads(row[1] or "[]")}
        before = self.conn.execute(f"SELECT skipped_kinds FROM runs WHERE id < ? "
                                   f"AND status IN ('complete', 'partial') AND {scheduled} "
                                   f"ORDER BY id DESC LIMIT 1", (run_id,)).fetchone()
        return str(row[0]), skipped, (None if before is None else
                                      [str(k) for k in orjson.loads(before[0] or "[]")])

    def open_drifts(self) -> list[dict[str, Any]]:
        return [d for d, _ in self._drifts("s.state = 'open'")]

    def _drifts(self, where: str, params: Sequence[Any] = ()) -> list[
            tuple[dict[str, Any], AlertState | None]]:
        return [_drift_row(r) for r in self.conn.execute(_DRIFT_SELECT.format(where=where),
                                                         params)]

    # --------------------------------------------------------------------- queueing

    def enqueue(self, messages: Sequence[NewMessage], marks: Sequence[DriftMark] = (), *,
                at: str, run_id: int | None = None,
                meta: dict[str, str] | None = None,
                news_runs: Mapping[int, tuple[int, bool]] | None = None) -> list[int]:
        """Queue ``messages`` and record ``marks`` in one transaction; returns the ids.
        ``news_runs`` (run id → (messages queued, quiet)) marks runs whose per-run news is
        decided, in the same transaction, so that news is queued exactly once."""
        ids: list[int] = []
        refs: dict[str, int] = {}
        with self._write() as conn:
            for m in messages:
                if m.action not in ACTIONS:
                    raise LedgerError(f"outbox: unknown action {m.action!r}")
                parent = refs[m.parent_ref] if m.parent_ref else m.parent_id
                cur = conn.execute(
                    "INSERT INTO alert_outbox (created_at, run_id, kind, action, parent_id, "
                    "channel, webhook_env, payload, drift_ids, status, attempts) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', 0) RETURNING id",
                    (at, run_id, m.kind, m.action, parent, m.channel, m.webhook_env,
                     orjson.dumps(m.payload).decode(), orjson.dumps(list(m.drift_ids)).decode()))
                mid = int(cur.fetchone()[0])
                ids.append(mid)
                if m.ref:
                    refs[m.ref] = mid
            for mark in marks:
                if mark.state not in NOTIFIED_STATES:
                    raise LedgerError(f"outbox: unknown notified state {mark.state!r}")
                if mark.reminded:
                    conn.execute("UPDATE alert_drifts SET reminded_at = ? WHERE drift_id = ?",
                                 (at, mark.drift_id))
                    continue
                message_id = refs.get(mark.message_ref) if mark.message_ref else None
                conn.execute(
                    "INSERT INTO alert_drifts (drift_id, fingerprint, notified_state, message_id,"
                    " notified_at, reminded_at) VALUES (?, ?, ?, ?, ?, NULL) "
                    "ON CONFLICT(drift_id) DO UPDATE SET fingerprint = excluded.fingerprint, "
                    "notified_state = excluded.notified_state, notified_at = excluded.notified_at,"
                    " message_id = coalesce(excluded.message_id, alert_drifts.message_id), "
                    "reminded_at = CASE WHEN excluded.notified_state = 'open' THEN NULL "
                    "ELSE alert_drifts.reminded_at END",
                    (mark.drift_id, mark.fingerprint, mark.state, message_id, at))
            for news_run, (count, quiet) in (news_runs or {}).items():
                conn.execute("INSERT INTO alert_runs (run_id, queued_at, messages, quiet) "
                             "VALUES (?, ?, ?, ?) ON CONFLICT(run_id) DO NOTHING",
                             (news_run, at, count, int(quiet)))
            for key, value in (meta or {}).items():
                conn.execute("INSERT INTO alert_meta (key, value) VALUES (?, ?) ON CONFLICT(key)"
                             " DO UPDATE SET value = excluded.value", (key, value))
        return ids

    # --------------------------------------------------------------------- delivery

    def pending(self) -> list[Message]:
        """Undelivered messages, oldest first (a parent always precedes its replies)."""
        return [_message(r) for r in self.conn.execute(
            f"SELECT {_MESSAGE_COLS} FROM alert_outbox WHERE status = 'pending' ORDER BY id")]

    def get(self, message_id: int) -> Message | None:
        row = self.conn.execute(f"SELECT {_MESSAGE_COLS} FROM alert_outbox WHERE id = ?",
                                (message_id,)).fetchone()
        return None if row is None else _message(row)

    def claim(self, message_id: int, *, now: str, until: str) -> bool:
        """Take a short lease on a pending message so that two concurrent senders never post
        it twice; ``False`` when someone else holds it or it is no longer pending."""
        with self._write() as conn:
            cur = conn.execute(
                "UPDATE alert_outbox SET lease_until = ? WHERE id = ? AND status = 'pending' "
                "AND (lease_until IS NULL OR lease_until < ?)", (until, message_id, now))
            return cur.rowcount == 1

    def delivered(self, message_id: int, *, at: str, ts: str = "", channel: str = "",
                  status: str = "delivered", attempts: int = 1) -> None:
        """Mark delivered (``status='skipped'``: nothing to send, e.g. an update through a
        webhook, which cannot edit messages)."""
        with self._write() as conn:
            conn.execute(
                "UPDATE alert_outbox SET status = ?, delivered_at = ?, slack_ts = ?, "
                "slack_channel = ?, attempts = attempts + ?, last_attempt_at = ?, "
                "lease_until = NULL WHERE id = ?",
                (status, at, ts or None, channel or None, attempts, at, message_id))

    def failed(self, message_id: int, *, at: str, error: str, attempts: int = 1) -> None:
        """Record failed attempts; the message stays pending for the next pass."""
        with self._write() as conn:
            conn.execute(
                "UPDATE alert_outbox SET attempts = attempts + ?, last_error = ?, "
                "last_attempt_at = ?, lease_until = NULL WHERE id = ?",
                (attempts, error[:500], at, message_id))

    def prune(self, before: str) -> int:
        """Drop delivered (or skipped) messages created before ``before`` unless one of
        their drifts is still open or accepted (its follow-ups thread on them), and the
        ``alert_runs`` marks of runs whose news was queued before ``before`` (see
        :meth:`_prune_news_runs`). Returns the number of messages dropped."""
        with self._write() as conn:
            cur = conn.execute(
                "DELETE FROM alert_outbox WHERE status != 'pending' AND created_at < ? "
                "AND NOT EXISTS (SELECT 1 FROM "
                f"{dialect_of(conn).json_values('alert_outbox.drift_ids', 'j')} "
                "JOIN drift_state s ON s.drift_id = CAST(j.value AS BIGINT) "
                "WHERE s.state IN ('open', 'accepted')) "
                "AND id NOT IN (SELECT parent_id FROM alert_outbox "
                "WHERE status = 'pending' AND parent_id IS NOT NULL)", (before,))
            self._prune_news_runs(conn, before)
            return cur.rowcount

    def _prune_news_runs(self, conn: sqlite3.Connection, before: str) -> int:
        """Drop ``alert_runs`` marks queued before ``before`` without making their runs look
        new: ``runs`` rows are never deleted, and :meth:`runs_without_news` takes every
        finished run from ``news_from_run`` on that has no mark. So the marks go only as an
        unbroken prefix from that floor, the floor moves up past them in the same
        transaction, and the newest mark always stays (the floor keeps naming a real run).
        A run still running, a run without a mark, or a mark queued at or after ``before``
        ends the prefix. Returns the number of marks dropped."""
        floor = self.meta("news_from_run")
        if floor is None:  # no pass has considered per-run news yet: nothing is marked
            return 0
        row = conn.execute(
            "SELECT min(id) FROM (SELECT id FROM runs WHERE id >= ? AND (status = 'running' "
            "OR id NOT IN (SELECT run_id FROM alert_runs WHERE queued_at < ?)) "
            "UNION ALL SELECT max(run_id) FROM alert_runs) AS kept",  # PostgreSQL names it
            (int(floor), before)).fetchone()
        keep_from = None if row is None or row[0] is None else int(row[0])
        if keep_from is None or keep_from <= int(floor):
            return 0
        cur = conn.execute("DELETE FROM alert_runs WHERE run_id < ?", (keep_from,))
        conn.execute("UPDATE alert_meta SET value = ? WHERE key = 'news_from_run'",
                     (str(keep_from),))
        return cur.rowcount

    def counts(self) -> dict[str, int]:
        out = {"pending": 0, "delivered": 0, "skipped": 0}
        for status, n in self.conn.execute(
                "SELECT status, count(*) FROM alert_outbox GROUP BY status"):
            out[str(status)] = int(n)
        return out


def read_counts(conn: sqlite3.Connection) -> dict[str, int]:
    """Outbox counts through a reader connection (no tables yet: all zero)."""
    have = "alert_outbox" in schema.tables(conn)
    out = {"pending": 0, "delivered": 0, "skipped": 0}
    if have:
        for status, n in conn.execute("SELECT status, count(*) FROM alert_outbox "
                                      "GROUP BY status"):
            out[str(status)] = int(n)
    return out

