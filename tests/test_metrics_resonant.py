"""Resonant metrics: bump hunt (pyBumpHunter) and mass correlation, against scipy and dcor-independent cases."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm, pearsonr, poisson

from hepad_bench import ScoredSample, ScoredSignal, Unavailable
from hepad_plugins.metrics import resonant
from hepad_plugins.metrics.resonant import BumpHunt, MassCorrelation, bump_hunt_histograms, mass_correlations


class QuickBumpHunt(BumpHunt):
    npe = 200  # the default 1000 costs ~1-2 s per hunt; the logic is the same


def toy_hunt(seed: int, n_bkg: int = 12000, n_sig: int = 300, sig_score: float = 2.5) -> ScoredSample:
    """Falling mjj background (TeV) and a 3.5 TeV signal; signal scores higher by ``sig_score``."""
    rng = np.random.default_rng(seed)
    mb = 2.5 + rng.exponential(0.5, size=3 * n_bkg)
    mb = mb[mb < 5.0][:n_bkg]
    ms = rng.normal(3.5, 0.1, size=n_sig)
    score = np.r_[rng.normal(size=n_bkg), rng.normal(sig_score, size=n_sig)]
    label = np.r_[np.zeros(n_bkg), np.ones(n_sig)].astype(np.int8)
    return ScoredSample(score=score, weight=np.ones(n_bkg + n_sig), mjj=np.r_[mb, ms], label=label)


def scored_with(hunt: ScoredSample | None, bkg_mjj=None, bkg_score=None, task="resonant") -> ScoredSignal:
    rng = np.random.default_rng(9)
    score = rng.normal(size=500) if bkg_score is None else bkg_score
    background = ScoredSample(score=score, weight=np.ones(len(score)), mjj=bkg_mjj)
    sig = ScoredSample(score=rng.normal(1, size=50), weight=np.ones(50))
    return ScoredSignal(signal="s", background=background, signal_sample=sig, task=task, hunt=hunt)


def test_hook_lists_the_metrics():
    assert {m.name for m in resonant.hepad_metrics()} == {"bump_hunt", "mass_correlation"}
    assert BumpHunt.tasks == ("resonant",) and set(MassCorrelation.tasks) == {"unsupervised", "resonant"}


def test_local_significance_of_a_single_bin_excess_matches_poisson():
    # Flat reference of 100 per bin, one bin with 150: the most significant
    # window is that bin alone, p = P(Poisson(100) >= 150).
    edges = np.linspace(0.0, 20.0, 21)
    reference = np.full(20, 100.0)
    data = reference.copy()
    data[7] = 150
    result = bump_hunt_histograms(data, reference, edges, npe=200, seed=1)
    assert result.local_significance == pytest.approx(norm.isf(poisson.sf(149, 100)), rel=1e-9)
    assert (result.low, result.high) == (7.0, 8.0)
    # no pseudo-experiment of pure background gets near 4.6 sigma local: global p = 0, capped significance
    assert result.global_pvalue == 0.0
    assert result.global_significance == pytest.approx(norm.isf(1 / 200))


def test_no_excess_gives_zero_local_significance():
    edges = np.linspace(0.0, 10.0, 11)
    reference = np.full(10, 50.0)
    result = bump_hunt_histograms(reference - 5, reference, edges, npe=50, seed=1)
    assert result.local_significance == 0.0 and result.global_pvalue == 1.0


def test_bump_hunt_finds_the_injected_resonance_and_is_reproducible():
    hunt = toy_hunt(0)
    values = QuickBumpHunt().compute(scored_with(hunt))
    for label in ("10%", "1%"):
        assert values[f"bump_low@{label}"] < 3.5 < values[f"bump_high@{label}"]
        assert values[f"bump_high@{label}"] - values[f"bump_low@{label}"] < 1.0
        assert values[f"bump_local_sig@{label}"] > 5
    assert values == QuickBumpHunt().compute(scored_with(hunt))


def test_bump_hunt_restores_numpy_global_random_state():
    np.random.seed(123)
    expected = np.random.RandomState(123).random_sample(3)
    QuickBumpHunt().compute(scored_with(toy_hunt(1, n_bkg=3000, n_sig=50)))
    assert np.allclose(np.random.random_sample(3), expected)


def test_bump_hunt_without_signal_in_the_score_sees_little():
    # Scores carry no information: the top 10 % is a random subset, shaped like the reference.
    hunt = toy_hunt(2, sig_score=0.0, n_sig=0)
    values = QuickBumpHunt().compute(scored_with(hunt))
    assert values["bump_local_sig@10%"] < 4
    assert values["bump_global_sig@10%"] < 2.5


def test_bump_hunt_unavailable_without_hunt_or_with_too_few_events():
    values = QuickBumpHunt().compute(scored_with(None))
    assert len(values) == 8 and all(isinstance(v, Unavailable) for v in values.values())
    small = toy_hunt(3, n_bkg=500, n_sig=0)
    values = QuickBumpHunt().compute(scored_with(small))
    assert isinstance(values["bump_local_sig@1%"], Unavailable) and "only 5 hunt events" in values["bump_local_sig@1%"].reason
    assert isinstance(values["bump_local_sig@10%"], float)


def test_mass_correlation_against_scipy_and_known_cases():
    rng = np.random.default_rng(4)
    mjj = rng.uniform(2.5, 5.0, size=3000)
    independent = rng.normal(size=3000)
    values = MassCorrelation().compute(scored_with(None, bkg_mjj=mjj, bkg_score=independent))
    assert values["mass_pearson"] == pytest.approx(pearsonr(independent, mjj).statistic, rel=1e-10)
    assert abs(values["mass_dcorr"]) < 0.1
    # A score that is a deterministic non-monotonic function of mjj: Pearson ~ 0, distance correlation large.
    folded = (mjj - 3.75) ** 2
    values = MassCorrelation().compute(scored_with(None, bkg_mjj=mjj, bkg_score=folded))
    assert abs(values["mass_pearson"]) < 0.1 and values["mass_dcorr"] > 0.4
    # Linear: both 1.
    values = MassCorrelation().compute(scored_with(None, bkg_mjj=mjj, bkg_score=2 * mjj + 1))
    assert values["mass_pearson"] == pytest.approx(1.0) and values["mass_dcorr"] == pytest.approx(1.0)


def test_mass_correlation_subsample_is_fixed_and_bounded():
    rng = np.random.default_rng(5)
    mjj = rng.uniform(size=20000)
    score = mjj + rng.normal(size=20000)
    a = mass_correlations(score, mjj, max_events=5000, seed=0)
    assert a == mass_correlations(score, mjj, max_events=5000, seed=0)
    full = mass_correlations(score, mjj, max_events=20000)
    assert a[0] == pytest.approx(full[0], abs=0.05)  # the subsample estimates the full-sample value


def test_mass_correlation_unavailable_without_mjj_and_hunt_background_used():
    values = MassCorrelation().compute(scored_with(None, task="unsupervised"))
    assert set(values) == {"mass_dcorr", "mass_pearson"} and all(isinstance(v, Unavailable) for v in values.values())
    hunt = toy_hunt(6, n_bkg=2000, n_sig=200)
    values = MassCorrelation().compute(scored_with(hunt))
    is_bkg = hunt.label == 0
    assert values["mass_pearson_hunt"] == pytest.approx(pearsonr(hunt.score[is_bkg], hunt.mjj[is_bkg]).statistic)
