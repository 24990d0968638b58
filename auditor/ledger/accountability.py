"""Accountability for exceptions: who accepted a drift as authenticated, under which change
ticket, whether they were its own actor; management responses to exceptions; who ran
``adopt`` (schema step 9).

``--by`` is a name someone typed. Beside it each of these records carries an
:class:`Identity`: the name the API server authenticated (a ``SelfSubjectReview``), the
kubeconfig's user name when the server could not be asked (labelled not verified), or the
operating-system user when there is no kubeconfig at all. The CLI finds it; this module only
records it, so nothing below the CLI reads the environment.

The rows are the payloads of plain events (``schema.EVENT_ROWS``) and are written in the
same transaction as what they qualify (the ``accepted`` drift event, the adoption), so
``verify`` covers them as it covers adoptions. They are separate tables because the chained
columns of ``drift_events`` and ``adoptions`` cannot grow: every row recorded before would
then hash differently.

Segregation of duties: an acknowledgement by the drift's own actor (the field manager or the
authenticated user the audit log named, compared with both the acknowledger's identity and
``--by``) is refused with :class:`SelfAcknowledgementError` unless explicitly allowed; an
allowed one is recorded with ``self_ack`` set and reported as an exception.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from auditor.errors import LedgerError

from . import schema
from .schema import EVENT_ROWS

if TYPE_CHECKING:
    from .writer import Batch

ACKS = "acknowledgements"
RESPONSES = "responses"
ADOPTERS = "adoption_identities"
_ACK_COLUMNS = EVENT_ROWS[ACKS][0]
_RESPONSE_COLUMNS = EVENT_ROWS[RESPONSES][0]
_ADOPTER_COLUMNS = EVENT_ROWS[ADOPTERS][0]
# What a management response can answer: an exception's evidence row.
REF_KINDS = ("drift", "change")
# Where an identity came from (``identity_source``), strongest first.
VERIFIED = "kubernetes SelfSubjectReview"
KUBECONFIG = "kubeconfig user (not verified)"
OS_USER = "os user (no kubeconfig)"


class AckRefusedError(LedgerError):
    """An acknowledgement that policy refuses: no ticket or a malformed one."""


class SelfAcknowledgementError(AckRefusedError):
    """The acknowledger is the drift's own actor (segregation of duties)."""


@dataclass(frozen=True, slots=True)
class Identity:
    """Who is at the keyboard, as far as the tool can tell, and how it knows."""

    name: str
    source: str  # VERIFIED | KUBECONFIG | OS_USER (or another one-line label)

    def __str__(self) -> str:
        return f"{self.name} ({self.source})" if self.name else f"unknown ({self.source})"


UNKNOWN = Identity("", "unknown")


@dataclass(frozen=True, slots=True)
class AckPolicy:
    """What an acknowledgement must carry: a ticket matching ``ticket_pattern`` (a regular
    expression matched against the whole ticket; '' = optional) and, unless
    ``allow_self``, an acknowledger other than the drift's actor."""

    ticket_pattern: str = ""
    allow_self: bool = False


def check_ticket(ticket: str, pattern: str) -> str:
    """``ticket`` stripped, or :class:`AckRefusedError` when ``pattern`` requires one it
    does not match. The whole ticket must match: ``OPS-1 and anything`` is not ``OPS-\\d+``."""
    ticket = ticket.strip()
    if not pattern:
        return ticket
    if not ticket:
        raise AckRefusedError(f"ledger.ack-ticket-pattern is set ({pattern}): an "
                              "acknowledgement needs --ticket REF matching it")
    try:
        matched = re.fullmatch(pattern, ticket) is not None
    except re.error as exc:  # the configuration checks it; a library caller may not
        raise AckRefusedError(f"ledger.ack-ticket-pattern {pattern!r}: not a valid regular "
                              f"expression ({exc})") from None
    if not matched:
        raise AckRefusedError(f"--ticket {ticket!r} does not match ledger.ack-ticket-pattern "
                              f"({pattern})")
    return ticket


