"""The ledger's SQLite schema and its versioned migrations.

``PRAGMA user_version`` holds the schema version; :func:`migrate` applies each missing
migration in its own transaction on open, the step's tables and its ``user_version``
committed together, so a crash mid-migration (even SIGKILL) leaves the previous version
intact; a step that would end the transaction early (a DDL helper committing on its own) is
refused by an authorizer and rolled back whole. Readers (:func:`connect_reader`,
:func:`reading`) never migrate: a ledger at a lower version simply lacks the later steps'
tables (:data:`STEP_TABLES`), and each reader asks for what it needs (:func:`tables`). For a
command's reads, :func:`reading_checked` turns a file SQLite cannot read (a damaged page, a
truncated file) or a table that is not there into one :class:`~auditor.errors.LedgerError`
naming the file and what is wrong (:func:`unreadable`).

Chained tables are append-only: triggers refuse UPDATE and DELETE, so a bug or a careless
hand-edit fails loudly instead of silently breaking the chain. Someone who drops the
triggers still cannot hide an edit: ``verify`` recomputes every row's event, and hashes
every stored content again.

Tables
  runs          one row per run; mutable only while ``status = 'running'``
  events        the hash chain (seq, type, payload, prev_hash, hash)
  checkpoints   (run, seq, head hash, optional Ed25519 signature) at the end of each run
  objects       identity of every object ever seen (group, kind, namespace, name)
  object_versions  one row per content change of an object (content hash, resourceVersion)
  contents      the normalised content of a version (prunable; not chained, hash-addressed)
  latest        cache: the newest version per object (rebuildable from object_versions)
  changes       every live change between runs with actor, category, user, authorized
  drifts        one row per distinct drift (object + fingerprint of its drifted paths)
  drift_events  the lifecycle: opened, reopened, resolved(how), accepted, expired
  drift_state   cache: the current state per drift (rebuildable from drift_events)
  commits       Git commits audited
  alert_*       the Slack outbox and per-drift announcement state (step 2)
  policy_*      policy results per run and object, their current state and cache (step 3)
  reverts       auto-revert attempts: what, desired vs. live, result (step 4)
  adoptions     drift adopted into Git: paths, branch, commit, drift id (step 5)
  runs.mode     ``run`` (a scheduled audit of the whole cluster) or ``watch`` (one batch of
                watch events); chained through the ``run_begin`` event (step 6)
  watch_positions  the resourceVersion each watched kind resumes from (step 6, :mod:`.watch`)
  audit_events  API-server audit events of successful writes, by auditID (step 6,
                :mod:`.auditevents`)
  audit_deliveries  what each audit source delivered and when: its heartbeats (step 6)
  audit_positions   where a tailed audit source resumes (step 6)
  config_versions   the tool's own effective configuration, one row each time it differs
                    from the last one recorded for its run mode (step 7, :mod:`.configlog`)
  approvals     each mainline change's approval from the git host (pull request, reviews,
                who merged, checks, verdict) and branch protection snapshots (step 8,
                :mod:`.approvals`)
  acknowledgements  who accepted a drift as authenticated (kubeconfig user, API server's
                    SelfSubjectReview, or OS user), the change ticket, whether the
                    acknowledger was the drift's own actor (step 9, :mod:`.accountability`)
  responses     management responses to exceptions (a drift or a change), with who wrote
                them as authenticated and when (step 9)
  adoption_identities  the authenticated identity of who ran each ``adopt`` (step 9)

Every table is created here; the module of this package that owns a table's rows
(:mod:`.store`, :mod:`.outbox`, :mod:`.policyresults`, :mod:`.reverts`, :mod:`.adoptions`,
:mod:`.watch`, :mod:`.auditevents`, :mod:`.configlog`, :mod:`.approvals`,
:mod:`.accountability`) reads and writes them, and none of those is imported by this one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # sqlite-utils is only needed when a migration runs
    import sqlite_utils

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from auditor.errors import LedgerError, LedgerTamperedError

from .dialect import SQLITE, dialect_of

SCHEMA_VERSION = 9

# The chained columns of each append-only table, in the order they are hashed. The event
# type of a row is the table's name with ``s`` dropped (``object_versions`` → ``object_version``).
CHAINED: dict[str, tuple[str, ...]] = {
    "objects": ("id", "grp", "kind", "namespace", "name"),
    "object_versions": ("id", "run_id", "object_id", "api_version", "resource_version",
                        "content_hash", "observed_at", "deleted"),
    "changes": ("id", "run_id", "object_id", "version_id", "prev_version_id", "change", "time",
                "manager", "operation", "category", "user", "user_source", "authorized"),
    "drifts": ("id", "object_id", "fingerprint", "status", "items", "category", "manager",
               "source_file", "source_commit", "live_hash", "run_id", "opened_at"),
    "drift_events": ("id", "drift_id", "run_id", "at", "event", "how", "by", "reason",
                     "expires", "related_drift_id"),
    "commits": ("id", "run_id", "repo", "sha", "author", "author_email", "date", "subject",
                "pr", "trailers"),
    # auto-revert attempts (schema step 4, auditor.ledger.reverts)
    "reverts": ("id", "run_id", "at", "grp", "kind", "namespace", "name", "action", "mode",
                "result", "reason", "items", "desired_hash", "live_hash",
                "resource_version_before", "resource_version_after", "managers", "error"),
    # the tool's own configuration (schema step 7, auditor.ledger.configlog): chained whole,
    # content and all (a handful of rows, never pruned)
    "config_versions": ("id", "run_id", "at", "mode", "digest", "previous_id", "config_file",
                        "settings", "ignore_rules", "scope", "policy_pack", "origin"),
}
EVENT_TYPE: dict[str, str] = {
    "objects": "object", "object_versions": "object_version", "changes": "change",
    "drifts": "drift", "drift_events": "drift_event", "commits": "commit",
    "reverts": "revert", "config_versions": "config_version",
}
# Tables whose every row is exactly the payload of one plain event, named by the row's
# ``seq`` (their modules write them: :mod:`.policyresults`, :mod:`.adoptions`); ``verify``
# checks them as it checks the chained tables above.
EVENT_ROWS: dict[str, tuple[tuple[str, ...], str]] = {
    "policy_results": (("id", "run_id", "at", "policy", "grp", "kind", "namespace", "name",
                        "api_version", "status", "prev_status", "severity", "messages",
                        "exemption"), "policy_result"),
    "policy_runs": (("run_id", "at", "score", "policies", "results", "evaluated", "reused",
                     "counts", "problems"), "policy_run"),
    "adoptions": (("id", "at", "drift_id", "grp", "kind", "namespace", "name", "paths", "files",
                   "repo", "branch", "base_commit", "commit_sha", "actor", "by", "pushed"),
                  "adoption"),
    # API-server audit events (schema step 6, :mod:`.auditevents`): the request and response
    # objects are stored beside the row and chained by their hashes (``request_hash``,
    # ``response_hash``), as object content is by ``content_hash``.
    "audit_events": (("id", "audit_id", "source", "recorded_at", "level", "stage", "verb",
                      "request_uri", "user", "groups", "impersonated_user",
                      "impersonated_groups", "user_agent", "manager", "source_ips", "grp",
                      "version", "resource", "subresource", "namespace", "name", "uid", "kind",
                      "resource_version", "code", "received_at", "stage_at", "request_hash",
                      "response_hash"), "audit_event"),
    # What an audit source delivered (or that it was alive with nothing new), step 6.
    "audit_deliveries": (("id", "source", "at", "events", "recorded", "first_at", "last_at"),
                         "audit_delivery"),
    # Approvals read from the git host, and branch protection snapshots (schema step 8,
    # :mod:`.approvals`).
    "approvals": (("id", "run_id", "at", "kind", "source", "repo", "branch", "sha", "subject",
                   "commit_author", "pr", "provider", "evidence", "verdict", "reason",
                   "author", "last_pusher", "merged_by", "approvers", "reviews", "checks",
                   "head", "protection", "objects", "trailers", "authors", "fetched_at",
                   "cached"), "approval"),
    # Who accepted a drift, as authenticated, and the change ticket (schema step 9,
    # :mod:`.accountability`): a table beside ``drift_events``, whose chained columns cannot
    # grow without changing the hash of every acknowledgement already recorded.
    "acknowledgements": (("id", "at", "drift_event_id", "drift_id", "by", "identity",
                          "identity_source", "ticket", "self_ack", "actors"),
                         "acknowledgement"),
    # Management responses to exceptions (step 9): ``ref_kind`` drift or change.
    "responses": (("id", "at", "ref_kind", "ref_id", "by", "identity", "identity_source",
                   "text"), "response"),
    # Who ran ``adopt``, as authenticated (step 9): beside ``adoptions`` for the same reason
    # as acknowledgements beside ``drift_events``.
    "adoption_identities": (("id", "at", "adoption_id", "by", "identity", "identity_source"),
                            "adoption_identity"),
}
RUN_BEGIN = ("id", "cluster", "started_at", "git_commits", "tool_version", "config_hash",
             "pid", "host")
# What a run is (``runs.mode``, step 6): a scheduled audit of the whole cluster, or one batch
# of watch events. The ``run_begin`` payload carries ``mode`` only when it is not ``run``, so
# the events of every run written before step 6 hash exactly as they did.
RUN_MODES = ("run", "watch")
RUN_END = ("id", "status", "ended_at", "counts", "skipped_kinds", "problems")


def connect(path: str | Path) -> sqlite3.Connection:
    """A connection in autocommit mode: transactions are explicit ``BEGIN IMMEDIATE`` blocks,
    so a writer takes SQLite's write lock before reading the state it will extend."""
    try:
        conn = sqlite3.connect(str(path), isolation_level=None, timeout=30.0)
        conn.execute("PRAGMA journal_mode=WAL")
        # FULL: a committed batch survives power loss, not only a killed process.
        conn.execute("PRAGMA synchronous=FULL")
    except sqlite3.DatabaseError as exc:
        raise unreadable(path, exc, opening=True) from None
    return conn


