"""Helpers shared by the dataset plugins: finding and downloading files, file
identity, a Parquet cache of converted raw tables, deterministic splits and
the train-only preprocessing.

The public loaders (adc2021, lhco2020) and the embedded samples (l1-pythia,
dijet-pythia) all go through these functions, so the generated data and the
public data share one path from raw table to :class:`Benchmark`.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from hepad_bench.cache import (
    CorruptCache, cache_root, downloads_dir, file_sha256, table_sha256, verified_parquet, write_parquet_hashed,
)
from hepad_bench.contracts import Progress
from hepad_bench.data import PROCESS, WEIGHT
from hepad_bench.errors import UserError
from hepad_bench.params import stable_hash

ZENODO_URL = "https://zenodo.org/records/{record}/files/{name}?download=1"


def zenodo_url(record: int, name: str) -> str:
    return ZENODO_URL.format(record=record, name=name)


def warn(progress: Progress, message: str) -> None:
    """Tell the user something went on without stopping: through the progress
    log when a real one is attached (the CLI), else as a Python warning so
    that it is never silent."""
    if type(progress) is Progress:
        warnings.warn(message, UserWarning, stacklevel=3)
    else:
        progress.log(f"warning: {message}")


# -- files -----------------------------------------------------------------
def search_dirs(dataset: str, data_dir: Path | None) -> list[Path]:
    """Where a dataset's public files are looked for: ``--data-dir`` first, then the downloads folder."""
    dirs = [Path(data_dir)] if data_dir is not None else []
    return dirs + [downloads_dir(dataset)]


def find_file(names: Sequence[str], dirs: Iterable[Path]) -> Path | None:
    """The first existing file among ``names`` (in order of preference) in the first folder that has one."""
    for folder in dirs:
        for name in names:
            path = folder / name
            if path.is_file():
                return path
    return None


def file_identity(path: Path) -> dict[str, Any]:
    """What identifies an input file cheaply (no read): name, size and modification time."""
    st = path.stat()
    return {"name": path.name, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


#: sha256 of a file's bytes (the cache's own hash function, so both name files alike)
sha256_of = file_sha256


def download(url: str, name: str, folder: Path) -> Path:
    """Download ``url`` into ``folder/name`` with pooch (a bar on the terminal).

    The Zenodo records publish no checksums, so there is no hash to pin
    (``known_hash=None``); the loaders validate the file's structure instead
    and record the size and sha256 of the copy they actually read.
    """
    import pooch

    return Path(pooch.retrieve(url, known_hash=None, fname=name, path=folder, progressbar=True))


# -- cache of converted raw tables -------------------------------------------
def cached_raw_table(dataset: str, path: Path, converter_version: str,
                     convert: Callable[[Path], pl.DataFrame],
                     progress: Progress | None = None) -> tuple[pl.DataFrame, dict[str, Any]]:
    """The raw (unsplit, unpreprocessed) table of one input file, converted once.

    Stored as Parquet (zstd) under the cache root keyed by the file's identity,
    so a change of split or preprocessing options never reads the input again
    and the raw values are stored once whatever the options. Returns the table
    and the facts recorded about the input (size, sha256 of the bytes read,
    content hash of the converted table). The sidecar JSON holds the sha256 of
    the Parquet file; a cached file that does not match it (or cannot be read)
    is named in a warning and converted again from ``path``.
    """
    ident = file_identity(path)
    folder = cache_root() / "converted" / dataset
    stem = f"{path.stem}-{stable_hash({'file': ident, 'converter': converter_version})}"
    table_path, info_path = folder / f"{stem}.parquet", folder / f"{stem}.json"
    if table_path.exists() and info_path.exists():
        try:
            info = json.loads(info_path.read_text())
            if "parquet_sha256" in info:  # entries of older versions carry no hash: converted again silently
                return verified_parquet(table_path, info["parquet_sha256"]), info
        except CorruptCache as exc:
            warn(progress or Progress(), f"damaged cache entry of {dataset}: {exc}; discarded, converting {path} again")
        except ValueError:
            warn(progress or Progress(), f"damaged cache entry of {dataset}: {info_path} is not JSON; converting {path} again")
    table = convert(path)
    info = {"file": path.name, "size": ident["size"], "sha256": sha256_of(path), "events": table.height,
            "table_sha256": table_sha256(table)}
    folder.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=folder))
    try:
        info["parquet_sha256"] = write_parquet_hashed(table, tmp / "t.parquet")
        (tmp / "t.json").write_text(json.dumps(info, indent=1))
        (tmp / "t.parquet").replace(table_path)  # the table first: the json marks it complete
        (tmp / "t.json").replace(info_path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return table, info


# -- splits ------------------------------------------------------------------
def split_rows(n: int, fractions: Sequence[float], seed: int, stream: str) -> list[np.ndarray]:
    """Partition ``range(n)`` at random into len(fractions)+1 disjoint parts.

    Part i gets ``floor(fraction_i * n)`` rows, the last part the rest. Rows
    stay in random order (so ``head(k)`` of a part is a random subsample even
    when the file is ordered by process). Deterministic for (seed, stream) and
    independent of any run seed; ``stream`` separates files of one dataset.
    """
    if any(f < 0 for f in fractions) or sum(fractions) > 1 + 1e-12:
        raise UserError(f"split fractions {list(fractions)} must be >= 0 and sum to at most 1")
    stream_id = int(hashlib.sha256(stream.encode()).hexdigest()[:8], 16)
    order = np.random.default_rng([seed, stream_id]).permutation(n)
    bounds = np.cumsum([int(np.floor(f * n)) for f in fractions])
    return np.split(order, bounds)


def check_fractions(**fractions: float) -> None:
    """Options validation: each fraction in [0, 1] and their sum below 1 (the rest is the last part)."""
    for name, value in fractions.items():
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name}={value} must lie in [0, 1]")
    total = sum(fractions.values())
    if total >= 1.0:
        raise ValueError(f"{' + '.join(fractions)} = {total:g} must be below 1 (the rest is the last split)")


