"""Do stored runs reproduce the committed leaderboard? Compare metric values run key by run key.

A run key hashes the dataset identity (with the content fingerprint of the
data read), the detector's name, version and configuration, and the seed. A
run computed anywhere with the same key must give the leaderboard's numbers:
on the CPU bit for bit. This script reads every complete run under RESULTS,
finds its key in the committed ``numbers.parquet`` files and compares each
numeric (signal, metric) value.

    python benchmarks/reproduce_leaderboard.py /work/results/sb-scan
    python benchmarks/reproduce_leaderboard.py RESULTS --leaderboards leaderboards --rtol 1e-12

Prints, per detector, the runs found in the leaderboard, the values compared
and how many are identical, then each differing value; exit status 1 when a
value differs beyond ``--rtol`` (default 0: bit for bit).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import defaultdict
from pathlib import Path

import polars as pl


def committed_values(leaderboards: Path) -> dict[tuple[str, str, str], float]:
    """(run key, signal, metric) -> value of every numeric entry of the committed leaderboards."""
    out: dict[tuple[str, str, str], float] = {}
    for path in sorted(leaderboards.glob("*/numbers.parquet")):
        table = pl.read_parquet(path).filter(pl.col("value").is_not_null())
        for key, signal, metric, value in table.select("run_key", "signal", "metric", "value").iter_rows():
            out[(key, signal, metric)] = float(value)
    return out


def stored_runs(results: Path):
    """(detector, run key, metrics) of every complete, successful run under ``results``."""
    for run_json in sorted(results.glob("*/*/*/run.json")):
        folder = run_json.parent
        try:
            run = json.loads(run_json.read_text())
            metrics = json.loads((folder / "metrics.json").read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if run.get("status") == "ok":
            yield folder.parent.name, folder.name, metrics


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="a results folder (hepad-bench run --output)")
    parser.add_argument("--leaderboards", type=Path, default=Path("leaderboards"), help="the committed leaderboards")
    parser.add_argument("--rtol", type=float, default=0.0, help="relative tolerance (default 0: bit for bit)")
    args = parser.parse_args(argv)
    committed = committed_values(args.leaderboards)
    keys = {key for key, _, _ in committed}
    per_detector: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])  # runs, values, identical
    differing = []
    for detector, key, metrics in stored_runs(args.results):
        if key not in keys:
            continue
        tally = per_detector[detector]
        tally[0] += 1
        for signal, values in metrics.items():
            for metric, value in values.items():
                ref = committed.get((key, signal, metric))
                if ref is None or not isinstance(value, (int, float)) or isinstance(value, bool):
                    continue
                tally[1] += 1
                if value == ref or (math.isnan(value) and math.isnan(ref)):
                    tally[2] += 1
                elif not math.isclose(value, ref, rel_tol=args.rtol, abs_tol=0.0):
                    differing.append((detector, key, signal, metric, value, ref))
                else:
                    tally[2] += 1
    if not per_detector:
        print(f"no run under {args.results} has a run key of the leaderboards in {args.leaderboards}")
        return 1
    print(f"{'detector':<16}{'runs':>6}{'values':>8}{'equal':>8}")
    for detector, (runs, values, same) in sorted(per_detector.items()):
        print(f"{detector:<16}{runs:>6}{values:>8}{same:>8}")
    for detector, key, signal, metric, value, ref in differing:
        print(f"differs: {detector} {key} {signal} {metric}: {value!r} here, {ref!r} committed")
    print(f"{len(differing)} value(s) differ" + (f" beyond rtol {args.rtol:g}" if args.rtol else " (bit for bit)"))
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
