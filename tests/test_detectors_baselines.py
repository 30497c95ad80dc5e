"""The PyOD adapters ``iforest`` and ``hbos``: separation on a toy, agreement with PyOD/scikit-learn, signs."""

from __future__ import annotations

import sys

import numpy as np
import polars as pl
import pytest
from pyod.models.hbos import HBOS
from pyod.models.iforest import IForest
from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score

from hepad_bench import Benchmark, Dataset, FitContext, TrainingData, UserError, hookimpl
from hepad_bench.params import build_config
from hepad_plugins.detectors.baselines import HBOSDetector, IForestDetector

D = 10


@pytest.fixture(scope="module")
def toy():
    """Background on a 2-d plane in 10-d; anomalies scattered well off it."""
    rng = np.random.default_rng(3)
    basis = rng.normal(size=(2, D))

    def background(n: int) -> np.ndarray:
        return (rng.normal(size=(n, 2)) @ basis + 0.05 * rng.normal(size=(n, D))).astype(np.float32)

    x, test = background(1500), background(500)
    anomalies = (background(500) + 2.5 * rng.normal(size=(500, D))).astype(np.float32)
    train = TrainingData(features=[f"f{i}" for i in range(D)], x=x, weight=np.ones(len(x)),
                         x_val=x[:10], weight_val=np.ones(10))
    return {"train": train, "test": test, "anomalies": anomalies}


def _fitted(cls, train: TrainingData, seed: int = 0, **params):
    det = cls(cls.Config(**params))
    det.fit(train, FitContext(seed=seed))
    return det


@pytest.mark.parametrize("cls", [IForestDetector, HBOSDetector])
def test_baselines_give_finite_float64_scores_higher_for_anomalies(cls, toy):
    det = _fitted(cls, toy["train"])
    s_bg, s_an = det.score(toy["test"]), det.score(toy["anomalies"])
    for s in (s_bg, s_an):
        assert s.dtype == np.float64 and s.shape == (500,) and np.all(np.isfinite(s))
    assert roc_auc_score(np.r_[np.zeros(500), np.ones(500)], np.r_[s_bg, s_an]) > 0.9


def test_iforest_equals_pyod_and_minus_sklearn_score_samples(toy):
    x, test = toy["train"].x, toy["test"]
    det = _fitted(IForestDetector, toy["train"], seed=17, n_estimators=50)
    ours = det.score(test)
    direct = IForest(n_estimators=50, random_state=17).fit(x).decision_function(test)
    np.testing.assert_allclose(ours, direct, rtol=0, atol=1e-12)
    # scikit-learn's score_samples is higher for normal events; ours is its negative shifted by offset_
    sk = IsolationForest(n_estimators=50, random_state=17, contamination=0.1).fit(x)
    np.testing.assert_allclose(ours, sk.offset_ - sk.score_samples(test), atol=1e-12)
    np.testing.assert_array_equal(np.argsort(ours, kind="stable"), np.argsort(-sk.score_samples(test), kind="stable"))


def test_iforest_is_seeded_by_the_run_seed(toy):
    a = _fitted(IForestDetector, toy["train"], seed=1, n_estimators=30).score(toy["test"])
    b = _fitted(IForestDetector, toy["train"], seed=1, n_estimators=30).score(toy["test"])
    c = _fitted(IForestDetector, toy["train"], seed=2, n_estimators=30).score(toy["test"])
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_hbos_equals_minus_log2_histogram_density_sum(toy):
    x = toy["train"].x.astype(np.float64)
    det = _fitted(HBOSDetector, toy["train"], n_bins=12, alpha=0.2)
    # events strictly inside every feature's training range (no edge or outside-range rules)
    test = toy["test"].astype(np.float64)
    inside = np.all((test > x.min(axis=0)) & (test < x.max(axis=0)), axis=1)
    test = test[inside]
    assert len(test) > 400
    expected = np.zeros(len(test))
    for j in range(D):
        density, edges = np.histogram(x[:, j], bins=12, density=True)
        bin_index = np.clip(np.searchsorted(edges, test[:, j], side="left") - 1, 0, 11)
        expected -= np.log2(density[bin_index] + 0.2)
    np.testing.assert_allclose(det.score(test), expected, rtol=1e-10)
    np.testing.assert_allclose(det.score(test), HBOS(n_bins=12, alpha=0.2).fit(x).decision_function(test), rtol=1e-12)


