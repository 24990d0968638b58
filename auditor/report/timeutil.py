"""Ledger timestamps as numbers and back, and durations as people read them."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache


@lru_cache(maxsize=65536)
def seconds(stamp: str) -> int:
    """A ledger timestamp (``2026-11-20T09:00:00Z``) as Unix seconds."""
    return int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp())


def stamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def between(start: str, end: str) -> int | None:
    """``end − start`` in seconds, or ``None`` when either is unknown or the order is wrong
    (a clock skew between a client's managedFields time and the run is not a negative
    duration worth reporting)."""
    if not start or not end:
        return None
    delta = seconds(end) - seconds(start)
    return delta if delta >= 0 else None


def human(value: int | float | None) -> str:
    """``5h 12m``, ``3d 4h``, ``45s``; ``—`` when unknown."""
    if value is None:
        return "—"
    total = int(value)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s" if secs else f"{minutes}m"
    return f"{secs}s"
