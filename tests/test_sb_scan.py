"""The S/B scan script's bookkeeping: S/B read from run.json, median and 68 % band over seeds, the figure."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "sb_scan.py"


@pytest.fixture(scope="module")
def sb_scan():
    spec = importlib.util.spec_from_file_location("sb_scan", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_s_over_b_is_read_defensively(sb_scan):
    assert sb_scan.injected_s_over_b({"dataset_meta": {"signal_region_data": {"s_over_b": 0.1}}}) == 0.1
    # counts only (an older or renamed layout): S/B from them
    run = {"dataset_meta": {"signal_region_data": {"signal": 30, "background": 600, "s_over_b": None}}}
    assert sb_scan.injected_s_over_b(run) == pytest.approx(0.05)
    assert math.isnan(sb_scan.injected_s_over_b({"dataset_meta": {}}))
    assert math.isnan(sb_scan.injected_s_over_b({}))


def test_median_and_band_over_seeds(sb_scan):
    sics = [1.0, 2.0, 3.0, 4.0, 10.0]
    rows = [{"detector": "cwola", "n_signal": 300, "seed": s, "signal": "wprime", "s_over_b": 0.1,
             sb_scan.SIC_KEY: v, sb_scan.SIGNIFICANCE_KEY: math.nan} for s, v in enumerate(sics)]
    rows.append({"detector": "cwola", "n_signal": 0, "seed": 1, "signal": "wprime", "s_over_b": 0.0,
                 sb_scan.SIC_KEY: 1.2, sb_scan.SIGNIFICANCE_KEY: 0.5})
    summary = {s["n_signal"]: s for s in sb_scan.summarise(rows)}
    five = summary[300]
    assert five["seeds"] == 5 and five["s_over_b"] == 0.1
    # linear-interpolation quantiles by hand: position q * (n - 1) in the sorted values
    assert five[f"{sb_scan.SIC_KEY}_median"] == 3.0
    assert five[f"{sb_scan.SIC_KEY}_q16"] == pytest.approx(1.0 + 0.64 * 1.0)
    assert five[f"{sb_scan.SIC_KEY}_q84"] == pytest.approx(4.0 + 0.36 * 6.0)
    assert math.isnan(five[f"{sb_scan.SIGNIFICANCE_KEY}_median"])
    assert summary[0][f"{sb_scan.SIGNIFICANCE_KEY}_median"] == 0.5


def test_figure_and_csv(sb_scan, tmp_path):
    rows = [{"detector": det, "n_signal": n, "seed": s, "signal": "wprime", "s_over_b": n / 3000,
             sb_scan.SIC_KEY: 1.0 + n / 100 + s, sb_scan.SIGNIFICANCE_KEY: math.nan}
            for det in ("cwola", "idealised") for n in (0, 150, 300) for s in (1, 2)]
    summary = sb_scan.summarise(rows)
    sb_scan.write_csv(summary, tmp_path / "sb_scan.csv")
    lines = (tmp_path / "sb_scan.csv").read_text().splitlines()
    assert len(lines) == 1 + 6 and lines[0].startswith("detector,signal,n_signal,seeds,s_over_b")
    png = sb_scan.plot(summary, ["cwola", "idealised"], "toy", tmp_path / "sb_scan.png")
    assert png is not None and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # nothing to draw: no figure
    empty = [dict(s, **{f"{sb_scan.SIC_KEY}_median": math.nan}) for s in summary]
    assert sb_scan.plot(empty, ["cwola"], "toy", tmp_path / "none.png") is None
