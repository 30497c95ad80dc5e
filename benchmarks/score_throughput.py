"""Scoring rate of the ``ae`` detector against a bare torch forward pass of the same network, one thread.

Both score the same random events (57 features, float32, in the column-major
layout ``Benchmark.features_of`` hands a detector when it reads the dataset
cache) with the same fitted weights, in the same process, one after the other:

  (a)  ``AEDetector.score``: what a run does, from the raw events (standardised batch
       by batch, per-event MSE in float64, scores returned as a float64 array);
  (b)  a bare loop: the events already standardised in one C-ordered float32 tensor,
       ``model(z)`` and the float32 per-event MSE in batches under ``inference_mode``,
       nothing kept.

Events/s per core = events / CPU seconds of this process (``time.process_time``,
steady on a shared machine); the wall-clock rate is printed too. The best of
``--repeats`` passes counts for each. Goal (issue 11): (a) >= 2 M events/s per
core, within reach of (b).

    OMP_NUM_THREADS=1 python benchmarks/score_throughput.py --events 1600000
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from hepad_bench import FitContext, TrainingData
from hepad_plugins.detectors import _torch
from hepad_plugins.detectors.autoencoders import AEDetector

#: The ae's scoring batch (absent before issue 11, when it scored 65536 events at a time: run this
#: script with an older checkout's interpreter to compare).
ROW_BATCH = getattr(_torch, "ROW_BATCH", 65536)


def best_rate(fn, events: int, repeats: int) -> tuple[float, float]:
    """(events per CPU second, events per wall second), best of ``repeats`` calls of ``fn``."""
    cpu, wall = [], []
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    return events / min(cpu), events / min(wall)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_600_000, help="events scored (default: the 1.6 M test "
                                                                       "background of a 4 M-event ADC2021 file)")
    parser.add_argument("--features", type=int, default=57)
    parser.add_argument("--batch", type=int, default=ROW_BATCH, help="batch of the bare loop (default: the ae's)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)

    rng = np.random.default_rng(0)
    train = rng.normal(size=(20_000, args.features)).astype(np.float32)
    det = AEDetector(AEDetector.Config(epochs=1, threads=1))
    det.fit(TrainingData(features=[f"f{i}" for i in range(args.features)], x=train, weight=np.ones(len(train)),
                         x_val=train[:2000], weight_val=np.ones(2000)), FitContext(seed=1))
    x = np.asfortranarray(rng.normal(size=(args.events, args.features)).astype(np.float32))
    x.flags.writeable = False  # as the cached table's view is

    ae_cpu, ae_wall = best_rate(lambda: det.score(x), args.events, args.repeats)

    with torch.inference_mode():
        z_all = ((torch.from_numpy(np.ascontiguousarray(x)) - det._mean_t) / det._scale_t).contiguous()
    model = det.model

    def bare() -> None:
        with torch.inference_mode():
            for i in range(0, args.events, args.batch):
                z = z_all[i:i + args.batch]
                (z - model(z)).pow(2).mean(dim=1)

    bare_cpu, bare_wall = best_rate(bare, args.events, args.repeats)
    print(f"{args.events} events, {args.features} features, 1 thread, best of {args.repeats}; "
          f"ae batch {ROW_BATCH}, bare batch {args.batch}")
    print(f"{'':<34}{'M events/CPU s':>16}{'M events/wall s':>17}")
    print(f"{'(a) ae score (from raw events)':<34}{ae_cpu / 1e6:>16.2f}{ae_wall / 1e6:>17.2f}")
    print(f"{'(b) bare forward + float32 MSE':<34}{bare_cpu / 1e6:>16.2f}{bare_wall / 1e6:>17.2f}")
    print(f"ratio a/b (CPU): {ae_cpu / bare_cpu:.2f}")


if __name__ == "__main__":
    main()
