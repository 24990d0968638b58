"""API-server audit events as a change source: every successful write the API server
logged, recorded once, chained, with Secret values redacted — the population an auditor
checks the ledger's changes against (:mod:`.completeness`).

What is kept (``audit.k8s.io/v1`` ``Event``, staging/src/k8s.io/apiserver/pkg/apis/audit/v1/
types.go): events at stage ``ResponseComplete`` of the verbs ``create``, ``update``,
``patch``, ``delete`` and ``deletecollection`` on a resource (``objectRef.resource``),
answered 2xx, that were not a dry run (``dryRun`` in the request URI), with an ``auditID``.
Events read from a log file carry ``kind: Event`` and ``apiVersion: audit.k8s.io/v1``; the
items of a webhook's ``EventList`` may carry neither, and an ``EventList`` itself is taken
apart. Anything else (another kind or apiVersion, no timestamp) is ignored.

Each kept event becomes one ``audit_events`` row, idempotent by ``auditID``: the same
request delivered by the log file and by the webhook is recorded once (under the source that
delivered it first). Recorded per event: the authenticated user and groups, the impersonated
user and groups, the user agent and the field manager the API server derives from them
(:func:`.auditlog.manager_of`), the source IPs, the verb, ``objectRef`` (group, version,
resource, subresource, namespace, name, uid; a create's name and uid from its response
object when ``objectRef`` lacks them), the object's kind (from the request or response
object, or the ``kinds`` the caller knows from discovery), the resourceVersion the write
produced (response object), the response code, ``requestReceivedTimestamp`` and
``stageTimestamp`` (kept to the microsecond as ``YYYY-MM-DDTHH:MM:SS.ffffffZ``, so string
order is time order), the level and the request URI — its path and only the query parameters
that say how the write was made (``fieldManager``, ``dryRun``, ``force``,
``propagationPolicy`` …): a query string can carry anything (a command line of
``pods/exec``).

The request and response objects (``Request``/``RequestResponse`` levels) are stored beside
the row as canonical JSON after :func:`.redact.audit_object` (no Secret ``data`` or
``stringData`` value, no last-applied annotation of a Secret, in whole objects, lists and
patches alike), and chained by the SHA-256 of exactly that text, as object content is:
``verify`` hashes them again. Nothing derived from a raw Secret value — not even a hash —
is ever stored.

**Deliveries.** Every call also records what the source delivered, in ``audit_deliveries``
(chained): per stretch of events without a silence longer than :data:`SILENCE_SECONDS`, how
many events it held (any verb and stage: reads evidence a live stream as much as writes),
how many were newly recorded and the first and last event times. A call with no event is a
heartbeat (the source is alive and had nothing new), recorded at most every
:data:`HEARTBEAT_SECONDS` per source. :mod:`.completeness` finds the gaps of the audit stream
from these rows without reading the events.

**Positions.** A tailed source's resume point (``audit_positions``, opaque to the ledger,
e.g. the file's inode and offset) is written in the transaction of the call's last events:
a tailer killed at any moment resumes after what was committed; events committed in an
earlier chunk of the same call are delivered again and recorded nothing twice (auditID).
Like the watch positions (:mod:`.watch`) the table is not chained: a cursor, not evidence —
moved back it replays events already held, moved forward it skips events, which then show
as a silence of the stream and as ledger changes no audit event accounts for.

Long deliveries are committed in chunks of :data:`CHUNK` events, each with a checkpoint, so
memory stays bounded whatever the caller passes.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit

from auditor.errors import LedgerError

from . import chain, redact, schema, times
from .auditlog import manager_of
from .schema import EVENT_ROWS


class Ledger(Protocol):
    """What recording needs of :class:`.store.Ledger` (kept structural: the store
    imports this module)."""

    conn: sqlite3.Connection

    def _batch(self) -> Any: ...
    def _checkpoint(self, batch: Any, run_id: int | None, at: str) -> Any: ...
    def _write(self, batch: Any) -> Any: ...

TABLE = "audit_events"
EVENT = "audit_event"
DELIVERIES = "audit_deliveries"
DELIVERY = "audit_delivery"
_COLUMNS = EVENT_ROWS[TABLE][0]
_DELIVERY_COLUMNS = EVENT_ROWS[DELIVERIES][0]
API_VERSION = "audit.k8s.io/v1"
# The verbs of a write (staging/src/k8s.io/apiserver/pkg/endpoints/request/requestinfo.go):
# server-side apply is a ``patch``.
WRITE_VERBS = ("create", "update", "patch", "delete", "deletecollection")
# Writes whose request or response object is a credential: TokenReview (the token to check),
# TokenRequest (``serviceaccounts/token``: the token issued).
_CREDENTIAL_RESOURCES = {("authentication.k8s.io", "tokenreviews")}
_CREDENTIAL_SUBRESOURCES = {("", "serviceaccounts", "token")}
# A silence longer than this splits a delivery into two stretches (their gap is then visible
# to :mod:`.completeness`); reports use a threshold at least this long.
SILENCE_SECONDS = 60.0
HEARTBEAT_SECONDS = 60.0
CHUNK = 2000
# Query parameters of a write that say how it was made; nothing else of the query is kept.
SAFE_PARAMS = frozenset({"fieldManager", "fieldValidation", "dryRun", "force",
                         "propagationPolicy", "gracePeriodSeconds", "orphanDependents",
                         "resourceVersion"})
_MAX_IDS = 900

_INSERT_EVENT = (f"INSERT INTO {TABLE} (seq, {', '.join(_COLUMNS)}, request_object, "
                 f"response_object) VALUES (?, {', '.join('?' * len(_COLUMNS))}, ?, ?)")
_INSERT_DELIVERY = (f"INSERT INTO {DELIVERIES} (seq, {', '.join(_DELIVERY_COLUMNS)}) "
                    f"VALUES (?, {', '.join('?' * len(_DELIVERY_COLUMNS))})")
_UPSERT_POSITION = ("INSERT INTO audit_positions (source, position, updated_at) VALUES (?, ?, ?) "
                    "ON CONFLICT(source) DO UPDATE SET position = excluded.position, "
                    "updated_at = excluded.updated_at")


def moment(text: object) -> datetime | None:
    """An RFC 3339 timestamp (``Z`` or an offset, any fraction) as a UTC datetime."""
    if not isinstance(text, str) or not text.strip():
        return None
    value = text.strip().replace("Z", "+00:00").replace("z", "+00:00")
    if "." in value:
        head, _, rest = value.partition(".")
        # The fraction is the digits up to the zone: an offset's digits are no part of it.
        zone = rest.lstrip("0123456789")
        digits = rest[:len(rest) - len(zone)]
        # Nanoseconds (a MicroTime printed by another client) kept to the microsecond.
        value = f"{head}.{(digits + '000000')[:6]}{zone}"
    try:
        found = datetime.fromisoformat(value)
    except ValueError:
        return None
    return (found if found.tzinfo else found.replace(tzinfo=UTC)).astimezone(UTC)


def micro(value: datetime) -> str:
    """The ledger's form of an audit timestamp: UTC, microseconds, ``Z``."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def micro_bound(stamp: str) -> str:
    """A ledger timestamp (``…:SSZ``) in the audit events' form, for comparing with them."""
    return stamp[:-1] + ".000000Z" if stamp.endswith("Z") and "." not in stamp else stamp


