"""Fault injection: bad files, broken plugins, usage errors, kills and concurrent runs.

Every case asserts the exit code, a one-line message naming the culprit (no
traceback) and, where the fault must not touch stored results, that a
checksum of the results tree is unchanged. The data are tiny ADC2021-layout
files (the public layout, written by the adc2021 tests' fixture) or the toy
plugin; subprocesses only where a real process is needed (kill -9, two grids).

``HEPAD_FAULT_TABLE=path pytest tests/test_faults.py`` writes the table of
cases (exit code, message) measured here.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import types
from importlib.metadata import EntryPoint
from pathlib import Path

import h5py
import numpy as np
import polars as pl
import pytest

import fault_plugin
import toy_plugin
from hepad_bench import __version__, cli, hookimpl, store
from hepad_bench import plugins as plugins_mod
from hepad_bench.plugins import load_registry
from hepad_bench.runner import Runner, RunSpec, expand_grid
from hepad_plugins.datasets import adc2021
from test_dataset_adc2021 import write_adc_file, write_adc_folder

TESTS = Path(__file__).parent
TABLE: list[tuple[str, int, str]] = []
FAST = ["--max-events", "200", "--quiet", "--device", "cpu"]


# -- helpers ----------------------------------------------------------------------
def tree_digest(root: Path) -> str:
    """sha256 over the paths and bytes of every result file (hidden locks and temporary folders aside)."""
    digest = hashlib.sha256()
    root = Path(root)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts):
            continue
        digest.update(str(rel).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def invoke(args: list[str], capsys) -> tuple[int, str, str]:
    try:
        cli.main(args)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def lines_of(err: str, contains: str | None = None) -> list[str]:
    """The non-empty lines of stderr (the console is made wide, so a line is a message), optionally filtered."""
    return [x.strip() for x in err.splitlines() if x.strip() and (contains is None or contains in x)]


@pytest.fixture(autouse=True)
def _wide_console(monkeypatch):
    from hepad_bench.console import err_console

    monkeypatch.setattr(err_console, "width", 1000)


def record(case: str, code: int, message: str) -> None:
    TABLE.append((case, code, " ".join(message.split())[:160]))


def expect_error(case: str, args: list[str], capsys, culprit: str, code: int = 2) -> str:
    got, _out, err = invoke(args, capsys)
    lines = [x for x in err.splitlines() if x.strip()]
    record(case, got, lines[0] if lines else "")
    assert got == code, err
    assert "Traceback" not in err
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert culprit in lines[0], err
    return lines[0]


@pytest.fixture(scope="module", autouse=True)
def _write_table():
    yield
    target = os.environ.get("HEPAD_FAULT_TABLE")
    if target:
        rows = ["| case | exit | message |", "|---|---|---|"]
        rows += [f"| {c} | {k} | `{m.replace('|', '/')}` |" for c, k, m in TABLE]
        Path(target).write_text("\n".join(rows) + "\n")


@pytest.fixture(scope="module")
def adc_dirs(tmp_path_factory):
    """Two ADC2021-layout folders with different events (A, B)."""
    root = tmp_path_factory.mktemp("adc")
    return write_adc_folder(root / "A", n_background=600, n_signal=150, seed=1), \
        write_adc_folder(root / "B", n_background=600, n_signal=150, seed=2)


@pytest.fixture
def results_a(adc_dirs, tmp_path, capsys):
    """A results folder holding one complete hbos run on folder A."""
    out = tmp_path / "results"
    code, _, err = invoke(["run", "-d", "hbos", "--dataset", "adc2021", "--data-dir", str(adc_dirs[0]),
                           "--output", str(out), *FAST], capsys)
    assert code == 0, err
    return out


def copy_adc(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


@pytest.fixture
def toy_cli(monkeypatch):
    registry = load_registry(extra_plugins=[("toy-dist", toy_plugin), ("fault-dist", fault_plugin)], warn=lambda m: None)
    monkeypatch.setattr(cli, "registry", lambda: registry)
    return registry


# -- stale results: the key holds the data read ----------------------------------------
def test_other_input_files_are_other_runs(adc_dirs, results_a, capsys):
    (first,) = results_a.glob("adc2021/hbos/*/run.json")
    code, _, err = invoke(["run", "-d", "hbos", "--dataset", "adc2021", "--data-dir", str(adc_dirs[1]),
                           "--output", str(results_a), *FAST], capsys)
    record("--data-dir B after a run on A (different files)", code, lines_of(err, " ok in ")[0])
    assert code == 0 and lines_of(err, " ok in ") and not lines_of(err, " skipped in ")
    runs = [json.loads(p.read_text()) for p in results_a.glob("adc2021/hbos/*/run.json")]
    assert len(runs) == 2
    fingerprints = {r["dataset"]["fingerprint"] for r in runs}
    assert len(fingerprints) == 2 and None not in fingerprints
    assert json.loads(first.read_text())["dataset"]["fingerprint"] in fingerprints
    # the same files again: the same key, nothing recomputed
    code, _, err = invoke(["run", "-d", "hbos", "--dataset", "adc2021", "--data-dir", str(adc_dirs[1]),
                           "--output", str(results_a), *FAST], capsys)
    assert code == 0 and lines_of(err, " skipped in ") and not lines_of(err, " ok in ")


def test_data_dir_missing_the_background_is_an_error_not_old_numbers(adc_dirs, results_a, tmp_path, capsys):
    broken = copy_adc(adc_dirs[1], tmp_path / "B")
    (broken / adc2021.BACKGROUND_FILE).unlink()
    before = tree_digest(results_a)
    expect_error("--data-dir without the background file", ["run", "-d", "hbos", "--dataset", "adc2021",
                 "--data-dir", str(broken), "--output", str(results_a), *FAST], capsys, adc2021.BACKGROUND_FILE)
    assert tree_digest(results_a) == before


# -- bad input files ---------------------------------------------------------------------
def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:300])


def _wrong_shape(path: Path) -> None:
    write_adc_file(path, np.zeros((20, 18, 4)))


def _wrong_dtype(path: Path) -> None:
    with h5py.File(path, "w") as fh:
        fh.create_dataset("Particles", data=np.zeros((20, 19, 4), dtype=np.int32))


def _nan(path: Path) -> None:
    with h5py.File(path, "r+") as fh:
        fh["Particles"][3, 0, 0] = np.nan


def _inf(path: Path) -> None:
    with h5py.File(path, "r+") as fh:
        fh["Particles"][5, 2, 1] = np.inf


def _empty_file(path: Path) -> None:
    path.write_bytes(b"")


@pytest.mark.parametrize("case, damage, message", [
    ("truncated HDF5 background", _truncate, "not a readable HDF5 file"),
    ("background of wrong shape", _wrong_shape, "has shape (20, 18, 4)"),
    ("background of integer dtype", _wrong_dtype, "expected floating point"),
    ("NaN in the background", _nan, "non-finite values"),
    ("inf in the background", _inf, "non-finite values"),
    ("empty (0-byte) background file", _empty_file, "not a readable HDF5 file"),
])
def test_bad_input_file_is_named_in_one_line(adc_dirs, results_a, tmp_path, capsys, case, damage, message):
    data = copy_adc(adc_dirs[1], tmp_path / "bad")
    damage(data / adc2021.BACKGROUND_FILE)
    before = tree_digest(results_a)
    line = expect_error(case, ["run", "-d", "hbos", "--dataset", "adc2021", "--data-dir", str(data),
                               "--output", str(results_a), *FAST], capsys, str(data / adc2021.BACKGROUND_FILE))
    assert message in line
    assert tree_digest(results_a) == before


def test_missing_and_empty_signal_files_are_skipped_with_a_warning(adc_dirs, tmp_path, capsys):
    data = copy_adc(adc_dirs[0], tmp_path / "partial")
    (data / adc2021.SIGNALS["Ato4l"].names[0]).unlink()
    empty = data / adc2021.SIGNALS["leptoquark"].names[0]
    write_adc_file(empty, np.zeros((0, 19, 4)))
    code, _, err = invoke(["run", "-d", "hbos", "--dataset", "adc2021", "--data-dir", str(data),
                           "--output", str(tmp_path / "out"), *FAST], capsys)
    warnings = lines_of(err, "warning:")
    record("missing signal file", code, next(w for w in warnings if "Ato4l" in w))
    record("0-event signal file", code, next(w for w in warnings if "no events" in w))
    assert code == 0 and "Traceback" not in err
    assert any(str(empty) in w and "no events" in w for w in warnings)
    (run_json,) = (tmp_path / "out").glob("adc2021/hbos/*/run.json")
    assert json.loads(run_json.read_text())["signals"] == ["hChToTauNu", "hToTauTau"]


# -- the cache verifies what it reads -----------------------------------------------------
def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(data)


def _cut(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _load(data_dir: Path, **options):
    from hepad_bench.params import build_config

    opts = build_config(adc2021.ADC2021.Options, {k: str(v) for k, v in options.items()}, "adc2021")
    return adc2021.ADC2021(opts).load(data_dir, None)


@pytest.mark.parametrize("damage", [_flip_byte, _cut], ids=["byte-flip", "truncated"])
@pytest.mark.parametrize("level", ["benchmark", "converted"])
def test_damaged_cache_is_named_discarded_and_rebuilt(adc_dirs, tmp_path, capsys, damage, level):
    cache = Path(os.environ["HEPAD_BENCH_CACHE"])
    reference = _load(adc_dirs[0])  # builds both cache levels
    if level == "benchmark":
        target = next(cache.glob("benchmarks/adc2021/*/*/train.parquet"))
        options: list[str] = []
    else:
        target = next(cache.glob("converted/adc2021/background_for_training-*.parquet"))
        options = ["-o", "seed=7"]
        reference = _load(adc_dirs[0], seed=7)
        shutil.rmtree(cache / "benchmarks")  # the benchmark is assembled again, from the converted table
    damage(target)
    args = ["run", "-d", "hbos", "--dataset", "adc2021", "--data-dir", str(adc_dirs[0]), *options,
            "--output", str(tmp_path / "out"), *FAST]
    code, _, err = invoke(args, capsys)
    warnings = lines_of(err, "warning:")
    record(f"{damage.__name__.strip('_')} of a {level} cache file", code, warnings[0] if warnings else "")
    assert code == 0 and "Traceback" not in err
    assert len(warnings) == 1 and "damaged cache entry" in warnings[0]
    assert str(target) in warnings[0]
    rebuilt = _load(adc_dirs[0], **({"seed": 7} if options else {}))
    for name, table in reference.tables().items():
        assert rebuilt.tables()[name].equals(table), name  # not a single value changed
    assert rebuilt.fingerprint == reference.fingerprint
    code, _, err = invoke(args, capsys)  # the rebuilt entry is good: no second warning
    assert code == 0 and not lines_of(err, "warning:")


# -- usage errors: exit 2, the option named -----------------------------------------------
@pytest.mark.parametrize("case, args, culprit", [
    ("unknown detector", ["run", "-d", "nope", "--dataset", "toy"], "unknown detector 'nope'"),
    ("unknown dataset", ["run", "-d", "toy-norm", "--dataset", "nope"], "unknown dataset 'nope'"),
    ("unknown -p name", ["run", "-d", "toy-norm", "--dataset", "toy", "-p", "pwr=2"], "no parameter 'pwr'"),
    ("bad -p value", ["run", "-d", "toy-norm", "--dataset", "toy", "-p", "power=big"], "'power'"),
    ("-p value nan", ["run", "-d", "toy-norm", "--dataset", "toy", "-p", "power=nan"], "'power'"),
    ("-p value inf", ["run", "-d", "toy-norm", "--dataset", "toy", "-p", "power=inf"], "'power'"),
    ("-p without =", ["run", "-d", "toy-norm", "--dataset", "toy", "-p", "power"], "'power'"),
    ("-p scoped to an absent detector", ["run", "-d", "toy-norm", "--dataset", "toy", "-p", "ae.epochs=1"], "'ae.epochs'"),
    ("unknown -o option", ["run", "-d", "toy-norm", "--dataset", "toy", "-o", "m=1"], "no parameter 'm'"),
    ("--seed abc", ["run", "-d", "toy-norm", "--dataset", "toy", "--seed", "abc"], "'--seed'"),
    ("--max-events 0", ["run", "-d", "toy-norm", "--dataset", "toy", "--max-events", "0"], "'--max-events'"),
    ("--timeout 0", ["run", "-d", "toy-norm", "--dataset", "toy", "--timeout", "0"], "'--timeout'"),
    ("--device tpu", ["run", "-d", "toy-norm", "--dataset", "toy", "--device", "tpu"], "unknown device 'tpu'"),
    ("unknown option", ["run", "-d", "toy-norm", "--dataset", "toy", "--bogus"], "--bogus"),
    ("missing --detector", ["run", "--dataset", "toy"], "--detector"),
    ("unknown command", ["frobnicate"], "frobnicate"),
    ("--data-dir not a folder", ["run", "-d", "toy-norm", "--dataset", "toy", "--data-dir", "/no/such/dir"], "/no/such/dir"),
    ("detector needs validation events", ["run", "-d", "toy-needs-val", "--dataset", "toy", "-o", "n=20"], "toy-needs-val"),
    ("leaderboard of a missing folder", ["leaderboard", "/no/such/results"], "/no/such/results"),
])
def test_user_errors_exit_2_in_one_line_before_any_training(toy_cli, tmp_path, capsys, case, args, culprit):
    out = tmp_path / "results"
    store.write_run(store.run_dir(out, "toy", "toy-norm", "k"), {"status": "ok"}, None, {"s": {"a": 1.0}})
    before = tree_digest(out)
    full = [*args, "--output", str(out)] if args[0] == "run" else args
    expect_error(case, full, capsys, culprit)
    assert tree_digest(out) == before


def test_version_and_bare_command_exit_0(capsys):
    code, out, _ = invoke(["--version"], capsys)
    record("--version", code, out.strip())
    assert code == 0 and out.strip() == __version__
    code, out, err = invoke([], capsys)
    record("bare hepad-bench", code, "prints the help")
    assert code == 0 and "Usage" in out + err and "error" not in err


def test_output_that_is_a_file_fails_before_training(toy_cli, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(fault_plugin.FIT_LOG, str(tmp_path / "fits.log"))
    target = tmp_path / "file"
    target.write_text("not a folder")
    expect_error("--output is a file", ["run", "-d", "toy-slow", "--dataset", "toy", "--output", str(target)],
                 capsys, str(target))
    expect_error("--output below a file", ["run", "-d", "toy-slow", "--dataset", "toy", "--output",
                                           str(target / "sub")], capsys, str(target / "sub"))
    assert not (tmp_path / "fits.log").exists()  # nothing was trained
    assert target.read_text() == "not a folder"


def test_a_grid_refused_in_its_preflight_leaves_no_output_folder(tmp_path, capsys):
    out = tmp_path / "new" / "results"
    expect_error("missing table card, new --output", ["run", "--dataset", "table", "-o", "card=missing.toml",
                                                       "-d", "iforest", "--output", str(out)], capsys, "missing.toml")
    assert not (tmp_path / "new").exists()  # the pre-flight probes the nearest existing parent, creates nothing


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_output_fails_before_training(toy_cli, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(fault_plugin.FIT_LOG, str(tmp_path / "fits.log"))
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o500)
    try:
        expect_error("read-only --output", ["run", "-d", "toy-slow", "--dataset", "toy", "--output", str(out)],
                     capsys, str(out))
    finally:
        out.chmod(0o700)
    assert not (tmp_path / "fits.log").exists()


def test_empty_validation_split(adc_dirs, tmp_path, capsys):
    base = ["--dataset", "adc2021", "--data-dir", str(adc_dirs[0]), "-o", "validation_fraction=0",
            "--output", str(tmp_path / "out"), *FAST]
    code, _, err = invoke(["run", "-d", "deepsvdd", "-p", "epochs=2", "-p", "pretrain_epochs=1", *base], capsys)
    record("deepsvdd with -o validation_fraction=0", code, lines_of(err, " ok in ")[0] if lines_of(err, " ok in ") else err)
    assert code == 0 and lines_of(err, " ok in "), err
    expect_error("gan-ae with -o validation_fraction=0", ["run", "-d", "gan-ae", *base], capsys, "validation")


# -- plugins: a broken one is listed and named, every other command works --------------------
def _bad_module(name: str, **hooks) -> types.ModuleType:
    module = types.ModuleType(name)
    for hook, fn in hooks.items():
        setattr(module, hook, hookimpl(fn))
    return module


def _raise_in_register(cli):
    raise RuntimeError("cannot add my command")


@pytest.mark.parametrize("case, module, reason", [
    ("hepad_detectors returns a class, not a list",
     _bad_module("bare_class_plugin", hepad_detectors=lambda: toy_plugin.NormDetector), "expected a list of classes"),
    ("hepad_detectors returns 42", _bad_module("int_plugin", hepad_detectors=lambda: 42), "returned 42"),
    ("hepad_register_commands raises",
     _bad_module("command_plugin", hepad_register_commands=_raise_in_register), "cannot add my command"),
])
def test_broken_plugin_is_listed_and_the_rest_works(monkeypatch, tmp_path, capsys, case, module, reason):
    real = plugins_mod.load_registry
    monkeypatch.setattr(cli, "load_registry", lambda warn: real(
        extra_plugins=[("toy-dist", toy_plugin), ("bad-dist", module)], warn=warn))
    monkeypatch.setattr(cli, "_loaded", {})
    code, out, err = invoke(["list", "--json"], capsys)
    listing = json.loads(out)
    (broken,) = [b for b in listing["broken"] if b["plugin"] == module.__name__]
    record(case, code, lines_of(err, module.__name__)[0])
    assert code == 0 and reason in broken["reason"] and broken["distribution"] == "bad-dist"
    assert len(lines_of(err, module.__name__)) == 1  # one warning naming the plugin
    code, _, err = invoke(["run", "-d", "toy-norm", "--dataset", "toy", "--quiet", "--output", str(tmp_path)], capsys)
    assert code == 0 and "Traceback" not in err


def test_plugin_import_error_is_listed(monkeypatch, capsys):
    real = plugins_mod.entry_points
    ghost = EntryPoint(name="ghost", value="hepad_no_such_module_xyz", group="hepad_bench")
    monkeypatch.setattr(plugins_mod, "entry_points", lambda group: [*real(group=group), ghost])
    monkeypatch.setattr(cli, "_loaded", {})
    code, out, err = invoke(["list", "--json"], capsys)
    record("plugin import error", code, lines_of(err, "ghost")[0])
    assert code == 0 and any(b["plugin"] == "ghost" for b in json.loads(out)["broken"])


def test_duplicate_plugin_names_are_one_error(monkeypatch, capsys):
    twin = _bad_module("twin_plugin", hepad_detectors=lambda: [
        type("Twin", (toy_plugin.NormDetector,), {"__module__": "twin_plugin"})])
    real = plugins_mod.load_registry
    monkeypatch.setattr(cli, "load_registry", lambda warn: real(
        extra_plugins=[("toy-dist", toy_plugin), ("twin-dist", twin)], warn=warn))
    monkeypatch.setattr(cli, "_loaded", {})
    line = expect_error("two plugins claim one name", ["list"], capsys, "'toy-norm'")
    assert "toy-dist" in line and "twin-dist" in line


# -- runs that fail, hang or are killed ------------------------------------------------------
def test_hanging_detector_times_out_and_the_grid_goes_on(toy_cli, tmp_path, capsys):
    started = time.monotonic()
    code, _, err = invoke(["run", "-d", "toy-hang", "-d", "toy-norm", "--dataset", "toy", "--timeout", "1.5",
                           "--quiet", "--device", "cpu", "--output", str(tmp_path)], capsys)
    assert time.monotonic() - started < 60
    runs = {json.loads(p.read_text())["detector"]["name"]: json.loads(p.read_text())
            for p in tmp_path.glob("toy/*/*/run.json")}
    record("detector hangs, --timeout 1.5", code, runs["toy-hang"]["error"])
    assert code == 1 and "Traceback" not in err
    assert runs["toy-hang"]["status"] == "failed" and "TimeoutError" in runs["toy-hang"]["error"]
    assert runs["toy-norm"]["status"] == "ok"


def test_failing_detector_is_recorded(toy_cli, tmp_path, capsys):
    code, _, err = invoke(["run", "-d", "toy-failing", "-d", "toy-norm", "--dataset", "toy", "--quiet",
                           "--device", "cpu", "--output", str(tmp_path)], capsys)
    record("detector raises in fit", code, lines_of(err, " failed in ")[0])
    assert code == 1 and len(list(tmp_path.glob("toy/*/*/run.json"))) == 2


def test_timeout_path_gives_the_same_scores_as_in_process(toy_registry, tmp_path):
    spec = RunSpec("toy", "toy-norm", seed=5)
    here = Runner(toy_registry, tmp_path / "a").run_all([spec])[0]
    child = Runner(toy_registry, tmp_path / "b", timeout=60).run_all([spec])[0]
    assert here.status == child.status == "ok"
    assert pl.read_parquet(here.folder / "scores.parquet").equals(pl.read_parquet(child.folder / "scores.parquet"))
    assert child.run["timeout_seconds"] == 60


SCRIPT = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    import fault_plugin, toy_plugin
    from hepad_bench import cli
    from hepad_bench.plugins import load_registry
    registry = load_registry(extra_plugins=[("toy-dist", toy_plugin), ("fault-dist", fault_plugin)], warn=lambda m: None)
    cli.registry = lambda: registry
    cli._loaded.update(registry=registry, notes=[])  # the toy plugins only: no import of every real plugin
    cli.main(sys.argv[1:])
""")


