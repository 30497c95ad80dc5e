"""Comparative metrics, computed at leaderboard time from several detectors' stored scores.

``mu_limit``: expected 95 % CL CLs upper limit on the signal strength mu from
a binned fit of the score distribution (pyhf), and its ratio to the
supervised DNN's limit (Romao, Castro, Pedro, EPJC 81 (2021) 27).

``score_correlation``: how alike detectors are: Pearson and Spearman
correlation of their scores on the same events, and the overlap (Jaccard
index) of the events they select at background efficiency 1e-3.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import toms748
from scipy.stats import rankdata

from hepad_bench import ComparativeMetric, ScoredSample, ScoredSignal, Unavailable, hookimpl
from hepad_bench.data import MetricValue
from hepad_plugins.metrics._roc import MIN_BACKGROUND_EVENTS, effective_count, ten_event_fraction, top_fraction

#: The reference detector of mu_up_over_dnn.
SUPERVISED_REFERENCE = "supervised-dnn"
#: Signal count assumed when the dataset card gives none, as a fraction of the background count.
DEFAULT_SIGNAL_FRACTION = 0.01
CL = 0.95

# --------------------------------------------------------------------------- limits


def score_bin_edges(background: ScoredSample) -> np.ndarray:
    """Inner bin edges (ascending scores) at background efficiencies 10^-0.5, 10^-1, 10^-1.5, ... down to the floor.

    The floor is the smallest top fraction of the (weighted) background that
    still holds 10 events (effective count), so the most anomalous bin, where
    the sensitivity is, never rests on fewer. Half-decade edges closer than a
    factor 2 to the floor are dropped (no near-empty bin). Bins are
    (-inf, e0), [e0, e1), ..., [e_last, inf): an event on an edge goes up,
    as ``score >= threshold`` selects it.
    """
    floor = ten_event_fraction(background)
    if not floor <= 1:
        return np.array([])
    half_decades = 10.0 ** (-0.5 * np.arange(1, 40))
    fractions = [f for f in half_decades if f >= 2 * floor] + ([floor] if floor < 1 else [])
    thresholds = [top_fraction(background.score, background.weight, f)[2] for f in fractions]
    return np.unique([t for t in thresholds if t is not None])


def binned(sample: ScoredSample, inner_edges: np.ndarray, total: float) -> tuple[np.ndarray, np.ndarray]:
    """(weighted counts per bin scaled so the sample sums to ``total``, the scaled MC-statistical uncertainty)."""
    index = np.searchsorted(inner_edges, np.asarray(sample.score), side="right")
    w = np.asarray(sample.weight, dtype=np.float64)
    n_bins = len(inner_edges) + 1
    sum_w = np.bincount(index, weights=w, minlength=n_bins)
    sum_w2 = np.bincount(index, weights=w**2, minlength=n_bins)
    scale = total / w.sum()
    return sum_w * scale, np.sqrt(sum_w2) * scale


def expected_upper_limit(signal: np.ndarray, background: np.ndarray,
                         background_uncertainty: np.ndarray | None = None, cl: float = CL) -> float:
    """Median expected CLs upper limit on mu for ``mu * signal + background`` (pyhf, asymptotic q~_mu).

    The "observed" data are the background-only Asimov dataset (main bins =
    background, auxiliary data nominal), for which the observed CLs equals the
    median expected one; the limit is the root of CLs(mu) = 1 - cl. Poisson
    terms only, unless ``background_uncertainty`` (absolute, per bin) adds a
    Poisson-constrained ``shapesys`` per bin (MC statistics).
    """
    import pyhf  # imported here: ~1-3 s, only the leaderboard needs it

    signal, background = np.asarray(signal, dtype=np.float64), np.asarray(background, dtype=np.float64)
    keep = background > 0  # a bin without background cannot enter a Poisson model
    signal, background = signal[keep], background[keep]
    if not np.any(signal > 0):
        raise ValueError("no signal in any bin with background")
    # Rescale the signal so that the limit is O(1): the Gaussian estimate 1.96 / sqrt(sum s^2 / b).
    scale = 1.0 / float(np.sqrt(np.sum(signal**2 / background)))
    modifiers: list[dict[str, Any]] = []
    if background_uncertainty is not None:
        unc = np.maximum(np.asarray(background_uncertainty, dtype=np.float64)[keep], 1e-9 * background)
        modifiers = [{"name": "mc_stat", "type": "shapesys", "data": unc.tolist()}]
    spec = {
        "channels": [{"name": "score", "samples": [
            {"name": "signal", "data": (signal * scale).tolist(),
             "modifiers": [{"name": "mu", "type": "normfactor", "data": None}]},
            {"name": "background", "data": background.tolist(), "modifiers": modifiers},
        ]}],
        "parameters": [{"name": "mu", "bounds": [[0.0, 1000.0]]}],
    }
    model = pyhf.Model(spec, poi_name="mu", validate=False)
    asimov = background.tolist() + list(model.config.auxdata)

    def cls_minus_alpha(mu: float) -> float:
        return float(pyhf.infer.hypotest(mu, asimov, model, test_stat="qtilde")) - (1 - cl)

    low, high = 0.5, 4.0  # around 1.96 in rescaled units
    while cls_minus_alpha(low) < 0 and low > 1e-6:
        low /= 4
    while cls_minus_alpha(high) > 0 and high < 900:
        high = min(1000.0, high * 4)
    return toms748(cls_minus_alpha, low, high, rtol=1e-5) * scale


def _normalisation(meta: Mapping[str, Any], signal_name: str, background: ScoredSample) -> tuple[float, float, bool]:
    """(expected background count, expected signal count at mu = 1, taken from the dataset meta?)."""
    n_b, n_s = meta.get("n_background_expected"), meta.get("n_signal_expected")
    if isinstance(n_s, Mapping):
        n_s = n_s.get(signal_name)
    if n_b is not None and n_s is not None:
        return float(n_b), float(n_s), True
    n_b = float(np.sum(background.weight))
    return n_b, DEFAULT_SIGNAL_FRACTION * n_b, False


@dataclass(frozen=True)
class LimitInput:
    signal: np.ndarray
    background: np.ndarray
    background_uncertainty: np.ndarray
    n_background: float
    n_signal: float
    from_meta: bool
    signal_uncertainty: np.ndarray | None = None


def limit_input(scored: ScoredSignal) -> LimitInput:
    """The binned signal and background expectations of one run for one signal."""
    edges = score_bin_edges(scored.background)
    n_b, n_s, from_meta = _normalisation(scored.meta, scored.signal, scored.background)
    b, b_unc = binned(scored.background, edges, n_b)
    s, s_unc = binned(scored.signal_sample, edges, n_s)
    return LimitInput(s, b, b_unc, n_b, n_s, from_meta, s_unc)


def template_relative_uncertainty(data: LimitInput) -> float:
    """Relative 68 % uncertainty of an expected limit from the finite test samples that fill its templates.

    In the Gaussian regime mu_up is proportional to F^(-1/2), F = sum s_i^2 / b_i;
    each bin's s_i and b_i carry their MC-statistical uncertainties
    (sqrt(sum w^2), i.e. 1 / sqrt(effective count) relative), so
    var F = sum (s_i^2 / b_i)^2 (4 (ds_i / s_i)^2 + (db_i / b_i)^2) and
    d mu / mu = sqrt(var F) / (2 F). One bin with k_s signal and k_b background
    events: sqrt(4 / k_s + 1 / k_b) / 2.
    """
    s, b = data.signal, data.background
    ds = data.signal_uncertainty if data.signal_uncertainty is not None else np.zeros_like(s)
    keep = (s > 0) & (b > 0)
    s, b, ds, db = s[keep], b[keep], ds[keep], data.background_uncertainty[keep]
    if not len(s):
        return float("nan")
    terms = s**2 / b
    f = float(np.sum(terms))
    var_f = float(np.sum(terms**2 * (4 * (ds / s) ** 2 + (db / b) ** 2)))
    return float(np.sqrt(var_f) / (2 * f))


def reference_row(rows: Mapping[str, Any]) -> str | None:
    """The supervised DNN's row: named exactly, or the one row labelled "supervised-dnn [config]"."""
    if SUPERVISED_REFERENCE in rows:
        return SUPERVISED_REFERENCE
    labelled = [name for name in rows if name.startswith(SUPERVISED_REFERENCE + " ")]
    return labelled[0] if len(labelled) == 1 else None