def drift_actors(conn: sqlite3.Connection, drift_id: int) -> list[str]:
    """Who made drift ``drift_id``: its field manager, the managers and authenticated users
    of its items, and the users the audit log named for the changes of the run that opened
    it (sorted, distinct, empty names left out)."""
    row = conn.execute("SELECT manager, items, run_id, object_id FROM drifts WHERE id = ?",
                       (drift_id,)).fetchone()
    if row is None:
        return []
    manager, items, run_id, object_id = row
    names = {str(manager or "")}
    try:
        parsed = orjson.loads(items or "[]")
    except orjson.JSONDecodeError:
        parsed = []
    for item in parsed if isinstance(parsed, list) else []:
        if isinstance(item, dict):
            names.update(str(item.get(k) or "") for k in ("manager", "user"))
    names.update(str(r[0]) for r in conn.execute(
        "SELECT DISTINCT user FROM changes WHERE object_id = ? AND run_id = ? "
        "AND coalesce(user, '') != ''", (object_id, run_id)))
    return sorted(n for n in names if n)


def _norm(name: str) -> str:
    return name.strip().casefold()


def same_person(names: Iterable[str], actors: Iterable[str]) -> list[str]:
    """The ``actors`` that one of ``names`` is (case and surrounding spaces ignored)."""
    wanted = {_norm(n) for n in names if n and n.strip()}
    return [a for a in actors if _norm(a) in wanted]


def stage_ack(conn: sqlite3.Connection, batch: Batch, *, drift_event_id: int, drift_id: int,
              at: str, by: str, identity: Identity, ticket: str, policy: AckPolicy) -> bool:
    """Check ``policy`` for the acknowledgement of ``drift_id`` and stage its row (beside the
    ``accepted`` drift event ``drift_event_id``, in the same batch); whether it is
    self-acknowledged. Raises :class:`AckRefusedError` before anything is staged."""
    ticket = check_ticket(ticket, policy.ticket_pattern)
    actors = drift_actors(conn, drift_id)
    self_ack = same_person((identity.name, by), actors)
    if self_ack and not policy.allow_self:
        who = ", ".join(self_ack)
        raise SelfAcknowledgementError(
            f"drift {drift_id} was made by {who}: its actor cannot acknowledge it "
            f"(--by {by!r}, identity {identity}); another person must, or pass --allow-self "
            "to record a self-acknowledged exception")
    new_id = _next_id(conn, batch, ACKS)
    row: dict[str, Any] = {
        "id": new_id, "at": at, "drift_event_id": drift_event_id, "drift_id": drift_id,
        "by": by, "identity": identity.name, "identity_source": identity.source,
        "ticket": ticket, "self_ack": int(bool(self_ack)),
        "actors": orjson.dumps(actors).decode()}
    _stage(batch, ACKS, _ACK_COLUMNS, "acknowledgement", row, at)
    return bool(self_ack)


def stage_adopter(conn: sqlite3.Connection, batch: Batch, *, adoption_id: int, at: str,
                  by: str, identity: Identity) -> None:
    """Stage who ran the adoption ``adoption_id``, as authenticated."""
    row: dict[str, Any] = {"id": _next_id(conn, batch, ADOPTERS), "at": at,
                           "adoption_id": adoption_id, "by": by, "identity": identity.name,
                           "identity_source": identity.source}
    _stage(batch, ADOPTERS, _ADOPTER_COLUMNS, "adoption_identity", row, at)


def parse_ref(text: str) -> tuple[str, int]:
    """``drift:12`` or ``change:34`` as ``(kind, id)``; :class:`LedgerError` otherwise."""
    kind, sep, number = text.strip().partition(":")
    kind = kind.strip().lower()
    if not sep or kind not in REF_KINDS or not number.strip().isdigit():
        raise LedgerError(f"{text!r}: an exception is named drift:ID or change:ID "
                          "(e.g. drift:12, change:34)")
    return kind, int(number)