def _cli_process(tmp_path: Path, args: list[str], env: dict[str, str]) -> subprocess.Popen:
    script = tmp_path / "toy_cli.py"
    script.write_text(SCRIPT.format(tests=str(TESTS)))
    return subprocess.Popen([sys.executable, str(script), *args], env={**os.environ, **env},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _complete_folders(root: Path) -> dict[str, str]:
    return {p.parent.name: tree_digest(p.parent) for p in root.glob("toy/toy-slow/*/run.json")
            if store.is_complete(p.parent)}


def test_kill_9_mid_grid_then_resume(tmp_path, capsys, toy_cli):
    out, log = tmp_path / "results", tmp_path / "fits.log"
    args = ["run", "-d", "toy-slow", "--dataset", "toy", *[a for s in range(1, 7) for a in ("--seed", str(s))],
            "--quiet", "--device", "cpu", "--output", str(out)]
    env = {fault_plugin.FIT_LOG: str(log), "HEPAD_TEST_SLOW": "0.5"}
    proc = _cli_process(tmp_path, args, env)
    deadline = time.monotonic() + 60
    while len(_complete_folders(out)) < 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(0.25)  # into the middle of the next run
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = _complete_folders(out)
    assert 2 <= len(done) < 6
    # nothing half-written is visible as a run
    for folder in out.glob("toy/toy-slow/*"):
        if not folder.name.startswith("."):
            assert store.is_complete(folder) and (folder / "scores.parquet").is_file()
    os.environ[fault_plugin.FIT_LOG] = str(log)
    try:
        code, _, err = invoke(args, capsys)
    finally:
        del os.environ[fault_plugin.FIT_LOG]
    record("kill -9 mid-grid, then the same command", code, f"{len(lines_of(err, ' skipped in '))} skipped, "
           f"{len(lines_of(err, ' ok in '))} ok")
    assert code == 0 and len(lines_of(err, " skipped in ")) == len(done)
    after = _complete_folders(out)
    assert len(after) == 6 and {k: after[k] for k in done} == done  # the finished runs are untouched


def test_two_grids_on_one_output_compute_each_run_once(tmp_path):
    out, log = tmp_path / "results", tmp_path / "fits.log"
    args = ["run", "-d", "toy-slow", "--dataset", "toy", *[a for s in range(1, 5) for a in ("--seed", str(s))],
            "--quiet", "--device", "cpu", "--output", str(out)]
    env = {fault_plugin.FIT_LOG: str(log), "HEPAD_TEST_SLOW": "0.4"}
    procs = [_cli_process(tmp_path, args, env) for _ in range(2)]
    errs = [p.communicate(timeout=120)[1] for p in procs]
    record("two grids on one --output", max(p.returncode for p in procs),
           f"{len(log.read_text().split())} fits for 4 runs")
    assert [p.returncode for p in procs] == [0, 0], errs
    assert sorted(log.read_text().split()) == ["1", "2", "3", "4"]  # each run computed exactly once
    assert len(_complete_folders(out)) == 4


def test_concurrent_writers_of_one_key(tmp_path):
    folder = tmp_path / "toy" / "toy-norm" / "key"
    ctx = multiprocessing.get_context("spawn")  # not fork: a forked polars may find its thread pool locked
    failures = ctx.Queue()
    procs = [ctx.Process(target=fault_plugin.hammer_write_run, args=(str(folder), w, 60, failures)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    errors = []
    while not failures.empty():
        errors.append(failures.get())
    record("4 processes x 60 write_run of one key", len(errors), "; ".join(errors) or "no error")
    assert errors == [] and [p.exitcode for p in procs] == [0, 0, 0, 0]
    # one complete folder whose files all come from the same write
    run = json.loads((folder / "run.json").read_text())
    assert set(pl.read_parquet(folder / "scores.parquet")["tag"].unique()) == {run["tag"]}
    assert [p.name for p in folder.parent.iterdir() if not p.name.startswith(".")] == ["key"]
    assert not [p for p in folder.parent.iterdir() if p.name.startswith((".tmp-", ".old-"))]


# -- leaderboard: an unreadable run is named and skipped -------------------------------------
def test_leaderboard_names_and_skips_unreadable_runs(toy_cli, tmp_path, capsys):
    results = tmp_path / "results"
    Runner(toy_cli, results).run_all(expand_grid(["toy"], ["toy-norm", "toy-supervised"], [1, 2]))
    folders = sorted(p.parent for p in results.glob("toy/*/*/run.json"))
    truncated, malformed = folders[0], folders[-1]
    _cut(truncated / "scores.parquet")
    (malformed / "run.json").write_text("{not json")
    before = tree_digest(results)
    code, out, err = invoke(["leaderboard", str(results), "--output", str(tmp_path / "boards")], capsys)
    warnings = lines_of(err, "warning:")
    record("leaderboard with a truncated scores.parquet", code, next(w for w in warnings if "scores.parquet" in w))
    record("leaderboard with a malformed run.json", code, next(w for w in warnings if "run.json" in w))
    assert code == 0 and "Traceback" not in err
    assert any(str(truncated) in w and "scores.parquet" in w for w in warnings)
    assert any(str(malformed) in w and "run.json" in w for w in warnings)
    assert (tmp_path / "boards").is_dir() and any((tmp_path / "boards").rglob("*.md"))
    assert tree_digest(results) == before


@pytest.mark.parametrize("case, exc, code, text", [
    ("internal error (a bug, not the user's)", RuntimeError("unexpected state"), 1, "rerun with --debug"),
    ("interrupted (Ctrl-C)", KeyboardInterrupt(), 130, "aborted"),
])
def test_other_exit_codes(monkeypatch, tmp_path, capsys, case, exc, code, text):
    def explode():
        raise exc

    monkeypatch.setattr(cli, "registry", explode)
    got, _, err = invoke(["run", "-d", "toy-norm", "--dataset", "toy", "--output", str(tmp_path)], capsys)
    lines = lines_of(err)
    record(case, got, lines[0])
    assert got == code and len(lines) == 1 and text in lines[0] and "Traceback" not in err
