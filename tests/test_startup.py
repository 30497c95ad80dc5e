"""Start-up: the CLI's light commands import no heavy module; the plugin metadata cache and its invalidation.

A third-party plugin here is a distribution made by hand in a temporary
folder (a ``.dist-info`` with ``METADATA`` and ``entry_points.txt`` next to
its module): it reaches hepad-bench through its entry point only.
"""

import importlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hepad_bench import cli, plugin_cache, runner
from hepad_bench.plugins import load_registry

PLUGIN = textwrap.dedent('''
    """A third-party plugin for the start-up tests."""
    from dataclasses import dataclass
    from pathlib import Path

    from hepad_bench import Dataset, Detector, hookimpl

    CARD = Path(__file__).with_name("startup_card.md").read_text()  # read at import, like the first-party cards


    @dataclass
    class SumConfig:
        """power: exponent of |x|; default 2.0."""
        power: float = 2.0


    class SumDetector(Detector):
        """Sum over features of |x|**power (start-up test fixture)."""
        name, version, Config = "startup-sum", "1", SumConfig

        def fit(self, train, ctx):
            pass

        def score(self, x, mjj=None):
            import numpy as np
            return np.sum(np.abs(np.asarray(x, dtype=np.float64)) ** self.config.power, axis=1)


    class CardOnly(Dataset):
        """A dataset that is only a card."""
        name, version, card = "startup-card", "1", CARD

        def load(self, data_dir, progress):
            raise NotImplementedError


    @hookimpl
    def hepad_detectors():
        return [SumDetector]


    @hookimpl
    def hepad_datasets():
        return [CardOnly]
''')


def make_site(root: Path, version: str = "1.0", ghost: bool = False) -> tuple[Path, Path]:
    """An editable-like install of the distribution ``startup-fake``: (site folder with its ``.dist-info``, source folder).

    With ``ghost``, the distribution also has an entry point whose module does not exist (a broken plugin).
    """
    site, src = root / "site", root / "src"
    site.mkdir(exist_ok=True)
    src.mkdir(exist_ok=True)
    (src / "startup_fake_plugin.py").write_text(PLUGIN)
    (src / "startup_card.md").write_text("# startup-card\n\nfirst card\n")
    info = site / f"startup_fake-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: startup-fake\nVersion: {version}\n")
    eps = "[hepad_bench]\nstartup_fake = startup_fake_plugin\n" + ("startup_ghost = startup_no_such_module\n" if ghost else "")
    (info / "entry_points.txt").write_text(eps)
    return site, src


def bump_version(site: Path, old: str, new: str) -> None:
    info = site / f"startup_fake-{new}.dist-info"
    (site / f"startup_fake-{old}.dist-info").rename(info)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: startup-fake\nVersion: {new}\n")


def touch_later(path: Path, text: str) -> None:
    """Rewrite ``path`` with a later modification time (a coarse file-system clock must not hide the edit)."""
    before = path.stat().st_mtime_ns
    path.write_text(text)
    os.utime(path, ns=(before + 2_000_000_000, before + 2_000_000_000))


# -- in process: when the cache is used and when it is rebuilt -----------------------------------------
@pytest.fixture
def fake_site(tmp_path, monkeypatch):
    site, src = make_site(tmp_path, ghost=True)
    monkeypatch.syspath_prepend(str(src))
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delenv("HEPAD_BENCH_PLUGINS", raising=False)
    yield tmp_path
    sys.modules.pop("startup_fake_plugin", None)


def fresh_registry(monkeypatch):
    """The CLI's registry as a new process would build it: the plugin's module not imported yet."""
    monkeypatch.delitem(sys.modules, "startup_fake_plugin", raising=False)
    importlib.invalidate_caches()
    warnings: list[str] = []
    return load_registry(warn=warnings.append, use_cache=True), warnings