def connect_reader(path: str | Path) -> sqlite3.Connection:
    """A connection for queries and ``verify``: no lock, no migration, never writes."""
    target = Path(path)
    if not target.is_file():
        raise LedgerError(f"{target}: no ledger here (run `drift-auditor run` first)")
    conn = None
    try:
        conn = sqlite3.connect(str(target), isolation_level=None, timeout=30.0)
        found = version(conn)
        if found == 0:
            empty = not tables(conn)
    except sqlite3.DatabaseError as exc:
        if conn is not None:
            conn.close()
        raise unreadable(target, exc, opening=True) from None
    if found == 0:
        conn.close()
        if target.stat().st_size == 0:
            raise LedgerError(f"{target}: the file is empty: no ledger in it (truncated, or a "
                              "first `drift-auditor run` killed before it set the schema up)")
        if empty:
            raise LedgerError(
                f"{target}: no ledger schema in this file (schema version 0): a first "
                "`drift-auditor run` killed before it set the schema up, or not a drift-auditor "
                "ledger; the next run creates it")
        raise LedgerError(f"{target}: not a drift-auditor ledger (schema version 0)")
    if found > SCHEMA_VERSION:
        conn.close()
        raise LedgerError(f"{target}: ledger schema version {found} is newer than this "
                          f"drift-auditor understands ({SCHEMA_VERSION}); upgrade drift-auditor")
    return conn


