"""The ledger on PostgreSQL (the fleet store): the only module that imports psycopg.

Many clusters' auditors write into one PostgreSQL database; each cluster keeps its own hash
chain in its own schema, ``da_<cluster>`` (``-`` → ``_``), holding every ledger table. The
tables are created from the ledger's one schema definition: :func:`schema_statements`
builds a ledger in an in-memory SQLite database with :mod:`.schema`'s migrations, reads back
the DDL SQLite stored, and translates it (:func:`.dialect.translate_ddl`). ``da_fleet.clusters``
lists the clusters and their schemas. The schema version lives in a one-row table
(``ledger_schema_version``), as PostgreSQL has no ``PRAGMA user_version``.

:class:`PgConnection` gives the ledger's code the part of ``sqlite3.Connection`` it uses
(``execute``/``executemany`` with ``?`` placeholders, ``in_transaction``, ``close``, explicit
``BEGIN``/``COMMIT``/``ROLLBACK`` in autocommit mode) with ``search_path`` set to the
cluster's schema, so every statement of the ledger runs as written, translated once per text
(:func:`.dialect.translate`, cached). Python ``bool`` goes in as 0/1: the ledger's booleans
are INTEGER columns, and ``verify`` compares them to payloads where ``True == 1``.

:class:`AdvisoryWriterLock` is the single-writer rule: a session-level
``pg_try_advisory_lock`` on the cluster's key (:func:`.dialect.writer_lock_key`), held by the
writer's own connection, so the server drops it when that session ends, even when the writer
was killed (the ``flock`` semantics of :mod:`.lock`); clusters never block each other.

Errors leave as :class:`.dialect.BackendError` (a :class:`~auditor.errors.LedgerError`): one
line naming the server, database and cluster; never the password.
"""

from __future__ import annotations

import contextlib
import functools
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import pq
from psycopg.adapt import Dumper
from psycopg.conninfo import conninfo_to_dict
from psycopg.postgres import types as pg_types

from auditor.config import LEDGER_CLUSTER
from auditor.errors import LedgerError, LedgerLockedError

from . import schema
from .dialect import POSTGRESQL, BackendError, Dialect, translate, translate_ddl, writer_lock_key

__all__ = ["FLEET_SCHEMA", "AdvisoryWriterLock", "PgConnection", "PgCursor", "clusters",
           "connect", "ensure_schema", "keep_readers", "reading", "schema_name",
           "schema_statements"]

FLEET_SCHEMA = "da_fleet"
# PostgreSQL truncates identifiers beyond 63 bytes: two long cluster names could share one.
MAX_IDENTIFIER = 63
# Serialises creating schemas (two clusters' first runs at once, the fleet registry): not a
# valid cluster name, so never a writer's key.
_SCHEMA_LOCK = writer_lock_key("*schema*")


def schema_name(cluster: str) -> str:
    """The schema of ``cluster``'s ledger: ``da_`` and the name with ``-`` as ``_`` (cluster
    names have no ``_``, so two clusters never share a schema)."""
    if not LEDGER_CLUSTER.fullmatch(cluster):
        raise LedgerError(f"ledger.cluster {cluster!r}: lower-case letters, digits and -, "
                          "starting with a letter or digit, at most 63 characters")
    name = "da_" + cluster.replace("-", "_")
    if len(name) > MAX_IDENTIFIER:
        raise LedgerError(f"ledger.cluster {cluster!r}: at most {MAX_IDENTIFIER - 3} characters "
                          f"on PostgreSQL (its schema {name[:20]}… must fit a 63-byte identifier)")
    return name


class _BoolAsInt(Dumper):
    """``True``/``False`` as 1/0: the ledger's boolean columns are integers (BIGINT here),
    which refuse PostgreSQL's ``boolean``."""

    oid = pg_types["int8"].oid

    def dump(self, obj: Any) -> bytes:
        return b"1" if obj else b"0"


@functools.lru_cache(maxsize=2048)
def _translated(sql: str) -> str:
    # The text of a call site is constant: translate it once per process.
    return translate(sql)


def _first_line(exc: BaseException) -> str:
    diag = getattr(exc, "diag", None)
    primary = getattr(diag, "message_primary", None) if diag is not None else None
    text = primary or str(exc) or type(exc).__name__
    return " ".join(text.strip().splitlines()[0].split()) if text.strip() else text


