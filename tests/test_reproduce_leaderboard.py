"""benchmarks/reproduce_leaderboard.py: stored runs compared with committed numbers, run key by run key."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import polars as pl

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "reproduce_leaderboard.py"


def load_script():
    spec = importlib.util.spec_from_file_location("reproduce_leaderboard", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_run(results: Path, key: str, metrics: dict, status: str = "ok") -> None:
    folder = results / "toy" / "det" / key
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({"status": status}))
    (folder / "metrics.json").write_text(json.dumps(metrics))


def test_identical_values_pass_and_a_changed_one_is_named(tmp_path, capsys):
    script = load_script()
    boards = tmp_path / "leaderboards" / "toy"
    boards.mkdir(parents=True)
    pl.DataFrame({"run_key": ["k1", "k1", "k2"], "signal": ["s", "s", "s"], "metric": ["auc", "sic_max", "auc"],
                  "value": [0.75, 2.5, 0.6]}).write_parquet(boards / "numbers.parquet")
    results = tmp_path / "results"
    write_run(results, "k1", {"s": {"auc": 0.75, "sic_max": 2.5, "eff@1e-5": {"unavailable": "too few"}}})
    write_run(results, "k3", {"s": {"auc": 0.1}})  # not in the leaderboard: ignored
    args = [str(results), "--leaderboards", str(tmp_path / "leaderboards")]
    assert script.main(args) == 0
    assert "0 value(s) differ (bit for bit)" in capsys.readouterr().out

    write_run(results, "k2", {"s": {"auc": 0.6 + 1e-12}})
    assert script.main(args) == 1
    out = capsys.readouterr().out
    assert "differs: det k2 s auc" in out and "1 value(s) differ" in out
    assert script.main([*args, "--rtol", "1e-9"]) == 0  # within a stated tolerance
