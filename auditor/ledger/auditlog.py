"""Who made a change, from a Kubernetes API-server audit log.

``managedFields`` name the *client* (``kubectl-edit``, or whatever ``--field-manager`` a
person typed) and a time to the second; the audit log (JSON lines of ``audit.k8s.io/v1``
``Event``, staging/src/k8s.io/apiserver/pkg/apis/audit/v1/types.go) names the *user* the API
server authenticated. Only ``ResponseComplete`` events of successful, mutating, non-dry-run
requests on a named object count.

A managedFields entry is joined to the request that wrote it (:meth:`AuditLog.user_of`): the
same object (API group, namespace, name, resource, subresource), a verb its operation can
come from (``Apply`` is a PATCH, verb ``patch``; ``Update`` a create, update or patch), the
same field manager — the request's ``fieldManager`` query parameter, or, without one, the
prefix of its User-Agent before the first ``/``, as the API server derives it
(``managerOrUserAgent`` in staging/src/k8s.io/apiserver/pkg/endpoints/handlers/create.go) —
and a time: the API server stamps the entry with ``time.Now()`` while it handles the request
(staging/src/k8s.io/apimachinery/pkg/util/managedfields/internal/managedfieldsupdater.go),
so the entry's second lies between the request's ``requestReceivedTimestamp`` and its
``stageTimestamp``. Of several such requests (one manager writing twice in a second) the
last to complete wins: its write set the time.

The user is the *authenticated* one (``user.username``): with impersonation
(``kubectl --as``) that is the person who asked, not the account they acted as, which is what
tells a GitOps controller from someone borrowing its name. :meth:`AuditLog.user_for` is the
looser join the ledger falls back to for a change the pipeline did not attribute (nearest
request on the object within a window, the same manager when both are known).
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import orjson

from auditor.engine.managers import IdentityLookup
from auditor.engine.records import ResourceKey
from auditor.errors import LedgerError

MUTATING = frozenset({"create", "update", "patch", "delete", "deletecollection", "apply"})
# The verbs a managedFields operation can come from (an apply is a PATCH request).
_VERBS_OF: dict[str, frozenset[str]] = {
    "Apply": frozenset({"patch", "apply"}),
    "Update": frozenset({"create", "update", "patch"}),
}
# Where a change's user came from (the ledger's ``changes.user_source``).
SOURCE = "audit-log"
# A change written under a GitOps manager's name by a user who is not a GitOps identity.
SPOOFED_SOURCE = "audit-log/spoofed-manager"
# What a run's actors are (its ``counts["actors"]``, read by the run summary and the
# report): users the API server authenticated, or the names clients declared.
ACTORS_AUDITED = "audit-log"
ACTORS_DECLARED = "field-managers"
# Slack allowed between an entry's second and the request's timestamps (sub-second rounding
# of either): the exact containment still wins over a neighbour within the slack.
_SLACK = 1.0
# The longest a mutating request runs (kube-apiserver's default --request-timeout is 60 s).
_LONGEST_REQUEST = 60.0


def is_spoofed(user_source: str | None) -> bool:
    """Whether a change's ``user_source`` marks its manager name as spoofed."""
    return user_source == SPOOFED_SOURCE


def identity_source(user_source: str | None) -> str:
    """Where the user came from, without the spoofed mark (``audit-log``)."""
    return SOURCE if user_source == SPOOFED_SOURCE else (user_source or "")


@dataclass(frozen=True, slots=True)
class AuditEntry:
    at: float  # epoch seconds of the response (stageTimestamp)
    verb: str
    resource: str
    username: str  # the authenticated user
    user_agent: str
    received: float = 0.0  # requestReceivedTimestamp (``at`` when absent)
    subresource: str = ""
    manager: str = ""  # the field manager the API server recorded for this request
    impersonated: str = ""


