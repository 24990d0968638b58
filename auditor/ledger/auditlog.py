"""Who made a change, from a Kubernetes API-server audit log.

``managedFields`` name the *client* (``kubectl-edit``) and a time to the second; the audit
log (JSON lines of ``audit.k8s.io/v1`` ``Event``) names the *user*. A change is joined to the
successful mutating request on the same object (API group, namespace, name, and the kind's
resource) closest in time, within a window; when several are equally close, the one whose
User-Agent matches the change's field manager wins.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import orjson

from auditor.engine.records import ResourceKey
from auditor.errors import LedgerError

MUTATING = frozenset({"create", "update", "patch", "delete", "deletecollection", "apply"})


@dataclass(frozen=True, slots=True)
class AuditEntry:
    at: float  # epoch seconds of the response
    verb: str
    resource: str
    username: str
    user_agent: str


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


@dataclass
class AuditLog:
    """Mutating requests indexed by object, sorted by time."""

    entries: dict[tuple[str, str, str], list[AuditEntry]] = field(default_factory=dict)
    skipped_lines: int = 0
    source: str = ""

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
        for line in lines:
            if not line.strip():
                continue
            try:
                event = orjson.loads(line)
            except orjson.JSONDecodeError:
                skipped += 1
                continue
            entry_key, entry = _entry(event)
            if entry is None or entry_key is None:
                continue
            index[entry_key].append(entry)
        for events in index.values():
            events.sort(key=lambda e: e.at)
        return cls(dict(index), skipped, source)

    def user_for(self, key: ResourceKey, time: str, manager: str = "",
                 window_seconds: float = 5.0) -> str | None:
        """The user of the mutating request on ``key`` nearest to ``time`` (managedFields
        time, whole seconds), or ``None`` when none lies within the window."""
        events = self.entries.get((key.group, key.namespace, key.name))
        at = parse_time(time)
        if not events or at is None:
            return None
        resource = plural(key.kind)
        times = [e.at for e in events]
        lo = bisect.bisect_left(times, at - window_seconds)
        hi = bisect.bisect_right(times, at + 1.0 + window_seconds)
        best: tuple[float, int, AuditEntry] | None = None
        agent = manager.split("/")[0].lower()
        for event in events[lo:hi]:
            if event.resource and event.resource != resource:
                continue
            # managedFields truncates to the second: anything in [at, at+1) is distance 0.
            distance = 0.0 if at <= event.at < at + 1.0 else min(abs(event.at - at),
                                                                  abs(event.at - at - 1.0))
            mismatch = 0 if agent and event.user_agent.lower().startswith(agent) else 1
            rank = (distance, mismatch, event)
            if best is None or rank[:2] < best[:2]:
                best = rank
        return best[2].username if best else None


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
    ref = event.get("objectRef") or {}
    name = ref.get("name")
    if not name:
        return None, None
    at = parse_time(str(event.get("stageTimestamp") or event.get("requestReceivedTimestamp") or ""))
    if at is None:
        return None, None
    user = (event.get("impersonatedUser") or {}).get("username") \
        or (event.get("user") or {}).get("username") or ""
    if not user:
        return None, None
    key = (str(ref.get("apiGroup") or ""), str(ref.get("namespace") or ""), str(name))
    return key, AuditEntry(at, verb, str(ref.get("resource") or ""), str(user),
                           str(event.get("userAgent") or ""))
