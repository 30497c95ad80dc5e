"""Base classes of the three plugin contracts: Dataset, Detector, Metric.

A plugin's hook returns *classes*; the plugin manager checks them against
these bases (and their class attributes) before anything runs.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar

if TYPE_CHECKING:  # annotations only: importing the contracts must stay cheap (no numpy, polars; see cli.py)
    import numpy as np

    from hepad_bench.cost import ModelCost
    from hepad_bench.data import Benchmark, MetricValue, ScoredSignal, TrainingData

DETECTOR_KINDS = ("unsupervised", "weakly_supervised", "supervised")
#: Where a detector's score may be used in a resonant search (see ``Detector.score_region``).
SCORE_REGIONS = ("everywhere", "sr+sidebands", "sr")


@dataclass
class EmptyConfig:
    """No options."""


class Progress:
    """The progress interface handed to plugins (no-op by default).

    ``with progress.task("epochs", total=n) as advance: advance(1)``.
    The CLI passes a rich-backed implementation.
    """

    @contextmanager
    def task(self, description: str, total: float | None = None) -> Iterator[Callable[[float], None]]:
        yield lambda _n=1: None

    def log(self, message: str) -> None:
        """A line of information for the user (kept out of stdout's tables)."""

    def warn(self, message: str) -> None:
        """A warning for the user; the CLI shows each distinct one once per grid."""
        self.log(f"warning: {message}")


@dataclass
class FitContext:
    """Per-run facts a detector needs: seed, device, progress.

    Every random source of a run derives from ``seed``; use :meth:`rng` for
    numpy and seed torch yourself with ``seed`` (see the first-party helpers).
    """

    seed: int
    device: str = "cpu"
    progress: Progress = field(default_factory=Progress)

    def rng(self, stream: int = 0) -> np.random.Generator:
        """An independent numpy generator for ``stream`` of this run's seed."""
        import numpy as np

        return np.random.default_rng([self.seed, stream])


class Detector(ABC):
    """An anomaly detector. Scores: float64, finite, higher = more anomalous.

    Class attributes: ``name`` (CLI name), ``version`` (bump when results
    change), ``kind`` (one of ``DETECTOR_KINDS``), ``Config`` (a dataclass of
    hyperparameters whose field docs are the defaults users see), ``tasks``
    (the dataset tasks it can run on).

    ``supervised`` detectors are fitted once per signal, on that signal's own
    labelled training split; the others once per run.

    Optional: ``check`` (refuse a configuration before any training),
    ``model_cost`` (parameters and multiply-accumulates per event; torch
    modules are found by default) and ``training_summary`` (numbers about the
    fit worth keeping in ``run.json``).

    Resonant searches: ``score_region`` says where the score means what it was
    trained to mean, so where a search may cut on it: ``"everywhere"``
    (unsupervised and supervised detectors, LaCATHODE), ``"sr+sidebands"``
    (a classifier trained on the signal region and its sidebands, CWoLa) or
    ``"sr"`` (trained for the signal region only: ANODE, CATHODE, the
    idealised classifier). ``None`` (the default) means by kind:
    weakly supervised -> ``"sr"``, else ``"everywhere"``. A detector that
    scores its own training data out of fold (CWoLa hunting's k-folding)
    returns those scores from :meth:`training_scores`.
    """

    name: ClassVar[str]
    version: ClassVar[str]
    kind: ClassVar[str] = "unsupervised"
    Config: ClassVar[type] = EmptyConfig
    tasks: ClassVar[tuple[str, ...]] = ("unsupervised", "resonant")
    #: validation events ``fit`` needs; the runner checks it before any training
    min_validation_events: ClassVar[int] = 0
    #: where the score may be cut on in a resonant search (see above; None: by kind)
    score_region: ClassVar[str | None] = None

    def __init__(self, config: Any = None):
        self.config = config if config is not None else self.Config()

    @abstractmethod
    def fit(self, train: TrainingData, ctx: FitContext) -> None:
        """Train on ``train``; may use ``ctx.device``, ``ctx.seed``, ``ctx.progress``."""

    @abstractmethod
    def score(self, x: np.ndarray, mjj: np.ndarray | None = None) -> np.ndarray:
        """Anomaly score per row of ``x`` (float32 (n, d)); ``mjj`` on resonant tasks."""

    @classmethod
    def check(cls, config: Any, n_features: int) -> None:
        """Raise a UserError when ``config`` cannot work on ``n_features`` inputs (called before any training)."""

    def model_cost(self, events: np.ndarray, mjj: np.ndarray | None) -> ModelCost | None:
        """Size and arithmetic of the fitted model per scored event (``events``: test rows to try it on).

        The default finds the torch modules among the detector's attributes
        and counts what ``score`` runs on one event (None without torch).
        """
        from hepad_bench.cost import torch_model_cost

        return torch_model_cost(self, events, mjj)

    def training_summary(self) -> dict[str, Any] | None:
        """Numbers about the fit to record in ``run.json`` (e.g. a VAE's mean KL), or None."""
        return None

    def training_scores(self) -> np.ndarray | None:
        """Out-of-fold scores of the training pool, or None (the default: the detector has none).

        One value per row of the ``TrainingData`` it was fitted on, training
        rows then validation rows (``x`` then ``x_val``), each from a model
        that never saw that row; NaN for rows the method did not use. The
        runner stores them (NaN rows too: a pre-cut sideband fit counts
        them) as the sample ``training`` so that a search can select on the
        data the method trained on (CWoLa hunting).
        """
        return None

    def background_template(self) -> tuple[np.ndarray, np.ndarray | None] | None:
        """(scores, mjj or None) of the method's own model of the signal-region background, or None.

        Events the method takes for SR background that no model scored them
        after training on them: the idealised classifier's out-of-fold scores
        of its perfectly modelled background, ANODE's (and CATHODE's) samples
        of the sideband density interpolated into the SR. A search uses the
        fraction of them above a cut as the cut's background efficiency in
        the SR (CATHODE's background estimate), so a score valid only in the
        SR is never cut on in the sidebands. The runner stores them as the
        sample ``sr_template``.
        """
        return None


def score_region_of(cls: type[Detector]) -> str:
    """The detector's ``score_region``, its kind's default where it sets none."""
    region = getattr(cls, "score_region", None)
    if region is None:
        return "sr" if cls.kind == "weakly_supervised" else "everywhere"
    return region


@dataclass(frozen=True)
class RemoteFile:
    """A public file a dataset downloads: ``hepad-bench datasets fetch`` puts it into the downloads folder.

    ``sha256`` (hex) is checked by pooch after the download when given; ``None`` where the source
    publishes none (the loader should then validate the file's structure).
    """

    name: str
    url: str
    sha256: str | None = None


class Dataset(ABC):
    """A benchmark dataset: ``load`` returns a :class:`~hepad_bench.data.Benchmark`.

    Class attributes: ``name`` (CLI name), ``version`` (bump when the content
    changes), ``task`` (``unsupervised`` or ``resonant``), ``card`` (Markdown
    text: source, citation, licence, files, schema; ``hepad-bench datasets
    info`` prints it), ``Options`` (a dataclass of load options; CLI
    ``-o key=value``; its field defaults are the canonical dataset).

    What the tables mean (see :class:`~hepad_bench.data.Benchmark` for the
    schema): ``train`` is what an unsupervised or weakly supervised detector
    fits on, ``validation`` what it may use for early stopping or model
    selection (never for the reported metrics); ``test`` and ``signals`` are
    held out and scored. A dataset with no validation split of its own
    carves one out of its training data (:func:`hepad_bench.dataset_tools.split_rows`)
    or returns an empty ``validation`` table with the same columns as
    ``train``; the runner then refuses, before any training, a detector
    whose ``min_validation_events`` it cannot meet.

    ``train`` of an ``unsupervised`` dataset is background only, unless the
    dataset sets ``contaminated_training = True``: its training (and
    validation) data then holds unlabelled signal, as in ADBench's
    unsupervised protocol. Such a dataset keeps the truth in a ``label``
    column (0 background, 1 signal; detectors never see it, the supervised
    references train on the label-0 rows only) and sets
    ``Benchmark.train_contamination`` to the signal fraction it injected.
    ``run.json``, the leaderboard and ``datasets info`` say so.

    Data seeds (CLI ``--data-seed N``, repeatable): ``self.data_seed`` is None
    for the dataset's canonical, fixed split, or an integer from which a
    dataset with ``uses_data_seed = True`` draws its splits (and, for
    resonant data, which signal events are injected): same data seed, same
    tables; another data seed, another split of the same events. The run
    seed never reaches the dataset. ``--data-seed`` on a dataset with
    ``uses_data_seed = False`` is refused before anything runs. A dataset
    that caches its tables must key the cache on the data seed.

    Working points: ``working_points`` lists the background efficiencies at
    which the efficiency metric reports the signal efficiency (keys
    ``eff@1e-3``, ``eff@5e-2``, ...); empty means the metric's default
    (1e-2, 1e-3, 1e-4, 1e-5). The runner copies a non-empty tuple into
    ``Benchmark.meta["working_points"]``, which the metric reads; a dataset
    whose points depend on its options may set that meta key in ``load``
    instead (the meta key wins).

    Remote files: list them in ``remote_files`` and the default ``fetch``
    downloads them (with pooch, checksums where given) into the downloads
    folder that :func:`hepad_bench.dataset_tools.require_file` looks in after
    ``--data-dir``; override ``fetch`` when the files depend on the options.
    """

    name: ClassVar[str]
    version: ClassVar[str]
    task: ClassVar[str] = "unsupervised"
    card: ClassVar[str] = ""
    Options: ClassVar[type] = EmptyConfig
    #: ``-o`` pairs that make this dataset's background-only twin (same splits, no injected
    #: signal). Where set, the runner adds the twin of every run of a detector that searches
    #: the data (null control); empty: no twin.
    null_options: ClassVar[tuple[tuple[str, str], ...]] = ()
    #: whether ``load`` draws its splits from ``self.data_seed`` (``--data-seed``; see above)
    uses_data_seed: ClassVar[bool] = False
    #: background efficiencies of the signal-efficiency working points (empty: the metric's default)
    working_points: ClassVar[tuple[float, ...]] = ()
    #: The public files ``fetch`` downloads by default (empty: nothing to download).
    remote_files: ClassVar[tuple[RemoteFile, ...]] = ()
    #: Whether the training data of an unsupervised dataset holds unlabelled signal (see above).
    contaminated_training: ClassVar[bool] = False

    def __init__(self, options: Any = None, data_seed: int | None = None):
        self.options = options if options is not None else self.Options()
        self.data_seed = data_seed

    @abstractmethod
    def load(self, data_dir: Path | None, progress: Progress) -> Benchmark:
        """Build the benchmark; ``data_dir``: where the user keeps the files, if given."""

    def fetch(self, progress: Progress) -> list[Path]:
        """Download the public files into the downloads folder; return their paths (empty: nothing to download).

        The default downloads ``remote_files``.
        """
        from hepad_bench.dataset_tools import fetch_files  # dataset_tools imports this module

        return fetch_files(self.name, self.remote_files, progress)

    @classmethod
    def has_remote_files(cls) -> bool:
        """Whether ``fetch`` has anything to download: ``remote_files`` are declared or ``fetch`` is overridden."""
        return bool(cls.remote_files) or cls.fetch is not Dataset.fetch

    def scan_options(self) -> list[tuple[tuple[str, str], ...]]:
        """The ``-o`` pairs of each run these options expand into (a sliding-window scan), in order.

        Empty (the default): one run. The runner appends each window's pairs to
        the spec's options, so every window is a run of its own.
        """
        return []


class Metric(ABC):
    """A per-run metric: ``compute`` maps one signal's scores to named values.

    A value that cannot be computed honestly (too few background events
    for a working point, ...) is an :class:`~hepad_bench.data.Unavailable`.
    """

    name: ClassVar[str]
    version: ClassVar[str]
    tasks: ClassVar[tuple[str, ...]] = ("unsupervised", "resonant")

    @abstractmethod
    def compute(self, scored: ScoredSignal) -> Mapping[str, MetricValue]:
        """Values for one signal, keyed by a short name (``auc``, ``eff@1e-4``)."""


class ComparativeMetric(ABC):
    """A metric over several detectors' stored scores of the same events.

    Computed at leaderboard time, never inside a run. ``compare`` receives,
    for one dataset and one signal, each detector's list of ScoredSignal (one
    per seed) and returns per detector its named values (mean over seeds is
    taken by the caller where it makes sense) or a table-like mapping.
    """

    name: ClassVar[str]
    version: ClassVar[str]

    @abstractmethod
    def compare(self, signal: str, runs: Mapping[str, list[ScoredSignal]]) -> Mapping[str, Mapping[str, MetricValue]]:
        """Per detector name: named values for this signal."""


def config_fields(config_type: type) -> list[dataclasses.Field]:
    return list(dataclasses.fields(config_type)) if dataclasses.is_dataclass(config_type) else []
