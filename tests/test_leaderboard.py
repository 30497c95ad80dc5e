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


def expected_cell(values) -> str:
    """Median [seed band] of fixture values without per-run intervals, formatted independently of the package."""
    values = np.asarray(values, dtype=float)
    median = np.median(values)
    lo, hi = np.percentile(values, [15.865, 84.135])
    decimals = max(0, 1 - int(np.floor(np.log10(min(median - lo, hi - median)))))
    return f"{median:.{decimals}f} [{lo:.{decimals}f}, {hi:.{decimals}f}]"


def test_main_table_medians_intervals_and_best(built):
    _, out, _ = built
    markdown = (out / "toy-ds" / "README.md").read_text()
    header = _md_header(markdown)
    # sigA: eff@1e-3 is available in every run; sigB misses it in one run, so the table falls back to 1e-2
    assert "sigA: eff_S at eff_B=1e-3" in header and "sigB: eff_S at eff_B=1e-2" in header
    col = header.index("sigA: AUC")
    for detector in ("alpha", "supervised-dnn"):
        aucs = [fixture_metrics(detector, s, "sigA")["auc"] for s in (1, 2, 3)]
        assert _md_row(markdown, detector)[col].strip("*") == expected_cell(aucs)
    # beta: seed 3 failed, two values left
    aucs = [fixture_metrics("beta", s, "sigA")["auc"] for s in (1, 2)]
    assert _md_row(markdown, "beta")[col].strip("*") == expected_cell(aucs)
    # beta's seeds (1, 2) differ from the others' (1, 2, 3): flagged and explained
    assert _md_row(markdown, "beta")[header.index("seeds")] == "2 (1, 2) ‡"
    assert _md_row(markdown, "alpha")[header.index("seeds")] == "3 (1, 2, 3)"
    assert "‡: these rows come from other seeds than the rest (1, 2, 3): beta" in markdown
    # gamma's two configurations are named by the parameter that differs (no plugin installed to give defaults)
    assert _md_row(markdown, "gamma (width=4)") and _md_row(markdown, "gamma (width=8)")
    assert "gamma [" not in markdown

    # bold only where the best median's interval clears the runner-up's
    csv = pl.read_csv(out / "toy-ds" / "leaderboard.csv")
    for column in [c for c in header if c.startswith("sig")]:
        i = header.index(column)
        key = "auc" if column.endswith("AUC") else "eff@" + column.split("eff_B=")[1].split(" ")[0]
        prefix = f"{column.split(':')[0]}:{key}"
        ranked = csv.filter(pl.col(f"{prefix}:median").is_not_null()).sort(f"{prefix}:median", descending=True)
        best, second = ranked.row(0, named=True), ranked.row(1, named=True)
        clears = (best[f"{prefix}:lo"] is not None and second[f"{prefix}:hi"] is not None
                  and best[f"{prefix}:lo"] > second[f"{prefix}:hi"])
        for label in csv["label"]:
            bold = _md_row(markdown, label)[i].startswith("**")
            assert bold == (clears and label == best["label"]), (column, label)
    # the CSV keeps mean and std too
    means = {det: np.mean([fixture_metrics(det, s, "sigA")["auc"] for s in seeds])
             for det, seeds in (("alpha", (1, 2, 3)), ("beta", (1, 2)), ("supervised-dnn", (1, 2, 3)))}
    for label, mean in means.items():
        assert csv.filter(pl.col("label") == label)["sigA:auc:mean"][0] == pytest.approx(mean, rel=1e-12)

    col_b = header.index("sigB: eff_S at eff_B=1e-2")
    effs = [fixture_metrics("alpha", s, "sigB")["eff@1e-2"] for s in (1, 2, 3)]
    assert _md_row(markdown, "alpha")[col_b].strip("*") == expected_cell(effs)


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
    assert header == ["detector", "seeds", "sigA: mu_up / DNN", "sigB: mu_up / DNN"]
    from hepad_bench.store import iter_runs

    def mu(det, seed, signal):
        run = next(r for r in iter_runs(results) if r.run["detector"]["name"] == det and r.run["seed"] == seed)
        scored = run.scored(signal)
        return 1.0 / (np.average(scored.signal_sample.score) - np.average(scored.background.score))

    ratios = [mu("alpha", s, "sigB") / mu("supervised-dnn", s, "sigB") for s in (1, 2, 3)]
    assert _md_row(markdown, "alpha", table_index=1)[3].strip("*") == expected_cell(ratios)
    # the DNN itself is the reference, not a competitor
    assert _md_row(markdown, "supervised-dnn", table_index=1)[2:] == ["1 (reference)", "1 (reference)"]
    # the fixture gives no normalisation flag: the heading claims nothing
    assert "physical" not in markdown.split("upper limit on mu")[1].splitlines()[0]
    mu_csv = pl.read_csv(out / "toy-ds" / "mu_limit.csv")
    assert mu_csv.filter(pl.col("detector") == "alpha")["sigB:median"][0] == pytest.approx(np.median(ratios), rel=1e-12)
    assert mu_csv.filter(pl.col("detector") == "alpha")["sigB:mean"][0] == pytest.approx(np.mean(ratios), rel=1e-12)


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


