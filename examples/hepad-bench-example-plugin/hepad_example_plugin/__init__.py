"""Example hepad-bench plugin: a Mahalanobis-distance detector."""

from dataclasses import dataclass

import numpy as np

from hepad_bench import Detector, FitContext, TrainingData, hookimpl


@dataclass
class MahalanobisConfig:
    #: Ridge added to the covariance diagonal, so that constant (zero-padded) features do not make it singular.
    ridge: float = 1e-3


class MahalanobisDetector(Detector):
    """Squared Mahalanobis distance to the weighted background mean (Gaussian background model)."""

    name = "mahalanobis"
    version = "1"
    kind = "unsupervised"
    Config = MahalanobisConfig

    def fit(self, train: TrainingData, ctx: FitContext) -> None:
        x = train.x.astype(np.float64)
        self.mean = np.average(x, axis=0, weights=train.weight)
        cov = np.cov(x, rowvar=False, aweights=train.weight) + self.config.ridge * np.eye(x.shape[1])
        self.precision = np.linalg.inv(cov)

    def score(self, x, mjj=None):
        d = x.astype(np.float64) - self.mean
        return np.einsum("ij,jk,ik->i", d, self.precision, d)


@hookimpl
def hepad_detectors():
    return [MahalanobisDetector]
