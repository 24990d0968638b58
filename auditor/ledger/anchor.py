"""Anchors: copies of checkpoints kept outside the cluster, and the ledger checked against them.

A checkpoint inside the ledger proves nothing against someone who can replace the whole file:
a ledger rebuilt from scratch has a valid chain, and a key kept beside it signs whatever its
holder likes. An anchor is the checkpoint (cluster, run, sequence number, head hash, time,
signature, public key) written to a Git repository the cluster cannot rewrite (the evidence
repository, ``ledger.anchor-repo``), one JSON line per anchor in ``checkpoints/<cluster>.jsonl``.
:mod:`auditor.outputs.anchoring` writes them; this module owns the record, its file and the
check: every anchored checkpoint must still be in the ledger, with the same head hash at its
sequence number and the same key, and its anchored signature must verify.

The Git commit carrying an anchor is a plain commit: the signature that counts is the
Ed25519 signature of the checkpoint inside the line, made with the ledger's key.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import orjson

from auditor.errors import LedgerError

from . import keyfile

if TYPE_CHECKING:
    # cryptography costs ~15 ms to import; only signature checks need it.
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

VERSION = 1
FOLDER = "checkpoints"


@dataclass(frozen=True)
class AnchorRecord:
    """One anchored checkpoint, as one line of the evidence repository."""

    cluster: str
    run_id: int | None
    seq: int
    head_hash: str
    at: str  # the checkpoint's time (signed with it)
    signature: str  # hex; empty for an unsigned ledger (ledger.sign: false)
    public_key: str  # hex of the 32 raw bytes; empty when unsigned
    fingerprint: str
    anchored_at: str
    v: int = VERSION

    def line(self) -> str:
        return orjson.dumps(asdict(self), option=orjson.OPT_SORT_KEYS).decode() + "\n"

    def describe(self) -> str:
        run = f"run {self.run_id}, " if self.run_id is not None else ""
        return (f"anchored checkpoint at event {self.seq} (cluster {self.cluster}, {run}"
                f"checkpointed {self.at}, anchored {self.anchored_at})")


def file_for(cluster: str) -> str:
    """The evidence repository's file (relative, POSIX) of one cluster's anchors."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", cluster).strip("._") or "cluster"
    return f"{FOLDER}/{slug}.jsonl"


def latest(conn: sqlite3.Connection, cluster: str, anchored_at: str) -> AnchorRecord | None:
    """The ledger's newest checkpoint as an anchor record (None: no checkpoint yet)."""
    row = conn.execute("SELECT run_id, seq, head_hash, at, signature, public_key "
                       "FROM checkpoints ORDER BY id DESC LIMIT 1").fetchone()
    if row is None:
        return None
    run_id, seq, head_hash, at, signature, public = row
    return AnchorRecord(cluster=cluster, run_id=None if run_id is None else int(run_id),
                        seq=int(seq), head_hash=str(head_hash), at=str(at),
                        signature=str(signature or ""), public_key=str(public or ""),
                        fingerprint=keyfile.fingerprint(public) if public else "",
                        anchored_at=anchored_at)


def parse(text: str, where: str = "anchors", *, strict: bool = True) -> list[AnchorRecord]:
    """The records of one anchor file, in order. A line that is not a record is an error
    naming it (a damaged evidence file is not silently read as fewer anchors), unless not
    ``strict``: anchoring appends past it, leaving it for ``verify`` to name."""
    out: list[AnchorRecord] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            data = orjson.loads(line)
            run_id = data["run_id"]
            out.append(AnchorRecord(
                cluster=str(data["cluster"]), run_id=None if run_id is None else int(run_id),
                seq=int(data["seq"]), head_hash=str(data["head_hash"]), at=str(data["at"]),
                signature=str(data.get("signature") or ""),
                public_key=str(data.get("public_key") or ""),
                fingerprint=str(data.get("fingerprint") or ""),
                anchored_at=str(data.get("anchored_at") or ""), v=int(data.get("v", VERSION))))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
            if strict:
                raise LedgerError(f"{where}: line {number} is not an anchor record") from None
    return out


