"""Data seeds (issue 12): ``--data-seed`` draws another split, the leaderboard aggregates data seeds x run seeds,
and the tables show only what the metrics produced (task-aware output)."""

from __future__ import annotations

import hashlib
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from hepad_bench import Benchmark, Dataset, hookimpl
from hepad_bench.errors import UserError
from hepad_bench.runner import RunSpec, Runner, expand_grid

REPO = Path(__file__).resolve().parents[1]


# -- a seeded toy dataset with its own working points (a plugin of this test module) ----------------
@dataclass
class SeededOptions:
    n: int = 4000


class SeededToy(Dataset):
    """Gaussian background, shifted signal; the split of a fixed pool of events is drawn from the data seed."""

    name = "seeded-toy"
    version = "1"
    task = "unsupervised"
    Options = SeededOptions
    uses_data_seed = True
    working_points = (0.05, 0.2)

    def load(self, data_dir, progress):
        pool = np.random.default_rng(11)
        n = self.options.n
        bkg = pool.normal(0.0, 1.0, size=(3 * n, 2)).astype(np.float32)
        sig = pool.normal(1.5, 1.0, size=(n, 2)).astype(np.float32)
        order = np.random.default_rng([5, 0 if self.data_seed is None else 1 + self.data_seed]).permutation(3 * n)

        def table(x):
            return pl.DataFrame({"a": x[:, 0], "b": x[:, 1], "weight": np.ones(len(x)), "process": ["p"] * len(x)})

        return Benchmark(dataset=self.name, version=self.version, task="unsupervised", features=["a", "b"],
                         train=table(bkg[order[:n]]), validation=table(bkg[order[n:n + n // 4]]),
                         test=table(bkg[order[2 * n:]]), signals={"shifted": table(sig)},
                         signal_train={"shifted": table(sig[: n // 2])}, meta={})


@hookimpl
def hepad_datasets():
    return [SeededToy]


@pytest.fixture
def registry():
    import toy_plugin

    from hepad_bench.plugins import load_registry

    return load_registry(extra_plugins=[("toy-dist", toy_plugin), ("seeded-dist", sys.modules[__name__])],
                         warn=lambda m: None)


# -- the split helper ----------------------------------------------------------------------------
def test_split_rows_without_data_seed_is_the_canonical_split():
    """None reproduces the permutation every stored run was made with: numpy's generator on (seed, stream hash)."""
    from hepad_plugins.datasets._common import split_rows

    stream_id = int(hashlib.sha256(b"background").hexdigest()[:8], 16)
    expected = np.random.default_rng([2020, stream_id]).permutation(1000)
    parts = split_rows(1000, [0.5, 0.1], 2020, "background")
    assert np.array_equal(np.concatenate(parts), expected)
    assert [len(p) for p in parts] == [500, 100, 400]


def test_split_rows_data_seeds_are_deterministic_and_distinct():
    from hepad_plugins.datasets._common import split_rows

    canonical = split_rows(1000, [0.5], 2020, "background")[0]
    firsts = {}
    for data_seed in (0, 1, 2):
        train, rest = split_rows(1000, [0.5], 2020, "background", data_seed)
        again = split_rows(1000, [0.5], 2020, "background", data_seed)[0]
        assert np.array_equal(train, again)  # same data seed, same split
        assert sorted(np.r_[train, rest]) == list(range(1000))  # still a partition
        firsts[data_seed] = frozenset(train.tolist())
    # another data seed, another half (two random halves of 1000 share ~250 rows, never all 500)
    others = list(firsts.values()) + [frozenset(canonical.tolist())]
    assert all(len(a & b) < 400 for i, a in enumerate(others) for b in others[i + 1:])
    with pytest.raises(UserError, match="data seed -1 must be >= 0"):
        split_rows(10, [0.5], 1, "x", -1)


# -- first-party datasets --------------------------------------------------------------------------
def _rows(table: pl.DataFrame, columns: list[str]) -> set[tuple]:
    return set(table.select(columns).rows())


def test_run_keys_without_a_data_seed_are_unchanged():
    """The committed leaderboards were made before data seeds existed: their run keys must still come out."""
    from hepad_bench.plugins import load_registry

    runner = Runner(load_registry(warn=lambda m: None), REPO / "results-unused")
    for dataset, detector in (("l1-pythia", "iforest"), ("dijet-pythia", "cwola")):
        committed = set(pl.read_parquet(REPO / "leaderboards" / dataset / "numbers.parquet")["run_key"])
        assert runner.run_key(RunSpec(dataset=dataset, detector=detector, seed=1)) in committed
        seeded = runner.run_key(RunSpec(dataset=dataset, detector=detector, seed=1, data_seed=1))
        assert seeded not in committed


def test_l1_pythia_data_seeds_draw_other_splits():
    from hepad_bench.plugins import load_registry

    runner = Runner(load_registry(warn=lambda m: None), Path("unused"))
    opts = (("preprocessing", "none"),)  # raw values, so rows can be compared across splits
    benches = {ds: runner.benchmark(RunSpec("l1-pythia", "iforest", dataset_options=opts, data_seed=ds))
               for ds in (None, 1, 2)}
    cols = list(benches[None].features)
    train = {ds: _rows(b.train, cols) for ds, b in benches.items()}
    test = {ds: _rows(b.test, cols) for ds, b in benches.items()}
    everything = train[None] | test[None] | _rows(benches[None].validation, cols)
    for ds in (1, 2):
        b = benches[ds]
        assert b.meta["data_seed"] == ds and "data_seed" not in benches[None].meta
        assert b.train.height == benches[None].train.height  # same fractions, other rows
        assert train[ds] != train[None] and not train[ds] & test[ds]  # another split, still disjoint
        assert train[ds] | test[ds] | _rows(b.validation, cols) == everything  # of the same events
    assert train[1] != train[2]
    assert benches[1].fingerprint not in (benches[None].fingerprint, benches[2].fingerprint)
    # the same data seed again (a fresh runner: read from the cache) gives the same tables
    again = Runner(load_registry(warn=lambda m: None), Path("unused")).benchmark(
        RunSpec("l1-pythia", "iforest", dataset_options=opts, data_seed=1))
    assert again.fingerprint == benches[1].fingerprint


def test_dijet_pythia_data_seed_draws_the_injected_signal():
    from hepad_bench.plugins import load_registry

    runner = Runner(load_registry(warn=lambda m: None), Path("unused"))
    opts = (("preprocessing", "none"),)
    injected = {}
    for ds in (None, 3, 4):
        bench = runner.benchmark(RunSpec("dijet-pythia", "cwola", dataset_options=opts, data_seed=ds))
        signal_rows = bench.train.filter(pl.col("label") == 1)
        injected[ds] = _rows(signal_rows, ["mjj", *bench.features])
        assert len(injected[ds]) > 0
    assert len({len(v) for v in injected.values()}) == 1  # the same number injected (n_signal)
    assert injected[3] != injected[None] and injected[3] != injected[4]  # other signal events


# -- the CLI --------------------------------------------------------------------------------------
def _cli(args, capsys):
    from hepad_bench import cli

    with pytest.raises(SystemExit) as ex:
        cli.main(args)
    captured = capsys.readouterr()
    return ex.value.code, captured.out, captured.err


def test_data_seed_on_a_dataset_without_them_is_one_line_and_writes_nothing(registry, monkeypatch, capsys, tmp_path):
    from hepad_bench import cli

    monkeypatch.setattr(cli, "registry", lambda: registry)
    out = tmp_path / "results"
    code, _, err = _cli(["run", "-d", "toy-norm", "--dataset", "toy", "--data-seed", "1", "--quiet",
                         "--device", "cpu", "--output", str(out)], capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, err
    assert "dataset toy has one fixed split and does not use data seeds" in lines[0]
    assert not out.exists()


def test_grid_is_dataset_detector_data_seed_run_seed():
    specs = expand_grid(["a"], ["x", "y"], [1, 2], data_seeds=[7, 8, 9])
    assert len(specs) == 12
    assert {(s.detector, s.data_seed, s.seed) for s in specs} == {
        (d, ds, s) for d in "xy" for ds in (7, 8, 9) for s in (1, 2)}
    assert {s.data_seed for s in expand_grid(["a"], ["x"], [1])} == {None}


def test_run_json_records_the_data_seed_and_keys_differ(registry, tmp_path):
    runner = Runner(registry, tmp_path)
    results = runner.run_all([RunSpec("seeded-toy", "toy-norm", seed=1, data_seed=d) for d in (1, 2)]
                             + [RunSpec("seeded-toy", "toy-norm", seed=1)])
    runs = [json.loads((r.folder / "run.json").read_text()) for r in results]
    assert [r["dataset"].get("data_seed") for r in runs] == [1, 2, None]
    assert [r.get("data_seed") for r in runs] == [1, 2, None]
    assert len({r["key"] for r in runs}) == 3


# -- working points --------------------------------------------------------------------------------
def test_dataset_working_points_reach_the_efficiency_metric(registry, tmp_path):
    (res,) = Runner(registry, tmp_path).run_all([RunSpec("seeded-toy", "toy-norm", seed=1, data_seed=1)])
    metrics = res.metrics["shifted"]
    assert {k for k in metrics if re.fullmatch(r"eff@[0-9.e+-]+", k)} == {"eff@5e-2", "eff@2e-1"}
    assert res.run["dataset_meta"]["working_points"] == [0.05, 0.2]
    # independent check: the score threshold that keeps 20 % of the test background, applied to the signal
    scores = pl.read_parquet(res.folder / "scores.parquet")
    bkg = scores.filter(pl.col("sample") == "background")["score"].to_numpy()
    sig = scores.filter(pl.col("sample") == "shifted")["score"].to_numpy()
    cut = np.quantile(bkg, 0.8)
    assert metrics["eff@2e-1"] == pytest.approx(np.mean(sig >= cut), abs=2e-3)


def test_invalid_working_points_make_the_plugin_broken():
    from hepad_bench.plugins import load_registry

    class Bad(SeededToy):
        name = "bad-points"
        working_points = (0.5, 2.0)

    class Plugin:
        @staticmethod
        @hookimpl
        def hepad_datasets():
            return [Bad]

    reg = load_registry(extra_plugins=[("bad-dist", Plugin)], warn=lambda m: None)
    assert "bad-points" not in reg.datasets
    assert any("working_points" in b.reason for b in reg.broken)


# -- the leaderboard over 3 data seeds x 2 run seeds ---------------------------------------------
def _table(markdown: str, index: int = 0) -> list[list[str]]:
    tables = [t for t in re.split(r"\n(?=#+ )", markdown) if "\n| " in t]
    lines = [line for line in tables[index].splitlines() if line.startswith("|")]
    return [[c.strip() for c in line.strip("|").split(" | ")] for line in lines if not line.startswith("|:")]


def test_leaderboard_over_three_data_seeds_and_two_run_seeds(capsys, tmp_path):
    """l1-pythia, iforest and hbos, 3 data seeds x 2 run seeds: one section, median and 68 % band over all six."""
    from hepad_bench import cli
    from hepad_bench.leaderboard import build_leaderboards
    from hepad_bench.leaderboard.tables import BAND
    from hepad_bench.plugins import load_registry
    from hepad_bench.store import iter_runs

    results, out = tmp_path / "results", tmp_path / "boards"
    args = ["run", "-d", "iforest", "-d", "hbos", "--dataset", "l1-pythia", "--max-events", "600", "--quiet",
            "--device", "cpu", "--output", str(results), "--seed", "1", "--seed", "2",
            *[a for d in (1, 2, 3) for a in ("--data-seed", str(d))]]
    cli.main(args)
    printed = capsys.readouterr().out
    assert "data seed" in printed  # the run summary names each run's data seed
    runs = iter_runs(results)
    assert len(runs) == 12 and {(r.run["data_seed"], r.run["seed"]) for r in runs} == {
        (d, s) for d in (1, 2, 3) for s in (1, 2)}

    build_leaderboards(results, out, load_registry(warn=lambda m: None), plots=False)
    sections = [p.name for p in out.iterdir() if p.is_dir()]
    assert sections == ["l1-pythia--max_events-600--data-seeds"]  # ONE section, not one per data seed
    folder = out / sections[0]
    markdown = (folder / "README.md").read_text()
    assert "3 data seeds x 2 run seeds" in markdown.splitlines()[0]
    assert "3 data seeds x 2 run seeds (data seeds 1, 2, 3; run seeds 1, 2)" in markdown
    rows = _table(markdown)
    header, body = rows[0], {r[0]: r for r in rows[1:]}
    assert set(body) == {"iforest", "hbos"}
    col = header.index("Ato4l: AUC")
    for det in ("iforest", "hbos"):
        assert body[det][header.index("seeds")] == "6 (3 data seeds x 2 run seeds)"
        aucs = np.array([r.metrics()["Ato4l"]["auc"] for r in runs if r.run["detector"]["name"] == det])
        csv = pl.read_csv(folder / "leaderboard.csv").filter(pl.col("detector") == det)
        assert csv["Ato4l:auc:median"][0] == pytest.approx(np.median(aucs))
        assert csv["Ato4l:auc:n"][0] == 6
        lo, hi = np.percentile(aucs, BAND)
        assert (csv["Ato4l:auc:band_lo"][0], csv["Ato4l:auc:band_hi"][0]) == pytest.approx((lo, hi))
        assert body[det][col] != "n/a"
    html = (out / "index.html").read_text()
    assert "3 data seeds x 2 run seeds" in html
    numbers = pl.read_parquet(folder / "numbers.parquet")
    assert sorted(numbers["data_seed"].unique().to_list()) == [1, 2, 3]

    # task-aware: 600 events reach no working point and no trigger rate (no efficiency columns, no rate
    # table); no DNN, so no mu_up / DNN column, but l1-pythia's physical yields give absolute limits
    n_tables = len([t for t in re.split(r"\n(?=#+ )", markdown) if "\n| " in t])
    assert n_tables == 2
    for table in (_table(markdown, i) for i in range(n_tables)):
        for c in range(len(table[0])):
            assert any(r[c] != "n/a" for r in table[1:]), table[0][c]
    mu_header = _table(markdown, 1)[0]
    assert "Ato4l: mu_up" in mu_header and not any("/ DNN" in c for c in mu_header)
    assert "## l1-pythia: upper limit on mu (physical yields" in markdown and "No mu_up / DNN columns:" in markdown
    assert "eff_S at" not in markdown and not (folder / "rates.csv").exists()


def test_no_all_na_column_on_a_generic_dataset(registry, tmp_path):
    """The toy dataset (no rate, no yields, no supervised reference): only columns with a value somewhere."""
    from hepad_bench.leaderboard import build_leaderboards

    runner = Runner(registry, tmp_path / "results")
    runner.run_all([RunSpec("toy", det, seed=s) for det in ("toy-norm", "toy-failing") for s in (1, 2)])
    build_leaderboards(tmp_path / "results", tmp_path / "out", registry, plots=False)
    markdown = (tmp_path / "out" / "toy" / "README.md").read_text()
    tables = [t for t in re.split(r"\n(?=#+ )", markdown) if "\n| " in t]
    assert len(tables) == 1  # no mu table: no DNN on a generic dataset
    rows = _table(markdown)
    for c in range(len(rows[0])):
        assert any(r[c] != "n/a" for r in rows[1:]), rows[0][c]
    assert "shifted: AUC" in rows[0]