@contextmanager
def reading(path: str | Path) -> Iterator[sqlite3.Connection]:
    """``with reading(path) as conn:`` — a reader connection, closed afterwards."""
    conn = connect_reader(path)
    try:
        yield conn
    finally:
        conn.close()


@contextmanager
def reading_checked(path: str | Path) -> Iterator[sqlite3.Connection]:
    """:func:`reading` for a command's whole read: an SQLite error inside the block (a
    damaged file, a table this ledger's schema version lacks) leaves it as one
    :class:`LedgerError` naming the file and what is wrong (:func:`unreadable`)."""
    with reading(path) as conn:
        try:
            yield conn
        except sqlite3.DatabaseError as exc:
            raise unreadable(path, exc, conn=conn) from exc


def tables(conn: sqlite3.Connection) -> set[str]:
    """The tables this ledger has (a lower schema version lacks the later steps' ones); on
    PostgreSQL those of the cluster's schema (:attr:`.dialect.Dialect.tables_sql`)."""
    return {str(r[0]) for r in conn.execute(dialect_of(conn).tables_sql)}


def columns(conn: sqlite3.Connection, table: str) -> set[str]:
    """The columns of ``table`` (a lower schema version lacks the later steps' ones)."""
    return {str(r[0]) for r in conn.execute(dialect_of(conn).columns_sql(table))}


