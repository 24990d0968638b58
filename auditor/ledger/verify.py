"""Verification: recompute the hash chain, check every chained row against its event, every
stored object content against its chained hash, and every checkpoint against the chain (and
its signature when a key is given).

Each check that fails names a sequence number; the result reports the smallest. An edited
event breaks its own hash; an edited row no longer matches its event's payload; a deleted
event leaves a gap; a deleted row leaves an event without its row; an inserted row has no
event of its own (or one of another row); an event appended after the last checkpoint
belongs to no running run (every write outside a run ends with a checkpoint); a chain
rewritten and re-hashed from some point on no longer matches the checkpoints written before
the edit (and cannot carry a valid signature without the private key). A file SQLite cannot
read, or that fails SQLite's own ``integrity_check`` (a damaged page, a truncated file, an
index that no longer matches its table), raises :class:`~auditor.errors.LedgerTamperedError`
naming it.

What is checked is everything the compliance report shows: runs (a watch run's mode
included: its ``run_begin`` event carries it), objects, object versions *and their content*,
changes, drifts and their lifecycle, commits, policy results and runs, revert attempts,
adoptions, API-server audit events *and their request and response objects* (hashed again
against their chained hashes, as content is), the audit sources' deliveries and the tool's own
configuration versions (``config_versions``: settings, ignore rules, scope, policy pack and
origin, chained whole, see :mod:`.configlog`), and the approvals read from the git host with
the branch protection snapshots (``approvals``, :mod:`.approvals`: each row is the payload of
its ``approval`` event), and the accountability of exceptions (step 9,
:mod:`.accountability`): who acknowledged each drift as authenticated, the ticket and the
self-acknowledged flag (``acknowledgements``), management responses (``responses``) and who
ran each adoption (``adoption_identities``), each row the payload of its own event. Outside the chain are only the caches rebuilt from those
(``latest``; ``drift_state``, the current state of each drift that the UI and ``history``
show; ``policy_state``; ``policy_cache``), the alert outbox's delivery state and the resume
points of the watch and of tailed audit sources (``watch_positions``, ``audit_positions``:
cursors, see :mod:`.watch`); the report reads none of them. Tables a lower schema version lacks are not there to check, and a ledger
is never migrated to be verified; a table missing although the chain holds events of its
rows is reported like any deleted row.

**Content.** ``contents`` is not chained row by row: it is addressed by the chained
``object_versions.content_hash``, the SHA-256 of exactly the text stored
(:func:`auditor.ledger.store.content_hash`). Every stored content is hashed again and
compared; a content row of a version that has none (a deletion) or of no version at all was
inserted. Content may be missing only where ``prune`` removed it, and prune says so in the
chain: its ``prune`` event carries its ``cutoff``, and prune deletes exactly the content of
versions observed before the cutoff that were no longer their object's newest version when it
ran. So a missing content is accepted only when a later ``prune`` event covers it: its cutoff
is after the version's ``observed_at`` and the object's next version precedes that event in
the chain. Everything else missing was deleted behind the ledger's back. This needs nothing
beyond what the chain already holds (no new table, no schema step), and ledgers pruned by
earlier versions, whose prune events carry the same cutoff, verify unchanged.
"""

from __future__ import annotations

import bisect
import hashlib
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import orjson

from auditor.errors import LedgerTamperedError

from . import chain, schema
from .dialect import SQLITE, dialect_of
from .schema import CHAINED, EVENT_ROWS, EVENT_TYPE, RUN_BEGIN, RUN_END

if TYPE_CHECKING:
    # cryptography costs ~15 ms to import; only signed ledgers need it.
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

# Tables whose every row is exactly the payload of one event of the chain (the row's ``seq``
# names it): the chained tables of the schema, and policy results, policy runs, adoptions,
# audit events, approvals and the step-9 accountability tables, which chain their rows
# through plain events.
MIRRORED: dict[str, tuple[tuple[str, ...], str]] = {
    **{table: (columns, EVENT_TYPE[table]) for table, columns in CHAINED.items()},
    **EVENT_ROWS,
}


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
    """Problems by sequence number; 0 stands for a row that is in no event at all."""

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
        except (orjson.JSONDecodeError, TypeError, AttributeError):
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


def _same_payload(columns: tuple[str, ...], values: tuple[object, ...], payload: str) -> bool:
    if _payload_of(columns, values) == payload:
        return True
    # The same values read back in another type (a whole-number score stored as REAL).
    try:
        return bool(orjson.loads(payload) == dict(zip(columns, values, strict=True)))
    except (orjson.JSONDecodeError, TypeError):
        return False


