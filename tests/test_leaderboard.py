"""Leaderboard rendering from SYNTHETIC stored runs.

The fixture runs below are written with hepad_bench.store.write_run; their
scores are FIXTURES drawn from known Gaussians and their metrics.json values
are fixture numbers, not physics results. Expected table entries are computed
here independently with numpy from the fixture values.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from hepad_bench.contracts import ComparativeMetric
from hepad_bench.data import Unavailable
from hepad_bench.errors import UserError
from hepad_bench.leaderboard import build_leaderboards
from hepad_bench.plugins import PluginEntry, Registry
from hepad_bench.store import SCORE_SCHEMA, write_run

DATASET = {"name": "toy-ds", "version": "3", "options": {"scale": 1.0}, "max_events": None}
SIGNALS = ("sigA", "sigB")
N_BG, N_SIG = 1500, 300
#: detector -> (kind, seeds, signal mean shift, seeds that fail)
DETECTORS = {
    "alpha": ("unsupervised", (1, 2, 3), 1.0, ()),
    "beta": ("unsupervised", (1, 2, 3), 2.0, (3,)),
    "supervised-dnn": ("supervised", (1, 2, 3), 3.0, ()),
}


def fixture_metrics(detector: str, seed: int, signal: str) -> dict:
    """Fixture metric values, reproducible from (detector, seed, signal)."""
    rng = np.random.default_rng([len(detector), seed, SIGNALS.index(signal), sum(map(ord, detector))])
    values = {"auc": float(rng.uniform(0.5, 1.0)), "eff@1e-2": float(rng.uniform(0, 0.5)),
              "eff@1e-3": float(rng.uniform(0, 0.1)), "eff@1e-4": Unavailable("too few background events"),
              "eff@1e-5": Unavailable("too few background events"), "sic_max": float(rng.uniform(1, 5))}
    if signal == "sigB" and detector == "alpha" and seed == 2:
        values["eff@1e-3"] = Unavailable("fixture: missing working point")
    return values


def fixture_scores(detector: str, seed: int, kind: str, shift: float) -> pl.DataFrame:
    rng = np.random.default_rng([seed, sum(map(ord, detector))])
    parts = []
    models = SIGNALS if kind == "supervised" else ("",)
    for model in models:
        targets = [model] if model else list(SIGNALS)
        for sample in ["background", *targets]:
            n = N_BG if sample == "background" else N_SIG
            mean = 0.0 if sample == "background" else shift * (1 + SIGNALS.index(sample) * 0.5)
            parts.append(pl.DataFrame({
                "sample": [sample] * n, "model": [model] * n, "event": np.arange(n, dtype=np.int64),
                "score": rng.normal(mean, 1.0, n), "weight": rng.uniform(0.5, 1.5, n),
                "mjj": [None] * n, "label": np.full(n, 0 if sample == "background" else 1, dtype=np.int8),
            }, schema=SCORE_SCHEMA))
    return pl.concat(parts)


def _run_json(detector: str, kind: str, seed: int, config: dict, status: str, key: str) -> dict:
    return {
        "key": key, "dataset": DATASET, "detector": {"name": detector, "version": "1.2", "config": config, "kind": kind},
        "seed": seed, "device": "cpu", "task": "unsupervised", "signals": list(SIGNALS),
        "event_counts": {"test": N_BG}, "dataset_meta": {}, "versions": {"hepad-bench": "0.1.0", "plugin": "1.2"},
        "status": status, "error": "RuntimeError: fixture failure\nsecond line" if status == "failed" else None,
        "fit_seconds": 1.5 + seed, "score_seconds": 0.25 * seed,
    }


def write_fixture_results(root: Path) -> Path:
    for detector, (kind, seeds, shift, failing) in DETECTORS.items():
        for seed in seeds:
            key = f"{detector}-{seed}"
            if seed in failing:
                write_run(root / DATASET["name"] / detector / key, _run_json(detector, kind, seed, {}, "failed", key), None, None)
                continue
            metrics = {s: fixture_metrics(detector, seed, s) for s in SIGNALS}
            write_run(root / DATASET["name"] / detector / key, _run_json(detector, kind, seed, {}, "ok", key),
                      fixture_scores(detector, seed, kind, shift), metrics)
    # one detector with two configurations and one seed each
    for width in (4, 8):
        key = f"gamma-{width}"
        metrics = {s: fixture_metrics(f"gamma{width}", 1, s) for s in SIGNALS}
        write_run(root / DATASET["name"] / "gamma" / key,
                  _run_json("gamma", "unsupervised", 1, {"width": width}, "ok", key),
                  fixture_scores(f"gamma{width}", 1, "unsupervised", 0.5), metrics)
    return root


class FixtureMuLimit(ComparativeMetric):
    """Fixture stand-in for mu_limit: 1 / (mean signal score - mean background score)."""

    name, version = "mu_limit", "0.9"

    def compare(self, signal, runs):
        mu = {d: 1.0 / (np.mean(r[0].signal_sample.score) - np.mean(r[0].background.score)) for d, r in runs.items()}
        ref = mu.get("supervised-dnn")
        return {d: {"mu_up": m, "mu_up_over_dnn": m / ref if ref else Unavailable("no supervised-dnn")} for d, m in mu.items()}


class FixtureCorrelation(ComparativeMetric):
    """Fixture stand-in for score_correlation: Pearson of background scores."""

    name, version = "score_correlation", "0.9"

    def compare(self, signal, runs):
        bg = {d: r[0].background.score for d, r in runs.items()}
        return {a: {f"pearson:{b}": float(np.corrcoef(bg[a], bg[b])[0, 1]) for b in bg if b != a} for a in bg}


class BrokenMetric(ComparativeMetric):
    """Always raises."""

    name, version = "mu_limit", "0.0"

    def compare(self, signal, runs):
        raise RuntimeError("fixture breakage")


def registry_with(*classes) -> Registry:
    reg = Registry()
    for cls in classes:
        reg.metrics[cls.name] = PluginEntry("metric", cls.name, cls.version, "comparative", "fixture", cls, "")
    return reg


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("lb")
    results = write_fixture_results(root / "results")
    written = build_leaderboards(results, root / "out", registry_with(FixtureMuLimit, FixtureCorrelation))
    return results, root / "out", written


def _md_row(markdown: str, label: str, table_index: int = 0) -> list[str]:
    """Cells of the row ``label`` in the ``table_index``-th Markdown table."""
    tables = re.split(r"\n(?=#+ )", markdown)
    tables = [t for t in tables if "\n| " in t]
    for line in tables[table_index].splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if line.startswith("| ") and cells[0].strip("*") == label:
            return cells
    raise AssertionError(f"no row {label}")


def _md_header(markdown: str, table_index: int = 0) -> list[str]:
    tables = [t for t in re.split(r"\n(?=#+ )", markdown) if "\n| " in t]
    line = next(line for line in tables[table_index].splitlines() if line.startswith("| "))
    return [c.strip() for c in line.strip().strip("|").split(" | ")]


def test_main_table_means_stds_and_best(built):
    _, out, _ = built
    markdown = (out / "toy-ds" / "README.md").read_text()
    header = _md_header(markdown)
    # sigA: eff@1e-3 is available in every run; sigB misses it in one run, so the table falls back to 1e-2
    assert "sigA: eff_S at eff_B=1e-3" in header and "sigB: eff_S at eff_B=1e-2" in header
    col = header.index("sigA: AUC")
    for detector in ("alpha", "supervised-dnn"):
        aucs = np.array([fixture_metrics(detector, s, "sigA")["auc"] for s in (1, 2, 3)])
        cell = _md_row(markdown, detector)[col].strip("*")
        assert cell == f"{aucs.mean():.3f} ± {aucs.std(ddof=1):.3f}"
    # beta: seed 3 failed, two values left
    aucs = np.array([fixture_metrics("beta", s, "sigA")["auc"] for s in (1, 2)])
    assert _md_row(markdown, "beta")[col].strip("*") == f"{aucs.mean():.3f} ± {aucs.std(ddof=1):.3f}"
    assert _md_row(markdown, "beta")[header.index("seeds")] == "2 (1, 2)"

    # the best mean per column is bold, and only it
    means = {det: np.mean([fixture_metrics(det, s, "sigA")["auc"] for s in seeds])
             for det, seeds in (("alpha", (1, 2, 3)), ("beta", (1, 2)), ("supervised-dnn", (1, 2, 3)))}
    gamma_labels = {line.split(" | ")[0].strip("| *") for line in markdown.splitlines() if "| gamma [" in line
                    or "| **gamma [" in line}
    assert len(gamma_labels) == 2  # two configurations, told apart by their config hash
    csv = pl.read_csv(out / "toy-ds" / "leaderboard.csv")
    best_label = csv.sort("sigA:auc:mean", descending=True)["label"][0]
    for label in csv["label"]:
        cell = _md_row(markdown, label)[col]
        assert cell.startswith("**") == (label == best_label), label
    for label, mean in means.items():
        assert csv.filter(pl.col("label") == label)["sigA:auc:mean"][0] == pytest.approx(mean, rel=1e-12)

    # sigB eff@1e-3 for alpha: one seed unavailable -> n=2 would show at 1e-3, but the table uses 1e-2 with n=3
    col_b = header.index("sigB: eff_S at eff_B=1e-2")
    effs = np.array([fixture_metrics("alpha", s, "sigB")["eff@1e-2"] for s in (1, 2, 3)])
    assert _md_row(markdown, "alpha")[col_b].strip("*") == f"{effs.mean():.3f} ± {effs.std(ddof=1):.3f}"


def test_failed_runs_and_provenance_are_stated(built):
    _, out, _ = built
    markdown = (out / "toy-ds" / "README.md").read_text()
    assert "Failed runs:" in markdown
    assert "- beta seed 3: RuntimeError: fixture failure" in markdown
    assert "second line" not in markdown
    assert "Dataset toy-ds version 3" in markdown and "seeds 1, 2, 3" in markdown and "hepad-bench 0.1.0" in markdown
    assert "1.2" in _md_row(markdown, "alpha")  # detector version column


def test_mu_table_normalised_to_dnn(built):
    results, out, _ = built
    markdown = (out / "toy-ds" / "README.md").read_text()
    header = _md_header(markdown, table_index=1)
    assert header == ["detector", "sigA", "sigB"]
    from hepad_bench.store import iter_runs

    def mu(det, seed, signal):
        run = next(r for r in iter_runs(results) if r.run["detector"]["name"] == det and r.run["seed"] == seed)
        scored = run.scored(signal)
        return 1.0 / (np.average(scored.signal_sample.score) - np.average(scored.background.score))

    ratios = np.array([mu("alpha", s, "sigB") / mu("supervised-dnn", s, "sigB") for s in (1, 2, 3)])
    cell = _md_row(markdown, "alpha", table_index=1)[2].strip("*")
    assert cell == f"{ratios.mean():#.3g} ± {ratios.std(ddof=1):.2g}"
    # lower is better: the DNN itself is exactly 1 and the others (smaller shifts) are above it -> DNN bold
    dnn = _md_row(markdown, "supervised-dnn", table_index=1)
    assert dnn[1] == "**1.00 ± 0**"
    assert not _md_row(markdown, "alpha", table_index=1)[1].startswith("**")
    mu_csv = pl.read_csv(out / "toy-ds" / "mu_limit.csv")
    assert mu_csv.filter(pl.col("detector") == "alpha")["sigB:mean"][0] == pytest.approx(ratios.mean(), rel=1e-12)


def test_long_parquet_holds_every_number(built):
    results, out, _ = built
    frame = pl.read_parquet(out / "toy-ds" / "numbers.parquet")
    for col in ("dataset", "dataset_version", "detector", "detector_version", "config_hash", "seed", "signal",
                "metric", "value", "unavailable"):
        assert col in frame.columns
    ok_runs = 3 + 2 + 3 + 2
    per_run = len(SIGNALS) * len(fixture_metrics("alpha", 1, "sigA")) + 2  # + fit/score seconds
    run_rows = frame.filter(pl.col("source") == "run")
    assert run_rows.height == ok_runs * per_run + 1  # + the failed run's status row
    # spot-check values against the fixture
    for det, seed, signal, key in (("alpha", 2, "sigB", "auc"), ("beta", 1, "sigA", "eff@1e-3"),
                                   ("supervised-dnn", 3, "sigB", "sic_max")):
        got = run_rows.filter((pl.col("detector") == det) & (pl.col("seed") == seed) & (pl.col("signal") == signal)
                              & (pl.col("metric") == key))
        assert got.height == 1 and got["value"][0] == fixture_metrics(det, seed, signal)[key]
    missing = run_rows.filter((pl.col("detector") == "alpha") & (pl.col("seed") == 2) & (pl.col("signal") == "sigB")
                              & (pl.col("metric") == "eff@1e-3"))
    assert missing["value"][0] is None and missing["unavailable"][0] == "fixture: missing working point"
    # comparative numbers: mu_limit (2 keys) per row, seed and signal; correlations with every other row
    mu = frame.filter(pl.col("metric") == "mu_limit:mu_up")
    assert mu.height == ok_runs * len(SIGNALS)
    assert frame.filter(pl.col("metric").str.starts_with("score_correlation:pearson:")).height > 0
    # the top-level Parquet is the union of the datasets' files
    assert pl.read_parquet(out / "numbers.parquet").equals(frame)


def test_figures_are_written_and_readable(built):
    _, out, written = built
    import matplotlib.image as mpimg

    for signal in SIGNALS:
        for kind in ("roc", "scores", "correlation"):
            path = out / "toy-ds" / "plots" / f"{kind}_{signal}.png"
            assert path in written
            image = mpimg.imread(path)
            assert image.shape[0] > 300 and image.shape[1] > 300
            assert image[..., :3].std() > 0.05  # not a blank canvas


def test_rebuild_is_byte_identical(built, tmp_path):
    results, out, written = built
    again = build_leaderboards(results, tmp_path / "again", registry_with(FixtureMuLimit, FixtureCorrelation))
    rel = sorted(p.relative_to(out) for p in written)
    assert rel == sorted(p.relative_to(tmp_path / "again") for p in again)
    assert {p.suffix for p in rel} == {".md", ".csv", ".parquet", ".html", ".png"}
    for path in rel:  # tables, Parquet, page and figures alike
        assert (out / path).read_bytes() == (tmp_path / "again" / path).read_bytes(), path


def test_missing_comparative_metrics_degrade_to_na(tmp_path):
    results = write_fixture_results(tmp_path / "results")
    build_leaderboards(results, tmp_path / "out", registry_with(), plots=False)
    markdown = (tmp_path / "out" / "toy-ds" / "README.md").read_text()
    assert "the comparative metric 'mu_limit' is not installed" in markdown
    assert _md_row(markdown, "alpha", table_index=1)[1:] == ["n/a", "n/a"]
    assert "alpha" in _md_row(markdown, "alpha")[0]  # the main table still renders

    with pytest.warns(UserWarning, match="fixture breakage"):
        build_leaderboards(results, tmp_path / "broken", registry_with(BrokenMetric), plots=False)
    markdown = (tmp_path / "broken" / "toy-ds" / "README.md").read_text()
    assert "mu_limit raised RuntimeError: fixture breakage" in markdown
    assert _md_row(markdown, "beta", table_index=1)[1:] == ["n/a", "n/a"]


def test_empty_results_folder_is_a_user_error(tmp_path):
    (tmp_path / "toy-ds" / "alpha").mkdir(parents=True)  # folders but no run.json anywhere
    with pytest.raises(UserError, match="no runs found under") as info:
        build_leaderboards(tmp_path, tmp_path / "out", registry_with())
    assert "\n" not in str(info.value) and "hepad-bench run" in str(info.value)
    assert not (tmp_path / "out").exists()


def test_ties_as_displayed_are_all_bold():
    from hepad_bench.leaderboard.tables import Cell, Stat, _mark_best

    rows = [[Cell("a", stat=Stat(0.9996, None, 1))], [Cell("b", stat=Stat(1.0, None, 1))],
            [Cell("c", stat=Stat(0.9, None, 1))], [Cell("d", stat=None)]]
    _mark_best(rows, 0, higher_is_better=True)  # 0.9996 and 1.0 both read 1.000
    assert [r[0].bold for r in rows] == [True, True, False, False]
    _mark_best(rows := [[Cell("a", stat=Stat(2.0, None, 1))], [Cell("b", stat=Stat(1.5, None, 1))]], 0, False)
    assert [r[0].bold for r in rows] == [False, True]


def test_weighted_roc_hand_worked():
    """Background scores 0, 1, 2 (weights 1, 1, 2); signal 1.5, 3 (weights 1, 1): worked by hand."""
    from hepad_bench.data import ScoredSample, ScoredSignal
    from hepad_bench.leaderboard.plots import weighted_roc

    scored = ScoredSignal("s", ScoredSample(np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 2.0])),
                          ScoredSample(np.array([1.5, 3.0]), np.array([1.0, 1.0])))
    fpr, tpr, n_bg = weighted_roc(scored)
    points = set(zip(np.round(fpr, 12), np.round(tpr, 12)))
    # cuts at > inf, >= 3, >= 2, >= 1.5, >= 1, >= 0; (0.75, 1) lies on a straight segment and may be dropped
    by_hand = {(0.0, 0.0), (0.0, 0.5), (0.5, 0.5), (0.5, 1.0), (0.75, 1.0), (1.0, 1.0)}
    assert points <= by_hand
    assert {(0.0, 0.5), (0.5, 0.5), (0.5, 1.0), (1.0, 1.0)} <= points
    assert n_bg == 3


def test_resonant_dataset_adds_max_sic(tmp_path):
    root = tmp_path / "results"
    for seed in (1, 2):
        run = _run_json("cwola", "weakly_supervised", seed, {}, "ok", f"c{seed}")
        run["dataset"] = DATASET | {"name": "toy-res"}
        run["task"] = "resonant"
        metrics = {s: fixture_metrics("cwola", seed, s) for s in SIGNALS}
        write_run(root / "toy-res" / "cwola" / f"c{seed}", run, fixture_scores("cwola", seed, "unsupervised", 1.0), metrics)
    build_leaderboards(root, tmp_path / "out", registry_with(), plots=False)
    markdown = (tmp_path / "out" / "toy-res" / "README.md").read_text()
    header = _md_header(markdown)
    assert "sigA: max SIC" in header and "sigB: max SIC" in header
    sics = np.array([fixture_metrics("cwola", s, "sigB")["sic_max"] for s in (1, 2)])
    assert _md_row(markdown, "cwola")[header.index("sigB: max SIC")] == f"**{sics.mean():.3f} ± {sics.std(ddof=1):.3f}**"


def test_mu_table_states_why_cells_are_missing(tmp_path):
    results = write_fixture_results(tmp_path / "results")
    shutil.rmtree(results / "toy-ds" / "supervised-dnn")  # no reference detector left
    build_leaderboards(results, tmp_path / "out", registry_with(FixtureMuLimit), plots=False)
    markdown = (tmp_path / "out" / "toy-ds" / "README.md").read_text()
    assert _md_row(markdown, "alpha", table_index=1)[1:] == ["n/a", "n/a"]
    assert "n/a where mu_limit gave no value: no supervised-dnn." in markdown
    numbers = pl.read_parquet(tmp_path / "out" / "toy-ds" / "numbers.parquet")
    assert numbers.filter(pl.col("metric") == "mu_limit:mu_up")["value"].null_count() == 0  # raw limits kept


def test_number_formatting():
    from hepad_bench.leaderboard.tables import Stat, fmt_stat

    assert fmt_stat(Stat(0.91234, 0.000943, 3), 3) == "0.912 ± 0.001"  # std at the mean's precision
    assert fmt_stat(Stat(0.00123, 0.00045, 2), 3) == "0.00123 ± 0.00045 (n=2)"  # small efficiencies keep digits
    assert fmt_stat(Stat(3.9251, 4.1, 3), 3, sig=True) == "3.93 ± 4.1"
    assert fmt_stat(Stat(0.5, None, 1), 1) == "0.500"
    assert fmt_stat(None, 3) == "n/a"
