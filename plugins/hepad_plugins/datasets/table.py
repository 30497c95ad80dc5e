"""``table``: bring your own ntuple. A TOML card (``-o card=analysis.toml``) names the files
(ROOT TTrees through uproot, Parquet, HDF5, CSV), the feature expressions (jagged branches
padded or reduced with awkward), what is background and what is each signal (a label column
or separate files), an optional event weight and resonant observable, and the splits.

Task: ``unsupervised`` (train on background only). A resonant observable named by the card
is carried raw beside the features (``Benchmark.resonant``), so the scores are stored with it
and ``mass_correlation`` measures how much the score knows about it; there is no injection
or signal region in this version.

Converted once: each input file's columns are stored as Parquet under the cache keyed by the
file's identity (path, size, modification time) and what the card reads from it; the split
benchmark is cached under the card's content, the files' identities and the split seed. An
edited card or file means a new conversion, and a new data fingerprint in the run key.

The card's schema is in ``datasets/table/CARD.md`` (``hepad-bench datasets info table``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import polars as pl

from hepad_bench import hookimpl
from hepad_bench.cache import cached_benchmark, file_sha256
from hepad_bench.contracts import Dataset, Progress
from hepad_bench.data import WEIGHT, Benchmark
from hepad_bench.errors import DataError, UserError
from hepad_bench.params import as_dict, stable_hash
from hepad_plugins._resources import read_card as read_markdown_card
from hepad_plugins.datasets._common import (
    Standardiser, cached_raw_table, file_identity, split_rows, take, with_bookkeeping,
)
from hepad_plugins.datasets.table_card import Card, read_card, resolve_files
from hepad_plugins.datasets.table_io import LABEL_COLUMN, label_mask, read_file

#: Bump when reading or assembling changes what a card gives (invalidates the cache).
READER_VERSION = "1"


@dataclass
class TableOptions:
    """Load options (``-o key=value``).

    card: the TOML card; an absolute path, or relative to ``--data-dir``
    (to the current folder without it). The files the card names are
    relative to the card's own folder.
    """

    card: str = ""


def card_path(card: str, data_dir: Path | None) -> Path:
    """Where ``-o card=...`` points: absolute as given, else under --data-dir (or the current folder)."""
    if not card.strip():
        raise UserError("dataset table needs a card: -o card=analysis.toml (a TOML file naming your files and "
                        "features; 'hepad-bench datasets info table' shows the schema)")
    path = Path(card).expanduser()
    if not path.is_absolute():
        path = (Path(data_dir) if data_dir is not None else Path.cwd()) / path
    return path


def _tree(card: Card, role: str) -> str | None:
    return card.processes[role].tree or card.tree


def _converter_version(card: Card, path: Path, tree: str | None, with_label: bool) -> str:
    """What the per-file conversion depends on besides the file's bytes: the columns the card reads."""
    return stable_hash({
        "reader": READER_VERSION, "path": str(path), "tree": tree,
        "features": [(f.expr, f.fill) for f in card.features],
        "resonant": None if card.resonant is None else (card.resonant.expr, card.resonant.fill),
        "weight": card.weight, "label": card.label if with_label else None,
    })


def _labelled_files(card: Card, files: dict[str, list[Path]]) -> set[Path]:
    """Files some process selects events of by label: only these need the label column."""
    return {p for role, paths in files.items() if card.processes[role].label is not None for p in paths}


def _select(card: Card, files: dict[str, list[Path]], raw: dict[tuple[Path, str | None], pl.DataFrame]
            ) -> tuple[dict[str, pl.DataFrame], dict[str, int]]:
    """Each process's events (its files in order, filtered by its label values) and the unused events per file."""
    used: dict[Path, int] = {}
    out: dict[str, pl.DataFrame] = {}
    for role, proc in card.processes.items():
        where = "[background]" if role == "background" else f"[signals.{proc.name}]"
        parts = []
        for path in files[role]:
            table = raw[(path, _tree(card, role))]
            if proc.label is not None:
                table = table.filter(label_mask(table[LABEL_COLUMN], proc.label, path, card, where))
            used[path] = used.get(path, 0) + table.height
            parts.append(table.drop(LABEL_COLUMN, strict=False))
        events = pl.concat(parts, how="vertical")
        if events.height == 0:
            label = f" with label {list(proc.label)}" if proc.label is not None else ""
            what = "background" if role == "background" else f"signal '{proc.name}'"
            raise DataError(f"card {card.path}: {what} has no events{label} in "
                            f"{', '.join(str(p) for p in files[role])}")
        out[role] = events
    totals = {path: table.height for (path, _), table in raw.items()}
    unused = {str(p): totals[p] - used.get(p, 0) for p in totals if totals[p] - used.get(p, 0)}
    return out, unused


def _preprocess(card: Card, train: pl.DataFrame) -> tuple[Any, dict[str, Any] | str]:
    """A function applied to every table: log1p of the card's ``log1p`` columns, then (``standard``) the
    training background's mean and std; float32 features."""
    names = card.feature_names
    for col in card.log1p:
        low = train[col].min() if train.height else 0.0
        if low is not None and low <= -1:
            raise DataError(f"card {card.path}: log1p of feature '{col}' is undefined: the training background "
                            f"has values down to {low:g} (log1p needs values above -1)")
    if card.preprocessing == "standard":
        prep = Standardiser.fit(train, names, card.log1p)
        return prep.transform, prep.to_meta()

    def raw(table: pl.DataFrame) -> pl.DataFrame:
        cols = [(pl.col(c).log1p() if c in card.log1p else pl.col(c)).cast(pl.Float32) for c in names]
        return table.with_columns(cols)

    return raw, {"log1p": list(card.log1p), "standardised": False}


