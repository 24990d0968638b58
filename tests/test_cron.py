"""Cron expressions (auditor.support.cron): parsing, the day-of-month/day-of-week rule, month
ends and 29 February, daylight-saving changes in Europe/Berlin, and every fire of a year
checked against a brute-force matcher that walks the year minute by minute with its own
reading of the fields."""

from __future__ import annotations

import calendar
import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo

import pytest

from auditor.support.cron import CronError, next_fire, parse

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def _chain(expression: str, start: datetime, tz: ZoneInfo | type[UTC] | None = None,
           until: datetime | None = None, count: int = 10_000) -> list[datetime]:
    cron = parse(expression)
    zone = tz or UTC
    out: list[datetime] = []
    moment = start
    while len(out) < count:
        moment = cron.next_fire(moment, zone)  # type: ignore[arg-type]
        if until is not None and moment >= until:
            break
        out.append(moment)
    return out


def _iso(moments: list[datetime]) -> list[str]:
    return [m.isoformat() for m in moments]


# --------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(("expression", "message"), [
    ("* * * *", "expected five fields"),
    ("* * * * * *", "expected five fields"),
    ("", "expected five fields"),
    ("@fortnightly", "expected five fields"),
    ("60 * * * *", "minute '60' is out of range (0-59)"),
    ("* 24 * * *", "hour '24' is out of range (0-23)"),
    ("* * 0 * *", "day-of-month '0' is out of range (1-31)"),
    ("* * 32 * *", "day-of-month '32' is out of range"),
    ("* * * 13 *", "month '13' is out of range (1-12)"),
    ("* * * * 8", "day-of-week '8' is out of range (0-7)"),
    ("* * * FOO *", "month 'FOO' is not a number or a name"),
    ("* * * * MOX", "day-of-week 'MOX' is not a number or a name"),
    ("x * * * *", "minute 'x' is not a number"),
    ("-5 * * * *", "minute '' is not a number"),
    ("*/0 * * * *", "minute '*/0': the step '0' is not a positive number"),
    ("*/x * * * *", "the step 'x' is not a positive number"),
    ("5-1 * * * *", "minute '5-1': the range runs backwards"),
    ("1,,2 * * * *", "minute '1,,2' has an empty list item"),
    ("0 0 30 2 *", "day-of-month '30' never falls in month '2': it never fires"),
    ("0 0 31 4,6,9,11 *", "it never fires"),
])
def test_bad_expressions_name_the_field_and_value(expression: str, message: str) -> None:
    with pytest.raises(CronError, match="cron ") as info:
        parse(expression)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_fields_lists_ranges_steps_and_names() -> None:
    cron = parse("0,30 9-17/4 1-7 jan,Mar-MAY,12 MON-fri")
    assert cron.minutes == (0, 30)
    assert cron.hours == (9, 13, 17)
    assert cron.days == frozenset(range(1, 8))
    assert cron.months == (1, 3, 4, 5, 12)
    assert cron.weekdays == frozenset({1, 2, 3, 4, 5})
    assert parse("*/15 * * * *").minutes == (0, 15, 30, 45)
    assert parse("10/20 * * * *").minutes == (10, 30, 50)   # a/n: from a to the end
    assert parse("* * * * 7").weekdays == frozenset({0})     # 7 is Sunday too
    assert parse("* * * * 5-7").weekdays == frozenset({5, 6, 0})
    assert parse("* * * * *").weekdays == frozenset(range(7))
    assert parse("  0   3 * *  SUN ").hours == (3,)          # spaces collapse
    daily, plain = parse("@daily"), parse("0 0 * * *")
    assert (daily.minutes, daily.hours, daily.days, daily.months, daily.weekdays) == (
        plain.minutes, plain.hours, plain.days, plain.months, plain.weekdays)


