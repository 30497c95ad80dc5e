"""ANODE on the resonant toy of test_detectors_weak, and its flows as normalised densities."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats
from test_detectors_weak import auc, fit_and_score, resonant_toy

from hepad_bench import FitContext, TrainingData, UserError
from hepad_plugins.detectors.anode import Anode, AnodeConfig

FAST = AnodeConfig(transforms=3, hidden=(32, 32), epochs=20)


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


def test_anode_finds_injected_signal():
    train, held = resonant_toy(seed=0, n_sig=300)
    _, s_bkg, s_sig = fit_and_score(Anode, train, held, FAST)
    assert s_bkg.dtype == np.float64 and np.isfinite(s_bkg).all() and np.isfinite(s_sig).all()
    assert auc(s_bkg, s_sig) > 0.8
    assert s_sig.mean() - s_bkg.mean() > 0.7  # log(p_SR / p_BG) rises towards the signal


def test_anode_without_signal_learns_a_flat_ratio():
    # AUC is scale-free and scatters around 0.5 without signal (see test_detectors_weak);
    # the log density ratio itself must be flat: no systematic offset between signal and background
    train, held = resonant_toy(seed=1, n_sig=0)
    _, s_bkg, s_sig = fit_and_score(Anode, train, held, FAST)
    # (|offset| <= 0.27 over seeds 10-13 on this toy; with signal the offset is ~1.5)
    assert abs(s_sig.mean() - s_bkg.mean()) < 0.4
    assert abs(np.median(s_bkg)) < 0.3  # the two densities agree in the signal region


def _gaussian_toy(rng, n, slope):
    """One feature f ~ N(1 + slope * (mjj - 3.5), 2) given mjj; mjj falling over 2.5-5 TeV."""
    mjj = 2.5 + rng.exponential(0.5, size=3 * n)
    mjj = mjj[mjj < 5.0][:n]
    f = rng.normal(1.0 + slope * (mjj - 3.5), 2.0)
    return np.column_stack([mjj, f]).astype(np.float32), mjj


def test_background_flow_is_the_normalised_conditional_density_interpolated_into_the_sr():
    rng = np.random.default_rng(0)
    slope = 1.0
    x, mjj = _gaussian_toy(rng, 4000, slope)
    x_val, mjj_val = _gaussian_toy(rng, 1000, slope)
    train = TrainingData(features=["mjj", "f"], x=x, weight=np.ones(len(x)), x_val=x_val,
                         weight_val=np.ones(len(x_val)), mjj=mjj, mjj_val=mjj_val, task="resonant",
                         meta={"sr_low": 3.3, "sr_high": 3.7})
    det = Anode(AnodeConfig(transforms=2, hidden=(16, 16), epochs=40, sr_conditional=False))
    det.fit(train, FitContext(seed=1))
    grid = np.linspace(-15.0, 17.0, 4001)
    for m in (3.4, 3.5, 3.6):  # inside the signal region: never seen by the background flow
        rows = np.column_stack([np.full_like(grid, m), grid]).astype(np.float32)
        log_p = det.log_density_background(rows, np.full_like(grid, m))
        assert np.trapezoid(np.exp(log_p), grid) == pytest.approx(1.0, abs=0.02)
        mean = 1.0 + slope * (m - 3.5)
        core = np.abs(grid - mean) < 3.0  # 1.5 sigma
        np.testing.assert_allclose(log_p[core], stats.norm.logpdf(grid[core], mean, 2.0), atol=0.25)
    # the unconditional signal-region flow is normalised too
    log_p_sr = det.log_density_signal_region(rows, None)
    assert np.trapezoid(np.exp(log_p_sr), grid) == pytest.approx(1.0, abs=0.02)
    # the background template: p_BG samples at SR masses follow the true conditional N(1 + slope (m - 3.5), 2)
    from hepad_plugins.detectors.anode import TEMPLATE_FACTOR

    scores, m_all = det.background_template()
    sr_train = mjj[(mjj >= 3.3) & (mjj < 3.7)]
    sb_train = mjj[((mjj >= 3.1) & (mjj < 3.3)) | ((mjj >= 3.7) & (mjj < 3.9))]  # the readout's adjacent sidebands
    in_sr = (m_all >= 3.3) & (m_all < 3.7)
    m_t = m_all[in_sr]
    assert len(m_t) == TEMPLATE_FACTOR * len(sr_train) and set(np.unique(m_t)) <= set(sr_train)
    # ... and as many per event of the readout sidebands, where the readout checks the template against data
    assert len(m_all) - len(m_t) == TEMPLATE_FACTOR * len(sb_train) and set(np.unique(m_all[~in_sr])) <= set(sb_train)
    f = det.background.sample(m_t, 5)[:, 0]
    z = (f - (1.0 + slope * (m_t - 3.5))) / 2.0
    assert abs(z.mean()) < 0.1 and abs(z.std() - 1.0) < 0.1 and stats.kstest(z, "norm").pvalue > 1e-3
    assert np.isfinite(scores).all() and len(scores) == len(m_all)


def test_deterministic_for_a_seed():
    train, held = resonant_toy(seed=4, n_bkg=1500, n_sig=100, n_test=200)
    cfg = AnodeConfig(transforms=2, hidden=(16,), epochs=3)
    _, a, _ = fit_and_score(Anode, train, held, cfg, seed=7)
    _, b, _ = fit_and_score(Anode, train, held, cfg, seed=7)
    _, c, _ = fit_and_score(Anode, train, held, cfg, seed=8)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_user_errors():
    train, held = resonant_toy(n_bkg=500, n_sig=0, n_test=50, meta={})
    with pytest.raises(UserError, match="signal region"):
        Anode(FAST).fit(train, FitContext(seed=0))
    train, held = resonant_toy(n_bkg=800, n_sig=0, n_test=50)
    det = Anode(AnodeConfig(transforms=1, hidden=(8,), epochs=1))
    det.fit(train, FitContext(seed=0))
    with pytest.raises(UserError, match="mjj"):
        det.score(held["background"], mjj=None)


def test_flows_do_not_extrapolate_in_mjj():
    # the SR flow saw only 3.3-3.7 TeV: below that it is evaluated at its lowest fitted mass
    train, held = resonant_toy(seed=5, n_bkg=800, n_sig=0, n_test=50)
    det = Anode(AnodeConfig(transforms=1, hidden=(8,), epochs=1))
    det.fit(train, FitContext(seed=0))
    x = held["background"]
    train_sr = train.mjj[(train.mjj >= 3.3) & (train.mjj < 3.7)]
    low = np.full(len(x), train_sr.min())
    np.testing.assert_array_equal(det.log_density_signal_region(x, np.full(len(x), 2.6)),
                                  det.log_density_signal_region(x, low))
    assert not np.array_equal(det.log_density_background(x, np.full(len(x), 2.6)),
                              det.log_density_background(x, low))  # the sideband flow did see 2.6 TeV


@pytest.mark.parametrize("sr_conditional", [True, False])
def test_model_cost_is_the_made_linear_maps_of_both_flows(sr_conditional):
    """MACs by hand: per transform a MADE (d + context) -> h1 -> h2 -> 2d (shift and log-scale), dense."""
    train, held = resonant_toy(seed=4, n_bkg=1500, n_sig=100, n_test=200)
    cfg = AnodeConfig(transforms=2, hidden=(16, 8), epochs=1, sr_conditional=sr_conditional)
    det, _, _ = fit_and_score(Anode, train, held, cfg)
    d, (h1, h2), t = 4, cfg.hidden, cfg.transforms  # four features besides mjj

    def flow(context: int) -> tuple[int, int]:
        widths = [d + context, h1, h2, 2 * d]
        macs = sum(a * b for a, b in zip(widths[:-1], widths[1:]))
        return t * (macs + sum(widths[1:])), t * macs

    (bg_p, bg_m), (sr_p, sr_m) = flow(1), flow(1 if sr_conditional else 0)
    events = held["background"]
    cost = det.model_cost(events, events[:, 0].astype(np.float64))
    assert (cost.parameters, cost.macs_per_event) == (bg_p + sr_p, bg_m + sr_m)
