"""Runs as independent units: keys, resume, --force, atomic writes, failures recorded."""

import json

import numpy as np
import polars as pl
import pytest

import toy_plugin
from hepad_bench import store
from hepad_bench.errors import UserError
from hepad_bench.runner import Runner, RunSpec, expand_grid


def test_a_run_stores_scores_metrics_and_provenance(toy_registry, tmp_path):
    runner = Runner(toy_registry, tmp_path)
    (res,) = runner.run_all([RunSpec("toy", "toy-norm", seed=3)])
    assert res.status == "ok" and res.folder.parent == tmp_path / "toy" / "toy-norm"
    run = json.loads((res.folder / "run.json").read_text())
    assert run["status"] == "ok" and run["seed"] == 3 and run["detector"]["config"] == {"power": 2.0, "mode": "sum"}
    assert run["event_counts"] == {"train": 400, "validation": 100, "test": 400, "signal/shifted": 200,
                                   "signal_train/shifted": 200}
    assert run["versions"]["plugin"] == "1" and run["versions"]["plugin_distribution"] == "toy-dist"
    assert run["fit_seconds"] >= 0 and run["score_seconds"] >= 0
    scores = pl.read_parquet(res.folder / "scores.parquet")
    bench = toy_plugin.ToyDataset().load(None, None)
    expected = (bench.features_of(bench.test).astype(np.float64) ** 2).sum(1)
    np.testing.assert_allclose(scores.filter(pl.col("sample") == "background")["score"].to_numpy(), expected)
    metrics = json.loads((res.folder / "metrics.json").read_text())
    sig = scores.filter(pl.col("sample") == "shifted")["score"].to_numpy()
    assert metrics["shifted"]["gap"] == pytest.approx(sig.mean() - expected.mean())


def test_run_key_depends_on_config_seed_and_versions(toy_registry, tmp_path):
    runner = Runner(toy_registry, tmp_path)
    base = RunSpec("toy", "toy-norm", seed=1)
    keys = {runner.run_key(s) for s in [base, RunSpec("toy", "toy-norm", seed=2),
                                        RunSpec("toy", "toy-norm", seed=1, params=(("power", "1"),)),
                                        RunSpec("toy", "toy-norm", seed=1, dataset_options=(("n", "200"),))]}
    assert len(keys) == 4
    assert runner.run_key(base) == runner.run_key(RunSpec("toy", "toy-norm", seed=1, params=(("power", "2.0"),)))


def test_complete_runs_are_skipped_and_force_reruns(toy_registry, tmp_path):
    spec = RunSpec("toy", "toy-norm")
    first = Runner(toy_registry, tmp_path).run_one(spec)
    mtime = (first.folder / "scores.parquet").stat().st_mtime_ns
    again = Runner(toy_registry, tmp_path).run_one(spec)
    assert again.status == "skipped" and (first.folder / "scores.parquet").stat().st_mtime_ns == mtime
    assert again.metrics == json.loads((first.folder / "metrics.json").read_text())
    forced = Runner(toy_registry, tmp_path, force=True).run_one(spec)
    assert forced.status == "ok"


def test_failing_detector_is_recorded_and_the_grid_goes_on(toy_registry, tmp_path):
    results = Runner(toy_registry, tmp_path).run_all(expand_grid(["toy"], ["toy-failing", "toy-nan", "toy-norm"], [1]))
    assert [r.status for r in results] == ["failed", "failed", "ok"]
    failed = json.loads((results[0].folder / "run.json").read_text())
    assert failed["status"] == "failed" and "boom in fit" in failed["error"]
    assert not (results[0].folder / "scores.parquet").exists()
    assert "non-finite" in results[1].error
    # a failed run is not 'complete': the next call retries it
    assert not store.is_complete(results[0].folder)


def test_supervised_detectors_fit_once_per_signal_on_their_own_split(toy_registry, tmp_path):
    (res,) = Runner(toy_registry, tmp_path).run_all([RunSpec("toy", "toy-supervised")])
    scores = pl.read_parquet(res.folder / "scores.parquet")
    assert set(scores["model"].unique()) == {"shifted"}
    scored = store.StoredRun(res.folder, res.run).scored("shifted")
    assert len(scored.background) == 400 and len(scored.signal_sample) == 200
    assert scored.signal_sample.score.mean() > scored.background.score.mean()


def test_interrupted_write_leaves_the_stored_run_intact(toy_registry, tmp_path, monkeypatch):
    runner = Runner(toy_registry, tmp_path)
    spec = RunSpec("toy", "toy-norm")
    good = runner.run_one(spec)
    before = (good.folder / "scores.parquet").read_bytes()

    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # as if killed while writing

    monkeypatch.setattr(store.json, "dumps", crash)
    with pytest.raises(KeyboardInterrupt):
        store.write_run(good.folder, {"status": "ok"}, pl.DataFrame({"x": [1]}), {"s": {"auc": 0.5}})
    assert (good.folder / "scores.parquet").read_bytes() == before
    assert not [p for p in good.folder.parent.iterdir() if p.name.startswith(".tmp-")]


