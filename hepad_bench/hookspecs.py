"""The hook specifications: what a hepad-bench plugin may provide.

A plugin is a module (or object) registered under the ``hepad_bench``
entry-point group whose functions are decorated with :data:`hookimpl`.
Each hook below is documented; ``tests/test_hookspecs.py`` fails when a hook
lacks a docstring or a test that exercises it.
"""

from __future__ import annotations

import pluggy

PROJECT = "hepad_bench"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def hepad_datasets():
    """Return a list of :class:`hepad_bench.Dataset` subclasses this plugin provides."""


@hookspec
def hepad_detectors():
    """Return a list of :class:`hepad_bench.Detector` subclasses this plugin provides."""


@hookspec
def hepad_metrics():
    """Return a list of :class:`hepad_bench.Metric` or
    :class:`hepad_bench.ComparativeMetric` subclasses this plugin provides."""


@hookspec
def hepad_register_commands(cli):
    """Add sub-commands to the ``hepad-bench`` typer application ``cli``
    (for example ``cli.add_typer(app, name="generate")``)."""
