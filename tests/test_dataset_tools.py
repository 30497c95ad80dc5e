"""The public dataset helpers (hepad_bench.dataset_tools) and the Dataset contract's files, seeds and contamination.

Downloads go through pooch for real, from an HTTP server on localhost serving
a temporary folder, so the checksum check is pooch's own.
"""

import functools
import hashlib
import http.server
import threading
import types
import warnings

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hepad_bench
from hepad_bench import Benchmark, Dataset, Progress, RemoteFile, UserError, cli, hookimpl
from hepad_bench import dataset_tools as dt
from hepad_bench.plugins import load_registry
from hepad_bench.runner import Runner, RunSpec

FEATURES = ["a", "b"]


# -- splits --------------------------------------------------------------------------
@settings(max_examples=50, deadline=None)
@given(n=st.integers(0, 500), fractions=st.lists(st.floats(0, 0.5), min_size=0, max_size=2),
       seed=st.integers(0, 2**31))
def test_split_rows_partitions_with_floor_sizes(n, fractions, seed):
    parts = dt.split_rows(n, fractions, seed, "stream")
    assert len(parts) == len(fractions) + 1
    assert [len(p) for p in parts[:-1]] == [int(np.floor(f * n)) for f in fractions]
    assert sorted(np.concatenate(parts).tolist()) == list(range(n))  # disjoint and complete


def test_split_rows_is_deterministic_per_seed_and_stream():
    a = dt.split_rows(1000, [0.3], 1, "bkg")
    assert all(np.array_equal(x, y) for x, y in zip(a, dt.split_rows(1000, [0.3], 1, "bkg")))
    assert not np.array_equal(a[0], dt.split_rows(1000, [0.3], 2, "bkg")[0])
    assert not np.array_equal(a[0], dt.split_rows(1000, [0.3], 1, "sig")[0])
    with pytest.raises(UserError, match="sum to at most 1"):
        dt.split_rows(10, [0.7, 0.7], 1, "x")


def test_check_fractions_says_which_option():
    with pytest.raises(ValueError, match="train_fraction \\+ validation_fraction = 1.1"):
        dt.check_fractions(train_fraction=0.6, validation_fraction=0.5)
    with pytest.raises(ValueError, match="validation_fraction=-0.1"):
        dt.check_fractions(validation_fraction=-0.1)


# -- files -----------------------------------------------------------------------------
def test_sha256_of_is_the_bytes_hash(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"hepad" * 1000)
    assert dt.sha256_of(path) == hashlib.sha256(b"hepad" * 1000).hexdigest()


def test_require_file_looks_in_data_dir_then_downloads(tmp_path):
    data_dir = tmp_path / "mine"
    data_dir.mkdir()
    (dt.downloads_dir("thing") / "events.csv").write_text("downloaded")
    assert dt.require_file("thing", "events.csv", data_dir).read_text() == "downloaded"
    (data_dir / "events.csv").write_text("mine")
    assert dt.require_file("thing", "events.csv", data_dir).read_text() == "mine"  # --data-dir wins
    assert dt.require_file("thing", ["new.csv", "events.csv"], data_dir).name == "events.csv"  # an alternative name


def test_missing_file_is_one_line_saying_how_to_get_it_and_where_to_put_it(tmp_path):
    with pytest.raises(UserError) as err:
        dt.require_file("thing", "events.csv", tmp_path, url="https://example.org/events.csv")
    text = str(err.value)
    assert "\n" not in text and "events.csv not found in" in text
    assert str(tmp_path) in text and str(dt.downloads_dir("thing")) in text
    assert "hepad-bench datasets fetch thing" in text and "https://example.org/events.csv" in text
    with pytest.raises(UserError, match="put it into --data-dir"):
        dt.require_file("thing", "events.csv", None)


