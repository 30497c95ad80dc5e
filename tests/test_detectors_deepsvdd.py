"""Deep SVDD: bias-free network, centre guard, score = squared distance, detection on a toy."""

from __future__ import annotations

from importlib.metadata import entry_points

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from hepad_bench import FitContext, TrainingData
from hepad_plugins.detectors.deepsvdd import DeepSVDD, DeepSVDDConfig, guard_centre

torch.set_num_threads(1)
N_FEATURES = 8


def background(rng: np.random.Generator, n: int, mixing: np.ndarray) -> np.ndarray:
    """A correlated Gaussian blob in 8 dimensions."""
    return (rng.normal(size=(n, N_FEATURES)) @ mixing).astype(np.float32)


def anomalies(rng: np.random.Generator, n: int, mixing: np.ndarray) -> np.ndarray:
    """The same blob shifted by +2.5 in every feature (several background widths away)."""
    return background(rng, n, mixing) + np.float32(2.5)


@pytest.fixture(scope="module")
def toy():
    rng = np.random.default_rng(11)
    mixing = 0.5 * rng.normal(size=(N_FEATURES, N_FEATURES))
    train = TrainingData(
        features=[f"f{i}" for i in range(N_FEATURES)],
        x=background(rng, 1500, mixing), weight=np.ones(1500),
        x_val=background(rng, 400, mixing), weight_val=np.ones(400),
    )
    test_bg, test_sig = background(rng, 1000, mixing), anomalies(rng, 1000, mixing)
    return train, test_bg, test_sig


SMALL = dict(hidden=(32, 16), rep_dim=8, epochs=8, pretrain_epochs=5, batch_size=128)


@pytest.fixture(scope="module")
def fitted(toy):
    det = DeepSVDD(DeepSVDDConfig(**SMALL))
    det.fit(toy[0], FitContext(seed=3))
    return det


def test_registered_through_entry_point():
    (ep,) = [e for e in entry_points(group="hepad_bench") if e.name == "detectors_deepsvdd"]
    assert ep.load().hepad_detectors() == [DeepSVDD]
    assert DeepSVDD.kind == "unsupervised" and DeepSVDD.version == "1"
    assert "Ruff" in DeepSVDD.__doc__.splitlines()[0]


def test_detects_obvious_anomalies(toy, fitted):
    _, bg, sig = toy
    s_bg, s_sig = fitted.score(bg), fitted.score(sig)
    assert s_bg.dtype == np.float64 and np.all(np.isfinite(s_bg)) and np.all(np.isfinite(s_sig))
    auc = roc_auc_score(np.r_[np.zeros(len(bg)), np.ones(len(sig))], np.r_[s_bg, s_sig])
    assert auc > 0.85


def test_network_has_no_bias_parameters(fitted):
    names = [name for name, _ in fitted.net.named_parameters()]
    assert names, "the network has parameters"
    assert not any("bias" in name for name in names)
    assert all(p.dim() == 2 for p in fitted.net.parameters())  # only weight matrices
    # and it really has no offset: the origin maps to the origin
    with torch.inference_mode():
        assert torch.count_nonzero(fitted.net(torch.zeros(1, N_FEATURES))) == 0


def test_centre_guard_on_hand_made_output():
    c = torch.tensor([0.05, -0.05, 0.0, 0.3, -0.2, 0.1, -0.0999])
    guarded = guard_centre(c, 0.1)
    expected = torch.tensor([0.1, -0.1, 0.1, 0.3, -0.2, 0.1, -0.1])
    assert torch.allclose(guarded, expected)


def test_centre_is_guarded_mean_of_initial_outputs(toy):
    # lr = 0 keeps the network at its initial weights, so the centre can be recomputed independently
    train = toy[0]
    det = DeepSVDD(DeepSVDDConfig(**(SMALL | dict(lr=0.0, weight_decay=0.0, epochs=1, pretrain_epochs=0))))
    det.fit(train, FitContext(seed=5))
    mean = det.embed(train.x).mean(axis=0)
    expected = np.where(np.abs(mean) < 0.1, np.where(mean < 0, -0.1, 0.1), mean)
    assert np.any(np.abs(mean) < 0.1), "the toy should exercise the guard"
    np.testing.assert_allclose(det.centre.numpy(), expected, rtol=1e-5, atol=1e-6)


def test_score_is_squared_distance_to_centre(toy, fitted):
    x = toy[1][:200]
    phi = fitted.embed(x)
    centre = fitted.centre.numpy().astype(np.float64)
    expected = ((phi - centre) ** 2).sum(axis=1)
    np.testing.assert_allclose(fitted.score(x), expected, rtol=1e-5, atol=1e-7)


def test_same_seed_same_scores(toy):
    train, bg, _ = toy
    cfg = dict(SMALL, epochs=2, pretrain_epochs=1)
    scores = []
    for seed in (7, 7, 8):
        det = DeepSVDD(DeepSVDDConfig(**cfg))
        det.fit(train, FitContext(seed=seed))
        scores.append(det.score(bg))
    np.testing.assert_array_equal(scores[0], scores[1])
    assert not np.array_equal(scores[0], scores[2])


def test_bad_config_is_rejected():
    with pytest.raises(ValueError):
        DeepSVDDConfig(rep_dim=0)
