"""Fit and score time of the torch detectors with ``threads=1`` (the default) vs all CPU cores, side by side.

Small dense networks gain little from intra-op threads, and on a shared machine every operation waits
for the slowest thread. Short schedules (the per-epoch cost is what matters):

    python benchmarks/threads.py                      # deepsvdd, ae, supervised-dnn on l1-pythia
    python benchmarks/threads.py -d deepsvdd -d gan-ae
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from hepad_bench import FitContext
from hepad_bench.plugins import load_registry
from hepad_bench.runner import Runner, RunSpec

SHORT = {"deepsvdd": {"epochs": 3, "pretrain_epochs": 2}, "ae": {"epochs": 3}, "vae": {"epochs": 3},
         "supervised-dnn": {"epochs": 3}, "gan-ae": {"cycles": 1, "pretrain_epochs": 1}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-d", "--detector", action="append")
    args = ap.parse_args()
    names = args.detector or ["deepsvdd", "ae", "supervised-dnn"]
    reg = load_registry(warn=lambda _m: None)
    runner = Runner(reg, output="/tmp/unused")
    bench = runner.benchmark(RunSpec(dataset="l1-pythia", detector=names[0]))
    cores = os.cpu_count() or 1
    print(f"cores: {cores}; load average: {os.getloadavg()[0]:.1f}")
    print(f"{'detector':<16}{'threads=1 fit+score s':>24}{f'threads={cores} fit+score s':>26}{'ratio':>8}")
    for name in names:
        cls = reg.detector(name)
        signal = sorted(bench.signal_train)[0] if cls.kind == "supervised" else None
        train = runner._training_data(bench, cls.kind, signal)
        seconds = []
        for threads in (1, cores):
            det = cls(cls.Config(threads=threads, **SHORT.get(name, {})))
            torch.set_num_threads(1)
            t0 = time.perf_counter()
            det.fit(train, FitContext(seed=1))
            det.score(bench.features_of(bench.test))
            seconds.append(time.perf_counter() - t0)
        print(f"{name:<16}{seconds[0]:>24.2f}{seconds[1]:>26.2f}{seconds[1] / seconds[0]:>8.2f}")


if __name__ == "__main__":
    main()
