"""``hepad-bench new-plugin detector|dataset NAME``: write a ready plugin package.

The package holds a ``pyproject.toml`` with the ``hepad_bench`` entry point, a
module with the contract filled in and working (a standardised-distance
detector, or a seeded Gaussian dataset that honours the data seed), a test
that installs the package and runs it through the CLI, a GitHub Actions
workflow and a README. It uses the public API only.

The templates are plain text with ``__NAME__``-style placeholders (not
``str.format``: the code and the workflow are full of braces).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from hepad_bench import __version__
from hepad_bench.errors import UserError

KINDS = ("detector", "dataset")
NAME_RE = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
MAX_NAME = 40


@dataclass(frozen=True)
class PluginNames:
    """Every name of a new plugin, derived from its CLI name."""

    kind: str
    name: str  # CLI name, e.g. "my-detector"

    @property
    def distribution(self) -> str:
        return f"hepad-bench-{self.name}"

    @property
    def module(self) -> str:
        return "hepad_" + self.name.replace("-", "_")

    @property
    def class_name(self) -> str:
        return "".join(part.capitalize() for part in self.name.split("-")) + self.kind.capitalize()


def check_name(kind: str, name: str) -> PluginNames:
    """The plugin's names, or a one-line UserError for a bad kind or name."""
    if kind not in KINDS:
        raise UserError(f"unknown plugin kind '{kind}': use {' or '.join(KINDS)}")
    if not NAME_RE.fullmatch(name) or len(name) > MAX_NAME:
        raise UserError(f"bad plugin name '{name}': use lower-case letters, digits and single hyphens, starting with "
                        f"a letter, at most {MAX_NAME} characters (e.g. my-{kind})")
    return PluginNames(kind, name)


def write_package(names: PluginNames, output: Path) -> list[Path]:
    """Write the package into ``output`` (absent or empty); return the files written."""
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise UserError(f"output folder {output} already exists and is not empty; choose another --output")
    files = {
        "pyproject.toml": PYPROJECT,
        "README.md": README,
        ".gitignore": GITIGNORE,
        ".github/workflows/tests.yml": WORKFLOW,
        f"{names.module}/__init__.py": DETECTOR_MODULE if names.kind == "detector" else DATASET_MODULE,
        f"tests/test_{names.module}.py": DETECTOR_TEST if names.kind == "detector" else DATASET_TEST,
    }
    written = []
    for rel, template in files.items():
        path = output / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(template, names))
        written.append(path)
    return written


def render(template: str, names: PluginNames) -> str:
    what = ("an anomaly detector" if names.kind == "detector" else "a dataset")
    replacements = {
        "__NAME__": names.name, "__DIST__": names.distribution, "__MODULE__": names.module,
        "__CLASS__": names.class_name, "__KIND__": names.kind, "__WHAT__": what,
        "__HEPAD_VERSION__": __version__,
    }
    for key, value in replacements.items():
        template = template.replace(key, value)
    return template.lstrip("\n")


# -- templates -------------------------------------------------------------------
PYPROJECT = '''
[build-system]
requires = ["hatchling>=1.21"]
build-backend = "hatchling.build"

[project]
name = "__DIST__"
version = "0.1.0"
description = "__WHAT__ plugin for hepad-bench: __NAME__"
readme = "README.md"
requires-python = ">=3.10"
dependencies = ["hepad-bench>=__HEPAD_VERSION__", "numpy", "polars"]

[project.optional-dependencies]
test = ["pytest>=8", "hatchling>=1.21"]

# The whole registration: one entry point in the group "hepad_bench".
[project.entry-points.hepad_bench]
__MODULE__ = "__MODULE__"

[tool.hatch.build.targets.wheel]
packages = ["__MODULE__"]

[tool.pytest.ini_options]
testpaths = ["tests"]
pythonpath = ["."]  # the unit tests import the module from the source tree; the CLI tests install it
'''