def _md_tables(markdown: str) -> list[str]:
    return [t for t in re.split(r"\n(?=#+ )", markdown) if "\n| " in t]


def test_missing_comparative_metrics_leave_out_the_mu_table(tmp_path):
    """No all-n/a table (issue 12): without mu limits the section has no mu table, one line why, no mu_limit.csv."""
    results = write_fixture_results(tmp_path / "results")
    build_leaderboards(results, tmp_path / "out", registry_with(), plots=False)
    markdown = (tmp_path / "out" / "toy-ds" / "README.md").read_text()
    assert "No upper-limit table on mu: the comparative metric 'mu_limit' is not installed." in markdown
    assert len(_md_tables(markdown)) == 1 and "mu_up" not in markdown and "mu_limit.csv" not in markdown
    assert not (tmp_path / "out" / "toy-ds" / "mu_limit.csv").exists()
    assert "alpha" in _md_row(markdown, "alpha")[0]  # the main table still renders

    with pytest.warns(UserWarning, match="fixture breakage"):
        build_leaderboards(results, tmp_path / "broken", registry_with(BrokenMetric), plots=False)
    markdown = (tmp_path / "broken" / "toy-ds" / "README.md").read_text()
    assert "No upper-limit table on mu: mu_limit raised RuntimeError: fixture breakage" in markdown
    assert len(_md_tables(markdown)) == 1


def test_empty_results_folder_is_a_user_error(tmp_path):
    (tmp_path / "toy-ds" / "alpha").mkdir(parents=True)  # folders but no run.json anywhere
    with pytest.raises(UserError, match="no runs found under") as info:
        build_leaderboards(tmp_path, tmp_path / "out", registry_with())
    assert "\n" not in str(info.value) and "hepad-bench run" in str(info.value)
    assert not (tmp_path / "out").exists()