def test_hbos_does_not_depend_on_the_seed_and_accepts_auto_bins(toy):
    a = _fitted(HBOSDetector, toy["train"], seed=1).score(toy["test"])
    b = _fitted(HBOSDetector, toy["train"], seed=99).score(toy["test"])
    np.testing.assert_array_equal(a, b)
    cfg = build_config(HBOSDetector.Config, ["n_bins=auto"], "detector hbos")
    auto = HBOSDetector(cfg)
    auto.fit(toy["train"], FitContext(seed=0))
    assert not np.allclose(auto.score(toy["test"]), a)  # a different histogram, really used


def test_config_values_are_parsed_and_checked():
    cfg = build_config(IForestDetector.Config, ["max_samples=0.5", "n_estimators=20"], "detector iforest")
    assert cfg.max_samples == 0.5 and cfg.n_estimators == 20
    assert build_config(IForestDetector.Config, ["max_samples=128"], "detector iforest").max_samples == 128
    with pytest.raises(UserError, match="max_samples"):
        build_config(IForestDetector.Config, ["max_samples=lots"], "detector iforest")
    with pytest.raises(UserError, match="n_bins"):
        build_config(HBOSDetector.Config, ["n_bins=1"], "detector hbos")


class _ToyDataset(Dataset):
    """In-memory toy: a 2-d plane in 4-d as background, a shifted blob as signal."""

    name = "toy-baselines"
    version = "1"

    def load(self, data_dir, progress):
        rng = np.random.default_rng(0)
        basis = rng.normal(size=(2, 4))
        features = ["a", "b", "c", "d"]

        def table(x: np.ndarray) -> pl.DataFrame:
            return pl.DataFrame({f: x[:, i].astype(np.float32) for i, f in enumerate(features)}
                                | {"weight": np.ones(len(x)), "process": ["toy"] * len(x)})

        def bg(n: int) -> pl.DataFrame:
            return table(rng.normal(size=(n, 2)) @ basis + 0.05 * rng.normal(size=(n, 4)))

        signal = table(rng.normal(size=(300, 4)) * 0.3 + 3.0)
        return Benchmark(dataset=self.name, version=self.version, task="unsupervised", features=features,
                         train=bg(800), validation=bg(200), test=bg(400), signals={"blob": signal})


@hookimpl
def hepad_datasets():
    return [_ToyDataset]


@pytest.mark.parametrize("detector", ["iforest", "hbos", "ae", "vae"])
def test_end_to_end_through_the_runner(detector, tmp_path):
    import torch

    from hepad_bench.plugins import load_registry
    from hepad_bench.runner import Runner, RunSpec

    torch.set_num_threads(1)
    registry = load_registry(extra_plugins=[("test", sys.modules[__name__])], warn=lambda _msg: None)
    params = (("epochs", "5"),) if detector in ("ae", "vae") else ()
    result = Runner(registry, tmp_path).run_one(RunSpec(dataset="toy-baselines", detector=detector, params=params))
    assert result.status == "ok", result.error
    scores = pl.read_parquet(result.folder / "scores.parquet")
    bg = scores.filter(pl.col("sample") == "background")["score"].to_numpy()
    sig = scores.filter(pl.col("sample") == "blob")["score"].to_numpy()
    assert len(bg) == 400 and len(sig) == 300
    assert roc_auc_score(np.r_[np.zeros(400), np.ones(300)], np.r_[bg, sig]) > 0.9


