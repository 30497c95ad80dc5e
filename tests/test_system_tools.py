"""The skip-or-fail rule for tests that need a system program (tests/system_tools.py).

The real browser test is run in a child pytest with a PATH that holds no
browser: skipped with the reason by default, failed when CI's variable is set.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from system_tools import REQUIRE_ENV, system_tool

TESTS = Path(__file__).parent


def child_pytest(tmp_path: Path, require: str | None) -> subprocess.CompletedProcess:
    empty = tmp_path / "empty-bin"
    empty.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != REQUIRE_ENV} | {"PATH": str(empty)}
    if require is not None:
        env[REQUIRE_ENV] = require
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", str(TESTS / "test_leaderboard_html.py")],
        cwd=TESTS.parent, env=env, capture_output=True, text=True, timeout=300,
    )


def test_browser_test_is_skipped_with_the_reason_without_a_browser(tmp_path):
    done = child_pytest(tmp_path, require=None)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "2 skipped" in done.stdout and "passed" not in done.stdout
    assert "no headless browser on the PATH" in done.stdout and "apt-get install -y chromium" in done.stdout


@pytest.mark.parametrize("value, fails", [("1", True), ("0", False)])
def test_ci_variable_turns_the_skip_into_a_failure(tmp_path, value, fails):
    done = child_pytest(tmp_path, require=value)
    if fails:
        assert done.returncode == 1, done.stdout[-3000:]
        assert "2 errors" in done.stdout and "skipped" not in done.stdout
        assert f"{REQUIRE_ENV} is set" in done.stdout
    else:
        assert done.returncode == 0 and "2 skipped" in done.stdout, done.stdout[-3000:]


def test_a_tool_on_the_path_is_found(tmp_path, monkeypatch):
    fake = tmp_path / "chromium-browser"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv(REQUIRE_ENV, "1")
    assert system_tool(("chromium", "chromium-browser"), "headless browser", "apt-get install -y chromium") == str(fake)
