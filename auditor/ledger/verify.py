"""Verification: recompute the hash chain, check every chained row against its event and
every checkpoint against the chain (and its signature when a key is given).

Each check that fails names a sequence number; the result reports the smallest. An edited
event breaks its own hash; an edited row no longer matches its event's payload; a deleted
event leaves a gap; a deleted row leaves an event without its row; a chain rewritten and
re-hashed from some point on no longer matches the checkpoints written before the edit (and
cannot carry a valid signature without the private key).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING

import orjson

from . import chain
from .schema import CHAINED, EVENT_TYPE, RUN_BEGIN, RUN_END

if TYPE_CHECKING:
    # cryptography costs ~15 ms to import; only signed ledgers need it.
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    checked: int
    first_broken_seq: int | None
    message: str
    head_seq: int = 0
    head_hash: str = ""
    checkpoints: int = 0
    signatures: int = 0
    problems: tuple[tuple[int, str], ...] = ()


class _Findings:
    def __init__(self) -> None:
        self.by_seq: dict[int, str] = {}

    def add(self, seq: int, message: str) -> None:
        self.by_seq.setdefault(seq, message)


def _chain(conn: sqlite3.Connection, found: _Findings) -> tuple[int, int, str]:
    prev = chain.GENESIS
    expected = 1
    checked = 0
    head_seq, head_hash = 0, chain.GENESIS
    for seq, at, run_id, type_, payload, prev_hash, stored in conn.execute(
            "SELECT seq, at, run_id, type, payload, prev_hash, hash FROM events ORDER BY seq"):
        checked += 1
        if seq != expected:
            found.add(expected, f"events {expected}..{seq - 1} are missing from the chain")
        if prev_hash != prev:
            found.add(seq, f"event {seq}: prev_hash does not match the hash of event {seq - 1}")
        try:
            computed = chain.link(prev_hash, seq, type_, at, run_id, payload)
        except (orjson.JSONDecodeError, TypeError):
            found.add(seq, f"event {seq}: payload is not valid JSON")
            computed = ""
        if computed != stored:
            found.add(seq, f"event {seq} ({type_}): hash mismatch — the event was altered")
        # Continue from the stored hash so one edit is reported once, at its own seq.
        prev = stored
        expected = seq + 1
        head_seq, head_hash = seq, stored
    return checked, head_seq, head_hash


def _payload_of(columns: tuple[str, ...], values: tuple[object, ...]) -> str:
    return chain.canonical(dict(zip(columns, values, strict=True))).decode()


def _rows(conn: sqlite3.Connection, found: _Findings) -> None:
    for table, columns in CHAINED.items():
        etype = EVENT_TYPE[table]
        cols = ", ".join(f"t.{c}" for c in columns)
        for seq, type_, payload, *values in conn.execute(
                f"SELECT t.seq, e.type, e.payload, {cols} FROM {table} t "
                f"LEFT JOIN events e ON e.seq = t.seq"):
            row_id = values[0]
            if type_ is None:
                found.add(int(seq or 0), f"{table} row {row_id}: its event {seq} does not exist")
            elif type_ != etype or _payload_of(columns, tuple(values)) != payload:
                found.add(int(seq), f"{table} row {row_id} differs from its chained event {seq} "
                                    "— the row was altered")
        missing = conn.execute(
            f"SELECT min(e.seq) FROM events e LEFT JOIN {table} t ON t.seq = e.seq "
            f"WHERE e.type = ? AND t.seq IS NULL", (etype,)).fetchone()[0]
        if missing is not None:
            found.add(int(missing), f"event {missing} ({etype}): its {table} row was deleted")


def _runs(conn: sqlite3.Connection, found: _Findings) -> None:
    begin_cols = ", ".join(f"r.{c}" for c in RUN_BEGIN)
    end_cols = ", ".join(f"r.{c}" for c in RUN_END)
    for row in conn.execute(
            f"SELECT r.status, r.seq_begin, b.type, b.payload, r.seq_end, e.type, e.payload, "
            f"{begin_cols}, {end_cols} FROM runs r LEFT JOIN events b ON b.seq = r.seq_begin "
            f"LEFT JOIN events e ON e.seq = r.seq_end"):
        status, seq_b, type_b, payload_b, seq_e, type_e, payload_e = row[:7]
        begin = tuple(row[7:7 + len(RUN_BEGIN)])
        end = tuple(row[7 + len(RUN_BEGIN):])
        run_id = begin[0]
        if type_b != "run_begin" or _payload_of(RUN_BEGIN, begin) != payload_b:
            found.add(int(seq_b or 0), f"run {run_id} differs from its run_begin event {seq_b}")
        if status != "running" and (type_e != "run_end" or _payload_of(RUN_END, end) != payload_e):
            found.add(int(seq_e or 0), f"run {run_id} differs from its run_end event {seq_e}")
    for kind, column in (("run_begin", "seq_begin"), ("run_end", "seq_end")):
        missing = conn.execute(
            f"SELECT min(e.seq) FROM events e LEFT JOIN runs r ON r.{column} = e.seq "
            f"WHERE e.type = ? AND r.id IS NULL", (kind,)).fetchone()[0]
        if missing is not None:
            found.add(int(missing), f"event {missing} ({kind}): its run row was deleted or altered")


def _checkpoints(conn: sqlite3.Connection, found: _Findings,
                 public: Ed25519PublicKey | None) -> tuple[int, int]:
    count = signed = 0
    public_hex = ""
    if public is not None:  # cryptography is imported only to check signatures
        from . import signing

        public_hex = signing.public_hex(public)
    seen_signed = False
    for run_id, seq, head_hash, at, signature, key_hex, stored in conn.execute(
            "SELECT c.run_id, c.seq, c.head_hash, c.at, c.signature, c.public_key, e.hash "
            "FROM checkpoints c LEFT JOIN events e ON e.seq = c.seq ORDER BY c.id"):
        count += 1
        if stored != head_hash:
            found.add(int(seq), f"checkpoint at event {seq}: the chain's hash there is not the "
                                "one checkpointed — the chain was rewritten")
            continue
        if public is None:
            continue
        if not signature:
            if seen_signed:
                found.add(int(seq), f"checkpoint at event {seq} is unsigned after signed ones")
            continue
        seen_signed = True
        if key_hex and key_hex != public_hex:
            found.add(int(seq), f"checkpoint at event {seq} was signed by another key ({key_hex[:16]}…)")
            continue
        message = signing.checkpoint_message(run_id, int(seq), head_hash, at)
        if not signing.check(public, message, signature):
            found.add(int(seq), f"checkpoint at event {seq}: the signature does not verify")
            continue
        signed += 1
    return count, signed


def verify(conn: sqlite3.Connection, public: Ed25519PublicKey | None = None) -> VerifyResult:
    """Check the whole ledger in one read snapshot."""
    found = _Findings()
    conn.execute("BEGIN")
    try:
        checked, head_seq, head_hash = _chain(conn, found)
        _rows(conn, found)
        _runs(conn, found)
        count, signed = _checkpoints(conn, found, public)
    finally:
        conn.execute("COMMIT")
    problems = tuple(sorted(found.by_seq.items()))
    if not problems:
        sig = f", {signed} signatures valid" if public is not None else ""
        return VerifyResult(True, checked, None,
                            f"ledger OK: {checked} events, head {head_seq} {head_hash[:16]}…, "
                            f"{count} checkpoints{sig}", head_seq, head_hash, count, signed)
    first, message = problems[0]
    more = f" ({len(problems)} broken sequence numbers in all)" if len(problems) > 1 else ""
    return VerifyResult(False, checked, first,
                        f"ledger tampered: first broken sequence number {first}: {message}{more}",
                        head_seq, head_hash, count, signed, problems)
