"""Where a CATHODE / LaCATHODE fit spends its time, and how many epochs early stopping lets each step run.

One fit on dijet-pythia through the public detector API (the data the
runner would hand it), timed per step: the sideband flow (epochs run, best
validation epoch), the flow samples for the SR template, and the k fold
classifiers (epochs run and best epoch of each). Prints the shares, so a
speed-up can aim at the step that costs.

    python benchmarks/cathode_profile.py                       # cathode, seed 1
    python benchmarks/cathode_profile.py --detector lacathode -p patience=5
"""

from __future__ import annotations

import argparse
import time

import torch

from hepad_bench.contracts import FitContext
from hepad_bench.params import build_config
from hepad_bench.plugins import load_registry
from hepad_bench.runner import Runner, RunSpec
from hepad_plugins.detectors import _torch, anode, weak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detector", default="cathode", choices=["cathode", "lacathode"])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("-p", "--param", action="append", default=[], help="name=value hyperparameter")
    parser.add_argument("-o", "--option", action="append", default=[], help="dataset option name=value")
    args = parser.parse_args()
    torch.set_num_threads(1)
    registry = load_registry()
    runner = Runner(registry, "/tmp/unused-cathode-profile")
    spec = RunSpec("dijet-pythia", args.detector, seed=args.seed,
                   dataset_options=tuple(tuple(o.split("=", 1)) for o in args.option))
    bench = runner.benchmark(spec)
    cls = registry.detector(args.detector)
    det = cls(build_config(cls.Config, args.param, args.detector))
    data = runner._training_data(bench, cls.kind, None)

    steps: list[tuple[str, float, object]] = []
    original_train = _torch.train_minibatches

    def timed_train(*a, description: str = "training", **k):  # noqa: ANN002, ANN003
        t0 = time.perf_counter()
        history = original_train(*a, description=description, **k)
        steps.append((description, time.perf_counter() - t0, history))
        return history

    # the detectors call train_minibatches through their modules' own names for it
    for module in (weak, anode):
        module.train_minibatches = timed_train

    t0 = time.perf_counter()
    det.fit(data, FitContext(seed=args.seed, device="cpu"))
    total = time.perf_counter() - t0
    trained = sum(s for _, s, _ in steps)
    print(f"{args.detector} seed {args.seed}: fit {total:.1f} s")
    for what, seconds, history in steps:
        epochs = len(history.train_loss)
        print(f"  {what:40s} {seconds:7.1f} s ({100 * seconds / total:4.1f} %)  epochs run {epochs:3d}, "
              f"best {history.best_epoch}, {seconds / max(epochs, 1):.2f} s/epoch")
    print(f"  {'rest (sampling, KDE, preprocessing)':40s} {total - trained:7.1f} s ({100 * (total - trained) / total:4.1f} %)")
    t0 = time.perf_counter()
    template = det.background_template() if hasattr(det, "background_template") else None
    if template is not None:
        print(f"  background_template: {time.perf_counter() - t0:.1f} s for {len(template[0])} rows")


if __name__ == "__main__":
    main()
