"""A toy plugin for the core's own tests (test fixture, not physics).

Background: 4-d unit Gaussians; signal: the same shifted by ``shift`` in every
coordinate. Its point is that the right answers are known in closed form.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import polars as pl

from hepad_bench import Dataset, Detector, Metric, hookimpl

FEATURES = ["f0", "f1", "f2", "f3"]


def _table(rng: np.random.Generator, n: int, shift: float, process: str) -> pl.DataFrame:
    x = rng.normal(shift, 1.0, size=(n, len(FEATURES))).astype(np.float32)
    return pl.DataFrame({**{f: x[:, i] for i, f in enumerate(FEATURES)}, "weight": np.ones(n), "process": [process] * n})


@dataclass
class ToyOptions:
    n: int = 400
    shift: float = 3.0


class ToyDataset(Dataset):
    """Gaussian toy (test fixture)."""

    name = "toy"
    version = "1"
    task = "unsupervised"
    Options = ToyOptions
    loads = 0  # counts calls, so tests can see the runner's dataset memo

    def load(self, data_dir, progress):
        type(self).loads += 1
        rng = np.random.default_rng(7)
        n, shift = self.options.n, self.options.shift
        return_value = dict(
            train=_table(rng, n, 0, "background"), validation=_table(rng, n // 4, 0, "background"),
            test=_table(rng, n, 0, "background"), signals={"shifted": _table(rng, n // 2, shift, "shifted")},
            signal_train={"shifted": _table(rng, n // 2, shift, "shifted")},
        )
        from hepad_bench import Benchmark

        return Benchmark(dataset=self.name, version=self.version, task="unsupervised", features=FEATURES,
                         meta={"n": n}, **return_value)


@dataclass
class NormConfig:
    power: float = 2.0
    mode: Literal["sum", "max"] = "sum"


class NormDetector(Detector):
    """Distance from the origin (test fixture)."""

    name = "toy-norm"
    version = "1"
    Config = NormConfig

    def fit(self, train, ctx):
        self.fitted_on = train.x.shape

    def score(self, x, mjj=None):
        a = np.abs(x.astype(np.float64)) ** self.config.power
        return a.sum(axis=1) if self.config.mode == "sum" else a.max(axis=1)


class SupervisedMean(Detector):
    """Projects on the direction of the signal-minus-background mean (test fixture)."""

    name = "toy-supervised"
    version = "1"
    kind = "supervised"

    def fit(self, train, ctx):
        assert train.y is not None and train.signal is not None
        self.direction = train.x[train.y == 1].mean(0) - train.x[train.y == 0].mean(0)
        self.seen = train.signal

    def score(self, x, mjj=None):
        return x.astype(np.float64) @ self.direction


class FailingDetector(Detector):
    """Always fails in fit (test fixture)."""

    name = "toy-failing"
    version = "1"

    def fit(self, train, ctx):
        raise RuntimeError("boom in fit")

    def score(self, x, mjj=None):
        raise AssertionError("never reached")


class NanDetector(NormDetector):
    """Returns NaN scores (test fixture)."""

    name = "toy-nan"

    def score(self, x, mjj=None):
        out = super().score(x)
        out[0] = np.nan
        return out


class MeanGap(Metric):
    """Mean signal score minus mean background score (test fixture)."""

    name = "toy-gap"
    version = "1"

    def compute(self, scored):
        return {"gap": float(scored.signal_sample.score.mean() - scored.background.score.mean())}


@hookimpl
def hepad_datasets():
    return [ToyDataset]


@hookimpl
def hepad_detectors():
    return [NormDetector, SupervisedMean, FailingDetector, NanDetector]


@hookimpl
def hepad_metrics():
    return [MeanGap]
