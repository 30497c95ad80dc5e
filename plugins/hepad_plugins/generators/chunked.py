"""Chunked, resumable, parallel event generation.

A generation job is split per process into chunks of ``chunk_size`` kept
events. Each chunk is produced by a user function ``make_chunk(process,
n_events, chunk_seed)`` and written to
``out_dir/.chunks/<job_name>/<process>/<index>.npz`` through a temporary file
renamed into place, so an interrupted job leaves only complete chunks and a
rerun generates just the missing ones.

Why chunks with their own seeds: the seed of chunk ``i`` of process ``p``
derives from ``(seed, p, i)`` only, so the output does not depend on the
number of workers nor on which chunks were generated in an earlier run.

``make_chunk`` must be a top-level (picklable) function. It returns a dict of
numpy arrays that all have ``n_events`` rows (first axis = events); keys that
start with ``"_"`` are scalar metadata merged over chunks:

* keys starting with ``"_n_"`` (counts such as ``"_n_tried"``) are summed;
* every other ``"_"`` key (``"_sigma_gen_mb"``, ...) is averaged over chunks,
  weighted by the chunk's ``"_n_tried"`` when the chunk reports it (the
  estimate of a cross section from more tried events counts more), else by the
  chunk's number of events.

The merged metadata of a process also holds ``"_n_chunks"``.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
import zlib
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hepad_bench.contracts import Progress

#: Pythia accepts seeds in [1, 900 000 000]; the derived seeds stay inside.
MAX_SEED = 900_000_000
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_.+-]+$")

MakeChunk = Callable[[str, int, int], dict[str, np.ndarray]]


@dataclass(frozen=True)
class ProcessJob:
    """One process of a job: ``n_events`` is the number of events to KEEP (after filters)."""

    name: str
    n_events: int


def chunk_seed(seed: int, process: str, index: int, stream: str = "") -> int:
    """The seed of chunk ``index`` of ``process`` (1..MAX_SEED), a pure function of its arguments.

    ``stream`` separates samples of the same process that must be statistically
    independent (a pilot run and the main run): with equal seed, process and
    index they would otherwise replay the same events. The empty stream keeps
    the seeds of samples generated before it existed.
    """
    entropy = [int(seed), zlib.crc32(process.encode()), int(index)]
    if stream:
        entropy.append(zlib.crc32(stream.encode()))
    state = np.random.SeedSequence(entropy).generate_state(2, np.uint64)
    return int(state[0] % MAX_SEED) + 1


def chunk_sizes(n_events: int, chunk_size: int) -> list[int]:
    """Split ``n_events`` into chunks of ``chunk_size`` (the last one smaller)."""
    full, rest = divmod(n_events, chunk_size)
    return [chunk_size] * full + ([rest] if rest else [])


def _chunk_path(root: Path, process: str, index: int) -> Path:
    return root / process / f"{index:06d}.npz"


def _read_chunk(path: Path, expected_seed: int, expected_events: int, settings_key: str) -> dict[str, np.ndarray] | None:
    """The chunk's arrays, or None when it is missing, unreadable or from other settings."""
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            data = {k: npz[k] for k in npz.files}
    except Exception:  # a corrupt file (disk full, foreign file): regenerate it
        return None
    meta_ok = (
        int(data.get("__chunk_seed", -1)) == expected_seed
        and int(data.get("__n_events", -1)) == expected_events
        and str(data.get("__settings_key", "")) == settings_key
    )
    return data if meta_ok else None