class PgCursor:
    """The result of :meth:`PgConnection.execute`: what the ledger asks of a sqlite3 cursor."""

    def __init__(self, cursor: psycopg.Cursor[Any], where: str) -> None:
        self._cursor = cursor
        self._where = where

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def description(self) -> Any:
        return self._cursor.description

    def fetchone(self) -> Any:
        if self._cursor.description is None:
            return None  # a statement without rows (sqlite3 answers None too)
        return self._cursor.fetchone()

    def fetchall(self) -> list[Any]:
        if self._cursor.description is None:
            return []
        return self._cursor.fetchall()

    def __iter__(self) -> Iterator[Any]:
        return self  # an iterator itself, as sqlite3's cursor is (next() works on it)

    def __next__(self) -> Any:
        if self._cursor.description is None:
            raise StopIteration  # a statement without rows
        row = self._cursor.fetchone()
        if row is None:
            raise StopIteration
        return row


class PgConnection:
    """One cluster's ledger in the fleet store, speaking the ledger's SQLite dialect."""

    dialect: Dialect = POSTGRESQL

    def __init__(self, conn: psycopg.Connection[Any], *, cluster: str, where: str,
                 password: str | None = None) -> None:
        self._conn = conn
        self.cluster = cluster
        self.schema = schema_name(cluster)
        # For messages: server, database and cluster, never a password.
        self.where = where
        self._password = password

    # -- the sqlite3.Connection subset -------------------------------------------------
    def execute(self, sql: str, params: Sequence[Any] | None = None) -> PgCursor:
        text = self._sql(sql)
        try:
            cursor = self._conn.execute(text, tuple(params or ()))
        except psycopg.Error as exc:
            raise self.error(exc) from None
        return PgCursor(cursor, self.where)

    def executemany(self, sql: str, seq: Iterable[Sequence[Any]]) -> PgCursor:
        text = self._sql(sql)
        cursor = self._conn.cursor()
        try:
            cursor.executemany(text, [tuple(p) for p in seq])
        except psycopg.Error as exc:
            raise self.error(exc) from None
        return PgCursor(cursor, self.where)

    @property
    def in_transaction(self) -> bool:
        return self._conn.info.transaction_status != pq.TransactionStatus.IDLE

    def commit(self) -> None:
        # The ledger runs in autocommit and commits with an explicit COMMIT, as on SQLite.
        if self.in_transaction:
            self.execute("COMMIT")

    def close(self) -> None:
        self._conn.close()

    @property
    def closed(self) -> bool:
        return self._conn.closed

    @property
    def backend_pid(self) -> int:
        return int(self._conn.info.backend_pid)

    # -- helpers -----------------------------------------------------------------------
    def _sql(self, sql: str) -> str:
        try:
            return _translated(sql)
        except LedgerError as exc:
            raise LedgerError(f"{self.where}: {exc}") from None

    def error(self, exc: BaseException) -> BackendError:
        """``exc`` as one line naming the ledger (and never the password)."""
        text = _first_line(exc)
        if self._password:
            text = text.replace(self._password, "***")
        sqlstate = getattr(exc, "sqlstate", None)
        return BackendError(f"{self.where}: {text}", sqlstate=sqlstate)


def describe(url: str, cluster: str) -> str:
    """``postgresql://user@host:port/db (cluster NAME)``: the ledger, for messages; any
    password in ``url`` is left out."""
    try:
        parts = conninfo_to_dict(url)
    except psycopg.Error:
        return f"postgresql ledger (cluster {cluster})"
    user = f"{parts['user']}@" if parts.get("user") else ""
    host = str(parts.get("host") or "localhost")
    port = f":{parts['port']}" if parts.get("port") else ""
    return f"postgresql://{user}{host}{port}/{parts.get('dbname') or ''} (cluster {cluster})"


def application_name() -> str:
    """Who holds a writer session (``pg_stat_activity.application_name``, at most 63 bytes):
    the holder's description in :class:`LedgerLockedError`."""
    since = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"drift-auditor {os.getpid()}@{socket.gethostname()[:20]} since {since}"[:63]


