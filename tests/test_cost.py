"""Model cost columns: parameters and MACs counted by hand, latencies recorded, failures contained."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from hepad_bench import Detector, FitContext, UserError
from hepad_bench.cost import measure_cost, torch_model_cost
from hepad_bench.plugins import load_registry
from hepad_bench.runner import Runner, RunSpec
from thread_spy import ThreadSpy  # noqa: E402

torch.set_num_threads(1)


class _Ensemble:
    """A plain object holding modules, as a k-fold result does."""

    def __init__(self, models):
        self.models = models


class _FakeDetector(Detector):
    """k small networks averaged at scoring, and a 'discriminator' that scoring never calls."""

    name, version = "fake", "1"

    def __init__(self, k: int, widths: list[int]):
        super().__init__()
        self.result = _Ensemble([nn.Sequential(nn.Linear(widths[0], widths[1]), nn.ReLU(),
                                               nn.Linear(widths[1], widths[2], bias=False)) for _ in range(k)])
        self.disc = nn.Linear(widths[0], 100)

    def fit(self, train, ctx):
        pass

    def score(self, x, mjj=None):
        with torch.inference_mode():
            xt = torch.as_tensor(x, dtype=torch.float32)
            return sum(m(xt).sum(1) for m in self.result.models).double().numpy()


def test_generic_torch_cost_counts_every_ensemble_member_and_skips_unused_modules():
    k, (a, b, c) = 3, (6, 5, 2)
    cost = torch_model_cost(_FakeDetector(k, [a, b, c]), np.zeros((10, a), np.float32), None)
    assert cost.parameters == k * (a * b + b + b * c)  # the second layer has no bias; disc not counted
    assert cost.macs_per_event == k * (a * b + b * c)


class _PlainDetector(Detector):
    name, version = "plain", "1"

    def fit(self, train, ctx):
        pass

    def score(self, x, mjj=None):
        return np.asarray(x, dtype=np.float64).sum(1)


def test_measure_cost_without_torch_modules_still_times_scoring():
    events = np.ones((50, 3), np.float32)
    cost = measure_cost(_PlainDetector(), events, None, background_seconds=0.01)
    assert cost["parameters"] is None and cost["macs_per_event"] is None
    assert cost["latency_us_per_event"] == pytest.approx(0.01 / 50 * 1e6)
    assert cost["latency_batch"] == 50 and cost["latency_us_batch1"] > 0
    assert "no model cost" in cost["note"]


def test_a_failing_model_cost_is_noted_not_raised():
    class Broken(_PlainDetector):
        def model_cost(self, events, mjj):
            raise RuntimeError("no idea")

    cost = measure_cost(Broken(), np.ones((5, 2), np.float32), None, background_seconds=1.0)
    assert "RuntimeError: no idea" in cost["note"] and cost["latency_us_per_event"] == pytest.approx(2e5)


@pytest.fixture(scope="module")
def real_registry():
    return load_registry(warn=lambda _m: None)


def test_ae_run_json_cost_matches_the_hand_count_of_the_adc2021_network(real_registry, tmp_path):
    """Acceptance: 57-32-16-3-16-32-57 with biases, counted by hand, against what the runner stores."""
    runner = Runner(real_registry, tmp_path)
    (res,) = runner.run_all([RunSpec("l1-pythia", "ae", seed=1, params=(("epochs", "1"),), max_events=2000)])
    run = json.loads((res.folder / "run.json").read_text())
    widths = [57, 32, 16, 3, 16, 32, 57]
    macs = sum(a * b for a, b in zip(widths[:-1], widths[1:]))
    assert run["cost"]["macs_per_event"] == macs == 4768
    assert run["cost"]["parameters"] == macs + sum(widths[1:]) == 4924
    n_test = run["event_counts"]["test"]
    assert run["cost"]["latency_batch"] == n_test
    # the stored latency is the background's share of the scoring time, per event
    assert 0 < run["cost"]["latency_us_per_event"] * n_test / 1e6 <= run["score_seconds"] + 1e-3
    assert run["cost"]["latency_us_batch1"] > 0
    assert "training_summary" not in run  # the AE reports none


def test_vae_run_records_its_training_summary_per_model(real_registry, tmp_path):
    runner = Runner(real_registry, tmp_path)
    (res,) = runner.run_all([RunSpec("l1-pythia", "vae", seed=1, params=(("epochs", "1"),), max_events=2000)])
    run = json.loads((res.folder / "run.json").read_text())
    summary = run["training_summary"][""]  # keyed like scores.parquet's model column: "" = the one model
    assert summary["mean_kl"] > 0 and summary["mean_reco"] > 0
    assert summary["kl_weight"] == pytest.approx(2 / 57)


def test_gan_ae_latent_not_below_the_features_is_refused_before_training(real_registry, tmp_path):
    runner = Runner(real_registry, tmp_path)
    spec = RunSpec("l1-pythia", "gan-ae", params=(("latent", "57"),), max_events=500)
    with pytest.raises(UserError, match="latent width 57 is not below the 57 input features"):
        runner.validate([spec])
    assert not any(tmp_path.iterdir())
    runner.validate([RunSpec("l1-pythia", "gan-ae", params=(("latent", "56"),), max_events=500)])


TORCH_DETECTORS = ["ae", "vae", "deepsvdd", "gan-ae", "supervised-dnn", "cwola", "idealised", "anode"]


@pytest.mark.parametrize("name", TORCH_DETECTORS)
def test_every_first_party_torch_detector_has_the_threads_setting(real_registry, name):
    cls = real_registry.detector(name)
    assert cls.Config().threads == 1
    with pytest.raises(ValueError, match="threads"):
        cls.Config(threads=-1)


def test_deepsvdd_fits_and_scores_with_its_threads_and_restores_torch(real_registry):
    from hepad_bench import TrainingData

    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 4)).astype(np.float32)
    train = TrainingData(features=list("abcd"), x=x, weight=np.ones(300), x_val=x[:50], weight_val=np.ones(50))
    cls = real_registry.detector("deepsvdd")
    det = cls(cls.Config(epochs=1, pretrain_epochs=1, threads=2))
    torch.set_num_threads(1)
    spy = ThreadSpy()
    det.fit(train, FitContext(seed=0, progress=spy))
    assert spy.seen == [2, 2] and torch.get_num_threads() == 1
    seen_in_score = []
    real_distance = det._distance
    det._distance = lambda xb: (seen_in_score.append(torch.get_num_threads()), real_distance(xb))[1]
    det.score(x[:5])
    assert seen_in_score == [2] and torch.get_num_threads() == 1