def test_validation_fails_before_any_training(toy_registry, tmp_path):
    runner = Runner(toy_registry, tmp_path)
    with pytest.raises(UserError, match="no parameter 'pwr'"):
        runner.run_all([RunSpec("toy", "toy-norm"), RunSpec("toy", "toy-norm", params=(("pwr", "1"),))])
    assert not tmp_path.joinpath("toy").exists()


def test_dataset_is_loaded_once_per_distinct_options(toy_registry, tmp_path):
    toy_plugin.ToyDataset.loads = 0
    Runner(toy_registry, tmp_path).run_all(expand_grid(["toy"], ["toy-norm"], [1, 2, 3]))
    assert toy_plugin.ToyDataset.loads == 1


def test_max_events_caps_every_split(toy_registry, tmp_path):
    (res,) = Runner(toy_registry, tmp_path).run_all([RunSpec("toy", "toy-norm", max_events=50)])
    assert set(res.run["event_counts"].values()) == {50}


def test_fresh_and_resumed_runs_report_metrics_in_the_stored_form(toy_registry, tmp_path, monkeypatch):
    from hepad_bench.data import Unavailable

    monkeypatch.setattr(toy_plugin.MeanGap, "compute", lambda self, scored: {"gap": Unavailable("too few events")})
    fresh = Runner(toy_registry, tmp_path).run_one(RunSpec("toy", "toy-norm"))
    resumed = Runner(toy_registry, tmp_path).run_one(RunSpec("toy", "toy-norm"))
    assert fresh.metrics == resumed.metrics
    assert fresh.metrics["shifted"]["gap"] == {"unavailable": "too few events"}


def test_scoped_parameters_reach_only_their_detector(toy_registry):
    specs = expand_grid(["toy"], ["toy-norm", "toy-supervised"], [1],
                        params=(("toy-norm.power", "1"), ("toy-norm.mode", "max")))
    assert {s.detector: s.params for s in specs} == {"toy-norm": (("power", "1"), ("mode", "max")), "toy-supervised": ()}
    with pytest.raises(UserError, match="scoped to 'ae', which is not among the detectors"):
        expand_grid(["toy"], ["toy-norm"], [1], params=(("ae.epochs", "1"),))


def test_a_changed_metric_is_recomputed_from_the_stored_scores_without_training(toy_registry, tmp_path, monkeypatch):
    spec = RunSpec("toy", "toy-norm")
    first = Runner(toy_registry, tmp_path).run_one(spec)
    assert first.run["metric_versions"]["toy-gap"] == "1"
    scores = pl.read_parquet(first.folder / "scores.parquet")
    bg = scores.filter(pl.col("sample") == "background")["score"].to_numpy()
    sig = scores.filter(pl.col("sample") == "shifted")["score"].to_numpy()
    # the metric changes (version bump): twice the gap
    monkeypatch.setattr(toy_plugin.MeanGap, "version", "changed")
    monkeypatch.setattr(toy_plugin.MeanGap, "compute",
                        lambda self, scored: {"gap": 2 * (scored.signal_sample.score.mean() - scored.background.score.mean())})
    monkeypatch.setattr(toy_plugin.NormDetector, "fit", lambda *a: pytest.fail("a stale metric must not retrain"))
    again = Runner(toy_registry, tmp_path).run_one(spec)
    assert again.status == "skipped"
    stored = json.loads((first.folder / "metrics.json").read_text())
    assert stored["shifted"]["gap"] == pytest.approx(2 * (sig.mean() - bg.mean())) == again.metrics["shifted"]["gap"]
    assert json.loads((first.folder / "run.json").read_text())["metric_versions"]["toy-gap"] == "changed"
    mtime = (first.folder / "metrics.json").stat().st_mtime_ns
    Runner(toy_registry, tmp_path).run_one(spec)  # up to date now: left alone
    assert (first.folder / "metrics.json").stat().st_mtime_ns == mtime


def test_auto_device_without_a_gpu_driver_is_cpu_and_imports_no_torch():
    """``--device auto`` (the default) on a machine without a GPU driver resolves to cpu without importing
    torch, so a grid of pyod detectors never pays for it; with a driver, torch is asked."""
    import subprocess
    import sys

    code = ("import sys\nfrom hepad_bench import runner\nrunner._gpu_driver_present = lambda: False\n"
            "print(runner.resolve_device('auto'), 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["cpu", "False"]
    code = ("import sys\nfrom hepad_bench import runner\nrunner._gpu_driver_present = lambda: True\n"
            "runner.resolve_device('auto')\nprint('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True"]
