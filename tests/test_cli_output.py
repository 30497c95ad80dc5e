"""What ``hepad-bench run`` prints: plain log lines, warnings once per grid, the end line, small-sample marks."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console

from hepad_bench import cli
from hepad_bench.console import RichProgress
from hepad_bench.summary import MIN_EVENTS_PER_CLASS, MIN_SIGNAL_PASSING, EventCounts, small_sample_reason
from cli_helpers import run_cli  # noqa: E402


def table_rows(out: str) -> list[list[str]]:
    return [[c.strip() for c in line.split("│")[1:-1]] for line in out.splitlines() if line.startswith("│")]


# -- the marking rule, on hand-worked cases -------------------------------------

@pytest.mark.parametrize("n_bkg, n_sig, marked", [(99, 500, True), (500, 99, True), (100, 100, False), (12000, 500, False)])
def test_auc_is_marked_below_100_events_in_a_class(n_bkg, n_sig, marked):
    assert MIN_EVENTS_PER_CLASS == 100
    why = small_sample_reason("auc", {"auc": 0.9}, EventCounts(n_bkg, n_sig))
    assert (why is not None) == marked
    if marked:
        assert "fewer than 100 test events" in why


@pytest.mark.parametrize("eff, n_sig, marked", [
    (0.018, 500, True),   # 9 signal events pass
    (0.02, 500, False),   # exactly 10
    (0.022, 500, False),  # 11
    (0.0, 500, True),     # none pass
    (0.5, 19, True),      # 9.5
])
def test_efficiency_is_marked_below_10_passing_signal_events(eff, n_sig, marked):
    assert MIN_SIGNAL_PASSING == 10
    assert (small_sample_reason("eff@1e-3", {"eff@1e-3": eff}, EventCounts(12000, n_sig)) is not None) == marked


def test_sic_max_counts_the_signal_passing_at_its_working_point():
    # sic = eps_s / sqrt(eps_b): eps_b = 1e-4, sic 1.8 -> eps_s 0.018 -> 9 of 500 signal events pass;
    # sic 2.2 -> 11 pass. The same sic at eps_b = 1e-2 means 90 pass.
    values = {"sic_max": 1.8, "sic_max_eps_b": 1e-4}
    assert small_sample_reason("sic_max", values, EventCounts(12000, 500)) is not None
    assert small_sample_reason("sic_max", values | {"sic_max": 2.2}, EventCounts(12000, 500)) is None
    assert small_sample_reason("sic_max", values | {"sic_max_eps_b": 1e-2}, EventCounts(12000, 500)) is None


def test_unavailable_values_and_unknown_counts_are_not_marked():
    assert small_sample_reason("eff@1e-5", {"eff@1e-5": {"unavailable": "too few"}}, EventCounts(5, 5)) is None
    assert small_sample_reason("auc", {"auc": 0.9}, None) is None


def test_a_column_is_left_out_only_when_no_successful_run_has_a_number():
    from pathlib import Path

    from hepad_bench.runner import RunResult, RunSpec
    from hepad_bench.summary import SUMMARY_KEYS, shown_keys

    na = {"unavailable": "too few background events"}
    spec = RunSpec("d", "det")
    deep = RunResult(spec, Path("a"), "ok", metrics={"s": {"auc": 0.8, "eff@1e-2": 0.3, "eff@1e-3": na}})
    shallow = RunResult(spec, Path("b"), "ok", metrics={"s": {"auc": 0.7, "eff@1e-2": na, "eff@1e-3": 0.01}})
    failed = RunResult(spec, Path("c"), "failed", error="boom", metrics={"s": {"eff@1e-4": 0.5}})
    shown, left = shown_keys([deep, shallow, failed])
    assert shown == ["auc", "eff@1e-2", "eff@1e-3"]  # a number in one run keeps the column; a failed run's does not
    assert left == ["eff@1e-4", "eff@1e-5", "sic_max"]
    assert shown_keys([failed]) == (list(SUMMARY_KEYS), [])  # nothing to judge: every column stays


# -- the progress layer -----------------------------------------------------------

def test_progress_shows_each_plugin_message_once_and_counts_repeats():
    buffer = io.StringIO()
    progress = RichProgress(console=Console(file=buffer, width=200), enabled=False)
    with progress:
        for _ in range(3):
            progress.warn("w: weights ignored [pb]")
            progress.log("warning: old-style warning")
            progress.log("epoch done")
        progress.log("another line")
        progress.report_repeats()
    text = buffer.getvalue()
    assert text.count("warning: w: weights ignored [pb]") == 1  # markup-like text printed as is
    assert text.count("warning: old-style warning") == 1
    assert text.count("epoch done") == 2  # shown once, then named once in the repeats
    assert "warning sent 3 times in this grid, shown once: w: weights ignored [pb]" in text
    assert "another line" in text and "console.py" not in text
    assert all(re.match(r"\d\d:\d\d:\d\d ", line) for line in text.splitlines())


# -- the whole command -------------------------------------------------------------

def test_grid_of_three_iforest_seeds_warns_once_and_marks_small_samples(capsys, tmp_path):
    n = 50  # below MIN_EVENTS_PER_CLASS: every AUC must be marked
    args = ["run", "-d", "iforest", "--seed", "1", "--seed", "2", "--seed", "3", "--max-events", str(n),
            "--output", str(tmp_path), "--quiet", "--device", "cpu"]
    code, out, err = run_cli(args, capsys)
    assert code == 0, err
    assert err.count("PyOD cannot weight events") == 2  # the warning once, and once in the repeats line
    assert err.count("warning: iforest: PyOD cannot weight events") == 1
    assert "warning sent 3 times in this grid" in err
    assert "console.py" not in err and "console.py" not in out
    assert re.search(rf"3 runs: 3 ok, 0 skipped, 0 failed in [\d.]+ s; results in {re.escape(str(tmp_path))}", err)

    rows = table_rows(out)
    assert len(rows) == 3 * 4 and {r[2] for r in rows} == {"1", "2", "3"}
    assert all(r[5].endswith("*") and 0 <= float(r[5].rstrip("*")) <= 1 for r in rows)  # auc column
    assert "* small sample: AUC from fewer than 100 test events in a class" in out
    signals = sorted({r[4] for r in rows})
    counts = ", ".join(f"{s} {n}" for s in signals)
    assert f"l1-pythia test events (--max-events {n}): background {n}; signal {counts}" in out
    # 50 background events hold no working point down to 1e-2 (10 events needed): those columns are left out, named
    header = next(line for line in out.splitlines() if "dataset" in line and "auc" in line)
    assert "eff@" not in header and "sic_max" in header
    assert "left out: eff@1e-2, eff@1e-3, eff@1e-4, eff@1e-5 (no value in any run" in out

    code, _, err = run_cli(args, capsys)  # the same grid again: everything is already stored
    assert code == 0 and "3 runs: 0 ok, 3 skipped, 0 failed" in err and "PyOD" not in err


def test_end_line_counts_failed_runs(toy_registry, monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(cli, "registry", lambda: toy_registry)
    code, _, err = run_cli(["run", "-d", "toy-failing", "-d", "toy-norm", "--dataset", "toy", "--quiet",
                            "--output", str(tmp_path)], capsys)
    assert code == 1
    assert "2 runs: 1 ok, 0 skipped, 1 failed in" in err and "its run.json" in err
