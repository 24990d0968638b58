"""``report --period`` (the last complete calendar period, for scheduled reports) and
``report --format all`` (HTML, JSON and every CSV table written whole into a folder, listed by
``serve``), over a ledger written through the ledger API (bench.report_bench)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from auditor.cli.common import Context
from auditor.cli.report import PERIODS, _default_name, last_period, report_cmd
from auditor.report import export, manifest
from auditor.web.serve import REPORT_TYPES, list_reports
from bench.report_bench import build_ledger

START = datetime(2026, 3, 1, tzinfo=UTC)
END = datetime(2026, 3, 3, tzinfo=UTC)


def _utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


@pytest.mark.parametrize(("name", "now", "start", "end"), [
    # A day: the whole UTC day before today, whatever the hour.
    ("last-day", _utc(2026, 3, 1), _utc(2026, 2, 28), _utc(2026, 3, 1)),
    ("last-day", _utc(2028, 3, 1, 23, 59, 59), _utc(2028, 2, 29), _utc(2028, 3, 1)),
    ("last-day", _utc(2027, 1, 1, 0, 0, 1), _utc(2026, 12, 31), _utc(2027, 1, 1)),
    # An ISO week, Monday to Sunday; 2026-01-01 is a Thursday of ISO week 2026-W01.
    ("last-week", _utc(2026, 1, 1, 12), _utc(2025, 12, 22), _utc(2025, 12, 29)),
    ("last-week", _utc(2026, 1, 4, 23, 59), _utc(2025, 12, 22), _utc(2025, 12, 29)),
    ("last-week", _utc(2026, 1, 5), _utc(2025, 12, 29), _utc(2026, 1, 5)),
    ("last-week", _utc(2026, 3, 2, 8), _utc(2026, 2, 23), _utc(2026, 3, 2)),
    # A month, across a year end and February (a leap year's and a common year's).
    ("last-month", _utc(2026, 1, 15), _utc(2025, 12, 1), _utc(2026, 1, 1)),
    ("last-month", _utc(2026, 3, 1), _utc(2026, 2, 1), _utc(2026, 3, 1)),
    ("last-month", _utc(2028, 3, 31, 23, 59), _utc(2028, 2, 1), _utc(2028, 3, 1)),
    ("last-month", _utc(2026, 5, 31), _utc(2026, 4, 1), _utc(2026, 5, 1)),
    # A calendar quarter.
    ("last-quarter", _utc(2026, 1, 1), _utc(2025, 10, 1), _utc(2026, 1, 1)),
    ("last-quarter", _utc(2026, 3, 31, 23, 59), _utc(2025, 10, 1), _utc(2026, 1, 1)),
    ("last-quarter", _utc(2026, 4, 1), _utc(2026, 1, 1), _utc(2026, 4, 1)),
    ("last-quarter", _utc(2026, 8, 15), _utc(2026, 4, 1), _utc(2026, 7, 1)),
    ("last-quarter", _utc(2026, 12, 31), _utc(2026, 7, 1), _utc(2026, 10, 1)),
    # A year.
    ("last-year", _utc(2026, 1, 1), _utc(2025, 1, 1), _utc(2026, 1, 1)),
    ("last-year", _utc(2026, 12, 31, 23, 59), _utc(2025, 1, 1), _utc(2026, 1, 1)),
])
def test_last_period_boundaries(name: str, now: datetime, start: datetime,
                                end: datetime) -> None:
    assert last_period(name, now) == (start, end)


def test_last_period_is_read_in_utc() -> None:
    # 00:30 on 1 January in Berlin is still 31 December in UTC.
    berlin_new_year = datetime(2026, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=1)))
    assert last_period("last-day", berlin_new_year) == (_utc(2025, 12, 30), _utc(2025, 12, 31))
    assert last_period("last-year", berlin_new_year) == (_utc(2024, 1, 1), _utc(2025, 1, 1))
    for name in PERIODS:
        start, end = last_period(name, _utc(2026, 7, 15, 10))
        assert start.tzinfo is UTC and start < end <= _utc(2026, 7, 15)


@pytest.fixture(scope="module")
def ledger_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("all")
    build_ledger(tmp / "ledger.db", start=START, end=END, changes_per_run=3, objects=20,
                 outage=None, failed_at=None)
    config = tmp / "drift-auditor.yaml"
    config.write_text(f"ledger: {{path: {tmp / 'ledger.db'}}}\n"
                      f"reports: {{directory: {tmp / 'reports'}}}\n")
    return config


def _cli(config: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(report_cmd, list(args), obj=Context(str(config)))
    return result.exit_code, result.output


def test_period_and_from_to_exclude_each_other(ledger_config: Path) -> None:
    for extra in (("--from", "2026-03-01"), ("--to", "2026-03-02")):
        code, out = _cli(ledger_config, "--period", "last-day", *extra, "--format", "json")
        assert code == 2, out
        assert out.strip() == ("drift-auditor: error: --period last-day: give either --period "
                               "or --from/--to, not both")
    code, out = _cli(ledger_config, "--format", "json")
    assert code == 2 and "Missing option '--from'" in out


def test_period_reports_the_last_complete_period(ledger_config: Path) -> None:
    code, out = _cli(ledger_config, "--period", "last-week", "--format", "json")
    assert code == 0, out
    doc = orjson.loads(out[out.index("{"):])
    start, end = last_period("last-week", datetime.now(UTC))
    assert (doc["header"]["period_start"], doc["header"]["period_end"]) == (
        start.strftime("%Y-%m-%dT%H:%M:%SZ"), end.strftime("%Y-%m-%dT%H:%M:%SZ"))


def test_format_all_writes_every_file_whole(ledger_config: Path, tmp_path: Path) -> None:
    out_dir = tmp_path / "out"
    code, out = _cli(ledger_config, "--from", "2026-03-01", "--to", "2026-03-02",
                     "--format", "all", "--output-file", str(out_dir))
    assert code == 0, out
    stem = "drift-report-20260301-20260302"
    tables = {t: out_dir / f"{stem}-{t}.csv" for t in export.TABLES}
    html, js = out_dir / f"{stem}.html", out_dir / f"{stem}.json"
    man = out_dir / f"{stem}.manifest.json"
    expected = {*tables.values(), html, js, man}
    assert set(out_dir.iterdir()) == expected  # no temporary file left behind
    # One line per file written (the manifest's names how to check it).
    wrote = [line for line in out.splitlines() if line.startswith("wrote ")]
    assert [line.split()[1] for line in wrote] == [
        *map(str, tables.values()), str(js), str(html), str(man)]

    doc = orjson.loads(js.read_bytes())
    assert doc["header"]["period_start"] == "2026-03-01T00:00:00Z"
    assert doc["header"]["period_end"] == "2026-03-03T00:00:00Z"
    assert doc["summary"]["changes"] == len(doc["changes"]) > 0
    for table, path in tables.items():
        rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))
        assert rows and rows[0] and all(rows[0]), table
    changes = list(csv.DictReader(io.StringIO(tables["changes"].read_text(encoding="utf-8"))))
    assert len(changes) == doc["summary"]["changes"]
    assert next(iter(changes[0])) == "change_id"
    runs = list(csv.DictReader(io.StringIO(tables["runs"].read_text(encoding="utf-8"))))
    assert len(runs) == 48
    # The HTML names the change population file beside it and its SHA-256.
    page = html.read_text(encoding="utf-8")
    assert f"{stem}-changes.csv" in page
    assert export.sha256(tables["changes"].read_text(encoding="utf-8")) in page
    # The manifest covers every file, and they check.
    check = manifest.check(man)
    assert check.ok and check.files == len(expected) - 1, check.message
    # serve's /reports/ lists every one of them.
    listed = {r.name for r in list_reports(out_dir)}
    assert listed == {p.name for p in expected}
    assert all(p.suffix in REPORT_TYPES for p in expected)


def test_format_all_with_a_period_goes_to_the_reports_directory(ledger_config: Path) -> None:
    code, out = _cli(ledger_config, "--period", "last-month", "--format", "all")
    assert code == 0, out
    start, end = last_period("last-month", datetime.now(UTC))
    stem = _default_name(start, end)
    folder = ledger_config.parent / "reports"
    names = {p.name for p in folder.iterdir()}
    assert {f"{stem}.html", f"{stem}.json", f"{stem}.manifest.json",
            *(f"{stem}-{t}.csv" for t in export.TABLES)} <= names
    assert {r.name for r in list_reports(folder)} >= {f"{stem}.html", f"{stem}.json"}


def test_format_all_needs_a_folder(ledger_config: Path, tmp_path: Path) -> None:
    a_file = tmp_path / "report.html"
    a_file.write_text("x")
    code, out = _cli(ledger_config, "--from", "2026-03-01", "--format", "all",
                     "--output-file", str(a_file))
    assert code == 2
    assert out.strip().splitlines() == [
        f"drift-auditor: error: --output-file {a_file}: with --format all, --output-file "
        "names a folder, not a file"]
