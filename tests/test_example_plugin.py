"""A third-party detector plugin goes through real installation and entry-point discovery.

The example package under examples/ is pip-installed into a temporary folder
(its own wheel build, its own dist-info with the entry point); the real
``hepad-bench`` console script then runs in a subprocess that sees it.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from cli_helpers import pip_install_into  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "hepad-bench-example-plugin"


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory):
    target = tmp_path_factory.mktemp("site")
    pip_install_into(target, EXAMPLE)
    assert list(target.glob("hepad_bench_example_plugin-*.dist-info/entry_points.txt"))
    return target


def hepad(args, site, tmp_path, **env):
    environ = os.environ | {"PYTHONPATH": str(site), "HEPAD_BENCH_CACHE": str(tmp_path / "cache")} | env
    cli = Path(sys.executable).with_name("hepad-bench")
    return subprocess.run([str(cli), *args], capture_output=True, text=True, env=environ, timeout=600)


def test_installed_plugin_is_listed_with_its_distribution(plugin_site, tmp_path):
    proc = hepad(["list", "--json"], plugin_site, tmp_path)
    assert proc.returncode == 0, proc.stderr
    entries = {p["name"]: p for p in json.loads(proc.stdout)["plugins"]}
    assert entries["mahalanobis"]["distribution"] == "hepad-bench-example-plugin"
    assert entries["mahalanobis"]["kind"] == "unsupervised"


def test_plugin_filter_can_exclude_it(plugin_site, tmp_path):
    proc = hepad(["list", "--json"], plugin_site, tmp_path, HEPAD_BENCH_PLUGINS="")
    names = {p["name"] for p in json.loads(proc.stdout)["plugins"]}
    assert "mahalanobis" not in names and "ae" in names


def test_installed_plugin_runs_and_scores_like_an_independent_computation(plugin_site, tmp_path):
    out = tmp_path / "results"
    proc = hepad(["run", "--detector", "mahalanobis", "--dataset", "l1-pythia", "--max-events", "3000",
                  "--output", str(out), "--quiet", "--device", "cpu"], plugin_site, tmp_path)
    assert proc.returncode == 0, proc.stderr
    (folder,) = [p.parent for p in out.glob("l1-pythia/mahalanobis/*/run.json")]
    run = json.loads((folder / "run.json").read_text())
    assert run["status"] == "ok" and run["versions"]["plugin_distribution"] == "hepad-bench-example-plugin"
    # independent check of the stored scores: scipy's Mahalanobis distance on the same events
    from scipy.spatial.distance import mahalanobis

    from hepad_bench.plugins import load_registry

    bench = load_registry(warn=lambda m: None).dataset("l1-pythia")().load(None, None).capped(3000)
    x = bench.features_of(bench.train).astype(np.float64)
    w = bench.train["weight"].to_numpy()  # generator weights (sigma x efficiency per process)
    cov = np.cov(x, rowvar=False, aweights=w) + 1e-3 * np.eye(x.shape[1])
    vi, mean = np.linalg.inv(cov), np.average(x, axis=0, weights=w)
    test = bench.features_of(bench.test).astype(np.float64)[:20]
    expected = [mahalanobis(row, mean, vi) ** 2 for row in test]
    stored = pl.read_parquet(folder / "scores.parquet").filter(pl.col("sample") == "background")["score"][:20]
    np.testing.assert_allclose(stored.to_numpy(), expected, rtol=1e-6)
