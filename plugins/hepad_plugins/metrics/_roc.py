"""Weighted ROC helpers shared by the metric plugins and the leaderboard.

Conventions (every metric of hepad-bench uses them):

* An event is *selected* at threshold ``t`` when ``score >= t`` (higher = more
  anomalous). The ROC curve is scikit-learn's ``roc_curve`` with event weights
  and ``drop_intermediate=False``: one vertex per distinct score.
* A working point ``eps_B`` between two vertices is read off by **linear
  interpolation** along the ROC path. A block of tied scores is therefore a
  straight segment: the value is what random tie-breaking gives on average,
  and it does not depend on the order of the events.
* A working point is only trusted when at least ``MIN_BACKGROUND_EVENTS``
  background events lie inside the top ``eps_B`` (weighted) fraction; with
  weights, the effective count ``(sum w)^2 / sum w^2`` of those events is used.
  For unit weights this is exactly ``N_bkg * eps_B >= 10``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import roc_curve

from hepad_bench.data import ScoredSample, ScoredSignal

#: Background events (effective count) needed inside a working point.
MIN_BACKGROUND_EVENTS = 10
#: Working points of the Dark Machines / ADC2021 tables: (key label, eps_B).
WORKING_POINTS: tuple[tuple[str, float], ...] = (("1e-2", 1e-2), ("1e-3", 1e-3), ("1e-4", 1e-4), ("1e-5", 1e-5))
#: Smallest eps_B the maximum SIC may use, whatever the background size.
SIC_MIN_EPS_B = 1e-4

# Relative slack for "inside the top fraction": 1e-3 * 1e5 must count 100 events, not 99.
_REL_TOL = 1e-9


def effective_count(weight: np.ndarray) -> float:
    """Kish's effective number of events, (sum w)^2 / sum w^2 (= N for unit weights)."""
    weight = np.asarray(weight, dtype=np.float64)
    sum_w2 = float(np.sum(weight**2))
    return float(np.sum(weight)) ** 2 / sum_w2 if sum_w2 > 0 else 0.0


