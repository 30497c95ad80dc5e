"""Public helpers for dataset plugins: finding, downloading and identifying files,
caching converted tables, deterministic splits and train-only preprocessing.

Everything a dataset plugin needs besides the contract itself
(:class:`hepad_bench.Dataset`, :class:`hepad_bench.Benchmark`). The
first-party datasets (``adc2021``, ``lhco2020``, the embedded samples) are
built from these same functions, so a third-party dataset gets the same
cache, the same ``--data-dir`` lookup, the same offline error and the same
split behaviour with no private import. A typical ``load``::

    def load(self, data_dir, progress):
        path = require_file(self.name, "events.csv", data_dir, url=URL)   # --data-dir, then the downloads folder
        read = lambda p: cached_raw_table(self.name, p, "1", read_my_csv, progress)
        return load_benchmark(self.name, self.version, self.options, {"events": path}, read, assemble)

where ``assemble`` splits the raw table with :func:`split_rows` (seeded by
``self.data_seed`` when the dataset draws its splits from the data seed,
else by a fixed seed of its own) and returns a :class:`Benchmark`.

Cache layout (under :func:`cache_root`, ``HEPAD_BENCH_CACHE`` overrides it):
``downloads/<dataset>/`` the fetched files, ``converted/<dataset>/`` one
Parquet file per input file (keyed by the file's identity), and
``benchmarks/<dataset>/<version>/<hash>/`` the built benchmark per options.
Every Parquet file's sha256 is recorded and checked on load; a damaged entry
is named in a warning and rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from hepad_bench.cache import (
    CorruptCache, cache_root, cached_benchmark, content_fingerprint, downloads_dir, file_sha256, table_sha256,
    verified_parquet, write_parquet_hashed,
)
from hepad_bench.contracts import Dataset, Progress, RemoteFile
from hepad_bench.data import PROCESS, WEIGHT, Benchmark
from hepad_bench.errors import UserError
from hepad_bench.params import as_dict, stable_hash

__all__ = [
    "RemoteFile", "Standardiser", "cache_root", "cached_benchmark", "cached_raw_table", "check_fractions",
    "content_fingerprint", "dataset_facts", "download", "downloads_dir", "fetch_files", "file_identity", "find_file",
    "load_benchmark", "missing_file_error", "require_file", "search_dirs", "sha256_of", "split_rows", "table_sha256",
    "take", "take_block", "warn", "with_bookkeeping", "zenodo_url",
]

ZENODO_URL = "https://zenodo.org/records/{record}/files/{name}?download=1"


def zenodo_url(record: int, name: str) -> str:
    """The download URL of file ``name`` of Zenodo record ``record``."""
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
    """Where a dataset's files are looked for: ``--data-dir`` first, then its downloads folder."""
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


def missing_file_error(dataset: str, name: str, dirs: Sequence[Path], url: str | None = None,
                       what: str | None = None, fetch_command: str | None = None) -> UserError:
    """The one-line offline error for a missing input file: where it was looked for, how to get it, where to put it.

    ``what`` names the file for the user (default: "<dataset> file"); ``fetch_command`` is the command
    that downloads it (default: ``hepad-bench datasets fetch <dataset>`` when a ``url`` is known).
    """
    where = " or ".join(str(d) for d in dirs)
    label = what or f"{dataset} file"
    if url is None:
        return UserError(f"{label} {name} not found in {where}; put it into --data-dir")
    fetch = fetch_command or f"hepad-bench datasets fetch {dataset}"
    return UserError(f"{label} {name} not found in {where}: run '{fetch}' or download {url} into --data-dir")


def require_file(dataset: str, names: str | Sequence[str], data_dir: Path | None, url: str | None = None,
                 what: str | None = None, fetch_command: str | None = None) -> Path:
    """The input file ``names`` (a name, or names in order of preference) from ``--data-dir`` or the downloads
    folder; else the one-line :func:`missing_file_error` (a :class:`~hepad_bench.UserError`)."""
    candidates = [names] if isinstance(names, str) else list(names)
    dirs = search_dirs(dataset, data_dir)
    path = find_file(candidates, dirs)
    if path is None:
        raise missing_file_error(dataset, candidates[0], dirs, url, what, fetch_command)
    return path


