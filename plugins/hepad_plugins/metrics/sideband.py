"""The resonant search's significance readout: a dijet-function fit of the selected sidebands.

What an analysis may use, and nothing else (CWoLa hunting, Collins, Howe,
Nachman, PRD 99 (2019) 014038, arXiv:1902.02634):

1. a score cut keeping the top fraction (10 %, 1 %) of the signal-region
   events; the same threshold is applied in the sidebands;
2. the selected mjj histogram *in the sidebands only* is fitted with the
   standard dijet function f(x) = p0 (1 - x)^p1 / x^(p2 + p3 ln x),
   x = mjj / 13 TeV, by a binned Poisson likelihood;
3. the fit, integrated over the SR bins, predicts the SR background B with
   its uncertainty sigma_B (linear propagation of the fit covariance);
4. the SR excess N - B is turned into a significance with the
   Cousins-Linnemann-Tucker Z_Bi (Poisson counting with the background
   uncertainty as an auxiliary measurement, tau = B / sigma_B^2; NIM A 595
   (2008) 480): p = I_{1/(1+tau)}(N, tau B + 1), the regularised incomplete
   beta function; Z = Phi^-1(1 - p), one-sided, 0 for a deficit.

Bins: eight per SR width, edges on the SR boundaries, extended into each
sideband by whole bins. The fit uses 4 parameters with at least 12 sideband
bins, 3 (p3 = 0) with at least 6, else 2 (p2 = p3 = 0): fewer parameters
than bins, and with a narrow window a smooth, local interpolation.

Which events, and which scores (``ScoredSignal.score_region``):

* a detector with out-of-fold scores of its training pool (CWoLa) is read
  out on that pool, the data it trained on, each event by the fold model
  that held it out (CWoLa hunting's k-folding);
* otherwise the held-out ``hunt`` data;
* a detector whose score is valid only in the SR (``score_region == "sr"``:
  ANODE, CATHODE, the idealised classifier) is never cut on in the
  sidebands (it was not trained there, and the fit could not be trusted:
  that is what LaCATHODE fixes). Instead the *pre-cut* sidebands of the
  hunt data are fitted, and the SR background after the cut is that
  prediction times the cut's efficiency on the detector's own model of the
  SR background (``Detector.background_template``: the idealised
  classifier's out-of-fold scores of its background sample, ANODE's p_BG
  samples; CATHODE's background estimate). Without a template: no value.
  The events are the out-of-fold training pool where the detector gives one
  (the idealised classifier: its SR data and template are then both single
  fold-model logits of unseen events, so one threshold means the same on
  both), else the hunt data (ANODE: hunt and template scored alike).

Sidebands of the readout: the dataset's override (``sb_width`` /
``sidebands``) where set, else CWoLa hunting's adjacent 0.2 TeV windows, the
same for every method so that methods are read out alike.

Look-elsewhere: one SR fixed in advance and two cuts: ``sb_Z`` is the best
cut's significance after a Sidak correction for the two cuts tried,
p = 1 - (1 - p_min)^2 (conservative: the cuts are nested, so positively
correlated). A sliding-window search corrects further over windows (see
``hepad_bench.search``) from ``sb_p_min`` and ``sb_trials``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

from hepad_bench import Metric, ScoredSample, ScoredSignal, Unavailable, hookimpl
from hepad_bench.data import MetricValue
from hepad_bench.significance import z_bi  # noqa: F401  (re-exported: the readout's significance)
from hepad_plugins.metrics._roc import top_fraction
from hepad_plugins.regions import region_masks, sideband_windows, signal_region

SQRT_S = 13.0  # TeV
#: Score cuts: (key label, fraction of the SR events kept).
CUTS: tuple[tuple[str, float], ...] = (("10%", 0.10), ("1%", 0.01))
BINS_PER_SR = 8
#: Fewer selected sideband events than this: no fit.
MIN_SIDEBAND_EVENTS = 5


# -- the dijet function and its Poisson fit -------------------------------------------------
def dijet_design(mjj: np.ndarray, n_params: int) -> np.ndarray:
    """Columns g_j with log f = sum_j theta_j g_j, theta = (ln p0, p1, p2, p3)[:n_params]."""
    x = np.asarray(mjj, dtype=np.float64) / SQRT_S
    lx = np.log(x)
    cols = [np.ones_like(x), np.log1p(-x), -lx, -lx * lx]
    return np.column_stack(cols[:n_params])


def dijet_function(mjj: np.ndarray, p0: float, p1: float, p2: float, p3: float = 0.0) -> np.ndarray:
    """f(x) = p0 (1 - x)^p1 / x^(p2 + p3 ln x), x = mjj / 13 TeV (mjj in TeV)."""
    x = np.asarray(mjj, dtype=np.float64) / SQRT_S
    return p0 * (1 - x) ** p1 / x ** (p2 + p3 * np.log(x))


@dataclass(frozen=True)
class DijetFit:
    theta: np.ndarray  # (ln p0, p1, p2, p3)[:n]: f = exp(design @ theta); bin content = f(centre) * width
    covariance: np.ndarray
    converged: bool

    def expected(self, centres: np.ndarray, widths: np.ndarray) -> np.ndarray:
        return np.exp(dijet_design(centres, len(self.theta)) @ self.theta) * widths


def fit_dijet(centres: np.ndarray, widths: np.ndarray, counts: np.ndarray, n_params: int,
              iterations: int = 100) -> DijetFit:
    """Binned Poisson maximum likelihood of the dijet function (bin content = f(centre) x width).

    log f is linear in theta, so this is a Poisson regression with a log
    link: the log-likelihood is concave and Newton's method with the exact
    Hessian (= the Fisher information, whose inverse is the covariance)
    finds the unique maximum; step halving keeps every step an improvement.
    """
    g = dijet_design(centres, n_params)
    offset = np.log(widths)
    counts = np.asarray(counts, dtype=np.float64)
    # start: least squares on log(n + 1/2), a fine first guess for a falling spectrum
    theta = np.linalg.lstsq(g, np.log(counts + 0.5) - offset, rcond=None)[0]

    def nll(t: np.ndarray) -> float:
        eta = np.clip(g @ t + offset, -700, 700)
        return float(np.sum(np.exp(eta) - counts * eta))

    current, converged = nll(theta), False
    for _ in range(iterations):
        mu = np.exp(np.clip(g @ theta + offset, -700, 700))
        grad = g.T @ (mu - counts)
        hess = g.T @ (g * mu[:, None])
        step = np.linalg.solve(hess + 1e-12 * np.eye(n_params), grad)
        scale = 1.0
        while scale > 1e-6:
            trial = theta - scale * step
            value = nll(trial)
            if value <= current:
                break
            scale /= 2
        else:
            converged = True  # no step improves any more: at the maximum (to rounding)
            break
        theta, previous, current = trial, current, value
        if abs(previous - current) < 1e-10 * max(1.0, abs(current)):
            converged = True
            break
    mu = np.exp(g @ theta + offset)
    covariance = np.linalg.pinv(g.T @ (g * mu[:, None]))
    return DijetFit(theta, covariance, converged)


# -- binning and the readout ---------------------------------------------------------------
def readout_bins(meta: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(edges, in_sr, in_sidebands per bin): BINS_PER_SR bins over the SR, whole bins outwards into the sidebands.

    A bin belongs to a sideband when its centre lies in one of the windows
    (gaps between explicit windows are left out of the fit).
    """
    low, high = signal_region(meta)
    width = (high - low) / BINS_PER_SR
    windows = sideband_windows(meta, "adjacent")
    below = max([low - lo for lo, hi in windows if hi <= low + 1e-9] or [0.0])
    above = max([hi - high for lo, hi in windows if lo >= high - 1e-9] or [0.0])
    n_below = int(np.floor(min(below, 50 * width) / width + 1e-9))
    n_above = int(np.floor(min(above, 50 * width) / width + 1e-9))
    edges = low + width * np.arange(-n_below, BINS_PER_SR + n_above + 1)
    centres = 0.5 * (edges[1:] + edges[:-1])
    in_sr = (centres > low) & (centres < high)
    in_sb = np.zeros(len(centres), dtype=bool)
    for lo, hi in windows:
        in_sb |= (centres > lo) & (centres < hi)
    return edges, in_sr, in_sb & ~in_sr