def test_shorthands() -> None:
    start = datetime(2026, 5, 17, 10, 7, tzinfo=UTC)  # a Sunday
    assert next_fire("@hourly", start, UTC) == datetime(2026, 5, 17, 11, 0, tzinfo=UTC)
    assert next_fire("@daily", start, UTC) == datetime(2026, 5, 18, tzinfo=UTC)
    assert next_fire("@midnight", start, UTC) == datetime(2026, 5, 18, tzinfo=UTC)
    assert next_fire("@weekly", start, UTC) == datetime(2026, 5, 24, tzinfo=UTC)
    assert next_fire("@monthly", start, UTC) == datetime(2026, 6, 1, tzinfo=UTC)
    assert next_fire("@yearly", start, UTC) == datetime(2027, 1, 1, tzinfo=UTC)
    assert next_fire("@annually", start, UTC) == datetime(2027, 1, 1, tzinfo=UTC)


# --------------------------------------------------------------------------- next fire


def test_strictly_after_and_seconds_ignored() -> None:
    at = datetime(2026, 1, 1, 10, 15, tzinfo=UTC)
    assert next_fire("15 10 * * *", at, UTC) == datetime(2026, 1, 2, 10, 15, tzinfo=UTC)
    assert next_fire("15 10 * * *", at - timedelta(seconds=1), UTC) == at
    assert next_fire("* * * * *", at + timedelta(seconds=59.5), UTC) == at + timedelta(minutes=1)


def test_needs_an_aware_time() -> None:
    with pytest.raises(ValueError, match="aware"):
        next_fire("* * * * *", datetime(2026, 1, 1), UTC)


def test_result_is_in_the_zone_asked_for() -> None:
    fire = next_fire("0 9 * * *", datetime(2026, 7, 1, 12, tzinfo=UTC), BERLIN)
    assert fire.tzinfo is BERLIN
    assert fire == datetime(2026, 7, 2, 7, tzinfo=UTC)


def test_day_of_month_or_day_of_week_when_both_are_restricted() -> None:
    # Vixie cron: the 13th or any Friday.
    fires = _chain("0 12 13 * FRI", datetime(2026, 2, 1, tzinfo=UTC), count=6)
    assert [f.day for f in fires] == [6, 13, 20, 27, 6, 13]
    assert [f.month for f in fires] == [2, 2, 2, 2, 3, 3]
    # One of them unrestricted (even */2): both must match, i.e. only the restricted one.
    fires = _chain("0 0 * * MON", datetime(2026, 2, 1, tzinfo=UTC), count=3)
    assert [f.day for f in fires] == [2, 9, 16]
    fires = _chain("0 0 */2 * MON", datetime(2026, 2, 1, tzinfo=UTC), count=3)
    assert [(f.month, f.day) for f in fires] == [(2, 9), (2, 23), (3, 9)]


def test_month_ends() -> None:
    fires = _chain("0 0 31 * *", datetime(2026, 1, 1, tzinfo=UTC), count=7)
    assert [(f.year, f.month) for f in fires] == [(2026, 1), (2026, 3), (2026, 5), (2026, 7),
                                                  (2026, 8), (2026, 10), (2026, 12)]
    fires = _chain("59 23 30 * *", datetime(2026, 1, 31, tzinfo=UTC), count=2)
    assert [(f.month, f.day) for f in fires] == [(3, 30), (4, 30)]  # no 30 February
    # The last minute of a year, then the first of the next.
    assert _iso(_chain("59 23 31 12 *", datetime(2026, 12, 31, 23, 58, tzinfo=UTC), count=2)) \
        == ["2026-12-31T23:59:00+00:00", "2027-12-31T23:59:00+00:00"]
    assert next_fire("0 0 1 1 *", datetime(2026, 12, 31, 23, 59, tzinfo=UTC), UTC) \
        == datetime(2027, 1, 1, tzinfo=UTC)


def test_29_february() -> None:
    fires = _chain("0 6 29 2 *", datetime(2026, 1, 1, tzinfo=UTC), count=3)
    assert [f.year for f in fires] == [2028, 2032, 2036]
    # 2100 is no leap year: eight years to the next.
    assert next_fire("0 6 29 2 *", datetime(2096, 3, 1, tzinfo=UTC), UTC).year == 2104
    # 29 February that is also a Monday (day-of-week * … no: both restricted is OR); with
    # day-of-week unrestricted only the date counts.
    assert next_fire("0 0 29 2 *", datetime(2028, 2, 28, 12, tzinfo=UTC), UTC) \
        == datetime(2028, 2, 29, tzinfo=UTC)


