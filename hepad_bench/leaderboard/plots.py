"""Leaderboard figures (matplotlib Agg + an mplhep style), one set per dataset and signal.

- ``roc_<signal>.png``: background rejection 1/eps_B (log) against signal
  efficiency, and the significance improvement eps_S/sqrt(eps_B), per detector
  (its lowest successful seed), from the stored weighted scores.
- ``scores_<signal>.png``: normalised score distributions, background vs signal.
- ``correlation_<signal>.png``: Pearson correlation of background scores
  between detectors, from the ``score_correlation`` comparative metric.

PNG metadata carries no software version or date, so images rebuild identically.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import mplhep  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import NullFormatter  # noqa: E402
from sklearn.metrics import roc_curve  # noqa: E402

from hepad_bench.data import ScoredSignal  # noqa: E402

#: mplhep's CMS look without any experiment label, with fonts sized for multi-panel figures.
STYLE = [mplhep.style.CMS, {"font.size": 15, "axes.titlesize": 15, "axes.labelsize": 15, "legend.fontsize": 12,
                            "xtick.labelsize": 13, "ytick.labelsize": 13, "figure.dpi": 100}]
COLORS = plt.get_cmap("tab10").colors
LINESTYLES = ("-", "--", "-.", ":")
#: SIC is drawn only where at least this many background events pass the cut (it is noise below).
SIC_MIN_BACKGROUND = 10
#: Curves are thinned to about twice this many points.
MAX_CURVE_POINTS = 3000


def _save(fig: plt.Figure, path: Path, tight: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    extra = {"bbox_inches": "tight", "pad_inches": 0.25} if tight else {}
    fig.savefig(path, dpi=100, metadata={"Software": None}, **extra)
    plt.close(fig)
    return path


def _style(i: int) -> dict:
    return {"color": COLORS[i % len(COLORS)], "linestyle": LINESTYLES[(i // len(COLORS)) % len(LINESTYLES)]}


def weighted_roc(scored: ScoredSignal) -> tuple[np.ndarray, np.ndarray, int]:
    """(eps_B, eps_S) over thresholds, weighted; and the number of background events."""
    bg, sig = scored.background, scored.signal_sample
    y = np.r_[np.zeros(len(bg)), np.ones(len(sig))]
    score = np.r_[bg.score, sig.score]
    weight = np.r_[bg.weight, sig.weight]
    fpr, tpr, _ = roc_curve(y, score, sample_weight=weight)
    if len(fpr) > 2 * MAX_CURVE_POINTS:
        # millions of thresholds on full datasets: keep the low-eps_B start in full (it fills the log axis)
        # and an even thinning of the rest, which is invisible at figure resolution
        keep = np.unique(np.r_[np.arange(MAX_CURVE_POINTS), np.linspace(0, len(fpr) - 1, MAX_CURVE_POINTS).astype(int)])
        fpr, tpr = fpr[keep], tpr[keep]
    return fpr, tpr, len(bg)


def roc_figure(title: str, curves: dict[str, tuple[ScoredSignal, int]], path: Path) -> Path:
    """``curves``: label -> (scores of one run, colour index)."""
    with plt.style.context(STYLE):
        fig, (ax_roc, ax_sic) = plt.subplots(1, 2, figsize=(14, 7.0))
        fig.subplots_adjust(left=0.07, right=0.98, top=0.89, bottom=0.22, wspace=0.22)
        floor = 1.0
        for label, (scored, index) in curves.items():
            fpr, tpr, n_bg = weighted_roc(scored)
            keep = fpr > 0
            ax_roc.plot(tpr[keep], 1.0 / fpr[keep], label=label, linewidth=1.8, **_style(index))
            if keep.any():
                floor = max(floor, float(1.0 / fpr[keep].min()))
            enough = fpr * n_bg >= SIC_MIN_BACKGROUND
            ax_sic.plot(tpr[enough], tpr[enough] / np.sqrt(fpr[enough]), label=label, linewidth=1.8, **_style(index))
        grid = np.linspace(1e-3, 1, 200)
        ax_roc.plot(grid, 1.0 / grid, color="grey", linestyle=":", linewidth=1.2, label="random")
        ax_sic.plot(grid, np.sqrt(grid), color="grey", linestyle=":", linewidth=1.2, label="random")
        ax_roc.set_yscale("log")
        ax_roc.set_xlim(0, 1)
        ax_roc.set_ylim(1, floor * 1.5)
        ax_roc.set_xlabel(r"signal efficiency $\epsilon_S$")
        ax_roc.set_ylabel(r"background rejection $1/\epsilon_B$")
        ax_roc.set_title("ROC (lowest seed per detector)")
        ax_sic.set_xlim(0, 1)
        ax_sic.set_ylim(bottom=0)
        ax_sic.set_xlabel(r"signal efficiency $\epsilon_S$")
        ax_sic.set_ylabel(r"SIC $\epsilon_S/\epsilon_B^{1/2}$")
        ax_sic.set_title(rf"significance improvement ($\geq${SIC_MIN_BACKGROUND} bkg. events pass)")
        handles, labels = ax_roc.get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), frameon=False)
        for ax in (ax_roc, ax_sic):
            ax.grid(alpha=0.3)
        fig.suptitle(title, fontsize=17)
        return _save(fig, path)


def _weighted_density(values: np.ndarray, weights: np.ndarray, edges: np.ndarray) -> np.ndarray:
    clipped = np.clip(values, edges[0], edges[-1])  # tails go into the edge bins instead of vanishing
    counts, _ = np.histogram(clipped, bins=edges, weights=weights)
    total = counts.sum()
    return counts / (total * np.diff(edges)) if total > 0 else counts


def scores_figure(title: str, panels: dict[str, tuple[ScoredSignal, int]], path: Path, bins: int = 40) -> Path:
    """One panel per detector: normalised background and signal score distributions, log y."""
    n = max(len(panels), 1)
    ncols = min(3, n)
    nrows = -(-n // ncols)
    with plt.style.context(STYLE):
        height = 4.2 * nrows + 1.0
        fig, axes = plt.subplots(nrows, ncols, figsize=(5.4 * ncols, height), squeeze=False)
        fig.subplots_adjust(left=0.09, right=0.98, top=1 - 0.75 / height, bottom=0.6 / height, wspace=0.3,
                            hspace=0.45 * 4.2 / 4.2)
        for ax in axes.flat[len(panels):]:
            ax.set_visible(False)
        for ax, (label, (scored, index)) in zip(axes.flat, panels.items()):
            bg, sig = scored.background, scored.signal_sample
            both = np.r_[bg.score, sig.score]
            lo, hi = np.percentile(both, [0.5, 99.5]) if both.size else (0.0, 1.0)
            if not hi > lo:
                lo, hi = lo - 0.5, hi + 0.5
            edges = np.linspace(lo, hi, bins + 1)
            for sample, name, colour in ((bg, "background", "#4d4d4d"), (sig, "signal", COLORS[index % len(COLORS)])):
                density = _weighted_density(sample.score, sample.weight, edges)
                ax.stairs(density, edges, label=name, color=colour, linewidth=1.6,
                          fill=name == "background", alpha=0.35 if name == "background" else 1.0)
            ax.set_yscale("log")
            top = ax.get_ylim()[1]
            ax.set_ylim(top=top * 12)  # headroom for the legend above the histograms
            ax.yaxis.set_minor_formatter(NullFormatter())
            ax.set_title(label)
            ax.set_xlabel("anomaly score")
            ax.set_ylabel("normalised density")
            ax.legend(loc="upper right", frameon=False, ncol=2)
        fig.suptitle(f"{title} (0.5%/99.5% tails in the edge bins)", fontsize=17)
        return _save(fig, path)


def correlation_figure(title: str, labels: list[str], matrix: np.ndarray, path: Path) -> Path:
    n = len(labels)
    size = max(5.5, 1.0 * n + 2.5)
    with plt.style.context(STYLE):
        fig, ax = plt.subplots(figsize=(size + 1.6, size))
        fig.subplots_adjust(left=0.26, right=0.86, top=0.92, bottom=0.25)
        image = ax.imshow(np.ma.masked_invalid(matrix), cmap="RdBu_r", vmin=-1, vmax=1)
        ax.set_xticks(range(n), labels, rotation=40, ha="right")
        ax.set_yticks(range(n), labels)
        ax.minorticks_off()
        ax.tick_params(which="both", length=0)
        for i in range(n):
            for j in range(n):
                value = matrix[i, j]
                text = "n/a" if not np.isfinite(value) else f"{value + 0.0:.2f}".replace("-0.00", "0.00")
                colour = "white" if np.isfinite(value) and abs(value) > 0.6 else "black"
                ax.text(j, i, text, ha="center", va="center", fontsize=12, color=colour)
        bar = fig.colorbar(image, ax=ax, label="Pearson correlation (background)", fraction=0.046, pad=0.03)
        bar.ax.minorticks_off()
        ax.set_title(title)
        return _save(fig, path, tight=True)
