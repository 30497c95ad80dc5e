"""The sideband closure of a background template (``sideband_fit`` for SR-only scores).

Checked against a hand-worked count, a known distribution (two Gaussians
whose tail fractions scipy gives), and background-only pseudo-experiments:
a template that under-populates the high-score tail fakes excesses without
the check and is calibrated with it.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from hepad_bench import ScoredSample, ScoredSignal, Unavailable
from hepad_plugins.metrics.sideband import SidebandFit, sideband_closure, sideband_readout, template_readout

META = {"signal_region": [3.3, 3.7], "sidebands": [[None, 3.3], [3.7, None]], "sb_width": None}
# readout sidebands: the adjacent 0.2 TeV windows 3.1-3.3 and 3.7-3.9


def _sample(mjj, score):
    mjj = np.asarray(mjj, dtype=np.float64)
    return ScoredSample(score=np.asarray(score, dtype=np.float64), weight=np.ones(len(mjj)), mjj=mjj,
                        label=np.zeros(len(mjj), np.int8))


def test_closure_by_hand():
    # template: 100 sideband rows scored 0..99 (+ SR rows the check must ignore); the cut keeping 10 % of
    # them is score >= 90: 10 pass. Data: 200 sideband events, 30 at score 95 (+ SR events, ignored).
    template = _sample(np.r_[np.full(100, 3.2), np.full(50, 3.5)], np.r_[np.arange(100.0), np.full(50, 99.0)])
    data = _sample(np.r_[np.full(100, 3.15), np.full(100, 3.8), np.full(40, 3.5)],
                   np.r_[np.full(30, 95.0), np.zeros(170), np.full(40, 99.0)])
    closure = sideband_closure(template, data, 0.10, META)
    assert (closure.n_template, closure.n_template_passing, closure.n_data, closure.n_data_passing) == (100, 10, 200, 30)
    # eff_data = (30 + 1/2) / (200 + 1) = 0.1517413; ratio = 0.1517413 / 0.1 = 1.517413
    # (sigma_r / r)^2 = (1 - 0.1517413) / 30.5 + (1 - 0.1) / 10 = 0.0278118 + 0.09 = 0.1178118
    assert closure.ratio == pytest.approx(1.517413, rel=1e-5)
    assert closure.ratio_error == pytest.approx(1.517413 * 0.1178118**0.5, rel=1e-5)


def test_closure_without_a_sideband_part_is_none_and_data_outside_the_sidebands_is_ignored():
    template = _sample(np.full(100, 3.5), np.arange(100.0))  # SR only (the idealised classifier's)
    assert sideband_closure(template, _sample([3.2], [1.0]), 0.1, META) is None
    assert sideband_closure(ScoredSample(score=np.zeros(3), weight=np.ones(3)), None, 0.1, META) is None
    far = _sample(np.full(100, 2.5), np.arange(100.0))  # template rows outside the readout windows: nothing to check
    assert sideband_closure(far, _sample([3.2], [1.0]), 0.1, META) is None
    few = sideband_closure(_sample(np.full(20, 3.2), np.arange(20.0)), _sample([3.2], [1.0]), 0.1, META)
    assert isinstance(few, str) and "too few" in few


def test_closure_measures_a_known_tail_mismodelling_with_a_calibrated_error():
    # background scores N(0, 1) in the data, N(-0.3, 1) in the template: at the template's 10 % cut
    # (t = -0.3 + z_0.1) the data keep norm.sf(t), so the ratio is norm.sf(z_0.1 - 0.3) / 0.1 = 1.632
    expected = norm.sf(norm.isf(0.1) - 0.3) / 0.1
    rng = np.random.default_rng(3)
    ratios, errors = [], []
    for _ in range(400):
        template = _sample(rng.uniform(3.1, 3.3, 4000), rng.normal(-0.3, 1.0, 4000))
        data = _sample(rng.uniform(3.7, 3.9, 1000), rng.normal(0.0, 1.0, 1000))
        closure = sideband_closure(template, data, 0.1, META)
        ratios.append(closure.ratio)
        errors.append(closure.ratio_error)
    ratios, errors = np.array(ratios), np.array(errors)
    assert ratios.mean() == pytest.approx(expected, rel=0.02)
    pull = (ratios - expected) / errors
    assert 0.85 < pull.std() < 1.15  # the quoted error is the spread over pseudo-experiments


def _dijet_events(rng, n):
    """mjj from a falling dijet-like spectrum on 3.0-4.0 TeV (inverse CDF on a grid)."""
    grid = np.linspace(3.0, 4.0, 4001)
    pdf = (1 - grid / 13) ** 10 / (grid / 13) ** 5
    cdf = np.cumsum(pdf) / pdf.sum()
    return np.interp(rng.random(n), cdf, grid)


def test_a_template_that_misses_the_tail_fakes_excesses_unless_checked_in_the_sidebands():
    rng = np.random.default_rng(8)
    z_unchecked, z_checked, ratios = [], [], []
    for _ in range(150):
        m = _dijet_events(rng, 8000)
        data = _sample(m, rng.normal(size=len(m)))  # background only; the score ignores mjj
        sr = (m >= 3.3) & (m < 3.7)
        threshold = np.quantile(data.score[sr], 0.9)
        # the template under-populates the tail like ANODE's p_BG samples: scores N(-0.3, 1), in SR and sidebands
        sr_part = _sample(rng.uniform(3.3, 3.7, 6000), rng.normal(-0.3, 1.0, 6000))
        full = _sample(np.r_[sr_part.mjj, rng.uniform(3.1, 3.3, 6000)], np.r_[sr_part.score, rng.normal(-0.3, 1, 6000)])
        readout, none = template_readout(m, data.weight, data.score, threshold, sr_part, META, check=data)
        assert none is None
        z_unchecked.append(readout.significance)
        readout, closure = template_readout(m, data.weight, data.score, threshold, full, META, check=data)
        z_checked.append(readout.significance)
        ratios.append(closure.ratio)
        # B = (pre-cut fit) x (SR template efficiency) x ratio
        pre = sideband_readout(m, data.weight, np.ones(len(m), bool), META)
        eff = (sr_part.score >= threshold).mean()
        assert readout.background == pytest.approx(pre.background * eff * closure.ratio, rel=1e-9)
    z_unchecked, z_checked = np.array(z_unchecked), np.array(z_checked)
    assert (z_unchecked > 2).mean() > 0.3  # the uncorrected template fakes discoveries
    assert (z_checked > 2).mean() < 0.06  # checked: a calibrated one-sided 2 sigma test (2.3 %)
    assert (z_checked > 1).mean() > 0.03  # ... and not trivially conservative
    # the data's 10 % SR cut keeps norm.sf(z_0.1 + 0.3) of the template: the data keep 0.1 / that in the sidebands
    assert np.mean(ratios) == pytest.approx(0.1 / norm.sf(norm.isf(0.1) + 0.3), rel=0.05)


def test_the_metric_reports_the_closure_and_says_when_there_is_none():
    rng = np.random.default_rng(9)
    m = _dijet_events(rng, 8000)
    hunt = _sample(m, rng.normal(size=len(m)))
    sr_only = _sample(rng.uniform(3.3, 3.7, 6000), rng.normal(size=6000))
    empty = ScoredSample(score=np.zeros(3), weight=np.ones(3))

    def compute(template):
        return SidebandFit().compute(ScoredSignal("s", empty, empty, task="resonant", hunt=hunt, meta=META,
                                                  template=template, score_region="sr"))

    values = compute(sr_only)
    assert isinstance(values["sb_closure@10%"], Unavailable) and "no sideband part" in values["sb_closure@10%"].reason
    assert isinstance(values["sb_B@10%"], float)
    both = _sample(np.r_[sr_only.mjj, rng.uniform(3.7, 3.9, 6000)], np.r_[sr_only.score, rng.normal(size=6000)])
    values = compute(both)
    assert values["sb_closure@10%"] == pytest.approx(1.0, abs=3 * values["sb_closure_err@10%"])
    assert values["sb_closure_err@10%"] > 0


# -- the sliding-window search calibrates template readouts with the other windows ---------------------------
def _window(low, width, metrics, seed=1):
    from types import SimpleNamespace

    run = {"dataset": {"name": "d", "options": {"sr_scan": "x", "sr_low": low, "sr_high": low + width, "n_signal": 0}},
           "detector": {"name": "anode", "config": {}}, "seed": seed, "signals": ["s"], "null_control": True,
           "dataset_meta": {"scan": {"spec": "x"}, "signal_region": [low, low + width]}}
    return SimpleNamespace(run=run, metrics={"s": metrics}, status="ok")


def _metrics(n, b, db, template=1.0):
    from hepad_plugins.metrics.sideband import z_bi

    p, _ = z_bi(n, b, db)
    return {"sb_N@10%": n, "sb_B@10%": b, "sb_dB@10%": db, "sb_p_min": p, "sb_trials": 1.0, "sb_template": template}


def test_search_calibrates_a_template_window_by_the_windows_apart_from_it_by_hand():
    from hepad_bench import search
    from hepad_plugins.metrics.sideband import z_bi

    # three touching 0.4 TeV windows; the middle one is calibrated by the outer two:
    # R = (130 + 140) / (100 + 100) = 1.35; (sigma_R / R)^2 = 1/270 + (6^2 + 8^2) / 200^2 = 0.0037037 + 0.0025
    # B = 120 x 1.35 = 162, sigma_B^2 = (10 x 1.35)^2 + 162^2 x 0.0062037 = 182.25 + 162.81 = 345.06
    wins = [_window(2.9, 0.4, _metrics(130.0, 100.0, 6.0)), _window(3.3, 0.4, _metrics(200.0, 120.0, 10.0)),
            _window(3.7, 0.4, _metrics(140.0, 100.0, 8.0))]
    (found,) = search.summarise(wins)
    middle = found.windows[1]
    assert middle.calibration == pytest.approx(1.35)
    assert middle.p_local == pytest.approx(z_bi(200.0, 162.0, 345.06**0.5)[0], rel=1e-4)
    # uncalibrated it would have been a 4.7 sigma "discovery"; calibrated it is not
    assert norm.isf(_metrics(200.0, 120.0, 10.0)["sb_p_min"]) > 4.5 and middle.z_local < 3
    # a sideband-fit readout (no template) is left as it is
    (plain,) = search.summarise([_window(2.9, 0.4, _metrics(130.0, 100.0, 6.0, template=0.0)),
                                 _window(3.3, 0.4, _metrics(200.0, 120.0, 10.0, template=0.0))])
    assert plain.windows[1].calibration is None
    assert plain.windows[1].p_local == pytest.approx(_metrics(200.0, 120.0, 10.0)["sb_p_min"])
    # overlapping windows do not calibrate each other: a lone window cannot be read
    (alone,) = search.summarise([_window(3.3, 0.4, _metrics(200.0, 120.0, 10.0)),
                                 _window(3.5, 0.4, _metrics(150.0, 100.0, 10.0))])
    assert alone.best is None and alone.windows[0].status.startswith("no other window")


def test_search_calibration_removes_the_fake_discoveries_of_a_biased_template():
    from hepad_bench import search

    rng = np.random.default_rng(4)
    lows = [2.9, 3.3, 3.7, 4.1, 4.5]  # non-overlapping windows, falling background
    truth = np.array([400.0, 250.0, 160.0, 100.0, 65.0])
    z_raw, z_cal = [], []
    for seed in range(300):
        # the template under-predicts every window by 30 % (as ANODE's on dijet-pythia), with a 10 % error
        b = truth / 1.3 * rng.normal(1.0, 0.05, size=len(truth))
        n = rng.poisson(truth).astype(float)
        raw = [_window(lo, 0.4, _metrics(ni, bi, 0.1 * bi, template=0.0), seed) for lo, ni, bi in zip(lows, n, b)]
        cal = [_window(lo, 0.4, _metrics(ni, bi, 0.1 * bi), seed) for lo, ni, bi in zip(lows, n, b)]
        z_raw.append(search.summarise(raw)[0].z_global)
        z_cal.append(search.summarise(cal)[0].z_global)
    z_raw, z_cal = np.array(z_raw), np.array(z_cal)
    assert (z_raw > 2).mean() > 0.5
    assert (z_cal > 2).mean() < 0.05  # Sidak over 5 windows: conservative, 2.3 % at most when calibrated


def test_resonant_checks_reports_stored_scans_with_the_calibration(tmp_path, capsys):
    """--report-only trains nothing: it reads the stored window runs and reports them through the search."""
    import importlib.util
    from pathlib import Path

    import polars as pl

    from hepad_bench import store
    from hepad_bench.plugins import load_registry

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "resonant_checks.py"
    spec = importlib.util.spec_from_file_location("resonant_checks", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    version = load_registry().detectors["anode"].cls.version
    # one seed, three windows; with signal the middle one shows N/B = 2 where its neighbours show 1.3 (the bias);
    # the null control shows 1.3 everywhere: a biased template, and nothing else
    for n_signal, middle in ((550, 200.0), (0, 130.0)):
        for i, (low, n) in enumerate(((2.9, 130.0), (3.3, middle), (3.7, 130.0))):
            run = {"key": f"k{n_signal}{i}", "status": "ok", "task": "resonant", "seed": 1, "signals": ["wprime"],
                   "dataset": {"name": "dijet-pythia", "version": "x",
                               "options": {"n_signal": n_signal, "sr_scan": "3.1:3.9:0.4", "sr_low": low, "sr_high": low + 0.4}},
                   "detector": {"name": "anode", "version": version, "config": {}},
                   "dataset_meta": {"scan": {"spec": "3.1:3.9:0.4"}, "signal_region": [low, low + 0.4]}}
            metrics = {"wprime": _metrics(n, 100.0, 4.0) | {"sb_trials": 1.0}}
            store.write_run(tmp_path / "dijet-pythia" / "anode" / run["key"], run, pl.DataFrame(schema=store.SCORE_SCHEMA), metrics)
    # uncalibrated, each null window alone is a 2.6 sigma excess, 2.2 sigma global over the three
    assert norm.isf(1 - (1 - _metrics(130.0, 100.0, 4.0)["sb_p_min"]) ** 3) > 2
    assert module.main(["--report-only", "--detector", "anode", "--output", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "anode      null: 0/1 seeds above 2 sigma global" in out
    assert "best window contains 3.5 TeV in 1/1 seeds (PASS)" in out