def test_spring_forward_in_berlin() -> None:
    # 2026-03-29: 02:00 CET becomes 03:00 CEST; 02:00-02:59 never happens.
    start = datetime(2026, 3, 28, 12, tzinfo=BERLIN)
    # A fixed time in the gap fires once, at the end of the gap; the day after as usual.
    assert _iso(_chain("30 2 * * *", start, BERLIN, count=3)) == [
        "2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00", "2026-03-31T02:30:00+02:00"]
    # Two fixed times in the gap: still one fire.
    assert _iso(_chain("15,45 2 * * *", start, BERLIN, count=3)) == [
        "2026-03-29T03:00:00+02:00", "2026-03-30T02:15:00+02:00", "2026-03-30T02:45:00+02:00"]
    # A fixed time at the end of the gap is not doubled.
    assert _iso(_chain("0 2,3 * * *", start, BERLIN, count=3)) == [
        "2026-03-29T03:00:00+02:00", "2026-03-30T02:00:00+02:00", "2026-03-30T03:00:00+02:00"]
    # Wildcard expressions skip the missing hour.
    assert _iso(_chain("*/30 * * * *", datetime(2026, 3, 29, 1, tzinfo=BERLIN), BERLIN,
                       count=4)) == [
        "2026-03-29T01:30:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-29T03:30:00+02:00",
        "2026-03-29T04:00:00+02:00"]
    assert _iso(_chain("*/20 2 * * *", start, BERLIN, count=2)) == [
        "2026-03-30T02:00:00+02:00", "2026-03-30T02:20:00+02:00"]


def test_fall_back_in_berlin() -> None:
    # 2026-10-25: 03:00 CEST becomes 02:00 CET; 02:00-02:59 happens twice.
    start = datetime(2026, 10, 24, 12, tzinfo=BERLIN)
    # A fixed time in the repeated hour fires once, at its first pass.
    fires = _chain("30 2 * * *", start, BERLIN, count=2)
    assert _iso(fires) == ["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"]
    # Wildcard expressions fire in both passes: every 30 real minutes.
    fires = _chain("*/30 * * * *", datetime(2026, 10, 25, 1, 50, tzinfo=BERLIN), BERLIN, count=6)
    assert _iso(fires) == [
        "2026-10-25T02:00:00+02:00", "2026-10-25T02:30:00+02:00", "2026-10-25T02:00:00+01:00",
        "2026-10-25T02:30:00+01:00", "2026-10-25T03:00:00+01:00", "2026-10-25T03:30:00+01:00"]
    assert [f.fold for f in fires] == [0, 0, 1, 1, 0, 0]
    gaps = {b.astimezone(UTC) - a.astimezone(UTC) for a, b in itertools.pairwise(fires)}
    assert gaps == {timedelta(minutes=30)}
    # Asked from inside the second pass, it continues there.
    second = datetime(2026, 10, 25, 2, 10, tzinfo=BERLIN, fold=1)
    assert next_fire("*/30 * * * *", second, BERLIN).isoformat() == "2026-10-25T02:30:00+01:00"
    assert next_fire("30 2 * * *", second, BERLIN).isoformat() == "2026-10-26T02:30:00+01:00"


def test_new_york_transitions() -> None:
    # 2026-03-08 02:00 EST → 03:00 EDT; 2026-11-01 02:00 EDT → 01:00 EST.
    assert next_fire("30 2 * * *", datetime(2026, 3, 8, tzinfo=NEW_YORK), NEW_YORK).isoformat() \
        == "2026-03-08T03:00:00-04:00"
    fires = _chain("0 * * * *", datetime(2026, 11, 1, 0, 30, tzinfo=NEW_YORK), NEW_YORK, count=3)
    assert _iso(fires) == ["2026-11-01T01:00:00-04:00", "2026-11-01T01:00:00-05:00",
                           "2026-11-01T02:00:00-05:00"]


# --------------------------------------------------------------------------- brute force


def _field(text: str, value: int, low: int, high: int, names: tuple[str, ...] = ()) -> bool:
    """The brute force's own reading of one field."""
    def number(s: str) -> int:
        up = s.upper()
        for i, n in enumerate(names):
            if n and up == n:
                return i
        return int(s)

    for part in text.split(","):
        body, _, step = part.partition("/")
        if body == "*":
            a, b = low, high
        elif "-" in body:
            a, b = (number(x) for x in body.split("-"))
        else:
            a = number(body)
            b = high if step else a
        if a <= value <= b and (value - a) % int(step or 1) == 0:
            return True
    return False


