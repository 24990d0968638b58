"""The HTML report in headless Chromium (Debian ``chromium``): renders without console
errors, CSP violations or exceptions at desktop and phone width, screenshots taken, no
horizontal page overflow on a phone, sorting and filtering work, the page is complete with
scripts off, and it prints (print media hides navigation; a PDF comes out).

Screenshots go to the test's temporary folder, or to ``$DRIFT_AUDITOR_SCREENSHOTS`` when set
(to look at them)."""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from auditor import config as config_mod
from auditor.config import Config, ReportsConfig
from auditor.report import period
from auditor.report.html import render_html

from .browser import Browser, available
from .conftest import RealLedger

pytestmark = [pytest.mark.kubectl, pytest.mark.slow]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not available():
        pytest.fail("chromium not found: apt-get install -y chromium", pytrace=False)
    with Browser() as b:
        yield b


def _shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("DRIFT_AUDITOR_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def _write(tmp_path: Path, name: str, html: str) -> Path:
    path = tmp_path / name
    path.write_text(html, encoding="utf-8")
    return path


@pytest.fixture
def real_page(real_ledger: RealLedger, tmp_path: Path) -> tuple[Path, period.Report]:
    cfg = config_mod.load(real_ledger.config)
    report = period.build(real_ledger.path, real_ledger.start, real_ledger.end, cfg)
    return _write(tmp_path, "real.html", render_html(report)), report


def test_renders_without_errors_at_desktop_and_phone_width(
        browser: Browser, real_page: tuple[Path, period.Report], tmp_path: Path) -> None:
    page, _report = real_page
    shots = _shots(tmp_path)
    browser.open(page, width=1280)
    assert browser.errors() == []
    desktop = browser.screenshot(shots / "report-desktop.png", height=2000)
    assert _png_size(desktop) == (1280, 2000)
    assert browser.eval("document.querySelectorAll('section').length") == 13  # with sign-off
    for section in ("controls", "monitoring", "changes", "completeness", "drifts", "tool-config",
                    "policies", "appendix", "sign-off"):
        shot = browser.section_screenshot(section, shots / f"report-{section}.png")
        assert _png_size(shot) == (1280, 1400)
    browser.open(page, width=390)
    assert browser.errors() == []
    phone = browser.screenshot(shots / "report-phone.png", height=2400)
    assert _png_size(phone) == (390, 2400)
    # Wide tables scroll inside their box; the page itself never scrolls sideways.
    assert browser.eval("document.documentElement.scrollWidth") <= 390
    assert browser.eval("getComputedStyle(document.querySelector('dl.meta'))"
                        ".gridTemplateColumns.split(' ').length") == 1


def test_sorting_and_filtering(browser: Browser, real_page: tuple[Path, period.Report]) -> None:
    page, report = real_page
    browser.open(page)
    ids = "Array.from(document.querySelectorAll('#t-changes tbody tr')).map(r => r.id)"
    assert browser.eval(ids) == [f"chg-{c.id}" for c in report.changes]
    click = "document.querySelectorAll('#t-changes thead th button')[0].click()"
    browser.eval(click)
    browser.eval(click)
    assert browser.eval("document.querySelector('#t-changes thead th').getAttribute('aria-sort')") \
        == "descending"
    assert browser.eval(ids) == [f"chg-{c.id}" for c in sorted(report.changes, key=lambda c: -c.id)]
    shown = browser.eval("""new Promise(done => {
        const box = document.getElementById('f-t-changes');
        if (!box) { done(null); return; }
        box.value = 'unauthorized'; box.dispatchEvent(new Event('input'));
        setTimeout(() => done(Array.from(document.querySelectorAll('#t-changes tbody tr'))
            .filter(r => !r.hidden).length), 300); })""")
    # Fewer than 8 rows get no filter box: the demo-size table is small.
    if shown is not None:
        assert shown == report.summary.unauthorized
    assert browser.errors() == []


def test_complete_without_scripts_and_prints(browser: Browser,
                                             real_page: tuple[Path, period.Report]) -> None:
    page, report = real_page
    browser.send("Emulation.setScriptExecutionDisabled", value=True)
    try:
        browser.open(page)
        rows = browser.send("Runtime.evaluate", expression=(
            "document.querySelectorAll('#t-changes tbody tr').length"), returnByValue=True)
        # Runtime.evaluate still runs with page scripts disabled.
        assert rows["result"]["value"] == len(report.changes)
        assert browser.eval("document.querySelectorAll('.filter').length") == 0
        assert browser.eval("document.querySelectorAll('#t-changes th button').length") == 0
    finally:
        browser.send("Emulation.setScriptExecutionDisabled", value=False)
    browser.open(page)
    browser.send("Emulation.setEmulatedMedia", media="print")
    try:
        assert browser.eval("getComputedStyle(document.querySelector('nav.toc')).display") == "none"
        assert browser.eval("getComputedStyle(document.querySelector('.filter') || "
                            "document.body).display") in ("none", "block")
    finally:
        browser.send("Emulation.setEmulatedMedia", media="")
    pdf = browser.send("Page.printToPDF", printBackground=True)
    assert pdf["data"].startswith("JVBERi")  # base64 of "%PDF"
    assert browser.errors() == []


def test_empty_period_and_gap_period_render(browser: Browser, real_ledger: RealLedger,
                                            tmp_path: Path) -> None:
    from bench.report_bench import build_ledger

    cfg = config_mod.load(real_ledger.config)
    empty = period.build(real_ledger.path, datetime(2020, 1, 1, tzinfo=UTC),
                         datetime(2020, 4, 1, tzinfo=UTC), cfg)
    browser.open(_write(tmp_path, "empty.html", render_html(empty)))
    assert browser.errors() == []
    assert "No change was recorded" in browser.eval("document.getElementById('changes').textContent")
    browser.screenshot(_shots(tmp_path) / "report-empty.png", height=1400)
    ledger = tmp_path / "gap.db"
    build_ledger(ledger, start=datetime(2026, 3, 1, tzinfo=UTC),
                 end=datetime(2026, 3, 4, tzinfo=UTC), changes_per_run=3, objects=40,
                 outage=(datetime(2026, 3, 2, 3, tzinfo=UTC), datetime(2026, 3, 2, 9, tzinfo=UTC)),
                 failed_at=None)
    gap = period.build(ledger, datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 4, tzinfo=UTC),
                       Config(reports=ReportsConfig(schedule_minutes=60)),
                       now=datetime(2026, 3, 5, tzinfo=UTC))
    browser.open(_write(tmp_path, "gap.html", render_html(gap)))
    assert browser.errors() == []
    text = browser.eval("document.getElementById('monitoring').textContent")
    assert "2026-03-02T03:00:00Z" in text and "2026-03-02T09:00:00Z" in text
    browser.screenshot(_shots(tmp_path) / "report-gap.png", height=2000)
