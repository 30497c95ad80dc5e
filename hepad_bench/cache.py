"""Where converted data and downloads live, and the Parquet cache of benchmarks.

The root is ``platformdirs.user_cache_dir("hepad-bench")`` unless
``HEPAD_BENCH_CACHE`` is set. Converted tables are keyed by dataset name,
version and a hash of the options, and written atomically so that many runs
may read one cache at once and a killed conversion leaves nothing half-made.

Every entry records the sha256 of each Parquet file it wrote (``benchmark.json``)
and is checked on load: a damaged entry (flipped byte, truncated file) is
named in one warning, discarded and rebuilt from the source files. The
benchmark's content fingerprint (:func:`content_fingerprint`, computed once
when it is built) is stored with it and becomes part of every run key.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import platformdirs

from hepad_bench.data import Benchmark
from hepad_bench.params import stable_hash

ENV_CACHE = "HEPAD_BENCH_CACHE"
#: Bump when the layout of a cache entry changes (older entries are rebuilt).
CACHE_FORMAT = 2
#: Rows of a text column hashed at once (:func:`table_sha256`).
TEXT_SLICE = 65536


class CorruptCache(Exception):
    """A cache entry whose files do not match their recorded hashes (or cannot be read)."""


def cache_root() -> Path:
    root = os.environ.get(ENV_CACHE)
    return Path(root) if root else Path(platformdirs.user_cache_dir("hepad-bench"))


def downloads_dir(dataset: str) -> Path:
    """Where ``hepad-bench datasets fetch`` puts a dataset's public files."""
    path = cache_root() / "downloads" / dataset
    path.mkdir(parents=True, exist_ok=True)
    return path