def test_bold_only_beyond_the_uncertainties():
    from hepad_bench.leaderboard.tables import Cell, Entry, Stat, _mark_best

    def cell(value, lo, hi):
        return [Cell("x", stat=Stat.of_entries([Entry(value, lo, hi)]))]

    rows = [cell(0.90, 0.88, 0.92), cell(0.80, 0.78, 0.82), cell(0.5, 0.4, 0.6), [Cell("n/a")]]
    _mark_best(rows, 0, higher_is_better=True)
    assert [r[0].bold for r in rows] == [True, False, False, False]
    rows = [cell(0.90, 0.85, 0.95), cell(0.88, 0.83, 0.93)]  # overlapping: no winner
    _mark_best(rows, 0, higher_is_better=True)
    assert not any(r[0].bold for r in rows)
    rows = [cell(0.0, 0.0, 0.004), cell(0.0, 0.0, 0.004)]  # all-zero ties: nothing bold
    _mark_best(rows, 0, higher_is_better=True)
    assert not any(r[0].bold for r in rows)
    rows = [cell(2.0, 1.9, 2.1), cell(1.5, 1.4, 1.6)]  # lower is better
    _mark_best(rows, 0, higher_is_better=False)
    assert [r[0].bold for r in rows] == [False, True]
    rows = [cell(0.9, 0.8, 1.0)]  # no runner-up: nothing to rank
    _mark_best(rows, 0, higher_is_better=True)
    assert not rows[0][0].bold


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
    sics = [fixture_metrics("cwola", s, "sigB")["sic_max"] for s in (1, 2)]
    assert _md_row(markdown, "cwola")[header.index("sigB: max SIC")] == expected_cell(sics)  # one row: no bold


def test_mu_table_states_why_cells_are_missing(tmp_path):
    results = write_fixture_results(tmp_path / "results")
    shutil.rmtree(results / "toy-ds" / "supervised-dnn")  # no reference detector left
    build_leaderboards(results, tmp_path / "out", registry_with(FixtureMuLimit), plots=False)
    markdown = (tmp_path / "out" / "toy-ds" / "README.md").read_text()
    assert len(_md_tables(markdown)) == 1  # every ratio n/a: no table, the reason in one line
    assert "No upper-limit table on mu: no supervised-dnn." in markdown
    numbers = pl.read_parquet(tmp_path / "out" / "toy-ds" / "numbers.parquet")
    assert numbers.filter(pl.col("metric") == "mu_limit:mu_up")["value"].null_count() == 0  # raw limits kept


def test_number_formatting():
    from hepad_bench.leaderboard.tables import Entry, Stat, fmt_interval, fmt_stat

    assert fmt_interval(0.91234, 0.9101, 0.9150) == "0.9123 [0.9101, 0.9150]"  # two digits of the smaller side
    assert fmt_interval(0.00123, 0.0009, 0.0016) == "0.00123 [0.00090, 0.00160]"
    assert fmt_interval(1126995.0, 1094438.0, 1159553.0) == "1.127e+06 [1.094e+06, 1.160e+06]"
    assert fmt_interval(3e-6, 1e-6, 6e-6) == "3.0e-06 [1.0e-06, 6.0e-06]"
    assert fmt_interval(0.0, 0.0, 0.0037) == "0.0000 [0.0000, 0.0037]"
    assert fmt_interval(7.85e5, 7.85e5, 7.85e5) == "7.85e+05 (no spread)"
    limited = Stat.of_entries([Entry(0.02, 0.01, 0.035, limited=True)])
    assert fmt_stat(limited, 1) == "0.020 [0.010, 0.035] †"
    assert fmt_stat(Stat.of_entries([Entry(0.5)]), 3, " (no interval)") == "0.500 (no interval) (n=1)"
    assert fmt_stat(None, 3) == "n/a"


# -- acceptance: intervals of a leaderboard built from runs with known scores -------------------------------
def _numbers(cell: str) -> tuple[float, float, float]:
    """(value, lo, hi) read back from a ``value [lo, hi]`` cell."""
    match = re.match(r"\**([-\d.e+]+) \[([-\d.e+]+), ([-\d.e+]+)\]", cell)
    assert match, cell
    return tuple(float(x) for x in match.groups())


def _resolution(cell: str) -> float:
    """Half a unit of the last digit shown: how far a rounded number may lie from the exact one."""
    text = re.match(r"\**([-\d.e+]+)", cell).group(1)
    mantissa, _, exponent = text.partition("e")
    decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
    return 0.5001 * 10.0 ** (-decimals + (int(exponent) if exponent else 0))  # a hair over: ties round either way