def connect(url: str, cluster: str, *, password: str | None = None,
            app_name: str | None = None) -> PgConnection:
    """A connection to ``cluster``'s ledger: autocommit (the ledger issues ``BEGIN``/
    ``COMMIT`` itself), ``search_path`` the cluster's schema (created by
    :func:`ensure_schema`; until then it is simply empty)."""
    where = describe(url, cluster)
    name = schema_name(cluster)
    extra: dict[str, Any] = {"application_name": app_name or application_name()}
    if password:
        extra["password"] = password
    try:
        raw = psycopg.connect(url, autocommit=True, connect_timeout=30, **extra)
    except psycopg.Error as exc:
        text = _first_line(exc)
        if password:
            text = text.replace(password, "***")
        raise BackendError(f"{where}: cannot connect: {text}",
                           sqlstate=getattr(exc, "sqlstate", None)) from None
    raw.adapters.register_dumper(bool, _BoolAsInt)
    conn = PgConnection(raw, cluster=cluster, where=where, password=password)
    try:
        # pg_catalog stays searched implicitly; public is left out: the ledger's names
        # resolve in the cluster's schema only.
        conn.execute(f"SET search_path TO {name}")
    except BaseException:
        conn.close()
        raise
    return conn


@contextmanager
def reading(url: str, cluster: str, *, password: str | None = None) -> Iterator[PgConnection]:
    """A reader's connection to ``cluster``'s ledger (``verify``, queries): read-only
    session, no lock, never creates or migrates anything; closed afterwards, or kept for the
    next read when :func:`keep_readers` asked for it."""
    pool = _POOL if _POOL is not None and _POOL.pid == os.getpid() else None
    conn = _reused(pool, url, cluster, password) if pool is not None else None
    if conn is None:
        conn = connect(url, cluster, password=password,
                       app_name=f"drift-auditor reader {os.getpid()}@{socket.gethostname()[:20]}")
        try:
            conn.execute("SET default_transaction_read_only = on")
            # A reader's BEGIN is one snapshot for all its statements (verify, then the
            # report's queries), as SQLite's deferred BEGIN is; READ COMMITTED would take one
            # per statement.
            conn.execute("SET default_transaction_isolation = 'repeatable read'")
            check_readable(conn)
        except BaseException:
            conn.close()
            raise
    done = False
    try:
        yield conn
        done = True
    finally:
        # Kept only when the read ended cleanly and left no transaction open.
        if done and pool is not None and not conn.closed and not conn.in_transaction:
            pool.give((url, cluster, password), conn)
        else:
            conn.close()


def check_readable(conn: PgConnection) -> None:
    """Refuse a cluster without a ledger, or with a schema newer than this tool's."""
    found = _version(conn)
    if found is None:
        raise LedgerError(f"{conn.where}: no ledger for this cluster here (run "
                          "`drift-auditor run` first)")
    if found > schema.SCHEMA_VERSION:
        raise LedgerError(f"{conn.where}: ledger schema version {found} is newer than "
                          f"this drift-auditor understands ({schema.SCHEMA_VERSION}); "
                          "upgrade drift-auditor")


def _reused(pool: _ReaderPool, url: str, cluster: str, password: str | None
            ) -> PgConnection | None:
    """An idle reader session of ``cluster`` that still answers (a server restart or an idle
    timeout ends sessions: such a one is dropped and the caller connects anew)."""
    while (conn := pool.take((url, cluster, password))) is not None:
        try:
            # One round trip. A schema dropped or migrated past this tool since: connect
            # anew, and the full check says why.
            found = conn.execute(POSTGRESQL.version_sql).fetchone()
            if found is not None and int(found[0]) <= schema.SCHEMA_VERSION:
                return conn
        except BackendError:
            pass
        conn.close()
    return None


class _ReaderPool:
    """Idle read-only sessions by (URL, cluster, password), at most :data:`KEPT_READERS`
    each. Used only in the process that created it: a forked child must neither use nor
    close its parent's sessions (closing one would end the parent's session on the server)."""

    def __init__(self, per_cluster: int) -> None:
        self.pid = os.getpid()
        self.per_cluster = per_cluster
        self._idle: dict[tuple[str, str, str | None], list[PgConnection]] = {}
        self._lock = threading.Lock()

    def take(self, key: tuple[str, str, str | None]) -> PgConnection | None:
        with self._lock:
            idle = self._idle.get(key)
            return idle.pop() if idle else None

    def give(self, key: tuple[str, str, str | None], conn: PgConnection) -> None:
        with self._lock:
            idle = self._idle.setdefault(key, [])
            if len(idle) < self.per_cluster:
                idle.append(conn)
                return
        conn.close()


