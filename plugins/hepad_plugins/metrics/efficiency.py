"""Per-run efficiency metrics: AUC, signal efficiency at fixed background efficiency or rate, maximum SIC.

The working-point conventions (threshold ``score >= t``, linear interpolation
along the weighted ROC, at least 10 background events inside a working point)
are those of :mod:`hepad_plugins.metrics._roc`.

Every value comes with its 68.27 % interval in flat sibling keys (see
docs/design.md, "metrics.json"): ``<key>_lo`` / ``<key>_hi``; a working point
adds ``<key>_n_sig`` and ``<key>_n_bkg`` (effective signal / background
events passing) and ``<key>_bkg_lo`` / ``<key>_bkg_hi`` (Clopper-Pearson
interval of the background efficiency the cut really has). Efficiencies use
Clopper-Pearson on Kish's effective counts; the AUC DeLong's variance
(weighted, normal interval); the SIC propagates both efficiencies' intervals.
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
    delong_auc_interval,
    clopper_pearson,
    passing_count,
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


#: Working points at a fixed background rate (seed 004, l+X@HLT: tens of events per day): (label, Hz).
RATE_POINTS: tuple[tuple[str, float], ...] = (("1Hz", 1.0), ("50/day", 50.0 / 86400.0))
NO_RATE = "the dataset records no background rate (meta background_rate_hz)"


def point_label(eps: float) -> str:
    """The key label of a background efficiency: 1e-2, 5e-2, 2.5e-4 (``eff@<label>``)."""
    mantissa, exponent = f"{eps:e}".split("e")
    return f"{float(mantissa):g}e{int(exponent)}"


def working_points(meta: Mapping) -> tuple[tuple[str, float], ...]:
    """(label, eps_B) of the working points: the dataset's (``Benchmark.meta["working_points"]``, filled from
    ``Dataset.working_points`` by the runner), largest first, else the defaults 1e-2 ... 1e-5."""
    raw = meta.get("working_points") if isinstance(meta, Mapping) else None
    if not raw:
        return WORKING_POINTS
    points = {}
    for eps in raw:
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 < eps <= 1:
            raise ValueError(f"the dataset's working_points {list(raw)!r} must be background efficiencies in (0, 1]")
        points[point_label(float(eps))] = float(eps)
    return tuple(sorted(points.items(), key=lambda item: -item[1]))


def background_rate(meta: Mapping) -> float | None:
    """The dataset's total background rate in Hz after its trigger (Benchmark.meta ``background_rate_hz``), or None."""
    rate = meta.get("background_rate_hz") if isinstance(meta, Mapping) else None
    try:
        rate = float(rate)
    except (TypeError, ValueError):
        return None
    return rate if np.isfinite(rate) and rate > 0 else None


def working_point_values(key: str, value: float, eps_b: float, bkg, sig) -> dict[str, float]:
    """A working point's eps_S with its Clopper-Pearson interval, passing counts and the eps_B interval."""
    k_s, n_s = passing_count(sig, value)
    k_b, n_b = passing_count(bkg, eps_b)
    lo, hi = clopper_pearson(k_s, n_s)
    b_lo, b_hi = clopper_pearson(k_b, n_b)
    return {key: value, f"{key}_lo": lo, f"{key}_hi": hi, f"{key}_n_sig": k_s, f"{key}_n_bkg": k_b,
            f"{key}_bkg_lo": b_lo, f"{key}_bkg_hi": b_hi}


def sic_interval(sic: float, eps_b: float, bkg, sig) -> tuple[float, float]:
    """68 % interval of eps_S / sqrt(eps_B) at a fixed point: both Clopper-Pearson intervals, relative widths in quadrature.

    eps_S and eps_B come from independent samples; SIC falls with eps_S and
    rises as eps_B falls, so the lower edge combines eps_S's lower and
    eps_B's upper deviation (and the other way round). The maximisation
    over the curve is not included (SIC_max is biased upwards by it).
    """
    eps_s = sic * np.sqrt(eps_b)
    s_lo, s_hi = clopper_pearson(*passing_count(sig, eps_s))
    b_lo, b_hi = clopper_pearson(*passing_count(bkg, eps_b))
    rel_s_down = (eps_s - s_lo) / eps_s if eps_s > 0 else 0.0
    rel_s_up = (s_hi - eps_s) / eps_s if eps_s > 0 else np.inf
    rel_b_down = 1 - np.sqrt(eps_b / b_hi)
    rel_b_up = np.sqrt(eps_b / b_lo) - 1 if b_lo > 0 else np.inf
    lo = sic * (1 - np.hypot(rel_s_down, rel_b_down))
    hi = sic * (1 + np.hypot(rel_s_up, rel_b_up)) if eps_s > 0 else s_hi / np.sqrt(b_lo if b_lo > 0 else eps_b)
    return float(max(lo, 0.0)), float(hi)


