"""Chunked generation: determinism across worker counts, resume, atomic chunks, metadata merging."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from hepad_bench.contracts import Progress
from hepad_plugins.generators.chunked import ProcessJob, chunk_seed, chunk_sizes, merge_metadata, run_chunked

CALLS_FILE = "HEPAD_TEST_CHUNK_CALLS"


def toy_chunk(process: str, n_events: int, seed: int) -> dict[str, np.ndarray]:
    """A cheap stand-in for a generator; logs each call so tests can count regenerations."""
    log = os.environ.get(CALLS_FILE)
    if log:
        with open(log, "a") as fh:
            fh.write(f"{process} {seed}\n")
    rng = np.random.default_rng(seed)
    return {
        "x": rng.normal(size=(n_events, 3, 2)).astype(np.float32),
        "pid": np.full(n_events, len(process), dtype=np.int16),
        "_n_tried": np.asarray(2 * n_events),
        "_sigma_gen_mb": np.asarray(1.0 + seed % 7),
    }


def bad_chunk(process: str, n_events: int, seed: int) -> dict[str, np.ndarray]:
    return {"x": np.zeros(n_events + 1)}


JOBS = [ProcessJob("alpha", 25), ProcessJob("beta", 20)]


def test_chunk_sizes_and_seeds():
    assert chunk_sizes(25, 10) == [10, 10, 5]
    assert chunk_sizes(20, 10) == [10, 10]
    assert chunk_sizes(0, 10) == []
    seeds = {chunk_seed(7, p, i) for p in ("a", "b") for i in range(50)}
    assert len(seeds) == 100  # distinct streams per (process, chunk)
    assert all(1 <= s <= 900_000_000 for s in seeds)
    assert chunk_seed(7, "a", 3) == chunk_seed(7, "a", 3)
    assert chunk_seed(7, "a", 3) != chunk_seed(8, "a", 3)
    assert chunk_seed(7, "a", 3, "pilot") != chunk_seed(7, "a", 3) == chunk_seed(7, "a", 3, "")


def test_same_output_for_any_worker_count(tmp_path):
    one = run_chunked(tmp_path / "w1", "toy", JOBS, toy_chunk, seed=5, workers=1, progress=Progress(), chunk_size=10)
    two = run_chunked(tmp_path / "w2", "toy", JOBS, toy_chunk, seed=5, workers=2, progress=Progress(), chunk_size=10)
    for proc in ("alpha", "beta"):
        assert one[proc]["x"].shape == ((25, 3, 2) if proc == "alpha" else (20, 3, 2))
        np.testing.assert_array_equal(one[proc]["x"], two[proc]["x"])
        np.testing.assert_array_equal(one[proc]["pid"], two[proc]["pid"])
    # The chunks are the generator's own output for the derived seeds, in order.
    expected = np.concatenate([toy_chunk("alpha", n, chunk_seed(5, "alpha", i))["x"] for i, n in enumerate([10, 10, 5])])
    np.testing.assert_array_equal(one["alpha"]["x"], expected)
    other = run_chunked(tmp_path / "w3", "toy", JOBS, toy_chunk, seed=6, workers=1, progress=Progress(), chunk_size=10)
    assert not np.array_equal(other["alpha"]["x"], one["alpha"]["x"])


def test_metadata_merge_by_hand():
    chunks = [
        {"_n_tried": np.asarray(30.0), "_sigma": np.asarray(2.0), "__n_events": np.asarray(10)},
        {"_n_tried": np.asarray(10.0), "_sigma": np.asarray(6.0), "__n_events": np.asarray(5)},
    ]
    merged = merge_metadata(chunks)
    assert merged["_n_tried"] == 40.0
    assert merged["_sigma"] == pytest.approx((30 * 2 + 10 * 6) / 40)  # weighted by tried events
    assert merged["_n_chunks"] == 2


def test_resume_skips_finished_chunks_and_replaces_broken_ones(tmp_path, monkeypatch):
    log = tmp_path / "calls.txt"
    monkeypatch.setenv(CALLS_FILE, str(log))
    first = run_chunked(tmp_path / "out", "toy", JOBS, toy_chunk, seed=9, workers=1, progress=Progress(), chunk_size=10)
    assert len(log.read_text().splitlines()) == 5  # 3 alpha (10+10+5) + 2 beta (10+10) chunks

    chunk_dir = tmp_path / "out" / ".chunks" / "toy"
    (chunk_dir / "alpha" / "000001.npz").unlink()  # an interrupted run never finished this chunk
    (chunk_dir / "beta" / "000000.npz").write_bytes(b"half a file")  # a corrupt/foreign file
    # A leftover temporary file of a killed writer must not be picked up as a chunk.
    (chunk_dir / "beta" / ".000001.abc.tmp").write_bytes(b"junk")
    log.write_text("")
    second = run_chunked(tmp_path / "out", "toy", JOBS, toy_chunk, seed=9, workers=1, progress=Progress(), chunk_size=10)
    calls = log.read_text().splitlines()
    assert sorted(calls) == sorted([f"alpha {chunk_seed(9, 'alpha', 1)}", f"beta {chunk_seed(9, 'beta', 0)}"])
    for proc in ("alpha", "beta"):
        np.testing.assert_array_equal(first[proc]["x"], second[proc]["x"])
    assert float(second["alpha"]["_n_tried"]) == 50.0

    # A third run has nothing to do.
    log.write_text("")
    run_chunked(tmp_path / "out", "toy", JOBS, toy_chunk, seed=9, workers=2, progress=Progress(), chunk_size=10)
    assert log.read_text() == ""

    # Chunks written with another seed or settings are stale and regenerated.
    run_chunked(tmp_path / "out", "toy", JOBS, toy_chunk, seed=9, workers=1, progress=Progress(), chunk_size=10,
                settings_key="other")
    assert len(log.read_text().splitlines()) == 5


def test_no_temporary_files_left_and_bad_chunks_rejected(tmp_path):
    run_chunked(tmp_path, "toy", JOBS, toy_chunk, seed=1, workers=2, progress=Progress(), chunk_size=10)
    leftovers = [p for p in Path(tmp_path).rglob("*") if p.is_file() and not p.name.endswith(".npz")]
    assert leftovers == []
    with pytest.raises(ValueError, match="expected 10 kept events"):
        run_chunked(tmp_path / "bad", "toy", [ProcessJob("a", 10)], bad_chunk, seed=1, workers=1, progress=Progress(),
                    chunk_size=10)
    assert not any((tmp_path / "bad").rglob("*.npz"))
    with pytest.raises(ValueError, match="must be letters"):
        run_chunked(tmp_path, "toy", [ProcessJob("a/b", 1)], toy_chunk, seed=1, workers=1, progress=Progress())
