"""The ledger: one SQLite file, one writer at a time, runs written in all-or-nothing batches.

Open → lock → migrate → recover (runs a killed process left ``running`` become ``failed``).
A run stages object versions and changes and commits them every ``batch_size`` rows; the drift
lifecycle, the run's end and its checkpoint are committed together by :meth:`Run.finish`.
A crash between two commits therefore leaves whole batches and an unfinished run, never half
a batch, and never a drift resolved by a run that did not finish.

Cost is proportional to what changed: the pipeline skips unchanged objects using
:meth:`Run.listed`, asked page by page (one indexed read per kind and namespace); the object
index is read on demand and kept only for objects a run touched; :meth:`Run.record` keeps
only drifted objects and objects with an open drift in memory; still-open drifts write
nothing. Memory therefore follows changes and drifts, not the cluster's size.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import socket
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import orjson

from auditor.engine.records import ObjectResult, Problem, ResourceKey, SourceInfo
from auditor.errors import LedgerError

from . import (
    accountability,
    auditevents,
    authorize,
    backend,
    chain,
    keys,
    lifecycle,
    redact,
    schema,
    times,
    watch,
)
from .auditlog import SPOOFED_SOURCE, AuditLog
from .lock import WriterLock
from .verify import VerifyResult, verify
from .writer import Batch, Counters

if TYPE_CHECKING:
    # cryptography costs ~15 ms to import; only signed ledgers need it (.signing).
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from .pgconn import AdvisoryWriterLock

_UPSERT_LATEST = (
    "INSERT INTO latest (object_id, version_id, resource_version, content_hash, deleted) "
    "VALUES (?, ?, ?, ?, ?) ON CONFLICT(object_id) DO UPDATE SET version_id = excluded.version_id, "
    "resource_version = excluded.resource_version, content_hash = excluded.content_hash, "
    "deleted = excluded.deleted")
_UPSERT_STATE = (
    "INSERT INTO drift_state (drift_id, object_id, state, since, accepted_until) "
    "VALUES (?, ?, ?, ?, ?) ON CONFLICT(drift_id) DO UPDATE SET state = excluded.state, "
    "since = excluded.since, accepted_until = excluded.accepted_until")
RUN_STATUSES = ("complete", "partial", "failed")


@dataclass(frozen=True, slots=True)
class Acknowledged:
    """What :meth:`Ledger.acknowledge` recorded: the drift, its object, until when ('' /
    None: until it changes), and whether its own actor acknowledged it."""

    drift_id: int
    key: ResourceKey
    until: str | None
    self_acknowledged: bool


@dataclass(frozen=True, slots=True)
class Observation:
    """One live object whose content changed since the ledger last saw it.

    ``content`` is the normalised object with Secret values already keyed hashes; the ledger
    still redacts anything under a Secret's data that is not such a hash. ``time`` is the
    managedFields time of the change; ``authorized`` says whether it matches a Git change
    (``None``: let the ledger judge from the object's comparison result, see
    :mod:`.authorize`). ``user`` is who made it, when known; ``user_source`` where that came
    from (``audit-log``; default ``observation``); ``spoofed`` marks a write under a GitOps
    manager's name by a user who is not a GitOps identity (recorded as the user source
    ``audit-log/spoofed-manager``, :data:`.auditlog.SPOOFED_SOURCE`).
    """

    key: ResourceKey
    api_version: str
    resource_version: str
    content_hash: str
    content: dict[str, Any] | None = None
    manager: str = ""
    operation: str = ""
    time: str = ""
    category: str = "unknown"
    authorized: bool | None = None
    user: str = ""
    user_source: str = ""
    spoofed: bool = False


@dataclass(frozen=True, slots=True)
class _Latest:
    version_id: int
    resource_version: str
    content_hash: str
    deleted: bool


_KNOWN_COLUMNS = ("o.name, o.id, l.resource_version, l.content_hash, l.deleted "
                  "FROM objects o JOIN latest l ON l.object_id = o.id")
# SQLite before 3.32 allows 999 parameters per statement.
_MAX_NAMES = 900


class _Index:
    """The ledger's object index: key → object id → latest version.

    Read from SQLite when asked and kept only for the objects this process touched (staged
    a version, a deletion or a drift for): memory follows what runs change, not how many
    objects the cluster has. Entries staged in a batch not yet written are found here
    first, so the unwritten batch is never missed. One writer holds the ledger (the lock),
    so nothing else changes the tables underneath.
    """

    __slots__ = ("_complete", "_created", "conn", "latest", "oids")

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.oids: dict[ResourceKey, int] = {}
        self.latest: dict[int, _Latest | None] = {}
        # An empty ledger has nothing to look up: every object is one this process creates.
        self._complete = conn.execute("SELECT 1 FROM objects LIMIT 1").fetchone() is None
        # Then the hashes of the keys it created (~50 bytes each) tell, once the objects
        # are written and forgotten, that any other key is unknown without asking SQLite:
        # a first run of 10,000 objects made 20,000 such lookups (bench run: 0.12 s CPU).
        self._created: set[int] | None = set() if self._complete else None

    def forget(self) -> None:
        """Drop what is cached once it is written: a first run stages every object, and
        holding them all would make its memory the cluster's size after all."""
        self.oids.clear()
        self.latest.clear()
        self._complete = False

    def created(self, key: ResourceKey, oid: int) -> None:
        """``key`` was just given object id ``oid`` (in a batch not yet written)."""
        self.oids[key] = oid
        self.latest[oid] = None
        if self._created is not None:
            self._created.add(hash(key))

    def oid(self, key: ResourceKey) -> int | None:
        oid = self.oids.get(key)
        if oid is not None or self._complete:
            return oid
        if self._created is not None and hash(key) not in self._created:
            return None  # the ledger was empty and this process never created it
        row = self.conn.execute(
            "SELECT id FROM objects WHERE grp = ? AND kind = ? AND namespace = ? AND name = ?",
            (key.group, key.kind, key.namespace, key.name)).fetchone()
        if row is None:
            return None
        oid = self.oids[key] = int(row[0])
        return oid

    def get_latest(self, oid: int) -> _Latest | None:
        if oid in self.latest:
            return self.latest[oid]
        row = self.conn.execute("SELECT version_id, resource_version, content_hash, deleted "
                                "FROM latest WHERE object_id = ?", (oid,)).fetchone()
        found = (_Latest(int(row[0]), row[1] or "", row[2] or "", bool(row[3]))
                 if row is not None else None)
        self.latest[oid] = found
        return found

    def latest_of(self, key: ResourceKey) -> _Latest | None:
        oid = self.oid(key)
        return self.get_latest(oid) if oid is not None else None

    def versions_of(self, keys: Sequence[ResourceKey], found_ids: list[int] | None = None,
                    ) -> dict[ResourceKey, tuple[str, str]]:
        """``{key: (resourceVersion, content_hash)}`` for those of ``keys`` live at their
        latest observation: one indexed read per (group, kind, namespace) among ``keys``. A
        page of a list is one kind, sorted by namespace, so that is a handful of reads; an
        unsorted page (an aggregated API) costs at most one per key, never a scan.
        ``found_ids`` collects the object ids of the keys the ledger holds."""
        out: dict[ResourceKey, tuple[str, str]] = {}
        if not keys:
            return out
        if not self._complete:
            groups: dict[tuple[str, str, str], dict[str, ResourceKey]] = {}
            for key in keys:
                groups.setdefault((key.group, key.kind, key.namespace), {})[key.name] = key
            for (group, kind, namespace), by_name in groups.items():
                names = list(by_name)
                for i in range(0, len(names), _MAX_NAMES):
                    some = names[i:i + _MAX_NAMES]
                    for name, oid, rv, chash, deleted in self.conn.execute(
                            f"SELECT {_KNOWN_COLUMNS} WHERE o.grp = ? AND o.kind = ? AND "
                            f"o.namespace = ? AND o.name IN ({','.join('?' * len(some))})",
                            (group, kind, namespace, *some)):
                        if found_ids is not None:
                            found_ids.append(oid)
                        if not deleted:
                            out[by_name[name]] = (rv or "", chash or "")
        if found_ids is not None and self.oids:
            # Objects this process created or read are known without the table.
            found_ids.extend(oid for oid in map(self.oids.get, keys) if oid is not None)
        if self.latest:
            self._overlay(out, ((key, self.oids.get(key)) for key in keys))
        return out

    def _overlay(self, out: dict[ResourceKey, tuple[str, str]],
                 pairs: Iterable[tuple[ResourceKey, int | None]]) -> None:
        """What this process staged (perhaps not yet written) wins over the table."""
        for key, oid in pairs:
            if oid is not None and oid in self.latest:
                latest = self.latest[oid]
                if latest is None or latest.deleted:
                    out.pop(key, None)
                else:
                    out[key] = (latest.resource_version, latest.content_hash)

    def all_versions(self) -> dict[ResourceKey, tuple[str, str]]:
        out: dict[ResourceKey, tuple[str, str]] = {}
        for grp, kind, ns, name, rv, chash, deleted in self.conn.execute(
                "SELECT o.grp, o.kind, o.namespace, o.name, l.resource_version, "
                "l.content_hash, l.deleted FROM objects o JOIN latest l ON l.object_id = o.id"):
            if not deleted:
                out[ResourceKey(grp, kind, ns, name)] = (rv or "", chash or "")
        self._overlay(out, self.oids.items())
        return out