def file_identity(path: Path) -> dict[str, Any]:
    """What identifies an input file cheaply (no read): name, size and modification time."""
    st = path.stat()
    return {"name": path.name, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


#: sha256 (hex) of a file's bytes (the cache's own hash function, so both name files alike)
sha256_of: Callable[[Path], str] = file_sha256


def download(url: str, name: str, folder: Path, sha256: str | None = None) -> Path:
    """Download ``url`` into ``folder/name`` with pooch (a progress bar on the terminal).

    With ``sha256`` pooch checks the bytes (and does not download again a
    file already there with that hash). The Zenodo records of the
    first-party datasets publish no checksums, so they pass none: their
    loaders validate the file's structure instead and record the size and
    sha256 of the copy they actually read.
    """
    import pooch

    known_hash = f"sha256:{sha256}" if sha256 else None
    return Path(pooch.retrieve(url, known_hash=known_hash, fname=name, path=folder, progressbar=True))


def fetch_files(dataset: str, files: Iterable[RemoteFile], progress: Progress) -> list[Path]:
    """Download each of ``files`` into the dataset's downloads folder (what ``Dataset.fetch`` does by default)."""
    folder, paths = downloads_dir(dataset), []
    for remote in files:
        progress.log(f"downloading {remote.name} from {remote.url}")
        paths.append(download(remote.url, remote.name, folder, remote.sha256))
    return paths


# -- cache of converted raw tables -------------------------------------------
def cached_raw_table(dataset: str, path: Path, converter_version: str,
                     convert: Callable[[Path], pl.DataFrame],
                     progress: Progress | None = None) -> tuple[pl.DataFrame, dict[str, Any]]:
    """The raw (unsplit, unpreprocessed) table of one input file, converted once.

    Stored as Parquet (zstd) under the cache root keyed by the file's identity
    and ``converter_version`` (bump it when ``convert`` changes), so a change
    of split or preprocessing options never reads the input again. Returns the
    table and the facts recorded about the input (size, sha256 of the bytes
    read, content hash of the converted table). The sidecar JSON holds the
    sha256 of the Parquet file; a cached file that does not match it (or
    cannot be read) is named in a warning and converted again from ``path``.
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


def load_benchmark(name: str, version: str, options: Any, inputs: Mapping[str, Path],
                   read_raw: Callable[[Path], tuple[pl.DataFrame, dict[str, Any]]],
                   assemble: Callable[[dict[str, pl.DataFrame], dict[str, dict[str, Any]]], Benchmark],
                   identity: Callable[[Path], dict[str, Any]] = file_identity,
                   reader_version: str = "1", key: Mapping[str, Any] | None = None,
                   data_seed: int | None = None) -> Benchmark:
    """The cached :class:`Benchmark` of ``inputs`` (role -> file) under ``options``.

    The cache key holds the options, the reader version, each input's
    identity (size + mtime by default) and ``key`` (anything else that changes
    the content, e.g. ``{"data_seed": self.data_seed}``), so a second load
    with the same files reads Parquet only and never opens the inputs. On a
    miss, each input is read with ``read_raw`` (which may itself cache raw
    tables, see :func:`cached_raw_table`) and the benchmark is put together by
    ``assemble(raw_tables, input_facts)``. ``data_seed`` (the dataset's
    ``--data-seed``, which ``assemble`` must split with) joins the key when
    given, so each data seed is cached apart and the canonical split keeps its key.
    """
    cache_key = {
        "options": as_dict(options), "reader": reader_version,
        "inputs": {role: identity(path) for role, path in sorted(inputs.items())},
    }
    if key:  # only when given, so that the keys (and caches) of datasets without it stay as they were
        cache_key["extra"] = dict(key)
    if data_seed is not None:
        cache_key["data_seed"] = data_seed

    def build() -> Benchmark:
        tables, facts = {}, {}
        for role, path in inputs.items():
            tables[role], facts[role] = read_raw(path)
        return assemble(tables, facts)

    return cached_benchmark(name, version, cache_key, build)


# -- splits ------------------------------------------------------------------
def split_rows(n: int, fractions: Sequence[float], seed: int, stream: str,
               data_seed: int | None = None) -> list[np.ndarray]:
    """Partition ``range(n)`` at random into ``len(fractions) + 1`` disjoint parts.

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
    """Options validation (raise ValueError, which ``-o`` parsing reports as a one-line error):
    each fraction in [0, 1] and their sum below 1 (the rest is the last part)."""
    for name, value in fractions.items():
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name}={value} must lie in [0, 1]")
    total = sum(fractions.values())
    if total >= 1.0:
        raise ValueError(f"{' + '.join(fractions)} = {total:g} must be below 1 (the rest is the last split)")


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


