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
def split_rows(n: int, fractions: Sequence[float], seed: int, stream: str,
               data_seed: int | None = None) -> list[np.ndarray]:
    """Partition ``range(n)`` at random into len(fractions)+1 disjoint parts.

    Part i gets ``floor(fraction_i * n)`` rows, the last part the rest. Rows
    stay in random order (so ``head(k)`` of a part is a random subsample even
    when the file is ordered by process). Deterministic for (seed, stream,
    data_seed) and independent of any run seed; ``stream`` separates files of
    one dataset. ``data_seed`` (``--data-seed``, ``Dataset.data_seed``) draws
    another partition; None gives the dataset's canonical one, unchanged.
    """
    if any(f < 0 for f in fractions) or sum(fractions) > 1 + 1e-12:
        raise UserError(f"split fractions {list(fractions)} must be >= 0 and sum to at most 1")
    stream_id = int(hashlib.sha256(stream.encode()).hexdigest()[:8], 16)
    entropy = [seed, stream_id]
    if data_seed is not None:
        if data_seed < 0:
            raise UserError(f"data seed {data_seed} must be >= 0")
        # the marker 1 keeps every data seed apart from the canonical split (SeedSequence pads short
        # entropy with zeros, so [seed, stream_id, 0] alone could equal [seed, stream_id])
        entropy += [1, data_seed]
    order = np.random.default_rng(entropy).permutation(n)
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
    def fit(cls, table: pl.DataFrame, columns: list[str], log_columns: Sequence[str] = ()) -> Standardiser:
        log_set = set(log_columns)
        means, stds = [], []
        for col in columns:
            x = table[col].to_numpy().astype(np.float64)
            if col in log_set:
                x = np.log1p(x)
            means.append(x.mean() if x.size else 0.0)
            sd = x.std() if x.size else 1.0
            stds.append(sd if sd > 0 else 1.0)
        return cls(list(columns), [c for c in columns if c in log_set], np.array(means), np.array(stds))

    def transform(self, table: pl.DataFrame) -> pl.DataFrame:
        """Replace the feature columns by their preprocessed float32 values (other columns unchanged)."""
        log_set = set(self.log_columns)
        new = []
        for col, mu, sd in zip(self.columns, self.mean, self.std):
            x = table[col].to_numpy().astype(np.float64)
            if col in log_set:
                x = np.log1p(x)
            new.append(pl.Series(col, ((x - mu) / sd).astype(np.float32)))
        return table.with_columns(new)

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


def load_benchmark(name: str, version: str, options: Any, inputs: dict[str, Path],
                   read_raw: Callable[[Path], tuple[pl.DataFrame, dict[str, Any]]],
                   assemble: Callable[[dict[str, pl.DataFrame], dict[str, dict[str, Any]]], Any],
                   identity: Callable[[Path], dict[str, Any]] = file_identity,
                   reader_version: str = "1", data_seed: int | None = None) -> Any:
    """The cached :class:`Benchmark` of ``inputs`` (role -> file) under ``options``.

    The cache key holds the options, the reader version and each input's
    identity (size + mtime by default), so a second load with the same files
    reads Parquet only and never opens the inputs. On a miss, each input is
    read with ``read_raw`` (which may itself cache raw tables) and the
    benchmark is put together by ``assemble(raw_tables, input_facts)``.
    ``data_seed`` (the dataset's ``--data-seed``, which ``assemble`` must
    split with) joins the key when given, so each data seed is cached apart
    and the canonical split keeps its key.
    """
    from hepad_bench.cache import cached_benchmark
    from hepad_bench.params import as_dict

    key = {
        "options": as_dict(options), "reader": reader_version,
        "inputs": {role: identity(path) for role, path in sorted(inputs.items())},
    }
    if data_seed is not None:
        key["data_seed"] = data_seed

    def build() -> Any:
        tables, facts = {}, {}
        for role, path in inputs.items():
            tables[role], facts[role] = read_raw(path)
        return assemble(tables, facts)

    return cached_benchmark(name, version, key, build)
