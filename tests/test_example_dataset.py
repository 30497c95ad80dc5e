"""The example third-party dataset plugin, installed for real, and the public-API-only rule for examples/.

The package under examples/ is pip-installed into a temporary folder (its own
wheel, its own dist-info with the entry point); the real ``hepad-bench``
console script then lists, describes, fetches and runs it in a subprocess.
The split facts are checked against the shipped CSV read independently with
the standard library.
"""

import ast
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from cli_helpers import pip_install_into  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "hepad-bench-example-dataset"
DIST = "hepad-bench-example-dataset"


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory):
    target = tmp_path_factory.mktemp("site")
    pip_install_into(target, EXAMPLE)
    assert list(target.glob("hepad_bench_example_dataset-*.dist-info/entry_points.txt"))
    assert (target / "hepad_example_dataset" / "blobs.csv").is_file()  # the data travels in the wheel
    return target


def hepad(args, site, tmp_path, **env):
    environ = os.environ | {"PYTHONPATH": str(site), "HEPAD_BENCH_CACHE": str(tmp_path / "cache")} | env
    cli = Path(sys.executable).with_name("hepad-bench")
    return subprocess.run([str(cli), *args], capture_output=True, text=True, env=environ, timeout=600)


def shipped_rows():
    with open(EXAMPLE / "hepad_example_dataset" / "blobs.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_installed_dataset_is_listed_with_its_distribution(plugin_site, tmp_path):
    proc = hepad(["list", "--json"], plugin_site, tmp_path)
    assert proc.returncode == 0, proc.stderr
    entries = {p["name"]: p for p in json.loads(proc.stdout)["plugins"]}
    assert entries["example-blobs"]["distribution"] == DIST and entries["example-blobs"]["category"] == "dataset"


def test_run_through_the_cli_with_iforest(plugin_site, tmp_path):
    out = tmp_path / "results"
    proc = hepad(["run", "--dataset", "example-blobs", "--detector", "iforest", "--output", str(out), "--quiet",
                  "--device", "cpu"], plugin_site, tmp_path)
    assert proc.returncode == 0, proc.stderr
    (folder,) = [p.parent for p in out.glob("example-blobs/iforest/*/run.json")]
    run = json.loads((folder / "run.json").read_text())
    assert run["status"] == "ok" and run["versions"]["dataset_distribution"] == DIST
    assert run["train_contamination"] == 0.0  # background-only by default: measured from the truth labels
    # split sizes from the CSV, counted independently: validation floor(0.2 n), test floor(0.4 n), train the rest
    rows = shipped_rows()
    n_bkg = sum(r["class"] == "background" for r in rows)
    n_val, n_test = int(np.floor(0.2 * n_bkg)), int(np.floor(0.4 * n_bkg))
    counts = run["event_counts"]
    assert (counts["validation"], counts["test"], counts["train"]) == (n_val, n_test, n_bkg - n_val - n_test)
    assert counts["signal/shifted"] == sum(r["class"] == "shifted" for r in rows)
    # a 2.5-sigma shift in each of 4 dimensions: the signal sits ~5 sigma out, isolation separates it well
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["shifted"]["auc"] > 0.95


def test_contaminated_run_is_recorded(plugin_site, tmp_path):
    out = tmp_path / "results"
    proc = hepad(["run", "--dataset", "example-blobs", "--detector", "iforest", "-o", "contamination=0.05",
                  "--output", str(out), "--quiet", "--device", "cpu"], plugin_site, tmp_path)
    assert proc.returncode == 0, proc.stderr
    (run_json,) = out.glob("example-blobs/iforest/*/run.json")
    fraction = json.loads(run_json.read_text())["train_contamination"]
    assert fraction == pytest.approx(0.05, abs=2e-3)
    board = tmp_path / "boards"
    proc = hepad(["leaderboard", str(out), "--output", str(board)], plugin_site, tmp_path)
    assert proc.returncode == 0, proc.stderr
    text = "\n".join(p.read_text() for p in board.rglob("*.md"))
    assert f"training data contaminated: signal fraction {fraction:.3g} unlabelled" in text


def test_info_and_fetch_name_the_distribution(plugin_site, tmp_path):
    info = hepad(["datasets", "info", "example-blobs"], plugin_site, tmp_path)
    assert info.returncode == 0, info.stderr
    assert f"distribution: {DIST}" in info.stdout
    assert "splits drawn from the data seed" in info.stdout and "may hold unlabelled signal" in info.stdout
    assert "Gaussian blobs" in info.stdout  # the card
    fetch = hepad(["datasets", "fetch", "example-blobs"], plugin_site, tmp_path)
    assert fetch.returncode == 0, fetch.stderr
    assert f"(from {DIST}) has no files to download" in fetch.stdout and "ships with" not in fetch.stdout


@pytest.fixture
def blobs(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLE))
    import hepad_example_dataset

    return hepad_example_dataset