def has_run_mode(conn: sqlite3.Connection) -> bool:
    """Whether ``runs`` has its ``mode`` column (step 6): a reader never migrates, and a
    ledger without it holds scheduled runs only."""
    return "mode" in columns(conn, "runs")


def path_of(conn: sqlite3.Connection) -> str:
    """The file behind ``conn`` (for messages); a PostgreSQL ledger's server, database and
    cluster."""
    if dialect_of(conn) is not SQLITE:
        return str(getattr(conn, "where", "postgresql ledger"))
    try:
        for _, name, file in conn.execute("PRAGMA database_list"):
            if name == "main":
                return str(file or ":memory:")
    except sqlite3.Error:
        pass
    return "ledger"


_DAMAGED = ("SQLITE_CORRUPT", "SQLITE_NOTADB", "SQLITE_IOERR_SHORT_READ")


def damaged(exc: sqlite3.Error) -> bool:
    """Whether SQLite says the file itself is broken (a damaged page, a truncated file)."""
    name = str(getattr(exc, "sqlite_errorname", "") or "")
    text = str(exc)
    return name.startswith(_DAMAGED) or "malformed" in text or "not a database" in text


def unreadable(path: str | Path, exc: sqlite3.Error, *, conn: sqlite3.Connection | None = None,
               opening: bool = False) -> LedgerError:
    """One line for an SQLite error on the ledger at ``path``: the file, and what is wrong.

    A damaged file is :class:`LedgerTamperedError` (its content can no longer be trusted or
    verified); a table missing from a ledger at a lower schema version says which version it
    is at and that a run migrates it; anything else names SQLite's message.
    """
    text = str(exc)
    if damaged(exc):
        if opening and "not a database" in text:
            return LedgerError(f"{path}: not a ledger: {text}")
        return LedgerTamperedError(
            f"{path}: the ledger file is damaged ({text}): it can neither be read nor verified; "
            "restore it from a backup")
    if text.startswith("no such table: ") and conn is not None:
        table = text.removeprefix("no such table: ").strip()
        try:
            found = version(conn)
        except sqlite3.Error:
            found = -1
        step = next((n for n, names in STEP_TABLES.items() if table in names), None)
        if step is None or step > found or step == 2:  # step 2's tables come on first use
            return LedgerError(
                f"{path}: ledger schema version {found} has no table {table} (this command "
                f"needs it); a `drift-auditor run` migrates the ledger to version "
                f"{SCHEMA_VERSION}")
        return LedgerTamperedError(
            f"{path}: table {table} of ledger schema version {step} is missing although the "
            f"ledger is at version {found}: the file was altered")
    return LedgerError(f"{path}: cannot read the ledger: {text}")


