"""Per-run efficiency metrics against hand-worked cases, scikit-learn, scipy and brute-force counting."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import mannwhitneyu
from sklearn.metrics import roc_auc_score

from hepad_bench import ScoredSample, ScoredSignal, Unavailable
from hepad_plugins.metrics import efficiency
from hepad_plugins.metrics._roc import inside_counts, roc_points, sic_curve, sic_floor, top_fraction
from hepad_plugins.metrics.efficiency import AUC, EfficiencyAtBackground, MaxSIC


def sample(score, weight=None) -> ScoredSample:
    score = np.asarray(score, dtype=np.float64)
    return ScoredSample(score=score, weight=np.ones(len(score)) if weight is None else np.asarray(weight, dtype=np.float64))


def scored(bkg, sig, wb=None, ws=None) -> ScoredSignal:
    return ScoredSignal(signal="s", background=sample(bkg, wb), signal_sample=sample(sig, ws))


def test_hook_lists_the_three_metrics():
    names = {cls.name for cls in efficiency.hepad_metrics()}
    assert names == {"auc", "eff_at_bkg", "sic_max"}


def test_auc_matches_mann_whitney_unweighted():
    rng = np.random.default_rng(1)
    bkg, sig = rng.normal(size=700), rng.normal(0.8, size=300)
    bkg[:50] = sig[:50] = 0.25  # ties count one half in both definitions
    u = mannwhitneyu(sig, bkg).statistic
    assert AUC().compute(scored(bkg, sig))["auc"] == pytest.approx(u / (len(sig) * len(bkg)), rel=1e-12)


def test_auc_with_integer_weights_equals_repeated_events():
    rng = np.random.default_rng(2)
    bkg, sig = rng.normal(size=400), rng.normal(1.0, size=200)
    wb, ws = rng.integers(1, 4, size=400), rng.integers(1, 4, size=200)
    repeated = roc_auc_score(np.r_[np.zeros(wb.sum()), np.ones(ws.sum())], np.r_[np.repeat(bkg, wb), np.repeat(sig, ws)])
    weighted = AUC().compute(scored(bkg, sig, wb, ws))["auc"]
    assert weighted == pytest.approx(repeated, rel=1e-12)
    assert weighted != pytest.approx(AUC().compute(scored(bkg, sig))["auc"], rel=1e-4)  # the weights matter here


def test_eff_hand_worked_vertical_step_counts_its_top():
    # Background 0..999; signal at 995.5, 990.5, 989.5 and seven low scores.
    # At eps_B = 1e-2 the threshold can sit at 989.5: 10 background events
    # (990..999) and 3 signal events pass -> eps_S = 3/10.
    sig = [995.5, 990.5, 989.5] + [0.5] * 7
    values = EfficiencyAtBackground().compute(scored(np.arange(1000), sig))
    assert values["eff@1e-2"] == pytest.approx(0.3)


def test_eff_hand_worked_ties_are_a_straight_segment():
    # 20 background and 4 of 10 signal events tie at the top score 1000:
    # that vertex is (eps_B, eps_S) = (0.02, 0.4); eps_B = 0.01 lies half way -> 0.2.
    bkg = np.r_[np.arange(980), np.full(20, 1000.0)]
    sig = [1000.0] * 4 + [0.5] * 6
    rng = np.random.default_rng(0)
    perm_b, perm_s = rng.permutation(1000), rng.permutation(10)
    for b, s in ((bkg, sig), (bkg[perm_b], np.asarray(sig)[perm_s])):  # event order must not matter
        assert EfficiencyAtBackground().compute(scored(b, s))["eff@1e-2"] == pytest.approx(0.2)


def test_eff_too_few_background_events_is_unavailable_with_the_count():
    values = EfficiencyAtBackground().compute(scored(np.arange(1000), [2000.0] * 5))
    assert values["eff@1e-2"] == pytest.approx(1.0)
    for key, n in (("eff@1e-3", 1), ("eff@1e-4", 0), ("eff@1e-5", 0)):
        assert isinstance(values[key], Unavailable)
        eps = key.split("@")[1]
        assert values[key].reason == f"only {n} background events above the threshold at eps_B={eps} (need >= 10)"


def test_eff_uses_the_effective_count_of_weighted_events():
    # The 10 highest background events carry weight 10 each: the top 1 % of the
    # total weight (10.9) holds just one of them, so eps_B = 1e-2 is not trusted.
    bkg = np.arange(1000.0)
    wb = np.where(bkg >= 990, 10.0, 1.0)
    values = EfficiencyAtBackground().compute(scored(bkg, [2000.0] * 5, wb))
    assert isinstance(values["eff@1e-2"], Unavailable)
    assert values["eff@1e-2"].reason.startswith("only 1 background events")
    unweighted = EfficiencyAtBackground().compute(scored(bkg, [2000.0] * 5))
    assert unweighted["eff@1e-2"] == pytest.approx(1.0)


def test_eff_matches_direct_counting_on_continuous_scores():
    # With distinct scores and N * eps integer, eps_S is the fraction of signal
    # above the (k+1)-th highest background score, k = N * eps.
    rng = np.random.default_rng(3)
    bkg, sig = rng.normal(size=20000), rng.normal(2.0, size=3000)
    values = EfficiencyAtBackground().compute(scored(bkg, sig))
    ranked = np.sort(bkg)[::-1]
    for key, k in (("eff@1e-2", 200), ("eff@1e-3", 20)):
        assert values[key] == pytest.approx(np.mean(sig > ranked[k]), abs=1e-12)
    assert isinstance(values["eff@1e-4"], Unavailable)


def test_eff_with_integer_weights_matches_repeated_events():
    rng = np.random.default_rng(4)
    bkg, sig = rng.normal(size=5000), rng.normal(1.5, size=500)
    wb, ws = rng.integers(1, 3, size=5000), rng.integers(1, 3, size=500)
    rep_b, rep_s = np.repeat(bkg, wb), np.repeat(sig, ws)
    weighted = EfficiencyAtBackground().compute(scored(bkg, sig, wb, ws))["eff@1e-2"]
    # In the repeated sample, copies tie; interpolation is along the same path.
    eps_b, eps_s = roc_points(sample(rep_b), sample(rep_s))
    assert weighted == pytest.approx(np.interp(1e-2, eps_b, eps_s), abs=1e-12)


def test_sic_max_hand_worked_perfect_separation():
    # All 10 signal events above 1000 background events: floor = 10/1000,
    # eps_S = 1 there -> SIC = 1 / sqrt(0.01) = 10.
    values = MaxSIC().compute(scored(np.arange(1000), np.full(10, 5000.0)))
    assert values["sic_max"] == pytest.approx(10.0)
    assert values["sic_max_eps_b"] == pytest.approx(0.01)


def test_sic_max_matches_brute_force_over_thresholds():
    rng = np.random.default_rng(5)
    n = 4000
    bkg, sig = rng.normal(size=n), rng.normal(1.8, size=600)
    ranked = np.sort(bkg)[::-1]
    # At eps_B = k / n the best eps_S keeps the signal above the (k+1)-th background score.
    k = np.arange(10, n)
    sic = np.array([np.mean(sig > ranked[i]) for i in k]) / np.sqrt(k / n)
    values = MaxSIC().compute(scored(bkg, sig))
    assert values["sic_max"] == pytest.approx(sic.max(), rel=1e-12)
    assert values["sic_max_eps_b"] == pytest.approx(k[sic.argmax()] / n)


def test_sic_floor_and_unavailable():
    assert sic_floor(sample(np.arange(1000.0))) == pytest.approx(0.01)
    assert sic_floor(sample(np.random.default_rng(0).normal(size=200_000))) == pytest.approx(1e-4)
    values = MaxSIC().compute(scored(np.arange(5.0), [10.0]))
    assert isinstance(values["sic_max"], Unavailable) and isinstance(values["sic_max_eps_b"], Unavailable)


def test_sic_curve_and_roc_points_agree_with_sklearn_points():
    rng = np.random.default_rng(6)
    s = scored(rng.normal(size=300), rng.normal(1, size=100))
    eps_b, eps_s = roc_points(s)
    assert eps_b[0] == 0 and eps_b[-1] == pytest.approx(1) and eps_s[-1] == pytest.approx(1)
    assert np.all(np.diff(eps_b) >= 0) and np.all(np.diff(eps_s) >= 0)
    # 400 distinct scores -> 400 vertices plus the origin
    assert len(eps_b) == 401
    es, eb, sic = sic_curve(s.background, s.signal_sample)
    assert np.all(eb > 0) and np.allclose(sic, es / np.sqrt(eb))
    es2, eb2, _ = sic_curve(s, min_eps_b=0.1)
    assert eb2.min() >= 0.1 and len(eb2) < len(eb)


def test_top_fraction_threshold():
    idx, n_eff, threshold = top_fraction(np.arange(100.0), np.ones(100), 0.05)
    assert sorted(idx.tolist()) == [95, 96, 97, 98, 99] and n_eff == pytest.approx(5) and threshold == 95.0


def test_empty_signal_is_unavailable_everywhere():
    s = scored(np.arange(100.0), [])
    for metric in (AUC(), EfficiencyAtBackground(), MaxSIC()):
        assert all(isinstance(v, Unavailable) for v in metric.compute(s).values())


def test_inside_counts_agree_with_top_fraction_on_weighted_events():
    rng = np.random.default_rng(7)
    score, weight = rng.normal(size=3000), rng.uniform(0.5, 2.0, size=3000)
    fractions = [0.3, 1e-2, 1e-3, 1e-5]
    expected = []
    for f in fractions:
        idx = np.argsort(-score)[: int(np.sum(np.cumsum(weight[np.argsort(-score)]) <= f * weight.sum()))]
        expected.append(weight[idx].sum() ** 2 / (weight[idx] ** 2).sum() if len(idx) else 0.0)
        assert top_fraction(score, weight, f)[1] == pytest.approx(expected[-1])
    assert inside_counts(score, weight, fractions) == pytest.approx(expected)


# -- intervals (68.27 %) -----------------------------------------------------------------
def test_working_point_interval_is_scipys_clopper_pearson():
    from scipy.stats import binomtest

    rng = np.random.default_rng(11)
    bkg, sig = rng.normal(size=5000), rng.normal(1.5, size=400)
    values = EfficiencyAtBackground().compute(scored(bkg, sig))
    k = int(round(values["eff@1e-2_n_sig"]))
    # 50 background events inside; signal up to the 51st background score counts (top of the vertical step)
    assert k == int(np.sum(sig > np.sort(bkg)[-51]))
    ci = binomtest(k, 400).proportion_ci(confidence_level=0.6827, method="exact")
    assert values["eff@1e-2"] == pytest.approx(k / 400)
    assert (values["eff@1e-2_lo"], values["eff@1e-2_hi"]) == pytest.approx((ci.low, ci.high), rel=1e-9)
    ci_b = binomtest(50, 5000).proportion_ci(confidence_level=0.6827, method="exact")
    assert values["eff@1e-2_n_bkg"] == pytest.approx(50)
    assert (values["eff@1e-2_bkg_lo"], values["eff@1e-2_bkg_hi"]) == pytest.approx((ci_b.low, ci_b.high), rel=1e-9)


def test_weighted_interval_uses_kish_effective_count():
    from scipy.stats import beta

    rng = np.random.default_rng(12)
    bkg, sig = rng.normal(size=3000), rng.normal(1.0, size=300)
    ws = rng.uniform(0.5, 2.0, size=300)
    values = EfficiencyAtBackground().compute(scored(bkg, sig, ws=ws))
    n_eff = ws.sum() ** 2 / np.sum(ws**2)
    k = values["eff@1e-2"] * n_eff
    assert values["eff@1e-2_n_sig"] == pytest.approx(k)
    assert values["eff@1e-2_lo"] == pytest.approx(beta.ppf(0.15865, k, n_eff - k + 1), rel=1e-6)
    assert values["eff@1e-2_hi"] == pytest.approx(beta.ppf(0.84135, k + 1, n_eff - k), rel=1e-6)


def test_auc_interval_agrees_with_an_independent_bootstrap():
    rng = np.random.default_rng(13)
    bkg, sig = np.round(rng.normal(size=1500), 1), np.round(rng.normal(0.7, size=300), 1)  # with ties
    values = AUC().compute(scored(bkg, sig))
    y = np.r_[np.zeros(1500), np.ones(300)]
    boot = []
    for _ in range(1500):  # stratified: each class resampled with its own size
        b, s = rng.choice(bkg, 1500), rng.choice(sig, 300)
        boot.append(roc_auc_score(y, np.r_[b, s]))
    lo, hi = np.quantile(boot, [0.15865, 0.84135])
    assert values["auc_lo"] < values["auc"] < values["auc_hi"]
    assert values["auc_lo"] == pytest.approx(lo, abs=0.003)
    assert values["auc_hi"] == pytest.approx(hi, abs=0.003)


def test_rate_working_points_follow_the_dataset_background_rate():
    rng = np.random.default_rng(14)
    bkg, sig = rng.normal(size=20000), rng.normal(1.0, size=500)
    with_rate = ScoredSignal("s", sample(bkg), sample(sig), meta={"background_rate_hz": 100.0})
    values = EfficiencyAtBackground().compute(with_rate)
    assert values["eff@1Hz"] == pytest.approx(values["eff@1e-2"], rel=1e-12)  # 1 Hz / 100 Hz = 1e-2
    # 50 events/day at 100 Hz is eps_B = 5.8e-6: about 0.1 background events of 20000
    assert isinstance(values["eff@50/day"], Unavailable) and "only 0 background events" in values["eff@50/day"].reason
    without = EfficiencyAtBackground().compute(scored(bkg, sig))
    assert isinstance(without["eff@1Hz"], Unavailable) and "background rate" in without["eff@1Hz"].reason


def test_sic_interval_from_scipys_binomial_intervals():
    from scipy.stats import binomtest

    rng = np.random.default_rng(15)
    bkg, sig = rng.normal(size=2000), rng.normal(2, size=200)
    v = MaxSIC().compute(scored(bkg, sig))
    assert v["sic_max_lo"] < v["sic_max"] < v["sic_max_hi"]
    k_b = int(round(v["sic_max_eps_b"] * 2000))
    k_s = int(round(v["sic_max"] * np.sqrt(v["sic_max_eps_b"]) * 200))
    s = binomtest(k_s, 200).proportion_ci(0.6827, "exact")
    b = binomtest(k_b, 2000).proportion_ci(0.6827, "exact")
    eps_s, eps_b = k_s / 200, k_b / 2000
    # lower edge: fewer signal and more background; upper edge: the other way round (relative widths in quadrature)
    lo = eps_s / np.sqrt(eps_b) * (1 - np.hypot(1 - s.low / eps_s, 1 - np.sqrt(eps_b / b.high)))
    hi = eps_s / np.sqrt(eps_b) * (1 + np.hypot(s.high / eps_s - 1, np.sqrt(eps_b / b.low) - 1))
    assert (v["sic_max_lo"], v["sic_max_hi"]) == pytest.approx((lo, hi), rel=1e-6)