# -- preprocessing -------------------------------------------------------------
@dataclass
class Standardiser:
    """``log1p`` on the listed columns, then ``(x - mean) / std`` per column.

    Fitted on the training rows only; columns with zero spread get std 1 so
    that constant columns pass through shifted, not divided by zero.
    """

    columns: list[str]
    log_columns: list[str]
    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, table: pl.DataFrame, columns: list[str], log_columns: Sequence[str] = (),
            rows: np.ndarray | None = None) -> Standardiser:
        """Fit on ``table`` (only its ``rows``, when given: no copy of the training rows is made)."""
        log_set = set(log_columns)
        means, stds = [], []
        for col in columns:
            x = _column(table, col, rows).astype(np.float64)
            if col in log_set:
                x = np.log1p(x)
            means.append(x.mean() if x.size else 0.0)
            sd = x.std() if x.size else 1.0
            stds.append(sd if sd > 0 else 1.0)
        return cls(list(columns), [c for c in columns if c in log_set], np.array(means), np.array(stds))

    def transform_column(self, index: int, values: np.ndarray) -> np.ndarray:
        """Column ``self.columns[index]`` preprocessed (float32); the float64 work is per column only."""
        x = values.astype(np.float64)
        if self.columns[index] in self.log_columns:
            x = np.log1p(x)
        return ((x - self.mean[index]) / self.std[index]).astype(np.float32)

    def transform(self, table: pl.DataFrame) -> pl.DataFrame:
        """Replace the feature columns by their preprocessed float32 values (other columns unchanged)."""
        return table.with_columns([pl.Series(col, self.transform_column(i, table[col].to_numpy()))
                                   for i, col in enumerate(self.columns)])

    def to_meta(self) -> dict[str, Any]:
        return {
            "log1p": list(self.log_columns),
            "mean": {c: float(m) for c, m in zip(self.columns, self.mean)},
            "std": {c: float(s) for c, s in zip(self.columns, self.std)},
        }


def with_bookkeeping(table: pl.DataFrame, process: str, weight: float = 1.0) -> pl.DataFrame:
    """Add ``process`` and, unless the table already carries per-event weights, a constant ``weight``."""
    w = pl.col(WEIGHT).cast(pl.Float64) if WEIGHT in table.columns else pl.lit(weight, dtype=pl.Float64)
    return table.with_columns(w.alias(WEIGHT), pl.lit(process).alias(PROCESS))


def take(table: pl.DataFrame, rows: np.ndarray) -> pl.DataFrame:
    """The rows ``rows`` of ``table``, in that order."""
    return table[np.asarray(rows, dtype=np.int64)] if len(rows) else table.clear()


def _column(table: pl.DataFrame, name: str, rows: np.ndarray | None = None) -> np.ndarray:
    """One column as numpy (a view where polars can give one), optionally only ``rows``."""
    x = table[name].to_numpy()
    return x if rows is None else x[np.asarray(rows, dtype=np.int64)]


def take_block(table: pl.DataFrame, rows: np.ndarray, features: Sequence[str],
               prep: Standardiser | None = None) -> pl.DataFrame:
    """``take(table, rows)`` restricted to ``features`` (+ ``weight`` when present), built lean.

    The float32 features are gathered (and preprocessed with ``prep``) one column at a time into
    one column-major block that the polars columns share without a copy, the layout the dataset
    cache reads back (``hepad_bench.cache.read_parquet_block``): memory is the result plus one
    column, never a second copy of the rows, and never a float64 copy of more than a column.
    Values equal ``prep.transform(take(table, rows))`` bit for bit.
    """
    rows = np.asarray(rows, dtype=np.int64)
    block = np.empty((len(rows), len(features)), dtype=np.float32, order="F")
    for j, col in enumerate(features):
        values = _column(table, col, rows)
        block[:, j] = prep.transform_column(prep.columns.index(col), values) if prep and col in prep.columns else values
    out = pl.DataFrame([pl.Series(col, block[:, j]) for j, col in enumerate(features)])
    if WEIGHT in table.columns:
        out = out.with_columns(take(table.select(WEIGHT), rows).to_series())
    return out


def load_benchmark(name: str, version: str, options: Any, inputs: dict[str, Path],
                   read_raw: Callable[[Path], tuple[pl.DataFrame, dict[str, Any]]],
                   assemble: Callable[[dict[str, pl.DataFrame], dict[str, dict[str, Any]]], Any],
                   identity: Callable[[Path], dict[str, Any]] = file_identity,
                   reader_version: str = "1") -> Any:
    """The cached :class:`Benchmark` of ``inputs`` (role -> file) under ``options``.

    The cache key holds the options, the reader version and each input's
    identity (size + mtime by default), so a second load with the same files
    reads Parquet only and never opens the inputs. On a miss, each input is
    read with ``read_raw`` (which may itself cache raw tables) and the
    benchmark is put together by ``assemble(raw_tables, input_facts)``.
    """
    from hepad_bench.cache import cached_benchmark
    from hepad_bench.params import as_dict

    key = {
        "options": as_dict(options), "reader": reader_version,
        "inputs": {role: identity(path) for role, path in sorted(inputs.items())},
    }

    def build() -> Any:
        tables, facts = {}, {}
        for role, path in inputs.items():
            tables[role], facts[role] = read_raw(path)
        return assemble(tables, facts)

    return cached_benchmark(name, version, key, build)