class AUC(Metric):
    """ROC AUC with event weights (scikit-learn roc_auc_score); keys auc, auc_lo, auc_hi (DeLong, 68.27 %)."""

    name = "auc"
    version = "2"  # 2: auc_lo / auc_hi (DeLong, 68.27 %)

    def compute(self, scored: ScoredSignal) -> Mapping[str, MetricValue]:
        if (why := _missing(scored)) is not None:
            return {"auc": Unavailable(why)}
        bkg, sig = scored.background, scored.signal_sample
        y = np.r_[np.zeros(len(bkg)), np.ones(len(sig))]
        auc = float(roc_auc_score(y, np.r_[bkg.score, sig.score], sample_weight=np.r_[bkg.weight, sig.weight]))
        _, lo, hi = delong_auc_interval(bkg, sig)
        return {"auc": auc, "auc_lo": min(lo, auc), "auc_hi": max(hi, auc)}


class EfficiencyAtBackground(Metric):
    """Signal efficiency at background efficiency 1e-2 ... 1e-5 (ADC2021, Dark Machines); keys eff@1e-2 ... eff@1e-5.

    A dataset that names its own working points (``Dataset.working_points``,
    or ``Benchmark.meta["working_points"]``) gets those instead: 0.05 gives
    the key ``eff@5e-2``.

    eps_S is read off the weighted ROC by linear interpolation at eps_B (ties
    count as a straight segment, i.e. random tie-breaking on average). A working
    point with fewer than 10 background events (effective count for weighted
    events) inside it -- N_bkg * eps_B < 10 for unit weights -- is Unavailable.
    """

    name = "eff_at_bkg"
    version = "2"  # 2: intervals and passing counts; eff@<rate> working points

    def compute(self, scored: ScoredSignal) -> Mapping[str, MetricValue]:
        fixed = working_points(scored.meta)
        fixed_labels = {label for label, _ in fixed}
        points = list(fixed)
        rate = background_rate(scored.meta)
        if rate is not None:
            points += [(label, per_second / rate) for label, per_second in RATE_POINTS]
        keys = [f"eff@{label}" for label, _ in fixed] + [f"eff@{label}" for label, _ in RATE_POINTS]
        if (why := _missing(scored)) is not None:
            return {k: Unavailable(why) for k in keys}
        out: dict[str, MetricValue] = {}
        if rate is None:
            out |= {f"eff@{label}": Unavailable(NO_RATE) for label, _ in RATE_POINTS}
        bkg, sig = scored.background, scored.signal_sample
        eps_b, eps_s = roc_points(bkg, sig)
        counts = inside_counts(bkg.score, bkg.weight, [min(eps, 1.0) for _, eps in points])
        for (label, eps), n_inside in zip(points, counts):
            key = f"eff@{label}"
            if eps > 1:
                out[key] = Unavailable(f"the background rate ({rate:.3g} Hz) is below the working point")
            elif n_inside < MIN_BACKGROUND_EVENTS * (1 - 1e-9):
                out[key] = Unavailable(
                    f"only {_count(n_inside)} background events above the threshold at eps_B="
                    f"{label if label in fixed_labels else f'{eps:.2g} ({label} at {rate:.3g} Hz)'} "
                    f"(need >= {MIN_BACKGROUND_EVENTS})"
                )
            else:
                out |= working_point_values(key, interpolate_roc(eps_b, eps_s, eps), eps, bkg, sig)
        return out


class MaxSIC(Metric):
    """Maximum significance improvement eps_S / sqrt(eps_B) for eps_B >= max(1e-4, 10 / N_bkg); keys sic_max, sic_max_eps_b.

    The floor keeps at least 10 background events (effective count) selected,
    so the maximum is not a fluctuation of the last few events. Scanned over
    the weighted ROC vertices and the interpolated point at the floor.
    """

    name = "sic_max"
    version = "2"  # 2: sic_max_lo / sic_max_hi

    def compute(self, scored: ScoredSignal) -> Mapping[str, MetricValue]:
        if (why := _missing(scored)) is not None:
            return {"sic_max": Unavailable(why), "sic_max_eps_b": Unavailable(why)}
        floor = sic_floor(scored.background)
        if not floor <= 1.0:
            why = f"fewer than {MIN_BACKGROUND_EVENTS} background events in the test sample"
            return {"sic_max": Unavailable(why), "sic_max_eps_b": Unavailable(why)}
        value, at = sic_max(scored.background, scored.signal_sample, floor)
        lo, hi = sic_interval(value, at, scored.background, scored.signal_sample)
        return {"sic_max": value, "sic_max_lo": lo, "sic_max_hi": hi, "sic_max_eps_b": at}


@hookimpl
def hepad_metrics():
    return [AUC, EfficiencyAtBackground, MaxSIC]

