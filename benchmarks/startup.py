"""Start-up cost of the CLI: wall time and peak RSS of ``--help``, ``list``, ``leaderboard`` next to ``import torch``.

Each command runs in a fresh child of a small wrapper process, so the wrapper's
``getrusage(RUSAGE_CHILDREN)`` is that command's own: peak resident memory
(the largest over ``--repeat`` runs) and CPU time (user + system, median),
which barely depends on how busy a shared machine is. Wall time: the median
and the best run (the closest to an idle machine). One ``list`` runs first,
with an empty plugin metadata cache: the cost a user pays once per install
or source edit (printed apart).

    python benchmarks/startup.py                                     # this checkout's hepad-bench
    python benchmarks/startup.py --venv /work/main/.venv             # another install, e.g. main (before)

The leaderboard runs on a tiny results folder (one ``iforest`` run of
``l1-pythia`` capped at 2000 events) made by the measured install on first use.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

WRAPPER = """
import resource, subprocess, sys, time
t0 = time.perf_counter()
code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
wall = time.perf_counter() - t0
use = resource.getrusage(resource.RUSAGE_CHILDREN)
print(wall, use.ru_utime + use.ru_stime, use.ru_maxrss / 1024, code)
"""


def measure(argv: list[str], env: dict[str, str]) -> tuple[float, float, float, int]:
    """(wall seconds, CPU seconds, peak RSS MiB, exit code) of one run of ``argv`` in a fresh process."""
    line = subprocess.run([sys.executable, "-c", WRAPPER, *argv], env=env, capture_output=True, text=True,
                          check=True).stdout.split()
    return float(line[0]), float(line[1]), float(line[2]), int(line[3])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--venv", type=Path, default=Path(sys.prefix), help="virtual environment with hepad-bench")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "hepad-startup-bench",
                    help="folder for the tiny results, the leaderboard output and the metadata cache")
    args = ap.parse_args()
    python, cli = args.venv / "bin" / "python", args.venv / "bin" / "hepad-bench"
    work = args.work / args.venv.resolve().as_posix().strip("/").replace("/", "_")
    results, boards = work / "results", work / "boards"
    env = {**os.environ, "HEPAD_BENCH_CACHE": str(work / "cache"), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    if not any(results.glob("*/*/*/run.json")):
        subprocess.run([str(cli), "run", "-d", "iforest", "--max-events", "2000", "--quiet", "--device", "cpu",
                        "--output", str(results)], env=env, check=True, stdout=subprocess.DEVNULL)
    shutil.rmtree(work / "cache" / "plugins", ignore_errors=True)  # the first command below rebuilds it

    commands = {
        "import torch": [str(python), "-c", "import torch"],
        "hepad-bench --help": [str(cli), "--help"],
        "hepad-bench list": [str(cli), "list"],
        "hepad-bench leaderboard": [str(cli), "leaderboard", str(results), "--output", str(boards)],
    }
    first = measure(commands["hepad-bench list"], env)  # a cold metadata cache: every plugin is imported
    print(f"hepad-bench at {cli}; load average {os.getloadavg()[0]:.1f}; median of {args.repeat} runs")
    print(f"first 'list' after an install or a source edit (metadata cache rebuilt): {first[0]:.2f} s wall, "
          f"{first[1]:.2f} s CPU, {first[2]:.0f} MiB")
    print(f"{'command':<26}{'wall s':>8}{'best':>7}{'CPU s':>7}{'peak MiB':>10}"
          f"{'wall / torch':>14}{'CPU / torch':>13}{'RSS / torch':>13}")
    rows = {}
    for name, argv in commands.items():
        runs = [measure(argv, env) for _ in range(args.repeat)]
        if any(run[3] != 0 for run in runs):
            sys.exit(f"{name} failed (exit {runs[0][3]})")
        rows[name] = (statistics.median(r[0] for r in runs), min(r[0] for r in runs),
                      statistics.median(r[1] for r in runs), max(r[2] for r in runs))
    torch_wall, _, torch_cpu, torch_rss = rows["import torch"]
    for name, (wall, best, cpu, rss) in rows.items():
        print(f"{name:<26}{wall:>8.2f}{best:>7.2f}{cpu:>7.2f}{rss:>10.0f}{wall / torch_wall:>14.2f}"
              f"{cpu / torch_cpu:>13.2f}{rss / torch_rss:>13.2f}")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
