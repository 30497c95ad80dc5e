"""Training throughput of the ``ae`` detector against a bare torch loop and PyOD's AutoEncoder.

Same data (random normal events), same network (n -> 32 -> 16 -> 3 -> 16 -> 32
-> n, LeakyReLU, linear bottleneck in ours and the bare loop; PyOD puts its
activation on the bottleneck too), same Adam step size, epochs and batch size:

  (a)  hepad-bench ``ae``: ``AEDetector.fit`` with patience 0, so every epoch runs,
       including its per-epoch validation pass over ``--val-fraction`` of the events;
  (b)  a bare hand-written loop: tensors built once, index-sliced shuffled minibatches,
       the same per-epoch validation pass, no early-stopping bookkeeping;
  (c)  ``pyod.models.auto_encoder.AutoEncoder`` (no batch norm, no dropout). Its ``fit``
       also scores the training set, so it is compared with (a) fit + scoring the
       training set.

Goal: a/b <= 1.10 (the harness adds no more than 10% to a hand-written loop).
Each time is reported as wall-clock seconds and as CPU seconds of this process
(``time.process_time``): on a shared, loaded machine the CPU time is the
steadier measure of the work done, the wall time what a user waits.

    python benchmarks/train_throughput.py --events 200000 --epochs 5 --threads 2
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch import nn

from hepad_bench import FitContext, TrainingData
from hepad_plugins.detectors.autoencoders import AEDetector

HIDDEN, LATENT, LR = (32, 16), 3, 1e-3


def make_data(events: int, features: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n_val = max(1, int(events * val_fraction))
    return (rng.normal(size=(events, features)).astype(np.float32),
            rng.normal(size=(n_val, features)).astype(np.float32))


class Clock:
    """Wall and CPU seconds since construction."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def read(self) -> tuple[float, float]:
        return time.perf_counter() - self.wall, time.process_time() - self.cpu


def run_detector(x: np.ndarray, x_val: np.ndarray, epochs: int, batch_size: int,
                 seed: int) -> tuple[tuple[float, float], tuple[float, float]]:
    # threads=0: keep the thread count the script set, the one (b) and (c) run with
    """(wall, cpu) seconds for (a) fit, and for fit + scoring the training set."""
    det = AEDetector(AEDetector.Config(hidden=HIDDEN, latent=LATENT, activation="leaky_relu", epochs=epochs,
                                       batch_size=batch_size, learning_rate=LR, patience=0, threads=0))
    train = TrainingData(features=[f"f{i}" for i in range(x.shape[1])], x=x, weight=np.ones(len(x)),
                         x_val=x_val, weight_val=np.ones(len(x_val)))
    clock = Clock()
    det.fit(train, FitContext(seed=seed))
    fit = clock.read()
    det.score(x)
    return fit, clock.read()


def bare_model(features: int) -> nn.Module:
    layers: list[nn.Module] = []
    sizes = [features, *HIDDEN, LATENT, *reversed(HIDDEN), features]
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2 and i != len(HIDDEN):  # linear bottleneck, as in the detector
            layers.append(nn.LeakyReLU())
    return nn.Sequential(*layers)


def run_bare(x: np.ndarray, x_val: np.ndarray, epochs: int, batch_size: int, seed: int) -> tuple[float, float]:
    """(b): the loop one would write by hand; (wall, cpu) seconds."""
    clock = Clock()
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    mean, std = x.mean(axis=0), x.std(axis=0)
    xt = (torch.from_numpy(x) - torch.from_numpy(mean)) / torch.from_numpy(std)
    xv = (torch.from_numpy(x_val) - torch.from_numpy(mean)) / torch.from_numpy(std)
    model = bare_model(x.shape[1])
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    n = xt.shape[0]
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(n, generator=gen)
        for start in range(0, n, batch_size):
            xb = xt[perm[start:start + batch_size]]
            loss = (model(xb) - xb).pow(2).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        model.eval()
        with torch.inference_mode():
            float(torch.cat([(model(v) - v).pow(2).mean(1) for v in xv.split(65536)]).mean())
    return clock.read()


def run_pyod(x: np.ndarray, epochs: int, batch_size: int, seed: int) -> tuple[float, float] | None:
    try:
        from pyod.models.auto_encoder import AutoEncoder
    except ImportError:
        return None
    model = AutoEncoder(hidden_neuron_list=[*HIDDEN, LATENT], hidden_activation_name="leaky_relu",
                        batch_norm=False, dropout_rate=0.0, epoch_num=epochs, batch_size=batch_size, lr=LR,
                        optimizer_params={"weight_decay": 0.0}, device="cpu", random_state=seed, verbose=0)
    clock = Clock()
    model.fit(x)
    return clock.read()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--features", type=int, default=57)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--val-fraction", type=float, default=0.1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="best of N for (a) and (b), run alternately")
    parser.add_argument("--no-pyod", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    x, x_val = make_data(args.events, args.features, args.val_fraction, args.seed)
    print(f"{args.events} events x {args.features} features, {len(x_val)} validation events, "
          f"{args.epochs} epochs, batch {args.batch_size}, {args.threads} torch threads, torch {torch.__version__}")

    # warm up torch's kernels and allocator once, so the first timed run pays no one-off costs
    run_detector(x[:2048], x_val[:256], 1, args.batch_size, args.seed)
    run_bare(x[:2048], x_val[:256], 1, args.batch_size, args.seed)
    a_fit, a_full, b = [], [], []
    for _ in range(args.repeats):  # alternate so that load on a shared machine hits both alike
        fit, full = run_detector(x, x_val, args.epochs, args.batch_size, args.seed)
        a_fit.append(fit)
        a_full.append(full)
        b.append(run_bare(x, x_val, args.epochs, args.batch_size, args.seed))
    # best of N, separately for wall and CPU time
    a = (min(t[0] for t in a_fit), min(t[1] for t in a_fit))
    a_score = (min(t[0] for t in a_full), min(t[1] for t in a_full))
    bb = (min(t[0] for t in b), min(t[1] for t in b))
    work = args.events * args.epochs

    def line(label: str, t: tuple[float, float], note: str = "") -> None:
        print(f"{label:32s} wall {t[0]:8.2f} s   cpu {t[1]:8.2f} s   ({work / t[0]:,.0f} events/s wall){note}")

    line("(a) hepad-bench ae fit", a)
    line("(b) bare torch loop", bb)
    print(f"a/b = {a[0] / bb[0]:.3f} wall, {a[1] / bb[1]:.3f} cpu   (goal <= 1.10)")
    c = None if args.no_pyod else run_pyod(x, args.epochs, args.batch_size, args.seed)
    if c is None:
        print("(c) pyod AutoEncoder: skipped")
        return
    line("(a') ae fit + score train set", a_score)
    line("(c) pyod AutoEncoder fit", c, "  (includes scoring the training set)")
    print(f"c/a' = {c[0] / a_score[0]:.2f} wall, {c[1] / a_score[1]:.2f} cpu")


if __name__ == "__main__":
    main()
