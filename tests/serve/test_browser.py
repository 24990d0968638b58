"""`drift-auditor serve`'s pages in headless Chromium (Debian ``chromium``): the overview and an
object's history render, the browser's DOM holds the hostile drift values as text (no element
injected), and screenshots are written for a person to look at (``SERVE_SCREENSHOT_DIR``
keeps them)."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from .conftest import UI

pytestmark = pytest.mark.kubectl

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium not installed (apt-get install -y chromium)", pytrace=False)
    profile = tmp_path / "chromium-profile"
    # No network beyond the page, no first-run or background services: a deterministic render.
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", "--hide-scrollbars", f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def png_facts(path: Path) -> tuple[int, int, int]:
    """(width, height, distinct byte values in the pixel data) — no imaging library needed."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    pos, idat = 8, b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind = data[pos + 4:pos + 8]
        if kind == b"IDAT":
            idat += data[pos + 8:pos + 8 + length]
        pos += 12 + length
    return width, height, len(set(zlib.decompress(idat)))


def keep(shot: Path) -> None:
    target = os.environ.get("SERVE_SCREENSHOT_DIR")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(target) / shot.name)


@pytest.mark.parametrize(("page", "name"), [
    ("/", "serve-index.png"),
    ("/objects/_/ConfigMap/shop/settings", "serve-object.png"),
])
def test_pages_render_in_chromium(open_ui: UI, tmp_path: Path, page: str, name: str) -> None:
    shot = tmp_path / name
    proc = chromium(tmp_path, f"--screenshot={shot}", "--window-size=1400,1000",
                    open_ui.base + page)
    assert shot.is_file(), proc.stderr[-2000:]
    width, height, distinct = png_facts(shot)
    assert (width, height) == (1400, 1000)
    assert distinct > 50, "the screenshot is blank"
    keep(shot)


def test_browser_dom_holds_hostile_values_as_text(open_ui: UI, tmp_path: Path) -> None:
    proc = chromium(tmp_path, "--dump-dom", open_ui.base + "/")
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = proc.stdout
    assert "Current drift by namespace" in dom
    # The parsed document re-serialised: the values are text nodes, not elements.
    assert "&lt;script&gt;alert('from-git')&lt;/script&gt;" in dom
    assert "&lt;img src=x onerror=alert('from-live')&gt;" in dom
    assert "<b id=\"pwned\">" not in dom and "<img" not in dom
    assert dom.count("<script") == 0


def test_a_real_report_served_renders_under_its_csp(open_ui: UI, tmp_path: Path,
                                                     ledger_setup: dict[str, object]) -> None:
    # A report as `drift-auditor report` writes it into reports.directory, served by
    # /reports/ with its Content-Security-Policy: its inline script and styles run, nothing is
    # blocked, no script error.
    made = subprocess.run(
        [sys.executable, "-m", "auditor.cli", "--config", str(ledger_setup["config_file"]), "report",
         "--from", "2026-01-01"], capture_output=True, text=True, timeout=300,
        env={"PATH": "/usr/bin:/bin"}, cwd=str(Path(__file__).parents[2]))
    assert made.returncode in (0, 1), made.stderr[-2000:]
    [report] = sorted(p.name for p in open_ui.reports.glob("drift-report-20260101-*.html"))
    listing = open_ui.get("/reports/")
    assert report in listing.body
    shot = tmp_path / "serve-report.png"
    proc = chromium(tmp_path, "--enable-logging=stderr", "--v=0", f"--screenshot={shot}",
                    "--window-size=1400,1000", f"{open_ui.base}/reports/{report}")
    assert shot.is_file(), proc.stderr[-2000:]
    problems = [line for line in proc.stderr.splitlines()
                if "Content Security Policy" in line or "Uncaught" in line]
    assert not problems, problems
    assert png_facts(shot)[2] > 50
    keep(shot)


def test_the_csp_check_would_see_a_blocked_load(open_ui: UI, tmp_path: Path) -> None:
    # The control for the test above: Chromium does log what the CSP blocks.
    (open_ui.reports / "blocked.html").write_text(
        '<!doctype html><title>x</title><img src="http://127.0.0.1:9/x.png">')
    proc = chromium(tmp_path, "--enable-logging=stderr", "--v=0", "--dump-dom",
                    f"{open_ui.base}/reports/blocked.html")
    assert "violates the following Content Security Policy directive" in proc.stderr