def _v1(db: sqlite_utils.Database) -> None:
    db.table("runs").create({
        "id": int, "seq_begin": int, "seq_end": int, "cluster": str, "started_at": str,
        "ended_at": str, "status": str, "git_commits": str, "tool_version": str,
        "config_hash": str, "pid": int, "host": str, "counts": str, "skipped_kinds": str,
        "problems": str}, pk="id", not_null={"status", "started_at"})
    db.table("events").create({"seq": int, "at": str, "run_id": int, "type": str, "payload": str,
                         "prev_hash": str, "hash": str}, pk="seq",
                        not_null={"at", "type", "payload", "prev_hash", "hash"})
    db.table("checkpoints").create({"id": int, "run_id": int, "seq": int, "head_hash": str, "at": str,
                              "signature": str, "public_key": str}, pk="id")
    db.table("objects").create({"id": int, "seq": int, "grp": str, "kind": str, "namespace": str,
                          "name": str}, pk="id")
    db.table("objects").create_index(["grp", "kind", "namespace", "name"], unique=True)
    db.table("object_versions").create({
        "id": int, "seq": int, "run_id": int, "object_id": int, "api_version": str,
        "resource_version": str, "content_hash": str, "observed_at": str, "deleted": int},
        pk="id")
    db.table("object_versions").create_index(["object_id", "id"])
    db.table("object_versions").create_index(["observed_at"])
    db.table("contents").create({"version_id": int, "content": str}, pk="version_id")
    db.table("latest").create({"object_id": int, "version_id": int, "resource_version": str,
                         "content_hash": str, "deleted": int}, pk="object_id")
    db.table("changes").create({
        "id": int, "seq": int, "run_id": int, "object_id": int, "version_id": int,
        "prev_version_id": int, "change": str, "time": str, "manager": str, "operation": str,
        "category": str, "user": str, "user_source": str, "authorized": int}, pk="id")
    db.table("changes").create_index(["object_id", "time"])
    db.table("changes").create_index(["time"])
    db.table("drifts").create({
        "id": int, "seq": int, "object_id": int, "fingerprint": str, "status": str,
        "items": str, "category": str, "manager": str, "source_file": str,
        "source_commit": str, "live_hash": str, "run_id": int, "opened_at": str}, pk="id")
    db.table("drifts").create_index(["object_id"])
    db.table("drifts").create_index(["fingerprint"])
    db.table("drift_events").create({
        "id": int, "seq": int, "drift_id": int, "run_id": int, "at": str, "event": str,
        "how": str, "by": str, "reason": str, "expires": str, "related_drift_id": int}, pk="id")
    db.table("drift_events").create_index(["drift_id", "id"])
    db.table("drift_state").create({"drift_id": int, "object_id": int, "state": str, "since": str,
                              "accepted_until": str}, pk="drift_id")
    db.table("drift_state").create_index(["state"])
    db.table("commits").create({
        "id": int, "seq": int, "run_id": int, "repo": str, "sha": str, "author": str,
        "author_email": str, "date": str, "subject": str, "pr": int, "trailers": str}, pk="id")
    db.table("commits").create_index(["repo", "sha"], unique=True)
    # The tables of step 1 only: later steps create (and protect) their own.
    for table in ("objects", "object_versions", "changes", "drifts", "drift_events", "commits",
                  "events", "checkpoints"):
        _append_only(db, table)
    db.execute("""CREATE TRIGGER runs_no_delete BEFORE DELETE ON runs
        BEGIN SELECT RAISE(ABORT, 'ledger: runs are append-only; DELETE refused'); END""")
    db.execute("""CREATE TRIGGER runs_closed BEFORE UPDATE ON runs WHEN OLD.status != 'running'
        BEGIN SELECT RAISE(ABORT, 'ledger: a finished run is immutable; UPDATE refused'); END""")
    db.execute("""CREATE TRIGGER contents_no_update BEFORE UPDATE ON contents
        BEGIN SELECT RAISE(ABORT, 'ledger: object content is immutable; UPDATE refused'); END""")


def _append_only(db: sqlite_utils.Database, table: str) -> None:
    for verb in ("UPDATE", "DELETE"):
        db.execute(f"""CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table}
            BEGIN SELECT RAISE(ABORT, 'ledger: {table} is append-only; {verb} refused'); END""")


def _v2(db: sqlite_utils.Database) -> None:
    """The alert outbox: Slack messages queued until delivered (:mod:`.outbox`).
    Idempotent: ledgers made while this step was still empty get the tables on first use
    (:func:`ensure_outbox`)."""
    db.table("alert_outbox").create({
        "id": int, "created_at": str, "run_id": int, "kind": str, "action": str,
        "parent_id": int, "channel": str, "webhook_env": str, "payload": str,
        "drift_ids": str, "status": str, "attempts": int, "last_error": str,
        "last_attempt_at": str, "lease_until": str, "delivered_at": str, "slack_ts": str,
        "slack_channel": str}, pk="id", not_null={"created_at", "kind", "action", "payload",
                                                  "status"},
        defaults={"attempts": 0, "status": "pending"}, if_not_exists=True)
    db.table("alert_outbox").create_index(["status", "id"], if_not_exists=True)
    db.table("alert_drifts").create({
        "drift_id": int, "fingerprint": str, "notified_state": str, "message_id": int,
        "notified_at": str, "reminded_at": str}, pk="drift_id", if_not_exists=True)
    db.table("alert_drifts").create_index(["notified_state"], if_not_exists=True)
    db.table("alert_meta").create({"key": str, "value": str}, pk="key", if_not_exists=True)
    db.table("alert_runs").create({"run_id": int, "queued_at": str, "messages": int,
                                   "quiet": int}, pk="run_id", if_not_exists=True)


