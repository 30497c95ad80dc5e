"""Does a resonant detector's score know mjj on background? Distance correlation in the sidebands and the SR.

Reads stored runs (``hepad-bench run ... --output RESULTS``) and prints, per
detector and seed, the distance correlation (dcor) of the score with mjj on
the *background* events (label 0) of the ``hunt`` sample, which spans the
full mjj range: over the sidebands, over the signal region, and over both.
0 means the score carries no information about the mass, so cutting on it
cannot sculpt a bump; LaCATHODE is built for this, CATHODE and CWoLa are not.
The sideband and SR values are computed within each region: a score that
is flat inside each region but jumps between them shows up only in "all".

Usage:

    hepad-bench run --dataset dijet-pythia -d cathode -d lacathode -d cwola --seed 1 --output /tmp/r
    python benchmarks/mass_sculpting.py /tmp/r
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from hepad_bench.store import iter_runs

MAX_EVENTS = 5000  # dcor is O(n^2) in memory: a fixed random subset per region


def dcorr(score: np.ndarray, mjj: np.ndarray, rng: np.random.Generator) -> float:
    import dcor  # compiles numba kernels on import

    if len(score) < 20:
        return float("nan")
    pick = rng.choice(len(score), size=min(len(score), MAX_EVENTS), replace=False)
    return float(dcor.distance_correlation(score[pick].astype(np.float64), mjj[pick].astype(np.float64)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="results folder of hepad-bench run")
    args = parser.parse_args(argv)
    lines = []
    for stored in iter_runs(args.results):
        if not stored.ok or stored.run.get("task") != "resonant":
            continue
        scores = stored.scores()
        hunt = scores.filter((scores["sample"] == "hunt") & (scores["label"] == 0))
        if hunt.height == 0:
            continue
        low, high = stored.run["dataset_meta"]["signal_region"]
        mjj, score = hunt["mjj"].to_numpy(), hunt["score"].to_numpy()
        # one model per signal for supervised detectors: take the first
        if hunt["model"].n_unique() > 1:
            first = hunt["model"].unique().sort()[0]
            keep = (hunt["model"] == first).to_numpy()
            mjj, score = mjj[keep], score[keep]
        sr = (mjj >= low) & (mjj < high)
        rng = np.random.default_rng(0)
        lines.append((stored.run["detector"]["name"], stored.run["seed"], dcorr(score[~sr], mjj[~sr], rng),
                      dcorr(score[sr], mjj[sr], rng), dcorr(score, mjj, rng), int((~sr).sum()), int(sr.sum())))
    if not lines:
        print("no resonant runs with a scored hunt sample under", args.results, file=sys.stderr)
        return 1
    print(f"{'detector':16s} {'seed':>4s} {'dcorr SB':>9s} {'dcorr SR':>9s} {'dcorr all':>9s}  background events SB / SR")
    for det, seed, sb, sr, both, n_sb, n_sr in sorted(lines):
        print(f"{det:16s} {seed:4d} {sb:9.3f} {sr:9.3f} {both:9.3f}  {n_sb} / {n_sr}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