def file_sha256(path: Path, block: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def table_sha256(table: pl.DataFrame, digest: Any = None) -> str:
    """A hash of a table's content (column names, dtypes, values), independent of how it is stored."""
    digest = digest or hashlib.sha256()
    digest.update(f"{table.height}\0".encode())
    for name in table.columns:
        col = table[name]
        digest.update(f"{name}\0{col.dtype}\0".encode())
        if col.dtype.is_numeric() and col.null_count() == 0:
            digest.update(col.to_numpy().tobytes())
        else:  # strings, nulls: their text form, null marked apart from any string, joined by NUL
            # fed in slices (the same bytes as one join): no Python string per row of the whole column
            for start in range(0, col.len(), TEXT_SLICE):
                text = "\0".join("\1" if v is None else str(v) for v in col.slice(start, TEXT_SLICE).to_list())
                digest.update((("\0" if start else "") + text).encode())
    return digest.hexdigest()


def content_fingerprint(bench: Benchmark) -> str:
    """The content hash of every table of a benchmark (what ``Benchmark.fingerprint`` holds)."""
    digest = hashlib.sha256()
    for name, table in sorted(bench.tables().items()):
        digest.update(f"{name}\0".encode())
        table_sha256(table, digest)
    return digest.hexdigest()[:16]


def verified_parquet(path: Path, sha256: str | None) -> pl.DataFrame:
    """Read a cached Parquet file whose bytes must hash to ``sha256``; CorruptCache otherwise.

    The float32 columns come back as views of one column-major block (:func:`read_parquet_block`),
    so ``Benchmark.features_of`` hands detectors the table itself, not a copy.
    """
    return _VerifiedFile(path, sha256)()


def read_parquet_block(path: Path) -> pl.DataFrame:
    """A Parquet file as a polars table whose float32 columns without nulls share one column-major block.

    The block is allocated once and filled one column at a time (memory: the table plus one column),
    and polars wraps its columns without a copy. Consecutive float32 columns are adjacent in
    memory, so ``table.select(those columns).to_numpy()`` is a zero-copy (n, d) view: the whole feature
    matrix of a benchmark table exists once. Other columns are read as polars reads them.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    schema, n = pf.schema_arrow, pf.metadata.num_rows
    names = schema.names
    floats = [name for name in names if schema.field(name).type == pa.float32() and not _may_hold_nulls(pf, name)]
    block = np.empty((n, len(floats)), dtype=np.float32, order="F")
    for j, name in enumerate(floats):  # polars per column: it keeps less behind than pyarrow's reader (measured)
        block[:, j] = pl.read_parquet(path, columns=[name]).to_series().to_numpy()
    others = [name for name in names if name not in floats]
    rest = pl.read_parquet(path, columns=others) if others else None
    return pl.DataFrame([pl.Series(name, block[:, floats.index(name)]) if name in floats else rest[name]
                         for name in names])


def _may_hold_nulls(pf: Any, name: str) -> bool:
    """Whether a Parquet column may hold nulls: its null counts, or, without statistics, a read of it."""
    index = pf.schema_arrow.names.index(name)
    for g in range(pf.metadata.num_row_groups):
        stats = pf.metadata.row_group(g).column(index).statistics
        if stats is None or not stats.has_null_count:
            return pf.read(columns=[name]).column(0).null_count > 0
        if stats.null_count:
            return True
    return False


def write_parquet_hashed(table: pl.DataFrame, path: Path) -> str:
    """Write ``table`` and return the sha256 of the bytes written (the sidecar checks it on load)."""
    table.write_parquet(path, compression="zstd")
    return file_sha256(path)


def _table_file(name: str) -> str:
    return name.replace("/", "__") + ".parquet"


def _write_benchmark(folder: Path, bench: Benchmark) -> None:
    files = {}
    for name, table in bench.tables().items():
        files[_table_file(name)] = write_parquet_hashed(table, folder / _table_file(name))
    header = {
        "format": CACHE_FORMAT, "dataset": bench.dataset, "version": bench.version, "task": bench.task,
        "features": bench.features, "resonant": bench.resonant, "meta": bench.meta,
        "tables": list(bench.tables()), "files": files, "fingerprint": bench.fingerprint,
        "train_contamination": bench.train_contamination,
    }
    (folder / "benchmark.json").write_text(json.dumps(header, indent=1, default=str))


class _VerifiedFile:
    """Reads one cached Parquet file, checking its sha256 once: again only if its size or mtime changes."""

    def __init__(self, path: Path, sha256: str | None):
        self.path, self.sha256, self.checked = path, sha256, None

    def verify(self) -> None:
        if not self.path.is_file():
            raise CorruptCache(f"{self.path} is missing")
        stat = self.path.stat()
        if self.checked != (stat.st_size, stat.st_mtime_ns):
            if self.sha256 is None or file_sha256(self.path) != self.sha256:
                raise CorruptCache(f"{self.path} does not match its recorded sha256")
            self.checked = (stat.st_size, stat.st_mtime_ns)

    def __call__(self) -> pl.DataFrame:
        self.verify()
        try:
            return read_parquet_block(self.path)
        except Exception as exc:  # polars and pyarrow raise several types for a damaged file
            raise CorruptCache(f"{self.path} cannot be read ({type(exc).__name__})") from None

    def height(self) -> int:
        import pyarrow.parquet as pq

        return pq.read_metadata(self.path).num_rows


#: The tables :class:`CachedBenchmark` reads on first use (the big ones); the others are read with the header.
LAZY_TABLES = ("train", "validation", "test")


def _lazy_table(name: str) -> property:
    def get(self: CachedBenchmark) -> pl.DataFrame:
        table = self._loaded.get(name)
        if table is None:
            table = self._loaded[name] = self._readers[name]()
        return table

    def put(self: CachedBenchmark, table: pl.DataFrame | None) -> None:
        self.__dict__.setdefault("_loaded", {})[name] = table

    return property(get, put, doc=f"The {name} table, read from the cache on first use (see ``release``).")


class CachedBenchmark(Benchmark):
    """A benchmark read from the cache whose ``train``, ``validation`` and ``test`` are read on first use.

    At collaboration scale these three are the whole table (GBs), and a run
    needs ``train`` + ``validation`` to fit and ``test`` to score, never all at
    once: the runner calls :meth:`release` between the two, so peak memory is
    the larger of the two phases, not their sum. Each file's sha256 is checked
    when the entry is opened (a damaged entry is rebuilt, as before) and again
    only if the file changes. Anything else (signals, extra tables) is read at
    once. Built with tables in memory (``dataclasses.replace``), it is an
    ordinary :class:`Benchmark`.
    """

    train = _lazy_table("train")
    validation = _lazy_table("validation")
    test = _lazy_table("test")
    _readers: dict[str, _VerifiedFile] = {}  # noqa: RUF012 (never mutated: an instance sets its own)

    def __init__(self, *args: Any, readers: dict[str, _VerifiedFile] | None = None, **fields: Any):
        if readers is not None:
            self._readers = readers
            fields = {name: None for name in LAZY_TABLES} | fields
        super().__init__(*args, **fields)

    def release(self, *names: str) -> None:
        for name in names or LAZY_TABLES:
            if name in self._readers:
                self._loaded[name] = None

    def event_counts(self) -> dict[str, int]:
        """Counts from the Parquet footers for tables not in memory (reading nothing else)."""
        lazy = {name: (self._loaded[name].height if self._loaded.get(name) is not None else reader.height())
                for name, reader in self._readers.items()}
        return {name: lazy.get(name) if name in lazy else table.height
                for name, table in self._eager_tables().items()}

    def _eager_tables(self) -> dict[str, pl.DataFrame | None]:
        out: dict[str, pl.DataFrame | None] = {name: self._loaded.get(name) for name in LAZY_TABLES}
        out |= {f"signal/{k}": v for k, v in self.signals.items()}
        out |= {f"signal_train/{k}": v for k, v in self.signal_train.items()}
        out |= {f"extra/{k}": v for k, v in self.extra.items()}
        return out


def _read_benchmark(folder: Path) -> Benchmark:
    try:
        header = json.loads((folder / "benchmark.json").read_text())
    except (OSError, ValueError) as exc:
        raise CorruptCache(f"{folder / 'benchmark.json'} cannot be read ({type(exc).__name__})") from None
    files = header.get("files", {})
    readers = {name: _VerifiedFile(folder / _table_file(name), files.get(_table_file(name)))
               for name in header["tables"]}
    for reader in readers.values():  # every file checked now: a damaged entry is found before any run starts
        reader.verify()
    tables = {name: reader() for name, reader in readers.items() if name not in LAZY_TABLES}

    def group(prefix: str) -> dict[str, pl.DataFrame]:
        return {k.split("/", 1)[1]: v for k, v in tables.items() if k.startswith(prefix + "/")}

    return CachedBenchmark(
        dataset=header["dataset"], version=header["version"], task=header["task"],
        features=header["features"], signals=group("signal"), signal_train=group("signal_train"),
        extra=group("extra"), resonant=header["resonant"], meta=header["meta"],
        fingerprint=header["fingerprint"], train_contamination=header.get("train_contamination"),
        readers={name: readers[name] for name in LAZY_TABLES},
    )


def _header_format(folder: Path) -> int | None:
    try:
        return json.loads((folder / "benchmark.json").read_text()).get("format")
    except (OSError, ValueError, AttributeError):
        return None


def cached_benchmark(name: str, version: str, key: dict[str, Any], build: Callable[[], Benchmark]) -> Benchmark:
    """Return the cached benchmark for (name, version, key), building it once.

    ``key`` holds everything that changes the content (options, input file
    sizes/checksums, ...). The second call reads Parquet and never calls ``build``.
    A damaged entry is named in a warning, discarded and rebuilt.
    """
    folder = cache_root() / "benchmarks" / name / version / stable_hash(key)
    if (folder / "benchmark.json").exists():
        if _header_format(folder) == CACHE_FORMAT:
            try:
                return _read_benchmark(folder)
            except CorruptCache as exc:
                warnings.warn(f"damaged cache entry of {name}: {exc}; discarded, rebuilding from the source files",
                              UserWarning, stacklevel=2)
        shutil.rmtree(folder, ignore_errors=True)  # damaged, or written by an older hepad-bench
    bench = build()
    if bench.fingerprint is None:
        bench.fingerprint = content_fingerprint(bench)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=folder.parent))
    try:
        _write_benchmark(tmp, bench)
        (tmp / "key.json").write_text(json.dumps(key, indent=1, default=str))
        try:
            tmp.rename(folder)
        except OSError:  # another process finished first: theirs is as good
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    del bench  # the first run reads its splits from the entry too, one phase at a time, like every later run
    return _read_benchmark(folder)