@dataclass(frozen=True)
class Readout:
    n_observed: float  # selected SR events
    background: float  # fitted SR background
    background_error: float
    p_value: float
    significance: float
    chi2_per_dof: float  # Pearson chi2 of the sideband fit per degree of freedom
    n_params: int


def sideband_readout(mjj: np.ndarray, weight: np.ndarray, selected: np.ndarray, meta: dict) -> Readout | str:
    """Fit the selected events' sidebands, predict the SR; a string says why it could not."""
    edges, in_sr_bin, sb = readout_bins(meta)
    counts, _ = np.histogram(mjj[selected], bins=edges, weights=weight[selected])
    centres, widths = 0.5 * (edges[1:] + edges[:-1]), np.diff(edges)
    n_sb_bins, n_sb = int(sb.sum()), float(counts[sb].sum())
    if n_sb < MIN_SIDEBAND_EVENTS:
        return f"only {n_sb:g} selected sideband events (need >= {MIN_SIDEBAND_EVENTS}) for the fit"
    n_params = 4 if n_sb_bins >= 12 else 3 if n_sb_bins >= 6 else 2
    if n_sb_bins <= n_params:
        return f"{n_sb_bins} sideband bins cannot constrain the dijet fit; widen the sidebands (sb_width)"
    fit = fit_dijet(centres[sb], widths[sb], counts[sb], n_params)
    if not fit.converged:
        return "the sideband fit did not converge"
    g_sr = dijet_design(centres[in_sr_bin], n_params)
    mu_sr = fit.expected(centres[in_sr_bin], widths[in_sr_bin])
    background = float(mu_sr.sum())
    jacobian = (g_sr * mu_sr[:, None]).sum(axis=0)  # d B / d theta
    sigma = float(np.sqrt(max(0.0, jacobian @ fit.covariance @ jacobian)))
    mu_sb = fit.expected(centres[sb], widths[sb])
    chi2 = float(np.sum((counts[sb] - mu_sb) ** 2 / np.maximum(mu_sb, 1e-12)))
    n_on = float(counts[in_sr_bin].sum())
    p, z = z_bi(n_on, background, sigma)
    return Readout(n_on, background, sigma, p, z, chi2 / (n_sb_bins - n_params), n_params)