@dataclass
class RunSummary:
    """What a finished run wrote, for logs and the run's ``counts``."""

    run_id: int
    status: str
    seq: int = 0
    head_hash: str = ""
    signed: bool = False
    versions: int = 0
    changes: int = 0
    deletions: int = 0
    commits: int = 0
    opened: int = 0
    reopened: int = 0
    still_open: int = 0
    accepted: int = 0
    expired: int = 0
    resolved: dict[str, int] = field(default_factory=dict)

    def counts(self) -> dict[str, Any]:
        return {"versions": self.versions, "changes": self.changes, "deletions": self.deletions,
                "commits": self.commits, "drifts_opened": self.opened,
                "drifts_reopened": self.reopened, "drifts_still_open": self.still_open,
                "drifts_accepted": self.accepted, "acks_expired": self.expired,
                "drifts_resolved": dict(sorted(self.resolved.items()))}


def content_hash(content: dict[str, Any]) -> str:
    """A stable SHA-256 of normalised content (sorted-key JSON), for ``Observation``.

    The ledger stores a version's content as exactly these bytes, so the chained hash of a
    version covers its stored content: ``verify`` hashes what is stored and compares.
    """
    return hashlib.sha256(chain.canonical(content)).hexdigest()


def _json(value: Any) -> str:
    return chain.canonical(value).decode()


def _problem(p: Problem) -> dict[str, Any]:
    return {"where": p.where, "message": p.message, "kind": p.kind,
            "extra": {str(k): v if isinstance(v, str | int | float | bool) or v is None else str(v)
                      for k, v in p.extra}}