def holds(records: Iterable[AnchorRecord], record: AnchorRecord) -> bool:
    """Whether ``record``'s checkpoint is anchored already (same event, same head)."""
    return any(r.seq == record.seq and r.head_hash == record.head_hash for r in records)


@dataclass(frozen=True)
class AnchorCheck:
    """The ledger against its anchors: ``message`` is one line either way."""

    ok: bool
    checked: int
    signatures: int
    message: str
    first_mismatch: AnchorRecord | None = None


def check(conn: sqlite3.Connection, records: Sequence[AnchorRecord],
          public: Ed25519PublicKey | None = None) -> AnchorCheck:
    """Every anchored checkpoint against the ledger, oldest first; the first mismatch ends
    the check and is named. ``public``: the key the auditor holds; without it each record's
    signature is checked with the key it carries, which then must be the ledger's."""
    public_hex = ""
    if public is not None:
        from . import signing

        public_hex = signing.public_hex(public)
    head = conn.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0]
    signatures = 0
    for count, record in enumerate(records, 1):
        problem = _signature_problem(record, public, public_hex)
        if problem is None:
            problem = _ledger_problem(conn, record, int(head))
        if problem is not None:
            return AnchorCheck(False, count, signatures,
                               f"anchor mismatch: {record.describe()}: {problem} ({count - 1} of "
                               f"{len(records)} anchored checkpoints matched before it)", record)
        signatures += bool(record.signature)
    signed = f", {signatures} anchored signatures valid" if signatures else ""
    return AnchorCheck(True, len(records), signatures,
                       f"anchors OK: the ledger holds all {len(records)} anchored checkpoints"
                       f"{signed}")


def _signature_problem(record: AnchorRecord, public: Ed25519PublicKey | None,
                       public_hex: str) -> str | None:
    from . import signing

    if not record.signature:
        return "it is unsigned, and a public key was given" if public is not None else None
    if public is not None and record.public_key and record.public_key != public_hex:
        return (f"it was signed by another key ({record.fingerprint or record.public_key[:16]}) "
                f"than the one given ({keyfile.fingerprint(public_hex)})")
    key = public
    if key is None:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        try:
            key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(record.public_key))
        except ValueError:
            return "its public key is not an Ed25519 key"
    message = signing.checkpoint_message(record.run_id, record.seq, record.head_hash, record.at)
    if not signing.check(key, message, record.signature):
        return "its anchored signature does not verify"
    return None


def _ledger_problem(conn: sqlite3.Connection, record: AnchorRecord, head: int) -> str | None:
    row = conn.execute("SELECT hash FROM events WHERE seq = ?", (record.seq,)).fetchone()
    if row is None:
        return (f"the ledger has no event {record.seq} (its chain ends at event {head}) — it "
                "was truncated or rebuilt after the anchor")
    if row[0] != record.head_hash:
        return (f"the ledger's hash at event {record.seq} is {str(row[0])[:16]}…, the anchored "
                f"head is {record.head_hash[:16]}… — the ledger was rebuilt or rewritten after "
                "the anchor")
    rows = conn.execute("SELECT signature, public_key FROM checkpoints "
                        "WHERE seq = ? AND head_hash = ? AND at = ?",
                        (record.seq, record.head_hash, record.at)).fetchall()
    if not rows:
        return f"the ledger holds no checkpoint at event {record.seq} made at {record.at}"
    if not any(str(public or "") == record.public_key for _sig, public in rows):
        found = next((str(p) for _s, p in rows if p), "")
        shown = keyfile.fingerprint(found) if found else "no key (unsigned)"
        return (f"the ledger's checkpoint there carries {shown}, the anchor "
                f"{record.fingerprint or 'no key (unsigned)'} — the ledger was re-signed")
    return None