def assemble(card: Card, events: dict[str, pl.DataFrame], seed: int, meta: dict[str, Any],
             name: str = "table", version: str = "1") -> Benchmark:
    """Split the background into train / validation / test and each signal into signal_train / test,
    fit the preprocessing on the training background and label every table."""
    keep = card.feature_names + ([WEIGHT] if card.weight else []) + (card.resonant.names if card.resonant else [])
    background = events["background"].select(keep)
    bg_rows = split_rows(background.height, [card.train, card.validation], seed, "background")
    train_raw = take(background, bg_rows[0])
    if train_raw.height == 0:
        raise DataError(f"card {card.path}: [split] train = {card.train:g} of {background.height} background "
                        "events leaves no training event")
    apply, prep_meta = _preprocess(card, train_raw)
    for col in card.log1p:  # a value <= -1 outside the training split would become non-finite
        for role, table in events.items():
            low = table[col].min()
            if low is not None and low <= -1:
                raise DataError(f"card {card.path}: log1p of feature '{col}' is undefined for {role} "
                                f"(values down to {low:g})")

    def part(table: pl.DataFrame, rows: np.ndarray, process: str) -> pl.DataFrame:
        return with_bookkeeping(apply(take(table, rows)), process)

    train, validation, test = (part(background, rows, "background") for rows in bg_rows)
    signals, signal_train = {}, {}
    for sig in card.signals:
        table = events[f"signal/{sig}"].select(keep)
        tr_rows, te_rows = split_rows(table.height, [card.signal_train], seed, f"signal/{sig}")
        signals[sig] = part(table, te_rows, sig)
        if len(tr_rows):
            signal_train[sig] = part(table, tr_rows, sig)
    sizes = {"train": train.height, "validation": validation.height, "test": test.height}
    sizes |= {f"signal/{k}": v.height for k, v in signals.items()}
    sizes |= {f"signal_train/{k}": v.height for k, v in signal_train.items()}
    meta = meta | {"split_sizes": sizes, "preprocessing": prep_meta}
    return Benchmark(
        dataset=name, version=version, task="unsupervised", features=card.feature_names, train=train,
        validation=validation, test=test, signals=signals, signal_train=signal_train,
        resonant=card.resonant.names[0] if card.resonant else None, meta=meta,
    )


class Table(Dataset):
    """Bring your own ntuple: ROOT, Parquet, HDF5 or CSV files described by a TOML card (-o card=...)."""

    name = "table"
    version = "1"
    task = "unsupervised"
    card = read_markdown_card("table")
    Options = TableOptions
    #: the card's split seed gives way to --data-seed (shared contract of issue 12)
    uses_data_seed: ClassVar[bool] = True

    def fetch(self, progress: Progress) -> list[Path]:
        raise UserError("table reads the files your card names: nothing to download "
                        "(see 'hepad-bench datasets info table')")

    def load(self, data_dir: Path | None, progress: Progress) -> Benchmark:
        card = read_card(card_path(self.options.card, data_dir))
        files = resolve_files(card)
        data_seed = getattr(self, "data_seed", None)
        seed = card.seed if data_seed is None else int(data_seed)
        key = {
            "reader": READER_VERSION, "card": card.data, "seed": seed,
            "files": {role: [{"path": str(p)} | file_identity(p) for p in paths] for role, paths in files.items()},
        }

        def build() -> Benchmark:
            raw: dict[tuple[Path, str | None], pl.DataFrame] = {}
            facts: dict[str, dict[str, Any]] = {}
            labelled = _labelled_files(card, files)
            for role, paths in files.items():
                tree = _tree(card, role)
                for path in paths:
                    if (path, tree) in raw:
                        continue
                    lab = path in labelled
                    raw[(path, tree)], info = cached_raw_table(
                        self.name, path, _converter_version(card, path, tree, lab),
                        lambda p, t=tree, lab=lab: read_file(p, card, t, lab), progress)
                    facts[str(path)] = {k: info[k] for k in ("size", "sha256", "events") if k in info}
            events, unused = _select(card, files, raw)
            meta = {
                "split_seed": seed, "data_seed": data_seed,
                "files": {role: [str(p) for p in paths] for role, paths in files.items()},
                "inputs": facts, "unused_events": unused, "label_column": card.label, "weight_column": card.weight,
                "resonant_observable": card.resonant.expr if card.resonant else None,
                "feature_expressions": {f.expr: f.names for f in card.features},
            }
            return assemble(card, events, seed, meta, self.name, self.version)

        bench = cached_benchmark(self.name, self.version, key, build)
        # which card file this was: after the cache, whose key holds the card's parsed content (not its comments)
        bench.meta |= {"source": f"table card {card.path}", "card": str(card.path),
                       "card_sha256": file_sha256(card.path), "options": as_dict(self.options)}
        return bench


@hookimpl
def hepad_datasets() -> list[type[Dataset]]:
    return [Table]