def _first_event(conn: sqlite3.Connection, etype: str) -> int | None:
    row = conn.execute("SELECT min(seq) FROM events WHERE type = ?", (etype,)).fetchone()
    return None if row[0] is None else int(row[0])


def rows_against_events(conn: sqlite3.Connection, names: Iterable[str]) -> list[tuple[int, str]]:
    """The rows of the tables ``names`` (of :data:`MIRRORED`) against their events:
    ``[(seq, problem)]``, empty when intact (for a feature checking its own tables)."""
    found = _Findings()
    _rows(conn, found, schema.tables(conn), names)
    return sorted(found.by_seq.items())


def _rows(conn: sqlite3.Connection, found: _Findings, present: set[str],
          names: Iterable[str] = MIRRORED) -> None:
    for table in names:
        columns, etype = MIRRORED[table]
        if table not in present:
            # A lower schema version: no such rows, unless the chain says otherwise.
            first = _first_event(conn, etype)
            if first is not None:
                found.add(first, f"event {first} ({etype}): table {table} is missing — its "
                                 "rows were deleted")
            continue
        cols = ", ".join(f"t.{c}" for c in columns)
        for seq, type_, payload, *values in conn.execute(
                f"SELECT t.seq, e.type, e.payload, {cols} FROM {table} t "
                f"LEFT JOIN events e ON e.seq = t.seq"):
            row_id = values[0]
            if seq is None:
                found.add(0, f"{table} row {row_id} is in no event of the chain — the row was "
                             "inserted")
            elif type_ is None:
                found.add(int(seq), f"{table} row {row_id}: its event {seq} does not exist")
            elif type_ != etype or not _same_payload(columns, tuple(values), payload):
                found.add(int(seq), f"{table} row {row_id} differs from its chained event {seq} "
                                    "— the row was altered")
        missing = conn.execute(
            f"SELECT min(e.seq) FROM events e LEFT JOIN {table} t ON t.seq = e.seq "
            f"WHERE e.type = ? AND t.seq IS NULL", (etype,)).fetchone()[0]
        if missing is not None:
            found.add(int(missing), f"event {missing} ({etype}): its {table} row was deleted")


def _begin_payload(begin: tuple[object, ...], mode: object) -> str:
    """The ``run_begin`` payload of a run row: ``mode`` in it only when not ``run`` (every
    run written before the column existed is a scheduled run, hashed without it)."""
    values = dict(zip(RUN_BEGIN, begin, strict=True))
    if mode != "run":
        values["mode"] = mode
    return chain.canonical(values).decode()


def _runs(conn: sqlite3.Connection, found: _Findings) -> None:
    begin_cols = ", ".join(f"r.{c}" for c in RUN_BEGIN)
    end_cols = ", ".join(f"r.{c}" for c in RUN_END)
    # A ledger before schema step 6 has no mode column: every run in it is scheduled.
    mode_col = "r.mode" if schema.has_run_mode(conn) else "'run'"
    for row in conn.execute(
            f"SELECT r.status, r.seq_begin, b.type, b.payload, r.seq_end, e.type, e.payload, "
            f"{mode_col}, {begin_cols}, {end_cols} FROM runs r "
            f"LEFT JOIN events b ON b.seq = r.seq_begin LEFT JOIN events e ON e.seq = r.seq_end"):
        status, seq_b, type_b, payload_b, seq_e, type_e, payload_e, mode = row[:8]
        begin = tuple(row[8:8 + len(RUN_BEGIN)])
        end = tuple(row[8 + len(RUN_BEGIN):])
        run_id = begin[0]
        if type_b != "run_begin" or _begin_payload(begin, mode) != payload_b:
            found.add(int(seq_b or 0), f"run {run_id} differs from its run_begin event {seq_b}")
        if status != "running" and (type_e != "run_end" or _payload_of(RUN_END, end) != payload_e):
            found.add(int(seq_e or 0), f"run {run_id} differs from its run_end event {seq_e}")
    for kind, column in (("run_begin", "seq_begin"), ("run_end", "seq_end")):
        missing = conn.execute(
            f"SELECT min(e.seq) FROM events e LEFT JOIN runs r ON r.{column} = e.seq "
            f"WHERE e.type = ? AND r.id IS NULL", (kind,)).fetchone()[0]
        if missing is not None:
            found.add(int(missing), f"event {missing} ({kind}): its run row was deleted or altered")


def stored_hash(text: str | bytes) -> str:
    """The content hash of a stored content: SHA-256 of its text, as the ledger wrote it."""
    data = text.encode() if isinstance(text, str) else bytes(text)
    return hashlib.sha256(data).hexdigest()