def test_cached_registry_imports_no_plugin_until_a_class_is_used(fake_site, monkeypatch):
    built, _ = fresh_registry(monkeypatch)  # no cache yet: every plugin imported, as without a cache
    assert built.detectors["startup-sum"].cls is not None and plugin_cache.cache_file().is_file()

    cached, warnings = fresh_registry(monkeypatch)
    entry = cached.detectors["startup-sum"]
    assert entry.cls is None and "startup_fake_plugin" not in sys.modules
    assert (entry.distribution, entry.version, entry.kind) == ("startup-fake", "1", "unsupervised")
    assert entry.summary == "Sum over features of |x|**power (start-up test fixture)."
    assert cached.defaults("detector", "startup-sum") == {"power": 2.0}
    assert cached.card("startup-card") == "# startup-card\n\nfirst card\n"
    assert "startup_fake_plugin" not in sys.modules
    # a broken plugin is never cached: imported and reported on every load
    assert [b for b in cached.broken if b.plugin == "startup_ghost" and "ModuleNotFoundError" in b.reason]
    assert sum("startup_ghost" in w for w in warnings) == 1

    cls = cached.detector("startup-sum")  # first use: the module is imported now
    assert "startup_fake_plugin" in sys.modules and cls is sys.modules["startup_fake_plugin"].SumDetector
    first_party = cached.detectors["hbos"]
    assert first_party.cls is None and first_party.meta["defaults"]["n_bins"] == 10


def test_run_metric_versions_come_from_the_cache_without_importing_metrics(fake_site, monkeypatch):
    """A run records its metrics' versions before training: from the metadata, so that the metric modules
    (scikit-learn, scipy, pyhf) load after the fit and not during it. Equal to the classes' own versions."""
    built, _ = fresh_registry(monkeypatch)
    cached, _ = fresh_registry(monkeypatch)
    for task in ("unsupervised", "resonant"):
        from_classes = {m.name: str(m.version) for m in built.run_metrics() if task in m.tasks}
        assert from_classes and cached.run_metric_versions(task) == from_classes == built.run_metric_versions(task)
    assert all(entry.cls is None for entry in cached.metrics.values())


def test_cache_is_rebuilt_when_a_distribution_version_changes(fake_site, monkeypatch):
    fresh_registry(monkeypatch)
    assert fresh_registry(monkeypatch)[0].detectors["startup-sum"].cls is None  # served from the cache
    bump_version(fake_site / "site", "1.0", "2.0")
    rebuilt, _ = fresh_registry(monkeypatch)
    assert rebuilt.detectors["startup-sum"].cls is not None, "a new version must rebuild the cache"
    key = json.loads(plugin_cache.cache_file().read_text())["key"]
    assert ["startup_fake", "startup_fake_plugin", "startup-fake", "2.0"] in key["entry_points"]
    assert fresh_registry(monkeypatch)[0].detectors["startup-sum"].cls is None  # and is served again


@pytest.mark.parametrize("edited", ["startup_fake_plugin.py", "startup_card.md"])
def test_cache_is_rebuilt_when_an_editable_plugin_or_its_data_changes(fake_site, monkeypatch, edited):
    fresh_registry(monkeypatch)
    assert fresh_registry(monkeypatch)[0].detectors["startup-sum"].cls is None
    path = fake_site / "src" / edited
    text = path.read_text()
    touch_later(path, text.replace('"1", SumConfig', '"2", SumConfig') if edited.endswith(".py")
                else "# startup-card\n\nsecond card\n")
    rebuilt, _ = fresh_registry(monkeypatch)
    assert rebuilt.detectors["startup-sum"].cls is not None, f"editing {edited} must rebuild the cache"
    served, _ = fresh_registry(monkeypatch)
    if edited.endswith(".py"):
        assert served.detectors["startup-sum"].version == "2"
    else:
        assert served.card("startup-card").endswith("second card\n")


def test_cli_default_seed_is_the_runners():
    assert cli.DEFAULT_SEED == runner.DEFAULT_SEED


