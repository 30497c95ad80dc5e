"""The command line: exit codes, one-line errors, JSON listing, summary."""

import json

import pytest

from hepad_bench import cli
from cli_helpers import run_cli  # noqa: E402


@pytest.fixture
def toy_cli(toy_registry, monkeypatch):
    monkeypatch.setattr(cli, "registry", lambda: toy_registry)
    return toy_registry


def ok_cli(args, capsys):
    cli.main(args)
    captured = capsys.readouterr()
    return captured.out, captured.err


def test_list_json_has_plugins_and_broken(toy_cli, capsys):
    out, _ = ok_cli(["list", "--json"], capsys)
    listing = json.loads(out)
    names = {(p["category"], p["name"]) for p in listing["plugins"]}
    assert ("detector", "toy-norm") in names and ("dataset", "toy") in names
    assert isinstance(listing["broken"], list)


def test_run_prints_summary_and_stores(toy_cli, capsys, tmp_path):
    out, _ = ok_cli(["run", "-d", "toy-norm", "--dataset", "toy", "--output", str(tmp_path), "--quiet",
                     "--device", "cpu", "-p", "power=1"], capsys)
    assert "toy-norm" in out and "shifted" in out
    (run_json,) = tmp_path.glob("toy/toy-norm/*/run.json")
    assert json.loads(run_json.read_text())["detector"]["config"]["power"] == 1.0


@pytest.mark.parametrize("args, message", [
    (["run", "-d", "nope", "--dataset", "toy"], "unknown detector 'nope'; available:"),
    (["run", "-d", "toy-norm", "--dataset", "toy", "-p", "pwr=2"], "has no parameter 'pwr'; valid parameters: power (float)"),
    (["run", "-d", "toy-norm", "--dataset", "toy", "-p", "power=big"], "bad value 'big'"),
    (["run", "-d", "toy-norm", "--dataset", "toy", "--device", "tpu"], "unknown device 'tpu'"),
    (["run", "-d", "toy-norm", "--dataset", "toy", "--data-dir", "/no/such/dir"], "is not a folder"),
    (["leaderboard", "/no/such/results"], "does not exist"),
])
def test_user_errors_are_one_line_with_exit_code_2(toy_cli, capsys, tmp_path, args, message):
    code, out, err = run_cli([*args, "--output", str(tmp_path)] if args[0] == "run" else args, capsys)
    assert code == 2
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and message in " ".join(err.split()), err
    assert "Traceback" not in err


def test_failed_run_gives_nonzero_exit_and_keeps_others(toy_cli, capsys, tmp_path):
    code, out, _ = run_cli(["run", "-d", "toy-failing", "-d", "toy-norm", "--dataset", "toy", "--quiet",
                            "--output", str(tmp_path)], capsys)
    assert code == 1
    assert len(list(tmp_path.glob("toy/*/*/run.json"))) == 2


def test_device_cuda_is_honoured_or_refused_in_one_line(toy_cli, capsys, tmp_path):
    import torch

    args = ["run", "-d", "toy-norm", "--dataset", "toy", "--device", "cuda", "--quiet", "--output", str(tmp_path)]
    if torch.cuda.is_available():
        ok_cli(args, capsys)
        (run_json,) = tmp_path.glob("toy/toy-norm/*/run.json")
        assert json.loads(run_json.read_text())["device"] == "cuda"
    else:
        code, _, err = run_cli(args, capsys)
        assert code == 2 and "torch sees no CUDA GPU" in err and len(err.strip().splitlines()) == 1
