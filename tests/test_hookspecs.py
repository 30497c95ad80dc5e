"""Every hook spec is documented and exercised (datasette's rule)."""

import inspect

import pytest
import typer

import toy_plugin
from hepad_bench import hookspecs
from hepad_bench.plugins import load_registry

SPECS = sorted(n for n, f in vars(hookspecs).items() if n.startswith("hepad_") and inspect.isfunction(f))


def test_there_are_hook_specs():
    assert {"hepad_datasets", "hepad_detectors", "hepad_metrics", "hepad_register_commands"} <= set(SPECS)


@pytest.mark.parametrize("name", SPECS)
def test_hook_spec_is_documented(name):
    doc = inspect.getdoc(getattr(hookspecs, name))
    assert doc and len(doc) > 20, f"hook spec {name} needs a docstring"


def _exercise(name, registry):
    """Call the hook through the plugin manager and check what comes back."""
    hook = getattr(registry.manager.hook, name)
    if name == "hepad_register_commands":
        app = typer.Typer()
        hook(cli=app)
        return [g.name for g in app.registered_groups] + [c.name for c in app.registered_commands]
    return [cls for result in hook() for cls in result]


EXPECTED = {
    "hepad_datasets": lambda out: toy_plugin.ToyDataset in out,
    "hepad_detectors": lambda out: toy_plugin.NormDetector in out,
    "hepad_metrics": lambda out: toy_plugin.MeanGap in out,
    "hepad_register_commands": lambda out: "generate" in out,
}


def test_every_hook_spec_has_an_exercise():
    assert set(EXPECTED) == set(SPECS), "add the new hook to EXPECTED in this test"


@pytest.mark.parametrize("name", SPECS)
def test_hook_spec_is_exercised(name, toy_registry):
    assert EXPECTED[name](_exercise(name, toy_registry))