def _same_content(text: str | bytes, expected: str) -> bool:
    if stored_hash(text) == expected:
        return True
    # Stored in another (older) serialisation of the same JSON: the same content.
    try:
        return hashlib.sha256(chain.canonical(orjson.loads(text))).hexdigest() == expected
    except (orjson.JSONDecodeError, TypeError):
        return False


def _prunes(conn: sqlite3.Connection) -> tuple[list[int], list[str]]:
    """The prune events' sequence numbers (ascending) and, for each, the latest cutoff of it
    and every later prune: a version is covered by some later prune iff its observed_at is
    before the suffix maximum."""
    events: list[tuple[int, str]] = []
    for seq, payload in conn.execute(
            "SELECT seq, payload FROM events WHERE type = 'prune' ORDER BY seq"):
        try:
            cutoff = orjson.loads(payload).get("cutoff")
        except (orjson.JSONDecodeError, AttributeError):
            continue  # _chain reports the broken payload
        if isinstance(cutoff, str):
            events.append((int(seq), cutoff))
    seqs = [s for s, _ in events]
    latest: list[str] = [""] * len(events)
    best = ""
    for i in range(len(events) - 1, -1, -1):
        best = max(best, events[i][1])
        latest[i] = best
    return seqs, latest


def _contents(conn: sqlite3.Connection, found: _Findings) -> None:
    for vid, content, seq, expected, deleted in conn.execute(
            "SELECT c.version_id, c.content, v.seq, v.content_hash, v.deleted FROM contents c "
            "LEFT JOIN object_versions v ON v.id = c.version_id"):
        if seq is None:
            found.add(0, f"contents row of version {vid}: no such object version in the chain "
                         "— the version was deleted or the content inserted")
        elif deleted or not expected:
            found.add(int(seq), f"contents row of object_versions row {vid}: that version has "
                                "no content (a deletion) — the content was inserted")
        elif content is None or not _same_content(content, expected):
            found.add(int(seq), f"object_versions row {vid}: its stored content does not match "
                                "its chained content hash — the content was altered")
    seqs, cutoffs = _prunes(conn)
    for seq, vid, observed, next_seq in conn.execute(
            "SELECT v.seq, v.id, v.observed_at, (SELECT n.seq FROM object_versions n "
            "WHERE n.object_id = v.object_id AND n.id > v.id ORDER BY n.id LIMIT 1) "
            "FROM object_versions v WHERE v.deleted = 0 AND coalesce(v.content_hash, '') != '' "
            "AND NOT EXISTS (SELECT 1 FROM contents c WHERE c.version_id = v.id)"):
        if next_seq is not None:
            # The first prune after the object's next version, and any later one.
            i = bisect.bisect_right(seqs, int(next_seq))
            if i < len(seqs) and str(observed or "") < cutoffs[i]:
                continue  # pruned, as a prune event in the chain says
        found.add(int(seq), f"object_versions row {vid}: its content was deleted (no prune in "
                            "the chain covers it)")


def _audit_objects(conn: sqlite3.Connection, found: _Findings, present: set[str]) -> None:
    """The request and response objects of the audit events against their chained hashes
    (:mod:`.auditevents`): stored exactly as hashed, none added, none removed."""
    if "audit_events" not in present:
        return
    for seq, aid, req, req_hash, resp, resp_hash in conn.execute(
            "SELECT seq, id, request_object, request_hash, response_object, response_hash "
            "FROM audit_events WHERE request_object IS NOT NULL OR response_object IS NOT NULL "
            "OR coalesce(request_hash, '') != '' OR coalesce(response_hash, '') != ''"):
        for what, text, expected in (("request", req, req_hash), ("response", resp, resp_hash)):
            if text is None and not expected:
                continue
            if text is None:
                problem = f"its {what} object was deleted"
            elif not expected:
                problem = f"it has a {what} object its chained event has no hash of — inserted"
            elif stored_hash(text) != expected:
                problem = f"its {what} object does not match its chained hash — altered"
            else:
                continue
            found.add(int(seq or 0), f"audit_events row {aid}: {problem}")


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
            found.add(int(seq or 0), f"checkpoint at event {seq}: the chain's hash there is not "
                                     "the one checkpointed — the chain was rewritten")
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


