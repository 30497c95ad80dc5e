"""GAN-AE: an autoencoder trained against a discriminator, decorrelated from mjj with DisCo."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
from sklearn.preprocessing import MinMaxScaler
from torch import nn
from torch.nn import functional as F

from hepad_bench import Detector, FitContext, Progress, TrainingData, UserError, hookimpl
from hepad_plugins.detectors._disco import distance_correlation_sq
from hepad_plugins.detectors._torch import (
    ScaledInputs, batched, device_of, mlp, seed_torch, tensor, to_numpy, train_minibatches, weighted_mean,
    with_threads,
)


@dataclass
class GANAEConfig:
    """Hyperparameters of GAN-AE (defaults in brackets are the published ones).

    An *epoch* is one pass over the training events: an AE epoch feeds each
    event once through AE and discriminator; a discriminator epoch shows it each
    event and that event's current reconstruction (so 2 n examples). The full
    published schedule is pretrain_epochs + cycles * (ae_epochs + d_epochs)
    = 30 + 100 * 12 = 1230 epochs; use ``-p cycles=10`` for quick runs.
    """

    #: widths of the AE's hidden layers, mirrored in the decoder [84]
    hidden: tuple[int, ...] = (84,)
    #: latent (bottleneck) dimension [14]
    latent: int = 14
    #: widths of the discriminator's hidden layers [300, 200, 100, 50]
    d_hidden: tuple[int, ...] = (300, 200, 100, 50)
    #: dropout after every hidden layer of AE and discriminator [0.2]
    dropout: float = 0.2
    #: weight of the RMS reconstruction error in the AE loss [6]
    eps: float = 6.0
    #: weight of the DisCo term dCor^2(score, mjj) in the AE loss; ignored without mjj [65]
    alpha: float = 65.0
    #: adversarial training cycles [100]
    cycles: int = 100
    #: AE epochs per cycle [5]
    ae_epochs: int = 5
    #: discriminator epochs per cycle [7]
    d_epochs: int = 7
    #: AE pre-training epochs on the reconstruction error alone, before the cycles; 0 = none [30]
    pretrain_epochs: int = 30
    #: minibatch size; DisCo costs O(batch_size^2) per batch [1024]
    batch_size: int = 1024
    #: Adam learning rate of AE and discriminator (beta1 = 0.5) [2e-4]
    lr: float = 2e-4
    #: bins of the mjj histogram whose inverse gives the flat-mjj event weights [50]
    mjj_bins: int = 50
    #: torch CPU threads while fitting and scoring; 0 = keep torch's setting [1]
    threads: int = 1

    def __post_init__(self) -> None:
        if self.latent < 1 or any(h < 1 for h in (*self.hidden, *self.d_hidden)):
            raise ValueError("layer widths must be >= 1")
        if min(self.cycles, self.ae_epochs, self.d_epochs, self.pretrain_epochs) < 0:
            raise ValueError("cycles and epoch counts must be >= 0")
        if self.batch_size < 2 or self.mjj_bins < 1:
            raise ValueError("batch_size must be >= 2 and mjj_bins >= 1")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError("dropout must be in [0, 1)")
        if self.threads < 0:
            raise ValueError("threads must be >= 0 (0: keep torch's setting)")


class FlatMjjWeights:
    """Event weights that make the weighted mjj distribution flat.

    Binning: ``bins`` equal-width bins between the 0.5th and 99.5th
    percentiles of the training mjj; events outside fall into the first or
    last bin (so a handful of tail events cannot get enormous weights). The
    weight of an event is its own weight divided by the weighted count of its
    bin, normalised to mean 1 on the training events.
    """

    def __init__(self, mjj: np.ndarray, weight: np.ndarray, bins: int):
        lo, hi = np.percentile(mjj, [0.5, 99.5])
        if not hi > lo:
            hi = lo + 1.0
        self.edges = np.linspace(lo, hi, bins + 1)
        self.counts = np.bincount(self._bin(mjj), weights=weight, minlength=bins)
        raw = self._raw(mjj, weight)
        self.norm = raw.mean() if raw.size else 1.0

    def _bin(self, mjj: np.ndarray) -> np.ndarray:
        return np.clip(np.searchsorted(self.edges, mjj, side="right") - 1, 0, len(self.edges) - 2)

    def _raw(self, mjj: np.ndarray, weight: np.ndarray) -> np.ndarray:
        counts = self.counts[self._bin(mjj)]
        # a validation event in a bin empty in training keeps its own weight
        return np.where(counts > 0, weight / np.where(counts > 0, counts, 1.0), weight)

    def __call__(self, mjj: np.ndarray, weight: np.ndarray) -> np.ndarray:
        return self._raw(mjj, weight) / self.norm


class AutoEncoder(nn.Module):
    """Encoder input -> hidden -> latent (ReLU), decoder mirrored, sigmoid output on min-max scaled inputs."""

    def __init__(self, n_in: int, hidden: tuple[int, ...], latent: int, dropout: float):
        super().__init__()
        self.encoder = mlp([n_in, *hidden, latent], activation=nn.ReLU, dropout=dropout, final_activation=nn.ReLU())
        self.decoder = mlp([latent, *reversed(hidden), n_in], activation=nn.ReLU, dropout=dropout,
                           final_activation=nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


def rms_error(reco: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per-event root-mean-square reconstruction error over the features."""
    return torch.sqrt((reco - x).pow(2).mean(dim=1) + 1e-12)


