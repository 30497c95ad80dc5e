import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from system_tools import system_tool  # noqa: E402  (needs the path above)

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own cache root: no test reads another's converted data."""
    monkeypatch.setenv("HEPAD_BENCH_CACHE", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture
def toy_registry():
    import toy_plugin

    from hepad_bench.plugins import load_registry

    return load_registry(extra_plugins=[("toy-dist", toy_plugin)], warn=lambda m: None)


@pytest.fixture(scope="session")
def chromium() -> str:
    """A headless browser (skipped without one, failed without one in CI: see system_tools.py)."""
    return system_tool(BROWSERS, "headless browser", "apt-get install -y chromium")
