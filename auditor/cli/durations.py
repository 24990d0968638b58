"""Durations and times as every option takes them: one parser for ``90s``, ``15m``,
``1h30m``, ``2d``, ``1w`` and ISO 8601 (``PT1H30M``, ``P1DT12H``), and the click types over
it: :class:`Duration` (``--for``, ``--wait``: a plain number is seconds) and :class:`Moment`
(``--since``, ``--until``, ``ack --expires``: an ISO 8601 time, or a duration counted from
now, backwards or forwards). A bad value fails as click fails any option: naming the option
and the value, exit 2."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

import click

EXAMPLES = "90s, 15m, 1h30m, 2d, 1w or PT1H30M"

_COMPACT = re.compile(r"^(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_ISO = re.compile(r"^P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:[.,]\d+)?)S)?)?$",
                  re.IGNORECASE)


def parse_duration(text: str) -> timedelta | None:
    """The duration ``text`` spells, or None when it spells none."""
    text = text.strip()
    if not text:
        return None
    compact = _COMPACT.match(text.lower())
    if compact and any(compact.groups()):
        w, d, h, m, s = (int(g or 0) for g in compact.groups())
        return timedelta(weeks=w, days=d, hours=h, minutes=m, seconds=s)
    iso = _ISO.match(text)
    if iso and any(iso.groups()) and not text.upper().endswith("T"):
        weeks, days, hours, minutes = (int(g or 0) for g in iso.groups()[:4])
        seconds = float((iso.group(5) or "0").replace(",", "."))
        return timedelta(weeks=weeks, days=days, hours=hours, minutes=minutes, seconds=seconds)
    return None


def parse_moment(text: str) -> datetime | None:
    """An ISO 8601 date (midnight UTC) or date-time (UTC without a zone), or None."""
    text = text.strip()
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            return datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


def stamp(moment: datetime) -> str:
    """UTC ISO 8601 to the second, as the ledger writes times."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Duration(click.ParamType):
    """Seconds, from a duration (``1h30m``) or a plain number of seconds."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> float:
        if isinstance(value, int | float):
            return float(value)
        text = str(value).strip()
        try:
            seconds = float(text)
        except ValueError:
            delta = parse_duration(text)
            if delta is None:
                self.fail(f"{text!r} is not a duration ({EXAMPLES}, or seconds)", param, ctx)
            return delta.total_seconds()
        if seconds < 0:
            self.fail(f"{text!r} is negative", param, ctx)
        return seconds


class Moment(click.ParamType):
    """A UTC time: ISO 8601, or a duration from now (back with ``ago``, else forward)."""

    name = "time"

    def __init__(self, *, ago: bool) -> None:
        self.ago = ago

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            return value
        text = str(value).strip()
        delta = parse_duration(text)
        if delta is not None:
            now = datetime.now(UTC).replace(microsecond=0)
            return now - delta if self.ago else now + delta
        moment = parse_moment(text)
        if moment is None:
            self.fail(f"{text!r} is neither an ISO 8601 time (2026-07-01T09:00:00Z) nor a "
                      f"duration ({EXAMPLES})", param, ctx)
        return moment
