"""The ``ae`` and ``vae`` detectors on small toys, checked against independent numpy/scipy computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal
from sklearn.metrics import roc_auc_score

from hepad_bench import FitContext, TrainingData, UserError
from hepad_bench.params import build_config
from hepad_plugins.detectors.autoencoders import AEDetector, VAEDetector
from thread_spy import ThreadSpy  # noqa: E402

torch.set_num_threads(1)

D = 10
FAST = {"epochs": 15, "batch_size": 128}


def _manifold(rng: np.random.Generator, n: int, basis: np.ndarray, radius: float | None = None) -> np.ndarray:
    """Events on a 2-d plane of the 10-d space (plus a little noise), optionally at a fixed latent radius range."""
    z = rng.normal(size=(n, 2))
    if radius is not None:
        z *= rng.uniform(radius, radius + 1.5, size=(n, 1)) / np.linalg.norm(z, axis=1, keepdims=True)
    return (z @ basis + 0.05 * rng.normal(size=(n, D))).astype(np.float32)


@pytest.fixture(scope="module")
def toy():
    """Background on a plane, anomalies leaving it (off) or far out along it (tail)."""
    rng = np.random.default_rng(7)
    basis = rng.normal(size=(2, D))
    x, x_val, test = (_manifold(rng, n, basis) for n in (1200, 300, 500))
    off = (_manifold(rng, 500, basis) + rng.normal(size=(500, D))).astype(np.float32)
    tail = _manifold(rng, 500, basis, radius=3.5)
    train = TrainingData(features=[f"f{i}" for i in range(D)], x=x, weight=np.ones(len(x)),
                         x_val=x_val, weight_val=np.ones(len(x_val)))
    return {"train": train, "test": test, "off": off, "tail": tail}


def _auc(det, test: np.ndarray, anomalies: np.ndarray) -> float:
    s_bg, s_an = det.score(test), det.score(anomalies)
    return roc_auc_score(np.r_[np.zeros(len(s_bg)), np.ones(len(s_an))], np.r_[s_bg, s_an])


def _fitted(cls, train: TrainingData, seed: int = 1, **params):
    det = cls(cls.Config(**(FAST | params)))
    det.fit(train, FitContext(seed=seed, device="cpu"))
    return det


@pytest.fixture(scope="module")
def ae(toy):
    return _fitted(AEDetector, toy["train"])


@pytest.fixture(scope="module")
def vae(toy):
    return _fitted(VAEDetector, toy["train"])


def test_ae_scores_are_finite_float64_and_separate_off_manifold_events(ae, toy):
    scores = ae.score(toy["test"])
    assert scores.dtype == np.float64 and scores.shape == (len(toy["test"]),)
    assert np.all(np.isfinite(scores))
    assert _auc(ae, toy["test"], toy["off"]) > 0.9  # higher score = more anomalous


def test_vae_default_total_score_separates_both_kinds_of_anomaly(vae, toy):
    assert vae.config.score == "total"
    scores = vae.score(toy["off"])
    assert scores.dtype == np.float64 and scores.shape == (len(toy["off"]),) and np.all(np.isfinite(scores))
    assert _auc(vae, toy["test"], toy["off"]) > 0.9
    assert _auc(vae, toy["test"], toy["tail"]) > 0.9


def test_vae_kl_score_flags_latent_tail_events(vae, toy):
    vae.config.score = "kl"
    try:
        assert _auc(vae, toy["test"], toy["tail"]) > 0.9
    finally:
        vae.config.score = "total"


def test_ae_score_is_mean_squared_error_of_its_own_reconstruction(ae, toy):
    x = toy["off"]
    train_x = toy["train"].x.astype(np.float64)
    standardised = (x - train_x.mean(axis=0)) / train_x.std(axis=0)  # numpy's own standardisation
    np.testing.assert_allclose(ae.transform(x), standardised, rtol=1e-4, atol=1e-5)
    reconstruction = ae.reconstruct(x)
    assert reconstruction.shape == x.shape
    expected = ((standardised - reconstruction) ** 2).mean(axis=1)
    np.testing.assert_allclose(ae.score(x), expected, rtol=1e-4)


def test_vae_terms_match_closed_form_gaussian_kl_and_mean_reconstruction(vae, toy):
    x = np.r_[toy["test"][:100], toy["tail"][:100]]
    mu, logvar = vae.encode(x)
    assert mu.shape == logvar.shape == (200, vae.config.latent)
    kl_numpy = 0.5 * (mu**2 + np.exp(logvar) - 1.0 - logvar).sum(axis=1)
    # a second, independent route for a few events: KL = cross-entropy(q, p) - entropy(q)
    for i in range(5):
        var = np.exp(logvar[i])
        cross = 0.5 * np.sum(mu[i] ** 2 + var) + 0.5 * len(var) * np.log(2 * np.pi)
        assert kl_numpy[i] == pytest.approx(cross - multivariate_normal(mu[i], np.diag(var)).entropy(), rel=1e-6, abs=1e-9)

    scores = {}
    for name in ("kl", "reco", "total"):
        vae.config.score = name
        scores[name] = vae.score(x)
    vae.config.score = "total"
    np.testing.assert_allclose(scores["kl"], kl_numpy, rtol=1e-5, atol=1e-8)
    # reco uses the decoder at the mean of q(z|x): no sampling at scoring time
    with torch.inference_mode():
        decoded = vae.model.decoder(torch.as_tensor(mu, dtype=torch.float32)).double().numpy()
    reco_numpy = ((vae.transform(x) - decoded) ** 2).mean(axis=1)
    np.testing.assert_allclose(scores["reco"], reco_numpy, rtol=1e-4)
    # total = the beta-ELBO of a unit-variance Gaussian decoder, 0.5 * sum_j (z_j - z'_j)^2 + beta * KL, over D / 2
    elbo = 0.5 * ((vae.transform(x) - decoded) ** 2).sum(axis=1) + vae.config.beta * kl_numpy
    np.testing.assert_allclose(scores["total"] * D / 2, elbo, rtol=1e-4)
    np.testing.assert_array_equal(vae.score(x), vae.score(x))  # deterministic scoring


@pytest.mark.parametrize("cls", [AEDetector, VAEDetector])
def test_same_seed_gives_identical_scores_and_another_seed_differs(cls, toy):
    params = {"epochs": 3, "batch_size": 128}
    a = _fitted(cls, toy["train"], seed=3, **params).score(toy["test"])
    b = _fitted(cls, toy["train"], seed=3, **params).score(toy["test"])
    c = _fitted(cls, toy["train"], seed=4, **params).score(toy["test"])
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


@pytest.mark.parametrize("cls", [AEDetector, VAEDetector])
def test_early_stopping_stops_on_a_validation_plateau(cls, toy):
    # learning rate 0: the validation loss is exactly flat after the first epoch
    det = _fitted(cls, toy["train"], epochs=50, patience=3, learning_rate=0.0)
    assert det.history_.stopped_early
    assert len(det.history_.val_loss) == 4 < 50
    assert len(set(det.history_.val_loss)) == 1


def test_training_runs_every_epoch_without_patience_and_keeps_the_best_weights(toy):
    train = toy["train"]
    det = _fitted(AEDetector, train, epochs=6, patience=0, learning_rate=0.05)
    assert len(det.history_.val_loss) == 6 and not det.history_.stopped_early
    # the kept model is the one with the lowest validation loss, recomputed here from its scores
    assert det.score(train.x_val).mean() == pytest.approx(min(det.history_.val_loss), rel=1e-5)


def test_event_weights_scale_out_and_zero_weights_remove_events(toy):
    train, test, off = toy["train"], toy["test"], toy["off"]
    twice = TrainingData(features=train.features, x=train.x, weight=2 * train.weight,
                         x_val=train.x_val, weight_val=train.weight_val)
    params = {"epochs": 3, "batch_size": 128}
    np.testing.assert_array_equal(_fitted(AEDetector, train, **params).score(test),
                                  _fitted(AEDetector, twice, **params).score(test))

    # background mixed 1:1 with a tight blob off the plane: with weight 1 the AE learns to reconstruct
    # the blob, with weight 0 the blob must stay as anomalous as if it had never been seen
    rng = np.random.default_rng(11)
    centre = 3.0 * rng.normal(size=D)
    def blob(n: int) -> np.ndarray:
        return (centre + 0.05 * rng.normal(size=(n, D))).astype(np.float32)
    x = np.r_[train.x, blob(len(train.x))]
    aucs = {}
    for w_blob in (0.0, 1.0):
        mixed = TrainingData(features=train.features, x=x,
                             weight=np.r_[np.ones(len(train.x)), np.full(len(train.x), w_blob)],
                             x_val=train.x_val, weight_val=train.weight_val)
        aucs[w_blob] = _auc(_fitted(AEDetector, mixed, seed=5), test, blob(300))
    assert aucs[0.0] > 0.9
    assert aucs[1.0] < 0.8, aucs


def test_config_overrides_are_parsed_and_bad_values_are_user_errors():
    cfg = build_config(VAEDetector.Config, ["hidden=64,32", "latent=4", "score=kl", "beta=0.5"], "detector vae")
    assert cfg.hidden == (64, 32) and cfg.latent == 4 and cfg.score == "kl" and cfg.beta == 0.5
    with pytest.raises(UserError, match="score"):
        build_config(VAEDetector.Config, ["score=elbo"], "detector vae")
    with pytest.raises(UserError, match="latent"):
        build_config(AEDetector.Config, ["latent=0"], "detector ae")


def test_detectors_are_registered_with_a_summary_line():
    from hepad_bench.plugins import load_registry

    registry = load_registry(warn=lambda _msg: None)
    for name, cls, version in (("ae", AEDetector, "2"), ("vae", VAEDetector, "2")):
        entry = registry.detectors[name]
        assert entry.cls is cls and entry.kind == "unsupervised" and entry.version == version
        assert entry.summary and "\n" not in entry.summary


def test_training_uses_the_configured_thread_count_and_restores_torch_setting(toy):
    torch.set_num_threads(1)
    det = AEDetector(AEDetector.Config(epochs=1, threads=2))
    spy = ThreadSpy()
    det.fit(toy["train"], FitContext(seed=0, progress=spy))
    assert spy.seen == [2]
    assert torch.get_num_threads() == 1
    det.score(toy["test"][:10])
    assert torch.get_num_threads() == 1


def test_vae_training_summary_is_the_mean_kl_and_reconstruction_on_validation(vae, toy):
    summary = vae.training_summary()
    x_val = toy["train"].x_val
    mu, logvar = vae.encode(x_val)
    kl = 0.5 * (mu**2 + np.exp(logvar) - 1.0 - logvar).sum(axis=1)
    with torch.inference_mode():
        decoded = vae.model.decoder(torch.as_tensor(mu, dtype=torch.float32)).double().numpy()
    reco = ((vae.transform(x_val) - decoded) ** 2).mean(axis=1)
    assert summary["split"] == "validation"
    assert summary["mean_kl"] == pytest.approx(kl.mean(), rel=1e-5)
    assert summary["mean_reco"] == pytest.approx(reco.mean(), rel=1e-5)
    assert summary["kl_weight"] == pytest.approx(2 * vae.config.beta / D)


def _dense_count(widths: list[int]) -> tuple[int, int]:
    """(parameters, multiply-accumulates per event) of a chain of dense layers with biases, by hand."""
    macs = sum(a * b for a, b in zip(widths[:-1], widths[1:]))
    return macs + sum(widths[1:]), macs


@pytest.mark.parametrize("hidden, latent", [((32, 16), 3), ((7,), 2)])
def test_ae_model_cost_matches_a_hand_count_of_the_layers(toy, hidden, latent):
    ae = _fitted(AEDetector, toy["train"], epochs=1, hidden=hidden, latent=latent)
    cost = ae.model_cost(toy["test"], None)
    enc_p, enc_m = _dense_count([D, *hidden, latent])
    dec_p, dec_m = _dense_count([latent, *reversed(hidden), D])
    assert cost.parameters == enc_p + dec_p
    assert cost.macs_per_event == enc_m + dec_m
    # the default ADC2021 size on 57 features, written out: 57-32-16-3-16-32-57
    if hidden == (32, 16):
        assert _dense_count([57, 32, 16, 3, 16, 32, 57]) == (4924, 4768)


def test_vae_model_cost_counts_the_encoder_heads_and_decoder_once(vae, toy):
    cost = vae.model_cost(toy["test"], None)
    h1, h2, k = 32, 16, vae.config.latent
    body_p, body_m = _dense_count([D, h1, h2])
    dec_p, dec_m = _dense_count([k, h2, h1, D])
    heads_p, heads_m = 2 * (h2 * k + k), 2 * h2 * k  # mu and log-variance
    assert (cost.parameters, cost.macs_per_event) == (body_p + dec_p + heads_p, body_m + dec_m + heads_m)