def ensure_outbox(conn: sqlite3.Connection) -> None:
    """Create the outbox tables if this ledger predates them (one short write transaction)."""
    if {"alert_outbox", "alert_drifts", "alert_meta", "alert_runs"} <= tables(conn):
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        _v2(_database(conn))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _v3(db: sqlite_utils.Database) -> None:
    """Policy results, per run and per object (:mod:`.policyresults`)."""
    db.table("policy_results").create({
        "id": int, "seq": int, "run_id": int, "at": str, "policy": str, "grp": str,
        "kind": str, "namespace": str, "name": str, "api_version": str, "status": str,
        "prev_status": str, "severity": str, "messages": str, "exemption": str}, pk="id")
    db.table("policy_results").create_index(["run_id"])
    db.table("policy_results").create_index(["policy", "grp", "kind", "namespace", "name"])
    db.table("policy_runs").create({
        "run_id": int, "seq": int, "at": str, "score": float, "policies": int, "results": int,
        "evaluated": int, "reused": int, "counts": str, "problems": str}, pk="run_id")
    db.table("policy_state").create({
        "policy": str, "grp": str, "kind": str, "namespace": str, "name": str,
        "status": str, "severity": str, "messages": str, "exemption": str, "since_run": int,
        "result_id": int}, pk=("policy", "grp", "kind", "namespace", "name"))
    db.table("policy_state").create_index(["status"])
    db.table("policy_cache").create({"ref": str, "content_hash": str, "outcomes": str},
                                    pk="ref")
    for table in ("policy_results", "policy_runs"):
        _append_only(db, table)


def _v4(db: sqlite_utils.Database) -> None:
    """Auto-revert attempts (:mod:`.reverts`)."""
    db.table("reverts").create({
        "id": int, "seq": int, "run_id": int, "at": str, "grp": str, "kind": str,
        "namespace": str, "name": str, "action": str, "mode": str, "result": str,
        "reason": str, "items": str, "desired_hash": str, "live_hash": str,
        "resource_version_before": str, "resource_version_after": str, "managers": str,
        "error": str}, pk="id", not_null={"run_id", "at", "kind", "name", "result"})
    db.table("reverts").create_index(["grp", "kind", "namespace", "name", "id"])
    db.table("reverts").create_index(["run_id"])
    _append_only(db, "reverts")


def _v5(db: sqlite_utils.Database) -> None:
    """Drift adopted into Git: paths, branch, commit, drift id (:mod:`.adoptions`)."""
    db.table("adoptions").create({
        "id": int, "seq": int, "at": str, "drift_id": int, "grp": str, "kind": str,
        "namespace": str, "name": str, "paths": str, "files": str, "repo": str, "branch": str,
        "base_commit": str, "commit_sha": str, "actor": str, "by": str, "pushed": int},
        pk="id", not_null={"at", "kind", "name", "branch", "commit_sha"})
    db.table("adoptions").create_index(["drift_id"])
    db.table("adoptions").create_index(["commit_sha"])
    _append_only(db, "adoptions")


