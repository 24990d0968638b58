"""Read-only queries behind ``drift-auditor report sample``: the chained records an evidence
packet cites and the checkpoint that covers them, so an auditor can re-perform each proof.

The report (:mod:`.reportquery`) decides the population; this module only fetches, by ID or
sequence number, rows that are append-only once written (events, versions, drift events,
checkpoints), so reading them on a connection of their own returns what the report saw.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass

_CHUNK = 500


@dataclass(frozen=True, slots=True)
class EventRow:
    """One event of the hash chain, exactly as stored (``payload`` is its canonical text)."""

    seq: int
    at: str
    run_id: int | None
    type: str
    payload: str
    prev_hash: str
    hash: str


@dataclass(frozen=True, slots=True)
class CheckpointProof:
    """A checkpoint as stored: after ``seq`` the chain head was ``head_hash``; ``signature``
    (hex, Ed25519) and ``public_key`` (hex) when the ledger signs its checkpoints."""

    id: int
    run_id: int | None
    seq: int
    head_hash: str
    at: str
    signature: str
    public_key: str


@dataclass(frozen=True, slots=True)
class VersionRow:
    id: int
    seq: int
    object_id: int
    api_version: str
    resource_version: str
    content_hash: str
    observed_at: str
    deleted: bool


@dataclass(frozen=True, slots=True)
class LifecycleRow:
    """One drift lifecycle event (``drift_events``) with its chain sequence number."""

    id: int
    seq: int
    drift_id: int
    run_id: int | None
    at: str
    event: str
    how: str
    by: str
    reason: str
    expires: str
    related_drift_id: int | None


def _chunks(values: Iterable[int]) -> Iterable[list[int]]:
    ids = sorted(set(values))
    for i in range(0, len(ids), _CHUNK):
        yield ids[i:i + _CHUNK]


def events(conn: sqlite3.Connection, seqs: Iterable[int]) -> dict[int, EventRow]:
    """The chain events ``seqs``."""
    out: dict[int, EventRow] = {}
    for chunk in _chunks(seqs):
        for seq, at, run_id, type_, payload, prev_hash, digest in conn.execute(
                "SELECT seq, at, run_id, type, payload, prev_hash, hash FROM events "
                f"WHERE seq IN ({','.join('?' * len(chunk))})", chunk):
            out[int(seq)] = EventRow(int(seq), str(at), None if run_id is None else int(run_id),
                                     str(type_), str(payload), str(prev_hash), str(digest))
    return out


def covering_checkpoint(conn: sqlite3.Connection, seq: int) -> CheckpointProof | None:
    """The first checkpoint at or after ``seq``: its head hash commits to the chain up to it,
    so to event ``seq`` too. ``None`` while no checkpoint has been written after it (a run
    still in progress)."""
    row = conn.execute(
        "SELECT id, run_id, seq, head_hash, at, signature, public_key FROM checkpoints "
        "WHERE seq >= ? ORDER BY seq, id LIMIT 1", (seq,)).fetchone()
    if row is None:
        return None
    cid, run_id, cseq, head_hash, at, signature, public_key = row
    return CheckpointProof(int(cid), None if run_id is None else int(run_id), int(cseq),
                           str(head_hash), str(at), str(signature or ""), str(public_key or ""))


def versions(conn: sqlite3.Connection, version_ids: Iterable[int]) -> dict[int, VersionRow]:
    """The object versions ``version_ids`` (their chained columns and sequence numbers)."""
    out: dict[int, VersionRow] = {}
    for chunk in _chunks(version_ids):
        for vid, seq, oid, api_version, rv, digest, observed, deleted in conn.execute(
                "SELECT id, seq, object_id, api_version, resource_version, content_hash, "
                "observed_at, deleted FROM object_versions "
                f"WHERE id IN ({','.join('?' * len(chunk))})", chunk):
            out[int(vid)] = VersionRow(int(vid), int(seq), int(oid), str(api_version or ""),
                                       str(rv or ""), str(digest or ""), str(observed),
                                       bool(deleted))
    return out


def drift_seqs(conn: sqlite3.Connection, drift_ids: Iterable[int]) -> dict[int, int]:
    """``{drift id: seq of its chained row}``."""
    out: dict[int, int] = {}
    for chunk in _chunks(drift_ids):
        out.update((int(d), int(s)) for d, s in conn.execute(
            f"SELECT id, seq FROM drifts WHERE id IN ({','.join('?' * len(chunk))})", chunk))
    return out


def lifecycle(conn: sqlite3.Connection, drift_ids: Iterable[int], end: str
              ) -> dict[int, list[LifecycleRow]]:
    """Each drift's lifecycle events before ``end`` (the report's replay sees no later one),
    in chain order."""
    out: dict[int, list[LifecycleRow]] = {}
    for chunk in _chunks(drift_ids):
        for (eid, seq, did, run_id, at, event, how, by, reason, expires,
             related) in conn.execute(
                "SELECT id, seq, drift_id, run_id, at, event, how, by, reason, expires, "
                "related_drift_id FROM drift_events WHERE at < ? AND drift_id IN "
                f"({','.join('?' * len(chunk))}) ORDER BY seq", (end, *chunk)):
            out.setdefault(int(did), []).append(LifecycleRow(
                int(eid), int(seq), int(did), None if run_id is None else int(run_id), str(at),
                str(event), str(how or ""), str(by or ""), str(reason or ""),
                str(expires or ""), None if related is None else int(related)))
    for rows in out.values():
        rows.sort(key=lambda r: r.seq)
    return out


@dataclass(frozen=True, slots=True)
class ChangeVersions:
    """The versions a change links: the new one and the one it replaced (``None``: a
    creation, or the first sighting)."""

    id: int
    seq: int
    object_id: int
    version_id: int
    prev_version_id: int | None


def change_versions(conn: sqlite3.Connection, change_ids: Iterable[int]
                    ) -> dict[int, ChangeVersions]:
    out: dict[int, ChangeVersions] = {}
    for chunk in _chunks(change_ids):
        for cid, seq, oid, vid, prev in conn.execute(
                "SELECT id, seq, object_id, version_id, prev_version_id FROM changes "
                f"WHERE id IN ({','.join('?' * len(chunk))})", chunk):
            out[int(cid)] = ChangeVersions(int(cid), int(seq), int(oid), int(vid),
                                           None if prev is None else int(prev))
    return out
