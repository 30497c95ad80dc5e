"""Property tests (hypothesis) of the per-run metrics: AUC and the efficiencies depend on the order of
the scores only, swap and weight symmetries, and AUC against a brute-force weighted pair count."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from hepad_bench import ScoredSample, ScoredSignal, Unavailable
from hepad_plugins.metrics.efficiency import AUC, EfficiencyAtBackground, MaxSIC

#: strictly increasing maps; on integer scores in [-40, 40] none of them merges two values in float64
MONOTONE = {
    "affine": lambda x: 3.0 * x + 7.0,
    "cube": lambda x: x**3 + 2.0 * x,
    "exp": lambda x: np.exp(x / 8.0),
    "arctan": lambda x: np.arctan(x / 10.0),
}


def _scored(bkg, sig, wb=None, ws=None) -> ScoredSignal:
    def sample(s, w):
        s = np.asarray(s, dtype=np.float64)
        return ScoredSample(score=s, weight=np.ones(len(s)) if w is None else np.asarray(w, dtype=np.float64))
    return ScoredSignal(signal="s", background=sample(bkg, wb), signal_sample=sample(sig, ws))


def _draw(seed: int, n_bkg: int, n_sig: int, shift: int, weighted: bool):
    rng = np.random.default_rng(seed)
    # integer scores: many ties, which is where orderings and interpolations go wrong
    bkg = rng.integers(-40, 30, n_bkg).astype(np.float64)
    sig = np.clip(rng.integers(-40, 30, n_sig) + shift, -40, 40).astype(np.float64)
    wb = rng.uniform(0.2, 3.0, n_bkg) if weighted else None
    ws = rng.uniform(0.2, 3.0, n_sig) if weighted else None
    return bkg, sig, wb, ws


def _values(result: dict) -> dict:
    return {k: (v.reason if isinstance(v, Unavailable) else v) for k, v in result.items()}


case = dict(seed=st.integers(0, 2**32 - 1), n_bkg=st.integers(1200, 3000), n_sig=st.integers(20, 400),
            shift=st.integers(0, 15), weighted=st.booleans())


@settings(max_examples=25, deadline=None)
@given(transform=st.sampled_from(sorted(MONOTONE)), **case)
def test_metrics_depend_only_on_the_order_of_scores(transform, seed, n_bkg, n_sig, shift, weighted):
    bkg, sig, wb, ws = _draw(seed, n_bkg, n_sig, shift, weighted)
    f = MONOTONE[transform]
    for metric in (AUC(), EfficiencyAtBackground()):
        before = _values(metric.compute(_scored(bkg, sig, wb, ws)))
        after = _values(metric.compute(_scored(f(bkg), f(sig), wb, ws)))
        assert before.keys() == after.keys()
        for key in before:
            if isinstance(before[key], str):
                assert before[key] == after[key]
            else:
                assert after[key] == pytest.approx(before[key], abs=1e-12), (metric.name, key)
    # the selected background fraction of the best SIC point does not move either
    s0, s1 = MaxSIC().compute(_scored(bkg, sig, wb, ws)), MaxSIC().compute(_scored(f(bkg), f(sig), wb, ws))
    if not isinstance(s0["sic_max"], Unavailable):
        assert s1["sic_max"] == pytest.approx(s0["sic_max"], rel=1e-12)


@settings(max_examples=25, deadline=None)
@given(**case)
def test_auc_is_the_weighted_pair_count(seed, n_bkg, n_sig, shift, weighted):
    bkg, sig, wb, ws = _draw(seed, n_bkg, n_sig, shift, weighted)
    wb = np.ones(n_bkg) if wb is None else wb
    ws = np.ones(n_sig) if ws is None else ws
    # P(s > b) + P(s = b) / 2 over weighted pairs, by brute force over the pair matrix
    above = (sig[:, None] > bkg[None, :]) + 0.5 * (sig[:, None] == bkg[None, :])
    expected = float(ws @ above @ wb) / (ws.sum() * wb.sum())
    assert AUC().compute(_scored(bkg, sig, wb, ws))["auc"] == pytest.approx(expected, rel=1e-10)


@settings(max_examples=25, deadline=None)
@given(scale=st.floats(1e-3, 1e3), **case)
def test_swap_and_weight_symmetries(scale, seed, n_bkg, n_sig, shift, weighted):
    bkg, sig, wb, ws = _draw(seed, n_bkg, n_sig, shift, weighted)
    auc = AUC().compute(_scored(bkg, sig, wb, ws))["auc"]
    # swapping the roles of signal and background mirrors the AUC about 1/2
    assert AUC().compute(_scored(sig, bkg, ws, wb))["auc"] == pytest.approx(1.0 - auc, abs=1e-12)
    # negating every score mirrors it too (an order-reversing map)
    assert AUC().compute(_scored(-bkg, -sig, wb, ws))["auc"] == pytest.approx(1.0 - auc, abs=1e-12)
    # one overall scale of either sample's weights changes nothing (efficiencies are weight fractions)
    wb1 = np.ones(n_bkg) if wb is None else wb
    ws1 = np.ones(n_sig) if ws is None else ws
    scaled = _scored(bkg, sig, wb1 * scale, ws1 / scale)
    assert AUC().compute(scaled)["auc"] == pytest.approx(auc, rel=1e-9)
    eff0 = _values(EfficiencyAtBackground().compute(_scored(bkg, sig, wb1, ws1)))
    eff1 = _values(EfficiencyAtBackground().compute(_scored(bkg, sig, wb1, ws1 / scale)))
    for key, value in eff0.items():
        assert eff1[key] == value if isinstance(value, str) else eff1[key] == pytest.approx(value, rel=1e-9)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1000, 3000))
def test_identical_samples_give_auc_one_half_and_eff_equal_to_eps_b(seed, n):
    scores = np.random.default_rng(seed).normal(size=n)
    assert AUC().compute(_scored(scores, scores.copy()))["auc"] == pytest.approx(0.5, abs=1e-12)
    eff = EfficiencyAtBackground().compute(_scored(scores, scores.copy()))
    assert eff["eff@1e-2"] == pytest.approx(1e-2, abs=1e-12)