class MuLimit(ComparativeMetric):
    """Expected 95% CL upper limit on the signal strength from a fit of the score histogram, over the supervised DNN's (pyhf).

    Romao, Castro, Pedro, EPJC 81 (2021) 27. Bins at background efficiencies
    10^-0.5, 10^-1, ... down to 10 background events in the top bin; signal x mu
    + background, statistical uncertainties only (Poisson; set
    ``mc_stat_uncertainty`` for the background templates' MC statistics);
    asymptotic CLs on the background-only Asimov data.

    Normalisation: the test background is scaled to the dataset's
    ``meta["n_background_expected"]`` and each signal to
    ``meta["n_signal_expected"][signal]`` (sigma x efficiency x L_int, see
    hepad_plugins.datasets._yields), so mu = 1 is the signal at its nominal
    cross section and mu_up limits sigma / sigma_nominal (mu_norm_from_card =
    1). A dataset without them falls back to the test background count with
    signal = 1 % of it (mu_norm_from_card = 0; mu_up is then not physical,
    only the ratio to the DNN is meaningful); the leaderboard's heading says which.

    What is averaged: the leaderboard calls ``compare`` once per seed with one
    run per detector, so every value is one seed's; mu_up_over_dnn is that
    seed's limit over the same seed's DNN limit, and the leaderboard
    aggregates these per-seed ratios over seeds (median and 68 % band). Given
    several runs per detector, mu_up is their mean and the ratio that of the
    means. Keys: mu_up, mu_up_over_dnn (1 = as good as supervised, larger is
    worse), mu_n_background, mu_n_signal, mu_norm_from_card; mu_up_lo/_hi and
    mu_up_over_dnn_lo/_hi: 68 % intervals from the statistics of the test
    samples that fill the templates (:func:`template_relative_uncertainty`,
    mu x exp(+-rel); for the ratio both relative uncertainties in quadrature).
    """

    name = "mu_limit"
    version = "2"  # 2: physical yields from the dataset meta where it has them
    mc_stat_uncertainty = False

    def limit(self, scored: ScoredSignal) -> tuple[MetricValue, LimitInput | None]:
        if len(scored.signal_sample) == 0 or len(scored.background) == 0:
            return Unavailable("no signal or no background events were scored"), None
        if effective_count(scored.background.weight) < MIN_BACKGROUND_EVENTS:
            return Unavailable(f"fewer than {MIN_BACKGROUND_EVENTS} background events to bin"), None
        data = limit_input(scored)
        try:
            unc = data.background_uncertainty if self.mc_stat_uncertainty else None
            return expected_upper_limit(data.signal, data.background, unc), data
        except Exception as exc:  # a failed fit is a missing value, not a lost leaderboard
            return Unavailable(f"limit fit failed: {type(exc).__name__}: {exc}"), data

    def compare(self, signal: str, runs: Mapping[str, list[ScoredSignal]]) -> Mapping[str, Mapping[str, MetricValue]]:
        out: dict[str, dict[str, MetricValue]] = {}
        relative: dict[str, float] = {}
        for detector, seeds in runs.items():
            limits, last, reasons, rels = [], None, [], []
            for scored in seeds:
                value, data = self.limit(scored)
                last = data or last
                if isinstance(value, Unavailable):
                    reasons.append(value.reason)
                else:
                    limits.append(value)
                    rels.append(template_relative_uncertainty(data))
            values: dict[str, MetricValue] = {
                "mu_up": float(np.mean(limits)) if limits else Unavailable(reasons[0] if reasons else "no runs")
            }
            if limits and np.all(np.isfinite(rels)):
                # several runs: the mean's relative uncertainty, as if the runs' template fluctuations were independent
                rel = float(np.sqrt(np.sum(np.square(rels) * np.square(limits))) / np.sum(limits))
                relative[detector] = rel
                values |= {"mu_up_lo": values["mu_up"] * np.exp(-rel), "mu_up_hi": values["mu_up"] * np.exp(rel)}
            if last is not None:
                values |= {"mu_n_background": last.n_background, "mu_n_signal": last.n_signal,
                           "mu_norm_from_card": 1.0 if last.from_meta else 0.0}
            out[detector] = values
        reference_name = reference_row(out)
        reference = out[reference_name]["mu_up"] if reference_name else None
        for detector, values in out.items():
            mu = values["mu_up"]
            if isinstance(mu, Unavailable):
                values["mu_up_over_dnn"] = mu
            elif reference is None:
                values["mu_up_over_dnn"] = Unavailable(
                    f"no single {SUPERVISED_REFERENCE} run for signal {signal} to normalise to")
            elif isinstance(reference, Unavailable):
                values["mu_up_over_dnn"] = Unavailable(f"the {SUPERVISED_REFERENCE} limit is unavailable: {reference.reason}")
            else:
                values["mu_up_over_dnn"] = mu / reference
                if detector != reference_name and detector in relative and reference_name in relative:
                    # both limits' template uncertainties in quadrature (they share the background events: conservative)
                    rel = float(np.hypot(relative[detector], relative[reference_name]))
                    values |= {"mu_up_over_dnn_lo": mu / reference * np.exp(-rel),
                               "mu_up_over_dnn_hi": mu / reference * np.exp(rel)}
        return out