def _v6(db: sqlite_utils.Database) -> None:
    """Watch mode and API-server audit events: the mode of each run, the watch's resume
    points (:mod:`.watch`), the audit events, their sources' deliveries and resume points
    (:mod:`.auditevents`)."""
    # Plain SQL: a column added with a default leaves every existing row as a scheduled run,
    # and no UPDATE touches the (immutable) finished runs.
    db.execute("ALTER TABLE runs ADD COLUMN mode TEXT NOT NULL DEFAULT 'run'")
    db.execute("CREATE INDEX idx_runs_mode_id ON runs (mode, id)")
    db.execute("CREATE INDEX idx_runs_mode_started_at ON runs (mode, started_at)")
    # Not chained: a cursor, rewritten by every batch (see :mod:`.watch`).
    db.table("watch_positions").create({"group_kind": str, "resource_version": str,
                                        "run_id": int, "updated_at": str}, pk="group_kind")
    db.table("audit_events").create({
        "id": int, "seq": int, "audit_id": str, "source": str, "recorded_at": str,
        "level": str, "stage": str, "verb": str, "request_uri": str, "user": str,
        "groups": str, "impersonated_user": str, "impersonated_groups": str,
        "user_agent": str, "manager": str, "source_ips": str, "grp": str, "version": str,
        "resource": str, "subresource": str, "namespace": str, "name": str, "uid": str,
        "kind": str, "resource_version": str, "code": int, "received_at": str,
        "stage_at": str, "request_hash": str, "response_hash": str, "request_object": str,
        "response_object": str}, pk="id", not_null={"audit_id", "verb", "stage_at"})
    db.table("audit_events").create_index(["audit_id"], unique=True)
    db.table("audit_events").create_index(["stage_at"])
    db.table("audit_events").create_index(["grp", "resource", "namespace", "name", "stage_at"])
    db.table("audit_deliveries").create({
        "id": int, "seq": int, "source": str, "at": str, "events": int, "recorded": int,
        "first_at": str, "last_at": str}, pk="id", not_null={"source", "at"})
    db.table("audit_deliveries").create_index(["first_at"])
    db.table("audit_deliveries").create_index(["source", "id"])
    # Not chained: a cursor (see :mod:`.auditevents`).
    db.table("audit_positions").create({"source": str, "position": str, "updated_at": str},
                                       pk="source")
    for table in ("audit_events", "audit_deliveries"):
        _append_only(db, table)


def _v7(db: sqlite_utils.Database) -> None:
    """The tool's own configuration, one version per change (:mod:`.configlog`)."""
    db.table("config_versions").create({
        "id": int, "seq": int, "run_id": int, "at": str, "mode": str, "digest": str,
        "previous_id": int, "config_file": str, "settings": str, "ignore_rules": str,
        "scope": str, "policy_pack": str, "origin": str},
        pk="id", not_null={"run_id", "at", "mode", "digest", "settings"})
    # The last version of a mode (each run asks), and the versions of a period (reports).
    db.table("config_versions").create_index(["mode", "id"])
    db.table("config_versions").create_index(["at"])
    _append_only(db, "config_versions")


def _v8(db: sqlite_utils.Database) -> None:
    """Approvals read from the git host, and branch protection snapshots (:mod:`.approvals`)."""
    db.table("approvals").create({
        "id": int, "seq": int, "run_id": int, "at": str, "kind": str, "source": str,
        "repo": str, "branch": str, "sha": str, "subject": str, "commit_author": str,
        "pr": int, "provider": str, "evidence": str, "verdict": str, "reason": str,
        "author": str, "last_pusher": str, "merged_by": str, "approvers": str,
        "reviews": str, "checks": str, "head": str, "protection": str, "objects": str,
        "trailers": str, "authors": str, "fetched_at": str, "cached": int},
        pk="id", not_null={"run_id", "at", "kind", "verdict"})
    # The newest verdict of a commit (each run's retries, reports), and a period's rows.
    db.table("approvals").create_index(["repo", "sha", "id"])
    db.table("approvals").create_index(["at"])
    _append_only(db, "approvals")


def _v9(db: sqlite_utils.Database) -> None:
    """Accountability of exceptions: authenticated acknowledgers and tickets, management
    responses, who ran ``adopt`` (:mod:`.accountability`)."""
    db.table("acknowledgements").create({
        "id": int, "seq": int, "at": str, "drift_event_id": int, "drift_id": int, "by": str,
        "identity": str, "identity_source": str, "ticket": str, "self_ack": int,
        "actors": str}, pk="id", not_null={"at", "drift_event_id", "drift_id", "by"})
    db.table("acknowledgements").create_index(["drift_event_id"], unique=True)
    db.table("responses").create({
        "id": int, "seq": int, "at": str, "ref_kind": str, "ref_id": int, "by": str,
        "identity": str, "identity_source": str, "text": str},
        pk="id", not_null={"at", "ref_kind", "ref_id", "by", "text"})
    db.table("responses").create_index(["ref_kind", "ref_id", "id"])
    db.table("adoption_identities").create({
        "id": int, "seq": int, "at": str, "adoption_id": int, "by": str, "identity": str,
        "identity_source": str}, pk="id", not_null={"at", "adoption_id"})
    db.table("adoption_identities").create_index(["adoption_id"], unique=True)
    for table in ("acknowledgements", "responses", "adoption_identities"):
        _append_only(db, table)


