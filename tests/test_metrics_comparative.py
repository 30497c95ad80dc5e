"""Comparative metrics: the pyhf limit machinery against the asymptotic formula, correlations against scipy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import brentq
from scipy.stats import norm, pearsonr, spearmanr

from hepad_bench import ScoredSample, ScoredSignal, Unavailable
from hepad_plugins.metrics import comparative
from hepad_plugins.metrics.comparative import (
    MuLimit,
    ScoreCorrelation,
    binned,
    expected_upper_limit,
    jaccard,
    score_bin_edges,
)


def asymptotic_limit(s, b, cl=0.95) -> float:
    """Median expected CLs limit for a Poisson counting experiment without uncertainties.

    On the background-only Asimov data q_mu = 2 sum[mu s - b ln(1 + mu s / b)],
    CLb = 1/2, so CLs = 2 Phi(-sqrt(q_mu)) = 1 - cl at sqrt(q_mu) = Phi^-1(1 - (1 - cl) / 2)
    (Cowan, Cranmer, Gross, Vitells, EPJC 71 (2011) 1554).
    """
    s, b = np.asarray(s, float), np.asarray(b, float)
    z = norm.isf((1 - cl) / 2)
    return brentq(lambda mu: 2 * np.sum(mu * s - b * np.log1p(mu * s / b)) - z**2, 1e-9, 1e6, xtol=1e-12)


@pytest.mark.parametrize("s,b", [([10.0], [100.0]), ([1.0], [5.0]), ([1.0, 5.0, 20.0], [1000.0, 50.0, 10.0])])
def test_expected_limit_matches_the_asymptotic_counting_formula(s, b):
    assert expected_upper_limit(s, b) == pytest.approx(asymptotic_limit(s, b), rel=1e-4)


def test_large_background_limit_is_gaussian_and_mc_stat_weakens_it():
    # b >> s: mu_up -> 1.96 sqrt(b) / s
    assert expected_upper_limit([100.0], [1e6]) == pytest.approx(norm.isf(0.025) * 1e3 / 100, rel=1e-3)
    s, b = [1.0, 5.0, 20.0], [1000.0, 50.0, 10.0]
    assert expected_upper_limit(s, b, 0.3 * np.sqrt(b)) > expected_upper_limit(s, b) * 1.01


def sample(score, events=None) -> ScoredSample:
    score = np.asarray(score, dtype=np.float64)
    return ScoredSample(score=score, weight=np.ones(len(score)),
                        event=np.arange(len(score)) if events is None else np.asarray(events))


def test_bin_edges_sit_at_half_decades_of_background_efficiency():
    bkg = sample(np.arange(1000.0))  # scores 0..999: eps_B = f -> threshold 1000 (1 - f)
    edges = score_bin_edges(bkg)
    # fractions 10^-0.5 (316 events), 0.1 (100), 10^-1.5 (31), floor 0.01 (10)
    assert edges.tolist() == [684.0, 900.0, 969.0, 990.0]
    counts, unc = binned(bkg, edges, total=2000.0)
    assert counts.tolist() == pytest.approx([1368.0, 432.0, 138.0, 42.0, 20.0])
    assert unc[-1] == pytest.approx(np.sqrt(10) * 2)


def scored(bkg, sig, meta=None, name="A") -> ScoredSignal:
    return ScoredSignal(signal=name, background=sample(bkg), signal_sample=sample(sig), meta=meta or {})


def test_mu_limit_end_to_end_against_hand_binned_formula_and_dnn_ratio():
    rng = np.random.default_rng(0)
    n = 2500
    bkg = rng.normal(size=n)
    meta = {"n_background_expected": 5000.0, "n_signal_expected": {"A": 50.0}}
    dnn = [scored(bkg, rng.normal(3.0, size=400), meta), scored(bkg, rng.normal(3.0, size=400), meta)]
    weak = [scored(bkg, rng.normal(1.0, size=400), meta)]
    out = MuLimit().compare("A", {"supervised-dnn": dnn, "weak": weak})
    # Independent binning by hand: edges at the scores of the last background event
    # inside the top 10^-0.5, 0.1, 10^-1.5, 0.01 and the 10-event floor 10/2500.
    ranked = np.sort(bkg)[::-1]
    edges = np.r_[-np.inf, np.sort([ranked[int(f * n) - 1] for f in (10**-0.5, 0.1, 10**-1.5, 0.01, 0.004)]), np.inf]

    def hand(sig):
        b = np.histogram(bkg, edges)[0] * 5000.0 / n
        s = np.histogram(sig, edges)[0] * 50.0 / 400
        return asymptotic_limit(s, b)

    assert out["weak"]["mu_up"] == pytest.approx(hand(weak[0].signal_sample.score), rel=1e-3)
    dnn_mean = np.mean([hand(d.signal_sample.score) for d in dnn])
    assert out["supervised-dnn"]["mu_up"] == pytest.approx(dnn_mean, rel=1e-3)
    assert out["supervised-dnn"]["mu_up_over_dnn"] == pytest.approx(1.0)
    assert out["weak"]["mu_up_over_dnn"] == pytest.approx(out["weak"]["mu_up"] / dnn_mean, rel=1e-3)
    assert out["weak"]["mu_up_over_dnn"] > 2  # a worse separation gives a weaker limit
    assert out["weak"]["mu_norm_from_card"] == 1.0 and out["weak"]["mu_n_signal"] == 50.0


def test_mu_limit_without_dnn_or_card_says_so():
    rng = np.random.default_rng(1)
    out = MuLimit().compare("A", {"weak": [scored(rng.normal(size=500), rng.normal(2, size=100))]})
    assert isinstance(out["weak"]["mu_up"], float)
    assert isinstance(out["weak"]["mu_up_over_dnn"], Unavailable) and "supervised-dnn" in out["weak"]["mu_up_over_dnn"].reason
    assert out["weak"]["mu_norm_from_card"] == 0.0
    assert out["weak"]["mu_n_background"] == 500.0 and out["weak"]["mu_n_signal"] == pytest.approx(5.0)
    tiny = MuLimit().compare("A", {"weak": [scored(np.arange(5.0), [1.0])]})
    assert isinstance(tiny["weak"]["mu_up"], Unavailable)


def test_pearson_spearman_match_scipy_after_matching_by_event_id():
    rng = np.random.default_rng(2)
    x = rng.normal(size=800)
    y = 0.6 * x + rng.normal(size=800)
    y[:100] = np.round(y[:100])  # some ties for Spearman
    perm = rng.permutation(800)  # detector B stored its events in another order, and lost 50 of them
    keep = perm[50:]
    a = ScoredSignal("A", sample(x), sample(x[:40]))
    b = ScoredSignal("A", sample(y[keep], events=keep), sample(y[:40]))
    out = ScoreCorrelation().compare("A", {"a": [a], "b": [b]})
    shared = np.sort(keep)
    assert out["a"]["pearson:b"] == pytest.approx(pearsonr(x[shared], y[shared]).statistic, rel=1e-10)
    assert out["b"]["spearman:a"] == pytest.approx(spearmanr(x[shared], y[shared]).statistic, rel=1e-10)
    assert out["a"]["pearson_signal:b"] == pytest.approx(pearsonr(x[:40], y[:40]).statistic, rel=1e-10)
    assert out["a"]["pearson:a"] == pytest.approx(1.0)
    # 800 background events: eps_B = 1e-3 keeps fewer than 10
    assert isinstance(out["a"]["jaccard@1e-3:b"], Unavailable)


def test_jaccard_hand_worked_sets():
    # 10000 background events; A ranks events 0..9 on top, B ranks 5..14 on top.
    n = 10000
    score_a, score_b = np.zeros(n), np.zeros(n)
    score_a[:10] = 10 + np.arange(10)
    score_b[5:15] = 10 + np.arange(10)
    # Signal: A selects signal events {0, 1, 2} (score >= its threshold 10), B selects {2, 3}.
    sig_a, sig_b = np.array([50.0, 50.0, 50.0, 0.0, 0.0]), np.array([0.0, 0.0, 50.0, 50.0, 0.0])
    a = ScoredSignal("A", sample(score_a), sample(sig_a))
    b = ScoredSignal("A", sample(score_b), sample(sig_b))
    out = ScoreCorrelation().compare("A", {"a": [a], "b": [b]})
    # shared: background 5..9 and signal 2 = 6 events; union: 15 background + 4 signal = 19
    assert out["a"]["jaccard@1e-3:b"] == pytest.approx(6 / 19)
    assert out["b"]["jaccard@1e-3:a"] == pytest.approx(6 / 19)
    assert out["a"]["jaccard@1e-3:a"] == 1.0
    assert jaccard({1, 2}, {2, 3}) == pytest.approx(1 / 3) and jaccard(set(), set()) == 1.0


def test_hook_lists_the_comparative_metrics():
    assert {m.name for m in comparative.hepad_metrics()} == {"mu_limit", "score_correlation"}


def test_reference_row_accepts_one_labelled_supervised_dnn_only():
    from hepad_plugins.metrics.comparative import reference_row

    assert reference_row({"vae": 1, "supervised-dnn": 2, "supervised-dnn [ab12cd34]": 3}) == "supervised-dnn"
    assert reference_row({"vae": 1, "supervised-dnn [ab12cd34]": 3}) == "supervised-dnn [ab12cd34]"
    assert reference_row({"supervised-dnn [a]": 1, "supervised-dnn [b]": 2}) is None
    assert reference_row({"supervised-dnn-large": 1}) is None


def test_mu_limit_with_the_physical_yields_of_l1_pythia_hand_worked():
    """One informative bin: every signal event above every background event; yields from the shipped provenance."""
    import json

    from hepad_plugins._resources import dataset_folder
    from hepad_plugins.datasets._yields import l1_generated_yields

    path = dataset_folder("l1-pythia") / "provenance.json"
    record = json.loads(path.read_text())
    # independently: sum of sigma x eff of the background processes and the hToTauTau signal, x 100 fb^-1 = 1e5 pb^-1
    processes = record["sources"]["background"]["attributes"]["processes"].values()
    sigma_b = sum(p["sigma_gen_pb"] * p["filter_efficiency"] for p in processes)
    proc = record["sources"]["signal/hToTauTau"]["attributes"]["process"]
    sigma_s = proc["sigma_gen_pb"] * proc["filter_efficiency"] * proc["forced_branching"]
    meta = l1_generated_yields(path)
    assert meta["n_background_expected"] == pytest.approx(sigma_b * 1e5, rel=1e-9)
    assert meta["n_signal_expected"]["hToTauTau"] == pytest.approx(sigma_s * 1e5, rel=1e-9)
    assert meta["background_rate_hz"] == pytest.approx(sigma_b * 2e34 / 1e36, rel=1e-9)  # 1 pb = 1e-36 cm^2

    # 1000 background events on [0, 1), 100 signal events at 2: the top bin holds the 10 highest background
    # events and all the signal; the lower bins hold no signal and carry no information on mu.
    bkg = np.linspace(0, 1, 1000, endpoint=False)
    runs = {"supervised-dnn": [scored(bkg, np.full(100, 2.0), meta, name="hToTauTau")]}
    values = MuLimit().compare("hToTauTau", runs)["supervised-dnn"]
    s, b = sigma_s * 1e5, sigma_b * 1e5 * 10 / 1000
    assert values["mu_norm_from_card"] == 1.0
    assert values["mu_up"] == pytest.approx(asymptotic_limit([s], [b]), rel=1e-3)
    assert values["mu_up"] == pytest.approx(1.96 * np.sqrt(b) / s, rel=1e-2)  # b >> s: Gaussian, ~0.4 x nominal
    # template statistics: 100 signal and 10 background test events in the bin -> sqrt(4/100 + 1/10) / 2
    rel = np.sqrt(4 / 100 + 1 / 10) / 2
    assert (values["mu_up_lo"], values["mu_up_hi"]) == pytest.approx(
        (values["mu_up"] * np.exp(-rel), values["mu_up"] * np.exp(rel)), rel=1e-9)
