"""Model cost of a fitted detector: parameters, multiply-accumulates and scoring latency per event.

The anomaly detectors of ADC2021 are meant for a first-level trigger, where
what a model costs per event matters as much as what it finds. A detector
reports its size and arithmetic through ``Detector.model_cost`` (the default,
:func:`torch_model_cost`, finds torch modules on its own); the runner adds the
latency it measured and stores the lot as ``run.json["cost"]``.

This module imports torch lazily, and only when a detector already did.
"""

from __future__ import annotations

import sys
import time
import types
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Single-event scoring calls timed for the batch-1 latency (after one warm-up call).
BATCH1_CALLS = 20


@dataclass(frozen=True)
class ModelCost:
    """What scoring one event costs in the model itself.

    parameters: fitted numbers the scoring model holds (torch: parameters of
        the modules that run when scoring; trees: nodes; histograms: bins), or
        None where not defined.
    macs_per_event: multiply-accumulates per event of the scoring pass
        (matrix products and convolutions; element-wise operations such as
        activations and the input standardisation are not counted), or None.
    comparisons_per_event: threshold comparisons per event, for tree models.
    note: what was counted, in words.
    """

    parameters: int | None
    macs_per_event: float | None
    comparisons_per_event: float | None = None
    note: str = ""


def _modules_in(obj: Any, depth: int = 3) -> Iterator[Any]:
    """torch modules held by ``obj`` directly or inside lists, dicts and plain objects (not inside modules)."""
    import torch

    seen: set[int] = set()

    def walk(value: Any, level: int) -> Iterator[Any]:
        if id(value) in seen or level < 0:
            return
        seen.add(id(value))
        if isinstance(value, torch.nn.Module):
            yield value
        elif isinstance(value, dict):
            for v in value.values():
                yield from walk(v, level - 1)
        elif isinstance(value, (list, tuple)):
            for v in value:
                yield from walk(v, level - 1)
        elif hasattr(value, "__dict__") and not isinstance(value, (type, types.ModuleType, np.ndarray, torch.Tensor)):
            for v in vars(value).values():
                yield from walk(v, level - 1)

    for value in vars(obj).values():
        yield from walk(value, depth)


def torch_model_cost(detector: Any, events: np.ndarray, mjj: np.ndarray | None) -> ModelCost | None:
    """Parameters and MACs of the torch modules ``detector.score`` runs on one event; None without torch.

    The detector scores ``events[:1]`` under torch's FlopCounterMode (MACs =
    counted FLOPs / 2), with forward hooks on every module found among its
    attributes and all their submodules: parameters are counted for the
    (sub)modules that ran, so a GAN's
    discriminator or a pre-training decoder, unused at scoring, is left out,
    and all k models of a k-fold ensemble are in.
    """
    if "torch" not in sys.modules:
        return None
    from torch.utils.flop_counter import FlopCounterMode

    modules = list(_modules_in(detector))
    if not modules:
        return None
    ran: list[Any] = []
    # hooks on every submodule: scoring may call parts (an encoder, a head) rather than the whole
    submodules = {id(sub): sub for m in modules for sub in m.modules()}.values()
    hooks = [sub.register_forward_hook(lambda mod, _in, _out: ran.append(mod)) for sub in submodules]
    try:
        counter = FlopCounterMode(display=False)
        with counter:
            detector.score(events[:1], mjj=None if mjj is None else mjj[:1])
    finally:
        for h in hooks:
            h.remove()
    params = {id(p): p.numel() for m in ran for p in m.parameters(recurse=False)}
    macs = counter.get_total_flops() / 2
    names = sorted({type(m).__name__ for m in ran if any(True for _ in m.parameters(recurse=False))})
    return ModelCost(
        parameters=sum(params.values()), macs_per_event=float(macs),
        note=f"parameters of the torch layers run when scoring ({', '.join(names)}); MACs of their matrix products",
    )


def batch1_latency_us(detector: Any, events: np.ndarray, mjj: np.ndarray | None, calls: int = BATCH1_CALLS) -> float | None:
    """Median wall time of scoring single events (microseconds), after one warm-up call."""
    n = min(calls, len(events))
    if n == 0:
        return None
    one = (lambda i: None) if mjj is None else (lambda i: mjj[i:i + 1])
    detector.score(events[:1], mjj=one(0))
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        detector.score(events[i:i + 1], mjj=one(i))
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1e6)


def measure_cost(detector: Any, events: np.ndarray, mjj: np.ndarray | None, background_seconds: float) -> dict[str, Any]:
    """``run.json["cost"]``: the detector's model cost plus measured latencies on ``events`` (the test background).

    ``latency_us_per_event`` is the wall time the runner measured for scoring
    the whole test background in one ``score`` call, divided by its event
    count (``latency_batch``): the throughput cost on the run's device.
    ``latency_us_batch1`` is the median of single-event calls, the latency
    one event would see alone (dominated by per-call overhead on a CPU).
    """
    n = len(events)
    out: dict[str, Any] = {
        "parameters": None, "macs_per_event": None, "comparisons_per_event": None,
        "latency_us_per_event": background_seconds / n * 1e6 if n else None, "latency_batch": n,
        "latency_us_batch1": None, "note": "",
    }
    try:
        cost = detector.model_cost(events, mjj)
        if cost is not None:
            out |= {"parameters": cost.parameters, "macs_per_event": cost.macs_per_event,
                    "comparisons_per_event": cost.comparisons_per_event, "note": cost.note}
        else:
            out["note"] = "the detector reports no model cost"
        out["latency_us_batch1"] = batch1_latency_us(detector, events, mjj)
    except Exception as exc:  # an optional measurement must not lose the run
        out["note"] = f"cost measurement raised {type(exc).__name__}: {exc}"
    return out