def _clean_uri(uri: str) -> str:
    parts = urlsplit(uri)
    kept = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
            if k in SAFE_PARAMS]
    return parts.path + (f"?{urlencode(kept)}" if kept else "")


def _dry_run(uri: str) -> bool:
    query = urlsplit(uri).query
    return bool(query) and any(k == "dryRun" for k, _ in parse_qsl(query,
                                                                    keep_blank_values=True))


def _items(events: Iterable[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
    for item in events:
        if not isinstance(item, Mapping):
            continue
        if item.get("kind") == "EventList":
            if item.get("apiVersion", API_VERSION) == API_VERSION:
                yield from (i for i in item.get("items") or () if isinstance(i, Mapping))
            continue
        yield item


def _is_audit_event(event: Mapping[str, Any]) -> bool:
    return event.get("kind", "Event") == "Event" \
        and event.get("apiVersion", API_VERSION) == API_VERSION


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def _strings(value: object) -> str:
    return chain.canonical([str(v) for v in value] if isinstance(value, list) else []).decode()


_NOT_OBJECT_KINDS = frozenset({"Status", "DeleteOptions", "Scale", "Patch", "Eviction"})


def _kind_of(obj: object) -> str:
    if not isinstance(obj, Mapping):
        return ""
    kind = _str(obj.get("kind"))
    if not kind or kind in _NOT_OBJECT_KINDS or kind.endswith("List"):
        return ""
    return kind


def _meta(obj: object) -> Mapping[str, Any]:
    if isinstance(obj, Mapping) and isinstance(obj.get("metadata"), Mapping):
        meta: Mapping[str, Any] = obj["metadata"]
        return meta
    return {}


def _stored(obj: object, secret: bool) -> tuple[str | None, str]:
    """The object as stored (redacted canonical JSON) and the SHA-256 of exactly that text."""
    if obj is None:
        return None, ""
    text = chain.canonical(redact.audit_object(obj, secret=secret)).decode()
    return text, hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class _Write:
    row: dict[str, Any]
    request: str | None
    response: str | None
    at: datetime


def _write(event: Mapping[str, Any], source: str, recorded_at: str,
           kinds: Mapping[tuple[str, str], str]) -> _Write | None:
    """The row of a kept event (see the module docstring), else ``None``."""
    if event.get("stage") != "ResponseComplete" or event.get("verb") not in WRITE_VERBS:
        return None
    audit_id = _str(event.get("auditID"))
    ref = event.get("objectRef")
    status = event.get("responseStatus")
    code = status.get("code") if isinstance(status, Mapping) else None
    if not audit_id or not isinstance(ref, Mapping) or not _str(ref.get("resource")) \
            or not isinstance(code, int) or isinstance(code, bool) or not 200 <= code < 300:
        return None
    uri = _str(event.get("requestURI"))
    if _dry_run(uri):
        return None  # a dry run changes nothing
    stage_at = moment(event.get("stageTimestamp"))
    if stage_at is None:
        return None
    received = moment(event.get("requestReceivedTimestamp")) or stage_at
    group, resource = _str(ref.get("apiGroup")), _str(ref.get("resource"))
    subresource = _str(ref.get("subresource"))
    secret = group == "" and resource == "secrets"
    request, response = event.get("requestObject"), event.get("responseObject")
    if (group, resource) in _CREDENTIAL_RESOURCES or (group, resource, subresource) in \
            _CREDENTIAL_SUBRESOURCES:
        # Their bodies are credentials themselves (a bearer token under review, a token
        # issued): the write is kept, its objects never are, at whatever level logged.
        request = response = None
    meta = _meta(response)
    kind = kinds.get((group, resource), "")
    if not kind and not subresource:
        kind = _kind_of(response) or _kind_of(request)
    user: Mapping[str, Any] = event["user"] if isinstance(event.get("user"), Mapping) else {}
    imp: Mapping[str, Any] = (event["impersonatedUser"]
                              if isinstance(event.get("impersonatedUser"), Mapping) else {})
    agent = _str(event.get("userAgent"))
    request_text, request_hash = _stored(request, secret)
    response_text, response_hash = _stored(response, secret)
    row = {
        "audit_id": audit_id, "source": source, "recorded_at": recorded_at,
        "level": _str(event.get("level")), "stage": "ResponseComplete",
        "verb": str(event.get("verb")), "request_uri": _clean_uri(uri),
        "user": _str(user.get("username")), "groups": _strings(user.get("groups")),
        "impersonated_user": _str(imp.get("username")),
        "impersonated_groups": _strings(imp.get("groups")) if imp else "[]",
        "user_agent": agent, "manager": manager_of(uri, agent),
        "source_ips": _strings(event.get("sourceIPs")), "grp": group,
        "version": _str(ref.get("apiVersion")), "resource": resource,
        "subresource": subresource, "namespace": _str(ref.get("namespace")),
        # A create names its object only in the response (generateName, or Metadata level).
        "name": _str(ref.get("name")) or (_str(meta.get("name")) if not subresource else ""),
        "uid": _str(ref.get("uid")) or (_str(meta.get("uid")) if not subresource else ""),
        "kind": kind,
        "resource_version": (_str(meta.get("resourceVersion")) if not subresource else "")
        or _str(ref.get("resourceVersion")),
        "code": code, "received_at": micro(received), "stage_at": micro(stage_at),
        "request_hash": request_hash, "response_hash": response_hash}
    return _Write(row, request_text, response_text, stage_at)


def _stretches(times_: list[tuple[datetime, bool]]) -> list[tuple[datetime, datetime, int, int]]:
    """``(first, last, events, recorded)`` per stretch without a silence over the limit."""
    out: list[tuple[datetime, datetime, int, int]] = []
    for at, new in sorted(times_, key=lambda t: t[0]):
        if out and (at - out[-1][1]).total_seconds() <= SILENCE_SECONDS:
            first, _, events, recorded = out[-1]
            out[-1] = (first, at, events + 1, recorded + int(new))
        else:
            out.append((at, at, 1, int(new)))
    return out


def _next_id(conn: sqlite3.Connection, table: str) -> int:
    return int(conn.execute(f"SELECT coalesce(max(id), 0) FROM {table}").fetchone()[0]) + 1


def _known(conn: sqlite3.Connection, ids: list[str]) -> set[str]:
    found: set[str] = set()
    for i in range(0, len(ids), _MAX_IDS):
        some = ids[i:i + _MAX_IDS]
        found.update(str(r[0]) for r in conn.execute(
            f"SELECT audit_id FROM {TABLE} WHERE audit_id IN ({','.join('?' * len(some))})",
            some))
    return found


class _Recorder:
    """One call's chunks: rows staged, then written with their deliveries and a checkpoint."""

    def __init__(self, ledger: Ledger, source: str, at: datetime | None) -> None:
        self.ledger = ledger
        self.conn = ledger.conn
        self.source = source
        self.moment = at
        self.event_id = _next_id(self.conn, TABLE)
        self.delivery_id = _next_id(self.conn, DELIVERIES)
        self.new = 0
        self.writes: dict[str, _Write] = {}
        self.times: list[tuple[datetime, str]] = []  # (event time, auditID of a write or '')
        self.seen = 0

    def stamp(self) -> str:
        return times.stamp(self.moment or times.now())

    def add(self, event: Mapping[str, Any], kinds: Mapping[tuple[str, str], str]) -> None:
        if not _is_audit_event(event):
            return
        write = _write(event, self.source, self.stamp(), kinds)
        when = write.at if write is not None else (
            moment(event.get("stageTimestamp")) or moment(event.get("requestReceivedTimestamp")))
        if when is None:
            return
        self.seen += 1
        audit_id = ""
        if write is not None and write.row["audit_id"] not in self.writes:
            audit_id = write.row["audit_id"]
            self.writes[audit_id] = write
        self.times.append((when, audit_id))

    def flush(self, position: str | None, last: bool) -> None:
        ledger = self.ledger
        stamp = self.stamp()
        batch = ledger._batch()
        known = _known(self.conn, list(self.writes))
        fresh = {a: w for a, w in self.writes.items() if a not in known}
        for write in sorted(fresh.values(), key=lambda w: (w.row["stage_at"],
                                                            w.row["audit_id"])):
            row = {"id": self.event_id, **write.row, "recorded_at": stamp}
            self.event_id += 1
            event = batch.event(EVENT, stamp, None, row)
            batch.plain(_INSERT_EVENT, (event.seq, *(row[c] for c in _COLUMNS), write.request,
                                        write.response))
        stretches = _stretches([(at, bool(a) and a in fresh) for at, a in self.times])
        if not stretches and last and self._heartbeat_due(stamp):
            stretches_rows: list[tuple[str | None, str | None, int, int]] = [(None, None, 0, 0)]
        else:
            stretches_rows = [(micro(a), micro(b), n, r) for a, b, n, r in stretches]
        for first, last_at, count, recorded in stretches_rows:
            row = {"id": self.delivery_id, "source": self.source, "at": stamp, "events": count,
                   "recorded": recorded, "first_at": first, "last_at": last_at}
            self.delivery_id += 1
            event = batch.event(DELIVERY, stamp, None, row)
            batch.plain(_INSERT_DELIVERY, (event.seq, *(row[c] for c in _DELIVERY_COLUMNS)))
        if batch.events:
            # Every write outside a run ends with a checkpoint (see :mod:`.verify`).
            ledger._checkpoint(batch, None, stamp)
        if last and position is not None:
            batch.plain(_UPSERT_POSITION, (self.source, position, stamp))
        ledger._write(batch)
        self.new += len(fresh)
        self.writes.clear()
        self.times.clear()

    def _heartbeat_due(self, stamp: str) -> bool:
        row = self.conn.execute(f"SELECT at FROM {DELIVERIES} WHERE source = ? "
                                "ORDER BY id DESC LIMIT 1", (self.source,)).fetchone()
        if row is None or not row[0]:
            return True
        then = moment(row[0])
        now = moment(stamp)
        return then is None or now is None or (now - then).total_seconds() >= HEARTBEAT_SECONDS


def record(ledger: Ledger, events: Iterable[Mapping[str, Any]], *, source: str,
           position: str | None = None, kinds: Mapping[tuple[str, str], str] | None = None,
           at: datetime | None = None) -> int:
    """:meth:`.store.Ledger.record_audit_events`: the events of one delivery; how many of
    them were new. ``at`` is the recording time (default now)."""
    if not source or not source.strip():
        raise LedgerError("audit events need the name of their source (file:…, webhook)")
    names = dict(kinds or {})
    recorder = _Recorder(ledger, source, at)
    for event in _items(events):
        recorder.add(event, names)
        if len(recorder.times) >= CHUNK:
            recorder.flush(position, last=False)
    recorder.flush(position, last=True)
    return recorder.new


def position(conn: sqlite3.Connection, source: str) -> str | None:
    """The resume point recorded with ``source``'s last events (``None``: none)."""
    if "audit_positions" not in schema.tables(conn):
        return None
    row = conn.execute("SELECT position FROM audit_positions WHERE source = ?",
                       (source,)).fetchone()
    return None if row is None else str(row[0])
