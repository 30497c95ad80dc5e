"""Memory of the data path (cache -> Benchmark -> detector) and batch-independent scoring.

The cached tables are read into one column-major float32 block per table and handed to
detectors as views; nothing on the way may copy the full feature table (let alone in
float64). numpy allocations are traced by ``tracemalloc``, so the bounds below count
every array the loader, the runner's glue and the HBOS adapter make; torch allocations
are not traced, so the autoencoder is checked through the process's resident memory.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import threading
import time
import tracemalloc

import numpy as np
import polars as pl
import pyarrow.parquet  # noqa: F401  (imported here, not inside a traced load)
import pytest
from pyod.models.hbos import HBOS

from hepad_bench.cache import read_parquet_block, table_sha256
from hepad_bench.contracts import FitContext, Progress
from hepad_bench.data import TrainingData
from hepad_bench.runner import Runner
from hepad_bench.dataset_tools import Standardiser, take, take_block, with_bookkeeping
from hepad_plugins.datasets.adc2021 import ADC2021, FEATURES, PT_FEATURES
from hepad_plugins.detectors import autoencoders, baselines
from hepad_plugins.detectors.autoencoders import AEDetector, VAEDetector, _column_mean_std
from hepad_plugins.detectors.baselines import HBOSDetector

from test_dataset_adc2021 import write_adc_folder


def traced_peak(fn):
    """(result, peak bytes of numpy/Python allocations made while ``fn`` ran)."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        out = fn()
        return out, tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


@pytest.fixture(scope="module")
def cached_adc(tmp_path_factory):
    """An ADC2021-layout folder (30 000 background events) whose benchmark is already in a private cache."""
    root = tmp_path_factory.mktemp("adc-memory")
    folder = write_adc_folder(root / "data", n_background=30_000, n_signal=3_000, signals=("Ato4l",))
    return folder, root / "cache"


@pytest.fixture
def bench(cached_adc, monkeypatch):
    folder, cache = cached_adc
    monkeypatch.setenv("HEPAD_BENCH_CACHE", str(cache))
    ADC2021().load(folder, Progress())  # builds the cache once (later calls read it)
    return ADC2021().load(folder, Progress())


def table_bytes(bench) -> int:
    return sum(t.height for t in bench.tables().values()) * len(bench.features) * 4


# -- the cache and the loader ------------------------------------------------------------
def test_cached_load_reads_the_big_splits_on_use_and_holds_each_once(cached_adc, monkeypatch):
    folder, cache = cached_adc
    monkeypatch.setenv("HEPAD_BENCH_CACHE", str(cache))
    ADC2021().load(folder, Progress())
    bench, open_peak = traced_peak(lambda: ADC2021().load(folder, Progress()))
    counts = bench.event_counts()  # from the Parquet footers
    row_bytes = len(FEATURES) * 4
    lazy = sum(counts[name] for name in ("train", "validation", "test")) * row_bytes
    eager = sum(counts.values()) * row_bytes - lazy
    slack = (1 << 22) + (1 << 20)  # one column at a time and the 4 MiB read buffer of the sha256 check
    # opening the entry checks every file's sha256 but reads only the small tables (here the signal)
    assert open_peak < 1.15 * eager + slack < lazy
    # on use, every float32 table once (the blocks); a second float32 copy would add 1x, a float64 one 2x
    tables, use_peak = traced_peak(bench.tables)
    assert {k: v.height for k, v in tables.items()} == counts
    assert lazy <= use_peak < 1.15 * lazy + slack
    del tables
    bench.release()
    tracemalloc.start()
    try:
        bench.tables()
        held = tracemalloc.get_traced_memory()[0]
        bench.release()
        assert held - tracemalloc.get_traced_memory()[0] >= lazy  # released means freed
    finally:
        tracemalloc.stop()
    assert bench.event_counts() == counts and bench.test.height == counts["test"]  # and read back on demand