def _rows(table):
    """The events of a table as a set of feature tuples (the float32 values, exactly)."""
    return {tuple(r) for r in table.select(["f0", "f1", "f2", "f3"]).to_numpy().astype(np.float64)}


def test_splits_follow_the_data_seed_and_partition_the_background(blobs):
    from hepad_bench import Progress

    csv_background = np.array([[float(r[f]) for f in ("f0", "f1", "f2", "f3")]
                               for r in shipped_rows() if r["class"] == "background"], dtype=np.float32)
    background = {tuple(row) for row in csv_background.astype(np.float64)}
    canonical = blobs.ExampleBlobs().load(None, Progress())
    again = blobs.ExampleBlobs(data_seed=None).load(None, Progress())
    seed1 = blobs.ExampleBlobs(data_seed=1).load(None, Progress())
    seed2 = blobs.ExampleBlobs(data_seed=2).load(None, Progress())
    for bench in (canonical, seed1, seed2):
        parts = [_rows(bench.train), _rows(bench.validation), _rows(bench.test)]
        assert set().union(*parts) == background and sum(map(len, parts)) == len(background)  # disjoint, complete
    assert _rows(canonical.train) == _rows(again.train)
    assert _rows(seed1.train) != _rows(seed2.train) != _rows(canonical.train)
    assert seed1.event_counts() == seed2.event_counts()


def test_contamination_moves_signal_into_training(blobs):
    from hepad_bench import Progress

    clean = blobs.ExampleBlobs(data_seed=4).load(None, Progress())
    dirty = blobs.ExampleBlobs(blobs.BlobsOptions(contamination=0.1), data_seed=4).load(None, Progress())
    pool = np.r_[dirty.train["label"].to_numpy(), dirty.validation["label"].to_numpy()]
    assert pool.mean() == pytest.approx(0.1, abs=2e-3) and dirty.train_contamination == pytest.approx(pool.mean())
    injected = _rows(dirty.train.filter(dirty.train["label"] == 1))
    held = set().union(*(_rows(t) for t in dirty.signals.values()))
    assert injected and not injected & held  # a training signal event is never scored as test signal
    assert sum(t.height for t in dirty.signals.values()) + int(pool.sum()) == \
        sum(t.height for t in clean.signals.values())
    assert _rows(dirty.test) == _rows(clean.test)  # the background test split does not move


def _private_imports(path: Path) -> list[str]:
    """Imports of ``_``-prefixed modules or names, and of hepad_plugins, in one source file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            modules, names = [a.name for a in node.names], []
        elif isinstance(node, ast.ImportFrom):
            modules, names = [node.module or ""], [a.name for a in node.names]
        else:
            continue
        for module in modules:
            parts = module.split(".")
            if parts[0] == "hepad_plugins" or any(p.startswith("_") and p != "__future__" for p in parts):
                found.append(f"{path.name}:{node.lineno} import {module}")
        found += [f"{path.name}:{node.lineno} name {n}" for n in names if n.startswith("_")]
    return found


def test_scanner_catches_private_imports(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from __future__ import annotations\nimport hepad_plugins.datasets\n"
                   "from hepad_bench.cache import _table_file\nfrom hepad_bench import _private\nimport os\n")
    assert len(_private_imports(bad)) == 3


def test_example_packages_use_only_the_public_api():
    sources = sorted((ROOT / "examples").rglob("*.py"))
    assert {p.relative_to(ROOT / "examples").parts[0] for p in sources} >= {
        "hepad-bench-example-plugin", "hepad-bench-example-dataset"}
    problems = [msg for p in sources for msg in _private_imports(p)]
    assert problems == []


def test_readme_dataset_plugin_snippet_works(tmp_path):
    """The README's dataset plugin, executed as printed, on a CSV in --data-dir (no download)."""
    import re

    from hepad_bench import Progress

    readme = (ROOT / "README.md").read_text().split("### Writing a dataset plugin", 1)[1]
    code = re.search(r"```python\n(.*?)```", readme, flags=re.S).group(1)
    namespace = {"__name__": "readme_plugin"}
    exec(compile(code, "README.md", "exec"), namespace)
    rows = shipped_rows()
    (tmp_path / "events.csv").write_text("f0,f1,f2,f3,class\n" + "".join(
        ",".join(r[k] for k in ("f0", "f1", "f2", "f3", "class")) + "\n" for r in rows))
    n_bkg = sum(r["class"] == "background" for r in rows)
    first = namespace["MyData"](data_seed=1).load(tmp_path, Progress())
    other = namespace["MyData"](data_seed=2).load(tmp_path, Progress())
    assert (first.test.height, first.train.height) == (int(np.floor(0.4 * n_bkg)), n_bkg - int(np.floor(0.4 * n_bkg)))
    assert first.signals["sig"].height == len(rows) - n_bkg and first.validation.height == 0
    assert first.train.schema["f0"] == pl.Float32 and _rows(first.train) != _rows(other.train)
    assert namespace["hepad_datasets"]() == [namespace["MyData"]]
