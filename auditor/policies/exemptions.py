"""Exemptions: a failing result that an approved exception covers does not count.

Two sources:

- an annotation on the object, one per policy:
  ``exempt.policies.drift-auditor.io/<policy-name>: "<justification>"`` (on the object
  itself, e.g. the Deployment, not its pod template);
- ``policies.exemptions`` in the configuration, each with a justification, an approver and
  an expiry. An expired exemption no longer exempts: the result fails again and its message
  says which exemption expired and when.
"""

from __future__ import annotations

import dataclasses
import fnmatch
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, time, timedelta
from typing import Any

from auditor.config import PolicyExemption
from auditor.errors import PolicyError

from .model import Exemption, PolicyResult

ANNOTATION_PREFIX = "exempt.policies.drift-auditor.io/"


def expiry(text: str) -> datetime | None:
    """The instant an exemption ends: a date means the end of that day (UTC)."""
    if not text:
        return None
    try:
        if len(text) == 10:
            day = datetime.fromisoformat(text).date()
            return datetime.combine(day, time.max, tzinfo=UTC)
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def check(entries: Iterable[PolicyExemption]) -> None:
    """Reject config exemptions an auditor would reject: no justification, approver or expiry."""
    for i, e in enumerate(entries):
        where = f"policies.exemptions[{i}] (policy {e.policy!r})"
        if not e.justification.strip():
            raise PolicyError(f"{where}: justification is required")
        if not e.approver.strip():
            raise PolicyError(f"{where}: approver is required")
        if not e.expires:
            raise PolicyError(f"{where}: expires is required (an ISO 8601 date or time)")
        if expiry(e.expires) is None:
            raise PolicyError(f"{where}: expires: expected an ISO 8601 date or time, "
                              f"got {e.expires!r}")


class Exemptions:
    """Config entries plus the annotation rule, applied to results."""

    def __init__(self, entries: Iterable[PolicyExemption] = (), *,
                 now: datetime | None = None) -> None:
        self.entries = tuple(entries)
        check(self.entries)
        self.now = now or datetime.now(UTC)

    def _config_entry(self, result: PolicyResult) -> tuple[PolicyExemption | None, bool]:
        key = result.key
        best: PolicyExemption | None = None
        for e in self.entries:
            if not (fnmatch.fnmatchcase(result.policy, e.policy)
                    and fnmatch.fnmatchcase(key.group, e.group)
                    and fnmatch.fnmatchcase(key.kind, e.kind)
                    and fnmatch.fnmatchcase(key.namespace, e.namespace)
                    and fnmatch.fnmatchcase(key.name, e.name)):
                continue
            until = expiry(e.expires)
            if until is None or until >= self.now:
                return e, False
            best = best or e
        return best, best is not None

    def apply(self, result: PolicyResult, annotations: Mapping[str, Any]) -> PolicyResult:
        """``result`` with its exemption applied (only failures and errors are exempted)."""
        if result.status not in ("fail", "error"):
            return result
        note = annotations.get(ANNOTATION_PREFIX + result.policy)
        if note is not None:
            return dataclasses.replace(result, status="skip", exemption=Exemption(
                "annotation", str(note).strip() or "(no justification given)"))
        entry, expired = self._config_entry(result)
        if entry is None:
            return result
        ex = Exemption("config", entry.justification, entry.approver, entry.expires, expired)
        if not expired:
            return dataclasses.replace(result, status="skip", exemption=ex)
        said = (f"exemption expired on {entry.expires} (approved by {entry.approver}: "
                f"{entry.justification})")
        return dataclasses.replace(result, exemption=ex, messages=(said, *result.messages))


def soon(entries: Iterable[PolicyExemption], within: timedelta,
         now: datetime | None = None) -> list[PolicyExemption]:
    """Config exemptions that expire within ``within`` (for reminders in reports)."""
    at = now or datetime.now(UTC)
    out = []
    for e in entries:
        until = expiry(e.expires)
        if until is not None and at <= until <= at + within:
            out.append(e)
    return out
