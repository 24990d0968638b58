"""The ledger opened so that it cannot be written: what ``serve`` reads it with.

:func:`.schema.connect_reader` never *issues* a write, but its connection may write all the
same: SQLite checkpoints a WAL file into the database when the last connection to it closes,
so a reader closing after a writer that left frames behind (a run killed before its close)
rewrites the ledger file. A UI reachable over the network must not do even that. Here the
file is opened with SQLite's ``mode=ro`` URI (the OS file is opened read-only; any write,
the checkpoint on close included, is refused) and ``PRAGMA query_only`` on top.

``mode=ro`` still needs the WAL index (the ``-shm`` file beside the ledger), which SQLite
creates when it is missing. Where it cannot — the ledger's folder is mounted read-only and no
writer holds the ledger open, so there is no ``-shm`` — the file is opened ``immutable=1``:
SQLite then reads the database file as it is, without locks, which is exact while no writer
runs (there is no WAL to miss) and a writer that starts creates the ``-shm`` file, after
which connections are plain ``mode=ro`` again.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from auditor.errors import LedgerError

from . import schema
from .backend import StoreLedger, Target, as_target, reader

# SQLite's answers when the WAL index cannot be created beside a ledger we may not write.
_NO_SHM = ("SQLITE_READONLY_DIRECTORY", "SQLITE_CANTOPEN", "SQLITE_READONLY_CANTINIT")


def _uri(path: Path, immutable: bool) -> str:
    return (f"file:{quote(str(path.resolve()))}?mode=ro"
            + ("&immutable=1" if immutable else ""))


def _open(path: Path, immutable: bool) -> tuple[sqlite3.Connection, int]:
    conn = sqlite3.connect(_uri(path, immutable), uri=True, isolation_level=None, timeout=30.0,
                           check_same_thread=True)
    try:
        conn.execute("PRAGMA query_only = ON")
        return conn, schema.version(conn)
    except BaseException:
        conn.close()
        raise


def connect(path: str | Path) -> sqlite3.Connection:
    """A connection that cannot write the ledger at ``path`` (checked as
    :func:`.schema.connect_reader` checks it: present, a ledger, not from a newer version)."""
    target = Path(path)
    if not target.is_file():
        raise LedgerError(f"{target}: no ledger here (run `drift-auditor run` first)")
    try:
        try:
            conn, found = _open(target, immutable=False)
        except sqlite3.OperationalError as exc:
            shm = target.parent / (target.name + "-shm")
            if getattr(exc, "sqlite_errorname", "") not in _NO_SHM or shm.exists():
                raise
            conn, found = _open(target, immutable=True)
        empty = found == 0 and not schema.tables(conn)
    except sqlite3.DatabaseError as exc:
        raise schema.unreadable(target, exc, opening=True) from None
    if found == 0:
        conn.close()
        raise LedgerError(f"{target}: " + ("no ledger schema in this file (schema version 0)"
                                           if empty else
                                           "not a drift-auditor ledger (schema version 0)"))
    if found > schema.SCHEMA_VERSION:
        conn.close()
        raise LedgerError(f"{target}: ledger schema version {found} is newer than this "
                          f"drift-auditor understands ({schema.SCHEMA_VERSION}); upgrade "
                          "drift-auditor")
    return conn


@contextmanager
def reading(path: str | Path | StoreLedger) -> Iterator[sqlite3.Connection]:
    """``with reading(path) as conn:`` — a read-only connection, closed afterwards; a store
    cluster's read-only session for a :class:`.backend.StoreLedger`."""
    target = as_target(path)
    if isinstance(target, StoreLedger):
        with reader(target) as pg:
            yield pg
        return
    conn = connect(target)
    try:
        yield conn
    finally:
        conn.close()


def signature(target: Target) -> tuple[int, ...]:
    """What moves with any write of the ledger: the files' mtime, size and inode (database
    and WAL); on the store the newest event's ``seq`` (0: none, or no ledger yet)."""
    if isinstance(target, StoreLedger):
        try:
            with reading(target) as conn:
                row = conn.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()
        except LedgerError:
            return (0,)  # unreachable or no ledger: the read that follows says why
        return (int(row[0]) if row else 0,)
    out: list[int] = []
    for suffix in ("", "-wal"):
        try:
            st = (target.parent / (target.name + suffix)).stat()
            out += [st.st_mtime_ns, st.st_size, st.st_ino]
        except FileNotFoundError:
            out += [0, 0, 0]
    return tuple(out)
