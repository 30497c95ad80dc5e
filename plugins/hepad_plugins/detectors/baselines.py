"""Classical baselines through PyOD: Isolation Forest (``iforest``) and HBOS (``hbos``).

PyOD's ``decision_function`` already follows the harness convention (higher =
more anomalous): for the Isolation Forest it is scikit-learn's
``offset_ - score_samples(x)``, for HBOS the sum over features of
``-log2(density + alpha)``. The adapters return it as float64 unchanged.

Both fit on the training split only (the validation split is not needed).
Neither PyOD model accepts event weights, so ``train.weight`` is ignored; a
message says so when the weights are not all equal.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pyod.models.hbos import HBOS
from pyod.models.iforest import IForest

from hepad_bench import DataError, Detector, FitContext, TrainingData, hookimpl


def _training_matrix(name: str, train: TrainingData, ctx: FitContext) -> np.ndarray:
    if train.x.ndim != 2 or train.x.shape[0] < 2:
        raise DataError(f"{name} needs at least two training events in an (events, features) matrix, got shape {train.x.shape}")
    w = np.asarray(train.weight)
    if w.size and not np.all(w == w[0]):
        ctx.progress.warn(f"{name}: PyOD cannot weight events; the training weights are ignored")
    return np.asarray(train.x, dtype=np.float64)


@dataclass
class IForestConfig:
    """PyOD IForest options (scikit-learn's IsolationForest underneath).

    n_estimators: number of trees; default 100.
    max_samples: events drawn per tree: an int, a fraction (float <= 1) or "auto" (min(256, n)); default auto.
    max_features: fraction of features drawn per tree; default 1.0.
    bootstrap: draw events with replacement; default False.
    n_jobs: parallel jobs for fitting and scoring (results do not depend on it); default 1.
    """

    n_estimators: int = 100
    max_samples: int | float | str = "auto"
    max_features: float = 1.0
    bootstrap: bool = False
    n_jobs: int = 1

    def __post_init__(self) -> None:
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
        self.model = self._build(ctx)
        self.model.fit(_training_matrix(self.name, train, ctx))

    def score(self, x: np.ndarray, mjj: np.ndarray | None = None) -> np.ndarray:
        return np.asarray(self.model.decision_function(np.asarray(x, dtype=np.float64)), dtype=np.float64)


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


@dataclass
class HBOSConfig:
    """PyOD HBOS options.

    n_bins: bins per feature histogram, or "auto" (Birge-Rozenblac choice per feature); default 10.
    alpha: added to each bin density before the log, so empty bins stay finite; default 0.1.
    tol: events outside the training range by less than tol bin widths count as in the edge bin; default 0.5.
    """

    n_bins: int | str = 10
    alpha: float = 0.1
    tol: float = 0.5

    def __post_init__(self) -> None:
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


@hookimpl
def hepad_detectors() -> list[type[Detector]]:
    return [IForestDetector, HBOSDetector]
