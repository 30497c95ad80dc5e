"""Where converted data and downloads live, and the Parquet cache of benchmarks.

The root is ``platformdirs.user_cache_dir("hepad-bench")`` unless
``HEPAD_BENCH_CACHE`` is set. Converted tables are keyed by dataset name,
version and a hash of the options, and written atomically so that many runs
may read one cache at once and a killed conversion leaves nothing half-made.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import platformdirs

from hepad_bench.data import Benchmark
from hepad_bench.params import stable_hash

ENV_CACHE = "HEPAD_BENCH_CACHE"


def cache_root() -> Path:
    root = os.environ.get(ENV_CACHE)
    return Path(root) if root else Path(platformdirs.user_cache_dir("hepad-bench"))


def downloads_dir(dataset: str) -> Path:
    """Where ``hepad-bench datasets fetch`` puts a dataset's public files."""
    path = cache_root() / "downloads" / dataset
    path.mkdir(parents=True, exist_ok=True)
    return path


def _table_file(name: str) -> str:
    return name.replace("/", "__") + ".parquet"


def _write_benchmark(folder: Path, bench: Benchmark) -> None:
    for name, table in bench.tables().items():
        table.write_parquet(folder / _table_file(name), compression="zstd")
    header = {
        "dataset": bench.dataset, "version": bench.version, "task": bench.task,
        "features": bench.features, "resonant": bench.resonant, "meta": bench.meta,
        "tables": list(bench.tables()),
    }
    (folder / "benchmark.json").write_text(json.dumps(header, indent=1, default=str))


def _read_benchmark(folder: Path) -> Benchmark:
    header = json.loads((folder / "benchmark.json").read_text())
    tables = {name: pl.read_parquet(folder / _table_file(name)) for name in header["tables"]}

    def group(prefix: str) -> dict[str, pl.DataFrame]:
        return {k.split("/", 1)[1]: v for k, v in tables.items() if k.startswith(prefix + "/")}

    return Benchmark(
        dataset=header["dataset"], version=header["version"], task=header["task"],
        features=header["features"], train=tables["train"], validation=tables["validation"],
        test=tables["test"], signals=group("signal"), signal_train=group("signal_train"),
        extra=group("extra"), resonant=header["resonant"], meta=header["meta"],
    )


def cached_benchmark(name: str, version: str, key: dict[str, Any], build: Callable[[], Benchmark]) -> Benchmark:
    """Return the cached benchmark for (name, version, key), building it once.

    ``key`` holds everything that changes the content (options, input file
    sizes/checksums, ...). The second call reads Parquet and never calls ``build``.
    """
    folder = cache_root() / "benchmarks" / name / version / stable_hash(key)
    if (folder / "benchmark.json").exists():
        return _read_benchmark(folder)
    bench = build()
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
    return bench