@pytest.fixture(scope="module")
def known_scores(tmp_path_factory):
    """Runs whose metrics the real efficiency plugins compute from known scores: 'sharp' (3 seeds) and 'blunt' (1)."""
    from hepad_bench.data import ScoredSample, ScoredSignal
    from hepad_plugins.metrics.efficiency import AUC, EfficiencyAtBackground

    root = tmp_path_factory.mktemp("known")
    n_bg, n_sig, scores = 4000, 400, {}
    for detector, shift, seeds in (("sharp", 1.5, (1, 2, 3)), ("blunt", 0.8, (1,))):
        for seed in seeds:
            rng = np.random.default_rng([seed, len(detector)])
            bkg, sig = rng.normal(size=n_bg), rng.normal(shift, size=n_sig)
            scores[detector, seed] = bkg, sig
            scored = ScoredSignal("sigA", ScoredSample(bkg, np.ones(n_bg)), ScoredSample(sig, np.ones(n_sig)))
            metrics = {"sigA": {**AUC().compute(scored), **EfficiencyAtBackground().compute(scored)}}
            frame = pl.DataFrame({
                "sample": ["background"] * n_bg + ["sigA"] * n_sig, "model": [""] * (n_bg + n_sig),
                "event": np.r_[np.arange(n_bg), np.arange(n_sig)].astype(np.int64), "score": np.r_[bkg, sig],
                "weight": np.ones(n_bg + n_sig), "mjj": [None] * (n_bg + n_sig),
                "label": np.r_[np.zeros(n_bg), np.ones(n_sig)].astype(np.int8)}, schema=SCORE_SCHEMA)
            run = _run_json(detector, "unsupervised", seed, {}, "ok", f"{detector}-{seed}") | {"signals": ["sigA"]}
            write_run(root / "results" / "toy-ds" / detector / f"{detector}-{seed}", run, frame, metrics)
    build_leaderboards(root / "results", root / "out", registry_with(), plots=False)
    return (root / "out" / "toy-ds" / "README.md").read_text(), scores


def test_one_seed_intervals_are_scipys_binomial_and_an_independent_bootstrap(known_scores):
    from scipy.stats import binomtest
    from sklearn.metrics import roc_auc_score

    markdown, scores = known_scores
    header = _md_header(markdown)
    bkg, sig = scores["blunt", 1]
    # eff_B = 1e-2: the 40 highest background scores; signal above the 41st counts (top of the ROC step)
    k = int(np.sum(sig > np.sort(bkg)[-41]))
    ci = binomtest(k, len(sig)).proportion_ci(confidence_level=0.6827, method="exact")
    cell = _md_row(markdown, "blunt")[header.index(next(c for c in header if c.startswith("sigA: eff_S at eff_B=1e-2")))]
    value, lo, hi = _numbers(cell)
    tol = _resolution(cell)
    assert value == pytest.approx(k / len(sig), abs=tol)
    assert lo == pytest.approx(ci.low, abs=tol) and hi == pytest.approx(ci.high, abs=tol)
    # the background efficiency the cut really has: 40 of 4000, its Clopper-Pearson interval in the header
    ci_b = binomtest(40, len(bkg)).proportion_ci(confidence_level=0.6827, method="exact")
    assert f"(eff_B in [{ci_b.low:.2g}, {ci_b.high:.2g}])" in " ".join(header)

    rng = np.random.default_rng(99)
    y = np.r_[np.zeros(len(bkg)), np.ones(len(sig))]
    boot = [roc_auc_score(y, np.r_[rng.choice(bkg, len(bkg)), rng.choice(sig, len(sig))]) for _ in range(1000)]
    b_lo, b_hi = np.quantile(boot, [0.15865, 0.84135])
    value, lo, hi = _numbers(_md_row(markdown, "blunt")[header.index("sigA: AUC")])
    assert value == pytest.approx(roc_auc_score(y, np.r_[bkg, sig]), abs=1e-4)
    assert lo == pytest.approx(b_lo, abs=0.003) and hi == pytest.approx(b_hi, abs=0.003)


