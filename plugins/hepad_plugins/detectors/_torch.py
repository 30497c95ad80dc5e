"""Shared torch machinery of the first-party detectors.

Conventions (DESIGN.md): tensors go to the device once, minibatches are
index slices of a per-epoch permutation drawn from a generator seeded by the
run seed, early stopping watches the validation loss and restores the best
weights, scoring runs in large batches under ``torch.inference_mode()``.
"""

from __future__ import annotations

import copy
import functools
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from hepad_bench import FitContext

SCORE_BATCH = 65536
#: Events per batch when scoring straight from a table (the autoencoders): small enough that a
#: batch's activations stay in the CPU's caches, large enough that torch's per-call overhead does
#: not count (benchmarks/score_throughput.py).
ROW_BATCH = 2048
#: The smallest batch :func:`batch_bounds` cuts: below about a dozen rows the BLAS kernels change and
#: a layer's output for an event differs in the last bits from the same event in a large batch.
MIN_BATCH = 32


def seed_torch(seed: int) -> torch.Generator:
    """Seed torch's global state (weight init) and return a CPU generator for shuffling."""
    torch.manual_seed(seed)
    gen = torch.Generator()
    gen.manual_seed(seed)
    return gen


@contextmanager
def cpu_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` torch intra-op CPU threads (``n <= 0``: leave the setting alone), then restore it.

    Small dense networks gain nothing from several threads and lose a great
    deal when the cores are shared: every operation waits for all threads
    (measured on a loaded 2-core machine: one AE epoch 20x slower with 2
    threads than with 1).
    """
    previous = torch.get_num_threads()
    if n <= 0 or n == previous:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def with_threads(method: Callable) -> Callable:
    """Decorate a detector's ``fit``/``score`` to run with ``self.config.threads`` CPU threads (see :func:`cpu_threads`)."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with cpu_threads(self.config.threads):
            return method(self, *args, **kwargs)

    return wrapper


def device_of(ctx: FitContext) -> torch.device:
    return torch.device(ctx.device)


def tensor(x: np.ndarray | None, device: torch.device, dtype: torch.dtype = torch.float32) -> torch.Tensor | None:
    """``x`` as a C-ordered tensor on ``device``, never sharing memory with a read-only array
    (a zero-copy view of the dataset's table: an in-place op must not write into it)."""
    if x is None:
        return None
    arr = np.ascontiguousarray(x)
    if not arr.flags.writeable:
        arr = arr.copy()
    return torch.as_tensor(arr, dtype=dtype).to(device)


def rows_tensor(x: np.ndarray, device: torch.device) -> torch.Tensor:
    """A float32 tensor over the rows of ``x`` without copying them on the CPU (read-only views allowed).

    For training on index slices straight from the dataset's table: ``rows_tensor(x)[idx]``
    gathers a C-ordered batch. The caller must not write into the result.
    """
    arr = np.asarray(x, dtype=np.float32)
    if device.type == "cpu":
        with warnings.catch_warnings():  # torch warns on read-only arrays; nothing here writes to it
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            return torch.as_tensor(arr)
    return tensor(arr, device)


class ScaledInputs:
    """A scikit-learn scaler fitted on the training features; maps arrays to float32 tensors on the fit device."""

    def __init__(self, scaler, x: np.ndarray, device: torch.device):
        self.scaler = scaler.fit(x)
        self.device = device

    def __call__(self, x: np.ndarray) -> torch.Tensor:
        return tensor(self.scaler.transform(x).astype(np.float32), self.device)


def mlp(sizes: Sequence[int], activation: type[nn.Module] = nn.ReLU, dropout: float = 0.0,
        bias: bool = True, final_activation: nn.Module | None = None) -> nn.Sequential:
    """Dense layers ``sizes[0] -> ... -> sizes[-1]`` with ``activation`` between them."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b, bias=bias))
        if i < len(sizes) - 2:
            layers.append(activation())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
    if final_activation is not None:
        layers.append(final_activation)
    return nn.Sequential(*layers)


@dataclass
class History:
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    best_epoch: int = -1
    stopped_early: bool = False


def train_minibatches(
    modules: Sequence[nn.Module],
    optimizer: torch.optim.Optimizer,
    batch_loss: Callable[[torch.Tensor], torch.Tensor],
    n_train: int,
    *,
    val_loss: Callable[[], float] | None,
    epochs: int,
    batch_size: int,
    patience: int,
    generator: torch.Generator,
    device: torch.device,
    ctx: FitContext,
    description: str = "training",
) -> History:
    """Minimise ``batch_loss(indices)`` over shuffled index slices.

    ``val_loss()`` is evaluated after each epoch (under inference mode by the
    caller's choice of function); the best weights of ``modules`` are kept and
    restored at the end. ``patience`` epochs without improvement stop early
    (0 disables early stopping).
    """
    history = History()
    best, best_state, since_best = float("inf"), None, 0
    with ctx.progress.task(description, total=epochs) as advance:
        for epoch in range(epochs):
            for m in modules:
                m.train()
            perm = torch.randperm(n_train, generator=generator).to(device)
            total, batches = torch.zeros((), device=device), 0
            for start in range(0, n_train, batch_size):
                idx = perm[start:start + batch_size]
                loss = batch_loss(idx)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += loss.detach()
                batches += 1
            history.train_loss.append(float(total) / max(batches, 1))
            advance(1)
            if val_loss is None:
                continue
            for m in modules:
                m.eval()
            current = float(val_loss())
            history.val_loss.append(current)
            if current < best - 1e-7:
                best, since_best, history.best_epoch = current, 0, epoch
                best_state = [copy.deepcopy(m.state_dict()) for m in modules]
            else:
                since_best += 1
                if patience and since_best >= patience:
                    history.stopped_early = True
                    break
    if best_state is not None:
        for m, state in zip(modules, best_state):
            m.load_state_dict(state)
    for m in modules:
        m.eval()
    return history


def batch_bounds(n: int, batch_size: int, min_batch: int = MIN_BATCH) -> list[tuple[int, int]]:
    """(start, stop) of consecutive batches of ``batch_size`` over ``n`` rows; a last batch shorter than
    ``min_batch`` is joined to the one before it, so no batch is tiny unless ``n`` is."""
    bounds = [(a, min(a + batch_size, n)) for a in range(0, n, batch_size)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] < min_batch:
        bounds[-2:] = [(bounds[-2][0], n)]
    return bounds


def batched(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, batch_size: int = SCORE_BATCH) -> torch.Tensor:
    """``fn`` over ``x`` in slices, concatenated (call it under inference mode)."""
    return torch.cat([fn(x[i:i + batch_size]) for i in range(0, x.shape[0], batch_size)]) if x.shape[0] else fn(x)


def weighted_mean(values: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    if weights is None:
        return values.mean()
    return (values * weights).sum() / weights.sum().clamp_min(1e-12)


def to_numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.float64).numpy()
