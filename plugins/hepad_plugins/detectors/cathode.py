"""CATHODE and LaCATHODE: a sideband-trained conditional flow as the background template of a classifier.

Both fit a zuko masked autoregressive flow p(x | mjj) on the sidebands (all
data outside the signal region: "outer density estimation") and then train
the k-folded weak classifier of :mod:`hepad_plugins.detectors.weak` on the
signal region:

* ``cathode`` (Hallin et al., PRD 106 (2022) 055006, arXiv:2109.00546):
  signal-region data vs flow samples at masses drawn from a KDE of the
  signal-region mjj, in feature space;
* ``lacathode`` (Hallin, Kasieczka, Quadfasel, Shih, Sommerhalder, PRD 107
  (2023) 114012, arXiv:2210.14924): signal-region data mapped to the flow's
  latent space z = f(x; mjj) vs standard-normal samples. The background is
  N(0, 1) in z at every mass, so the score does not learn mjj and may be
  applied outside the signal region without sculpting the spectrum.

Both fit the same flow on the same sidebands; the fitted flow is kept in the
cache (:mod:`hepad_plugins.detectors._flow_cache`), so the second of the
pair on the same data, seed and settings reuses it (bit for bit on the CPU).

Published defaults, read from the authors' reference implementation
uhh-pd-ml/sk_cathode (facts only; this code is independent) and the papers:
flow 15 MADE blocks with 128 hidden units (two hidden layers each), Adam
lr 1e-4, weight decay 1e-6, batch 256, at most 100 epochs with early stopping
(patience 10) on the validation loss; inputs min-max scaled into (0, 1),
logit-transformed and standardised; signal-region masses from a Gaussian KDE
(bandwidth 0.01) in logit space of the min-max scaled SR mass; 4x
oversampling; classifier 64-64-64 ReLU, Adam lr 1e-3, batch 128, at most
100 epochs, patience 10.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from scipy.special import expit, logit
from sklearn.neighbors import KernelDensity

from hepad_bench import Detector, FitContext, TrainingData, UserError, hookimpl
from hepad_plugins.detectors import _flow_cache as flow_cache
from hepad_plugins.detectors._torch import cpu_threads
from hepad_plugins.detectors.anode import AnodeConfig, ConditionalDensity
from hepad_plugins.regions import region_masks as readout_masks
from hepad_plugins.detectors.weak import (
    ClassifierConfig,
    _pool,
    ensemble_logit,
    feature_columns,
    kfold_classifier,
    region_masks,
    require_mjj,
    signal_region,
)

#: Classifier logits beyond this magnitude (an overflow) are clipped to stay finite.
SCORE_CLIP = 1e6
#: Min-max scaled inputs live in [EDGE, 1 - EDGE] before the logit (training range);
#: new events are clipped to (CLIP, 1 - CLIP) so the logit stays finite.
EDGE, CLIP = 1e-3, 1e-6


@dataclass
class CathodeConfig:
    """Hyperparameters of the flow, the background template and the classifier (defaults in brackets).

    Flow: flow_transforms [15] MAF transforms (MADE blocks); flow_hidden
    [128, 128] hidden widths of each MADE; flow_epochs [100] epoch cap;
    flow_batch_size [256]; flow_lr [1e-4]; flow_weight_decay [1e-6];
    flow_patience [10] epochs without validation improvement before stopping
    (the best validation epoch is kept; 0: never stop early); logit_inputs
    [True]: min-max scale and logit-transform the features before the flow
    (stretches hard edges such as tau21 <= 1 into tails a flow can model).
    Template: oversampling [4] background samples per signal-region event;
    kde_bandwidth [0.01] of the mass KDE, in logit space of the min-max
    scaled signal-region mass (CATHODE only). Classifier: k_folds [5]
    (model j holds out fold j and stops early on fold j+1; new events get
    the mean logit); hidden [64, 64, 64]; epochs [100]; batch_size [128];
    lr [1e-3]; weight_decay [0] (plain Adam, as published); patience [10].
    threads [1]: torch CPU threads while fitting and scoring (0: keep
    torch's setting).
    """

    flow_transforms: int = 15  # MAF transforms (MADE blocks)
    flow_hidden: tuple[int, ...] = (128, 128)  # hidden widths of each MADE
    flow_epochs: int = 100  # epoch cap of the flow
    flow_batch_size: int = 256  # flow minibatch size
    flow_lr: float = 1e-4  # flow learning rate
    flow_weight_decay: float = 1e-6  # flow weight decay
    flow_patience: int = 10  # flow early-stopping patience (0: off)
    logit_inputs: bool = True  # min-max + logit preprocessing of the flow inputs
    oversampling: int = 4  # background samples per signal-region event
    kde_bandwidth: float = 0.01  # mass KDE bandwidth (logit space; CATHODE)
    k_folds: int = 5  # classifier folds
    hidden: tuple[int, ...] = (64, 64, 64)  # classifier hidden widths
    epochs: int = 100  # classifier epoch cap per fold model
    batch_size: int = 128  # classifier minibatch size
    lr: float = 1e-3  # classifier learning rate
    weight_decay: float = 0.0  # classifier weight decay
    patience: int = 10  # classifier early-stopping patience (0: off)
    threads: int = 1  # torch CPU threads (0: keep torch's setting)

    def __post_init__(self) -> None:
        if self.oversampling < 1:
            raise ValueError("oversampling must be at least 1")
        if self.kde_bandwidth <= 0:
            raise ValueError("kde_bandwidth must be positive")
        if self.threads < 0:
            raise ValueError("threads must not be negative")
        self.flow_config()  # the two nested configs validate their own fields
        self.classifier_config()

    def flow_config(self) -> AnodeConfig:
        return AnodeConfig(transforms=self.flow_transforms, hidden=tuple(self.flow_hidden),
                           epochs=self.flow_epochs, batch_size=self.flow_batch_size, lr=self.flow_lr,
                           weight_decay=self.flow_weight_decay, patience=self.flow_patience)

    def classifier_config(self) -> ClassifierConfig:
        return ClassifierConfig(k_folds=self.k_folds, hidden=tuple(self.hidden), epochs=self.epochs,
                                batch_size=self.batch_size, lr=self.lr, weight_decay=self.weight_decay,
                                patience=self.patience)


class LogitScaler:
    """Min-max scaling into [EDGE, 1 - EDGE] on the training rows, then the logit (and back)."""

    def __init__(self, x: np.ndarray):
        self.low = x.min(axis=0)
        span = x.max(axis=0) - self.low
        self.span = np.where(span > 0, span, 1.0)

    def transform(self, x: np.ndarray) -> np.ndarray:
        u = EDGE + (1 - 2 * EDGE) * (x - self.low) / self.span
        return logit(np.clip(u, CLIP, 1 - CLIP))

    def inverse(self, y: np.ndarray) -> np.ndarray:
        return self.low + (expit(y) - EDGE) / (1 - 2 * EDGE) * self.span


class _Identity:
    def transform(self, x: np.ndarray) -> np.ndarray:
        return x

    def inverse(self, y: np.ndarray) -> np.ndarray:
        return y


class SidebandFlow:
    """p(x | mjj) fitted on the sidebands, with the preprocessing in front of it.

    ``sample`` and ``latent`` speak original feature units; the flow itself
    sees preprocessed (logit), standardised features and a standardised mass.
    """

    def __init__(self, x: np.ndarray, mjj: np.ndarray, x_val: np.ndarray, mjj_val: np.ndarray,
                 cfg: CathodeConfig, ctx: FitContext, what: str):
        if len(x) == 0 or len(x_val) == 0:
            raise UserError(f"{what} has no sideband events to fit its flow (training or validation); "
                            "check the signal region of the dataset")
        self.pre = LogitScaler(x) if cfg.logit_inputs else _Identity()
        y, y_val = self.pre.transform(x), self.pre.transform(x_val)
        scale = y.std(axis=0)
        device = torch.device(ctx.device)
        torch.manual_seed(int(ctx.rng(11).integers(2**31)))  # the flow's initial weights
        self.density = ConditionalDensity(
            x.shape[1], True, cfg.flow_config(), y.mean(axis=0), np.where(scale > 0, scale, 1.0),
            float(mjj.mean()), float(mjj.std()) or 1.0, device)
        # CATHODE and LaCATHODE fit this same flow on the same data: the second one reuses it
        self.key = flow_cache.flow_key(
            [x, mjj, x_val, mjj_val],
            {"flow": asdict(cfg.flow_config()), "logit_inputs": cfg.logit_inputs, "seed": ctx.seed,
             "device": str(device), "threads": torch.get_num_threads()})
        state = flow_cache.load(self.key, device, ctx.progress.warn)
        if state is not None:
            self.density.flow.load_state_dict(state["flow"])
            self.density.context_range = tuple(state["context_range"])
            self.best_epoch, self.reused = int(state["best_epoch"]), True
        else:
            self.density.fit(y, mjj, y_val, mjj_val, cfg.flow_config(), ctx, 12, f"{what} flow (sidebands)")
            self.best_epoch, self.reused = self.density.history.best_epoch, False
            flow_cache.store(self.key, {"flow": self.density.flow.state_dict(),
                                        "context_range": list(self.density.context_range),
                                        "best_epoch": self.best_epoch}, ctx.progress.warn)

    def sample(self, mjj: np.ndarray, seed: int) -> np.ndarray:
        torch.manual_seed(seed)
        return self.pre.inverse(self.density.sample(mjj))

    def latent(self, x: np.ndarray, mjj: np.ndarray) -> np.ndarray:
        return self.density.latent(self.pre.transform(x), mjj)


def sample_sr_masses(mjj_sr: np.ndarray, n: int, sr: tuple[float, float], bandwidth: float,
                     seed: int) -> np.ndarray:
    """``n`` masses from a Gaussian KDE of the signal-region masses, in logit space of [low, high].

    The logit keeps every sample inside the signal region and lets the KDE
    follow the falling spectrum up to its hard edges (as in CATHODE).
    """
    low, high = sr
    u = np.clip((mjj_sr - low) / (high - low), CLIP, 1 - CLIP)
    kde = KernelDensity(bandwidth=bandwidth, kernel="gaussian").fit(logit(u)[:, None])
    return low + (high - low) * expit(kde.sample(n, random_state=seed)[:, 0])


class _SidebandTemplate(Detector):
    """Shared fit/score: sideband flow, signal-region classifier against a background template."""

    kind = "weakly_supervised"
    tasks = ("resonant",)
    Config = CathodeConfig

    def _classifier_inputs(self, x: np.ndarray, mjj: np.ndarray) -> np.ndarray:
        """What the classifier sees of events (x: the flow's feature columns)."""
        raise NotImplementedError

    def _template(self, mjj_sr: np.ndarray, n: int, meta: dict, ctx: FitContext) -> np.ndarray:
        """``n`` background rows in classifier-input space for the signal region."""
        raise NotImplementedError

    def fit(self, train: TrainingData, ctx: FitContext) -> None:
        cfg: CathodeConfig = self.config
        self._columns = feature_columns(train.features)
        self._device = torch.device(ctx.device)
        mjj, mjj_val = require_mjj(train.mjj, self.name), require_mjj(train.mjj_val, self.name)
        _, sb = region_masks(mjj, train.meta)
        _, sb_val = region_masks(mjj_val, train.meta)
        x = train.x[:, self._columns].astype(np.float64)
        x_val = train.x_val[:, self._columns].astype(np.float64)
        # the classifier's data: signal-region events of both splits (its k folds validate)
        x_pool, mjj_pool, w_pool = _pool(train)
        sr, _ = region_masks(mjj_pool, train.meta)
        if not sr.any():  # checked before the flow trains
            raise UserError(f"{self.name} has no signal-region events to train its classifier; "
                            "check the signal region of the dataset")
        with cpu_threads(cfg.threads):
            self.flow = SidebandFlow(x[sb], mjj[sb], x_val[sb_val], mjj_val[sb_val], cfg, ctx, self.name)
            data = self._classifier_inputs(x_pool[sr][:, self._columns].astype(np.float64), mjj_pool[sr])
            template = self._template(mjj_pool[sr], cfg.oversampling * int(sr.sum()), train.meta, ctx)
            self.template = template  # kept for inspection (a few MB at most)
            inputs = np.concatenate([data, template])
            y = np.r_[np.ones(len(data)), np.zeros(len(template))].astype(np.float32)
            # balanced_weights (inside kfold_classifier) gives both classes the same total weight
            w = np.r_[w_pool[sr], np.ones(len(template))]
            self.result = kfold_classifier(inputs, y, w, cfg.classifier_config(), ctx, f"{self.name} classifier")
        self._pool_sr, self._n_data = sr, len(data)
        # the readout's sidebands (adjacent windows unless overridden): where CATHODE's template is checked
        self._n_features = train.x.shape[1]
        self._sb_pool_mjj = mjj_pool[readout_masks(mjj_pool, train.meta, default="adjacent")[1]]
        self._sb_template_seed = int(ctx.rng(35).integers(2**31))  # a stream of its own: the fit is unchanged

    def training_summary(self) -> dict[str, str | int]:
        """Whether the sideband flow was fitted by this run or reused from an identical fit, and its key."""
        return {"sideband_flow": "reused" if self.flow.reused else "fitted", "sideband_flow_key": self.flow.key[:16],
                "sideband_flow_best_epoch": self.flow.best_epoch}

    def score(self, x: np.ndarray, mjj: np.ndarray | None = None) -> np.ndarray:
        mjj = require_mjj(mjj, self.name)
        with cpu_threads(self.config.threads):
            inputs = self._classifier_inputs(np.asarray(x)[:, self._columns].astype(np.float64), mjj)
            logit_ = ensemble_logit(self.result, inputs, self._device)
        return np.nan_to_num(logit_, nan=0.0, posinf=SCORE_CLIP, neginf=-SCORE_CLIP).clip(-SCORE_CLIP, SCORE_CLIP)


class Cathode(_SidebandTemplate):
    """CATHODE: classifier of signal-region data vs sideband-flow samples interpolated into the SR.

    Hallin, Isaacson, Kasieczka, Krause, Nachman, Quadfasel, Schlaffer, Shih,
    Sommerhalder, "Classifying anomalies through outer density estimation",
    PRD 106 (2022) 055006, arXiv:2109.00546. A conditional MAF (zuko) learns
    p(x | mjj) on the sidebands (everything outside the meta's signal
    region; mjj is the context, never an input); masses for the signal
    region are drawn from a KDE of the signal-region data's mjj and the flow
    samples x at each; ``oversampling`` samples per data event (the classes
    are balanced by weight). The k-folded classifier of ``cwola`` (mean
    logit of the fold models on new events) then separates signal-region
    data (label 1) from the samples (label 0): the score is its logit,
    higher = more anomalous. The score is a function of the features only
    and is meant for signal-region events.

    Departures from the paper: model selection keeps the flow's best
    validation epoch (the paper averages samples of its 10 best epochs) and
    each fold classifier's best validation epoch (the paper ensembles the 10
    best epochs); the ensemble here is over the k folds. zuko's MAF has
    no batch-normalisation layers between its blocks (sk_cathode's flow
    normalises between blocks); the inputs are standardised instead.

    Defaults (sk_cathode / the paper): flow 15 MADE blocks of 128-128, lr
    1e-4, weight decay 1e-6, batch 256, <= 100 epochs, patience 10, logit
    preprocessing; KDE bandwidth 0.01, 4x oversampling; classifier
    64-64-64, lr 1e-3, batch 128, <= 100 epochs, patience 10, 5 folds.
    """

    name = "cathode"
    version = "2"  # 2: the template also samples the readout sidebands (the readout's closure check)
    score_region = "sr"  # trained for the signal region only: never cut on in the sidebands

    def training_scores(self) -> np.ndarray:
        """Out-of-fold logits of the SR data in the training pool (NaN outside the SR), as the idealised classifier."""
        out = np.full(len(self._pool_sr), np.nan)
        out[self._pool_sr] = np.nan_to_num(self.result.oof_logit[: self._n_data], nan=0.0, posinf=SCORE_CLIP,
                                           neginf=-SCORE_CLIP)
        return out

    def background_template(self) -> tuple[np.ndarray, np.ndarray]:
        """CATHODE's SR background estimate, then flow samples in the readout sidebands, with their masses.

        SR: the out-of-fold logits of the flow's SR samples (the classifier's
        own training template). Sidebands: ``oversampling`` flow samples per
        training-pool event there (masses drawn from the pool), scored by the
        fold ensemble like the held-out data they are checked against
        (``sideband_fit``'s closure matches the working point by the
        template's efficiency, so the two score scales need not agree).
        """
        scores = np.nan_to_num(self.result.oof_logit[self._n_data:].astype(np.float64), nan=0.0, posinf=SCORE_CLIP,
                               neginf=-SCORE_CLIP)
        masses = np.asarray(self.template_mjj, dtype=np.float64)
        if len(self._sb_pool_mjj):
            rng = np.random.default_rng(self._sb_template_seed)
            sb_mjj = rng.choice(self._sb_pool_mjj, size=self.config.oversampling * len(self._sb_pool_mjj))
            x = np.zeros((len(sb_mjj), self._n_features))
            with cpu_threads(self.config.threads):
                x[:, self._columns] = self.flow.sample(sb_mjj, int(rng.integers(2**31)))
            scores, masses = np.r_[scores, self.score(x, sb_mjj)], np.r_[masses, sb_mjj]
        return scores, masses

    def _classifier_inputs(self, x: np.ndarray, mjj: np.ndarray) -> np.ndarray:
        return x

    def _template(self, mjj_sr: np.ndarray, n: int, meta: dict, ctx: FitContext) -> np.ndarray:
        seed = int(ctx.rng(31).integers(2**31))
        masses = sample_sr_masses(mjj_sr, n, signal_region(meta), self.config.kde_bandwidth, seed)
        self.template_mjj = masses
        return self.flow.sample(masses, int(ctx.rng(32).integers(2**31)))


class LaCathode(_SidebandTemplate):
    """LaCATHODE: the CATHODE classifier in the sideband flow's latent space (no mjj sculpting).

    Hallin, Kasieczka, Quadfasel, Shih, Sommerhalder, "Resonant anomaly
    detection without background sculpting", PRD 107 (2023) 114012,
    arXiv:2210.14924. The sideband flow of ``cathode`` maps each event to
    z = f(x; mjj), standard normal for background at every mass it models
    well. The k-folded classifier separates the signal-region data's latents
    (label 1) from ``oversampling`` x as many N(0, 1) draws (label 0); the
    score of any event is that classifier's logit at f(x; its mjj). Because
    the background has the same latent distribution everywhere, cutting on
    the score keeps the background mjj spectrum's shape outside the signal
    region too (``score_region = "everywhere"``). The flow's mass context is
    clipped to the range it was fitted on.

    Same defaults and departures as ``cathode`` (no mass KDE: the template
    is the normal distribution itself).
    """

    name = "lacathode"
    version = "1"
    #: The score may be evaluated (and cut on) outside the signal region without sculpting mjj.
    score_region = "everywhere"

    def _classifier_inputs(self, x: np.ndarray, mjj: np.ndarray) -> np.ndarray:
        return self.flow.latent(x, mjj)

    def _template(self, mjj_sr: np.ndarray, n: int, meta: dict, ctx: FitContext) -> np.ndarray:
        return ctx.rng(33).standard_normal((n, len(self._columns)))


@hookimpl
def hepad_detectors():
    return [Cathode, LaCathode]
