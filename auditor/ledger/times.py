"""Timestamps as the ledger stores them: UTC, ISO 8601, whole seconds, ``Z`` suffix — so
that string order is time order and period filters are plain comparisons."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from auditor.errors import LedgerError

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def now() -> datetime:
    return datetime.now(UTC)


def stamp(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse(text: str, *, relative_to: datetime | None = None, what: str = "time",
          ago: bool = False) -> datetime:
    """An ISO date/datetime, or a duration (``7d``, ``12h``) counted from ``relative_to``
    (forwards, or backwards when ``ago``)."""
    match = _DURATION.match(text)
    if match:
        delta = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
        return (relative_to or now()) + (-delta if ago else delta)
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise LedgerError(f"{what}: {text!r} is neither an ISO 8601 date/time nor a duration "
                          "such as 7d or 12h") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def normalise(text: str) -> str:
    """A timestamp from elsewhere (managedFields, Git) in the ledger's form; '' stays ''."""
    if not text:
        return ""
    try:
        return stamp(parse(text))
    except LedgerError:
        return text
