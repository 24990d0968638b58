"""The hash chain that makes the ledger tamper-evident.

Every ledger event is one row of ``events``: ``hash = sha256(prev_hash + canonical(event))``
where ``canonical`` is orjson with sorted keys and ``event`` is ``{seq, type, at, run_id,
payload}``. A chained row elsewhere (an object version, a change, a drift, ...) carries the
``seq`` of its event and its event's payload is exactly the row's chained columns, so editing
either the event or the row breaks verification at that sequence number.

Payloads hold content *hashes*, never content: retention may delete old object content and
the chain still verifies.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

GENESIS = "0" * 64


def canonical(value: Any) -> bytes:
    """Deterministic JSON bytes: sorted keys, no whitespace, UTC datetimes."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_UTC_Z)


def link(prev_hash: str, seq: int, type_: str, at: str, run_id: int | None,
         payload_text: str) -> str:
    """The hash of one event given the previous hash and the canonical payload text."""
    event = {"seq": seq, "type": type_, "at": at, "run_id": run_id,
             "payload": orjson.loads(payload_text)}
    return hashlib.sha256(prev_hash.encode("ascii") + canonical(event)).hexdigest()


@dataclass
class Head:
    """The chain's tip as known to the writer (it holds the lock, so nobody else moves it)."""

    seq: int = 0
    hash: str = GENESIS


@dataclass(frozen=True)
class Event:
    """One event ready to insert: ``(seq, at, run_id, type, payload, prev_hash, hash)``."""

    seq: int
    at: str
    run_id: int | None
    type: str
    payload: str
    prev_hash: str
    hash: str

    def row(self) -> tuple[int, str, int | None, str, str, str, str]:
        return (self.seq, self.at, self.run_id, self.type, self.payload, self.prev_hash,
                self.hash)


def append(head: Head, type_: str, at: str, run_id: int | None,
           payload: dict[str, Any]) -> Event:
    """Build the next event and move ``head`` to it. The caller inserts it in its transaction
    and restores ``head`` if that transaction rolls back."""
    seq = head.seq + 1
    text = canonical(payload).decode()
    digest = link(head.hash, seq, type_, at, run_id, text)
    event = Event(seq, at, run_id, type_, text, head.hash, digest)
    head.seq, head.hash = seq, digest
    return event