# -- real processes: what each command imports -------------------------------------------------------
WRAPPER = textwrap.dedent("""
    import json, sys
    from hepad_bench import cli
    code = 0
    try:
        cli.main(sys.argv[2:])
    except SystemExit as exc:
        code = exc.code
    with open(sys.argv[1], "w") as fh:
        json.dump({"code": code, "modules": sorted(sys.modules)}, fh)
""")
#: never needed to show help, list plugins, print a card
HEAVY = ("torch", "zuko", "pyod", "sklearn", "scipy", "numpy", "polars", "pandas", "matplotlib")


class Cli:
    def __init__(self, root: Path, site: tuple[Path, Path]):
        self.root, self.env = root, {**os.environ, "PYTHONPATH": os.pathsep.join(map(str, site)), "HEPAD_BENCH_CACHE": str(root / "cache"),
                                     "OMP_NUM_THREADS": "1"}
        self.env.pop("HEPAD_BENCH_PLUGINS", None)
        (root / "wrapper.py").write_text(WRAPPER)

    def __call__(self, *args: str) -> tuple[int, set[str], str]:
        dump = self.root / "modules.json"
        proc = subprocess.run([sys.executable, str(self.root / "wrapper.py"), str(dump), *args], env=self.env,
                              capture_output=True, text=True, timeout=900)
        data = json.loads(dump.read_text())
        assert data["code"] == 0, proc.stderr
        return data["code"], set(data["modules"]), proc.stdout


@pytest.fixture(scope="module")
def warm_cli(tmp_path_factory):
    """A CLI with the fake plugin installed, a results folder with one run, and a built metadata cache."""
    root = tmp_path_factory.mktemp("startup")
    run = Cli(root, make_site(root))
    run("run", "-d", "startup-sum", "--dataset", "l1-pythia", "--max-events", "500", "--quiet", "--device", "cpu",
        "--output", str(root / "results"))  # the first command: it builds the cache
    return run


def heavy_in(modules: set[str], heavy=HEAVY) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in heavy or m.startswith("hepad_plugins.detectors")
                  or m == "startup_fake_plugin")


@pytest.mark.parametrize("args", [["--help"], ["list", "--json"], ["datasets", "info", "l1-pythia"]])
def test_light_commands_import_no_heavy_module(warm_cli, args):
    _, modules, out = warm_cli(*args)
    assert heavy_in(modules) == []
    if args[0] == "--help":
        assert "generate" in out  # a first-party plugin's sub-command is still there
    if args[0] == "list":
        (entry,) = [p for p in json.loads(out)["plugins"] if p["name"] == "startup-sum"]
        assert entry["distribution"] == "startup-fake" and entry["version"] == "1"


def test_leaderboard_imports_no_detector(warm_cli):
    _, modules, out = warm_cli("leaderboard", str(warm_cli.root / "results"), "--output", str(warm_cli.root / "boards"))
    assert heavy_in(modules, heavy=("torch", "zuko", "pyod")) == []
    assert "startup-sum" in (warm_cli.root / "boards" / "l1-pythia--max_events-500" / "README.md").read_text()


def test_entry_point_plugin_runs_from_the_cache_and_only_its_module_is_imported(warm_cli):
    out = warm_cli.root / "results"
    _, modules, _ = warm_cli("run", "-d", "startup-sum", "--dataset", "l1-pythia", "--max-events", "500", "--seed", "7",
                             "--quiet", "--device", "cpu", "--output", str(out))
    assert "startup_fake_plugin" in modules and "torch" not in modules
    assert not [m for m in modules if m.startswith("hepad_plugins.detectors")]
    runs = [json.loads(p.read_text()) for p in out.glob("l1-pythia/startup-sum/*/run.json")]
    assert sorted(r["seed"] for r in runs) == [7, 42]  # the cold run and this one
    assert all(r["status"] == "ok" and r["versions"]["plugin_distribution"] == "startup-fake" for r in runs)
