"""Deep SVDD: one-class deep support vector data description."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.preprocessing import StandardScaler
from torch import nn

from hepad_bench import Detector, FitContext, TrainingData, hookimpl
from hepad_plugins.detectors._torch import (
    ScaledInputs, batched, device_of, mlp, seed_torch, tensor, to_numpy, train_minibatches, weighted_mean,
    with_threads,
)


@dataclass
class DeepSVDDConfig:
    """Hyperparameters of Deep SVDD (defaults in brackets)."""

    #: widths of the hidden layers of the bias-free network [64, 32]
    hidden: tuple[int, ...] = (64, 32)
    #: dimension of the output representation [16]
    rep_dim: int = 16
    #: one-class training epochs (one epoch = one pass over the training events) [50]
    epochs: int = 50
    #: autoencoder pre-training epochs whose encoder initialises the network; 0 = none [20]
    pretrain_epochs: int = 20
    batch_size: int = 256
    #: Adam learning rate, for pre-training and one-class training [1e-3]
    lr: float = 1e-3
    #: Adam weight decay (the paper's L2 term on the weights) [1e-6]
    weight_decay: float = 1e-6
    #: centre coordinates with |c_i| < centre_eps are pushed to +-centre_eps [0.1]
    centre_eps: float = 0.1
    #: early-stopping patience on the validation loss, epochs; 0 = off [10]
    patience: int = 10
    #: torch CPU threads while fitting and scoring; 0 = keep torch's setting [1]
    threads: int = 1

    def __post_init__(self) -> None:
        if self.rep_dim < 1 or any(h < 1 for h in self.hidden):
            raise ValueError("hidden and rep_dim must be positive layer widths")
        if self.epochs < 1 or self.pretrain_epochs < 0 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be >= 1, pretrain_epochs >= 0")
        if self.centre_eps < 0:
            raise ValueError("centre_eps must be >= 0")
        if self.threads < 0:
            raise ValueError("threads must be >= 0 (0: keep torch's setting)")


def bias_free_network(n_in: int, hidden: tuple[int, ...], rep_dim: int) -> nn.Sequential:
    """Linear layers without bias and LeakyReLU (which has no bias either) in between.

    Without bias terms the network cannot map every input to the fixed centre
    by a constant, which is the trivial "hypersphere collapse" solution.
    """
    return mlp([n_in, *hidden, rep_dim], activation=nn.LeakyReLU, bias=False)


def guard_centre(c: torch.Tensor, eps: float) -> torch.Tensor:
    """Move coordinates with |c_i| < eps to +-eps (keeping the sign; 0 -> +eps).

    A centre coordinate near zero could be matched by zero weights in the last
    layer, again a trivial solution.
    """
    small = c.abs() < eps
    signed = torch.where(c < 0, torch.full_like(c, -eps), torch.full_like(c, eps))
    return torch.where(small, signed, c)


class DeepSVDD(Detector):
    """Deep SVDD (Ruff et al., ICML 2018): squared distance to a fixed centre in a learned space.

    One-class objective: a bias-free MLP (``hidden`` 64-32, ``rep_dim`` 16,
    LeakyReLU) maps background events close to a centre ``c`` fixed from an
    initial forward pass (mean output on the training data, coordinates with
    |c_i| < 0.1 pushed to +-0.1); loss = weighted mean of ||phi(x) - c||^2
    plus weight decay 1e-6 (Adam, lr 1e-3, batch 256, 50 epochs, early
    stopping on validation with patience 10, 1 CPU thread). The network is initialised from
    the encoder of a bias-free autoencoder pre-trained for 20 epochs
    (``pretrain_epochs``, 0 = off). Inputs are standardised with the training
    mean and standard deviation. Score: ||phi(x) - c||^2.
    """

    name = "deepsvdd"
    version = "1"
    kind = "unsupervised"
    tasks = ("unsupervised", "resonant")
    Config = DeepSVDDConfig

    @with_threads
    def fit(self, train: TrainingData, ctx: FitContext) -> None:
        cfg = self.config
        gen = seed_torch(ctx.seed)
        self.device = device_of(ctx)
        self.inputs = ScaledInputs(StandardScaler(), train.x, self.device)
        x, w = self.inputs(train.x), tensor(train.weight, self.device)
        # an empty validation split (-o validation_fraction=0) turns early stopping off, as in ae
        has_val = train.x_val is not None and len(train.x_val) > 0
        x_val = self.inputs(train.x_val) if has_val else None
        w_val = tensor(train.weight_val, self.device) if has_val else None
        self.net = bias_free_network(train.n_features, tuple(cfg.hidden), cfg.rep_dim).to(self.device)

        if cfg.pretrain_epochs:
            self._pretrain(x, w, x_val, w_val, gen, ctx)

        self.net.eval()
        with torch.inference_mode():
            c = batched(self.net, x).mean(dim=0)
        self.centre = guard_centre(c, cfg.centre_eps).clone()

        def batch_loss(idx: torch.Tensor) -> torch.Tensor:
            return weighted_mean(self._distance(x[idx]), w[idx])

        def val_loss() -> float:
            with torch.inference_mode():
                return float(weighted_mean(batched(self._distance, x_val), w_val))

        opt = torch.optim.Adam(self.net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.history = train_minibatches(
            [self.net], opt, batch_loss, x.shape[0], val_loss=val_loss if has_val else None, epochs=cfg.epochs,
            batch_size=cfg.batch_size, patience=cfg.patience, generator=gen, device=self.device,
            ctx=ctx, description="deepsvdd",
        )

    def _pretrain(self, x, w, x_val, w_val, gen, ctx) -> None:
        """Bias-free autoencoder (encoder = self.net) trained on mean squared reconstruction error."""
        cfg = self.config
        decoder = mlp([cfg.rep_dim, *reversed(tuple(cfg.hidden)), x.shape[1]],
                      activation=nn.LeakyReLU, bias=False).to(self.device)
        # LeakyReLU between encoder and decoder, as between any two layers of one network
        autoencoder = nn.Sequential(self.net, nn.LeakyReLU(), decoder)

        def recon(xb: torch.Tensor) -> torch.Tensor:
            return (autoencoder(xb) - xb).pow(2).mean(dim=1)

        def batch_loss(idx: torch.Tensor) -> torch.Tensor:
            return weighted_mean(recon(x[idx]), w[idx])

        def val_loss() -> float:
            with torch.inference_mode():
                return float(weighted_mean(batched(recon, x_val), w_val))

        opt = torch.optim.Adam(autoencoder.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.pretrain_history = train_minibatches(
            [autoencoder], opt, batch_loss, x.shape[0], val_loss=val_loss if x_val is not None else None,
            epochs=cfg.pretrain_epochs,
            batch_size=cfg.batch_size, patience=cfg.patience, generator=gen, device=self.device,
            ctx=ctx, description="deepsvdd pre-training",
        )

    def _distance(self, xb: torch.Tensor) -> torch.Tensor:
        return (self.net(xb) - self.centre).pow(2).sum(dim=1)

    def embed(self, x: np.ndarray) -> np.ndarray:
        """The network's representation phi(x) (float64), for inspection."""
        self.net.eval()
        with torch.inference_mode():
            return to_numpy(batched(self.net, self.inputs(x)))

    @with_threads
    def score(self, x: np.ndarray, mjj: np.ndarray | None = None) -> np.ndarray:
        self.net.eval()
        with torch.inference_mode():
            return to_numpy(batched(self._distance, self.inputs(x)))


@hookimpl
def hepad_detectors():
    return [DeepSVDD]