@pytest.fixture
def server(tmp_path, monkeypatch):
    """An HTTP server on localhost serving the folder it returns (with the base URL)."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    folder = tmp_path / "served"
    folder.mkdir()
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):  # no access log on the test's stderr
            pass

    handler = functools.partial(Quiet, directory=str(folder))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_download_checks_the_sha256(server, tmp_path):
    folder, base = server
    (folder / "data.csv").write_bytes(b"a,b\n1,2\n")
    good = hashlib.sha256(b"a,b\n1,2\n").hexdigest()
    path = dt.download(f"{base}/data.csv", "data.csv", tmp_path / "one", sha256=good)
    assert path.read_bytes() == b"a,b\n1,2\n"
    with pytest.raises(ValueError, match="(?i)hash"):
        dt.download(f"{base}/data.csv", "data.csv", tmp_path / "two", sha256="0" * 64)
    assert not (tmp_path / "two" / "data.csv").exists()  # pooch leaves no file that failed the check


class Plain(Dataset):
    name, version = "plain", "1"

    def load(self, data_dir, progress):
        raise NotImplementedError


class Overridden(Plain):
    name = "overridden"

    def fetch(self, progress):
        return []


def test_has_remote_files():
    declared = type("Declared", (Plain,), {"name": "declared", "remote_files": (RemoteFile("x", "https://e/x"),)})
    assert (Plain.has_remote_files(), Overridden.has_remote_files(), declared.has_remote_files()) == (False, True, True)
    assert Plain().fetch(Progress()) == []


# -- the cache ---------------------------------------------------------------------------
def test_cached_raw_table_converts_once_and_rebuilds_a_damaged_entry(tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("a,b\n1,2\n3,4\n")
    calls = []

    def convert(p):
        calls.append(p)
        return pl.read_csv(p)

    table, facts = dt.cached_raw_table("thing", src, "1", convert)
    again, _ = dt.cached_raw_table("thing", src, "1", convert)
    assert len(calls) == 1 and again.equals(table) and facts["sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    (parquet,) = (dt.cache_root() / "converted" / "thing").glob("*.parquet")
    raw = bytearray(parquet.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    parquet.write_bytes(bytes(raw))
    with pytest.warns(UserWarning, match="damaged cache entry of thing"):
        rebuilt, _ = dt.cached_raw_table("thing", src, "1", convert)
    assert len(calls) == 2 and rebuilt.equals(table)


def _bench(n_train=4, label=None):
    def table(n):
        cols = {f: np.arange(n, dtype=np.float32) for f in FEATURES} | {"weight": np.ones(n), "process": ["bkg"] * n}
        return pl.DataFrame(cols if label is None else cols | {"label": np.array(label[:n], dtype=np.int8)})
    return Benchmark(dataset="thing", version="1", task="unsupervised", features=FEATURES, train=table(n_train),
                     validation=table(0), test=table(3), signals={"s": table(2)})


def test_load_benchmark_reads_inputs_once_per_key(tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("x\n1\n")
    reads = []

    def read_raw(p):
        reads.append(p)
        return pl.read_csv(p), {}

    build = dict(read_raw=read_raw, assemble=lambda raw, facts: _bench())
    dt.load_benchmark("thing", "1", None, {"events": src}, **build)
    dt.load_benchmark("thing", "1", None, {"events": src}, **build)
    assert len(reads) == 1
    dt.load_benchmark("thing", "1", None, {"events": src}, key={"data_seed": 3}, **build)
    dt.load_benchmark("thing", "1", None, {"events": src}, key={"data_seed": 3}, **build)
    assert len(reads) == 2  # another data seed is another entry, cached in its turn


def test_private_module_and_top_level_re_export_the_public_helpers():
    from hepad_plugins.datasets import _common

    for name in ("split_rows", "cached_raw_table", "load_benchmark", "find_file", "search_dirs", "download",
                 "sha256_of", "Standardiser", "take", "with_bookkeeping"):
        assert getattr(_common, name) is getattr(dt, name)
    assert set(dt.__all__) <= set(dir(dt))
    assert {"Dataset", "Benchmark", "Progress", "RemoteFile", "hookimpl"} <= set(hepad_bench.__all__)


# -- the CLI and the runner with a third-party dataset --------------------------------------
class Remote(Plain):
    """A dataset with one public file (served by the test)."""

    name = "remote-thing"
    remote_files = ()  # set per test


class Clean(Plain):
    name = "clean-thing"

    def load(self, data_dir, progress):
        return _bench(4, label=[0, 1, 0, 0])


class Dirty(Clean):
    name = "dirty-thing"
    contaminated_training = True


def third_party_registry():
    module = types.ModuleType("third_party_datasets")
    module.hepad_datasets = hookimpl(lambda: [Plain, Remote, Clean, Dirty])
    return load_registry(extra_plugins=[("third-party-dist", module)], warn=lambda m: None)


@pytest.fixture
def third_party_cli(monkeypatch):
    reg = third_party_registry()
    monkeypatch.setattr(cli, "registry", lambda: reg)
    return reg


def test_fetch_downloads_declared_files_and_names_the_distribution(third_party_cli, server, capsys, monkeypatch):
    folder, base = server
    (folder / "events.csv").write_bytes(b"x\n1\n")
    monkeypatch.setattr(Remote, "remote_files", (RemoteFile("events.csv", f"{base}/events.csv",
                                                            hashlib.sha256(b"x\n1\n").hexdigest()),))
    cli.main(["datasets", "fetch", "remote-thing"])
    out, err = capsys.readouterr()
    path = dt.downloads_dir("remote-thing") / "events.csv"
    assert str(path) in out and path.read_bytes() == b"x\n1\n"
    assert "remote-thing (from third-party-dist)" in err


def test_fetch_failure_is_one_line_naming_the_distribution(third_party_cli, server, capsys, monkeypatch):
    _, base = server
    monkeypatch.setattr(Remote, "remote_files", (RemoteFile("missing.csv", f"{base}/missing.csv"),))
    with pytest.raises(SystemExit) as ex:
        cli.main(["datasets", "fetch", "remote-thing"])
    err = capsys.readouterr().err
    (error,) = [line for line in err.splitlines() if line.startswith("error:")]  # the progress log aside: one line
    assert ex.value.code == 2 and "fetching remote-thing (from third-party-dist) failed: HTTPError: 404" in error


def test_fetch_and_info_without_files_speak_for_the_plugin(third_party_cli, capsys):
    cli.main(["datasets", "fetch", "plain"])
    out = capsys.readouterr().out
    assert "plain (from third-party-dist) has no files to download" in out and "ships with hepad-bench" not in out
    cli.main(["datasets", "info", "plain"])
    out = capsys.readouterr().out
    assert "distribution: third-party-dist" in out and "files: none to download" in out
    assert "one fixed split (no data seed)" in out and "training data: background only" in out
    assert "plain has no card (third-party-dist provides none)" in out


def test_undeclared_training_signal_is_refused_before_training(tmp_path):
    runner = Runner(third_party_registry(), tmp_path / "out")
    with pytest.raises(UserError, match="clean-thing puts signal .* does not declare contaminated_training"):
        runner.preflight([RunSpec(dataset="clean-thing", detector="iforest")])


def test_declared_contamination_is_measured_into_run_json(tmp_path):
    runner = Runner(third_party_registry(), tmp_path / "out")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (res,) = runner.run_all([RunSpec(dataset="dirty-thing", detector="hbos")])
    assert res.status == "ok", res.error
    assert res.run["train_contamination"] == pytest.approx(1 / 4)  # one label-1 row among four
    assert res.run["versions"]["dataset_distribution"] == "third-party-dist"


def test_bad_remote_files_make_the_plugin_broken_not_the_harness():
    bad = type("BadFiles", (Plain,), {"name": "bad-files", "remote_files": ("https://example.org/x.csv",)})
    module = types.ModuleType("bad_files_plugin")
    module.hepad_datasets = hookimpl(lambda: [bad, Plain])
    notes = []
    reg = load_registry(extra_plugins=[("bad-dist", module)], warn=notes.append)
    assert "bad-files" not in reg.datasets and "plain" in reg.datasets
    (broken,) = [b for b in reg.broken if b.distribution == "bad-dist"]
    assert "remote_files" in broken.reason and any("bad-files" in n for n in notes)


def test_first_party_fetch_and_info_with_the_real_registry(capsys):
    cli.main(["datasets", "info", "adc2021"])
    out = capsys.readouterr().out
    assert "distribution: hepad-bench" in out and "background_for_training.h5" in out
    assert "'hepad-bench datasets fetch adc2021' downloads them" in out
    cli.main(["datasets", "fetch", "l1-pythia"])
    assert "l1-pythia (from hepad-bench) has no files to download" in capsys.readouterr().out