# -- PCA rotation -----------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [IForestDetector, HBOSDetector])
def test_pca_rotation_decorrelates_the_training_data_and_keeps_distances(cls, toy):
    det = _fitted(cls, toy["train"], rotate="pca")
    x = np.asarray(toy["train"].x, dtype=np.float64)
    rotated = det.inputs(x)
    cov = np.cov(rotated, rowvar=False)
    off_diagonal = cov - np.diag(np.diag(cov))
    assert np.abs(off_diagonal).max() < 1e-8 * np.abs(cov).max()
    # a rotation of the standardised events (no whitening): distances between events are unchanged
    standardised = (x - x.mean(0)) / x.std(0)
    for i, j in [(0, 1), (5, 900), (17, 1400)]:
        assert np.linalg.norm(rotated[i] - rotated[j]) == pytest.approx(np.linalg.norm(standardised[i] - standardised[j]), rel=1e-9)
    # variances along the principal axes are the eigenvalues of the correlation matrix, largest first
    eig = np.sort(np.linalg.eigvalsh(np.corrcoef(x, rowvar=False)))[::-1]
    np.testing.assert_allclose(np.var(rotated, axis=0), eig, rtol=1e-6, atol=1e-9)
    assert _fitted(cls, toy["train"]).rotation is None  # the default leaves the inputs alone


def test_rotation_lets_hbos_see_an_anomaly_that_only_breaks_a_correlation():
    """Two strongly correlated features; anomalies lie inside both marginals but off the diagonal."""
    rng = np.random.default_rng(5)
    u = rng.normal(size=(4000, 1))
    x = np.hstack([u, u]) + 0.1 * rng.normal(size=(4000, 2))
    train = TrainingData(features=["a", "b"], x=x.astype(np.float32), weight=np.ones(4000), x_val=None, weight_val=None)
    test_u = rng.normal(size=(500, 1))
    test = np.hstack([test_u, test_u]) + 0.1 * rng.normal(size=(500, 2))
    anomalies = np.hstack([test_u, -test_u]) + 0.1 * rng.normal(size=(500, 2))
    y = np.r_[np.zeros(500), np.ones(500)]
    aucs = {}
    for rotate in ("none", "pca"):
        det = _fitted(HBOSDetector, train, rotate=rotate)
        aucs[rotate] = roc_auc_score(y, np.r_[det.score(test), det.score(anomalies)])
    assert aucs["none"] < 0.6 and aucs["pca"] > 0.9, aucs


def test_rotate_is_a_validated_parameter():
    assert build_config(HBOSDetector.Config, ["rotate=pca"], "detector hbos").rotate == "pca"
    with pytest.raises(UserError, match="rotate"):
        build_config(IForestDetector.Config, ["rotate=ica"], "detector iforest")


# -- model cost -------------------------------------------------------------------------------
def _path_tests(tree, row: np.ndarray) -> int:
    """Threshold tests from root to leaf, walking scikit-learn's tree arrays by hand."""
    t, node, tests = tree.tree_, 0, 0
    while t.children_left[node] != -1:
        node = t.children_left[node] if row[t.feature[node]] <= t.threshold[node] else t.children_right[node]
        tests += 1
    return tests


@pytest.mark.parametrize("rotate", ["none", "pca"])
def test_iforest_cost_counts_nodes_and_the_threshold_tests_on_each_path(toy, rotate):
    det = _fitted(IForestDetector, toy["train"], n_estimators=7, max_features=0.5, rotate=rotate)
    events = toy["test"][:40]
    cost = det.model_cost(events, None)
    forest = det.model.detector_
    x = det.inputs(events)
    by_hand = np.mean([sum(_path_tests(tree, row[feats]) for tree, feats in zip(forest.estimators_, forest.estimators_features_))
                       for row in x])
    assert cost.comparisons_per_event == pytest.approx(by_hand)
    nodes = sum(tree.tree_.node_count for tree in forest.estimators_)
    if rotate == "none":
        assert cost.parameters == nodes and cost.macs_per_event is None
    else:  # plus the rotation: D means, D scales, D PCA means and a D x D matrix; D^2 MACs
        assert cost.parameters == nodes + 3 * D + D * D and cost.macs_per_event == D * D


def test_hbos_cost_is_bins_times_features(toy):
    assert _fitted(HBOSDetector, toy["train"], n_bins=7).model_cost(toy["test"], None).parameters == 7 * D
    auto = _fitted(HBOSDetector, toy["train"], n_bins="auto")
    edges = auto.model.bin_edges_
    assert auto.model_cost(toy["test"], None).parameters == sum(len(e) - 1 for e in edges)