def test_several_seeds_combine_seed_band_and_statistical_interval(known_scores):
    from scipy.stats import binomtest

    markdown, scores = known_scores
    header = _md_header(markdown)
    values, downs, ups = [], [], []
    for seed in (1, 2, 3):
        bkg, sig = scores["sharp", seed]
        k = int(np.sum(sig > np.sort(bkg)[-41]))
        ci = binomtest(k, len(sig)).proportion_ci(confidence_level=0.6827, method="exact")
        values.append(k / len(sig))
        downs.append(k / len(sig) - ci.low)
        ups.append(ci.high - k / len(sig))
    median = np.median(values)
    band_lo, band_hi = np.percentile(values, [15.865, 84.135])
    lo = median - np.sqrt(np.median(downs) ** 2 + (median - band_lo) ** 2)
    hi = median + np.sqrt(np.median(ups) ** 2 + (band_hi - median) ** 2)
    cell = _md_row(markdown, "sharp")[header.index(next(c for c in header if c.startswith("sigA: eff_S at eff_B=1e-2")))]
    got = _numbers(cell)
    tol = _resolution(cell)
    assert got == pytest.approx((median, lo, hi), abs=tol)
    # sharp's shift is twice blunt's: far beyond the uncertainties, so bold; its seeds differ from blunt's (flagged)
    assert cell.startswith("**")
    assert "‡" in _md_row(markdown, "blunt")[header.index("seeds")] or "‡" in _md_row(markdown, "sharp")[header.index("seeds")]


def test_folder_names_stay_stable_when_other_options_are_added(tmp_path):
    from dataclasses import dataclass

    from hepad_bench.contracts import Dataset

    @dataclass
    class ToyOptions:
        scale: float = 1.0

    class ToyDataset(Dataset):
        name, version, task = "toy-ds", "3", "unsupervised"
        Options = ToyOptions

        def load(self, data_dir, progress):  # never called by the leaderboard
            raise NotImplementedError

    registry = registry_with()
    registry.datasets["toy-ds"] = PluginEntry("dataset", "toy-ds", "3", "unsupervised", "fixture", ToyDataset, "")
    results = tmp_path / "results"

    def add(key, dataset):
        metrics = {s: fixture_metrics("alpha", 1, s) for s in SIGNALS}
        run = _run_json("alpha", "unsupervised", 1, {}, "ok", key) | {"dataset": dataset}
        write_run(results / "toy-ds" / "alpha" / key, run, fixture_scores("alpha", 1, "unsupervised", 1.0), metrics)

    add("a", DATASET)
    build_leaderboards(results, tmp_path / "one", registry, plots=False)
    add("b", DATASET | {"options": {"scale": 2.0}})
    add("c", DATASET | {"max_events": 5})
    build_leaderboards(results, tmp_path / "two", registry, plots=False)
    one = sorted(p.name for p in (tmp_path / "one").iterdir() if p.is_dir())
    two = sorted(p.name for p in (tmp_path / "two").iterdir() if p.is_dir())
    assert one == ["toy-ds"]
    assert two == ["toy-ds", "toy-ds--max_events-5", "toy-ds--scale-2.0"]
    assert (tmp_path / "one" / "toy-ds" / "README.md").read_bytes() == (tmp_path / "two" / "toy-ds" / "README.md").read_bytes()


def test_leaderboard_cli_reports_progress(tmp_path):
    from typer.testing import CliRunner

    from hepad_bench.cli import app

    results = write_fixture_results(tmp_path / "results")
    result = CliRunner().invoke(app, ["leaderboard", str(results), "--output", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "reading runs under" in result.output and "toy-ds (1/1)" in result.output
    assert "comparative metrics, seed 1" in result.output
