"""The diff view in real headless Chromium (over the DevTools protocol, :mod:`.devtools`) at a
desktop (1400 px) and a phone (390 px) width: nothing wider than the screen, the changed lines
highlighted and labelled, the CSS-only toggles (unified view, server defaults) working under
the page's script-free Content-Security-Policy. Screenshots are kept with
``SERVE_SCREENSHOT_DIR`` (docs/images/serve-diff.png is the desktop one)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .conftest import UI
from .devtools import Page, browser
from .test_browser import keep, png_facts

pytestmark = pytest.mark.kubectl

DIFF = "/objects/apps/Deployment/shop/web/diff"
# The highlight colours of the diff's stylesheet: Git's side (removed) and live (added).
DELETED, ADDED = "rgb(255, 235, 233)", "rgb(218, 251, 225)"

STATE = """(() => {
  const visible = el => el.getClientRects().length > 0;
  const table = document.querySelector('table.diff.split').checkVisibility() ?
      'split' : (document.querySelector('table.diff.unified').checkVisibility() ? 'unified' : '');
  const shown = document.querySelector('table.diff.' + table);
  const cells = [...shown.querySelectorAll('td.add, td.del')].filter(visible);
  const hidden = [...shown.querySelectorAll('tr.hid')];
  return {
    scrollWidth: document.documentElement.scrollWidth, innerWidth: innerWidth,
    table: table,
    highlighted: cells.map(c => [c.className, getComputedStyle(c).backgroundColor,
                                 c.textContent.trim()]),
    labels: [...shown.querySelectorAll('.who')].filter(visible).map(w => w.textContent.trim()),
    hiddenRows: hidden.length, hiddenShown: hidden.filter(visible).length,
    widest: Math.max(...[...document.querySelectorAll('body *')].map(
        e => e.getBoundingClientRect().right)),
  };
})()"""


def state(page: Page) -> dict[str, Any]:
    result = page.eval(STATE)
    assert isinstance(result, dict)
    return result


@pytest.mark.parametrize(("width", "expected_table"), [(1400, "split"), (390, "unified")])
def test_diff_view_fits_and_highlights(open_ui: UI, tmp_path: Path, width: int,
                                       expected_table: str) -> None:
    with browser(tmp_path) as page:
        page.open(open_ui.base + DIFF, width)
        now = state(page)
        # No horizontal overflow: the document is no wider than the viewport.
        assert now["scrollWidth"] <= now["innerWidth"] == width, now
        assert now["widest"] <= width + 0.5, now
        # A phone gets the unified view, a desktop the two sides.
        assert now["table"] == expected_table
        # The drifted line is highlighted on both sides, with the highlight colours.
        colours = {(cls.split()[-1], colour) for cls, colour, _ in now["highlighted"]}
        assert colours == {("del", DELETED), ("add", ADDED)}, now["highlighted"]
        texts = " ".join(text for _, _, text in now["highlighted"])
        assert "image: shop/web:1.0.0" in texts and "image: shop/web:2.0.0-hotfix" in texts
        assert any(label.startswith("kubectl-set (human) · 20") for label in now["labels"])
        # Server defaults are hidden until the checkbox shows them (CSS, no script).
        assert now["hiddenRows"] > 0 and now["hiddenShown"] == 0
        shot = tmp_path / f"serve-diff-{width}.png"
        page.screenshot(shot)
        page.eval("document.getElementById('show-hidden').click()")
        shown = state(page)
        assert shown["hiddenShown"] == shown["hiddenRows"] > 0
        assert shown["scrollWidth"] <= width
        # The other view by its radio button.
        other = "view-unified" if expected_table == "split" else "view-split"
        page.eval(f"document.getElementById('{other}').click()")
        switched = state(page)
        assert switched["table"] != expected_table
        assert switched["scrollWidth"] <= width, switched
        assert {c.split()[-1] for c, _, _ in switched["highlighted"]} == {"del", "add"}
    assert png_facts(shot)[:2] == (width, 900)
    assert png_facts(shot)[2] > 50, "the screenshot is blank"
    keep(shot)


@pytest.mark.parametrize("path", ["/", "/drifts", "/objects/_/ConfigMap/shop/settings",
                                  "/objects/_/ConfigMap/shop/settings/versions/diff"])
def test_pages_fit_a_phone(open_ui: UI, tmp_path: Path, path: str) -> None:
    with browser(tmp_path) as page:
        page.open(open_ui.base + path, 390)
        width = page.eval("[document.documentElement.scrollWidth, innerWidth]")
        assert width[0] <= width[1] == 390, (path, width)
        if path == "/":
            charts = page.eval("[...document.querySelectorAll('svg.chart')].map("
                               "s => s.getBoundingClientRect().width)")
            assert len(charts) == 2 and all(300 < w <= 390 for w in charts), charts


def test_diff_view_prints_whole(open_ui: UI, tmp_path: Path) -> None:
    """Printed to A4 by Chromium (Page.printToPDF), the diff keeps every drifted line and its
    label on the page: the PDF's text (pdftotext, poppler-utils) holds them whole, and the
    first page renders (pdftoppm) to a non-blank image."""
    import base64
    import shutil
    import subprocess

    for tool in ("pdftotext", "pdftoppm"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} not installed (apt-get install -y poppler-utils; "
                        "make test installs it)", pytrace=False)
    with browser(tmp_path) as page:
        page.open(open_ui.base + DIFF, 1400)
        data = page.call("Page.printToPDF", paperWidth=8.27, paperHeight=11.69,
                         printBackground=True)["data"]
    pdf = tmp_path / "diff.pdf"
    pdf.write_bytes(base64.b64decode(data))
    assert pdf.read_bytes()[:5] == b"%PDF-"
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True,
                          text=True, timeout=60, check=True).stdout
    assert "image: shop/web:1.0.0" in text and "image: shop/web:2.0.0-hotfix" in text
    assert "kubectl-set (human)" in text
    subprocess.run(["pdftoppm", "-png", "-r", "70", "-f", "1", "-l", "1", str(pdf),
                    str(tmp_path / "page")], check=True, timeout=60)
    [png] = sorted(tmp_path.glob("page*.png"))
    width, height, distinct = png_facts(png)[:3]
    assert width < height, "A4 portrait"
    assert distinct > 50, "the printed page is blank"
    keep(png)
