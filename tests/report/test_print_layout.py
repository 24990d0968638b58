"""Every table of the report readable on screen and on paper, in headless Chromium (Debian
``chromium``): no table wider than its column at 1400 px, no sideways page scroll at 1400 px
or on a phone (390 px, where tables become one card per row), and printed to A4 (landscape)
no table wider than the page; the PDF's text layer holds the drift table's last columns on
the same page as its first (read with ``pdftotext``, Debian ``poppler-utils``).

Screenshots and the PDF go to the test's temporary folder, or to ``$DRIFT_AUDITOR_SCREENSHOTS``
when set (to look at them)."""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from auditor.report import period
from auditor.report.html import render_html
from auditor.report.period import Options

from .browser import Browser, available
from .test_readable_evidence import CFG, DAY, build_ledger

pytestmark = pytest.mark.slow

# A4 landscape less the stylesheet's 12 mm margins, in CSS pixels (96 per inch).
PRINT_WIDTH = round((297 - 2 * 12) / 25.4 * 96)

# Sections skip layout off screen (content-visibility) and long tables sit in <details>:
# both undone, then every table measured against the box it sits in.
OVERFLOWING = """(() => {
  if (!document.getElementById('measure-style')) {
    const s = document.createElement('style'); s.id = 'measure-style';
    s.textContent = 'main > section { content-visibility: visible !important; }';
    document.head.appendChild(s);
  }
  document.querySelectorAll('details').forEach(d => { d.open = true; });
  return Array.from(document.querySelectorAll('table')).map(t => {
    const box = t.parentElement;
    return {id: t.id, width: t.scrollWidth, box: box.clientWidth, page: innerWidth};
  }).filter(t => t.width > t.box || t.width > t.page);
})()"""


def _folder(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("DRIFT_AUDITOR_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("print")
    build_ledger(folder / "ledger.db")
    report = period.build(folder / "ledger.db", DAY, DAY + timedelta(days=1), CFG,
                          now=DAY + timedelta(days=2), options=Options(prepared_by="Dana Ops"))
    target = folder / "report.html"
    target.write_text(render_html(report), encoding="utf-8")
    return target


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not available():
        pytest.fail("chromium not found: apt-get install -y chromium", pytrace=False)
    with Browser() as b:
        yield b


def test_desktop_1400_no_table_scrolls_sideways(browser: Browser, page: Path,
                                                tmp_path: Path) -> None:
    browser.open(page, width=1400)
    assert browser.errors() == []
    assert browser.eval("document.documentElement.scrollWidth <= innerWidth") is True
    assert browser.eval(OVERFLOWING) == []
    assert browser.eval("document.querySelectorAll('#t-drifts thead th').length") == 13
    browser.section_screenshot("drifts", _folder(tmp_path) / "print-layout-drifts-1400.png",
                               height=900)
    browser.screenshot(_folder(tmp_path) / "print-layout-1400.png", height=2000)


def test_phone_390_no_page_overflow_and_tables_become_cards(browser: Browser, page: Path,
                                                            tmp_path: Path) -> None:
    browser.open(page, width=390)
    assert browser.errors() == []
    browser.screenshot(_folder(tmp_path) / "print-layout-390.png", height=2400)
    browser.section_screenshot("drifts", _folder(tmp_path) / "print-layout-drifts-390.png",
                               height=1400)
    assert browser.eval("document.documentElement.scrollWidth <= innerWidth") is True
    # Every row a card: each cell names its column (labels written server-side).
    assert browser.eval(OVERFLOWING) == []
    label = browser.eval("getComputedStyle(document.querySelector('#t-changes tbody td'), "
                         "'::before').content")
    assert label == '"ID"'
    assert browser.eval("getComputedStyle(document.querySelector('#t-drifts thead'))"
                        ".position") == "absolute"


def test_printed_to_a4_no_table_is_wider_than_the_page(browser: Browser, page: Path,
                                                       tmp_path: Path) -> None:
    browser.open(page, width=1400)
    browser.send("Emulation.setEmulatedMedia", media="print")
    try:
        browser.set_width(PRINT_WIDTH)
        assert browser.eval(OVERFLOWING) == []
        assert browser.eval("document.querySelector('#sign-off .signoff').scrollWidth"
                            " <= document.querySelector('#sign-off').clientWidth") is True
    finally:
        browser.send("Emulation.setEmulatedMedia", media="")
    browser.open(page, width=1400)
    pdf = base64.b64decode(browser.send("Page.printToPDF", printBackground=True,
                                        preferCSSPageSize=True)["data"])
    target = _folder(tmp_path) / "print-layout.pdf"
    target.write_bytes(pdf)
    # A4 landscape: 842 × 595 points.
    box = re.search(rb"/MediaBox\s*\[\s*0 0 ([\d.]+) ([\d.]+)\s*\]", pdf)
    assert box is not None
    assert (round(float(box.group(1))), round(float(box.group(2)))) == (842, 595)
    pages = _pdf_pages(target)
    drift_page = next(p for p in pages if "What differs" in p)
    # The evidence columns print on the same page as the drift they belong to.
    for column in ("State at", "Resolved", "Exposure", "SLA"):
        assert column in drift_page, column
    changes_page = next(p for p in pages if "Git commit" in p)
    for column in ("Authorization", "Remediation"):
        assert column in changes_page, column
    sign_off = next(p for p in pages if "Prepared by" in p)
    assert "Reviewed by" in sign_off and "Dana Ops" in sign_off and "Report SHA-256" in sign_off
    assert browser.errors() == []


def _pdf_pages(pdf: Path) -> list[str]:
    tool = shutil.which("pdftotext")
    if tool is None:
        pytest.fail("pdftotext not found: apt-get install -y poppler-utils", pytrace=False)
    text = subprocess.run([tool, "-layout", str(pdf), "-"], capture_output=True, text=True,
                          check=True, timeout=60).stdout
    return text.split("\f")
