"""Helpers shared by the tests that drive the CLI or install the example packages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from hepad_bench import cli


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:  # noqa: ANN001
    """``hepad-bench ARGS`` in this process: (exit code, stdout, stderr); 0 when it returns normally."""
    try:
        cli.main(args)
        code = 0
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def pip_install_into(target: Path, package: Path) -> None:
    """Install ``package`` for real (its own build backend, no dependencies) into the folder ``target``."""
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(package)],
        check=True, capture_output=True, text=True,
    )
