"""The README's `run` options table and examples match the real command (what `hepad-bench run --help` shows)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import typer

from hepad_bench import cli
from hepad_bench.plugins import load_registry
from hepad_bench.runner import DEFAULT_SEED, Runner, expand_grid

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def run_command():
    return typer.main.get_command(cli.app).commands["run"]


def option_names() -> set[str]:
    return {name for p in run_command().params for name in p.opts if name.startswith("--") and name != "--help"}


def readme_table_options() -> set[str]:
    section = README.split("Options of `run`:", 1)[1].split("\n\n", 2)[1]
    return {m for row in section.splitlines() if row.startswith("| `") for m in re.findall(r"--[a-z-]+", row.split("|")[1])}


def readme_run_examples() -> list[list[str]]:
    blocks = re.findall(r"```bash\n(.*?)```", README, flags=re.S)
    lines = [line.split("#")[0].strip() for block in blocks for line in block.splitlines()]
    return [shlex.split(line)[2:] for line in lines if line.startswith("hepad-bench run ")]


def test_options_table_lists_exactly_the_options_of_run():
    assert readme_table_options() == option_names()


def test_readme_has_run_examples():
    assert len(readme_run_examples()) >= 3


@pytest.mark.parametrize("args", readme_run_examples(), ids=" ".join)
def test_each_run_example_parses_and_passes_the_pre_flight_checks(args, tmp_path):
    ctx = run_command().make_context("run", list(args))  # unknown options or bad values raise here
    p = ctx.params
    specs = expand_grid(p["dataset"] or [cli.DEFAULT_DATASET], p["detector"], p["seed"] or [DEFAULT_SEED],
                        dataset_options=cli._split_pairs(p["option"] or [], "dataset option"),
                        params=cli._split_pairs(p["param"] or [], "parameter"), device="cpu",
                        data_seeds=p["data_seed"])
    Runner(load_registry(warn=lambda m: None), tmp_path).validate(specs)  # parameter names and values, tasks
