"""Copying an SQLite ledger into the fleet store (``drift-auditor ledger copy``).

Every table's rows go over as they are, in key order, in one PostgreSQL transaction, into
the cluster's schema created for the purpose (:mod:`.pgconn`); nothing is re-hashed: the
chain is backend independent, so the copy verifies with the same head as the file. The
source is verified first, and copied from the very snapshot that was verified; the
destination must be empty (a cluster whose schema holds no event and no run) and is verified
after the commit, its head compared with the source's. The destination is locked like a
writer (its advisory lock) while the copy runs.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from auditor.errors import LedgerError, LedgerTamperedError

from . import pgconn, schema
from .verify import VerifyResult, verify

# Rows per executemany: bounded memory whatever the ledger's size.
CHUNK = 1000


@dataclass(frozen=True)
class CopyResult:
    tables: int
    rows: int
    source: VerifyResult
    destination: VerifyResult
    where: str


def copy_to_store(source: str | Path, url: str, cluster: str, *, password: str | None = None,
                  lock_wait: float = 0.0) -> CopyResult:
    """Copy the SQLite ledger at ``source`` into ``cluster``'s (new, empty) ledger at
    ``url``; raises :class:`LedgerTamperedError` when the source does not verify, and
    :class:`LedgerError` when the destination holds a ledger already or ends up different."""
    with schema.reading_checked(source) as lite:
        found = schema.version(lite)
        if found != schema.SCHEMA_VERSION:
            raise LedgerError(f"{source}: ledger schema version {found}: a `drift-auditor run` "
                              f"migrates it to {schema.SCHEMA_VERSION} first, which the copy "
                              "needs")
        lite.execute("BEGIN")  # one snapshot: the rows copied are the rows verified
        try:
            checked = verify(lite)
            if not checked.ok:
                raise LedgerTamperedError(f"{source}: {checked.message}; not copied")
            pg = pgconn.connect(url, cluster, password=password)
            try:
                lock = pgconn.AdvisoryWriterLock(pg)
                lock.acquire(lock_wait)
                pgconn.ensure_schema(pg)
                tables, rows = _copy(lite, pg, str(source))
                lock.release()
            finally:
                pg.close()
        finally:
            lite.execute("COMMIT")
    with pgconn.reading(url, cluster, password=password) as pg:
        copied = verify(pg)  # type: ignore[arg-type]
        where = pg.where
    if not copied.ok or (copied.head_seq, copied.head_hash) != (checked.head_seq,
                                                                  checked.head_hash):
        raise LedgerError(f"{where}: the copy does not verify as the source does "
                          f"({copied.message}; source: {checked.message})")
    return CopyResult(tables, rows, checked, copied, where)


def _copy(lite: sqlite3.Connection, pg: pgconn.PgConnection, source: str) -> tuple[int, int]:
    empty = pg.execute("SELECT (SELECT count(*) FROM events) + (SELECT count(*) FROM runs)"
                       ).fetchone()
    if empty is None or int(empty[0]):
        raise LedgerError(f"{pg.where}: holds a ledger already; a copy goes into an empty "
                          "cluster only")
    have = schema.tables(pg)  # type: ignore[arg-type]
    names = [str(r[0]) for r in lite.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
        "ORDER BY rowid")]
    total = 0
    pg.execute("BEGIN")
    try:
        for table in names:
            if table not in have:
                raise LedgerError(f"{pg.where}: no table {table} to copy {source}'s into")
            info = lite.execute(f"PRAGMA table_info({table})").fetchall()
            columns = [str(r[1]) for r in info]
            theirs = [str(r[0]) for r in pg.execute(pgconn.POSTGRESQL.columns_sql(table))]
            if columns != theirs:
                raise LedgerError(f"{pg.where}: table {table} has columns {theirs}, "
                                  f"{source} has {columns}")
            keys = [str(r[1]) for r in sorted(info, key=lambda r: r[5]) if r[5]]
            order = ", ".join(f'"{k}"' for k in keys or columns)
            listed = ", ".join(f'"{c}"' for c in columns)
            insert = (f"INSERT INTO {table} ({listed}) "
                      f"VALUES ({', '.join('?' * len(columns))})")
            cursor = lite.execute(f"SELECT {listed} FROM {table} ORDER BY {order}")
            while chunk := cursor.fetchmany(CHUNK):
                pg.executemany(insert, chunk)
                total += len(chunk)
            if len(keys) == 1 and "INTEGER" in str(info[columns.index(keys[0])][2]).upper():
                # Explicit ids do not advance an identity column's sequence: the rows the
                # store numbers itself (the alert outbox) must continue after the copied ones.
                pg.execute(f"SELECT setval(pg_get_serial_sequence('{table}', '{keys[0]}'), "
                           f"coalesce(max({keys[0]}), 0) + 1, false) FROM {table}")
        pg.execute("COMMIT")
    except BaseException:
        if pg.in_transaction:
            pg.execute("ROLLBACK")
        raise
    return len(names), total
