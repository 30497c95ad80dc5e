"""Per-run efficiency metrics: AUC, signal efficiency at fixed background efficiency, maximum SIC.

The working-point conventions (threshold ``score >= t``, linear interpolation
along the weighted ROC, at least 10 background events inside a working point)
are those of :mod:`hepad_plugins.metrics._roc`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from sklearn.metrics import roc_auc_score

from hepad_bench import Metric, ScoredSignal, Unavailable, hookimpl
from hepad_bench.data import MetricValue
from hepad_plugins.metrics._roc import (
    MIN_BACKGROUND_EVENTS,
    WORKING_POINTS,
    interpolate_roc,
    roc_points,
    sic_floor,
    sic_max,
    inside_counts,
)


def _missing(scored: ScoredSignal) -> str | None:
    """Why no ROC can be drawn (an empty or weightless sample), or None."""
    for what, sample in (("background", scored.background), ("signal", scored.signal_sample)):
        if len(sample) == 0:
            return f"no {what} events were scored"
        if float(np.sum(sample.weight)) <= 0:
            return f"the {what} events have no positive total weight"
    return None


def _count(n: float) -> str:
    return f"{n:.0f}" if abs(n - round(n)) < 1e-6 else f"{n:.1f}"


class AUC(Metric):
    """ROC AUC with event weights (scikit-learn roc_auc_score); key auc."""

    name = "auc"
    version = "1"

    def compute(self, scored: ScoredSignal) -> Mapping[str, MetricValue]:
        if (why := _missing(scored)) is not None:
            return {"auc": Unavailable(why)}
        bkg, sig = scored.background, scored.signal_sample
        y = np.r_[np.zeros(len(bkg)), np.ones(len(sig))]
        return {"auc": float(roc_auc_score(y, np.r_[bkg.score, sig.score], sample_weight=np.r_[bkg.weight, sig.weight]))}


class EfficiencyAtBackground(Metric):
    """Signal efficiency at background efficiency 1e-2 ... 1e-5 (ADC2021, Dark Machines); keys eff@1e-2 ... eff@1e-5.

    eps_S is read off the weighted ROC by linear interpolation at eps_B (ties
    count as a straight segment, i.e. random tie-breaking on average). A working
    point with fewer than 10 background events (effective count for weighted
    events) inside it -- N_bkg * eps_B < 10 for unit weights -- is Unavailable.
    """

    name = "eff_at_bkg"
    version = "1"

    def compute(self, scored: ScoredSignal) -> Mapping[str, MetricValue]:
        keys = [f"eff@{label}" for label, _ in WORKING_POINTS]
        if (why := _missing(scored)) is not None:
            return {k: Unavailable(why) for k in keys}
        bkg = scored.background
        eps_b, eps_s = roc_points(bkg, scored.signal_sample)
        out: dict[str, MetricValue] = {}
        counts = inside_counts(bkg.score, bkg.weight, [eps for _, eps in WORKING_POINTS])
        for key, (label, eps), n_inside in zip(keys, WORKING_POINTS, counts):
            if n_inside < MIN_BACKGROUND_EVENTS * (1 - 1e-9):
                out[key] = Unavailable(
                    f"only {_count(n_inside)} background events above the threshold at eps_B={label} "
                    f"(need >= {MIN_BACKGROUND_EVENTS})"
                )
            else:
                out[key] = interpolate_roc(eps_b, eps_s, eps)
        return out


class MaxSIC(Metric):
    """Maximum significance improvement eps_S / sqrt(eps_B) for eps_B >= max(1e-4, 10 / N_bkg); keys sic_max, sic_max_eps_b.

    The floor keeps at least 10 background events (effective count) selected,
    so the maximum is not a fluctuation of the last few events. Scanned over
    the weighted ROC vertices and the interpolated point at the floor.
    """

    name = "sic_max"
    version = "1"

    def compute(self, scored: ScoredSignal) -> Mapping[str, MetricValue]:
        if (why := _missing(scored)) is not None:
            return {"sic_max": Unavailable(why), "sic_max_eps_b": Unavailable(why)}
        floor = sic_floor(scored.background)
        if not floor <= 1.0:
            why = f"fewer than {MIN_BACKGROUND_EVENTS} background events in the test sample"
            return {"sic_max": Unavailable(why), "sic_max_eps_b": Unavailable(why)}
        value, at = sic_max(scored.background, scored.signal_sample, floor)
        return {"sic_max": value, "sic_max_eps_b": at}


@hookimpl
def hepad_metrics():
    return [AUC, EfficiencyAtBackground, MaxSIC]