def parse_time(value: str) -> float | None:
    """Epoch seconds of an RFC 3339 timestamp (``Z`` or an offset, any fraction)."""
    if not value:
        return None
    text = value.strip().replace("Z", "+00:00")
    if "." in text:
        # Python < 3.11-style parsers choke on 9-digit fractions; keep microseconds.
        head, _, rest = text.partition(".")
        digits = "".join(c for c in rest if c.isdigit())
        zone = rest[len(digits):]
        text = f"{head}.{(digits + '000000')[:6]}{zone}"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def plural(kind: str) -> str:
    """The usual resource name of a kind (``Ingress`` → ``ingresses``, ``Policy`` → ``policies``)."""
    low = kind.lower()
    if low.endswith(("s", "x", "z", "ch", "sh")):
        return low + "es"
    if low.endswith("y") and low[-2:-1] not in ("a", "e", "i", "o", "u"):
        return low[:-1] + "ies"
    return low + "s"


def manager_of(request_uri: str, user_agent: str) -> str:
    """The field manager the API server records for a request: its ``fieldManager`` query
    parameter, else the User-Agent up to the first ``/`` (non-printable characters dropped,
    at most 128 characters, as ``prefixFromUserAgent`` does)."""
    query = urlsplit(request_uri).query if request_uri else ""
    if query:
        given = parse_qs(query).get("fieldManager")
        if given and given[0]:
            return given[0]
    prefix = "".join(c for c in user_agent.split("/", 1)[0] if c.isprintable())
    return prefix[:128]


def _dry_run(request_uri: str) -> bool:
    query = urlsplit(request_uri).query if request_uri else ""
    return bool(query) and bool(parse_qs(query).get("dryRun"))