_DAYNAMES = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
_MONTHNAMES = ("", *(m.upper() for m in calendar.month_abbr[1:]))


def _brute_matcher(expression: str) -> Callable[[datetime], bool]:
    """The brute force's predicate: each field read by :func:`_field` once per value."""
    minute, hour, dom, month, dow = expression.split()
    minutes = {v for v in range(60) if _field(minute, v, 0, 59)}
    hours = {v for v in range(24) if _field(hour, v, 0, 23)}
    doms = {v for v in range(1, 32) if _field(dom, v, 1, 31)}
    months = {v for v in range(1, 13) if _field(month, v, 1, 12, _MONTHNAMES)}
    dows = {v for v in range(7) if _field(dow, v, 0, 6, _DAYNAMES)}
    if dow != "*" and _field(dow, 7, 0, 7, _DAYNAMES):
        dows.add(0)
    either = "*" not in (dom[0], dow[0])

    def matches(wall: datetime) -> bool:
        if wall.minute not in minutes or wall.hour not in hours or wall.month not in months:
            return False
        dom_ok, dow_ok = wall.day in doms, (wall.weekday() + 1) % 7 in dows
        return (dom_ok or dow_ok) if either else (dom_ok and dow_ok)

    return matches


@cache
def _minutes(year: int, zone: str) -> list[tuple[datetime, datetime, int, tuple[datetime, ...]]]:
    """Every real minute of ``year`` (UTC) in ``zone``: (instant, wall, fold, wall minutes the
    clock skipped just before it)."""
    tz = ZoneInfo(zone)
    out = []
    u = datetime(year, 1, 1, tzinfo=UTC)
    end = datetime(year + 1, 1, 1, tzinfo=UTC)
    prev = u.astimezone(tz).replace(tzinfo=None) - timedelta(minutes=1)
    while u < end:
        local = u.astimezone(tz)
        wall = local.replace(tzinfo=None, fold=0)
        skipped: list[datetime] = []
        step = prev + timedelta(minutes=1)
        while step < wall:
            skipped.append(step)
            step += timedelta(minutes=1)
        out.append((u, wall, local.fold, tuple(skipped)))
        prev = wall
        u += timedelta(minutes=1)
    return out


def _brute(expression: str, year: int, zone: str) -> list[datetime]:
    minute, hour = expression.split()[:2]
    fixed = "*" not in (minute[0], hour[0])
    matches = _brute_matcher(expression)
    fires = []
    for instant, wall, fold, skipped in _minutes(year, zone):
        if fold:
            hit = not fixed and matches(wall)
        else:
            hit = matches(wall) or (fixed and any(matches(s) for s in skipped))
        if hit:
            fires.append(instant)
    return fires


CROSS_CHECKED = [
    "30 2 * * *",
    "*/20 2 * * *",
    "0 * * * *",
    "15 3 1,15 * *",
    "0 0 * * MON-FRI",
    "0 12 13 * 5",
    "5 4 31 * *",
    "45 23 * * 7",
    "0 9-17/2 * JAN,MAR-MAY *",
    "0 0 1 */3 *",
    "10/25 1-3 * * SAT,SUN",
    "0 2 29 2 *",
    "59 23 28-31 * *",
    "0 0 */10 * 1-5",
    "30 1 8-14 * 2",
]


@pytest.mark.parametrize("zone", ["Europe/Berlin", "UTC"])
@pytest.mark.parametrize("expression", CROSS_CHECKED)
def test_a_year_of_fires_matches_brute_force(expression: str, zone: str) -> None:
    year = 2026 if zone != "UTC" else 2028  # Berlin's two changes; a leap year in UTC
    expected = _brute(expression, year, zone)
    start = datetime(year, 1, 1, tzinfo=UTC) - timedelta(microseconds=1)
    got = _chain(expression, start, ZoneInfo(zone), until=datetime(year + 1, 1, 1, tzinfo=UTC))
    assert [g.astimezone(UTC) for g in got] == expected