def _tail(conn: sqlite3.Connection, found: _Findings) -> None:
    """Every write outside a run (finish, recovery, ack, prune, adoption) ends with a
    checkpoint in its own transaction; only a run still going (or killed, not yet recovered)
    has events after the last checkpoint. Anything else there was appended behind the
    ledger's back (with a signing key, past the last signature)."""
    last = int(conn.execute("SELECT coalesce(max(seq), 0) FROM checkpoints").fetchone()[0])
    row = conn.execute(
        "SELECT e.seq, e.type FROM events e LEFT JOIN runs r ON r.id = e.run_id "
        "WHERE e.seq > ? AND (r.status IS NULL OR r.status != 'running') ORDER BY e.seq "
        "LIMIT 1", (last,)).fetchone()
    if row is not None:
        found.add(int(row[0]), f"event {row[0]} ({row[1]}) comes after the last checkpoint "
                               f"(event {last}) and belongs to no running run — it was appended")


def _file(conn: sqlite3.Connection) -> None:
    """SQLite's own check of the file: every page of every table and index readable, and every
    index entry matching its row (reports read through indexes; an index edited to hide a
    row would otherwise pass a walk of the tables). About a sixth of verify's time."""
    problem = conn.execute("PRAGMA integrity_check(1)").fetchone()
    if problem is None or problem[0] != "ok":
        said = " ".join(str(problem[0]).replace("*** in database main ***", "").split()) \
            if problem else "no answer"
        raise LedgerTamperedError(
            f"{schema.path_of(conn)}: the ledger file is damaged (SQLite integrity check: "
            f"{said}): it can be neither trusted nor verified")


def verify(conn: sqlite3.Connection, public: Ed25519PublicKey | None = None) -> VerifyResult:
    """Check the whole ledger in one read snapshot (the caller's, when ``conn`` is inside a
    transaction: a report verifies exactly what it reads). Never writes, never migrates.

    Raises :class:`LedgerTamperedError` naming the file when SQLite cannot read it (a damaged
    page, a truncated file): nothing in it can then be vouched for.

    On PostgreSQL (a cluster's schema in the fleet store, :mod:`.pgconn`) the checks are the
    same, read in one ``REPEATABLE READ READ ONLY`` snapshot, except SQLite's
    ``integrity_check``, which has no PostgreSQL equivalent and is skipped: the server's own
    storage checks (checksums, ``amcheck``) are its operators' business.
    """
    found = _Findings()
    lite = dialect_of(conn) is SQLITE
    try:
        query_only = 0
        if lite:
            query_only = int(conn.execute("PRAGMA query_only").fetchone()[0])
            conn.execute("PRAGMA query_only = 1")  # whatever the connection, this never writes
        own = not conn.in_transaction  # else the caller's snapshot, which its reads share
        if own:
            # PostgreSQL: READ ONLY stands for query_only, REPEATABLE READ for one snapshot.
            conn.execute(dialect_of(conn).begin_read)
        try:
            if lite:
                _file(conn)  # PostgreSQL has no integrity_check (see the docstring)
            present = schema.tables(conn)
            for needed in ("events", "runs", "checkpoints", "contents"):
                if needed not in present:
                    raise LedgerTamperedError(
                        f"{schema.path_of(conn)}: table {needed} is missing (schema version "
                        f"{schema.version(conn)}): the ledger was altered")
            checked, head_seq, head_hash = _chain(conn, found)
            _rows(conn, found, present)
            _runs(conn, found)
            _contents(conn, found)
            _audit_objects(conn, found, present)
            count, signed = _checkpoints(conn, found, public)
            _tail(conn, found)
        finally:
            if own and conn.in_transaction:
                conn.execute("COMMIT")
            if lite:
                conn.execute(f"PRAGMA query_only = {query_only}")
    except sqlite3.DatabaseError as exc:
        raise schema.unreadable(schema.path_of(conn), exc, conn=conn) from exc
    problems = tuple(sorted(found.by_seq.items()))
    if not problems:
        sig = f", {signed} signatures valid" if public is not None else ""
        return VerifyResult(True, checked, None,
                            f"ledger OK: {checked} events, head {head_seq} {head_hash[:16]}…, "
                            f"{count} checkpoints{sig}", head_seq, head_hash, count, signed)
    return failed(problems, checked, head_seq, head_hash, count, signed)


def failed(problems: tuple[tuple[int, str], ...], checked: int, head_seq: int, head_hash: str,
           checkpoints: int, signatures: int) -> VerifyResult:
    """The result for ``problems`` (sorted ``(seq, message)``; seq 0: a row in no event)."""
    # A sequence number leads when there is one; rows in no event (seq 0) otherwise.
    lead, message = next(((s, m) for s, m in problems if s), problems[0])
    first = lead or None
    more = f" ({len(problems)} broken sequence numbers in all)" if len(problems) > 1 else ""
    where = f"first broken sequence number {lead}: " if lead else ""
    return VerifyResult(False, checked, first, f"ledger tampered: {where}{message}{more}",
                        head_seq, head_hash, checkpoints, signatures, problems)
