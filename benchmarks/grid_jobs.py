"""Wall time of a grid of small runs with ``--jobs 1`` (in this process) and ``--jobs N`` (worker processes), side by side.

The grid is iforest, hbos and ae on the embedded l1-pythia, several seeds, each configuration run by
the real CLI (``hepad-bench run``) in a fresh process, into a fresh results folder, with the dataset cache
warmed first (so neither side pays the one-off conversion). The whole command is timed, start-up
included: that is what a user waits for. The goal on 2 cores is a ratio >= 1.7.

    python benchmarks/grid_jobs.py                    # 3 detectors x 6 seeds, --jobs 1 vs --jobs 2
    python benchmarks/grid_jobs.py --seeds 8 --jobs 2 --max-events 20000
    python benchmarks/grid_jobs.py --executor dask    # the N side on a Dask LocalCluster instead

The machine's load average is printed before and after: on a shared machine other processes take
cores from the parallel side first, so read the ratio next to it (with Linux's autogroup scheduling a busy
machine gives this session about the same CPU share however many workers it starts: the wall ratio then
drops towards the CPU ratio, which shows the parallel side's own overhead: worker start-up, each
worker's own imports and torch start-up).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DETECTORS = ["iforest", "hbos", "ae"]


def children_cpu() -> float:
    """CPU seconds of this script's finished child processes (their workers included)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def hepad_bench(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of ``hepad-bench ARGS`` (it must succeed)."""
    started, cpu = time.perf_counter(), children_cpu()
    script = Path(sys.executable).parent / "hepad-bench"  # the console script, as users start it
    command = [str(script)] if script.exists() else [sys.executable, "-m", "hepad_bench.cli"]
    done = subprocess.run([*command, *args], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"hepad-bench {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return seconds, children_cpu() - cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=2, help="workers of the parallel side (default 2)")
    ap.add_argument("--seeds", type=int, default=6, help="seeds per detector (default 6)")
    ap.add_argument("--max-events", type=int, default=None, help="cap every split (default: the whole sample)")
    ap.add_argument("--ae-epochs", type=int, default=None, help="ae epochs per run (default: the detector's own)")
    ap.add_argument("--executor", default="local", choices=["local", "dask"])
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="grid-jobs-"))
    env = {**os.environ, "HEPAD_BENCH_CACHE": str(work / "cache")}
    grid = ["run", "--dataset", "l1-pythia", *[a for d in DETECTORS for a in ("-d", d)],
            *[a for s in range(1, args.seeds + 1) for a in ("--seed", str(s))],
            "--device", "cpu", "--quiet"]
    if args.ae_epochs:
        grid += ["-p", f"ae.epochs={args.ae_epochs}"]
    if args.max_events:
        grid += ["--max-events", str(args.max_events)]
    try:
        hepad_bench([*grid[:3], "-d", "iforest", "--max-events", "100", "--device", "cpu", "--quiet",
                     "--output", str(work / "warm")], env)  # converts the dataset into the cache once
        load_before = os.getloadavg()
        serial = hepad_bench([*grid, "--output", str(work / "jobs1")], env)
        parallel = hepad_bench([*grid, "--output", str(work / f"jobs{args.jobs}"), "--jobs", str(args.jobs),
                                "--executor", args.executor], env)
        load_after = os.getloadavg()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    runs = len(DETECTORS) * args.seeds
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"grid: {runs} runs ({', '.join(DETECTORS)} x {args.seeds} seeds, ae epochs {args.ae_epochs or 'default'}, "
          f"max-events {args.max_events or 'all'}) on l1-pythia; {cores} cores; executor {args.executor}")
    print(f"load average (1 min) before {load_before[0]:.2f}, after {load_after[0]:.2f}")
    print(f"{'':<10}{'--jobs 1':>10}{f'--jobs {args.jobs}':>10}{'ratio':>8}")
    print(f"{'wall s':<10}{serial[0]:>10.1f}{parallel[0]:>10.1f}{serial[0] / parallel[0]:>8.2f}")
    print(f"{'CPU s':<10}{serial[1]:>10.1f}{parallel[1]:>10.1f}{serial[1] / parallel[1]:>8.2f}  "
          "(all processes; the parallel side also starts its workers)")


if __name__ == "__main__":
    main()
