"""Five-field cron expressions (``minute hour day-of-month month day-of-week``) and their next
fire time in a time zone. Pure: no clock, no I/O, no knowledge of what is scheduled.

Fields take ``*``, ``*/n``, numbers, ranges ``a-b``, stepped ranges ``a-b/n`` (and ``a/n``,
``a`` to the field's end), comma-separated lists of those, month names ``JAN``–``DEC`` and
day names ``SUN``–``SAT`` (any case). Day-of-week 0 and 7 are both Sunday. The shorthands
``@yearly`` (``@annually``), ``@monthly``, ``@weekly``, ``@daily`` (``@midnight``) and
``@hourly`` are accepted too.

Day of month and day of week follow Vixie cron (and Kubernetes CronJobs): when both fields
are restricted (neither starts with ``*``), a day matches if *either* does; otherwise the
unrestricted one matches every day and only the other one counts.

Daylight saving time, as cronie's: a wall time the clock skips (spring forward) fires once
at the end of the gap when the expression names a fixed minute and hour (neither field
starts with ``*``), so a daily job is not lost, and is skipped otherwise (an hourly job does
not run twice at the same moment). A wall time the clock passes twice (fall back) fires at
its first occurrence for a fixed-time expression, and at both for the others (``*/15``
keeps running every fifteen real minutes).
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

__all__ = ["Cron", "CronError", "next_fire", "parse"]


class CronError(ValueError):
    """A cron expression that cannot be parsed (the message names the field and value)."""


_MONTHS = {name.upper(): i for i, name in enumerate(calendar.month_abbr) if name}
_DAYS = {"SUN": 0, "MON": 1, "TUE": 2, "WED": 3, "THU": 4, "FRI": 5, "SAT": 6}

# (name, low, high, names)
_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day-of-month", 1, 31, {}),
    ("month", 1, 12, _MONTHS),
    ("day-of-week", 0, 7, _DAYS),
)

_SHORTHANDS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

# The longest a clock change moves the wall time (Samoa skipped a whole day in 2011), and so
# how far past a first candidate another one can still be earlier in real time.
_MAX_SHIFT = timedelta(hours=26)
# 29 February may be 8 years away, 29 February on a given weekday 28.
_MAX_YEARS = 29


def _value(text: str, field: str, low: int, high: int, names: dict[str, int],
           expr: str) -> int:
    upper = text.upper()
    if upper in names:
        return names[upper]
    if not text.isdigit():
        raise CronError(f"cron {expr!r}: {field} {text!r} is not a number"
                        + (" or a name" if names else "")
                        + f" ({low}-{high})")
    value = int(text)
    if not low <= value <= high:
        raise CronError(f"cron {expr!r}: {field} {text!r} is out of range ({low}-{high})")
    return value


def _parse_field(text: str, index: int, expr: str) -> frozenset[int]:
    field, low, high, names = _FIELDS[index]
    values: set[int] = set()
    if not text:
        raise CronError(f"cron {expr!r}: {field} is empty")
    for part in text.split(","):
        if not part:
            raise CronError(f"cron {expr!r}: {field} {text!r} has an empty list item")
        body, slash, step_text = part.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) == 0:
                raise CronError(f"cron {expr!r}: {field} {part!r}: the step {step_text!r} "
                                "is not a positive number")
            step = int(step_text)
        if body in ("*", "?"):
            first, last = low, high
            if index == 4:  # day-of-week: * is 0-6, not Sunday twice
                last = 6
        elif "-" in body:
            a, _, b = body.partition("-")
            first = _value(a, field, low, high, names, expr)
            last = _value(b, field, low, high, names, expr)
            if first > last:
                raise CronError(f"cron {expr!r}: {field} {part!r}: the range runs backwards")
        else:
            first = _value(body, field, low, high, names, expr)
            last = high if slash else first
        values.update(range(first, last + 1, step))
    if index == 4 and 7 in values:
        values.discard(7)
        values.add(0)
    return frozenset(values)


def _days_in(month: int, year: int) -> int:
    return calendar.monthrange(year, month)[1]


def _next_in(values: tuple[int, ...], at_least: int) -> int | None:
    for v in values:
        if v >= at_least:
            return v
    return None


@dataclass(frozen=True)
class Cron:
    """A parsed expression: the allowed values of each field and the two flags the day rule
    and the daylight-saving rule need. Build it with :func:`parse`."""

    expression: str
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    months: tuple[int, ...]
    weekdays: frozenset[int]  # 0 = Sunday … 6 = Saturday
    day_star: bool            # day-of-month starts with * (or ?): not restricted
    weekday_star: bool
    fixed_time: bool          # neither minute nor hour starts with *

    def matches_day(self, year: int, month: int, day: int) -> bool:
        if month not in self.months:
            return False
        in_days = day in self.days
        in_weekdays = (calendar.weekday(year, month, day) + 1) % 7 in self.weekdays
        if self.day_star or self.weekday_star:
            return in_days and in_weekdays
        return in_days or in_weekdays

    def matches(self, wall: datetime) -> bool:
        """Whether the wall-clock minute ``wall`` (its time zone, if any, ignored) matches."""
        return (wall.minute in self.minutes and wall.hour in self.hours
                and self.matches_day(wall.year, wall.month, wall.day))

    def next_wall(self, after: datetime) -> datetime:
        """The first matching wall-clock minute strictly after the naive ``after``."""
        t = after.replace(second=0, microsecond=0) + timedelta(minutes=1)
        limit = t.year + _MAX_YEARS
        while t.year <= limit:
            month = _next_in(self.months, t.month)
            if month is None:
                t = datetime(t.year + 1, 1, 1)
                continue
            if month != t.month:
                t = datetime(t.year, month, 1)
            if not self.matches_day(t.year, t.month, t.day):
                t = datetime(t.year, t.month, t.day) + timedelta(days=1)
                continue
            hour = _next_in(self.hours, t.hour)
            if hour is None:
                t = datetime(t.year, t.month, t.day) + timedelta(days=1)
                continue
            if hour != t.hour:
                t = t.replace(hour=hour, minute=0)
            minute = _next_in(self.minutes, t.minute)
            if minute is None:
                t = t.replace(minute=0) + timedelta(hours=1)
                continue
            return t.replace(minute=minute)
        raise CronError(f"cron {self.expression!r} never fires")  # pragma: no cover

    def instants(self, wall: datetime, tz: tzinfo) -> list[datetime]:
        """The moments (aware, in ``tz``) at which the matching wall time ``wall`` fires,
        under the daylight-saving rule of this module: none, one or two."""
        first = wall.replace(tzinfo=tz, fold=0)
        second = wall.replace(tzinfo=tz, fold=1)
        if _wall(first.astimezone(UTC), tz) != wall:
            # In a gap: fired at the gap's end, by fixed-time expressions only.
            if not self.fixed_time:
                return []
            end = wall
            while True:
                end += timedelta(minutes=1)
                moment = end.replace(tzinfo=tz, fold=0)
                if _wall(moment.astimezone(UTC), tz) == end:
                    return [moment]
        if first.utcoffset() != second.utcoffset() and not self.fixed_time:
            return [first, second]
        return [first]

    def next_fire(self, after: datetime, tz: tzinfo) -> datetime:
        """The first fire time strictly after the aware ``after``, as an aware datetime in
        ``tz``."""
        if after.tzinfo is None or after.utcoffset() is None:
            raise ValueError("next_fire needs an aware datetime (with a time zone)")
        # Wall order and real order differ only where the clock falls back: a wall time up
        # to that drop before ``after``'s may still come after it (its second pass).
        after_utc = after.astimezone(UTC)
        wall = _wall(after, tz) - _drop(after, tz) - timedelta(minutes=1)
        best: datetime | None = None
        horizon: datetime | None = None
        while True:
            wall = self.next_wall(wall)
            if horizon is not None and wall > horizon:
                break
            found = self.instants(wall, tz)
            for local in found:
                # In UTC: aware datetimes of one zone compare by wall time, folds ignored.
                moment = local.astimezone(UTC)
                if moment > after_utc and (best is None or moment < best):
                    best = moment
            if best is not None and horizon is None:
                horizon = wall + _drop(found[0], tz)
        assert best is not None
        return best.astimezone(tz)


def _wall(moment: datetime, tz: tzinfo) -> datetime:
    return moment.astimezone(tz).replace(tzinfo=None, fold=0)


def _drop(moment: datetime, tz: tzinfo) -> timedelta:
    """How far the wall clock of ``tz`` falls back within a day after ``moment`` (zero
    without a clock change then)."""
    moment = moment.astimezone(UTC)  # arithmetic in real time, not on the wall clock
    base = moment.astimezone(tz).utcoffset() or timedelta(0)
    lowest = base
    for hours in range(1, int(_MAX_SHIFT / timedelta(hours=1)) + 1):
        offset = (moment + timedelta(hours=hours)).astimezone(tz).utcoffset() or timedelta(0)
        lowest = min(lowest, offset)
    return base - lowest


def _possible(days: frozenset[int], months: tuple[int, ...]) -> bool:
    return any(d <= _days_in(m, 2024) for m in months for d in days)


def parse(expression: str) -> Cron:
    """Parse a five-field expression (or a shorthand such as ``@daily``); raises
    :class:`CronError` naming the field and value on a bad one."""
    text = " ".join(expression.split())
    text = _SHORTHANDS.get(text.lower(), text)
    fields = text.split(" ")
    if not text or text.startswith("@") or len(fields) != 5:
        raise CronError(f"cron {expression!r}: expected five fields (minute hour day-of-month "
                        f"month day-of-week) or one of {', '.join(_SHORTHANDS)}, got "
                        f"{len(fields) if text else 0}")
    parsed = [_parse_field(f, i, expression) for i, f in enumerate(fields)]
    minute, hour, day, month, weekday = fields
    cron = Cron(
        expression=expression,
        minutes=tuple(sorted(parsed[0])), hours=tuple(sorted(parsed[1])),
        days=parsed[2], months=tuple(sorted(parsed[3])), weekdays=parsed[4],
        day_star=day[0] in "*?", weekday_star=weekday[0] in "*?",
        fixed_time=minute[0] not in "*?" and hour[0] not in "*?")
    if cron.weekday_star and not _possible(cron.days, cron.months):
        raise CronError(f"cron {expression!r}: day-of-month {day!r} never falls in month "
                        f"{month!r}: it never fires")
    return cron


def next_fire(expression: str | Cron, after: datetime, tz: tzinfo) -> datetime:
    """The first fire time of ``expression`` strictly after ``after`` (aware), in ``tz``."""
    cron = expression if isinstance(expression, Cron) else parse(expression)
    return cron.next_fire(after, tz)
