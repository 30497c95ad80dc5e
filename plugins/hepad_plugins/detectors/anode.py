"""ANODE: anomaly detection with conditional density estimation (Nachman & Shih 2020).

Two zuko masked autoregressive flows: p_BG(x | mjj) fitted on the sidebands
and interpolated into the signal region, and p_SR(x | mjj) fitted on the
signal-region data; the score is their log ratio.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import zuko

from hepad_bench import Detector, FitContext, TrainingData, UserError, hookimpl
from hepad_plugins.detectors._torch import batched, seed_torch, tensor, to_numpy, train_minibatches, with_threads
from hepad_plugins.detectors.weak import feature_columns, region_masks, require_mjj
from hepad_plugins.regions import region_masks as readout_masks

#: Scores are log-densities; where a flow overflows, clip to this (finite) magnitude.
SCORE_CLIP = 1e6
#: Background-template samples per SR training event (CATHODE oversamples the SR by a similar factor).
TEMPLATE_FACTOR = 4


@dataclass
class AnodeConfig:
    """Hyperparameters of both flows (defaults in brackets).

    transforms [4]: MAF autoregressive transforms. hidden [64, 64]: hidden
    widths of each transform's MADE network. epochs [40]: epoch cap per flow.
    batch_size [256]. lr [1e-3]: Adam learning rate. weight_decay [0].
    patience [5]: epochs without validation improvement before stopping
    (0: never). sr_conditional [True]: condition the signal-region density on
    mjj as well (as in the paper); False fits an unconditional p_SR(x).
    threads [1]: torch CPU threads while fitting and scoring (0: keep
    torch's setting).
    """

    transforms: int = 4  # MAF transforms per flow
    hidden: tuple[int, ...] = (64, 64)  # hidden widths of each transform's MADE
    epochs: int = 40  # epoch cap per flow
    batch_size: int = 256  # minibatch size
    lr: float = 1e-3  # AdamW learning rate
    weight_decay: float = 0.0  # AdamW weight decay
    patience: int = 5  # early-stopping patience in epochs (0: off)
    sr_conditional: bool = True  # p_SR(x | mjj) (True) or p_SR(x) (False)
    threads: int = 1  # torch CPU threads while fitting and scoring (0: keep torch's setting)

    def __post_init__(self) -> None:
        if self.transforms < 1 or not self.hidden or min(self.hidden) < 1:
            raise ValueError("transforms and hidden widths must be positive")
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError("epochs and batch_size must be positive and lr > 0")
        if self.threads < 0:
            raise ValueError("threads must be >= 0 (0: keep torch's setting)")


class ConditionalDensity:
    """A zuko MAF density of standardised ``x`` given standardised ``mjj`` (or none).

    :meth:`log_prob` returns the log-density of the *original* ``x`` (the
    standardisation's Jacobian included), so it is a normalised density.
    The context is clipped to the mjj range the flow was fitted on: a flow
    asked about masses it never saw would extrapolate its conditioning
    network freely (the signal-region flow scored on the full-range hunt
    sample would sculpt fake bumps at the spectrum's edges).
    """

    def __init__(self, n_features: int, conditional: bool, cfg: AnodeConfig,
                 x_mean: np.ndarray, x_scale: np.ndarray, m_mean: float, m_scale: float, device: torch.device):
        self.conditional = conditional
        self.device = device
        self.flow = zuko.flows.MAF(n_features, context=1 if conditional else 0, transforms=cfg.transforms,
                                   hidden_features=tuple(cfg.hidden)).to(device)
        self.x_mean, self.x_scale = x_mean, x_scale
        self.m_mean, self.m_scale = m_mean, m_scale
        self.log_jacobian = -float(np.log(x_scale).sum())
        self.context_range = (-np.inf, np.inf)  # set by fit

    def inputs(self, x: np.ndarray, mjj: np.ndarray | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        xt = tensor((np.asarray(x, dtype=np.float64) - self.x_mean) / self.x_scale, self.device)
        if not self.conditional:
            return xt, None
        mjj = np.clip(require_mjj(mjj, "anode"), *self.context_range)
        return xt, tensor(((mjj - self.m_mean) / self.m_scale)[:, None], self.device)

    def standard_log_prob(self, x: torch.Tensor, m: torch.Tensor | None) -> torch.Tensor:
        """Log-density of standardised rows (differentiable; the training loss)."""
        return (self.flow(m) if self.conditional else self.flow()).log_prob(x)

    def log_prob(self, x: np.ndarray, mjj: np.ndarray | None) -> np.ndarray:
        """log p(x | mjj) of original-unit rows, float64."""
        xt, mt = self.inputs(x, mjj)
        with torch.inference_mode():
            if mt is None:
                lp = batched(lambda b: self.standard_log_prob(b, None), xt)
            else:
                both = torch.cat([xt, mt], dim=1)
                d = xt.shape[1]
                lp = batched(lambda b: self.standard_log_prob(b[:, :d], b[:, d:]), both)
        return to_numpy(lp) + self.log_jacobian

    def sample(self, mjj: np.ndarray, generator_seed: int | None = None) -> np.ndarray:
        """One draw of x ~ p(x | mjj) per mass, original units; ``generator_seed`` seeds torch's global RNG first.

        Used by ANODE for its SR background template and by CATHODE to fill the
        signal region with background samples.
        """
        if generator_seed is not None:
            torch.manual_seed(generator_seed)
        _, mt = self.inputs(np.zeros((len(mjj), len(self.x_mean))), mjj)
        with torch.inference_mode():
            z = batched(lambda b: self.flow(b).sample(), mt)
        return to_numpy(z) * self.x_scale + self.x_mean

    def latent(self, x: np.ndarray, mjj: np.ndarray) -> np.ndarray:
        """The flow's forward map z = f(x; mjj): standard normal for events the flow models well.

        Used by LaCATHODE to classify in a space where the background has the
        same distribution at every mass.
        """
        xt, mt = self.inputs(x, mjj)
        both = torch.cat([xt, mt], dim=1)
        d = xt.shape[1]
        with torch.inference_mode():
            z = batched(lambda b: self.flow(b[:, d:]).transform(b[:, :d]), both)
        return to_numpy(z)

    def fit(self, x: np.ndarray, mjj: np.ndarray, x_val: np.ndarray, mjj_val: np.ndarray,
            cfg: AnodeConfig, ctx: FitContext, stream: int, description: str) -> None:
        """Maximum likelihood on (x, mjj), early stopping on the validation NLL."""
        if len(x) == 0 or len(x_val) == 0:
            raise UserError(f"anode has no events to fit {description} (training or validation); "
                            "check the signal region and sidebands of the dataset")
        gen = seed_torch(int(ctx.rng(stream).integers(2**31)))
        self.context_range = (float(np.min(mjj)), float(np.max(mjj)))
        xt, mt = self.inputs(x, mjj)
        xv, mv = self.inputs(x_val, mjj_val)

        def nll(idx: torch.Tensor) -> torch.Tensor:
            return -self.standard_log_prob(xt[idx], None if mt is None else mt[idx]).mean()

        def val_nll() -> float:
            with torch.inference_mode():
                return float(-self.standard_log_prob(xv, mv).mean())

        opt = torch.optim.AdamW(self.flow.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.history = train_minibatches(
            [self.flow], opt, nll, len(x), val_loss=val_nll, epochs=cfg.epochs, batch_size=cfg.batch_size,
            patience=cfg.patience, generator=gen, device=self.device, ctx=ctx, description=description,
        )


class Anode(Detector):
    """ANODE: log p_SR(x|mjj) - log p_BG(x|mjj), zuko MAFs, background interpolated from the sidebands.

    Nachman & Shih, "Anomaly detection with density estimation", PRD 101
    (2020) 075042, arXiv:2001.04990. A conditional masked autoregressive
    flow (zuko.flows.MAF, context = mjj) learns p_BG(x | mjj) on the sideband
    data and is evaluated at each event's own mjj inside the signal region
    (interpolation); a second flow learns p_SR(x | mjj) on the signal-region
    data. The score, log p_SR - log p_BG, estimates the log of
    (signal + background) / background: higher = more anomalous. ``mjj`` is
    the conditioning context, never a flow input (the ``mjj`` feature column
    is dropped). Signal region from the dataset meta (``signal_region`` or
    ``sr_low``/``sr_high``, TeV); sidebands are the rest of the data (within
    the meta's ``sidebands`` windows where given). Features and mjj
    are standardised with the mean and standard deviation of the whole
    training data (shared by both flows, so the score does not depend on it);
    each flow stops early on the validation split's events of its own region.
    Each flow's mjj context is clipped to the range it was fitted on, so
    events outside the signal region (the hunt sample) meet p_SR at the
    nearest signal-region edge instead of an extrapolation.

    Defaults: 4 MAF transforms, MADE hidden 64-64, AdamW lr 1e-3, batch 256,
    at most 40 epochs, patience 5, conditional p_SR.
    """

    name = "anode"
    version = "3"  # 3: the template also samples the readout sidebands (its closure check); 2: SR template
    min_validation_events = 1  # each density stops early on the validation likelihood
    kind = "weakly_supervised"
    score_region = "sr"  # p_SR is learnt in the SR only: the ratio means nothing in the sidebands
    tasks = ("resonant",)
    Config = AnodeConfig

    @with_threads
    def fit(self, train: TrainingData, ctx: FitContext) -> None:
        cfg: AnodeConfig = self.config
        device = torch.device(ctx.device)
        self._columns = feature_columns(train.features)
        x = train.x[:, self._columns].astype(np.float64)
        x_val = train.x_val[:, self._columns].astype(np.float64)
        mjj, mjj_val = require_mjj(train.mjj, "anode"), require_mjj(train.mjj_val, "anode")
        sr, sb = region_masks(mjj, train.meta)
        sr_val, sb_val = region_masks(mjj_val, train.meta)
        x_mean, x_scale = x.mean(axis=0), x.std(axis=0)
        x_scale = np.where(x_scale > 0, x_scale, 1.0)
        m_mean, m_scale = float(mjj.mean()), float(mjj.std()) or 1.0

        def density(conditional: bool, stream: int) -> ConditionalDensity:
            torch.manual_seed(int(ctx.rng(stream).integers(2**31)))  # the flow's initial weights
            return ConditionalDensity(x.shape[1], conditional, cfg, x_mean, x_scale, m_mean, m_scale, device)

        self.background = density(True, 11)
        self.background.fit(x[sb], mjj[sb], x_val[sb_val], mjj_val[sb_val], cfg, ctx, 12, "anode p_BG (sidebands)")
        self.signal_region = density(cfg.sr_conditional, 21)
        self.signal_region.fit(x[sr], mjj[sr], x_val[sr_val], mjj_val[sr_val], cfg, ctx, 22, "anode p_SR")
        self._n_features = train.x.shape[1]
        self._sr_mjj = mjj[sr]
        # the readout's sidebands (adjacent windows unless overridden): where the template is checked
        self._sb_mjj = mjj[readout_masks(mjj, train.meta, default="adjacent")[1]]
        self._template_seed = int(ctx.rng(31).integers(2**31))

    def background_template(self) -> tuple[np.ndarray, np.ndarray]:
        """Scores of samples of p_BG at SR masses (interpolated) and at readout-sideband masses.

        TEMPLATE_FACTOR samples per training event of each region, masses
        drawn from the training data there. The SR samples' fraction above a
        cut estimates the cut's background efficiency in the SR; the
        sideband samples let the readout check that estimate against
        held-out sideband data (``sideband_fit``'s closure).
        """
        rng = np.random.default_rng(self._template_seed)
        masses = [rng.choice(m, size=TEMPLATE_FACTOR * len(m), replace=True)
                  for m in (self._sr_mjj, self._sb_mjj) if len(m)]
        mjj = np.concatenate(masses)
        x = np.zeros((len(mjj), self._n_features), dtype=np.float32)
        x[:, self._columns] = self.background.sample(mjj, self._template_seed)
        return self.score(x, mjj), mjj

    def log_density_background(self, x: np.ndarray, mjj: np.ndarray) -> np.ndarray:
        """log p_BG(x | mjj) in the dataset's units (x: all feature columns)."""
        return self.background.log_prob(np.asarray(x)[:, self._columns], mjj)

    def log_density_signal_region(self, x: np.ndarray, mjj: np.ndarray | None) -> np.ndarray:
        """log p_SR(x | mjj) (or p_SR(x)) in the dataset's units."""
        return self.signal_region.log_prob(np.asarray(x)[:, self._columns], mjj)

    @with_threads
    def score(self, x: np.ndarray, mjj: np.ndarray | None = None) -> np.ndarray:
        mjj = require_mjj(mjj, "anode")
        ratio = self.log_density_signal_region(x, mjj) - self.log_density_background(x, mjj)
        return np.nan_to_num(ratio, nan=0.0, posinf=SCORE_CLIP, neginf=-SCORE_CLIP).clip(-SCORE_CLIP, SCORE_CLIP)


@hookimpl
def hepad_detectors():
    return [Anode]
