"""The plugin manager: discovery, validation, broken plugins, filters, name clashes."""

import types
from importlib.metadata import EntryPoint

import pytest

import toy_plugin
from hepad_bench import Detector, hookimpl
from hepad_bench import plugins as plugins_mod
from hepad_bench.errors import UserError
from hepad_bench.plugins import load_registry


def _module(name, **hooks):
    mod = types.ModuleType(name)
    for hook_name, fn in hooks.items():
        setattr(mod, hook_name, hookimpl(fn, specname=hook_name))
    return mod


def test_first_party_plugins_come_through_the_public_entry_point_group():
    registry = load_registry(warn=lambda m: None)
    first_party = [e for e in registry.entries() if e.distribution == "hepad-bench"]
    assert first_party, "first-party plugins must be discovered via entry points"
    eps = {ep.value for ep in plugins_mod.entry_points(group="hepad_bench") if ep.dist and ep.dist.name == "hepad-bench"}
    assert {e.cls.__module__ for e in first_party} <= eps


def test_toy_plugin_is_indexed_with_distribution_and_summary(toy_registry):
    entry = toy_registry.detectors["toy-norm"]
    assert entry.distribution == "toy-dist" and entry.kind == "unsupervised"
    assert entry.summary == "Distance from the origin (test fixture)."
    assert toy_registry.dataset("toy") is toy_plugin.ToyDataset


def test_invalid_classes_are_reported_broken_and_skipped():
    class NoName(Detector):
        version = "1"

        def fit(self, train, ctx): ...

        def score(self, x, mjj=None): ...

    class Abstract(Detector):
        name, version = "abstract", "1"

    class BadKind(NoName):
        name, kind = "badkind", "psychic"

    bad = _module("bad_plugin", hepad_detectors=lambda: [NoName, Abstract, BadKind, int])
    raising = _module("raising_plugin", hepad_metrics=lambda: 1 / 0)
    warnings = []
    registry = load_registry(extra_plugins=[("bad-dist", bad), ("raise-dist", raising)], warn=warnings.append)
    reasons = {b.reason for b in registry.broken if b.distribution in ("bad-dist", "raise-dist")}
    assert any("no string 'name'" in r for r in reasons)
    assert any("abstract methods" in r for r in reasons)
    assert any("kind 'psychic'" in r for r in reasons)
    assert any("not a subclass of Detector" in r for r in reasons)
    assert any("ZeroDivisionError" in r for r in reasons)
    assert "badkind" not in registry.detectors and "abstract" not in registry.detectors
    mine = [w for w in warnings if "bad_plugin" in w or "raising_plugin" in w]
    assert len(mine) == 5 and all("\n" not in w for w in mine)


def test_plugin_that_fails_to_import_is_broken_not_fatal(monkeypatch):
    real = plugins_mod.entry_points
    ghost = EntryPoint(name="ghost", value="hepad_no_such_module_xyz", group="hepad_bench")
    monkeypatch.setattr(plugins_mod, "entry_points", lambda group: [*real(group=group), ghost])
    registry = load_registry(warn=lambda m: None)
    (broken,) = [b for b in registry.broken if b.plugin == "ghost"]
    assert "ModuleNotFoundError" in broken.reason
    assert registry.detectors  # the rest still loaded


def test_env_filter_restricts_external_plugins_only(monkeypatch):
    real = plugins_mod.entry_points
    ghost = EntryPoint(name="ghost", value="hepad_no_such_module_xyz", group="hepad_bench")
    monkeypatch.setattr(plugins_mod, "entry_points", lambda group: [*real(group=group), ghost])
    monkeypatch.setenv("HEPAD_BENCH_PLUGINS", "")
    registry = load_registry(warn=lambda m: None)
    assert not [b for b in registry.broken if b.plugin == "ghost"], "filtered-out plugin must not even be imported"
    assert any(e.distribution == "hepad-bench" for e in registry.entries())
    monkeypatch.setenv("HEPAD_BENCH_PLUGINS", "ghost")
    assert [b for b in load_registry(warn=lambda m: None).broken if b.plugin == "ghost"]


def test_two_plugins_claiming_one_name_is_a_clear_error():
    twin = _module("twin_plugin", hepad_detectors=lambda: [type("Twin", (toy_plugin.NormDetector,), {"__module__": "twin_plugin"})])
    with pytest.raises(UserError) as err:
        load_registry(extra_plugins=[("toy-dist", toy_plugin), ("twin-dist", twin)], warn=lambda m: None)
    msg = str(err.value)
    assert "'toy-norm'" in msg and "toy-dist" in msg and "twin-dist" in msg


def test_unknown_names_list_the_available_ones(toy_registry):
    with pytest.raises(UserError, match="unknown detector 'nope'; available: .*toy-norm"):
        toy_registry.detector("nope")