class GANAE(Detector):
    """GAN-AE (Vaslin et al., EPJC 83 (2023), arXiv:2305.15179): AE vs a discriminator, DisCo on mjj; score = RMS error.

    An autoencoder (hidden 84, latent 14, ReLU, dropout 0.2, sigmoid output on
    min-max scaled inputs) is trained against a discriminator D (300-200-100-50,
    LeakyReLU 0.2, dropout 0.2) that tells real events from reconstructions,
    in alternating cycles (100 cycles of 7 D epochs then 5 AE epochs, after 30
    epochs of AE pre-training on the reconstruction error). AE loss:
    BCE(D(AE(x)), real) + eps * RMS(x - AE(x)) + alpha * dCor^2(RMS, mjj)
    with eps = 6, alpha = 65, events weighted to a flat mjj (inverse of a
    50-bin histogram). Adam lr 2e-4, beta1 0.5, batch 1024. Without mjj
    (unsupervised datasets) the DisCo term and the weighting are off and the
    run says so. The published schedule is 1230 passes over the training data,
    each batch paying O(batch_size^2) for DisCo: hours on a CPU for ~50 k
    events (a GPU helps); ``-p cycles=10`` for quick runs.
    """

    name = "gan-ae"
    version = "1"
    min_validation_events = 1  # pre-training selects its best epoch on the validation split
    kind = "unsupervised"
    tasks = ("unsupervised", "resonant")
    Config = GANAEConfig

    @classmethod
    def check(cls, config: GANAEConfig, n_features: int) -> None:
        # a bottleneck as wide as the input lets the AE learn the identity: every event reconstructs well
        if config.latent >= n_features:
            raise UserError(f"gan-ae: latent width {config.latent} is not below the {n_features} input features, "
                            f"so the autoencoder can copy its input; use -p latent=N with N < {n_features} (default 14)")

    @with_threads
    def fit(self, train: TrainingData, ctx: FitContext) -> None:
        cfg = self.config
        self.check(cfg, train.n_features)
        gen = seed_torch(ctx.seed)
        self.device = dev = device_of(ctx)
        self.notes: list[str] = []
        self.inputs = ScaledInputs(MinMaxScaler(), train.x, dev)
        x, x_val = self.inputs(train.x), self.inputs(train.x_val)

        use_mjj = train.mjj is not None and train.mjj_val is not None
        if use_mjj:
            flat = FlatMjjWeights(train.mjj, train.weight, cfg.mjj_bins)
            w = tensor(flat(train.mjj, train.weight), dev)
            w_val = tensor(flat(train.mjj_val, train.weight_val), dev)
            mjj = tensor(train.mjj, dev)
        else:
            note = f"{self.name}: the dataset has no mjj, so the DisCo term and the flat-mjj weighting are off"
            self.notes.append(note)
            ctx.progress.log(note)
            w, w_val, mjj = tensor(train.weight, dev), tensor(train.weight_val, dev), None
        alpha = cfg.alpha if use_mjj else 0.0

        self.ae = AutoEncoder(train.n_features, tuple(cfg.hidden), cfg.latent, cfg.dropout).to(dev)
        self.disc = mlp([train.n_features, *cfg.d_hidden, 1], activation=partial(nn.LeakyReLU, 0.2),
                        dropout=cfg.dropout).to(dev)
        opt_ae = torch.optim.Adam(self.ae.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
        opt_d = torch.optim.Adam(self.disc.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
        # the inner loops report through one outer progress bar (per cycle), not one bar per phase
        quiet = dataclasses.replace(ctx, progress=Progress())
        common = dict(batch_size=cfg.batch_size, generator=gen, device=dev, ctx=quiet)

        def pretrain_loss(idx: torch.Tensor) -> torch.Tensor:
            return weighted_mean(rms_error(self.ae(x[idx]), x[idx]), w[idx])

        def val_rms() -> float:
            with torch.inference_mode():
                return float(weighted_mean(batched(lambda b: rms_error(self.ae(b), b), x_val), w_val))

        def d_loss(idx: torch.Tensor) -> torch.Tensor:
            real = x[idx]
            with torch.no_grad():  # the AE is frozen (and in eval mode) while D trains
                fake = self.ae(real)
            logits = self.disc(torch.cat([real, fake])).squeeze(-1)
            target = torch.cat([torch.ones(len(idx), device=dev), torch.zeros(len(idx), device=dev)])
            bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
            return weighted_mean(bce, torch.cat([w[idx], w[idx]]))

        def ae_loss(idx: torch.Tensor) -> torch.Tensor:
            xb, wb = x[idx], w[idx]
            reco = self.ae(xb)
            logits = self.disc(reco).squeeze(-1)
            fool = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits), reduction="none")
            err = rms_error(reco, xb)
            loss = weighted_mean(fool, wb) + cfg.eps * weighted_mean(err, wb)
            if alpha and len(idx) > 1:
                loss = loss + alpha * distance_correlation_sq(err, mjj[idx], wb)
            return loss

        n = x.shape[0]
        self.history = {"pretrain": None, "d_loss": [], "ae_loss": []}
        if cfg.pretrain_epochs:
            self.history["pretrain"] = train_minibatches(
                [self.ae], opt_ae, pretrain_loss, n, val_loss=val_rms, epochs=cfg.pretrain_epochs,
                patience=0, description="gan-ae pre-training", **common)
        with ctx.progress.task("gan-ae cycles", total=cfg.cycles) as advance:
            for _ in range(cfg.cycles):
                self.ae.eval()
                if cfg.d_epochs:
                    h = train_minibatches([self.disc], opt_d, d_loss, n, val_loss=None, epochs=cfg.d_epochs,
                                          patience=0, **common)
                    self.history["d_loss"].append(h.train_loss[-1])
                self.disc.eval()
                self.disc.requires_grad_(False)  # no gradients for D's weights while the AE trains
                if cfg.ae_epochs:
                    h = train_minibatches([self.ae], opt_ae, ae_loss, n, val_loss=None, epochs=cfg.ae_epochs,
                                          patience=0, **common)
                    self.history["ae_loss"].append(h.train_loss[-1])
                self.disc.requires_grad_(True)
                advance(1)
        self.ae.eval()
        self.disc.eval()
        self.summary_ = {
            "schedule": f"{cfg.pretrain_epochs} pre-training epochs + {cfg.cycles} cycles x "
                        f"({cfg.d_epochs} D + {cfg.ae_epochs} AE epochs)",
            "passes": cfg.pretrain_epochs + cfg.cycles * (cfg.d_epochs + cfg.ae_epochs),
            "published_schedule": (cfg.pretrain_epochs, cfg.cycles, cfg.d_epochs, cfg.ae_epochs) == (30, 100, 7, 5),
            "disco": use_mjj,
            "last_d_loss": self.history["d_loss"][-1] if self.history["d_loss"] else None,
            "last_ae_loss": self.history["ae_loss"][-1] if self.history["ae_loss"] else None,
        }

    def training_summary(self) -> dict:
        """The training schedule that ran (and whether it is the published one), DisCo on/off, the last losses."""
        return dict(self.summary_)

    @with_threads
    def score(self, x: np.ndarray, mjj: np.ndarray | None = None) -> np.ndarray:
        self.ae.eval()
        with torch.inference_mode():
            xt = self.inputs(x)
            return to_numpy(batched(lambda b: rms_error(self.ae(b), b), xt))


@hookimpl
def hepad_detectors():
    return [GANAE]
