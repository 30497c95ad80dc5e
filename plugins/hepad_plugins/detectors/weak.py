"""Weakly supervised resonant detectors: CWoLa hunting and the idealised anomaly detector.

Both train a classifier between two *unlabelled* samples whose only difference
is (possibly) the signal, and score events by the classifier's logit:

* ``cwola``: signal-region data vs sideband data (Metodiev, Nachman, Thaler
  2017; Collins, Howe, Nachman 2018);
* ``idealised``: signal-region data vs a perfectly modelled signal-region
  background (the dataset's independent ``background_model`` table), the
  ceiling of weak supervision quoted by the CATHODE paper (Hallin et al. 2022).

The classifier machinery is shared (:func:`kfold_classifier`). The
signal-region helpers (:func:`signal_region`, :func:`region_masks`, from
:mod:`hepad_plugins.regions`, and :func:`feature_columns`) are also used by
the ANODE and CATHODE detectors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from hepad_bench import Detector, FitContext, TrainingData, UserError, hookimpl
from hepad_plugins.regions import ADJACENT_WIDTH, region_masks, sideband_windows, signal_region  # noqa: F401 (re-exported)
from hepad_plugins.detectors._torch import (
    batched,
    mlp,
    seed_torch,
    tensor,
    to_numpy,
    train_minibatches,
    weighted_mean,
    with_threads,
)

#: Name of the resonant observable among the feature columns (LHCO features include it).
RESONANT = "mjj"


# -- signal region and sidebands ------------------------------------------------------------
# The geometry lives in hepad_plugins.regions (torch-free, shared with the metrics); re-exported
# here because the resonant detectors (ANODE, CATHODE) import it from this module.


def feature_columns(features: list[str]) -> np.ndarray:
    """Indices of the classifier/flow inputs: every feature except the resonant observable itself.

    The weak-supervision methods must not see ``mjj`` directly: a classifier
    would separate the regions by it trivially, and ANODE conditions on it.
    """
    keep = [i for i, name in enumerate(features) if name != RESONANT]
    if not keep:
        raise UserError("the dataset has no features besides mjj; weakly supervised detectors need some")
    return np.asarray(keep)


def require_mjj(mjj: np.ndarray | None, what: str) -> np.ndarray:
    if mjj is None:
        raise UserError(f"{what} needs the resonant observable mjj; run it on a resonant dataset")
    return np.asarray(mjj, dtype=np.float64)


# -- shared classifier --------------------------------------------------------------------
@dataclass
class ClassifierConfig:
    """Hyperparameters of the k-folded classifier (defaults in brackets).

    k_folds [5]: folds; per fold model one fold is held out (its events are
    scored out of fold), one is the validation fold for early stopping, the
    rest train. hidden [64, 64, 64]: hidden layer widths. epochs [50]: epoch
    cap. batch_size [256]. lr [1e-3]: AdamW learning rate. weight_decay [1e-4]:
    AdamW decoupled weight decay. patience [8]: epochs without validation
    improvement before stopping, the best validation weights kept (0: no
    early stopping, all epochs run and the last weights kept). threads [1]:
    torch CPU threads while fitting and scoring (0: keep torch's setting).
    """

    k_folds: int = 5  # folds (>= 3: one held out, one validation, the rest training)
    hidden: tuple[int, ...] = (64, 64, 64)  # hidden layer widths
    epochs: int = 50  # epoch cap per fold model
    batch_size: int = 256  # minibatch size
    lr: float = 1e-3  # AdamW learning rate
    weight_decay: float = 1e-4  # AdamW weight decay
    patience: int = 8  # early-stopping patience in epochs (0: off, last weights kept)
    threads: int = 1  # torch CPU threads while fitting and scoring (0: keep torch's setting)

    def __post_init__(self) -> None:
        if self.k_folds < 3:
            raise ValueError("k_folds must be at least 3 (held-out, validation and training folds)")
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError("epochs and batch_size must be positive and lr > 0")
        if self.threads < 0:
            raise ValueError("threads must be >= 0 (0: keep torch's setting)")


@dataclass
class KFoldResult:
    """The fold models and their out-of-fold logits on the training pool."""

    models: list[nn.Module]
    fold: np.ndarray  # fold id of each training event
    oof_logit: np.ndarray  # logit of each event by the model whose held-out fold it is in
    mean: np.ndarray
    scale: np.ndarray
    histories: list[Any] = field(default_factory=list)


def balanced_weights(y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Event weights rescaled so both classes carry the same total (mean weight 1)."""
    out = np.asarray(w, dtype=np.float64).copy()
    for cls in (0, 1):
        sel = y == cls
        total = out[sel].sum()
        if total <= 0:
            raise UserError(f"the classifier has no events (or zero total weight) in class {cls}; "
                            "check the signal region and the dataset")
        out[sel] *= 0.5 * len(y) / total
    return out


def assign_folds(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """A random fold id in 0..k-1 per event, folds as equal as possible."""
    fold = np.empty(n, dtype=np.int64)
    fold[rng.permutation(n)] = np.arange(n) % k
    return fold


def fold_roles(fold: np.ndarray, j: int, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Masks (train, validation, held out) of fold model ``j``: held out j, validation (j+1) mod k."""
    held = fold == j
    val = fold == (j + 1) % k
    return ~(held | val), val, held


def kfold_classifier(x: np.ndarray, y: np.ndarray, w: np.ndarray, cfg: ClassifierConfig,
                     ctx: FitContext, description: str) -> KFoldResult:
    """Train ``cfg.k_folds`` classifiers of ``y`` (0/1) from ``x`` with class-balanced weights ``w``.

    Model j never sees fold j (its held-out fold, scored out of fold) and
    stops early on fold j+1. Inputs are standardised with the pool's mean and
    standard deviation (shared by all folds: it uses no labels).
    """
    device = torch.device(ctx.device)
    n = x.shape[0]
    fold = assign_folds(n, cfg.k_folds, ctx.rng(101))
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    xt = tensor((x - mean) / scale, device)
    yt = tensor(y, device)
    wt = tensor(balanced_weights(y, w), device)
    bce = nn.BCEWithLogitsLoss(reduction="none")
    models, histories = [], []
    oof = np.zeros(n)
    for j in range(cfg.k_folds):
        tr, va, held = fold_roles(fold, j, cfg.k_folds)
        gen = seed_torch(int(ctx.rng(1000 + j).integers(2**31)))
        model = mlp([x.shape[1], *cfg.hidden, 1]).to(device)
        tr_idx, va_idx = tensor(np.flatnonzero(tr), device, torch.long), tensor(np.flatnonzero(va), device, torch.long)

        def batch_loss(idx: torch.Tensor, model=model, tr_idx=tr_idx) -> torch.Tensor:
            rows = tr_idx[idx]
            return weighted_mean(bce(model(xt[rows]).squeeze(-1), yt[rows]), wt[rows])

        def val_loss(model=model, va_idx=va_idx) -> float:
            with torch.inference_mode():
                logit = batched(lambda b: model(b).squeeze(-1), xt[va_idx])
                return float(weighted_mean(bce(logit, yt[va_idx]), wt[va_idx]))

        # patience 0: no early stopping, the last epoch's weights are kept
        watch = val_loss if cfg.patience > 0 else None

        opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        hist = train_minibatches(
            [model], opt, batch_loss, int(tr.sum()), val_loss=watch, epochs=cfg.epochs,
            batch_size=cfg.batch_size, patience=cfg.patience, generator=gen, device=device, ctx=ctx,
            description=f"{description} fold {j + 1}/{cfg.k_folds}",
        )
        held_idx = tensor(np.flatnonzero(held), device, torch.long)
        with torch.inference_mode():
            oof[held] = to_numpy(batched(lambda b: model(b).squeeze(-1), xt[held_idx]))
        models.append(model)
        histories.append(hist)
    return KFoldResult(models, fold, oof, mean, scale, histories)


def ensemble_logit(result: KFoldResult, x: np.ndarray, device: torch.device) -> np.ndarray:
    """Mean logit of the fold models on new events (none of which any model saw)."""
    xt = tensor((np.asarray(x, dtype=np.float64) - result.mean) / result.scale, device)
    with torch.inference_mode():
        total = sum(batched(lambda b, m=m: m(b).squeeze(-1), xt).double() for m in result.models)
    return to_numpy(total / len(result.models))


class _WeakClassifier(Detector):
    """Shared fit/score of the two classifier-based weak detectors."""

    kind = "weakly_supervised"
    tasks = ("resonant",)
    Config = ClassifierConfig

    def _samples(self, train: TrainingData) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(x, y, weight) of the classifier's two samples, all features (mjj dropped later)."""
        raise NotImplementedError

    @with_threads
    def fit(self, train: TrainingData, ctx: FitContext) -> None:
        self._columns = feature_columns(train.features)
        self._device = torch.device(ctx.device)
        x, y, w = self._samples(train)
        self._y = y
        x = x[:, self._columns].astype(np.float64)
        self.result = kfold_classifier(x, y.astype(np.float32), w, self.config, ctx, self.name)

    @with_threads
    def score(self, x: np.ndarray, mjj: np.ndarray | None = None) -> np.ndarray:
        logit = ensemble_logit(self.result, np.asarray(x)[:, self._columns], self._device)
        return np.nan_to_num(logit.astype(np.float64), nan=0.0, posinf=1e6, neginf=-1e6)


def _pool(train: TrainingData) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Training and validation data together: the k folds provide the validation sets."""
    mjj = require_mjj(train.mjj, "this detector")
    mjj_val = require_mjj(train.mjj_val, "this detector")
    return (np.concatenate([train.x, train.x_val]), np.concatenate([mjj, mjj_val]),
            np.concatenate([train.weight, train.weight_val]))


class CWoLa(_WeakClassifier):
    """CWoLa hunting: k-folded classifier of signal-region vs sideband data (score = logit).

    Classification Without Labels (Metodiev, Nachman, Thaler, JHEP 10 (2017)
    174, arXiv:1708.02949) applied to a resonance search (Collins, Howe,
    Nachman, PRL 121 (2018) 241803, arXiv:1805.02664). A dense network learns
    signal region (the dataset meta's ``signal_region``, or ``sr_low`` /
    ``sr_high``, in TeV) vs the two adjacent sidebands (CWoLa hunting's
    choice: ``regions.ADJACENT_WIDTH`` = 0.2 TeV on each side unless the
    dataset sets ``sb_width`` or ``sidebands``) on the unlabelled data
    (training and validation splits pooled), with the two regions balanced
    by weight; ``mjj`` itself is dropped from the inputs. Where the regions
    differ only by a localised signal, the optimal classifier is monotonic in
    the signal/background likelihood ratio.

    k-folding: the pool is split into ``k_folds`` folds; model j holds out
    fold j, stops early on fold j+1 (best validation weights kept) and trains
    on the rest, so every training event has an out-of-fold logit from a
    model that never saw it (``result.oof_logit``). CWoLa hunting selects
    on exactly these: :meth:`training_scores` hands them to the runner
    (sample ``training``), and the sideband-fit readout cuts on them, so the
    search uses the same data the classifier trained on without any event
    judged by a model that saw it. New events (the test background, signals
    and hunt tables the runner scores are held out, seen by no model) get
    the mean logit of the k models, an ensemble; the score means what it
    was trained for in the SR and its sidebands only (``score_region``).

    Defaults: k_folds 5, hidden 64-64-64 ReLU, AdamW lr 1e-3, weight decay
    1e-4, batch 256, at most 50 epochs, patience 8; inputs standardised.
    """

    name = "cwola"
    version = "2"  # 2: adjacent sidebands by default, out-of-fold scores of the training pool
    score_region = "sr+sidebands"

    def _samples(self, train: TrainingData) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        x, mjj, w = _pool(train)
        sr, sb = region_masks(mjj, train.meta, default="adjacent")
        self._keep = sr | sb
        return x[self._keep], sr[self._keep].astype(np.float32), w[self._keep]

    def training_scores(self) -> np.ndarray:
        """Out-of-fold logits of the pool (train then validation rows); NaN outside SR and sidebands."""
        out = np.full(len(self._keep), np.nan)
        out[self._keep] = np.nan_to_num(self.result.oof_logit, nan=0.0, posinf=1e6, neginf=-1e6)
        return out


class Idealised(_WeakClassifier):
    """Idealised anomaly detector: classifier of signal-region data vs perfectly modelled background.

    The ceiling of weak supervision (Hallin et al., "Classifying anomalies
    through outer density estimation" (CATHODE), PRD 106 (2022) 055006,
    arXiv:2109.00546): the CWoLa classifier where the sideband sample is
    replaced by an independent sample of the true signal-region background
    (the dataset's ``background_model`` table). Same machinery and defaults
    as ``cwola`` (k-folded, logit score, class balance by weight, mjj
    dropped from the inputs): k_folds 5, hidden 64-64-64, lr 1e-3, weight
    decay 1e-4, batch 256, at most 50 epochs, patience 8.
    """

    name = "idealised"
    version = "2"  # 2: out-of-fold scores of SR data and of the background model, for the search readout
    score_region = "sr"

    def _samples(self, train: TrainingData) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        x, mjj, w = _pool(train)
        sr, _ = region_masks(mjj, train.meta)
        model = train.extra.get("background_model")
        if model is None or len(model) == 0:
            raise UserError("idealised needs the dataset's 'background_model' table (independent SR background)")
        model_w = train.extra.get("background_model_weight")
        model_w = np.ones(len(model)) if model_w is None else np.asarray(model_w, dtype=np.float64)
        model_mjj = train.extra.get("background_model_mjj")
        in_sr = slice(None)
        if model_mjj is not None:  # keep the model to the same signal region as the data
            in_sr, _ = region_masks(model_mjj, train.meta)
            model, model_w = model[in_sr], model_w[in_sr]
        self._sr = sr
        x_all = np.concatenate([x[sr], model])
        y = np.r_[np.ones(int(sr.sum())), np.zeros(len(model))].astype(np.float32)
        self._template_mjj = None if model_mjj is None else np.asarray(model_mjj, dtype=np.float64)[in_sr]
        return x_all, y, np.concatenate([w[sr], model_w])

    def background_template(self) -> tuple[np.ndarray, np.ndarray | None]:
        """Out-of-fold logits of the background-model events (its SR background, as CATHODE's samples).

        Out of fold like :meth:`training_scores`, so that both are single
        fold-model logits of events the model did not see: the search
        compares their efficiencies at one threshold (the ensemble mean used
        for new events has a narrower spread and would not compare).
        """
        n = self._n_template
        return np.nan_to_num(self.result.oof_logit[-n:], nan=0.0, posinf=1e6, neginf=-1e6), self._template_mjj

    def training_scores(self) -> np.ndarray:
        """Out-of-fold logits of the SR data rows of the pool (train then validation); NaN elsewhere."""
        out = np.full(len(self._sr), np.nan)
        out[self._sr] = np.nan_to_num(self.result.oof_logit[: int(self._sr.sum())], nan=0.0, posinf=1e6, neginf=-1e6)
        return out

    def fit(self, train: TrainingData, ctx: FitContext) -> None:
        super().fit(train, ctx)
        self._n_template = int((np.asarray(self._y) == 0).sum())  # the model rows come last in the pool


@hookimpl
def hepad_detectors():
    return [CWoLa, Idealised]