def with_bookkeeping(table: pl.DataFrame, process: str, weight: float = 1.0) -> pl.DataFrame:
    """Add ``process`` and, unless the table already carries per-event weights, a constant ``weight``."""
    w = pl.col(WEIGHT).cast(pl.Float64) if WEIGHT in table.columns else pl.lit(weight, dtype=pl.Float64)
    return table.with_columns(w.alias(WEIGHT), pl.lit(process).alias(PROCESS))


# -- preprocessing -------------------------------------------------------------
@dataclass
class Standardiser:
    """``log1p`` on the listed columns, then ``(x - mean) / std`` per column.

    Fit it on the training rows only (never on test or signal rows); columns
    with zero spread get std 1 so that constant columns pass through
    shifted, not divided by zero.
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
        """The fitted constants, JSON-ready (for ``Benchmark.meta``)."""
        return {
            "log1p": list(self.log_columns),
            "mean": {c: float(m) for c, m in zip(self.columns, self.mean)},
            "std": {c: float(s) for c, s in zip(self.columns, self.std)},
        }


# -- what a dataset declares ------------------------------------------------------
def dataset_facts(cls: type[Dataset], distribution: str) -> list[tuple[str, str]]:
    """(label, text) lines saying what a dataset class declares, for ``hepad-bench datasets info``.

    Read from the class only (nothing is loaded or downloaded).
    """
    from hepad_bench.contracts import config_fields

    downloads = cache_root() / "downloads" / cls.name  # not downloads_dir(): that creates the folder
    if cls.remote_files:
        names = ", ".join(f.name for f in cls.remote_files)
        files = f"{names}; 'hepad-bench datasets fetch {cls.name}' downloads them into {downloads}"
    elif cls.has_remote_files():
        files = f"public files (which depend on the options); 'hepad-bench datasets fetch {cls.name}' downloads them into {downloads}"
    else:
        files = f"none to download (the data comes with {distribution} or is made locally; see the card)"
    if cls.task == "resonant":
        training = "data: background plus injected signal, truth in 'label' (resonant task)"
    elif cls.contaminated_training:
        training = ("may hold unlabelled signal (contaminated, ADBench's unsupervised protocol); "
                    "each run records the fraction as train_contamination")
    else:
        training = "background only"
    options = ", ".join(f"{f.name}={_default_text(f)}" for f in config_fields(cls.Options)) or "none"
    return [
        ("dataset", f"{cls.name} version {cls.version} ({cls.task})"),
        ("distribution", distribution),
        ("files", files),
        ("data seeds", "splits drawn from the data seed" if cls.uses_data_seed else "one fixed split (no data seed)"),
        ("training data", training),
        ("options (-o, defaults)", options),
    ]


def _default_text(f: Any) -> str:
    import dataclasses

    if f.default is not dataclasses.MISSING:
        return str(f.default)
    if f.default_factory is not dataclasses.MISSING:
        return str(f.default_factory())
    return "(required)"