# Every table of the ledger is created here, one numbered step per feature that keeps
# state in it; the feature's own module of this package reads and writes its rows.
MIGRATIONS: tuple[tuple[int, Callable[[sqlite_utils.Database], None]], ...] = (
    (1, _v1),
    (2, _v2),   # alert outbox (Slack delivery)
    (3, _v3),   # policy results
    (4, _v4),   # auto-revert attempts
    (5, _v5),   # adoptions (drift written back into Git)
    (6, _v6),   # watch mode, watch positions, API-server audit events
    (7, _v7),   # the tool's own configuration versions
    (8, _v8),   # approvals from the git host, branch protection snapshots
    (9, _v9),   # acknowledgers' identities and tickets, management responses
)


# The tables each step creates (:func:`unreadable` tells a table a lower version lacks from
# one that was dropped; a test keeps this in step with MIGRATIONS).
STEP_TABLES: dict[int, tuple[str, ...]] = {
    1: ("runs", "events", "checkpoints", "objects", "object_versions", "contents", "latest",
        "changes", "drifts", "drift_events", "drift_state", "commits"),
    2: ("alert_outbox", "alert_drifts", "alert_meta", "alert_runs"),
    3: ("policy_results", "policy_runs", "policy_state", "policy_cache"),
    4: ("reverts",),
    5: ("adoptions",),
    6: ("watch_positions", "audit_events", "audit_deliveries", "audit_positions"),
    7: ("config_versions",),
    8: ("approvals",),
    9: ("acknowledgements", "responses", "adoption_identities"),
}


def version(conn: sqlite3.Connection) -> int:
    return int(conn.execute(dialect_of(conn).version_sql).fetchone()[0])


def migrate(conn: sqlite3.Connection, path: str | Path) -> int:
    """Bring the schema to :data:`SCHEMA_VERSION`; returns the version found before."""
    try:
        found = version(conn)
    except sqlite3.DatabaseError as exc:
        raise unreadable(path, exc, opening=True) from exc
    if found > SCHEMA_VERSION:
        raise LedgerError(f"{path}: ledger schema version {found} is newer than this "
                          f"drift-auditor understands ({SCHEMA_VERSION}); upgrade drift-auditor")
    if found == SCHEMA_VERSION:
        return found  # the common case: no step to run, no sqlite-utils to load
    db = _database(conn)
    for number, step in MIGRATIONS:
        if number <= found:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            if version(conn) >= number:
                # Another process migrated between our read and our lock.
                conn.execute("COMMIT")
                continue
            # No step may end the transaction: a DDL helper that commits (or rolls back) on
            # its own is refused by the authorizer, and the whole step rolls back instead of
            # leaving half of it committed without its user_version.
            conn.set_authorizer(_within_step)
            try:
                step(db)
            finally:
                conn.set_authorizer(None)
            conn.execute(f"PRAGMA user_version = {number}")
            conn.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if str(exc) == "not authorized":
                raise LedgerError(f"{path}: migration step {number} tried to end its "
                                  "transaction before its user_version was set; refused and "
                                  "rolled back (a DDL helper that commits on its own?)") from exc
            raise unreadable(path, exc, conn=conn) from exc
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    return found


def _within_step(action: int, arg1: str | None, *_: object) -> int:
    """The authorizer while a migration step runs: everything but ending the transaction."""
    if action == sqlite3.SQLITE_TRANSACTION and arg1 in ("COMMIT", "ROLLBACK"):
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


def _database(conn: sqlite3.Connection) -> sqlite_utils.Database:
    import sqlite_utils

    return sqlite_utils.Database(conn)