# --------------------------------------------------------------------------- correlations

JACCARD_EPS_B = 1e-3


def _matched(a: ScoredSample, b: ScoredSample) -> tuple[np.ndarray, np.ndarray] | None:
    """Both detectors' scores on the events they share (matched by event id), or None."""
    if a.event is None or b.event is None:
        return (a.score, b.score) if len(a) == len(b) else None
    _, ia, ib = np.intersect1d(a.event, b.event, assume_unique=True, return_indices=True)
    return a.score[ia], b.score[ib]


def pearson_spearman(x: np.ndarray, y: np.ndarray) -> tuple[MetricValue, MetricValue]:
    """Unweighted Pearson correlation and Spearman's rho (Pearson of the ranks, ties averaged)."""
    if len(x) < 3:
        why = "fewer than 3 shared events"
        return Unavailable(why), Unavailable(why)
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        why = "a detector gives every shared event the same score"
        return Unavailable(why), Unavailable(why)
    pearson = float(np.corrcoef(x, y)[0, 1])
    spearman = float(np.corrcoef(rankdata(x), rankdata(y))[0, 1])
    return pearson, spearman


def selected_events(scored: ScoredSignal, eps_b: float = JACCARD_EPS_B) -> set[tuple[str, int]] | Unavailable:
    """(sample, event) of the background and signal events with score >= the detector's threshold at ``eps_b``."""
    bkg, sig = scored.background, scored.signal_sample
    _, n_inside, threshold = top_fraction(bkg.score, bkg.weight, eps_b)
    if n_inside < MIN_BACKGROUND_EVENTS * (1 - 1e-9) or threshold is None:
        return Unavailable(f"only {n_inside:.0f} background events above the threshold at eps_B={eps_b:g} "
                           f"(need >= {MIN_BACKGROUND_EVENTS})")

    def ids(sample: ScoredSample) -> np.ndarray:
        return np.arange(len(sample)) if sample.event is None else np.asarray(sample.event)

    out = {("b", int(e)) for e in ids(bkg)[np.asarray(bkg.score) >= threshold]}
    return out | {("s", int(e)) for e in ids(sig)[np.asarray(sig.score) >= threshold]}


