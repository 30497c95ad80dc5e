"""The data model shared by datasets, detectors and metrics.

A dataset plugin returns a :class:`Benchmark`: polars tables of float32 feature
columns plus bookkeeping columns (``weight``, ``process`` and, for resonant
tasks, the resonant observable, ``mjj`` by convention). The runner turns it into
numpy arrays for detectors (:class:`TrainingData`) and, after scoring, into
:class:`ScoredSignal` objects for metrics.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import polars as pl

Task = Literal["unsupervised", "resonant"]
TASKS: tuple[str, ...] = ("unsupervised", "resonant")

#: Columns every table carries besides the features.
WEIGHT, PROCESS, LABEL = "weight", "process", "label"


@dataclass
class Benchmark:
    """Everything one run needs from a dataset.

    Table schema (every table): one column per name in ``features``, float32
    (the runner hands exactly these columns to detectors, in this order);
    ``weight`` (float64 per-event weight, 1.0 where events are unweighted);
    ``process`` (string: which process an event comes from, e.g. the
    background process or the signal name); ``label`` (int, 0 background,
    1 signal: truth that only metrics and checks read, never a detector;
    needed wherever a table mixes the two); for ``resonant`` tasks the
    resonant observable named by ``resonant`` (``mjj`` by convention, float).
    Other columns are carried along and ignored.

    ``train`` / ``validation``: what an unsupervised or weakly supervised
    detector may see (``validation`` for early stopping and model selection;
    a dataset without one of its own splits one off its training data or
    returns an empty table with ``train``'s columns). For ``unsupervised``
    tasks this is background only, unless the dataset declares
    ``contaminated_training`` (ADBench's unsupervised protocol: unlabelled
    signal in the training data, with its truth ``label`` and
    ``train_contamination`` set). For ``resonant`` tasks it is "data":
    background plus injected signal over the full ``resonant`` range (signal
    region and sidebands), with the truth ``label``.

    ``test``: held-out background (for resonant tasks: in the signal region).
    ``signals``: held-out signal per name (resonant: in the signal region).
    ``signal_train``: a separate labelled signal split per name, only for
    supervised reference detectors.
    ``extra``: further named tables: for resonant tasks ``background_model``
    (independent signal-region background, the idealised classifier's
    reference) and ``hunt`` (held-out data over the full mass range, with
    truth ``label``, on which bump hunts run).
    """

    dataset: str
    version: str
    task: Task
    features: list[str]
    train: pl.DataFrame
    validation: pl.DataFrame
    test: pl.DataFrame
    signals: dict[str, pl.DataFrame]
    signal_train: dict[str, pl.DataFrame] = field(default_factory=dict)
    extra: dict[str, pl.DataFrame] = field(default_factory=dict)
    resonant: str | None = None
    #: Free-form facts recorded in run.json (options, split sizes, signal
    #: region, normalisation for limits, ...). Must be JSON-serialisable.
    meta: dict[str, Any] = field(default_factory=dict)
    #: Content hash of the data this benchmark was built from (set by the cache
    #: when it converts; the runner hashes the tables when a dataset leaves it
    #: None). Part of every run key, so other input files mean other runs.
    fingerprint: str | None = None
    #: Fraction of signal among the training + validation events of an unsupervised dataset that
    #: declares ``contaminated_training`` (None: background only, or unknown). Recorded in run.json.
    train_contamination: float | None = None

    def tables(self) -> dict[str, pl.DataFrame]:
        """Every table under a unique name (for caching and event counts)."""
        out = {"train": self.train, "validation": self.validation, "test": self.test}
        out |= {f"signal/{k}": v for k, v in self.signals.items()}
        out |= {f"signal_train/{k}": v for k, v in self.signal_train.items()}
        out |= {f"extra/{k}": v for k, v in self.extra.items()}
        return out

    def event_counts(self) -> dict[str, int]:
        return {k: v.height for k, v in self.tables().items()}

    def release(self, *names: str) -> None:
        """Let go of tables that can be read back on demand (``train``, ``validation``, ``test``; all when
        no name is given). A no-op for a benchmark built in memory; one read from the dataset cache
        (:class:`hepad_bench.cache.CachedBenchmark`) drops them and reads them again on the next access,
        so that a run holds its training splits while it fits and its test split while it scores, never
        the whole table (issue 11)."""

    def capped(self, max_events: int | None) -> Benchmark:
        """A copy with every table cut to its first ``max_events`` rows."""
        if max_events is None:
            return self

        def cap(d: dict[str, pl.DataFrame]) -> dict[str, pl.DataFrame]:
            return {k: v.head(max_events) for k, v in d.items()}

        return Benchmark(
            dataset=self.dataset, version=self.version, task=self.task,
            features=list(self.features), train=self.train.head(max_events),
            validation=self.validation.head(max_events), test=self.test.head(max_events),
            signals=cap(self.signals), signal_train=cap(self.signal_train),
            extra=cap(self.extra), resonant=self.resonant,
            meta=self.meta | {"max_events": max_events}, fingerprint=self.fingerprint,
            train_contamination=self.train_contamination,
        )

    def features_of(self, table: pl.DataFrame) -> np.ndarray:
        """The feature matrix (float32, (n, d)) of one of this benchmark's tables.

        Where the table's feature columns lie side by side in one column-major block (every table
        read from the dataset cache, see :func:`hepad_bench.cache.read_parquet_block`) this is a
        zero-copy view of the table in Fortran order: the full feature table is never copied for a
        detector; numpy marks it read-only. Otherwise (a table built in memory, a ``--max-events``
        slice) it is a copy. Detectors must not write into it; per-batch copies are theirs.
        """
        x = table.select(self.features).to_numpy()
        return x if x.dtype == np.float32 else x.astype(np.float32)


def column_or_none(table: pl.DataFrame, name: str | None) -> np.ndarray | None:
    if name is None or name not in table.columns:
        return None
    return np.asarray(table[name].to_numpy(), dtype=np.float64)  # no copy when already float64


def weights_of(table: pl.DataFrame) -> np.ndarray:
    if WEIGHT in table.columns:
        return np.asarray(table[WEIGHT].to_numpy(), dtype=np.float64)  # a view of a float64 column, else a copy
    return np.ones(table.height)


@dataclass
class TrainingData:
    """What ``Detector.fit`` receives: numpy arrays, already on the host.

    ``x`` / ``x_val`` are float32 (n, d). ``y`` / ``y_val`` are class labels
    only for supervised detectors (1 = signal, 0 = background), else None.
    ``mjj`` / ``mjj_val``: the resonant observable where the task has one.
    ``extra``: feature matrices of further tables a detector kind is entitled
    to (``background_model`` and its ``background_model_mjj`` for resonant
    tasks). ``meta`` is the benchmark's meta (signal region, ...).
    """

    features: list[str]
    x: np.ndarray
    weight: np.ndarray
    x_val: np.ndarray
    weight_val: np.ndarray
    y: np.ndarray | None = None
    y_val: np.ndarray | None = None
    mjj: np.ndarray | None = None
    mjj_val: np.ndarray | None = None
    extra: dict[str, np.ndarray] = field(default_factory=dict)
    task: Task = "unsupervised"
    signal: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def n_features(self) -> int:
        return self.x.shape[1]


@dataclass
class ScoredSample:
    """Scores of one set of events, with their weights and resonant observable."""

    score: np.ndarray
    weight: np.ndarray
    mjj: np.ndarray | None = None
    label: np.ndarray | None = None
    event: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.score)


@dataclass
class ScoredSignal:
    """What a per-run metric sees for one signal: background and signal scores.

    ``hunt``: scores of held-out data over the full resonant range (resonant
    tasks), with truth labels; bump-hunt metrics use it.
    ``training``: the detector's out-of-fold scores of its own training pool
    (``Detector.training_scores``), with mjj and truth labels, where it has them.
    ``template``: scores of the detector's own model of the SR background
    (``Detector.background_template``), where it has one.
    ``score_region``: where the score may be cut on in a search
    (``Detector.score_region``: everywhere, sr+sidebands or sr).
    """

    signal: str
    background: ScoredSample
    signal_sample: ScoredSample
    task: Task = "unsupervised"
    hunt: ScoredSample | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    training: ScoredSample | None = None
    template: ScoredSample | None = None
    score_region: str = "everywhere"


@dataclass(frozen=True)
class Unavailable:
    """A metric value that cannot be computed honestly, with the reason."""

    reason: str

    def to_json(self) -> dict[str, str]:
        return {"unavailable": self.reason}


MetricValue = float | Unavailable
