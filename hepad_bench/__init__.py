"""hepad-bench: a plugin-based benchmark harness for anomaly detection in particle physics.

The plugin contract is what this package exports (``Dataset``, ``Detector``,
``Metric``, ``Benchmark``, ``hookimpl``, ...) plus :mod:`hepad_bench.dataset_tools`,
the public helpers a dataset plugin needs (cache, ``--data-dir`` lookup,
downloads, splits).
"""

__version__ = "0.1.0"

from hepad_bench.contracts import (  # noqa: E402
    ComparativeMetric,
    Dataset,
    Detector,
    EmptyConfig,
    FitContext,
    Metric,
    Progress,
    RemoteFile,
)
from hepad_bench.cost import ModelCost  # noqa: E402
from hepad_bench.data import (  # noqa: E402
    Benchmark,
    ScoredSample,
    ScoredSignal,
    TrainingData,
    Unavailable,
)
from hepad_bench.errors import DataError, UserError  # noqa: E402
from hepad_bench.hookspecs import hookimpl  # noqa: E402

__all__ = [
    "Benchmark", "ComparativeMetric", "DataError", "Dataset", "Detector", "EmptyConfig", "FitContext",
    "Metric", "ModelCost", "Progress", "RemoteFile", "ScoredSample", "ScoredSignal", "TrainingData", "Unavailable", "UserError",
    "__version__", "hookimpl",
]