class Ledger:
    """An open, locked, migrated ledger. Use :meth:`open` as a context manager."""

    def __init__(self, path: Path | str, conn: sqlite3.Connection,
                 lock: WriterLock | AdvisoryWriterLock, *,
                 tool_version: str, config_hash: str, signing_key: Ed25519PrivateKey | None,
                 batch_size: int) -> None:
        self.path = path
        self.conn = conn
        self._lock = lock
        self.tool_version = tool_version
        self.config_hash = config_hash
        self._signing_key = signing_key
        self._public_hex = ""
        if signing_key is not None:
            from . import signing

            self._public_hex = signing.public_hex(signing_key.public_key())
        self.batch_size = batch_size
        row = conn.execute("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
        self.head = chain.Head(int(row[0]), str(row[1])) if row else chain.Head()
        self.counters = Counters.load(conn)
        self._index_: _Index | None = None
        self._run: Run | None = None
        self._broken = False
        self.recovered_runs: list[int] = []
        self.schema_version_found = 0

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    def open(cls, path: str | Path, *, tool_version: str = "", config_hash: str = "",
             signing_key_file: str | Path | None = None, lock_wait: float = 0.0,
             batch_size: int = 2000, sign: bool = True, cluster: str | None = None,
             password: str | None = None) -> Ledger:
        """Open (creating if needed) and lock the ledger for writing.

        ``path`` is an SQLite file, or a ``postgresql://`` URL: ``cluster``'s ledger in the
        fleet store (:mod:`.pgconn`; ``password``, when given, is passed to the server
        beside the URL).

        Checkpoints are signed with ``signing_key_file``; without one, with the key beside
        the ledger when there is one (:mod:`.keyfile`: the first CLI writer creates it), so
        that no writer leaves an unsigned checkpoint among signed ones. A URL has no
        "beside": on PostgreSQL checkpoints are signed only with a ``signing_key_file``.
        ``sign`` false (``ledger.sign: false``): never signed.

        Raises :class:`LedgerLockedError` naming the holder when another process writes it.
        """
        if backend.is_url(path):
            return cls._open_pg(path, cluster, password, tool_version=tool_version,
                                config_hash=config_hash, signing_key_file=signing_key_file,
                                lock_wait=lock_wait, batch_size=batch_size, sign=sign)
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        key = None
        if sign and not signing_key_file:
            from . import keyfile

            beside = keyfile.beside(target)
            signing_key_file = beside if beside.exists() else None
        if sign and signing_key_file:
            from . import signing

            key = signing.load_private_key(signing_key_file)
        lock = WriterLock(target)
        lock.acquire(lock_wait)
        conn: sqlite3.Connection | None = None
        try:
            conn = schema.connect(target)
            found = schema.migrate(conn, target)
            try:
                ledger = cls(target, conn, lock, tool_version=tool_version,
                             config_hash=config_hash, signing_key=key, batch_size=batch_size)
                ledger.schema_version_found = found
                ledger._recover()
            except sqlite3.DatabaseError as exc:
                raise schema.unreadable(target, exc, conn=conn) from exc
        except BaseException:
            if conn is not None:
                conn.close()
            lock.release()
            raise
        return ledger

    @classmethod
    def _open_pg(cls, url: str, cluster: str | None, password: str | None, *,
                 tool_version: str, config_hash: str, signing_key_file: str | Path | None,
                 lock_wait: float, batch_size: int, sign: bool) -> Ledger:
        """:meth:`open` on the fleet store: connect, lock the cluster (an advisory lock on
        this session), create its schema when new, recover, as for a file."""
        from . import pgconn  # psycopg is imported only by a PostgreSQL ledger

        if not cluster:
            raise LedgerError("a PostgreSQL ledger needs its cluster's name (ledger.cluster)")
        key = None
        if sign and signing_key_file:
            from . import signing

            key = signing.load_private_key(signing_key_file)
        conn = pgconn.connect(url, cluster, password=password)
        lock = pgconn.AdvisoryWriterLock(conn)
        try:
            lock.acquire(lock_wait)
            found = pgconn.ensure_schema(conn)
            ledger = cls(conn.where, conn, lock,  # type: ignore[arg-type]
                         tool_version=tool_version, config_hash=config_hash, signing_key=key,
                         batch_size=batch_size)
            ledger.schema_version_found = found
            ledger._recover()
        except BaseException:
            lock.release()
            conn.close()
            raise
        return ledger

    def close(self) -> None:
        try:
            self.conn.close()  # on PostgreSQL this also ends the session's advisory lock
        finally:
            self._lock.release()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        run = self._run
        if run is not None and not run.finished and not self._broken:
            # Leaving with a run still open (an exception in the pipeline): record it failed
            # now rather than leaving it to the next open's recovery.
            with contextlib.suppress(LedgerError):
                run.finish("failed", problems=[Problem(
                    "ledger", f"run aborted: {exc_type.__name__ if exc_type else 'not finished'}"
                    f"{': ' + str(exc) if exc else ''}")])
        self.close()

    def _batch(self) -> Batch:
        if self._broken:
            raise LedgerError(f"{self.path}: an earlier ledger write failed; reopen the ledger")
        return Batch(self.head, self.counters)

    def _write(self, batch: Batch) -> None:
        try:
            batch.write(self.conn)
        except BaseException:
            # In-memory caches may now be ahead of the file: refuse further writes.
            self._broken = True
            raise
        if self._index_ is not None:
            self._index_.forget()  # all it held is in the file now

    def _checkpoint(self, batch: Batch, run_id: int | None, at: str) -> tuple[int, str, bool]:
        seq, head_hash = self.head.seq, self.head.hash
        signature = ""
        if self._signing_key is not None:
            from . import signing

            message = signing.checkpoint_message(run_id, seq, head_hash, at)
            signature = signing.sign(self._signing_key, message)
        batch.plain("INSERT INTO checkpoints (id, run_id, seq, head_hash, at, signature, public_key)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (self.counters.take("checkpoints"), run_id, seq, head_hash, at,
                     signature or None, self._public_hex or None))
        return seq, head_hash, bool(signature)

    def _end_run(self, batch: Batch, run_id: int, status: str, ended_at: str,
                 counts: Mapping[str, Any], skipped_kinds: Sequence[str],
                 problems: Sequence[dict[str, Any]]) -> tuple[int, str, bool]:
        row = {"id": run_id, "status": status, "ended_at": ended_at, "counts": _json(counts),
               "skipped_kinds": _json(sorted(skipped_kinds)), "problems": _json(list(problems))}
        event = batch.event("run_end", ended_at, run_id, row)
        batch.plain("UPDATE runs SET status = ?, ended_at = ?, counts = ?, skipped_kinds = ?, "
                    "problems = ?, seq_end = ? WHERE id = ?",
                    (status, ended_at, row["counts"], row["skipped_kinds"], row["problems"],
                     event.seq, run_id))
        return self._checkpoint(batch, run_id, ended_at)

    def _recover(self) -> None:
        """Close runs that a dead process left ``running``: we hold the lock, so nobody is
        writing them. Their committed batches stay (they are real observations); their drift
        lifecycle was never applied, and the next run recomputes it."""
        stale = self.conn.execute(
            "SELECT id, pid, host, started_at FROM runs WHERE status = 'running' ORDER BY id").fetchall()
        if not stale:
            return
        batch = self._batch()
        at = times.stamp(times.now())
        for run_id, pid, host, started in stale:
            problem = {"where": "ledger", "kind": "error", "extra": {},
                       "message": f"run {run_id} (pid {pid} on {host}, started {started}) did not "
                                  f"finish: the process ended before recording its result; "
                                  f"marked failed on open by pid {os.getpid()}"}
            self._end_run(batch, int(run_id), "failed", at, {"recovered": True}, [], [problem])
            self.recovered_runs.append(int(run_id))
        self._write(batch)

    # --------------------------------------------------------------------- reads

    @property
    def _index(self) -> _Index:
        if self._index_ is None:
            self._index_ = _Index(self.conn)
        return self._index_

    def known_versions(self) -> dict[ResourceKey, tuple[str, str]]:
        """``{key: (resourceVersion, content_hash)}`` of every object live at its latest
        observation, all at once. The pipeline asks :meth:`versions_of` page by page."""
        return self._index.all_versions()

    def versions_of(self, keys: Sequence[ResourceKey]) -> dict[ResourceKey, tuple[str, str]]:
        """:meth:`known_versions` for ``keys`` only (a page of live objects): the pipeline
        observes only objects whose pair differs."""
        return self._index.versions_of(keys)

    def live_keys(self, group: str, kind: str, namespace: str | None = None
                  ) -> Iterator[ResourceKey]:
        """The keys of one kind (and namespace, when given) the ledger holds as live, in key
        order, read through a cursor: a watch's relist diffs them against what it listed
        without holding the kind in memory."""
        sql = ("SELECT o.namespace, o.name FROM objects o JOIN latest l ON l.object_id = o.id "
               "WHERE o.grp = ? AND o.kind = ? AND l.deleted = 0")
        args: tuple[str, ...] = (group, kind)
        if namespace is not None:
            sql += " AND o.namespace = ?"
            args = (group, kind, namespace)
        for ns, name in self.conn.execute(sql + " ORDER BY o.namespace, o.name", args):
            yield ResourceKey(group, kind, str(ns), str(name))

    def verify(self, public_key_file: str | Path | None = None) -> VerifyResult:
        """Recompute the chain, every chained row and every checkpoint (see :mod:`.verify`)."""
        public = self._signing_key.public_key() if self._signing_key else None
        if public_key_file:
            from . import signing

            public = signing.load_public_key(public_key_file)
        return verify(self.conn, public)

    # ---------------------------------------------------------------------- runs

    def begin_run(self, cluster: str = "default", git_commits: Mapping[str, str] | None = None,
                  started_at: datetime | None = None,
                  audit_log: AuditLog | str | Path | None = None, mode: str = "run") -> Run:
        """Begin a run: ``mode`` ``run`` is a scheduled audit of the whole cluster (the
        CronJob's ``drift-auditor run``), ``watch`` one batch of watch events
        (:mod:`.watch`). A watch run records the changes of its batch and, finished with
        ``undecided`` naming every other object, opens and resolves only its batch's drift;
        it is no audit of the whole cluster, so reports count scheduled runs only for
        monitoring completeness. The mode is chained with the run's ``run_begin`` event."""
        if self._run is not None and not self._run.finished:
            raise LedgerError(f"{self.path}: run {self._run.id} is still open; finish it first")
        if mode not in schema.RUN_MODES:
            raise LedgerError(f"run mode {mode!r}: expected one of {', '.join(schema.RUN_MODES)}")
        if isinstance(audit_log, str | Path):
            audit_log = AuditLog.load(audit_log)
        started = times.stamp(started_at or times.now())
        batch = self._batch()
        run_id = self.counters.take("runs")
        row = {"id": run_id, "cluster": cluster, "started_at": started,
               "git_commits": _json(dict(sorted((git_commits or {}).items()))),
               "tool_version": self.tool_version, "config_hash": self.config_hash,
               "pid": os.getpid(), "host": socket.gethostname()}
        if mode != "run":
            # Only then: the run_begin of a scheduled run hashes as it always did.
            row["mode"] = mode
        event = batch.event("run_begin", started, run_id, row)
        batch.plain("INSERT INTO runs (id, seq_begin, cluster, started_at, status, git_commits, "
                    "tool_version, config_hash, pid, host, mode) "
                    "VALUES (?, ?, ?, ?, 'running', ?, ?, ?, ?, ?, ?)",
                    (run_id, event.seq, cluster, started, row["git_commits"], self.tool_version,
                     self.config_hash, row["pid"], row["host"], mode))
        self._write(batch)
        # The first sighting of an object is a change only once a scheduled run has listed
        # the cluster: before that, what a watch or the first run sees is the baseline.
        has_history = self.conn.execute(
            "SELECT 1 FROM runs WHERE mode = 'run' AND status IN ('complete', 'partial') "
            "LIMIT 1").fetchone()
        self._run = Run(self, run_id, started, cluster, audit_log, bool(has_history), mode)
        return self._run

    # ------------------------------------------------------------ watch and audit events

    def watch_positions(self) -> dict[str, str]:
        """``{group_kind: resourceVersion}`` each watched kind resumes from, as the last
        finished (complete or partial) run that set them committed them (:mod:`.watch`)."""
        return watch.positions(self.conn)

    def record_audit_events(self, events: Iterable[Mapping[str, Any]], *, source: str,
                            position: str | None = None,
                            kinds: Mapping[tuple[str, str], str] | None = None,
                            at: datetime | None = None) -> int:
        """Record API-server audit events (``audit.k8s.io/v1`` ``Event`` objects, or
        ``EventList`` objects holding them) delivered by ``source`` (``file:/var/log/…``,
        ``webhook``); returns how many were new. See :mod:`.auditevents` for what is kept,
        redacted and chained. The same auditID from two sources is recorded once.

        ``position`` (a tailed file's resume point, opaque here) is written in the same
        transaction as the last of these events; :meth:`audit_position` reads it back.
        ``kinds`` maps ``(apiGroup, resource)`` to the kind (from discovery) for events that
        carry no object. An empty ``events`` is a heartbeat: the source is alive and had
        nothing new. Not while a run is open (the events are no part of a run)."""
        if self._run is not None and not self._run.finished:
            raise LedgerError("cannot record audit events while a run is open; finish it first")
        return auditevents.record(self, events, source=source, position=position,
                                  kinds=kinds, at=at)

    def audit_position(self, source: str) -> str | None:
        """Where the tailed audit ``source`` resumes: the ``position`` recorded with its last
        events (``None``: never recorded)."""
        return auditevents.position(self.conn, source)

    def _open_drifts(self, object_id: int | None = None) -> dict[ResourceKey, lifecycle.OpenDrift]:
        """Every open or accepted drift (of one object, when ``object_id`` is given)."""
        out: dict[ResourceKey, lifecycle.OpenDrift] = {}
        where, args = ("AND d.object_id = ? ", (object_id,)) if object_id is not None else ("", ())
        for (did, oid, grp, kind, ns, name, fp, status, state, until, commit,
             live_hash) in self.conn.execute(
                "SELECT d.id, d.object_id, o.grp, o.kind, o.namespace, o.name, d.fingerprint, "
                "d.status, s.state, s.accepted_until, d.source_commit, d.live_hash "
                "FROM drifts d JOIN drift_state s ON s.drift_id = d.id "
                "JOIN objects o ON o.id = d.object_id WHERE s.state IN ('open', 'accepted') "
                f"{where}ORDER BY d.id", args):
            key = ResourceKey(grp, kind, ns, name)
            out[key] = lifecycle.OpenDrift(did, oid, key, fp, status, state, until, commit or "",
                                           live_hash or "")
        return out

    def _object_id(self, batch: Batch, key: ResourceKey, at: str, run_id: int | None) -> int:
        index = self._index
        oid = index.oid(key)
        if oid is None:
            oid = batch.chained("objects", {"grp": key.group, "kind": key.kind,
                                            "namespace": key.namespace, "name": key.name},
                                at, run_id)
            index.created(key, oid)
        return oid

    # ----------------------------------------------------------------------- ack

    def _resolve_target(self, target: int | str | ResourceKey) -> lifecycle.OpenDrift:
        open_drifts = self._open_drifts()
        if isinstance(target, int) or (isinstance(target, str) and target.strip().isdigit()):
            drift_id = int(target)
            for drift in open_drifts.values():
                if drift.drift_id == drift_id:
                    return drift
            state = self.conn.execute("SELECT state FROM drift_state WHERE drift_id = ?",
                                      (drift_id,)).fetchone()
            raise LedgerError(f"drift {drift_id}: " + (
                f"is {state[0]}, only open or accepted drifts can be acknowledged" if state
                else "no such drift in the ledger"))
        pattern = (keys.KeyPattern(target.name, target.namespace, target.kind, target.group)
                   if isinstance(target, ResourceKey) else keys.parse(target))
        found = [d for k, d in open_drifts.items() if pattern.matches(k)]
        if not found:
            raise LedgerError(f"{target}: no open drift on a matching object")
        if len(found) > 1:
            names = ", ".join(f"{d.drift_id} ({d.key})" for d in found)
            raise LedgerError(f"{target}: matches several open drifts: {names}; name one by id")
        return found[0]

    def ack(self, target: int | str | ResourceKey, *, by: str, reason: str,
            expires: datetime | str | None = None, at: datetime | None = None,
            identity: accountability.Identity | None = None, ticket: str = "",
            policy: accountability.AckPolicy | None = None) -> int:
        """Accept an open drift (by id or object key) until ``expires`` (ISO time or a
        duration such as ``30d``; ``None``: until it changes or resolves). Returns its id.
        See :meth:`acknowledge` for ``identity``, ``ticket`` and ``policy``."""
        return self.acknowledge(target, by=by, reason=reason, expires=expires, at=at,
                                identity=identity, ticket=ticket, policy=policy).drift_id

    def acknowledge(self, target: int | str | ResourceKey, *, by: str, reason: str,
                    expires: datetime | str | None = None, at: datetime | None = None,
                    identity: accountability.Identity | None = None, ticket: str = "",
                    policy: accountability.AckPolicy | None = None) -> Acknowledged:
        """:meth:`ack`, with its accountability: ``identity`` is who ran it as authenticated
        (recorded beside ``by``), ``ticket`` the change ticket; ``policy`` may require a
        ticket and refuses the drift's own actor unless it allows self-acknowledgement
        (:mod:`.accountability`; refused before anything is written)."""
        if self._run is not None and not self._run.finished:
            raise LedgerError("cannot acknowledge a drift while a run is open")
        if not by.strip() or not reason.strip():
            raise LedgerError("an acknowledgement needs who (--by) and why (--reason)")
        moment = at or times.now()
        until = (times.stamp(times.parse(expires, relative_to=moment, what="--expires"))
                 if isinstance(expires, str) else times.stamp(expires) if expires else None)
        if until is not None and until <= times.stamp(moment):
            raise LedgerError(f"--expires {expires}: {until} is not in the future")
        drift = self._resolve_target(target)
        stamp = times.stamp(moment)
        batch = self._batch()
        event_id = batch.chained("drift_events", {
            "drift_id": drift.drift_id, "run_id": None, "at": stamp, "event": "accepted",
            "how": None, "by": by, "reason": reason, "expires": until, "related_drift_id": None},
            stamp, None)
        try:
            self_ack = accountability.stage_ack(
                self.conn, batch, drift_event_id=event_id, drift_id=drift.drift_id, at=stamp,
                by=by, identity=identity or accountability.UNKNOWN, ticket=ticket,
                policy=policy or accountability.AckPolicy())
        except BaseException:
            batch.rollback_memory()  # the chained event above is not written: undo its seq
            raise
        batch.plain(_UPSERT_STATE, (drift.drift_id, drift.object_id, "accepted", stamp, until))
        self._checkpoint(batch, None, stamp)
        self._write(batch)
        return Acknowledged(drift.drift_id, drift.key, until, self_ack)

    def respond(self, ref: str, *, by: str, text: str,
                identity: accountability.Identity | None = None) -> int:
        """Record a management response to the exception ``ref`` (``drift:12``,
        ``change:34``) with who wrote it as authenticated; its id
        (:func:`.accountability.stage_response`)."""
        if self._run is not None and not self._run.finished:
            raise LedgerError("cannot record a response while a run is open")
        stamp = times.stamp(times.now())
        batch = self._batch()
        try:
            rid = accountability.stage_response(
                self.conn, batch, ref, by=by, text=text,
                identity=identity or accountability.UNKNOWN, at=stamp)
        except BaseException:
            batch.rollback_memory()
            raise
        self._checkpoint(batch, None, stamp)
        self._write(batch)
        return rid

    # ------------------------------------------------------------------ retention

    def prune(self, older_than_days: int, *, now: datetime | None = None,
              vacuum: bool = False) -> int:
        """Delete the content of object versions observed more than ``older_than_days`` ago,
        except each object's latest version. Versions, changes, drifts and the chain stay (the
        chain holds content hashes, not content), so ``verify`` still passes. Returns the
        number of contents deleted. ``vacuum`` then rewrites the file to give the space back
        (otherwise SQLite reuses the freed pages for later runs).

        The ``prune`` event records the cutoff in the chain, in the same transaction as the
        deletion; "latest" is read from the chained versions (a newer version of the object
        exists), not from the ``latest`` cache, so exactly what ``verify`` accepts as pruned
        is deleted: content observed before a prune's cutoff whose object had a newer
        version when that prune ran."""
        if older_than_days < 1:
            raise LedgerError(f"retention: {older_than_days} days; expected at least 1")
        if self._run is not None and not self._run.finished:
            raise LedgerError("cannot prune while a run is open")
        moment = now or times.now()
        cutoff = times.stamp(datetime.fromtimestamp(moment.timestamp() - older_than_days * 86400,
                                                    tz=moment.tzinfo))
        where = ("version_id IN (SELECT v.id FROM object_versions v WHERE v.observed_at < ? "
                 "AND EXISTS (SELECT 1 FROM object_versions n WHERE n.object_id = v.object_id "
                 "AND n.id > v.id))")
        count = int(self.conn.execute(f"SELECT count(*) FROM contents WHERE {where}",
                                      (cutoff,)).fetchone()[0])
        batch = self._batch()
        stamp = times.stamp(moment)
        batch.event("prune", stamp, None, {"cutoff": cutoff, "contents_deleted": count,
                                           "older_than_days": older_than_days})
        batch.plain(f"DELETE FROM contents WHERE {where}", (cutoff,))
        self._checkpoint(batch, None, stamp)
        self._write(batch)
        if vacuum:
            self.conn.execute("VACUUM")
        return count


