"""Tests that need a system program (not a Python package) find it here.

On a bare machine with only Python they are skipped, with the reason. CI
installs the programs and sets HEPAD_BENCH_REQUIRE_SYSTEM_TOOLS=1, which turns
such a skip into a failure: there the tests always run for real.
"""

from __future__ import annotations

import os
import shutil

import pytest

REQUIRE_ENV = "HEPAD_BENCH_REQUIRE_SYSTEM_TOOLS"


def required() -> bool:
    return os.environ.get(REQUIRE_ENV, "").strip() not in ("", "0")


def system_tool(names: tuple[str, ...], what: str, install: str) -> str:
    """Path of the first of ``names`` on the PATH; else skip (or fail when required) saying how to install it."""
    for name in names:
        if path := shutil.which(name):
            return path
    why = f"no {what} on the PATH ({' / '.join(names)}); install it with: {install}"
    if required():
        pytest.fail(f"{why}. {REQUIRE_ENV} is set, so this is a failure, not a skip", pytrace=False)
    pytest.skip(why)