def test_a_run_never_holds_training_and_test_splits_together(bench, tmp_path, monkeypatch):
    """The runner releases train + validation after fitting, before the test split is read."""
    from hepad_bench.plugins import load_registry
    from hepad_bench.runner import RunSpec
    from hepad_bench.workers import InProcessWorker

    held = []
    score = InProcessWorker.score

    def spy(self, x, mjj):
        held.append(sorted(name for name, table in bench._loaded.items() if table is not None))
        return score(self, x, mjj)

    monkeypatch.setattr(InProcessWorker, "score", spy)
    runner = Runner(load_registry(), tmp_path / "results")
    monkeypatch.setattr(runner, "benchmark", lambda spec: bench)
    result = runner.run_one(RunSpec(dataset="adc2021", detector="hbos", seed=1))
    assert result.status == "ok", result.error
    assert held and all(names == ["test"] for names in held[:1])  # background scores: the test split alone
    assert all(table is None for table in bench._loaded.values())  # nothing held between runs


def test_features_of_is_a_view_of_the_cached_table(bench):
    for name, table in bench.tables().items():
        x = bench.features_of(table)
        assert x.dtype == np.float32 and x.shape == (table.height, len(FEATURES))
        assert np.shares_memory(x, table[FEATURES[0]].to_numpy()), name
        assert not x.flags.writeable
        np.testing.assert_array_equal(x[:, 5], table[FEATURES[5]].to_numpy())


def test_runner_training_data_and_test_matrix_copy_nothing_large(bench):
    runner = Runner.__new__(Runner)  # only the pure helper is exercised here
    bench.tables()  # read from the cache first: what is traced is the helper alone
    data, peak = traced_peak(lambda: runner._training_data(bench, "unsupervised", None))
    assert np.shares_memory(data.x, bench.train[FEATURES[0]].to_numpy())
    assert np.shares_memory(data.x_val, bench.validation[FEATURES[0]].to_numpy())
    assert peak < 0.05 * bench.train.height * len(FEATURES) * 4