class _OpenDriftsOf(Mapping[ResourceKey, lifecycle.OpenDrift]):
    """The open drifts of the objects a watch batch asks about, read one object at a time
    (indexed by object) and remembered; iterating gives those asked about only, which are the
    only ones a watch run may judge."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self._found: dict[ResourceKey, lifecycle.OpenDrift | None] = {}

    def _lookup(self, key: object) -> lifecycle.OpenDrift | None:
        if not isinstance(key, ResourceKey):
            return None
        if key not in self._found:
            oid = self._ledger._index.oid(key)
            drifts = self._ledger._open_drifts(oid) if oid is not None else {}
            self._found[key] = drifts.get(key)
        return self._found[key]

    def __getitem__(self, key: ResourceKey) -> lifecycle.OpenDrift:
        found = self._lookup(key)
        if found is None:
            raise KeyError(key)
        return found

    def __contains__(self, key: object) -> bool:
        return self._lookup(key) is not None

    def __iter__(self) -> Iterator[ResourceKey]:
        return iter([k for k, v in self._found.items() if v is not None])

    def __len__(self) -> int:
        return sum(1 for v in self._found.values() if v is not None)


class Run:
    """One run's writes. Create with :meth:`Ledger.begin_run`; end with :meth:`finish`."""

    def __init__(self, ledger: Ledger, run_id: int, started_at: str, cluster: str,
                 audit_log: AuditLog | None, has_history: bool, mode: str = "run") -> None:
        self.ledger = ledger
        self.id = run_id
        self.started_at = started_at
        self.cluster = cluster
        self.audit_log = audit_log
        self.mode = mode
        self._watch = mode == "watch"
        self.finished = False
        # Written by finish, with the batch's lifecycle (see set_watch_positions).
        self._positions: dict[str, str | None] = {}
        self._has_history = has_history
        self._batch = ledger._batch()
        # A watch batch judges a handful of objects: their open drifts only, read as they are
        # asked for (measured: loading 5,300 open drifts was 72% of a 63 ms batch).
        self._open: Mapping[ResourceKey, lifecycle.OpenDrift] = (
            _OpenDriftsOf(ledger) if self._watch else ledger._open_drifts())
        self._seen: dict[ResourceKey, lifecycle.Seen] = {}
        # Only objects with an open drift: how they look now decides how the drift resolved.
        self._now: dict[ResourceKey, tuple[str, str, bool | None]] = {}
        self._missing: set[ResourceKey] = set()
        self._reverted: set[ResourceKey] = set()
        self._gitops_changed: set[ResourceKey] = set()
        self._commits: set[tuple[str, str]] = set()
        self._recorded = 0
        # Observations wait for their object's comparison result, which decides whether the
        # change was authorized; bounded by the number of changed objects.
        self._pending: dict[ResourceKey, Observation] = {}
        self.summary = RunSummary(run_id, "running")
        # Which object ids this run saw — in a list response, or by staging a version of
        # them — one bit each (ids are dense): what finish needs to tell a deletion,
        # 12 KB for 100,000 objects.
        self._listing = False
        self._seen_ids = bytearray()

    # --------------------------------------------------------------- observations

    def _flush_if_full(self) -> None:
        if len(self._batch) >= self.ledger.batch_size:
            self.ledger._write(self._batch)

    def _stage_version(self, batch: Batch, key: ResourceKey, *, api_version: str,
                       resource_version: str, content_hash: str, content: str | None,
                       deleted: bool, time: str, manager: str, operation: str, category: str,
                       user: str, authorized: bool | None, user_source: str = "") -> None:
        ledger = self.ledger
        oid = ledger._object_id(batch, key, self.started_at, self.id)
        self._mark_seen((oid,))
        prev = ledger._index.get_latest(oid)
        vid = batch.chained("object_versions", {
            "run_id": self.id, "object_id": oid, "api_version": api_version,
            "resource_version": resource_version, "content_hash": content_hash,
            "observed_at": self.started_at, "deleted": int(deleted)}, self.started_at, self.id)
        if content is not None:
            batch.plain("INSERT INTO contents (version_id, content) VALUES (?, ?)", (vid, content))
        batch.plain(_UPSERT_LATEST, (oid, vid, resource_version, content_hash, int(deleted)))
        ledger._index.latest[oid] = _Latest(vid, resource_version, content_hash, deleted)
        self.summary.versions += 1
        if deleted:
            change = "deleted"
            self.summary.deletions += 1
        elif prev is None or prev.deleted:
            # The first sighting in the ledger's first run is the baseline, not a change.
            change = "created" if (self._has_history or prev is not None) else ""
        else:
            change = "updated"
        if not change:
            return
        when = times.normalise(time) or self.started_at
        source = ""
        if not user and self.audit_log is not None and time:
            user = self.audit_log.user_for(key, time, manager) or ""
            source = "audit-log" if user else ""
        elif user:
            source = user_source or "observation"
        batch.chained("changes", {
            "run_id": self.id, "object_id": oid, "version_id": vid,
            "prev_version_id": prev.version_id if prev else None, "change": change,
            "time": when, "manager": manager, "operation": operation, "category": category,
            "user": user, "user_source": source,
            "authorized": None if authorized is None else int(authorized)},
            self.started_at, self.id)
        self.summary.changes += 1
        if category == "gitops":
            self._gitops_changed.add(key)

    def observe(self, obs: Observation) -> bool:
        """Record a live object whose resourceVersion or content hash changed.

        Call it before :meth:`record` for the same object: the version and its change are
        written when the result arrives (or at :meth:`finish`), judged by that result.
        False when a watch run was handed a stale event (the ledger holds the object at a
        later write): then it records nothing, and nothing must be judged from the event.
        """
        self._check_open()
        if obs.content is None:
            raise LedgerError(f"{obs.key}: an observation needs its content: the ledger keeps "
                              "what it chains the hash of")
        if self._watch:
            pending = self._pending.pop(obs.key, None)
            if pending is not None:
                # A watch batch may carry several versions of one object: each is a version
                # of its own (the earlier judged without a comparison of its own).
                self._stage_observation(pending, None, [])
            latest = self.ledger._index.latest_of(obs.key)
            if latest is not None and watch.older(obs.resource_version,
                                                  latest.resource_version):
                return False  # stale: the ledger already holds this object at a later write
        if redact.is_secret(obs.key):
            safe = redact.content(obs.key, obs.content)
            if safe is not None and safe != obs.content:
                # A raw value got this far: what is stored (and hashed) is the redacted form,
                # and the comparison below must see that hash, or each run re-records it.
                obs = dataclasses.replace(obs, content=safe, content_hash=content_hash(safe))
        oid = self.ledger._index.oid(obs.key)
        prev = self.ledger._index.get_latest(oid) if oid is not None else None
        if prev is not None and not prev.deleted and prev.content_hash == obs.content_hash:
            if oid is not None and prev.resource_version != obs.resource_version:
                # Same content, new resourceVersion (a status write): refresh the cache so
                # the pipeline can skip it next time; no new version, no change.
                self._batch.plain(_UPSERT_LATEST, (oid, prev.version_id, obs.resource_version,
                                                   prev.content_hash, 0))
                self.ledger._index.latest[oid] = _Latest(
                    prev.version_id, obs.resource_version, prev.content_hash, False)
            return True
        seen = None if self._watch else self._seen.get(obs.key)
        if seen is not None:
            # Its (drifted) result came first: judge now. (Not in a watch batch: a result
            # recorded there judged an earlier event of the object, not this one.)
            self._stage_observation(obs, seen.status, orjson.loads(seen.items))
        else:
            self._pending[obs.key] = obs
        return True

    def _stage_observation(self, obs: Observation, status: str | None,
                           items: list[dict[str, Any]]) -> None:
        content = redact.content(obs.key, obs.content)
        authorized = authorize.verdict(declared=obs.authorized, manager=obs.manager,
                                       category=obs.category, status=status, items=items,
                                       spoofed=obs.spoofed)
        # Stored as the canonical bytes and chained as their hash: the chained content hash
        # covers exactly what is stored (see :mod:`.verify`). For honest callers it is the
        # observation's own hash; redaction is settled in :meth:`observe`.
        raw = chain.canonical(content)
        self._stage_version(
            self._batch, obs.key, api_version=obs.api_version,
            resource_version=obs.resource_version,
            content_hash=hashlib.sha256(raw).hexdigest(), content=raw.decode(),
            deleted=False, time=obs.time, manager=obs.manager, operation=obs.operation,
            category=obs.category, user=obs.user, authorized=authorized,
            user_source=SPOOFED_SOURCE if obs.spoofed and obs.user else obs.user_source)
        self._flush_if_full()

    def observe_deleted(self, key: ResourceKey, *, time: str = "", manager: str = "",
                        operation: str = "", category: str = "unknown", user: str = "",
                        authorized: bool | None = None, resource_version: str = "") -> bool:
        """Record that a live object the ledger knew is gone (call only for kinds that were
        listed completely, or for a watch's ``DELETED`` event). ``resource_version`` is the
        deletion's (a watch event's object carries it): kept with the deletion, so that in a
        watch run a stale event on either side of it is recognised (:func:`.watch.older`);
        ``time`` is when it happened, as far as known (the watch loop: when the event
        arrived). False for a stale event of a watch run (the ledger holds the object at a
        later write): nothing must be judged from it."""
        self._check_open()
        if self._watch:
            pending = self._pending.pop(key, None)
            if pending is not None:
                self._stage_observation(pending, None, [])
            # Read its open drift now: a deletion may resolve one with no result to record.
            _ = key in self._open
        prev = self.ledger._index.latest_of(key)
        if prev is None or prev.deleted:
            return prev is None or not (self._watch and watch.older(
                resource_version, prev.resource_version))
        if self._watch and watch.older(resource_version, prev.resource_version):
            return False
        self._stage_version(self._batch, key, api_version="", resource_version=resource_version,
                            content_hash="", content=None, deleted=True, time=time,
                            manager=manager, operation=operation, category=category, user=user,
                            authorized=authorized)
        self._flush_if_full()
        return True

    def listed(self, keys: Sequence[ResourceKey]) -> dict[ResourceKey, tuple[str, str]]:
        """The keys of one page of a list response: what the ledger knows of them (as
        :meth:`Ledger.versions_of`), and, for :meth:`finish`, the record that they exist.
        An object of a completely listed kind that no page held has been deleted."""
        self._check_open()
        self._listing = True
        found: list[int] = []
        out = self.ledger._index.versions_of(keys, found)
        self._mark_seen(found)
        return out

    def _mark_seen(self, oids: Sequence[int]) -> None:
        if not oids:
            return
        bits = self._seen_ids
        top = max(oids) >> 3
        if top >= len(bits):
            bits.extend(bytes(top + 1 - len(bits) + 4096))
        for oid in oids:
            bits[oid >> 3] |= 1 << (oid & 7)

    def settle(self, key: ResourceKey) -> None:
        """No comparison result will come for ``key`` (a live object Git does not declare
        and that is no orphan): write its pending observation now instead of holding it to
        the end of the run."""
        pending = self._pending.pop(key, None)
        if self._watch:
            _ = key in self._open  # no result: its open drift, if any, resolves at finish
        if pending is not None:
            self._stage_observation(pending, None, [])
            self._flush_if_full()

    # -------------------------------------------------------------------- results

    def record(self, result: ObjectResult, desired_changed: bool | None = None) -> None:
        """Feed one comparison result (in-sync ones too, so drifts can resolve).

        ``desired_changed`` is the pipeline's hint for how a drift that disappears was
        resolved: ``True`` Git moved, ``False`` the live object moved.
        """
        if self.finished:
            self._check_open()  # raises; inline, as this runs once per desired object
        self._recorded += 1
        key = result.key
        if self._watch:
            # A batch may judge one object several times (drifted, then put back; deleted,
            # then re-created): its last result decides.
            self._seen.pop(key, None)
            self._missing.discard(key)
        if result.status == "missing":
            self._missing.add(key)
        pending = self._pending.pop(key, None)
        if pending is not None:
            self._stage_observation(pending, result.status, lifecycle.items_of(result))
        if result.status in lifecycle.DRIFT_STATUSES:
            self._seen[key] = lifecycle.seen(result)
        elif key not in self._open:
            return
        if key in self._open:
            commit = result.source.commit if result.source else ""
            self._now[key] = (result.status, commit, desired_changed)

    def reverted(self, key: ResourceKey) -> None:
        """The tool reverted ``key`` in this run: its open drift resolves as ``reverted``.
        If the revert did not take, the next run sees the drift again and reopens it."""
        self._check_open()
        self._reverted.add(key)

    def record_commits(self, commits: Iterable[SourceInfo | Mapping[str, Any]]) -> int:
        """Record Git commits audited by this run (each commit once per ledger)."""
        self._check_open()
        added = 0
        for commit in commits:
            c = _commit_fields(commit)
            ident = (c["repo"], c["sha"])
            if not c["sha"] or ident in self._commits:
                continue
            self._commits.add(ident)
            if self.ledger.conn.execute("SELECT 1 FROM commits WHERE repo = ? AND sha = ?",
                                        ident).fetchone():
                continue
            self._batch.chained("commits", {"run_id": self.id, **c}, self.started_at, self.id)
            added += 1
        self.summary.commits += added
        self._flush_if_full()
        return added

    def set_watch_positions(self, positions: Mapping[str, str | None]) -> None:
        """Where each watched kind (``group_kind``: ``Deployment.apps``, ``ConfigMap``)
        resumes: the resourceVersion after this batch's last event (``None`` forgets a kind's
        position, e.g. after 410 Gone). Written by :meth:`finish` in the transaction that
        commits the batch's drift lifecycle and closes the run, and only for a run that did
        not fail: a watch killed before then resumes from the positions of the last batch
        that finished, and its events replay without being recorded twice. Kinds not named
        keep their positions. See :mod:`.watch`."""
        self._check_open()
        self._positions.update(watch.checked(positions))

    # --------------------------------------------------------------------- finish

    def _check_open(self) -> None:
        if self.finished:
            raise LedgerError(f"run {self.id} is already finished")

    def finish(self, status: str = "complete", counts: Mapping[str, Any] | None = None,
               skipped_kinds: Sequence[str] = (),
               problems: Sequence[Problem] = (),
               listed_kinds: Iterable[tuple[str, str]] = (),
               in_scope: Callable[[ResourceKey], bool] | None = None,
               undecided: Callable[[ResourceKey], bool] | None = None) -> RunSummary:
        """Apply the drift lifecycle and close the run with a checkpoint, atomically.

        A ``failed`` run, or one that recorded no result, changes no drift. Objects of
        ``skipped_kinds`` (``Kind`` or ``Kind.group``) are neither marked deleted nor have
        drifts opened or resolved: their listing was incomplete, so absence proves nothing.
        Drifts of ``undecided`` objects (Git could not be read in full, so whether they are
        declared is not known) are left as they were; their deletions are still recorded.
        ``listed_kinds`` are the ``(group, kind)`` pairs listed completely through
        :meth:`listed`: their objects the ledger holds as live, in scope (``in_scope``), that
        no page held are recorded as deleted.
        """
        self._check_open()
        if status not in RUN_STATUSES:
            raise LedgerError(f"run status {status!r}: expected one of {', '.join(RUN_STATUSES)}")
        ledger = self.ledger
        batch = self._batch
        skipped = frozenset(skipped_kinds)
        for key in sorted(self._pending):
            # Observed but never compared (out of Git's scope, or the run failed first).
            self._stage_observation(self._pending[key], None, [])
        self._pending.clear()

        def is_skipped(key: ResourceKey) -> bool:
            return key.group_kind in skipped or key.kind in skipped

        # A run that compared nothing (no result recorded) says nothing about drift: resolving
        # every open drift because none was reported would be wrong. A watch batch judges
        # only the objects its events named (the caller's ``undecided`` says which), and the
        # deletion of an object Git does not declare yields no result, yet resolves its
        # orphan drift.
        if status != "failed" and (self._recorded or (self._watch and undecided is not None)):
            for key in sorted(self._missing):
                prev = ledger._index.latest_of(key)
                if prev is not None and not prev.deleted and not is_skipped(key):
                    # Gone from the cluster: the deletion is the change, we do not know who.
                    self._stage_version(batch, key, api_version="", resource_version="",
                                        content_hash="", content=None, deleted=True, time="",
                                        manager="", operation="", category="unknown", user="",
                                        authorized=None)
            if self._listing:
                self._stage_unlisted(batch, listed_kinds, is_skipped, in_scope)
            self._apply_lifecycle(batch, is_skipped if undecided is None else
                                  (lambda key: is_skipped(key) or undecided(key)))
        self.summary.status = status
        merged = {**dict(counts or {}), "ledger": self.summary.counts()}
        ended = times.stamp(times.now())
        if status != "failed":
            # A failed run judged no drift: its events must be delivered again.
            for group_kind, rv in sorted(self._positions.items()):
                if rv is None:
                    batch.plain(watch.DELETE, (group_kind,))
                else:
                    batch.plain(watch.UPSERT, (group_kind, rv, self.id, ended))
        seq, head_hash, signed = ledger._end_run(batch, self.id, status, ended, merged,
                                                 list(skipped_kinds),
                                                 [_problem(p) for p in problems])
        ledger._write(batch)
        self.finished = True
        self.summary.seq, self.summary.head_hash, self.summary.signed = seq, head_hash, signed
        return self.summary

    def _stage_unlisted(self, batch: Batch, listed_kinds: Iterable[tuple[str, str]],
                        is_skipped: Callable[[ResourceKey], bool],
                        in_scope: Callable[[ResourceKey], bool] | None) -> None:
        """Deletions nobody declared in Git: live in the ledger, absent from a complete list."""
        index, conn = self.ledger._index, self.ledger.conn
        for group, kind in sorted(set(listed_kinds)):
            # Ids first (a covering index read), names only for the few this run never saw.
            # The bitmap test inline: this visits every live object the ledger holds.
            bits, size = self._seen_ids, len(self._seen_ids) << 3
            unseen = [oid for (oid,) in conn.execute(
                "SELECT o.id FROM objects o JOIN latest l ON l.object_id = o.id "
                "WHERE o.grp = ? AND o.kind = ? AND l.deleted = 0", (group, kind))
                if oid >= size or not bits[oid >> 3] >> (oid & 7) & 1]
            gone = sorted(row for oid in unseen for row in conn.execute(
                "SELECT namespace, name, id FROM objects WHERE id = ?", (oid,)))
            for namespace, name, oid in gone:
                key = ResourceKey(group, kind, namespace, name)
                if is_skipped(key) or (in_scope is not None and not in_scope(key)):
                    continue  # outside what this run could see
                index.oids.setdefault(key, oid)
                self._stage_version(batch, key, api_version="", resource_version="",
                                    content_hash="", content=None, deleted=True, time="",
                                    manager="", operation="", category="unknown", user="",
                                    authorized=None)

    def _drift_event(self, batch: Batch, drift_id: int, event: str, *, how: str | None = None,
                     related: int | None = None) -> None:
        batch.chained("drift_events", {
            "drift_id": drift_id, "run_id": self.id, "at": self.started_at, "event": event,
            "how": how, "by": None, "reason": None, "expires": None,
            "related_drift_id": related}, self.started_at, self.id)

    def _resolve(self, batch: Batch, drift: lifecycle.OpenDrift, how: str,
                 related: int | None = None) -> None:
        self._drift_event(batch, drift.drift_id, "resolved", how=how, related=related)
        batch.plain(_UPSERT_STATE, (drift.drift_id, drift.object_id, "resolved",
                                    self.started_at, None))
        self.summary.resolved[how] = self.summary.resolved.get(how, 0) + 1

    def _apply_lifecycle(self, batch: Batch, is_skipped: Any) -> None:
        ledger = self.ledger
        summary = self.summary
        for key in sorted(self._seen):
            if is_skipped(key):
                continue
            seen = self._seen[key]
            current = self._open.get(key)
            if current is not None and current.fingerprint == seen.fingerprint:
                if key in self._reverted:
                    self._resolve(batch, current, "reverted")
                elif lifecycle.expired(current, self.started_at):
                    self._drift_event(batch, current.drift_id, "expired")
                    batch.plain(_UPSERT_STATE, (current.drift_id, current.object_id, "open",
                                                self.started_at, None))
                    summary.expired += 1
                    summary.still_open += 1
                elif current.state == "accepted":
                    summary.accepted += 1
                else:
                    summary.still_open += 1
                continue
            oid = ledger._object_id(batch, key, self.started_at, self.id)
            again = ledger.conn.execute(
                "SELECT id FROM drifts WHERE object_id = ? AND fingerprint = ? ORDER BY id LIMIT 1",
                (oid, seen.fingerprint)).fetchone()
            if again is not None:
                drift_id = int(again[0])
                self._drift_event(batch, drift_id, "reopened")
                summary.reopened += 1
            else:
                latest = ledger._index.get_latest(oid)
                drift_id = batch.chained("drifts", {
                    "object_id": oid, "fingerprint": seen.fingerprint, "status": seen.status,
                    "items": seen.items, "category": seen.category, "manager": seen.manager,
                    "source_file": seen.source_file, "source_commit": seen.source_commit,
                    "live_hash": latest.content_hash if latest else "", "run_id": self.id,
                    "opened_at": self.started_at}, self.started_at, self.id)
                self._drift_event(batch, drift_id, "opened")
                summary.opened += 1
            batch.plain(_UPSERT_STATE, (drift_id, oid, "open", self.started_at, None))
            if current is not None:
                self._resolve(batch, current, "superseded", related=drift_id)
            if key in self._reverted:
                # Seen and put right by the tool in the same run: the record says both.
                latest = ledger._index.get_latest(oid)
                self._resolve(batch, lifecycle.OpenDrift(
                    drift_id, oid, key, seen.fingerprint, seen.status, "open", None,
                    seen.source_commit, latest.content_hash if latest else ""), "reverted")
        for key in sorted(self._open):
            if key in self._seen or is_skipped(key):
                continue
            drift = self._open[key]
            now_status, commit, hint = self._now.get(key, (None, "", None))
            latest = ledger._index.get_latest(drift.object_id)
            how = lifecycle.resolution(
                drift, now_status=now_status, desired_changed=hint,
                reverted=key in self._reverted, source_commit_now=commit,
                live_hash_now=latest.content_hash if latest else "",
                gitops_change=key in self._gitops_changed)
            self._resolve(batch, drift, how)


def _commit_fields(commit: SourceInfo | Mapping[str, Any]) -> dict[str, Any]:
    get = (lambda name, default=None: getattr(commit, name, default)) \
        if isinstance(commit, SourceInfo) else commit.get
    sha = str(get("sha", None) or get("commit", None) or "")
    trailers = get("trailers", ()) or ()
    if isinstance(trailers, Mapping):
        trailers = sorted(trailers.items())
    pr = get("pr", None)
    return {"repo": str(get("repo", "") or ""), "sha": sha,
            "author": str(get("author", "") or ""),
            "author_email": str(get("author_email", "") or ""),
            "date": times.normalise(str(get("date", "") or "")),
            "subject": str(get("subject", "") or ""),
            "pr": int(pr) if pr not in (None, "") else None,
            "trailers": _json([list(t) for t in trailers])}