def _descending(score: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(-np.asarray(score, dtype=np.float64), kind="stable")
    return order, np.cumsum(np.asarray(weight, dtype=np.float64)[order])


def top_fraction(score: np.ndarray, weight: np.ndarray, fraction: float) -> tuple[np.ndarray, float, float | None]:
    """The highest-scoring events that lie entirely inside the top ``fraction`` of the total weight.

    Returns (indices of those events, their effective count, the score of the
    last one = the threshold, or None when no event fits). Selecting
    ``score >= threshold`` gives the same events unless scores tie at the
    threshold.
    """
    order, cum_w = _descending(score, weight)
    if len(order) == 0 or cum_w[-1] <= 0:
        return order[:0], 0.0, None
    k = int(np.searchsorted(cum_w, fraction * cum_w[-1] * (1 + _REL_TOL), side="right"))
    inside = order[:k]
    threshold = float(np.asarray(score)[order[k - 1]]) if k else None
    return inside, effective_count(np.asarray(weight)[inside]), threshold


def inside_counts(score: np.ndarray, weight: np.ndarray, fractions: list[float]) -> list[float]:
    """Effective count of the events inside each top ``fraction`` (as :func:`top_fraction`), with one sort."""
    order, cum_w = _descending(score, weight)
    if len(order) == 0 or cum_w[-1] <= 0:
        return [0.0] * len(fractions)
    cum_w2 = np.cumsum(np.asarray(weight, dtype=np.float64)[order] ** 2)
    out = []
    for fraction in fractions:
        k = int(np.searchsorted(cum_w, fraction * cum_w[-1] * (1 + _REL_TOL), side="right"))
        out.append(float(cum_w[k - 1] ** 2 / cum_w2[k - 1]) if k and cum_w2[k - 1] > 0 else 0.0)
    return out


def _as_samples(scored_or_background: Any, signal: ScoredSample | None) -> tuple[ScoredSample, ScoredSample]:
    if isinstance(scored_or_background, ScoredSignal):
        return scored_or_background.background, scored_or_background.signal_sample
    if signal is None:
        raise TypeError("pass a ScoredSignal, or a background and a signal ScoredSample")
    return scored_or_background, signal


def roc_points(background: ScoredSample | ScoredSignal, signal: ScoredSample | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The weighted ROC curve as (eps_b, eps_s), from (0, 0) to (1, 1), eps_b non-decreasing.

    Accepts a background and a signal sample, or one ScoredSignal.
    """
    background, signal = _as_samples(background, signal)
    y = np.r_[np.zeros(len(background)), np.ones(len(signal))]
    score = np.r_[np.asarray(background.score, dtype=np.float64), np.asarray(signal.score, dtype=np.float64)]
    weight = np.r_[np.asarray(background.weight, dtype=np.float64), np.asarray(signal.weight, dtype=np.float64)]
    eps_b, eps_s, _ = roc_curve(y, score, sample_weight=weight, drop_intermediate=False)
    return eps_b, eps_s


def interpolate_roc(eps_b: np.ndarray, eps_s: np.ndarray, at: float) -> float:
    """eps_S at background efficiency ``at`` by linear interpolation along the ROC path.

    Where the path has a vertical step at ``at`` (signal-only scores), the top
    of the step counts: it is reachable without exceeding ``at``.
    """
    i = int(np.searchsorted(eps_b, at, side="right"))  # first vertex beyond `at`
    if i >= len(eps_b):
        return float(eps_s[-1])
    x0, y0, x1, y1 = eps_b[i - 1], eps_s[i - 1], eps_b[i], eps_s[i]
    return float(y0 + (y1 - y0) * (at - x0) / (x1 - x0))


def ten_event_fraction(background: ScoredSample) -> float:
    """The smallest top fraction of the background weight that holds MIN_BACKGROUND_EVENTS events.

    10 / N_bkg for unit weights; with weights, the smallest top fraction whose
    effective count reaches 10. Infinite when the whole background has fewer.
    """
    order, cum_w = _descending(background.score, background.weight)
    if len(order) == 0 or cum_w[-1] <= 0:
        return np.inf
    cum_w2 = np.cumsum(np.asarray(background.weight, dtype=np.float64)[order] ** 2)
    n_eff = cum_w**2 / np.where(cum_w2 > 0, cum_w2, np.inf)
    enough = np.flatnonzero(n_eff >= MIN_BACKGROUND_EVENTS * (1 - _REL_TOL))
    return float(cum_w[enough[0]] / cum_w[-1]) if len(enough) else np.inf


def sic_floor(background: ScoredSample) -> float:
    """Smallest eps_B for SIC: max(SIC_MIN_EPS_B, the fraction holding 10 background events); > 1 when none does."""
    return max(SIC_MIN_EPS_B, ten_event_fraction(background))


def sic_curve(background: ScoredSample | ScoredSignal, signal: ScoredSample | None = None,
              min_eps_b: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(eps_s, eps_b, sic = eps_s / sqrt(eps_b)) at every ROC vertex with eps_b > max(0, min_eps_b).

    Accepts a background and a signal sample, or one ScoredSignal. For plots,
    pass ``min_eps_b=sic_floor(background)`` to hide the statistically empty tail.
    """
    eps_b, eps_s = roc_points(background, signal)
    keep = (eps_b > 0) & (eps_b >= min_eps_b)
    return eps_s[keep], eps_b[keep], eps_s[keep] / np.sqrt(eps_b[keep])


def sic_max(background: ScoredSample, signal: ScoredSample, floor: float) -> tuple[float, float]:
    """(max of eps_s / sqrt(eps_b), the eps_b where it is reached) over the ROC path with eps_b >= floor.

    Along a straight ROC segment eps_s / sqrt(eps_b) = a / sqrt(x) + b sqrt(x)
    has no interior maximum, so the vertices plus the interpolated point at
    the floor are enough.
    """
    eps_b, eps_s = roc_points(background, signal)
    keep = eps_b >= floor
    xs = np.r_[floor, eps_b[keep]]
    ys = np.r_[interpolate_roc(eps_b, eps_s, floor), eps_s[keep]]
    sic = ys / np.sqrt(xs)
    best = int(np.argmax(sic))
    return float(sic[best]), float(xs[best])


# --------------------------------------------------------------------------- uncertainties
#: Confidence level of every interval hepad-bench reports: one Gaussian sigma (68.27 %).
INTERVAL_CL = 0.6827
def clopper_pearson(k: float, n: float, cl: float = INTERVAL_CL) -> tuple[float, float]:
    """Clopper-Pearson (exact binomial) interval of a proportion k / n at confidence ``cl``.

    The beta-quantile form, so that effective (Kish) counts of weighted events,
    which need not be integers, can be passed; for integers it is exactly
    ``scipy.stats.binomtest(k, n).proportion_ci(cl, "exact")``.
    """
    from scipy.stats import beta

    if n <= 0:
        return 0.0, 1.0
    k = min(max(float(k), 0.0), float(n))
    alpha = 1.0 - cl
    lo = 0.0 if k <= 0 else float(beta.ppf(alpha / 2, k, n - k + 1))
    hi = 1.0 if k >= n else float(beta.ppf(1 - alpha / 2, k + 1, n - k))
    return lo, hi


def passing_count(sample: ScoredSample, fraction_selected: float) -> tuple[float, float]:
    """(effective count k, effective total n) of a sample of which the weighted ``fraction_selected`` passes.

    With weights, a binomial interval on the weighted fraction uses Kish's
    effective total n = (sum w)^2 / sum w^2 and k = fraction x n.
    """
    n = effective_count(sample.weight)
    return fraction_selected * n, n


def delong_auc_interval(background: ScoredSample, signal: ScoredSample, cl: float = INTERVAL_CL) -> tuple[float, float, float]:
    """(AUC, lower, upper): DeLong's variance of the weighted AUC, a normal interval clipped to [0, 1].

    DeLong, DeLong, Clarke-Pearson (1988): with the placements
    V10(s) = P_w(b < s) + P_w(b = s) / 2 of each signal event and
    V01(b) = P_w(s > b) + P_w(s = b) / 2 of each background event,
    var(AUC) = var(V10) / n_s + var(V01) / n_b. With event weights the
    variances are weighted and n_s, n_b are Kish's effective counts. One sort,
    O(n log n): chosen over a bootstrap, which costs ~0.1 s per replicate for
    1e6 events; tests/test_metrics_efficiency.py checks it against a bootstrap.
    """
    from scipy.stats import norm

    score = np.r_[np.asarray(background.score, dtype=np.float64), np.asarray(signal.score, dtype=np.float64)]
    weight = np.r_[np.asarray(background.weight, dtype=np.float64), np.asarray(signal.weight, dtype=np.float64)]
    is_sig = np.r_[np.zeros(len(background), bool), np.ones(len(signal), bool)]
    # tie groups of ascending scores: inverse indices of the unique values
    _, group = np.unique(score, return_inverse=True)
    n_groups = int(group.max()) + 1
    b_in = np.bincount(group, weights=np.where(is_sig, 0.0, weight), minlength=n_groups)
    s_in = np.bincount(group, weights=np.where(is_sig, weight, 0.0), minlength=n_groups)
    total_b, total_s = b_in.sum(), s_in.sum()
    b_below = np.cumsum(b_in) - b_in
    s_above = total_s - np.cumsum(s_in)
    v10 = ((b_below + 0.5 * b_in) / total_b)[group[is_sig]]
    v01 = ((s_above + 0.5 * s_in) / total_s)[group[~is_sig]]
    ws, wb = weight[is_sig], weight[~is_sig]
    auc = float(np.sum(ws * v10) / total_s)

    def variance_of_mean(v: np.ndarray, w: np.ndarray) -> float:
        n = effective_count(w)
        if n <= 1:
            return 0.0
        var = float(np.sum(w * (v - np.sum(w * v) / w.sum()) ** 2) / w.sum()) * n / (n - 1)
        return var / n

    sigma = np.sqrt(variance_of_mean(v10, ws) + variance_of_mean(v01, wb))
    z = float(norm.ppf(0.5 + cl / 2))
    return auc, float(max(0.0, auc - z * sigma)), float(min(1.0, auc + z * sigma))