@dataclass
class AuditLog:
    """Mutating requests indexed by object, sorted by time."""

    entries: dict[tuple[str, str, str], list[AuditEntry]] = field(default_factory=dict)
    skipped_lines: int = 0
    source: str = ""
    # The newest response time in the log (epoch seconds; 0: no event): a write after it may
    # simply not have reached this copy of the log yet.
    last_at: float = 0.0

    @classmethod
    def load(cls, path: str | Path) -> AuditLog:
        try:
            raw = Path(path).read_bytes()
        except OSError as exc:
            raise LedgerError(f"--audit-log {path}: cannot read: {exc.strerror}") from None
        return cls.parse(raw.splitlines(), source=str(path))

    @classmethod
    def parse(cls, lines: list[bytes] | list[str], source: str = "") -> AuditLog:
        index: dict[tuple[str, str, str], list[AuditEntry]] = defaultdict(list)
        skipped = 0
        # How far the log reaches: every event counts (reads too: the auditor's own lists are
        # in it). The API server writes MicroTime stamps (fixed width, UTC), so the greatest
        # text is the latest time: parsed once, at the end.
        last = ""
        for line in lines:
            if not line.strip():
                continue
            try:
                event = orjson.loads(line)
            except orjson.JSONDecodeError:
                skipped += 1
                continue
            if isinstance(event, dict):
                stage = event.get("stageTimestamp")
                if isinstance(stage, str) and stage > last:
                    last = stage
            entry_key, entry = _entry(event)
            if entry is None or entry_key is None:
                continue
            index[entry_key].append(entry)
        for events in index.values():
            events.sort(key=lambda e: e.at)
        return cls(dict(index), skipped, source, parse_time(last) or 0.0)

    def user_of(self, key: ResourceKey, manager: str, operation: str, time: str,
                subresource: str = "", resource: str = "") -> str | None:
        """The authenticated user of the request that wrote a managedFields entry of ``key``
        (its ``manager``, ``operation``, ``time`` and ``subresource``), or ``None`` when the
        log holds no such request. ``resource`` is the kind's resource name from discovery
        (default: :func:`plural` of the kind)."""
        found = self._match(key, time, manager, operation, subresource, resource, _SLACK,
                            strict=True)
        return found.username if found is not None else None

    def covers(self, time: str) -> bool:
        """Whether the log reaches past ``time`` (a managedFields time): a write at that time
        would be in it if the API server logged it."""
        at = parse_time(time)
        return at is not None and at + 1.0 <= self.last_at

    def lookup(self, plurals: Mapping[tuple[str, str], str] | None = None) -> IdentityLookup:
        """:meth:`user_of` as the comparison's identity lookup; ``plurals`` maps ``(group,
        kind)`` to the resource name discovery gave."""
        names = dict(plurals or {})

        def find(key: ResourceKey, manager: str, operation: str, time: str,
                 subresource: str) -> str | None:
            return self.user_of(key, manager, operation, time, subresource,
                                names.get((key.group, key.kind), ""))

        return find

    def user_for(self, key: ResourceKey, time: str, manager: str = "",
                 window_seconds: float = 5.0) -> str | None:
        """The user of the mutating request on ``key`` nearest to ``time`` (managedFields
        time, whole seconds) within the window, of the same field manager when ``manager``
        is given; ``None`` when there is none."""
        found = self._match(key, time, manager, "", "", "", window_seconds, strict=False)
        return found.username if found is not None else None

    def _match(self, key: ResourceKey, time: str, manager: str, operation: str,
               subresource: str, resource: str, window: float, *,
               strict: bool) -> AuditEntry | None:
        events = self.entries.get((key.group, key.namespace, key.name))
        at = parse_time(time)
        if not events or at is None:
            return None
        resource = resource or plural(key.kind)
        verbs = _VERBS_OF.get(operation) if operation else None
        times = [e.at for e in events]
        # Responses from the entry's second (less the window) on; requests received after the
        # entry's second (plus the window) cannot have written it.
        lo = bisect.bisect_left(times, at - window)
        best: tuple[tuple[int, float, float], AuditEntry] | None = None
        for event in events[lo:]:
            if event.at > at + 1.0 + window + _LONGEST_REQUEST:
                break  # sorted by response time: no later one began in time
            if event.received > at + 1.0 + window:
                continue
            if event.resource and event.resource != resource:
                continue
            if verbs is not None and event.verb not in verbs:
                continue
            if manager and event.manager and event.manager != manager:
                continue
            if strict and (event.subresource != subresource or not event.manager):
                continue
            # The entry's time is truncated to the second: a request that began before the
            # end of that second and ended after its start contains it.
            inside = event.received < at + 1.0 and event.at >= at
            distance = 0.0 if inside else min(abs(event.received - at - 1.0),
                                              abs(event.at - at))
            if distance > window:
                continue
            rank = (0 if inside else 1, distance, -event.at)
            if best is None or rank < best[0]:
                best = (rank, event)
        return best[1] if best is not None else None


def _entry(event: object) -> tuple[tuple[str, str, str] | None, AuditEntry | None]:
    if not isinstance(event, dict) or event.get("kind") != "Event":
        return None, None
    if event.get("stage", "ResponseComplete") != "ResponseComplete":
        return None, None
    verb = str(event.get("verb") or "")
    if verb not in MUTATING:
        return None, None
    code = ((event.get("responseStatus") or {}).get("code")) or 200
    if not isinstance(code, int) or code >= 400:
        return None, None
    uri = str(event.get("requestURI") or "")
    if _dry_run(uri):
        return None, None  # a dry run changes nothing
    ref = event.get("objectRef") or {}
    name = ref.get("name")
    if not name:
        return None, None
    received = parse_time(str(event.get("requestReceivedTimestamp") or ""))
    at = parse_time(str(event.get("stageTimestamp") or "")) or received
    if at is None:
        return None, None
    user = str((event.get("user") or {}).get("username") or "")
    if not user:
        return None, None
    agent = str(event.get("userAgent") or "")
    key = (str(ref.get("apiGroup") or ""), str(ref.get("namespace") or ""), str(name))
    return key, AuditEntry(
        at, verb, str(ref.get("resource") or ""), user, agent,
        received=received if received is not None else at,
        subresource=str(ref.get("subresource") or ""), manager=manager_of(uri, agent),
        impersonated=str((event.get("impersonatedUser") or {}).get("username") or ""))
