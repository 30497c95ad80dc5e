"""Supervised DNN: reaches the Bayes-optimal AUC of two Gaussians, balanced weights, logit score."""

from __future__ import annotations

from importlib.metadata import entry_points

import numpy as np
import pytest
import torch
from scipy.stats import norm, spearmanr
from sklearn.metrics import roc_auc_score

from hepad_bench import FitContext, TrainingData, UserError
from hepad_plugins.detectors.supervised import SupervisedDNN, SupervisedDNNConfig, balanced_weights

torch.set_num_threads(1)
DIM = 6
SHIFT = np.full(DIM, 0.5)  # signal mean; background N(0, I), signal N(SHIFT, I)
SMALL = dict(hidden=(32, 32), epochs=30, batch_size=256, patience=5)


def gaussians(rng: np.random.Generator, n_bg: int, n_sig: int):
    x = np.r_[rng.normal(size=(n_bg, DIM)), rng.normal(size=(n_sig, DIM)) + SHIFT].astype(np.float32)
    return x, np.r_[np.zeros(n_bg), np.ones(n_sig)].astype(np.float32)


@pytest.fixture(scope="module")
def toy():
    rng = np.random.default_rng(21)
    # unequal class sizes, as in the runner (background train + a smaller signal split)
    x, y = gaussians(rng, 3000, 1000)
    x_val, y_val = gaussians(rng, 800, 250)
    train = TrainingData(features=[f"f{i}" for i in range(DIM)], x=x, weight=np.ones(len(x)),
                         x_val=x_val, weight_val=np.ones(len(x_val)), y=y, y_val=y_val, signal="toy")
    x_test, y_test = gaussians(rng, 10000, 10000)
    return train, x_test, y_test


@pytest.fixture(scope="module")
def fitted(toy):
    det = SupervisedDNN(SupervisedDNNConfig(**SMALL))
    det.fit(toy[0], FitContext(seed=4))
    return det


def test_registered_through_entry_point():
    (ep,) = [e for e in entry_points(group="hepad_bench") if e.name == "detectors_supervised"]
    assert ep.load().hepad_detectors() == [SupervisedDNN]
    assert SupervisedDNN.kind == "supervised" and SupervisedDNN.name == "supervised-dnn"


def test_auc_reaches_bayes_optimum(toy, fitted):
    _, x_test, y_test = toy
    # equal-covariance Gaussians: the optimal AUC is Phi(delta / sqrt(2)), delta the Mahalanobis distance
    delta = np.sqrt(SHIFT @ SHIFT)
    bayes = norm.cdf(delta / np.sqrt(2.0))
    auc = roc_auc_score(y_test, fitted.score(x_test))
    assert auc == pytest.approx(bayes, abs=0.02)


def test_score_orders_events_like_the_likelihood_ratio(toy, fitted):
    # for these Gaussians log LR is linear in SHIFT . x, so the optimal score is a monotone map of it
    x_test = toy[1][:3000]
    rho = spearmanr(fitted.score(x_test), x_test.astype(np.float64) @ SHIFT).statistic
    assert rho > 0.95


def test_score_is_logit_float64(toy, fitted):
    s = fitted.score(toy[1])
    assert s.dtype == np.float64 and np.all(np.isfinite(s))
    assert s.min() < 0 < s.max()  # a logit, not a probability in (0, 1)


def test_balanced_weights_by_hand():
    y = np.array([0, 0, 0, 1])
    w = balanced_weights(np.array([1.0, 1.0, 2.0, 3.0]), y)
    # background sums to 4, signal to 3; each class gets 7/2, then mean-1 normalisation (x 4/7)
    np.testing.assert_allclose(w, [0.5, 0.5, 1.0, 2.0])
    assert w[y == 0].sum() == pytest.approx(w[y == 1].sum())


def test_needs_labels(toy):
    train = toy[0]
    unlabelled = TrainingData(features=train.features, x=train.x, weight=train.weight,
                              x_val=train.x_val, weight_val=train.weight_val)
    with pytest.raises(UserError, match="labelled"):
        SupervisedDNN().fit(unlabelled, FitContext(seed=0))


def test_same_seed_same_scores(toy):
    train, x_test, _ = toy
    cfg = SMALL | dict(epochs=2)
    scores = []
    for seed in (1, 1, 2):
        det = SupervisedDNN(SupervisedDNNConfig(**cfg))
        det.fit(train, FitContext(seed=seed))
        scores.append(det.score(x_test))
    np.testing.assert_array_equal(scores[0], scores[1])
    assert not np.array_equal(scores[0], scores[2])