def test_read_parquet_block_equals_polars(tmp_path):
    rng = np.random.default_rng(3)
    n = 1000
    table = pl.DataFrame({
        "a": rng.normal(size=n).astype(np.float32), "b": rng.normal(size=n).astype(np.float32),
        "nulls": pl.Series([None, 1.5] * (n // 2), dtype=pl.Float32), "w": rng.normal(size=n),
        "c": rng.normal(size=n).astype(np.float32), "p": ["x", "yz"] * (n // 2),
    })
    for stats in (True, False):
        path = tmp_path / f"t{stats}.parquet"
        table.write_parquet(path, statistics=stats, row_group_size=300)
        back = read_parquet_block(path)
        assert back.equals(table) and back.schema == table.schema
        view = back.select(["a", "b"]).to_numpy()
        assert np.shares_memory(view, back["a"].to_numpy())  # adjacent float32 columns: one block


def test_take_block_equals_transform_of_take_bit_for_bit():
    rng = np.random.default_rng(4)
    n = 5000
    raw = pl.DataFrame({f: (rng.exponential(20, n) if f.endswith("_pt") else rng.normal(size=n)).astype(np.float32)
                        for f in FEATURES[:12]})
    rows = rng.permutation(n)[:3000]
    prep = Standardiser.fit(raw, FEATURES[:12], PT_FEATURES[:4], rows=rows)
    # the old way: a copy of the training rows, fitted and transformed whole
    old_prep = Standardiser.fit(take(raw, rows), FEATURES[:12], PT_FEATURES[:4])
    np.testing.assert_array_equal(prep.mean, old_prep.mean)
    np.testing.assert_array_equal(prep.std, old_prep.std)
    lean = with_bookkeeping(take_block(raw, rows, FEATURES[:12], prep), "background")
    old = with_bookkeeping(old_prep.transform(take(raw, rows)), "background")
    assert table_sha256(lean) == table_sha256(old)  # the content hash (run keys) is unchanged
    assert lean.equals(old)


def test_table_hash_of_text_columns_is_the_one_shot_join():
    col = ["background", None, "", "sig"] * 40_000  # longer than one hashing slice
    table = pl.DataFrame({"p": col})
    digest = hashlib.sha256(f"{table.height}\0".encode())
    digest.update("p\0String\0".encode())
    digest.update("\0".join("\1" if v is None else v for v in col).encode())
    assert table_sha256(table) == digest.hexdigest()


def test_column_mean_std_independent_of_layout():
    rng = np.random.default_rng(5)
    x = (rng.normal(size=(150_001, 7)) * [1, 10, 100, 1e3, 1, 1, 5] + 3).astype(np.float32)
    mean_c, std_c = _column_mean_std(x)
    mean_f, std_f = _column_mean_std(np.asfortranarray(x))
    np.testing.assert_array_equal(mean_c, mean_f)
    np.testing.assert_array_equal(std_c, std_f)
    # the former formula (whole-array reductions of a C-ordered array), bit for bit
    mean = x.sum(axis=0, dtype=np.float64) / len(x)
    squares = sum(np.square(x[a:a + 65536] - mean).sum(axis=0) for a in range(0, len(x), 65536))
    np.testing.assert_array_equal(mean_c, mean)
    np.testing.assert_array_equal(std_c, np.sqrt(squares / len(x)))
    np.testing.assert_allclose(mean_c, x.astype(np.float64).mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(std_c, x.astype(np.float64).std(axis=0), rtol=1e-10)


# -- HBOS: PyOD's histograms without PyOD's full-matrix fit --------------------------------
def _train(x: np.ndarray) -> TrainingData:
    return TrainingData(features=[f"f{i}" for i in range(x.shape[1])], x=x, weight=np.ones(len(x)),
                        x_val=x[:100], weight_val=np.ones(100))


@pytest.mark.parametrize("n_bins", [10, "auto"])
def test_hbos_equals_pyod_fit_bit_for_bit(n_bins):
    rng = np.random.default_rng(6)
    x = np.asfortranarray(np.c_[rng.normal(size=(20_000, 3)), rng.exponential(2, (20_000, 2))].astype(np.float32))
    # wider than the training range, so that values fall just outside the edges (within tol) and far outside
    x_test = np.asfortranarray(np.r_[rng.normal(scale=1.5, size=(3_000, 5)), rng.normal(scale=8.0, size=(500, 5)),
                                     x[:200]].astype(np.float32))
    det = HBOSDetector(HBOSDetector.Config(n_bins=n_bins))
    det.fit(_train(x), FitContext(seed=1))
    ref = HBOS(n_bins=n_bins, alpha=0.1, tol=0.5).fit(x.astype(np.float64))
    if n_bins == "auto":
        for mine, theirs in zip(det.model.bin_edges_, ref.bin_edges_):
            np.testing.assert_array_equal(mine, theirs)
    else:
        np.testing.assert_array_equal(det.model.hist_, ref.hist_)
        np.testing.assert_array_equal(det.model.bin_edges_, ref.bin_edges_)
    np.testing.assert_array_equal(det.score(x_test), ref.decision_function(x_test.astype(np.float64)))


HBOS_NO_JIT = """
import numpy as np
import pyod.models.hbos as pyod_hbos
from hepad_bench import FitContext, TrainingData
from hepad_plugins.detectors.baselines import HBOSDetector
x = np.asfortranarray(np.random.default_rng(8).normal(size=(2_000, 4)).astype(np.float32))
det = HBOSDetector(HBOSDetector.Config())
det.fit(TrainingData(features=list("abcd"), x=x, weight=np.ones(2_000), x_val=x[:10], weight_val=np.ones(10)),
        FitContext(seed=1))
det.score(x)
print(len(pyod_hbos._calculate_outlier_scores.signatures))
"""


def test_hbos_scores_without_compiling_pyods_numba_loop():
    """The fixed-bin scores come from numpy: PyOD's numba loop (~170 MB once compiled) is never compiled.
    In a fresh interpreter, since any test that calls ``HBOS.fit`` compiles it for the rest of the session."""
    done = subprocess.run([sys.executable, "-c", HBOS_NO_JIT], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["0"]


def test_hbos_memory_and_slicing(bench, monkeypatch):
    monkeypatch.setattr(baselines, "SCORE_ROWS", 1000)
    runner = Runner.__new__(Runner)
    data = runner._training_data(bench, "unsupervised", None)
    det = HBOSDetector(HBOSDetector.Config())
    train_bytes = data.x.nbytes
    _, fit_peak = traced_peak(lambda: det.fit(data, FitContext(seed=1)))
    assert fit_peak < 0.2 * train_bytes  # a float64 copy would be 2x, PyOD's training scores another 2x
    x_test = bench.features_of(bench.test)
    scores, score_peak = traced_peak(lambda: det.score(x_test))
    assert score_peak < 0.5 * x_test.nbytes
    monkeypatch.setattr(baselines, "SCORE_ROWS", len(x_test) + 1)  # one call over everything
    np.testing.assert_array_equal(scores, det.score(x_test))


# -- autoencoders: batched scoring, and no copy of the table ---------------------------------
@pytest.mark.parametrize("cls", [AEDetector, VAEDetector])
def test_batched_scoring_equals_unbatched(cls, monkeypatch):
    rng = np.random.default_rng(7)
    x = rng.normal(size=(3_000, 9)).astype(np.float32)
    det = cls(cls.Config(epochs=2, hidden=(8, 4), latent=2))
    det.fit(_train(x), FitContext(seed=3))
    x_test = np.asfortranarray(rng.normal(size=(1_001, 9)).astype(np.float32))
    monkeypatch.setattr(autoencoders, "ROW_BATCH", 10_000)
    whole = det.score(x_test)
    monkeypatch.setattr(autoencoders, "ROW_BATCH", 37)
    np.testing.assert_array_equal(det.score(x_test), whole)
    monkeypatch.setattr(autoencoders, "ROW_BATCH", 2048)
    pieces = np.concatenate([det.score(np.ascontiguousarray(x_test[i:i + 50])) for i in range(0, 1_000, 100)])
    np.testing.assert_array_equal(pieces, np.concatenate([whole[i:i + 50] for i in range(0, 1_000, 100)]))


def test_batch_bounds():
    from hepad_plugins.detectors._torch import batch_bounds

    assert batch_bounds(10, 4, min_batch=3) == [(0, 4), (4, 10)]  # a last batch of 2 joins the one before
    assert batch_bounds(11, 4, min_batch=3) == [(0, 4), (4, 8), (8, 11)]
    assert batch_bounds(2, 4, min_batch=3) == [(0, 2)]
    assert batch_bounds(0, 4) == []


def test_ae_score_is_the_float32_reconstruction_error():
    """Independent check of the score: the mean squared error of the network's own reconstruction."""
    rng = np.random.default_rng(8)
    x = rng.normal(size=(2_000, 6)).astype(np.float32)
    det = AEDetector(AEDetector.Config(epochs=2, hidden=(5,), latent=2))
    det.fit(_train(x), FitContext(seed=4))
    z = det.transform(x)
    expected = ((det.reconstruct(x) - z) ** 2).mean(axis=1)
    np.testing.assert_allclose(det.score(x), expected, rtol=1e-5)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * 4096


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")
def test_ae_fit_and_score_make_no_copy_of_the_table():
    rng = np.random.default_rng(9)
    n, d = 400_000, 57
    x = np.asfortranarray(rng.normal(size=(n, d)).astype(np.float32))  # 91 MB, laid out as the cache's view
    x.flags.writeable = False
    x_val = np.asfortranarray(rng.normal(size=(n // 10, d)).astype(np.float32))
    x_val.flags.writeable = False
    cfg = AEDetector.Config(epochs=1, batch_size=8192)
    AEDetector(cfg).fit(_train(x[:5000].copy()), FitContext(seed=1))  # torch's one-off start-up, not counted
    peak, done = [_rss_bytes()], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss_bytes())
            time.sleep(0.002)

    start = _rss_bytes()
    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        det = AEDetector(cfg)
        det.fit(TrainingData(features=[f"f{i}" for i in range(d)], x=x, weight=np.ones(n), x_val=x_val,
                             weight_val=np.ones(len(x_val))), FitContext(seed=1))
        det.score(x)
    finally:
        done.set()
        sampler.join()
    # a standardised copy of the table alone would be 1.0x (the former code made two)
    assert peak[0] - start < 0.5 * x.nbytes