@dataclass(frozen=True)
class Closure:
    """The template checked against held-out sideband data at the SR cut's template efficiency.

    ``ratio`` = (data efficiency) / (template efficiency) in the sidebands,
    ``ratio_error`` its statistical uncertainty (binomial, both samples).
    """

    ratio: float
    ratio_error: float
    n_data: float  # held-out sideband events (the denominator of the data efficiency)
    n_data_passing: float
    n_template: int  # sideband template events
    n_template_passing: int


def sideband_closure(template: ScoredSample, data: ScoredSample | None, efficiency: float, meta: dict) -> Closure | str | None:
    """Compare the template's and the data's efficiency of one cut in the readout sidebands.

    The cut is the one keeping the fraction ``efficiency`` of the template
    in the sidebands (the template's efficiency of the SR cut): matching the
    working point by the template's own efficiency keeps the comparison
    meaningful where the sideband scores come from another model than the
    SR readout (CATHODE's fold ensemble against its out-of-fold logits).
    Where the template models the background well the data keep the same
    fraction, ratio 1; a template that misses where the score points (the
    flow's samples under-populate exactly the regions its classifier or
    density ratio selects) gives a ratio above 1. None: the template has no
    sideband part (nothing to check); a string: why it cannot be checked.
    """
    if template.mjj is None:
        return None
    t_mjj = np.asarray(template.mjj, dtype=np.float64)
    _, t_sb = region_masks(t_mjj, meta, default="adjacent")
    if not t_sb.any():
        return None
    if data is None or data.mjj is None:
        return "no held-out (hunt) data to check the background template in the sidebands"
    d_mjj, d_score = np.asarray(data.mjj, dtype=np.float64), np.asarray(data.score, dtype=np.float64)
    _, d_sb = region_masks(d_mjj, meta, default="adjacent")
    d_sb &= np.isfinite(d_score)
    t_score = np.asarray(template.score, dtype=np.float64)[t_sb]
    t_weight = np.asarray(template.weight, dtype=np.float64)[t_sb]
    _, _, threshold = top_fraction(t_score, t_weight, efficiency)
    if threshold is None:
        return "no sideband template event inside the cut"
    t_pass = t_score >= threshold
    k_t, n_t = int(t_pass.sum()), int(len(t_score))
    d_weight = np.asarray(data.weight, dtype=np.float64)[d_sb]
    n_d, k_d = float(d_weight.sum()), float(d_weight[d_score[d_sb] >= threshold].sum())
    if k_t < MIN_SIDEBAND_EVENTS or n_d <= 0:
        return (f"too few sideband events to check the template ({k_t} template events pass the cut, need >= "
                f"{MIN_SIDEBAND_EVENTS}; {n_d:g} held-out sideband events)")
    # the data's efficiency is the small sample (a 1 % cut keeps a handful of held-out sideband events):
    # the Jeffreys estimate (k + 1/2) / (n + 1) stays finite and positive at k = 0, with its 1/(k + 1/2) variance
    eff_d, eff_t = (k_d + 0.5) / (n_d + 1.0), k_t / n_t
    ratio = eff_d / eff_t
    rel_var = (1 - eff_d) / (k_d + 0.5) + (1 - eff_t) / k_t  # binomial, the two samples independent
    return Closure(ratio, ratio * float(np.sqrt(rel_var)), n_d, k_d, n_t, k_t)