README = '''
# __DIST__

__WHAT__ plugin for hepad-bench, made by
`hepad-bench new-plugin __KIND__ __NAME__`.

```
pip install -e ".[test]"
hepad-bench list                # shows the __KIND__ __NAME__ and this distribution
pytest                          # installs the package into a temporary folder and runs it through the CLI
```

The plugin is the module `__MODULE__/__init__.py`: a `__CLASS__` class filled in with a working example and a
`hookimpl` that returns it. Replace the example with your own; keep `name`, and bump `version` whenever its results
change (it is part of every run key). The contract (what `fit`/`score` or `load` must do, the table schema) is in
hepad-bench's README ("Writing a plugin", "Writing a dataset plugin") and in the docstrings of `hepad_bench.Detector`,
`hepad_bench.Dataset` and `hepad_bench.Benchmark`. Use only what `hepad_bench` and `hepad_bench.dataset_tools`
export.

`.github/workflows/tests.yml` runs the tests on every push.
'''

GITIGNORE = '''
__pycache__/
*.egg-info/
build/
dist/
.venv/
results/
leaderboards/
'''

WORKFLOW = '''
name: tests

on:
  push:
  pull_request:

jobs:
  test:
    runs-on: ubuntu-latest
    strategy:
      fail-fast: false
      matrix:
        python-version: ["3.10", "3.12"]
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-python@v5
        with:
          python-version: ${{ matrix.python-version }}
          cache: pip
      - name: Install the plugin with hepad-bench and the test tools
        run: python -m pip install -e ".[test]"
      - name: Check that hepad-bench finds the plugin
        run: hepad-bench list
      - name: Test
        run: python -m pytest -q
'''

DETECTOR_MODULE = '''
"""hepad-bench detector plugin __NAME__: a standardised distance to the background mean.

Replace the example with your method; the contract is ``hepad_bench.Detector``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hepad_bench import Detector, FitContext, TrainingData, UserError, hookimpl


@dataclass
class __CLASS__Config:
    #: smallest standard deviation a feature may have (constant features would divide by zero)
    min_std: float = 1e-6


class __CLASS__(Detector):
    """Sum over features of the squared distance to the weighted background mean, in standard deviations."""

    name = "__NAME__"
    version = "1"  # bump when the scores change: the version is part of every run key
    kind = "unsupervised"  # or "weakly_supervised", "supervised"
    Config = __CLASS__Config

    @classmethod
    def check(cls, config: __CLASS__Config, n_features: int) -> None:
        """Refuse a configuration before any training (one line)."""
        if config.min_std <= 0:
            raise UserError(f"{cls.name}: min_std must be above 0, got {config.min_std}")

    def fit(self, train: TrainingData, ctx: FitContext) -> None:
        x = train.x.astype(np.float64)
        self.mean = np.average(x, axis=0, weights=train.weight)
        variance = np.average((x - self.mean) ** 2, axis=0, weights=train.weight)
        self.std = np.maximum(np.sqrt(variance), self.config.min_std)

    def score(self, x: np.ndarray, mjj: np.ndarray | None = None) -> np.ndarray:
        """Higher = more anomalous; finite float64, one per row."""
        return (((x.astype(np.float64) - self.mean) / self.std) ** 2).sum(axis=1)


@hookimpl
def hepad_detectors() -> list[type[Detector]]:
    return [__CLASS__]
'''

