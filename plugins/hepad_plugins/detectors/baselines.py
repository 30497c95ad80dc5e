"""Classical baselines through PyOD: Isolation Forest (``iforest``) and HBOS (``hbos``).

PyOD's ``decision_function`` already follows the harness convention (higher =
more anomalous): for the Isolation Forest it is scikit-learn's
``offset_ - score_samples(x)``, for HBOS the sum over features of
``-log2(density + alpha)``. The adapters return it as float64 unchanged.

Both fit on the training split only (the validation split is not needed).
Neither PyOD model accepts event weights, so ``train.weight`` is ignored; a
message says so when the weights are not all equal.

``-p rotate=pca`` first rotates the inputs onto the principal axes of the
training background (features standardised, then an orthogonal PCA rotation
keeping every component; no whitening, which neither model would notice:
HBOS's equal-width bins and the forest's uniform cuts between the minimum and
maximum do not change when an axis is rescaled). Both models look at one
feature at a time (HBOS treats features as independent, every tree cut is
axis-aligned), so removing the linear correlations first helps them, as in
the shallow baselines of the ADC2021 studies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from pyod.models.hbos import HBOS
from pyod.models.iforest import IForest
from sklearn.decomposition import PCA
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from hepad_bench import DataError, Detector, FitContext, ModelCost, TrainingData, hookimpl

Rotation = Literal["none", "pca"]


#: Events per ``decision_function`` call of HBOS (bounds PyOD's (n, d) float64 work matrix to ~30 MB).
SCORE_ROWS = 65536


def _training_matrix(name: str, train: TrainingData, ctx: FitContext, as_float64: bool = True) -> np.ndarray:
    if train.x.ndim != 2 or train.x.shape[0] < 2:
        raise DataError(f"{name} needs at least two training events in an (events, features) matrix, got shape {train.x.shape}")
    w = np.asarray(train.weight)
    if w.size and not np.all(w == w[0]):
        ctx.progress.warn(f"{name}: PyOD cannot weight events; the training weights are ignored")
    return np.asarray(train.x, dtype=np.float64) if as_float64 else train.x


def hbos_terms(values: np.ndarray, edges: np.ndarray, density: np.ndarray, alpha: float, tol: float) -> np.ndarray:
    """log2(density + alpha) of the bin each value falls in, as PyOD's fixed-bin HBOS assigns bins.

    Bins are closed on the right (``np.digitize(..., right=True)``); a value below the first edge
    (above the last) by at most ``tol`` bin widths takes the first (last) bin, one further out the
    smallest term of the feature. The log2 of each bin is taken with ``math.log2`` (the C
    library's, which numba's compiled ``np.log2`` also calls) so the terms equal PyOD's exactly.
    """
    import math

    n_bins = len(density)
    log_density = np.array([math.log2(d + alpha) for d in density])
    index = np.digitize(values, edges, right=True)
    terms = log_density[np.clip(index - 1, 0, n_bins - 1)]
    below = (index == 0) & (edges[0] - values > (edges[1] - edges[0]) * tol)
    above = (index == n_bins + 1) & (values - edges[-1] > (edges[-1] - edges[-2]) * tol)
    terms[below | above] = log_density.min()
    return terms


def pca_rotation(x: np.ndarray) -> Pipeline:
    """Standardise, then rotate onto the principal axes of ``x`` (all components kept, no whitening)."""
    return make_pipeline(StandardScaler(), PCA(svd_solver="full", whiten=False)).fit(x)


def _check_rotate(rotate: str) -> None:
    if rotate not in ("none", "pca"):
        raise ValueError("rotate must be none or pca")


@dataclass
class IForestConfig:
    """PyOD IForest options (scikit-learn's IsolationForest underneath).

    n_estimators: number of trees; default 100.
    max_samples: events drawn per tree: an int, a fraction (float <= 1) or "auto" (min(256, n)); default auto.
    max_features: fraction of features drawn per tree; default 1.0.
    bootstrap: draw events with replacement; default False.
    n_jobs: parallel jobs for fitting and scoring (results do not depend on it); default 1.
    rotate: none, or pca (standardise and rotate onto the training background's principal axes first); default none.
    """

    n_estimators: int = 100
    max_samples: int | float | str = "auto"
    max_features: float = 1.0
    bootstrap: bool = False
    n_jobs: int = 1
    rotate: Rotation = "none"

    def __post_init__(self) -> None:
        _check_rotate(self.rotate)
        if self.n_estimators < 1:
            raise ValueError("n_estimators must be at least 1")
        if isinstance(self.max_samples, str) and self.max_samples != "auto":
            raise ValueError("max_samples must be an integer, a fraction in (0, 1] or auto")
        if isinstance(self.max_samples, float) and not 0 < self.max_samples <= 1:
            raise ValueError("a fractional max_samples must lie in (0, 1]")
        if isinstance(self.max_samples, int) and not isinstance(self.max_samples, bool) and self.max_samples < 1:
            raise ValueError("max_samples must be at least 1")
        if not 0 < self.max_features <= 1:
            raise ValueError("max_features must lie in (0, 1]")


class _PyODAdapter(Detector):
    """Fit a PyOD model on the training matrix; score with its decision_function (higher = more anomalous)."""

    kind = "unsupervised"

    def _build(self, ctx: FitContext):
        raise NotImplementedError

    def fit(self, train: TrainingData, ctx: FitContext) -> None:
        x = _training_matrix(self.name, train, ctx)
        self.rotation = pca_rotation(x) if self.config.rotate == "pca" else None
        self.model = self._build(ctx)
        self.model.fit(self.inputs(x))

    def inputs(self, x: np.ndarray) -> np.ndarray:
        """What the PyOD model sees: the events, rotated onto the principal axes when ``rotate=pca``."""
        x = np.asarray(x, dtype=np.float64)
        return x if self.rotation is None else self.rotation.transform(x)

    def score(self, x: np.ndarray, mjj: np.ndarray | None = None) -> np.ndarray:
        return np.asarray(self.model.decision_function(self.inputs(x)), dtype=np.float64)

    def _rotation_cost(self) -> tuple[int, int, str]:
        """(parameters, MACs, words) of the rotation: d means, d scales and a d x d matrix; d^2 MACs per event."""
        if self.rotation is None:
            return 0, 0, ""
        d = self.rotation[-1].components_.shape[1]
        k = self.rotation[-1].components_.shape[0]
        return 3 * d + k * d, k * d, f"; PCA rotation: {3 * d + k * d} parameters, {k * d} MACs"


class IForestDetector(_PyODAdapter):
    """Isolation Forest via PyOD; score = how quickly random trees isolate the event (Liu, Ting, Zhou 2008).

    Anomalies sit in sparse regions and are split off by few random cuts;
    the score is PyOD's ``decision_function``, i.e. scikit-learn's
    ``offset_ - score_samples``, which grows with 2^(-mean path length / c(n)).
    Defaults: 100 trees of 256 events each, all features, no bootstrap.
    ``random_state`` is the run seed. Event weights are not used.
    Reference: F. T. Liu, K. M. Ting, Z.-H. Zhou, Isolation Forest, ICDM 2008.
    """

    name = "iforest"
    version = "1"
    Config = IForestConfig

    def _build(self, ctx: FitContext) -> IForest:
        cfg = self.config
        return IForest(
            n_estimators=cfg.n_estimators, max_samples=cfg.max_samples, max_features=cfg.max_features,
            bootstrap=cfg.bootstrap, n_jobs=cfg.n_jobs, random_state=ctx.seed % 2**32,
        )

    def model_cost(self, events: np.ndarray, mjj: np.ndarray | None) -> ModelCost:
        """Parameters = tree nodes (each a feature and threshold, or a leaf); comparisons = mean nodes passed.

        Comparisons per event: the threshold tests on the way from root to
        leaf (path length in edges), summed over the trees and averaged over
        up to 1000 of ``events``. Multiply-accumulates are not defined for
        trees (None) except those of a PCA rotation.
        """
        forest = self.model.detector_
        x = self.inputs(events[:1000])
        nodes = sum(tree.tree_.node_count for tree in forest.estimators_)
        tests = sum(tree.decision_path(x[:, feats]).sum(axis=1).mean() - 1
                    for tree, feats in zip(forest.estimators_, forest.estimators_features_))
        rot_params, rot_macs, rot_note = self._rotation_cost()
        return ModelCost(parameters=int(nodes + rot_params), macs_per_event=float(rot_macs) if rot_macs else None,
                         comparisons_per_event=float(tests),
                         note=f"{len(forest.estimators_)} trees, {nodes} nodes; comparisons = mean root-to-leaf "
                              f"path length summed over trees{rot_note}")


@dataclass
class HBOSConfig:
    """PyOD HBOS options.

    n_bins: bins per feature histogram, or "auto" (Birge-Rozenblac choice per feature); default 10.
    alpha: added to each bin density before the log, so empty bins stay finite; default 0.1.
    tol: events outside the training range by less than tol bin widths count as in the edge bin; default 0.5.
    rotate: none, or pca (standardise and rotate onto the training background's principal axes first); default none.
    """

    n_bins: int | str = 10
    alpha: float = 0.1
    tol: float = 0.5
    rotate: Rotation = "none"

    def __post_init__(self) -> None:
        _check_rotate(self.rotate)
        if isinstance(self.n_bins, str) and self.n_bins != "auto":
            raise ValueError("n_bins must be an integer >= 2 or auto")
        if isinstance(self.n_bins, int) and self.n_bins < 2:
            raise ValueError("n_bins must be at least 2")
        if not 0 < self.alpha < 1 or not 0 < self.tol < 1:
            raise ValueError("alpha and tol must lie in (0, 1)")


class HBOSDetector(_PyODAdapter):
    """Histogram-based outlier score via PyOD: sum of per-feature -log2 histogram densities (Goldstein & Dengel 2012).

    Each feature gets a density histogram of the training events (10 equal
    bins by default); the score of an event is sum_j -log2(density_j(x_j) +
    alpha) with alpha = 0.1, treating features as independent. Events beyond
    the training range by more than tol = 0.5 bin widths get the lowest
    density of that feature. Deterministic: the seed plays no part. Event
    weights are not used.
    Reference: M. Goldstein, A. Dengel, Histogram-based Outlier Score (HBOS),
    KI-2012 Poster and Demo Track, 59-63.
    """

    name = "hbos"
    version = "1"
    Config = HBOSConfig

    def _build(self, ctx: FitContext) -> HBOS:
        cfg = self.config
        return HBOS(n_bins=cfg.n_bins, alpha=cfg.alpha, tol=cfg.tol)

    def fit(self, train: TrainingData, ctx: FitContext) -> None:
        """PyOD's HBOS histograms, filled one feature at a time (memory: one float64 column).

        ``HBOS.fit`` wants the whole matrix and then scores the training set into an (n, d)
        float64 matrix the harness never uses (16 times the float32 training table). The fitted
        state is only ``hist_`` and ``bin_edges_``, ``np.histogram(column, density=True)`` of
        each float64 feature column (Birge-Rozenblac ``get_optimal_n_bins`` per feature for
        ``n_bins=auto``), filled here exactly as ``HBOS.fit`` fills them, so the scores are
        PyOD's own bit for bit (tests/test_memory.py checks against ``HBOS.fit``). With
        ``rotate=pca`` the rotated matrix is built first (a float64 copy), as before.
        """
        if self.config.rotate == "pca":
            super().fit(train, ctx)
            return
        x = _training_matrix(self.name, train, ctx, as_float64=False)
        self.rotation = None
        self.model = self._build(ctx)
        self.model.n_features_in_ = d = x.shape[1]
        columns = (np.asarray(x[:, j], dtype=np.float64) for j in range(d))
        if isinstance(self.config.n_bins, str):  # auto: a histogram of its own size per feature
            from pyod.utils.utility import get_optimal_n_bins

            fitted = [np.histogram(c, bins=get_optimal_n_bins(c), density=True) for c in columns]
            self.model.hist_, self.model.bin_edges_ = [h for h, _ in fitted], [e for _, e in fitted]
        else:
            self.model.hist_ = np.zeros([self.config.n_bins, d])
            self.model.bin_edges_ = np.zeros([self.config.n_bins + 1, d])
            for j, c in enumerate(columns):
                self.model.hist_[:, j], self.model.bin_edges_[:, j] = np.histogram(c, bins=self.config.n_bins,
                                                                                   density=True)

    def score(self, x: np.ndarray, mjj: np.ndarray | None = None) -> np.ndarray:
        """PyOD's HBOS score of each event, over slices of ``SCORE_ROWS`` events.

        With a fixed ``n_bins`` PyOD scores through a numba-compiled loop whose first call
        compiles it (about 170 MB of resident memory for the rest of the run, more than the
        scores of 1 M events); :func:`hbos_terms` looks the same bins up with numpy instead,
        and the per-feature terms are summed as ``decision_function`` sums them, so the scores
        are PyOD's bit for bit (tests/test_memory.py). ``n_bins=auto`` and ``rotate=pca`` go
        through ``decision_function`` (no numba there). Slicing bounds the (n, d) float64
        matrix of terms; each event's score is its own row's sum whatever the slicing.
        """
        if not len(x):
            return super().score(x)
        fixed_bins = self.rotation is None and not isinstance(self.config.n_bins, str)
        out = np.empty(len(x))
        for start in range(0, len(x), SCORE_ROWS):
            rows = x[start:start + SCORE_ROWS]
            out[start:start + len(rows)] = (-self._terms(rows).sum(axis=1) if fixed_bins
                                            else super(HBOSDetector, self).score(rows))
        return out

    def _terms(self, rows: np.ndarray) -> np.ndarray:
        """The (n, d) matrix of log2(density + alpha) terms of PyOD's fixed-bin HBOS, in C order as PyOD's."""
        model, cfg = self.model, self.config
        terms = np.empty((len(rows), rows.shape[1]))
        for j in range(rows.shape[1]):
            terms[:, j] = hbos_terms(np.asarray(rows[:, j], dtype=np.float64), model.bin_edges_[:, j],
                                     model.hist_[:, j], cfg.alpha, cfg.tol)
        return terms

    def model_cost(self, events: np.ndarray, mjj: np.ndarray | None) -> ModelCost:
        """Parameters = histogram bins summed over features (the densities; the bin edges are not counted).

        Scoring is a bin look-up and a sum of logarithms per feature, no
        multiply-accumulates (None) except those of a PCA rotation.
        """
        edges = self.model.bin_edges_  # (n_bins + 1, features) for a fixed n_bins, a list per feature for auto
        per_feature = [edges.shape[0] - 1] * edges.shape[1] if isinstance(edges, np.ndarray) else [len(e) - 1 for e in edges]
        bins = sum(per_feature)
        rot_params, rot_macs, rot_note = self._rotation_cost()
        return ModelCost(parameters=int(bins + rot_params), macs_per_event=float(rot_macs) if rot_macs else None,
                         note=f"{bins} histogram bins (densities; edges not counted); no MACs{rot_note}")


@hookimpl
def hepad_detectors() -> list[type[Detector]]:
    return [IForestDetector, HBOSDetector]