def template_readout(mjj: np.ndarray, weight: np.ndarray, score: np.ndarray, threshold: float,
                     template: ScoredSample, meta: dict,
                     check: ScoredSample | None = None) -> tuple[Readout, Closure | None] | str:
    """SR background after the cut = (pre-cut sideband-fit SR background) x (template efficiency) x (closure).

    For scores valid in the SR only (CATHODE's background estimate): the
    sidebands are fitted *before* any cut, so the score is never used there;
    the cut's background efficiency eff comes from the method's own SR
    background model (the template's rows inside the SR). Where the template
    also has rows in the readout sidebands, it is checked against the
    held-out data ``check`` there (:func:`sideband_closure`) and its
    efficiency corrected by the measured ratio r, whose statistical error
    enters the background uncertainty:
    B = B_pre eff r, sigma_B^2 = (eff r sigma_pre)^2 + (B_pre r)^2 eff (1 - eff) / n_template + (B_pre eff sigma_r)^2.
    """
    everything = np.ones(len(mjj), dtype=bool)
    pre = sideband_readout(mjj, weight, everything, meta)
    if isinstance(pre, str):
        return f"pre-cut sideband fit: {pre}"
    t_score, t_weight = np.asarray(template.score), np.asarray(template.weight, dtype=np.float64)
    if template.mjj is not None:  # the efficiency comes from the template's SR rows only
        t_sr, _ = region_masks(np.asarray(template.mjj, dtype=np.float64), meta, default="adjacent")
        t_score, t_weight = t_score[t_sr], t_weight[t_sr]
    n_above = int((t_score >= threshold).sum())
    if n_above < MIN_SIDEBAND_EVENTS:
        return f"only {n_above} background-template events pass the cut (need >= {MIN_SIDEBAND_EVENTS})"
    n_t = len(t_score)
    eff = float(t_weight[t_score >= threshold].sum() / t_weight.sum())
    closure = sideband_closure(template, check, eff, meta)
    if isinstance(closure, str):
        return f"sideband check of the template: {closure}"
    ratio, ratio_error = (1.0, 0.0) if closure is None else (closure.ratio, closure.ratio_error)
    background = pre.background * eff * ratio
    sigma = float(np.sqrt((eff * ratio * pre.background_error) ** 2
                          + (pre.background * ratio) ** 2 * eff * (1 - eff) / n_t
                          + (pre.background * eff * ratio_error) ** 2))
    sr, _ = region_masks(mjj, meta, default="adjacent")
    n_on = float(weight[sr & (np.nan_to_num(score, nan=-np.inf) >= threshold)].sum())
    p, z = z_bi(n_on, background, sigma)
    return Readout(n_on, background, sigma, p, z, pre.chi2_per_dof, pre.n_params), closure


def readout_sample(scored: ScoredSignal) -> tuple[ScoredSample | None, str]:
    """The events the readout may cut on and how (training, hunt, template/training, template/hunt), or (None, why not)."""
    if scored.score_region == "sr":
        if scored.template is not None and len(scored.template):
            if scored.training is not None and len(scored.training):
                return scored.training, "template/training"  # out-of-fold SR data against an out-of-fold template
            if scored.hunt is not None and len(scored.hunt):
                return scored.hunt, "template/hunt"
        return None, ("the score is trained for the signal region only and the detector gives no SR background "
                      "template: cutting on it in the sidebands would sculpt the fit (score_region 'sr')")
    if scored.training is not None and len(scored.training):
        return scored.training, "training"
    if scored.hunt is not None and len(scored.hunt):
        return scored.hunt, "hunt"
    return None, "no hunt sample and no out-of-fold training scores to read out"