DATASET_MODULE = '''
"""hepad-bench dataset plugin __NAME__: a seeded Gaussian sample with a shifted signal.

Replace the example with your data; the contract is ``hepad_bench.Dataset``
(``load`` returns a ``hepad_bench.Benchmark``) and the helpers are in
``hepad_bench.dataset_tools``. To read files instead of generating events::

    path = require_file(self.name, "events.h5", data_dir, url="https://...")  # --data-dir, then the downloads folder
    table, facts = cached_raw_table(self.name, path, "1", my_reader, progress)   # converted once into Parquet

and list the files in ``remote_files`` so that ``hepad-bench datasets fetch __NAME__`` downloads them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from hepad_bench import Benchmark, Dataset, Progress, hookimpl
from hepad_bench.dataset_tools import cached_benchmark, check_fractions, split_rows, take, with_bookkeeping

FEATURES = ["x0", "x1", "x2", "x3"]
#: the split (and sample) of the canonical dataset, used when no --data-seed is given
CANONICAL_SEED = 1

CARD = """# __NAME__

Task: unsupervised. Background: a 4-d standard normal (features x0..x3); signal `shifted`: the same shifted by
`-o shift` in every coordinate. Generated from the data seed (`--data-seed`; a fixed seed without one), split into
training, validation (`-o validation_fraction`) and test (`-o test_fraction`) background. Licence: CC0.
"""


@dataclass
class __CLASS__Options:
    #: background events generated (all splits together)
    n_background: int = 4000
    #: signal events generated (all held out for testing)
    n_signal: int = 400
    #: signal shift in every coordinate, in background standard deviations
    shift: float = 2.0
    #: fraction of the background in the validation split
    validation_fraction: float = 0.2
    #: fraction of the background in the test split (the rest trains)
    test_fraction: float = 0.4

    def __post_init__(self) -> None:  # a ValueError here is a one-line error for -o
        check_fractions(validation_fraction=self.validation_fraction, test_fraction=self.test_fraction)
        if self.n_background < 10 or self.n_signal < 1:
            raise ValueError("n_background must be at least 10 and n_signal at least 1")


def gaussian_table(rng: np.random.Generator, n: int, shift: float, process: str) -> pl.DataFrame:
    """``n`` events of a 4-d unit normal around ``shift``: float32 features, ``weight``, ``process`` and ``label``."""
    x = rng.normal(shift, 1.0, size=(n, len(FEATURES))).astype(np.float32)
    table = pl.DataFrame({name: x[:, i] for i, name in enumerate(FEATURES)})
    return with_bookkeeping(table, process).with_columns(pl.lit(int(process != "background"), dtype=pl.Int8).alias("label"))


class __CLASS__(Dataset):
    """Seeded 4-d Gaussian background with a shifted signal."""

    name = "__NAME__"
    version = "1"  # bump when the content changes
    task = "unsupervised"
    card = CARD
    Options = __CLASS__Options
    uses_data_seed = True  # the sample and its splits are drawn from --data-seed

    def load(self, data_dir: Path | None, progress: Progress) -> Benchmark:
        key = {"options": vars(self.options), "data_seed": self.data_seed}  # what changes the content
        return cached_benchmark(self.name, self.version, key, self.build)

    def build(self) -> Benchmark:
        opts = self.options
        seed = CANONICAL_SEED if self.data_seed is None else self.data_seed
        rng = np.random.default_rng([seed, 0])
        background = gaussian_table(rng, opts.n_background, 0.0, "background")
        signal = gaussian_table(rng, opts.n_signal, opts.shift, "shifted")
        val, test, train = split_rows(background.height, [opts.validation_fraction, opts.test_fraction], seed,
                                      "background")
        return Benchmark(
            dataset=self.name, version=self.version, task="unsupervised", features=list(FEATURES),
            train=take(background, train), validation=take(background, val), test=take(background, test),
            signals={"shifted": signal}, meta={"data_seed": self.data_seed, "shift": opts.shift},
        )


@hookimpl
def hepad_datasets() -> list[type[Dataset]]:
    return [__CLASS__]
'''

_INSTALL_HELPERS = '''
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

PACKAGE = Path(__file__).resolve().parents[1]
DIST = "__DIST__"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The package installed for real (its own wheel and entry point) into a temporary folder."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(PACKAGE)], check=True, capture_output=True, text=True)
    return target


def hepad(args, site, tmp_path):
    """The hepad-bench command line in a fresh process that sees the installed package first."""
    env = os.environ | {"PYTHONPATH": str(site), "HEPAD_BENCH_CACHE": str(tmp_path / "cache")}
    return subprocess.run([sys.executable, "-m", "hepad_bench.cli", *args], capture_output=True, text=True,
                          env=env, timeout=900)


def test_listed_with_its_distribution(site, tmp_path):
    proc = hepad(["list", "--json"], site, tmp_path)
    assert proc.returncode == 0, proc.stderr
    entries = {p["name"]: p for p in json.loads(proc.stdout)["plugins"]}
    assert entries["__NAME__"]["distribution"] == DIST and entries["__NAME__"]["category"] == "__KIND__"
'''

