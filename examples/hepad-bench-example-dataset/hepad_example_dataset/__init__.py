"""Example hepad-bench dataset plugin: Gaussian blobs from a CSV shipped in the package.

Written only against the public API: ``hepad_bench`` (the contract) and
``hepad_bench.dataset_tools`` (cache, ``--data-dir`` lookup, splits).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from hepad_bench import Benchmark, DataError, Dataset, Progress, hookimpl
from hepad_bench.dataset_tools import (
    cached_raw_table, check_fractions, find_file, load_benchmark, search_dirs, split_rows, take, with_bookkeeping,
)

FEATURES = ["f0", "f1", "f2", "f3"]
FILE = "blobs.csv"
BACKGROUND = "background"
#: The canonical split (``data_seed`` None): fixed, so runs stay comparable.
CANONICAL_SEED = 12345
#: Bump when ``read_blobs`` changes what it makes of the file (the converted table is cached under it).
READER_VERSION = "1"

CARD = """# example-blobs: Gaussian blobs (hepad-bench example dataset)

Task: unsupervised. A teaching sample with known distributions, shipped in the package
`hepad-bench-example-dataset` (`blobs.csv`, written by `make_blobs.py`; licence CC0).

* background: 2000 events of a 4-d standard normal (features `f0`..`f3`);
* signal `shifted`: 200 events shifted by +2.5 in every coordinate;
* signal `wide`: 200 events of a 4-d normal of width 3.

Splits: the background is split at random into validation (`-o validation_fraction`, 0.2), test
(`-o test_fraction`, 0.4) and training (the rest), drawn from `--data-seed` (fixed without one). The signals are
held out for testing. `-o contamination=0.05` adds signal events to the training and validation data (unlabelled
for the detector, ADBench's unsupervised protocol) so that they are that fraction of it; those events are then
no longer in the signal test samples.

A CSV of the same layout in `--data-dir` replaces the shipped one.
"""


@dataclass
class BlobsOptions:
    #: fraction of the background events in the validation split
    validation_fraction: float = 0.2
    #: fraction of the background events in the test split (the rest trains)
    test_fraction: float = 0.4
    #: fraction of signal among the training + validation events (0: background only)
    contamination: float = 0.0

    def __post_init__(self) -> None:
        check_fractions(validation_fraction=self.validation_fraction, test_fraction=self.test_fraction)
        if not 0.0 <= self.contamination < 0.5:
            raise ValueError(f"contamination={self.contamination} must lie in [0, 0.5)")


def read_blobs(path: Path) -> pl.DataFrame:
    """The CSV as a table: float32 features, the ``class`` column as ``process``, ``weight`` 1 and ``label``."""
    table = pl.read_csv(path)
    missing = [c for c in [*FEATURES, "class"] if c not in table.columns]
    if missing:
        raise DataError(f"{path}: no column {', '.join(missing)} (expected {', '.join(FEATURES)}, class)")
    table = table.select([pl.col(c).cast(pl.Float32) for c in FEATURES] + [pl.col("class")])
    table = with_bookkeeping(table.drop("class"), BACKGROUND).with_columns(table["class"].alias("process"))
    return table.with_columns((pl.col("process") != BACKGROUND).cast(pl.Int8).alias("label"))


class ExampleBlobs(Dataset):
    """Gaussian blobs: a 4-d normal background and two known signals (example plugin)."""

    name = "example-blobs"
    version = "1"
    task = "unsupervised"
    card = CARD
    Options = BlobsOptions
    uses_data_seed = True  # the splits (and the contamination draw) come from --data-seed
    contaminated_training = True  # with -o contamination > 0 the training data holds unlabelled signal

    def source_file(self, data_dir: Path | None) -> Path:
        """A ``blobs.csv`` in ``--data-dir`` (or the downloads folder) first, else the one in the package."""
        found = find_file([FILE], search_dirs(self.name, data_dir))
        return found if found is not None else Path(str(files(__name__).joinpath(FILE)))

    def load(self, data_dir: Path | None, progress: Progress) -> Benchmark:
        path = self.source_file(data_dir)

        def read_raw(p: Path) -> tuple[pl.DataFrame, dict[str, Any]]:
            return cached_raw_table(self.name, p, READER_VERSION, read_blobs, progress)

        return load_benchmark(self.name, self.version, self.options, {"events": path}, read_raw, self.assemble,
                              reader_version=READER_VERSION, key={"data_seed": self.data_seed})

    def assemble(self, raw: dict[str, pl.DataFrame], facts: dict[str, dict[str, Any]]) -> Benchmark:
        table, opts = raw["events"], self.options
        seed = CANONICAL_SEED if self.data_seed is None else self.data_seed
        background = table.filter(pl.col("process") == BACKGROUND)
        val_rows, test_rows, train_rows = split_rows(background.height, [opts.validation_fraction, opts.test_fraction],
                                                     seed, "background")
        train, validation = take(background, train_rows), take(background, val_rows)
        signal = table.filter(pl.col("process") != BACKGROUND)
        # contamination: signal events drawn at random join train and validation in proportion to their size
        per_background = opts.contamination / (1.0 - opts.contamination)
        n_train, n_val = round(per_background * train.height), round(per_background * validation.height)
        if n_train + n_val > signal.height:
            raise DataError(f"contamination={opts.contamination} needs {n_train + n_val} signal events; "
                            f"{facts['events']['file']} has {signal.height}")
        order = split_rows(signal.height, [], seed, "contamination")[0]
        to_train, to_val, held_out = order[:n_train], order[n_train:n_train + n_val], order[n_train + n_val:]
        train = self.shuffled(pl.concat([train, take(signal, to_train)]), seed, "train")
        validation = self.shuffled(pl.concat([validation, take(signal, to_val)]), seed, "validation")
        held = take(signal, np.sort(held_out))
        signals = {name: held.filter(pl.col("process") == name) for name in sorted(set(held["process"]))}
        pool = train.height + validation.height
        return Benchmark(
            dataset=self.name, version=self.version, task="unsupervised", features=list(FEATURES),
            train=train, validation=validation, test=take(background, test_rows), signals=signals,
            meta={"source": facts["events"]["file"], "sha256": facts["events"]["sha256"],
                  "data_seed": self.data_seed, "split_seed": seed},
            train_contamination=(n_train + n_val) / pool if pool else 0.0,
        )

    @staticmethod
    def shuffled(table: pl.DataFrame, seed: int, stream: str) -> pl.DataFrame:
        """``table`` in a random order, so that an event cap (the first N rows) keeps the contamination."""
        return take(table, split_rows(table.height, [], seed, stream)[0])


@hookimpl
def hepad_datasets() -> list[type[Dataset]]:
    return [ExampleBlobs]
