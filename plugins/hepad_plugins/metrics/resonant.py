"""Metrics that use the resonant observable (mjj): bump hunt after a score cut, and mass sculpting.

The search's significance readout (a dijet-function fit of the selected
sidebands) is :mod:`hepad_plugins.metrics.sideband`.

Bump hunt (GAN-AE's final step, Vaslin, Barra, Donini, EPJC 83 (2023)): keep
the hunt events (held-out data over the full mjj range, signal injected) in
the top 10 % / 1 % of the score and run pyBumpHunter's BumpHunter1D
(Choudalakis, arXiv:1101.0390) on their mjj against a reference shape.

Reference shape: the mjj histogram of *all* hunt events before the cut,
scaled to the total count after the cut (normalised overall, not in the
sidebands). This is the right background when the score does not sculpt mjj
(``mass_correlation`` tells); a score correlated with mjj shapes the selected
spectrum and the hunt sees a fake bump. The injected signal is in the
pre-cut reference too, which slightly hides a real bump (conservative).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

from hepad_bench import Metric, ScoredSignal, Unavailable, hookimpl
from hepad_bench.data import MetricValue
from hepad_plugins.metrics._roc import top_fraction

#: Fractions of hunt events kept after the score cut: (key label, fraction).
HUNT_FRACTIONS: tuple[tuple[str, float], ...] = (("10%", 0.10), ("1%", 0.01))
#: Fewer selected hunt events than this: no hunt (a bump of a handful of events means nothing).
MIN_SELECTED = 10


@dataclass(frozen=True)
class BumpResult:
    local_significance: float  # from BumpHunter's smallest local p-value, one-sided Gaussian sigma (>= 0)
    global_significance: float  # from the pseudo-experiments; a lower limit when none beats the data
    global_pvalue: float
    low: float  # bump edges in mjj
    high: float


def mjj_edges(mjj: np.ndarray, bins: int) -> np.ndarray:
    """``bins`` equal-width bins between the 0.1 % and 99.9 % quantiles (the sparse far tail left out)."""
    lo, hi = np.quantile(mjj, [0.001, 0.999])
    if not hi > lo:
        hi = lo + 1.0
    return np.linspace(lo, hi, bins + 1)


def bump_hunt(mjj: np.ndarray, weight: np.ndarray, selected: np.ndarray, bins: int = 40,
              npe: int = 1000, seed: int = 0) -> BumpResult:
    """BumpHunter1D on the ``selected`` events' mjj against all events' mjj shape scaled to the selected count."""
    edges = mjj_edges(mjj, bins)
    reference, _ = np.histogram(mjj, bins=edges, weights=weight)
    data, _ = np.histogram(mjj[selected], bins=edges, weights=weight[selected])
    return bump_hunt_histograms(data, reference * (data.sum() / reference.sum()), edges, npe=npe, seed=seed)


def bump_hunt_histograms(data: np.ndarray, reference: np.ndarray, edges: np.ndarray,
                         npe: int = 1000, seed: int = 0) -> BumpResult:
    """BumpHunter1D (excess mode, windows of 1 to half the bins) on binned data against a normalised reference.

    ``npe`` background-only pseudo-experiments (Poisson around the reference)
    give the global p-value; ``seed`` makes them reproducible. numpy's global
    random state (which pyBumpHunter reseeds) is restored afterwards.
    """
    import pyBumpHunter  # imported here: it pulls in matplotlib, which `hepad-bench list` should not pay for

    hunter = pyBumpHunter.BumpHunter1D(npe=npe, nworker=1, seed=seed, mode="excess", width_min=1,
                             width_max=max(1, (len(edges) - 1) // 2))
    state = np.random.get_state()
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # pyBumpHunter prints its progress
            hunter.bump_scan(np.asarray(data, dtype=np.float64), np.asarray(reference, dtype=np.float64), is_hist=True)
    finally:
        np.random.set_state(state)
    local_p = float(hunter.min_Pval_ar[0])
    loc, width = int(hunter.min_loc_ar[0]), int(hunter.min_width_ar[0])
    return BumpResult(
        local_significance=max(0.0, float(norm.isf(local_p))),
        global_significance=max(0.0, float(hunter.significance)),
        global_pvalue=float(hunter.global_Pval),
        low=float(edges[loc]), high=float(edges[loc + width]),
    )


class BumpHunt(Metric):
    """Diagnostic: BumpHunter on mjj of hunt events in the top 10 % / 1 % of the score (pyBumpHunter, 40 bins, 1000 pseudo-experiments).

    Keys bump_local_sig@10%, bump_global_sig@10%, bump_low@10%, bump_high@10%
    and the same for 1%. Reference: the pre-cut hunt mjj histogram scaled to
    the post-cut count. The global significance is capped by the number of
    pseudo-experiments (about 3.1 sigma for 1000): then it is a lower limit.

    A diagnostic, not the search's significance (that is ``sideband_fit``):
    the pre-cut reference is right only for a score that does not sculpt
    mjj. It is computed only for scores valid over the whole mass range
    (``score_region`` "everywhere": unsupervised, supervised, LaCATHODE);
    for a score trained for the SR (and its sidebands) it is unavailable,
    since cutting on it across the full spectrum manufactures bumps.
    """

    name = "bump_hunt"
    version = "2"  # 2: unavailable for scores not valid outside the SR
    tasks = ("resonant",)
    bins = 40
    npe = 1000
    seed = 20210127  # fixed: the same scores always give the same significances

    def compute(self, scored: ScoredSignal) -> Mapping[str, MetricValue]:
        keys = [f"bump_{k}@{label}" for label, _ in HUNT_FRACTIONS for k in ("local_sig", "global_sig", "low", "high")]
        hunt = scored.hunt
        if scored.score_region != "everywhere":
            why = (f"diagnostic only for scores valid over the whole mass range; this one is trained for "
                   f"'{scored.score_region}' (use sideband_fit)")
            return dict.fromkeys(keys, Unavailable(why))
        if hunt is None or len(hunt) == 0:
            return dict.fromkeys(keys, Unavailable("the dataset has no hunt sample (full-range data) to bump hunt on"))
        if hunt.mjj is None:
            return dict.fromkeys(keys, Unavailable("the hunt sample has no resonant observable (mjj)"))
        out: dict[str, MetricValue] = {}
        for label, fraction in HUNT_FRACTIONS:
            selected, _, _ = top_fraction(hunt.score, hunt.weight, fraction)
            if len(selected) < MIN_SELECTED:
                why = f"only {len(selected)} hunt events in the top {label} of the score (need >= {MIN_SELECTED})"
                out |= {k: Unavailable(why) for k in keys if k.endswith(f"@{label}")}
                continue
            mask = np.zeros(len(hunt), dtype=bool)
            mask[selected] = True
            result = bump_hunt(np.asarray(hunt.mjj, dtype=np.float64), np.asarray(hunt.weight, dtype=np.float64),
                               mask, bins=self.bins, npe=self.npe, seed=self.seed)
            out |= {
                f"bump_local_sig@{label}": result.local_significance,
                f"bump_global_sig@{label}": result.global_significance,
                f"bump_low@{label}": result.low,
                f"bump_high@{label}": result.high,
            }
        return out


def mass_correlations(score: np.ndarray, mjj: np.ndarray, max_events: int = 5000, seed: int = 0) -> tuple[float, float]:
    """(distance correlation on a random subsample of at most ``max_events``, Pearson on all events).

    Unweighted. The subsample (fixed ``seed``) keeps dcor fast and the value
    reproducible; its statistical spread is ~1/sqrt(max_events).
    """
    # Imported here: dcor compiles its numba kernels at import (~10 s of CPU), which
    # only runs that compute this metric should pay, once per process.
    import dcor

    score, mjj = np.asarray(score, dtype=np.float64), np.asarray(mjj, dtype=np.float64)
    pick = np.arange(len(score))
    if len(pick) > max_events:
        pick = np.sort(np.random.default_rng(seed).choice(len(score), size=max_events, replace=False))
    dcorr = float(dcor.distance_correlation(score[pick], mjj[pick]))
    pearson = float(np.corrcoef(score, mjj)[0, 1])
    return dcorr, pearson


class MassCorrelation(Metric):
    """Correlation of the score with mjj on background (distance correlation, Pearson); keys mass_dcorr, mass_pearson.

    A mass-sculpting check (0 = the score does not know mjj). mass_dcorr uses a
    fixed-seed subsample of 5000 events. On resonant datasets the test
    background covers only the signal region, so mass_dcorr_hunt /
    mass_pearson_hunt repeat it on the hunt's true background over the full range,
    and mass_dcorr_sr / mass_dcorr_sb in the SR and in the readout sidebands
    (the dataset's override, else the adjacent 0.2 TeV windows): where a
    search cuts on the score.
    """

    name = "mass_correlation"
    version = "2"  # 2: SR and sideband dcorr
    tasks = ("unsupervised", "resonant")
    max_events = 5000
    seed = 0

    def _values(self, score: np.ndarray, mjj: np.ndarray | None, what: str) -> tuple[MetricValue, MetricValue]:
        if mjj is None:
            why = f"no resonant observable (mjj) for the {what}"
            return Unavailable(why), Unavailable(why)
        if len(score) < 3:
            why = f"fewer than 3 {what} events"
            return Unavailable(why), Unavailable(why)
        if np.ptp(score) == 0 or np.ptp(mjj) == 0:
            why = f"the score or mjj is constant on the {what}"
            return Unavailable(why), Unavailable(why)
        return mass_correlations(score, mjj, self.max_events, self.seed)

    def compute(self, scored: ScoredSignal) -> Mapping[str, MetricValue]:
        bkg = scored.background
        dcorr, pearson = self._values(bkg.score, bkg.mjj, "test background")
        out: dict[str, MetricValue] = {"mass_dcorr": dcorr, "mass_pearson": pearson}
        if scored.task == "resonant":
            hunt = scored.hunt
            if hunt is None or hunt.label is None:
                why = "no hunt sample with truth labels"
                out |= {"mass_dcorr_hunt": Unavailable(why), "mass_pearson_hunt": Unavailable(why)}
            else:
                is_bkg = np.asarray(hunt.label) == 0
                mjj = None if hunt.mjj is None else np.asarray(hunt.mjj)[is_bkg]
                out["mass_dcorr_hunt"], out["mass_pearson_hunt"] = self._values(
                    np.asarray(hunt.score)[is_bkg], mjj, "hunt background")
                out |= self._regions(hunt, is_bkg, scored.meta)
        return out

    def _regions(self, hunt, is_bkg: np.ndarray, meta: dict) -> dict[str, MetricValue]:
        """mass_dcorr_sr / mass_dcorr_sb: the hunt background's dcorr in the SR and in the readout sidebands."""
        from hepad_plugins.regions import region_masks

        if hunt.mjj is None or not (meta.get("signal_region") or "sr_low" in meta):
            why = "no signal region or no mjj"
            return {"mass_dcorr_sr": Unavailable(why), "mass_dcorr_sb": Unavailable(why)}
        mjj, score = np.asarray(hunt.mjj, dtype=np.float64), np.asarray(hunt.score)
        sr, sb = region_masks(mjj, meta, default="adjacent")
        out: dict[str, MetricValue] = {}
        for key, mask, what in (("mass_dcorr_sr", sr, "SR"), ("mass_dcorr_sb", sb, "sideband")):
            sel = mask & is_bkg
            out[key], _ = self._values(score[sel], mjj[sel], f"{what} hunt background")
        return out


@hookimpl
def hepad_metrics():
    return [BumpHunt, MassCorrelation]