DETECTOR_TEST = '''
"""__NAME__: the method against a hand computation, and the installed package run through the CLI."""
''' + _INSTALL_HELPERS + '''

def test_runs_through_the_cli(site, tmp_path):
    out = tmp_path / "results"
    proc = hepad(["run", "--detector", "__NAME__", "--dataset", "l1-pythia", "--max-events", "2000",
                  "--output", str(out), "--quiet", "--device", "cpu"], site, tmp_path)
    assert proc.returncode == 0, proc.stderr
    (run_json,) = out.glob("l1-pythia/__NAME__/*/run.json")
    run = json.loads(run_json.read_text())
    assert run["status"] == "ok" and run["versions"]["plugin_distribution"] == DIST
    metrics = json.loads((run_json.parent / "metrics.json").read_text())
    assert metrics and all(0.0 <= values["auc"] <= 1.0 for values in metrics.values())


def test_scores_match_a_hand_computation():
    from hepad_bench import FitContext, TrainingData

    from __MODULE__ import __CLASS__

    x = np.array([[0.0, 10.0], [2.0, 10.0], [4.0, 10.0]], dtype=np.float32)  # mean (2, 10), std (sqrt(8/3), 0)
    train = TrainingData(features=["a", "b"], x=x, weight=np.ones(3), x_val=x[:0], weight_val=np.ones(0))
    detector = __CLASS__()
    detector.fit(train, FitContext(seed=1))
    scores = detector.score(np.array([[2.0, 10.0], [5.0, 10.0]], dtype=np.float32))
    assert scores[0] == pytest.approx(0.0) and scores[1] == pytest.approx(9.0 / (8.0 / 3.0))
'''

DATASET_TEST = '''
"""__NAME__: the splits and the data seed, and the installed package run through the CLI."""
''' + _INSTALL_HELPERS + '''

def test_runs_through_the_cli(site, tmp_path):
    out = tmp_path / "results"
    proc = hepad(["run", "--dataset", "__NAME__", "--detector", "iforest", "--output", str(out), "--quiet",
                  "--device", "cpu"], site, tmp_path)
    assert proc.returncode == 0, proc.stderr
    (run_json,) = out.glob("__NAME__/iforest/*/run.json")
    run = json.loads(run_json.read_text())
    assert run["status"] == "ok"
    # default options: 4000 background events, validation floor(0.2 n), test floor(0.4 n), training the rest
    counts = run["event_counts"]
    assert (counts["validation"], counts["test"], counts["train"], counts["signal/shifted"]) == (800, 1600, 1600, 400)
    metrics = json.loads((run_json.parent / "metrics.json").read_text())
    assert metrics["shifted"]["auc"] > 0.8  # a 2-sigma shift in each of 4 coordinates is easy to find


def test_data_seed_draws_the_sample_and_splits(tmp_path, monkeypatch):
    from hepad_bench import Progress

    from __MODULE__ import __CLASS__

    monkeypatch.setenv("HEPAD_BENCH_CACHE", str(tmp_path / "cache"))
    first, again = __CLASS__(data_seed=3).load(None, Progress()), __CLASS__(data_seed=3).load(None, Progress())
    other = __CLASS__(data_seed=4).load(None, Progress())
    assert first.train.equals(again.train) and not first.train.equals(other.train)
    # the signal mean is the shift (2.0) within 5 standard errors, in every coordinate
    x = first.features_of(first.signals["shifted"]).astype(np.float64)
    assert np.all(np.abs(x.mean(axis=0) - 2.0) < 5 / np.sqrt(len(x)))
'''