# serve's pages and scrapes read every cluster several times per request: a new session costs
# about 4.5 ms on a local socket (TLS more), and 20 clusters' overview made 60 of them (0.28 s
# of its 0.38 s; 0.06 s with kept sessions). Two per cluster: a page and the background chain
# walk read at once; more concurrent reads connect and close. A central serve of N clusters
# holds up to 2N idle sessions: count them in the server's max_connections.
KEPT_READERS = 2
_POOL: _ReaderPool | None = None


def keep_readers(per_cluster: int = KEPT_READERS) -> None:
    """Keep readers' sessions open for reuse from now on in this process (a long-lived reader:
    ``serve``). Commands that read once and exit do not call it."""
    global _POOL
    if _POOL is None or _POOL.pid != os.getpid():
        _POOL = _ReaderPool(per_cluster)


def clusters(url: str, *, password: str | None = None) -> list[str]:
    """The clusters of the store at ``url`` (``da_fleet.clusters``), by name: what a reader
    given the URL alone reads. Read-only; errors are one line."""
    where = describe(url, "*")
    extra: dict[str, Any] = {"application_name": f"drift-auditor reader {os.getpid()}"}
    if password:
        extra["password"] = password
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=30, **extra) as raw:
            raw.execute("SET default_transaction_read_only = on")
            there = raw.execute("SELECT to_regclass(%s)", (f"{FLEET_SCHEMA}.clusters",)
                                ).fetchone()
            if there is None or there[0] is None:
                raise LedgerError(f"{where}: no fleet store here (no {FLEET_SCHEMA}.clusters; "
                                  "a `drift-auditor run` with ledger.url creates it)")
            # Byte order whatever the database's collation: the same order on every server.
            rows = raw.execute(f"SELECT name FROM {FLEET_SCHEMA}.clusters "
                               'ORDER BY name COLLATE "C"').fetchall()
    except psycopg.Error as exc:
        text = _first_line(exc)
        if password:
            text = text.replace(password, "***")
        raise BackendError(f"{where}: {text}", sqlstate=getattr(exc, "sqlstate", None)) from None
    return [str(r[0]) for r in rows]


@functools.lru_cache(maxsize=1)
def schema_statements() -> tuple[str, ...]:
    """The PostgreSQL DDL of the ledger at :data:`.schema.SCHEMA_VERSION`: the schema SQLite
    holds after every migration, translated, in creation order (one source of truth)."""
    lite = schema.connect(":memory:")
    try:
        schema.migrate(lite, ":memory:")
        rows = lite.execute("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL "
                            "ORDER BY rowid").fetchall()
    except sqlite3.Error as exc:
        raise LedgerError(f"cannot build the ledger schema: {exc}") from None
    finally:
        lite.close()
    out: list[str] = []
    for (sql,) in rows:
        out.extend(translate_ddl(str(sql)))
    return tuple(out)


def ensure_schema(conn: PgConnection) -> int:
    """Create the cluster's schema with every ledger table, and the fleet registry, when
    they are not there (one transaction, serialised by an advisory lock: two clusters' first
    runs do not race on the registry); returns the schema version found before (0: new)."""
    # An existing ledger (every run but a cluster's first) is only read, without the schema
    # lock: that lock is one for the whole store, so taking it on every open made each
    # cluster's runs wait for any other cluster's first run creating its tables.
    found = _version(conn)
    if found is None:
        found = _create_schema(conn)
    if found and found > schema.SCHEMA_VERSION:
        raise LedgerError(f"{conn.where}: ledger schema version {found} is newer than this "
                          f"drift-auditor understands ({schema.SCHEMA_VERSION}); upgrade "
                          "drift-auditor")
    if found and found < schema.SCHEMA_VERSION:
        # Not yet: a fleet store is created at the current version, so only a store made by
        # an older drift-auditor gets here.
        raise LedgerError(f"{conn.where}: ledger schema version {found}: migrating a "
                          f"PostgreSQL ledger to {schema.SCHEMA_VERSION} is not supported yet")
    return found


