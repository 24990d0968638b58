"""The report budget: a quarter of hourly runs (≈2,200) with 20,000 changes renders (model,
HTML and the population CSV) in under 10 s. Uses the benchmark's ledger, written through the
ledger API, so the figures are the benchmark's."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.report_bench import bench_report

pytestmark = pytest.mark.slow


def test_quarter_renders_within_budget(tmp_path: Path) -> None:
    result = bench_report(str(tmp_path))
    assert result["runs"] >= 2200 and result["changes_in_report"] >= 20_000
    assert result["gaps"] == 2 and result["verify_ok"] is True
    assert result["report_total_s"] < 10.0, result
    html = (tmp_path / "quarter.html").read_text(encoding="utf-8")
    assert html.count('<tr id="chg-') == result["changes_in_report"]
