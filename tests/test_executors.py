"""Executors (``run --jobs N``, ``--executor dask``): the same runs, keys and scores as a serial grid.

The reference is the grid run serially in this process; the local worker pool and a 2-worker Dask
LocalCluster must store the same run keys with byte-identical scores and the same metrics. A worker
killed mid-run leaves its run recorded as failed, every other run intact, and a rerun completes it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

import fault_plugin
from hepad_bench import store
from hepad_bench.executors import DaskPool, LocalPool, run_grid, threads_per_worker
from hepad_bench.plugins import load_registry
from hepad_bench.runner import Runner, RunSpec, expand_grid
from test_faults import invoke, lines_of, toy_cli, tree_digest  # noqa: F401 - toy_cli is a fixture

# iforest, hbos and one small torch detector on a few hundred l1-pythia events
GRID = dict(datasets=["l1-pythia"], detectors=["iforest", "hbos", "ae"], seeds=[1],
            params=(("ae.epochs", "1"),), device="cpu", max_events=400)


def stored(root: Path) -> dict[str, tuple[pl.DataFrame, dict]]:
    """run key -> (scores, metrics) of every complete run under ``root``."""
    return {p.parent.name: (pl.read_parquet(p.parent / store.SCORES), json.loads((p.parent / store.METRICS).read_text()))
            for p in root.glob("*/*/*/run.json") if store.is_complete(p.parent)}


def assert_same_runs(reference: dict, got: dict) -> None:
    assert sorted(got) == sorted(reference)  # same run keys
    for key, (scores, metrics) in reference.items():
        assert got[key][0].equals(scores), key  # identical scores, event by event
        assert got[key][1] == metrics, key


@pytest.fixture(scope="module")
def serial_grid(tmp_path_factory):
    cache = tmp_path_factory.mktemp("exec-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HEPAD_BENCH_CACHE", str(cache))  # the module's tests share one converted l1-pythia
        registry = load_registry(warn=lambda m: None)
        specs = expand_grid(**GRID)
        out = tmp_path_factory.mktemp("serial")
        results = Runner(registry, out).run_all(specs)
        assert [r.status for r in results] == ["ok"] * len(specs)
        yield registry, specs, stored(out), cache


def run_parallel(pool, registry, specs, out: Path) -> list:
    runner = Runner(registry, out)
    specs = runner.expand(specs)
    runner.preflight(specs)
    with pool:
        return [f.result for f in run_grid(pool, runner, specs)]


def test_jobs_2_gives_the_serial_runs(serial_grid, tmp_path, monkeypatch):
    registry, specs, reference, cache = serial_grid
    monkeypatch.setenv("HEPAD_BENCH_CACHE", str(cache))
    results = run_parallel(LocalPool(2), registry, specs, tmp_path)
    assert sorted(r.status for r in results) == ["ok"] * len(specs)
    assert_same_runs(reference, stored(tmp_path))


def test_dask_local_cluster_gives_the_serial_runs(serial_grid, tmp_path, monkeypatch):
    pytest.importorskip("distributed")
    registry, specs, reference, cache = serial_grid
    monkeypatch.setenv("HEPAD_BENCH_CACHE", str(cache))
    results = run_parallel(DaskPool(None, 2), registry, specs, tmp_path)
    assert sorted(r.status for r in results) == ["ok"] * len(specs)
    assert_same_runs(reference, stored(tmp_path))


def test_a_killed_worker_records_its_run_failed_and_the_rerun_completes(toy_cli, tmp_path, capsys, monkeypatch):
    out, flag = tmp_path / "results", tmp_path / "kill-once"
    flag.touch()
    monkeypatch.setenv(fault_plugin.KILL_FLAG, str(flag))
    grid = ["run", "-d", "toy-killed", "-d", "toy-norm", "--dataset", "toy", "--seed", "1", "--seed", "2",
            "--quiet", "--device", "cpu", "--output", str(out)]
    code, _, err = invoke([*grid, "--jobs", "2"], capsys)
    assert code == 1 and "Traceback" not in err
    assert not flag.exists()  # exactly one fit killed its worker
    runs = [json.loads(p.read_text()) for p in out.glob("toy/*/*/run.json")]
    failed = [r for r in runs if r["status"] == "failed"]
    assert len(runs) == 4 and len(failed) == 1  # the grid went on on a fresh worker
    assert failed[0]["detector"]["name"] == "toy-killed" and "died (exit code -9)" in failed[0]["error"]
    assert len(lines_of(err, "/4 failed in ")) == 1 and len(lines_of(err, "/4 ok in ")) == 3  # one line per run
    # no half-written run: every visible folder is a complete run or the failure record
    for folder in out.glob("toy/*/*"):
        if not folder.name.startswith("."):
            assert (folder / "run.json").is_file()
            assert store.is_complete(folder) == (folder / "scores.parquet").is_file()
    before = tree_digest(out / "toy" / "toy-norm")
    code, _, err = invoke(grid, capsys)  # the same grid again: the failed run is retried, the rest skipped
    assert code == 0, err
    assert len(lines_of(err, " skipped in ")) == 3 and len(lines_of(err, " ok in ")) == 1
    assert all(store.is_complete(p.parent) for p in out.glob("toy/*/*/run.json"))
    assert tree_digest(out / "toy" / "toy-norm") == before  # finished runs untouched


def test_a_run_listed_twice_is_computed_once(toy_registry, tmp_path):
    spec = RunSpec("toy", "toy-norm", seed=3)
    results = run_parallel(LocalPool(2), toy_registry, [spec, spec], tmp_path)
    assert sorted(r.status for r in results) == ["ok", "skipped"]  # the second waited for the first's lock


@pytest.mark.parametrize("args, culprit", [
    (["--scheduler", "tcp://127.0.0.1:8786"], "--executor dask"),
    (["--executor", "dask", "--scheduler", "tcp://127.0.0.1:8786", "--jobs", "2"], "--jobs"),
    (["--executor", "spark"], "--executor"),
])
def test_executor_options_are_checked_before_any_training(toy_cli, tmp_path, capsys, args, culprit):
    code, _, err = invoke(["run", "-d", "toy-norm", "--dataset", "toy", "--output", str(tmp_path), *args], capsys)
    assert code == 2 and len(lines_of(err)) == 1 and culprit in err and "Traceback" not in err
    assert not list(tmp_path.glob("toy/*/*/run.json"))


def test_threads_per_worker_share_the_cores():
    assert threads_per_worker(1, cores=8) == 8
    assert threads_per_worker(2, cores=8) == 4
    assert threads_per_worker(3, cores=8) == 2
    assert threads_per_worker(16, cores=8) == 1


def test_limit_threads_caps_blas_and_torch():
    """In a fresh process started with 2 threads everywhere (this one's settings must not change)."""
    code = ("from hepad_bench.executors import limit_threads; import numpy, torch; from threadpoolctl import threadpool_info;"
            "limit_threads(1); print(torch.get_num_threads(), sorted({p['num_threads'] for p in threadpool_info()}))")
    env = {**os.environ, "OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "2"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "[1]"]


def test_an_idle_worker_keeps_to_its_detectors_then_takes_the_least_shared_one():
    from collections import deque
    from types import SimpleNamespace

    from hepad_bench.executors import _next_for

    a, b = SimpleNamespace(detectors={"iforest"}), SimpleNamespace(detectors={"hbos"})
    todo = deque((RunSpec("d", det, seed=s), False) for det in ("iforest", "hbos", "ae") for s in (1, 2))
    assert _next_for(b, todo, [a, b])[0] == RunSpec("d", "hbos", seed=1)  # its own detector first
    assert _next_for(b, todo, [a, b])[0] == RunSpec("d", "hbos", seed=2)
    assert _next_for(b, todo, [a, b])[0].detector == "ae"  # nobody runs ae yet, a runs iforest
    b.detectors.add("ae")
    assert _next_for(a, todo, [a, b])[0] == RunSpec("d", "iforest", seed=1)
    assert _next_for(a, todo, [a, b])[0] == RunSpec("d", "iforest", seed=2)
    assert _next_for(a, todo, [a, b])[0] == RunSpec("d", "ae", seed=2)  # what is left, in grid order
    assert not todo