def _create_schema(conn: PgConnection) -> int:
    """:func:`ensure_schema`'s creating half: the version found under the store's schema lock
    (another writer of the cluster may have just created it), 0 when this call created it."""
    name = conn.schema
    conn.execute("BEGIN")
    try:
        conn.execute("SELECT pg_advisory_xact_lock(?)", (_SCHEMA_LOCK,))
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {FLEET_SCHEMA}")
        conn.execute(f"CREATE TABLE IF NOT EXISTS {FLEET_SCHEMA}.clusters (name TEXT PRIMARY "
                     "KEY, schema TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL)")
        found = _version(conn)  # again under the lock: another writer may have made it
        if found is None:
            existing = conn.execute("SELECT count(*) FROM information_schema.tables WHERE "
                                    "table_schema = ?", (name,)).fetchone()[0]
            if existing:
                raise LedgerError(f"{conn.where}: schema {name} holds tables but no ledger "
                                  "schema version: not a drift-auditor ledger; refusing to "
                                  "write into it")
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {name}")
            for statement in schema_statements():
                _ddl(conn, statement)
            _ddl(conn, "CREATE TABLE ledger_schema_version (version BIGINT NOT NULL)")
            conn.execute("INSERT INTO ledger_schema_version (version) VALUES (?)",
                         (schema.SCHEMA_VERSION,))
            conn.execute(f"INSERT INTO {FLEET_SCHEMA}.clusters (name, schema, created_at) "
                         "VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING",
                         (conn.cluster, name,
                          datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")))
            found = 0
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return found


def _ddl(conn: PgConnection, statement: str) -> None:
    """A DDL statement, already PostgreSQL text: sent without parameters (no translation)."""
    try:
        conn._conn.execute(statement.encode())
    except psycopg.Error as exc:
        raise conn.error(exc) from None


def _version(conn: PgConnection) -> int | None:
    """The cluster's schema version; None: no ledger in its schema (yet)."""
    there = conn.execute("SELECT 1 FROM information_schema.tables WHERE table_schema = ? AND "
                         "table_name = 'ledger_schema_version'", (conn.schema,)).fetchone()
    if there is None:
        return None
    return int(conn.execute(POSTGRESQL.version_sql).fetchone()[0])


class AdvisoryWriterLock:
    """One cluster's single-writer lock, held by the writer's own session (see the module
    docstring); the same ``acquire``/``release`` as :class:`.lock.WriterLock`."""

    def __init__(self, conn: PgConnection) -> None:
        self.conn = conn
        self.key = writer_lock_key(conn.cluster)
        self._held = False

    def acquire(self, wait_seconds: float = 0.0) -> None:
        deadline = time.monotonic() + wait_seconds
        while True:
            got = self.conn.execute("SELECT pg_try_advisory_lock(?)", (self.key,)).fetchone()
            if got and got[0]:
                self._held = True
                return
            if time.monotonic() >= deadline:
                raise LedgerLockedError(
                    f"ledger {self.conn.where} is in use by another drift-auditor process "
                    f"({self.holder()}); only one run may write a cluster's ledger at a time — "
                    "wait for it to finish")
            time.sleep(0.05)

    def holder(self) -> str:
        """The session holding the lock, as its ``application_name`` says."""
        unsigned = self.key & 0xFFFFFFFFFFFFFFFF
        # A bigint advisory key is stored as classid (high half), objid (low half), objsubid 1.
        row = self.conn.execute(
            "SELECT a.application_name, a.pid, a.client_addr FROM pg_locks l "
            "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' "
            "AND l.granted AND l.database = (SELECT oid FROM pg_database WHERE datname = "
            "current_database()) AND l.classid::bigint = ? AND l.objid::bigint = ? "
            "AND l.objsubid = 1", (unsigned >> 32, unsigned & 0xFFFFFFFF)).fetchone()
        if row is None:
            return "holder unknown"
        name, pid, addr = row
        where = f" from {addr}" if addr else ""
        return f"{name or 'no application name'}, server pid {pid}{where}"

    def release(self) -> None:
        if not self._held:
            return
        self._held = False
        if self.conn.closed:
            return  # the server dropped it with the session
        # A session already gone took the lock with it.
        with contextlib.suppress(BackendError):
            self.conn.execute("SELECT pg_advisory_unlock(?)", (self.key,))