class SidebandFit(Metric):
    """SR excess over a dijet-function fit of the selected sidebands after a 10 % / 1 % score cut (Z_Bi).

    Keys per cut (``@10%``, ``@1%``): ``sb_Z`` (local significance), ``sb_N``
    (selected SR events), ``sb_B`` / ``sb_dB`` (fitted SR background and its
    uncertainty), ``sb_chi2ndf`` (sideband fit quality), ``sb_S_true`` (true
    signal among the selected SR events: truth, for S/B studies only, never
    used by the readout). Per run: ``sb_Z`` (best cut, Sidak-corrected for
    the two cuts), ``sb_p_min`` and ``sb_trials`` (for scans),
    ``sb_on_training`` (1: read out on the out-of-fold training pool; 0: on
    the hunt sample), ``sb_template`` (1: SR background from the detector's
    own template, for SR-only scores). The module docstring states the protocol.
    """

    name = "sideband_fit"
    version = "2"  # 2: template readouts corrected by their sideband closure (sb_closure), its error in sb_dB
    tasks = ("resonant",)

    def compute(self, scored: ScoredSignal) -> Mapping[str, MetricValue]:
        per_cut = ("sb_Z", "sb_N", "sb_B", "sb_dB", "sb_chi2ndf", "sb_S_true")
        per_cut_closure = ("sb_closure", "sb_closure_err")
        keys = [f"{k}@{label}" for label, _ in CUTS for k in per_cut + per_cut_closure] + ["sb_Z", "sb_p_min", "sb_trials", "sb_on_training", "sb_template"]
        sample, source = readout_sample(scored)
        if sample is None or sample.mjj is None:
            why = source if sample is None else "the readout sample has no mjj"
            return dict.fromkeys(keys, Unavailable(why))
        meta = scored.meta
        mjj, weight, score = (np.asarray(a, dtype=np.float64) for a in (sample.mjj, sample.weight, sample.score))
        sr, sb = region_masks(mjj, meta, default="adjacent")
        out: dict[str, MetricValue] = {"sb_on_training": 1.0 if source.endswith("training") else 0.0,
                                       "sb_template": 1.0 if source.startswith("template") else 0.0}
        pvalues = []
        for label, fraction in CUTS:
            sr_rows = np.flatnonzero(sr & np.isfinite(score))
            picked, _, threshold = top_fraction(score[sr_rows], weight[sr_rows], fraction)
            if threshold is None or len(picked) == 0:
                out |= {f"{k}@{label}": Unavailable(f"no SR event in the top {label}") for k in per_cut + per_cut_closure}
                continue
            selected = (sr | sb) & (np.nan_to_num(score, nan=-np.inf) >= threshold)  # NaN: a row the method did not use
            closure: Closure | None | str = "the readout is not template-based"
            if source.startswith("template"):
                result = template_readout(mjj, weight, score, threshold, scored.template, meta, check=scored.hunt)
                if not isinstance(result, str):
                    result, closure = result
                    closure = closure or "the template has no sideband part to check (taken as exact)"
            else:
                result = sideband_readout(mjj, weight, selected, meta)
            if isinstance(result, str):
                out |= {f"{k}@{label}": Unavailable(result) for k in per_cut + per_cut_closure}
                continue
            if isinstance(closure, Closure):
                out |= {f"sb_closure@{label}": closure.ratio, f"sb_closure_err@{label}": closure.ratio_error}
            else:
                out |= {f"{k}@{label}": Unavailable(closure) for k in per_cut_closure}
            pvalues.append(result.p_value)
            truth = np.asarray(sample.label) == 1 if sample.label is not None else np.zeros(len(mjj), bool)
            out |= {
                f"sb_Z@{label}": result.significance, f"sb_N@{label}": result.n_observed,
                f"sb_B@{label}": result.background, f"sb_dB@{label}": result.background_error,
                f"sb_chi2ndf@{label}": result.chi2_per_dof,
                f"sb_S_true@{label}": float(weight[selected & sr & truth].sum()),
            }
        if pvalues:
            p_min = min(pvalues)
            p_global = 1.0 - (1.0 - p_min) ** len(CUTS)
            out |= {"sb_Z": max(0.0, float(norm.isf(p_global))), "sb_p_min": p_min, "sb_trials": float(len(CUTS))}
        else:
            why = "no cut could be read out"
            out |= {"sb_Z": Unavailable(why), "sb_p_min": Unavailable(why), "sb_trials": Unavailable(why)}
        return out


@hookimpl
def hepad_metrics():
    return [SidebandFit]
