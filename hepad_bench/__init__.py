"""hepad-bench: a plugin-based benchmark harness for anomaly detection in particle physics.

The public names below are imported on first use (PEP 562), so that
``import hepad_bench`` (and the CLI's ``--help`` and ``list``) do not pay for
numpy and polars; ``from hepad_bench import Detector, hookimpl`` works as before.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: public name -> module that defines it
_EXPORTS = {
    "ComparativeMetric": "contracts", "Dataset": "contracts", "Detector": "contracts", "EmptyConfig": "contracts",
    "FitContext": "contracts", "Metric": "contracts", "Progress": "contracts", "RemoteFile": "contracts",
    "ModelCost": "cost",
    "Benchmark": "data", "ScoredSample": "data", "ScoredSignal": "data", "TrainingData": "data", "Unavailable": "data",
    "DataError": "errors", "UserError": "errors",
    "hookimpl": "hookspecs",
}

__all__ = [*sorted(_EXPORTS), "__version__"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"hepad_bench.{_EXPORTS[name]}"), name)
        globals()[name] = value  # once
        return value
    if not name.startswith("_"):  # a submodule, as ``import hepad_bench`` used to leave them loaded
        try:
            return importlib.import_module(f"hepad_bench.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"hepad_bench.{name}":
                raise
    raise AttributeError(f"module 'hepad_bench' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


if TYPE_CHECKING:  # for type checkers and IDEs: the names as if imported eagerly
    from hepad_bench.contracts import (
        ComparativeMetric, Dataset, Detector, EmptyConfig, FitContext, Metric, Progress, RemoteFile,
    )
    from hepad_bench.cost import ModelCost
    from hepad_bench.data import Benchmark, ScoredSample, ScoredSignal, TrainingData, Unavailable
    from hepad_bench.errors import DataError, UserError
    from hepad_bench.hookspecs import hookimpl