def _write_atomic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` to ``path`` so that readers see either nothing or the whole file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _generate_chunk(make_chunk: MakeChunk, process: str, n_events: int, seed: int, path: str, settings_key: str) -> tuple[int, float]:
    """Run ``make_chunk`` and store its result (in a worker process or in process)."""
    start = time.perf_counter()
    result = make_chunk(process, n_events, seed)
    arrays = {k: np.asarray(v) for k, v in result.items()}
    for key, value in arrays.items():
        if key.startswith("_"):
            if value.ndim != 0:
                raise ValueError(f"make_chunk metadata '{key}' of {process} must be a scalar")
        elif value.ndim == 0 or len(value) != n_events:
            raise ValueError(
                f"make_chunk returned {key} with {0 if value.ndim == 0 else len(value)} rows for {process}, "
                f"expected {n_events} kept events"
            )
    arrays["__chunk_seed"] = np.asarray(seed)
    arrays["__n_events"] = np.asarray(n_events)
    arrays["__settings_key"] = np.asarray(settings_key)
    _write_atomic(Path(path), arrays)
    return n_events, time.perf_counter() - start


def merge_metadata(chunks: list[dict[str, np.ndarray]]) -> dict[str, float]:
    """Merge the ``"_"`` scalars of a process's chunks (see the module docstring)."""
    keys = sorted({k for c in chunks for k in c if k.startswith("_") and not k.startswith("__")})
    merged: dict[str, float] = {"_n_chunks": len(chunks)}
    for key in keys:
        present = [c for c in chunks if key in c]
        values = np.array([float(c[key]) for c in present])
        if key.startswith("_n_"):
            merged[key] = float(values.sum())
            continue
        weights = np.array([
            float(c["_n_tried"]) if "_n_tried" in c else float(c["__n_events"]) for c in present
        ])
        merged[key] = float(np.average(values, weights=weights)) if weights.sum() > 0 else float(values.mean())
    return merged


def _concatenate(chunks: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    if not chunks:
        return {}
    names = [k for k in chunks[0] if not k.startswith("_")]
    return {k: np.concatenate([c[k] for c in chunks], axis=0) for k in names}


def run_chunked(
    out_dir: Path,
    job_name: str,
    processes: list[ProcessJob],
    make_chunk: MakeChunk,
    seed: int,
    workers: int,
    progress: Progress,
    chunk_size: int = 1000,
    *,
    settings_key: str = "",
    stream: str = "",
) -> dict[str, dict[str, np.ndarray]]:
    """Generate every process's events in resumable chunks; return them concatenated.

    Returns, per process name, the concatenated arrays plus the merged ``"_"``
    metadata (as 0-d float arrays). ``settings_key`` (optional) is stored in
    every chunk: a chunk written with another key, seed or size is regenerated,
    so stale chunks of a changed configuration are never reused. ``stream``
    (optional) gives this job random streams of its own (see :func:`chunk_seed`).
    """
    if workers < 1:
        raise ValueError("workers must be >= 1")
    if chunk_size < 1:
        raise ValueError("chunk_size must be >= 1")
    for name in [job_name, *(p.name for p in processes)]:
        if not _SAFE_NAME.match(name):
            raise ValueError(f"job/process name '{name}' must be letters, digits, '_', '.', '+' or '-'")
    root = Path(out_dir) / ".chunks" / job_name

    # Plan every chunk; keep the ones already on disk.
    plan: list[tuple[str, int, int, int, Path]] = []  # process, index, n, seed, path
    for proc in processes:
        for index, n in enumerate(chunk_sizes(proc.n_events, chunk_size)):
            plan.append((proc.name, index, n, chunk_seed(seed, proc.name, index, stream), _chunk_path(root, proc.name, index)))
    missing = [c for c in plan if _read_chunk(c[4], c[3], c[2], settings_key) is None]
    total = sum(c[2] for c in plan)
    done_before = total - sum(c[2] for c in missing)
    if done_before:
        progress.log(f"{job_name}: reusing {len(plan) - len(missing)} finished chunks ({done_before} events)")

    start = time.perf_counter()
    generated = 0
    with progress.task(f"generate {job_name}", total=total) as advance:
        advance(done_before)
        if workers == 1 or len(missing) <= 1:
            for proc_name, _i, n, cseed, path in missing:
                _generate_chunk(make_chunk, proc_name, n, cseed, str(path), settings_key)
                generated += n
                advance(n)
        else:
            with ProcessPoolExecutor(max_workers=min(workers, len(missing))) as pool:
                pending = {
                    pool.submit(_generate_chunk, make_chunk, proc_name, n, cseed, str(path), settings_key)
                    for proc_name, _i, n, cseed, path in missing
                }
                try:
                    while pending:
                        finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                        for fut in finished:
                            n, _secs = fut.result()
                            generated += n
                            advance(n)
                except BaseException:
                    # Drop queued chunks; running ones still finish and are written whole.
                    pool.shutdown(wait=False, cancel_futures=True)
                    raise
    elapsed = time.perf_counter() - start
    if generated:
        progress.log(f"{job_name}: generated {generated} events in {elapsed:.1f} s ({generated / elapsed:.1f} events/s)")

    results: dict[str, dict[str, np.ndarray]] = {}
    for proc in processes:
        chunks = []
        for proc_name, _i, n, cseed, path in plan:
            if proc_name != proc.name:
                continue
            data = _read_chunk(path, cseed, n, settings_key)
            if data is None:
                raise RuntimeError(f"chunk {path} is missing or unreadable after generation")
            chunks.append(data)
        merged = _concatenate(chunks)
        merged.update({k: np.asarray(v) for k, v in merge_metadata(chunks).items()})
        results[proc.name] = merged
    return results
