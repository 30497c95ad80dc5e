"""The supervised reference: a dense classifier trained per signal on labelled events."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.nn import functional as F

from hepad_bench import Detector, FitContext, TrainingData, UserError, hookimpl
from hepad_plugins.detectors._torch import (
    ScaledInputs, batched, device_of, mlp, seed_torch, tensor, to_numpy, train_minibatches, weighted_mean,
    with_threads,
)


@dataclass
class SupervisedDNNConfig:
    """Hyperparameters of the supervised DNN (defaults in brackets)."""

    #: widths of the hidden layers [64, 64, 64]
    hidden: tuple[int, ...] = (64, 64, 64)
    #: dropout after each hidden layer [0.0]
    dropout: float = 0.0
    #: maximum epochs (one epoch = one pass over background + signal training events) [100]
    epochs: int = 100
    batch_size: int = 512
    #: Adam learning rate [1e-3]
    lr: float = 1e-3
    #: Adam weight decay [0.0]
    weight_decay: float = 0.0
    #: early-stopping patience on the validation loss, epochs [10]
    patience: int = 10
    #: reweight so that signal and background carry equal total weight [true]
    balance_classes: bool = True
    #: torch CPU threads while fitting and scoring; 0 = keep torch's setting [1]
    threads: int = 1

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or any(h < 1 for h in self.hidden):
            raise ValueError("epochs, batch_size and hidden widths must be >= 1")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError("dropout must be in [0, 1)")
        if self.threads < 0:
            raise ValueError("threads must be >= 0 (0: keep torch's setting)")


def balanced_weights(weight: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Event weights rescaled so that each class sums to half the total, normalised to mean 1.

    Signal training splits are usually far smaller (or larger) than the
    background; without this the classifier would mostly learn the class
    ratio. A class with no events keeps its (empty) weight.
    """
    w = np.asarray(weight, dtype=np.float64).copy()
    total = w.sum()
    for label in (0, 1):
        mask = y == label
        class_sum = w[mask].sum()
        if class_sum > 0:
            w[mask] *= 0.5 * total / class_sum
    return w / max(w.mean(), 1e-300)


class SupervisedDNN(Detector):
    """Supervised DNN: per-signal dense classifier, the reference for mu limits and the leaderboard ceiling.

    Trained once per signal on background (label 0) vs that signal's labelled
    training split (label 1) with binary cross-entropy; classes balanced by
    reweighting each to half the total weight (``balance_classes``). Defaults:
    hidden 64-64-64 ReLU, no dropout, Adam lr 1e-3, batch 512, up to 100
    epochs with early stopping on the (equally balanced) validation loss,
    patience 10, best weights restored, 1 CPU thread. Inputs standardised with the training
    mean and standard deviation. Score: the classifier logit log(p / (1 - p)),
    a monotone map of the probability that keeps resolution where p is within
    1e-7 of 1, i.e. at tiny background efficiencies. Used as the reference in
    Romão, Castro, Pedro, EPJC 81 (2021) 27 (mu limits normalised to it).
    """

    name = "supervised-dnn"
    version = "1"
    kind = "supervised"
    tasks = ("unsupervised", "resonant")
    Config = SupervisedDNNConfig

    @with_threads
    def fit(self, train: TrainingData, ctx: FitContext) -> None:
        if train.y is None or train.y_val is None:
            raise UserError(f"{self.name} needs labelled training data (y); run it through hepad-bench, "
                            "which fits it per signal on that signal's training split")
        if len(np.unique(train.y)) < 2:
            raise UserError(f"{self.name} needs both signal and background training events; got one class only")
        cfg = self.config
        gen = seed_torch(ctx.seed)
        self.device = device_of(ctx)
        self.inputs = ScaledInputs(StandardScaler(), train.x, self.device)
        x, x_val = self.inputs(train.x), self.inputs(train.x_val)
        y = tensor(train.y, self.device)
        y_val = tensor(train.y_val, self.device)
        balance = balanced_weights if cfg.balance_classes else (lambda w, _y: w)
        w = tensor(balance(train.weight, train.y), self.device)
        w_val = tensor(balance(train.weight_val, train.y_val), self.device)
        self.net = mlp([train.n_features, *cfg.hidden, 1], activation=nn.ReLU, dropout=cfg.dropout).to(self.device)

        def logit(xb: torch.Tensor) -> torch.Tensor:
            return self.net(xb).squeeze(-1)

        def batch_loss(idx: torch.Tensor) -> torch.Tensor:
            bce = F.binary_cross_entropy_with_logits(logit(x[idx]), y[idx], reduction="none")
            return weighted_mean(bce, w[idx])

        def val_loss() -> float:
            with torch.inference_mode():
                bce = F.binary_cross_entropy_with_logits(batched(logit, x_val), y_val, reduction="none")
                return float(weighted_mean(bce, w_val))

        opt = torch.optim.Adam(self.net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.history = train_minibatches(
            [self.net], opt, batch_loss, x.shape[0], val_loss=val_loss, epochs=cfg.epochs,
            batch_size=cfg.batch_size, patience=cfg.patience, generator=gen, device=self.device,
            ctx=ctx, description=f"{self.name} {train.signal or ''}".strip(),
        )

    @with_threads
    def score(self, x: np.ndarray, mjj: np.ndarray | None = None) -> np.ndarray:
        self.net.eval()
        with torch.inference_mode():
            return to_numpy(batched(lambda xb: self.net(xb).squeeze(-1), self.inputs(x)))


@hookimpl
def hepad_detectors():
    return [SupervisedDNN]
