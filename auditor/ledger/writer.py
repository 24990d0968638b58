"""Batched, chained writes: rows for several tables plus their chain events, committed in one
``BEGIN IMMEDIATE`` transaction, all or nothing.

The batch assigns ids and sequence numbers itself (the writer holds the lock, so nobody else
allocates them) which lets every table be written with one ``executemany``.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from auditor.errors import LedgerError

from . import chain
from .dialect import BackendError, dialect_of
from .schema import CHAINED, EVENT_TYPE


@dataclass
class Counters:
    """Next free id per table; advanced as rows are staged."""

    next_id: dict[str, int] = field(default_factory=dict)

    @classmethod
    def load(cls, conn: sqlite3.Connection) -> Counters:
        out = {}
        for table in CHAINED:
            out[table] = int(conn.execute(f"SELECT coalesce(max(id), 0) FROM {table}").fetchone()[0]) + 1
        out["checkpoints"] = int(
            conn.execute("SELECT coalesce(max(id), 0) FROM checkpoints").fetchone()[0]) + 1
        out["runs"] = int(conn.execute("SELECT coalesce(max(id), 0) FROM runs").fetchone()[0]) + 1
        return cls(out)

    def take(self, table: str) -> int:
        value = self.next_id[table]
        self.next_id[table] = value + 1
        return value


class Batch:
    """Staged rows and events. ``chained`` rows get a sequence number and an event each."""

    def __init__(self, head: chain.Head, counters: Counters) -> None:
        self.head = head
        self.counters = counters
        self.events: list[chain.Event] = []
        self.rows: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
        # Grouped by statement (insertion-ordered) so each runs as one executemany.
        self.sql: dict[str, list[tuple[Any, ...]]] = {}
        self._saved = (head.seq, head.hash, dict(counters.next_id))

    def __len__(self) -> int:
        return (len(self.events) + sum(len(r) for r in self.rows.values())
                + sum(len(p) for p in self.sql.values()))

    def chained(self, table: str, row: dict[str, Any], at: str, run_id: int | None) -> int:
        """Stage one append-only row and its event; returns the row's id (assigned if absent)."""
        if row.get("id") is None:
            row["id"] = self.counters.take(table)
        columns = CHAINED[table]
        payload = {c: row[c] for c in columns}
        event = chain.append(self.head, EVENT_TYPE[table], at, run_id, payload)
        self.events.append(event)
        self.rows[table].append((event.seq, *(row[c] for c in columns)))
        return int(row["id"])

    def event(self, type_: str, at: str, run_id: int | None, payload: dict[str, Any]) -> chain.Event:
        """Stage an event that is not mirrored by a row (run begin/end, prune)."""
        event = chain.append(self.head, type_, at, run_id, payload)
        self.events.append(event)
        return event

    def plain(self, sql: str, params: tuple[Any, ...]) -> None:
        """Stage a statement on a non-chained table (caches, contents, runs)."""
        self.sql.setdefault(sql, []).append(params)

    def rollback_memory(self) -> None:
        self.head.seq, self.head.hash, saved = self._saved
        self.counters.next_id = dict(saved)

    def write(self, conn: sqlite3.Connection) -> None:
        """Write everything in one transaction; on failure restore the in-memory head."""
        if not len(self):
            return
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany("INSERT INTO events (seq, at, run_id, type, payload, prev_hash, hash)"
                             " VALUES (?, ?, ?, ?, ?, ?, ?)", [e.row() for e in self.events])
            for table in CHAINED:
                rows = self.rows.get(table)
                if not rows:
                    continue
                cols = ("seq", *CHAINED[table])
                conn.executemany(
                    f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                    rows)
            for sql, params in self.sql.items():
                conn.executemany(sql, params)
            conn.execute("COMMIT")
        except (sqlite3.Error, BackendError) as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            self.rollback_memory()
            raise LedgerError(f"ledger write failed and was rolled back: {exc}") from exc
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            self.rollback_memory()
            raise
        self.events.clear()
        self.rows.clear()
        self.sql.clear()
        self._saved = (self.head.seq, self.head.hash, dict(self.counters.next_id))


@contextmanager
def reading(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A consistent snapshot for multi-statement reads (WAL readers never block the writer;
    on PostgreSQL a REPEATABLE READ, READ ONLY transaction: one snapshot for every statement)."""
    conn.execute(dialect_of(conn).begin_read)
    try:
        yield conn
    finally:
        conn.execute("COMMIT")