def stage_response(conn: sqlite3.Connection, batch: Batch, ref: str, *, by: str, text: str,
                   identity: Identity, at: str) -> int:
    """Check and stage a management response to the exception ``ref`` (``drift:12``,
    ``change:34``); its id. The caller checkpoints and writes the batch (one transaction)."""
    if not by.strip() or not text.strip():
        raise LedgerError("a management response needs who (--by) and what (--text)")
    kind, ref_id = parse_ref(ref)
    table = "drifts" if kind == "drift" else "changes"
    if conn.execute(f"SELECT 1 FROM {table} WHERE id = ?", (ref_id,)).fetchone() is None:
        raise LedgerError(f"{kind}:{ref_id}: no such {kind} in the ledger")
    row: dict[str, Any] = {"id": _next_id(conn, batch, RESPONSES), "at": at,
                           "ref_kind": kind, "ref_id": ref_id, "by": by.strip(),
                           "identity": identity.name, "identity_source": identity.source,
                           "text": text.strip()}
    _stage(batch, RESPONSES, _RESPONSE_COLUMNS, "response", row, at)
    return int(row["id"])


def _next_id(conn: sqlite3.Connection, batch: Batch, table: str) -> int:
    # The writer holds the lock; rows of this batch not yet written count too.
    staged = sum(1 for sql in batch.sql if sql.startswith(f"INSERT INTO {table} ")
                 for _ in batch.sql[sql])
    return int(conn.execute(f"SELECT coalesce(max(id), 0) FROM {table}").fetchone()[0]) \
        + staged + 1


def _stage(batch: Batch, table: str, columns: tuple[str, ...], etype: str,
           row: dict[str, Any], at: str) -> None:
    event = batch.event(etype, at, None, row)
    batch.plain(f"INSERT INTO {table} (seq, {', '.join(columns)}) "
                f"VALUES (?, {', '.join('?' * len(columns))})",
                (event.seq, *(row[c] for c in columns)))


# ------------------------------------------------------------------------------- reading


@dataclass(frozen=True, slots=True)
class AckRecord:
    """An acknowledgement's accountability, keyed by its ``accepted`` drift event."""

    drift_event_id: int
    by: str
    identity: str
    identity_source: str
    ticket: str
    self_ack: bool
    actors: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ResponseRecord:
    id: int
    at: str
    ref_kind: str
    ref_id: int
    by: str
    identity: str
    identity_source: str
    text: str


def acknowledgements(conn: sqlite3.Connection) -> dict[int, AckRecord]:
    """Every acknowledgement's record by drift event id (empty before schema step 9)."""
    if ACKS not in schema.tables(conn):
        return {}
    out = {}
    for eid, by, ident, source, ticket, self_ack, actors in conn.execute(
            f"SELECT drift_event_id, by, identity, identity_source, ticket, self_ack, actors "
            f"FROM {ACKS} ORDER BY id"):
        out[int(eid)] = AckRecord(int(eid), by or "", ident or "", source or "", ticket or "",
                                  bool(self_ack), tuple(orjson.loads(actors or "[]")))
    return out


def responses(conn: sqlite3.Connection, end: str | None = None) -> list[ResponseRecord]:
    """Management responses recorded before ``end`` (all without), oldest first (empty
    before schema step 9): a response written after the period is not in its report."""
    if RESPONSES not in schema.tables(conn):
        return []
    where, args = ("WHERE at < ? ", (end,)) if end else ("", ())
    return [ResponseRecord(int(r[0]), r[1], r[2], int(r[3]), r[4] or "", r[5] or "",
                           r[6] or "", r[7] or "")
            for r in conn.execute(
                f"SELECT id, at, ref_kind, ref_id, by, identity, identity_source, text "
                f"FROM {RESPONSES} {where}ORDER BY id", args)]


def adopters(conn: sqlite3.Connection) -> dict[int, Identity]:
    """Who ran each adoption, as authenticated, by adoption id (empty before step 9)."""
    if ADOPTERS not in schema.tables(conn):
        return {}
    return {int(aid): Identity(ident or "", source or "") for aid, ident, source in
            conn.execute(f"SELECT adoption_id, identity, identity_source FROM {ADOPTERS}")}