def jaccard(a: set, b: set) -> float:
    union = a | b
    return len(a & b) / len(union) if union else 1.0


class ScoreCorrelation(ComparativeMetric):
    """Pearson / Spearman correlation of detectors' scores on the same events, and Jaccard overlap of their selections at eps_B = 1e-3.

    Per detector and other detector: pearson:<other>, spearman:<other> on the
    shared background test events (matched by event id), pearson_signal:<other>,
    spearman_signal:<other> on this signal's events, jaccard@1e-3:<other> of
    the background + signal events each selects at its own eps_B = 1e-3
    threshold. Unweighted; each detector's first seed is used (scores of
    different seeds are different detectors' worth of randomness, not noise
    to average).
    """

    name = "score_correlation"
    version = "1"

    def compare(self, signal: str, runs: Mapping[str, list[ScoredSignal]]) -> Mapping[str, Mapping[str, MetricValue]]:
        first = {name: seeds[0] for name, seeds in runs.items() if seeds}
        selections = {name: selected_events(s) for name, s in first.items()}
        out: dict[str, dict[str, MetricValue]] = {name: {} for name in first}
        names = sorted(first)
        for i, a in enumerate(names):
            for b in names[i:]:
                pair: dict[str, MetricValue] = {}
                for suffix, sample_of in (("", lambda s: s.background), ("_signal", lambda s: s.signal_sample)):
                    matched = _matched(sample_of(first[a]), sample_of(first[b]))
                    if matched is None:
                        why = "events cannot be matched (no event ids, different counts)"
                        p, r = Unavailable(why), Unavailable(why)
                    else:
                        p, r = pearson_spearman(*matched)
                    pair[f"pearson{suffix}"], pair[f"spearman{suffix}"] = p, r
                sa, sb = selections[a], selections[b]
                bad = sa if isinstance(sa, Unavailable) else sb if isinstance(sb, Unavailable) else None
                pair[f"jaccard@{JACCARD_EPS_B:.0e}".replace("e-0", "e-")] = bad if bad is not None else jaccard(sa, sb)
                for key, value in pair.items():
                    out[a][f"{key}:{b}"] = value
                    out[b][f"{key}:{a}"] = value
        return out


@hookimpl
def hepad_metrics():
    return [MuLimit, ScoreCorrelation]
