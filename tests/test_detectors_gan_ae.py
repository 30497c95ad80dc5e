"""GAN-AE and its DisCo term: distance correlation against dcor, flat-mjj weights, decorrelation, detection."""

from __future__ import annotations

from importlib.metadata import entry_points

import dcor
import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from hepad_bench import FitContext, Progress, TrainingData, UserError
from hepad_plugins.detectors._disco import distance_correlation, distance_correlation_sq
from hepad_plugins.detectors.gan_ae import GANAE, FlatMjjWeights, GANAEConfig

torch.set_num_threads(1)

#: a small network and schedule so that each fit takes about a second
SMALL = dict(hidden=(32,), latent=3, d_hidden=(32, 16), cycles=3, ae_epochs=2, d_epochs=2,
             pretrain_epochs=15, batch_size=256, lr=2e-3)


def t64(a: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(a, dtype=torch.float64)


# -- distance correlation -------------------------------------------------------

SHAPES = ["linear-noise", "quadratic", "sine", "independent"]


@pytest.mark.parametrize("shape", SHAPES)
def test_distance_correlation_matches_dcor(shape):
    rng = np.random.default_rng(SHAPES.index(shape))
    x = rng.normal(size=400)
    noise = rng.normal(size=400)
    y = {"linear-noise": x + noise, "quadratic": x**2 + 0.3 * noise,
         "sine": np.sin(3 * x) + 0.2 * noise, "independent": noise}[shape]
    assert float(distance_correlation(t64(x), t64(y))) == pytest.approx(dcor.distance_correlation(x, y), rel=1e-9)
    assert float(distance_correlation_sq(t64(x), t64(y))) == pytest.approx(
        dcor.distance_correlation(x, y) ** 2, rel=1e-9)


def test_integer_weights_act_as_event_multiplicities():
    rng = np.random.default_rng(4)
    x = rng.exponential(size=250)
    y = np.log(x) + rng.normal(size=250)
    w = rng.integers(1, 5, size=250)
    expected = dcor.distance_correlation(np.repeat(x, w), np.repeat(y, w))
    assert float(distance_correlation(t64(x), t64(y), t64(w))) == pytest.approx(expected, rel=1e-9)


def test_distance_correlation_limits():
    rng = np.random.default_rng(5)
    x, z = rng.normal(size=2000), rng.normal(size=2000)
    assert float(distance_correlation_sq(t64(x), t64(z))) < 0.01
    assert float(distance_correlation(t64(x), t64(3.0 * x + 2.0))) == pytest.approx(1.0, abs=1e-9)
    assert float(distance_correlation(t64(x), t64(-0.5 * x))) == pytest.approx(1.0, abs=1e-9)


def test_distance_correlation_is_differentiable():
    rng = np.random.default_rng(6)
    x = t64(rng.normal(size=100)).requires_grad_(True)
    distance_correlation_sq(x, t64(rng.normal(size=100)) + x.detach()).backward()
    assert x.grad is not None and torch.all(torch.isfinite(x.grad)) and torch.any(x.grad != 0)


# -- flat mjj weights -----------------------------------------------------------

def test_flat_mjj_weights_flatten_the_histogram():
    rng = np.random.default_rng(7)
    mjj = 1000.0 + rng.exponential(300.0, size=20000)
    weight = rng.uniform(0.5, 1.5, size=20000)
    flat = FlatMjjWeights(mjj, weight, bins=20)
    w = flat(mjj, weight)
    assert w.mean() == pytest.approx(1.0)
    lo, hi = np.percentile(mjj, [0.5, 99.5])
    # every bin of the documented binning (tails folded into the edge bins) carries the same weight
    folded = np.clip(mjj, lo, hi)
    contents, _ = np.histogram(folded, bins=np.linspace(lo, hi, 21), weights=w)
    np.testing.assert_allclose(contents, contents.mean(), rtol=1e-9)


# -- the detector ---------------------------------------------------------------

def test_registered_through_entry_point():
    (ep,) = [e for e in entry_points(group="hepad_bench") if e.name == "detectors_gan_ae"]
    assert ep.load().hepad_detectors() == [GANAE]
    assert GANAE.kind == "unsupervised" and GANAE.tasks == ("unsupervised", "resonant")
    assert "arXiv:2305.15179" in GANAE.__doc__.splitlines()[0]


def test_published_defaults():
    cfg = GANAEConfig()
    assert (cfg.latent, cfg.hidden, cfg.d_hidden) == (14, (84,), (300, 200, 100, 50))
    assert (cfg.eps, cfg.alpha, cfg.dropout) == (6.0, 65.0, 0.2)
    assert (cfg.cycles, cfg.ae_epochs, cfg.d_epochs) == (100, 5, 7) and cfg.pretrain_epochs > 0


class RecordingProgress(Progress):
    def __init__(self):
        self.lines: list[str] = []

    def log(self, message: str) -> None:
        self.lines.append(message)


@pytest.fixture(scope="module")
def blob_toy():
    """Background: a correlated 8-d Gaussian blob; anomalies: the blob shifted by +2.5 in every feature."""
    rng = np.random.default_rng(11)
    mixing = 0.5 * rng.normal(size=(8, 8))

    def blob(n):
        return (rng.normal(size=(n, 8)) @ mixing).astype(np.float32)

    train = TrainingData(features=[f"f{i}" for i in range(8)], x=blob(1500), weight=np.ones(1500),
                         x_val=blob(400), weight_val=np.ones(400))
    return train, blob(1000), blob(1000) + np.float32(2.5)


def test_detects_obvious_anomalies_without_mjj_and_says_so(blob_toy):
    train, bg, sig = blob_toy
    progress = RecordingProgress()
    det = GANAE(GANAEConfig(**SMALL))
    det.fit(train, FitContext(seed=2, progress=progress))
    assert any("no mjj" in line and "DisCo" in line for line in progress.lines)
    assert det.notes == [line for line in progress.lines if "DisCo" in line]
    s_bg, s_sig = det.score(bg), det.score(sig)
    assert s_bg.dtype == np.float64 and np.all(np.isfinite(s_bg)) and np.all(np.isfinite(s_sig))
    assert roc_auc_score(np.r_[np.zeros(len(bg)), np.ones(len(sig))], np.r_[s_bg, s_sig]) > 0.85


def test_score_is_rms_reconstruction_error(blob_toy):
    train, bg, _ = blob_toy
    det = GANAE(GANAEConfig(**(SMALL | dict(cycles=1, pretrain_epochs=1))))
    det.fit(train, FitContext(seed=1))
    scaled = det.inputs.scaler.transform(bg[:100])
    with torch.inference_mode():
        reco = det.ae(torch.as_tensor(scaled, dtype=torch.float32)).double().numpy()
    expected = np.sqrt(((reco - scaled) ** 2).mean(axis=1))
    np.testing.assert_allclose(det.score(bg[:100]), expected, rtol=1e-4)


def resonant_toy(rng: np.random.Generator, n: int, mixing: np.ndarray):
    """mjj is a feature, and the other features' noise grows with mjj: a plain AE's error follows mjj."""
    mjj = rng.uniform(1.0, 3.0, n)
    rest = rng.normal(size=(n, 2)) @ mixing + 0.3 * mjj[:, None] * rng.normal(size=(n, 6))
    return np.c_[mjj, rest].astype(np.float32), mjj


def test_disco_term_decorrelates_score_from_mjj():
    rng = np.random.default_rng(2)
    mixing = rng.normal(size=(2, 6))
    x, mjj = resonant_toy(rng, 2000, mixing)
    x_val, mjj_val = resonant_toy(rng, 500, mixing)
    x_test, mjj_test = resonant_toy(rng, 1500, mixing)
    train = TrainingData(features=[f"f{i}" for i in range(7)], x=x, weight=np.ones(2000), x_val=x_val,
                         weight_val=np.ones(500), mjj=mjj, mjj_val=mjj_val, task="resonant")
    dcors = {}
    for alpha in (0.0, 65.0):
        det = GANAE(GANAEConfig(**(SMALL | dict(alpha=alpha, cycles=4, ae_epochs=3, pretrain_epochs=10))))
        progress = RecordingProgress()
        det.fit(train, FitContext(seed=1, progress=progress))
        assert det.notes == [] and progress.lines == []  # mjj present: nothing switched off
        dcors[alpha] = dcor.distance_correlation(det.score(x_test), mjj_test)
    assert dcors[0.0] > 0.2, "the toy must make the undecorrelated score depend on mjj"
    assert dcors[65.0] < 0.6 * dcors[0.0]


def test_same_seed_same_scores(blob_toy):
    train, bg, _ = blob_toy
    cfg = SMALL | dict(cycles=1, pretrain_epochs=2)
    scores = []
    for seed in (9, 9, 10):
        det = GANAE(GANAEConfig(**cfg))
        det.fit(train, FitContext(seed=seed))
        scores.append(det.score(bg))
    np.testing.assert_array_equal(scores[0], scores[1])
    assert not np.array_equal(scores[0], scores[2])


def test_schedule_summary_and_cost_without_the_discriminator(blob_toy):
    train, bg, _ = blob_toy
    det = GANAE(GANAEConfig(**(SMALL | dict(cycles=2, pretrain_epochs=1))))
    det.fit(train, FitContext(seed=1))
    summary = det.training_summary()
    assert summary["passes"] == 1 + 2 * (2 + 2) and summary["published_schedule"] is False
    assert summary["schedule"] == "1 pre-training epochs + 2 cycles x (2 D + 2 AE epochs)" and summary["disco"] is False
    # scoring runs the AE only: 8-32-3-32-8 with biases; the discriminator is not part of the trigger model
    widths = [8, 32, 3, 32, 8]
    macs = sum(a * b for a, b in zip(widths[:-1], widths[1:]))
    cost = det.model_cost(bg, None)
    assert cost.macs_per_event == macs and cost.parameters == macs + sum(widths[1:])


@pytest.mark.parametrize("latent", [8, 9])
def test_latent_not_below_the_inputs_is_a_user_error_before_training(blob_toy, latent):
    train, _, _ = blob_toy
    with pytest.raises(UserError, match=f"latent width {latent} is not below the 8 input features"):
        GANAE.check(GANAEConfig(latent=latent), 8)
    det = GANAE(GANAEConfig(**(SMALL | dict(latent=latent))))
    with pytest.raises(UserError):
        det.fit(train, FitContext(seed=0))
    assert not hasattr(det, "ae")  # refused before any network was built
    GANAE.check(GANAEConfig(latent=7), 8)
