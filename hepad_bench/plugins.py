"""Plugin discovery: entry points of group ``hepad_bench``, validated and indexed.

First-party plugins (distribution ``hepad-bench``) are found exactly like
third-party ones. ``HEPAD_BENCH_PLUGINS=a,b`` restricts the *external* ones to
the named entry points or distributions (empty: built-ins only). A plugin that
fails to import, or returns something that is not a valid class, is recorded
as broken with the reason and skipped.
"""

from __future__ import annotations

import inspect
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import pluggy

from hepad_bench import hookspecs
from hepad_bench.contracts import (
    DETECTOR_KINDS, SCORE_REGIONS, ComparativeMetric, Dataset, Detector, Metric, RemoteFile,
)
from hepad_bench.data import TASKS
from hepad_bench.errors import UserError

FIRST_PARTY = "hepad-bench"
ENV_FILTER = "HEPAD_BENCH_PLUGINS"

#: hook name -> (category, accepted base classes)
HOOKS: dict[str, tuple[str, tuple[type, ...]]] = {
    "hepad_datasets": ("dataset", (Dataset,)),
    "hepad_detectors": ("detector", (Detector,)),
    "hepad_metrics": ("metric", (Metric, ComparativeMetric)),
}


@dataclass
class PluginEntry:
    category: str  # dataset | detector | metric
    name: str
    version: str
    kind: str  # detector kind, dataset task, metric flavour
    distribution: str
    cls: type
    summary: str

    def as_json(self) -> dict[str, str]:
        return {k: getattr(self, k) for k in ("category", "name", "version", "kind", "distribution", "summary")}


@dataclass
class BrokenPlugin:
    plugin: str
    distribution: str
    reason: str

    def as_json(self) -> dict[str, str]:
        return {"plugin": self.plugin, "distribution": self.distribution, "reason": self.reason}


@dataclass
class Registry:
    datasets: dict[str, PluginEntry] = field(default_factory=dict)
    detectors: dict[str, PluginEntry] = field(default_factory=dict)
    metrics: dict[str, PluginEntry] = field(default_factory=dict)
    broken: list[BrokenPlugin] = field(default_factory=list)
    manager: pluggy.PluginManager | None = None

    def entries(self) -> list[PluginEntry]:
        return [*self.datasets.values(), *self.detectors.values(), *self.metrics.values()]

    def _get(self, table: dict[str, PluginEntry], what: str, name: str) -> type:
        if name not in table:
            known = ", ".join(sorted(table)) or "none installed"
            raise UserError(f"unknown {what} '{name}'; available: {known}")
        return table[name].cls

    def dataset(self, name: str) -> type[Dataset]:
        return self._get(self.datasets, "dataset", name)

    def detector(self, name: str) -> type[Detector]:
        return self._get(self.detectors, "detector", name)

    def run_metrics(self) -> list[type[Metric]]:
        return [e.cls for e in self.metrics.values() if issubclass(e.cls, Metric)]

    def comparative_metrics(self) -> list[type[ComparativeMetric]]:
        return [e.cls for e in self.metrics.values() if issubclass(e.cls, ComparativeMetric)]


def _first_line(obj: Any) -> str:
    doc = inspect.getdoc(obj) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def _check_class(obj: Any, bases: tuple[type, ...]) -> str | None:
    """Why ``obj`` is not a valid plugin class, or None."""
    if not inspect.isclass(obj) or not issubclass(obj, bases):
        return f"{obj!r} is not a subclass of {' or '.join(b.__name__ for b in bases)}"
    if inspect.isabstract(obj):
        return f"{obj.__name__} leaves abstract methods unimplemented"
    for attr in ("name", "version"):
        if not isinstance(getattr(obj, attr, None), str) or not getattr(obj, attr):
            return f"{obj.__name__} has no string '{attr}'"
    if issubclass(obj, Detector) and obj.kind not in DETECTOR_KINDS:
        return f"detector {obj.name} has kind '{obj.kind}', expected one of {', '.join(DETECTOR_KINDS)}"
    if issubclass(obj, Detector) and getattr(obj, "score_region", None) not in (None, *SCORE_REGIONS):
        return f"detector {obj.name} has score_region '{obj.score_region}', expected one of {', '.join(SCORE_REGIONS)}"
    if issubclass(obj, Dataset) and obj.task not in TASKS:
        return f"dataset {obj.name} has task '{obj.task}', expected one of {', '.join(TASKS)}"
    if issubclass(obj, Dataset) and not _valid_working_points(getattr(obj, "working_points", ())):
        return f"dataset {obj.name} has working_points {obj.working_points!r}, expected a tuple of numbers in (0, 1]"
    if issubclass(obj, Dataset) and not all(isinstance(f, RemoteFile) for f in getattr(obj, "remote_files", ())):
        return f"dataset {obj.name} has remote_files that are not all RemoteFile(name, url, sha256)"
    return None


def _valid_working_points(points: Any) -> bool:
    """A tuple/list of background efficiencies in (0, 1] (issue 12: a dataset names its working points)."""
    if not isinstance(points, (tuple, list)):
        return False
    return all(isinstance(p, (int, float)) and not isinstance(p, bool) and 0 < p <= 1 for p in points)


class _BadReturn(Exception):
    """A hook returned something other than a list of classes."""


def _hook_classes(returned: Any, hook_name: str) -> list[Any]:
    """The hook's return value as a list, or _BadReturn (a bare class or 42 must not break every command)."""
    if returned is None:
        return []
    if not isinstance(returned, (list, tuple)):
        raise _BadReturn(f"{hook_name} returned {returned!r} ({type(returned).__name__}), expected a list of classes")
    return list(returned)


def register_commands(registry: Registry, cli: Any, warn: Callable[[str], None]) -> None:
    """Call every plugin's ``hepad_register_commands`` on its own: one that raises is recorded as broken."""
    if registry.manager is None:
        return
    for impl in registry.manager.hook.hepad_register_commands.get_hookimpls():
        try:
            impl.function(cli=cli)
        except Exception as exc:
            dist, _, plugin_name = impl.plugin_name.rpartition(":")  # registered as "<dist>:<entry point>"
            reason = f"hepad_register_commands raised {type(exc).__name__}: {exc}"
            registry.broken.append(BrokenPlugin(plugin_name, dist or "unknown", reason))
            warn(f"plugin {plugin_name} ({dist or 'unknown'}) is broken and skipped: {reason}")


def _kind_of(cls: type) -> str:
    if issubclass(cls, Detector):
        return cls.kind
    if issubclass(cls, Dataset):
        return cls.task
    return "comparative" if issubclass(cls, ComparativeMetric) else "per-run"


def _selected(ep: EntryPoint, dist: str) -> bool:
    if dist == FIRST_PARTY:
        return True
    wanted = os.environ.get(ENV_FILTER)
    if wanted is None:
        return True
    names = {s.strip() for s in wanted.split(",") if s.strip()}
    return ep.name in names or dist in names


def _dist_name(ep: EntryPoint) -> str:
    return ep.dist.name if ep.dist is not None else "unknown"


def load_registry(extra_plugins: list[tuple[str, Any]] | None = None, warn: Callable[[str], None] | None = None) -> Registry:
    """Discover, validate and index every plugin.

    ``extra_plugins``: (distribution, module) pairs registered besides the
    entry points (used by tests of the plugin manager itself).
    """
    warn = warn or (lambda msg: warnings.warn(msg, stacklevel=2))
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    registry = Registry(manager=pm)
    origins: dict[int, tuple[str, str]] = {}  # id(plugin) -> (plugin name, distribution)

    candidates: list[tuple[str, str, Callable[[], Any]]] = []
    for ep in sorted(entry_points(group=hookspecs.PROJECT), key=lambda e: (_dist_name(e) != FIRST_PARTY, e.name)):
        dist = _dist_name(ep)
        if _selected(ep, dist):
            candidates.append((ep.name, dist, ep.load))
    for dist, module in extra_plugins or []:
        candidates.append((getattr(module, "__name__", str(module)), dist, lambda m=module: m))

    for plugin_name, dist, loader in candidates:
        try:
            module = loader()
            if pm.is_registered(module):
                continue
            pm.register(module, name=f"{dist}:{plugin_name}")
        except Exception as exc:  # a broken plugin must never stop the harness
            registry.broken.append(BrokenPlugin(plugin_name, dist, f"import failed: {type(exc).__name__}: {exc}"))
            warn(f"plugin {plugin_name} ({dist}) is broken and skipped: {exc}")
            continue
        origins[id(module)] = (plugin_name, dist)

    for hook_name, (category, bases) in HOOKS.items():
        table = getattr(registry, category + "s")
        for impl in getattr(pm.hook, hook_name).get_hookimpls():
            plugin_name, dist = origins.get(id(impl.plugin), (impl.plugin_name, "unknown"))
            try:
                classes = _hook_classes(impl.function(), hook_name)
            except Exception as exc:  # raised, or returned something that is not a list of classes
                reason = str(exc) if isinstance(exc, _BadReturn) else f"{hook_name} raised {type(exc).__name__}: {exc}"
                registry.broken.append(BrokenPlugin(plugin_name, dist, reason))
                warn(f"plugin {plugin_name} ({dist}) is broken and skipped: {reason}")
                continue
            for cls in classes:
                problem = _check_class(cls, bases)
                if problem:
                    registry.broken.append(BrokenPlugin(plugin_name, dist, problem))
                    warn(f"plugin {plugin_name} ({dist}) is broken and skipped: {problem}")
                    continue
                if cls.name in table and table[cls.name].cls is not cls:
                    other = table[cls.name]
                    raise UserError(
                        f"two plugins claim the {category} name '{cls.name}': "
                        f"{other.distribution} ({other.cls.__module__}) and {dist} ({cls.__module__}); "
                        f"uninstall one or restrict plugins with {ENV_FILTER}"
                    )
                table[cls.name] = PluginEntry(category, cls.name, cls.version, _kind_of(cls), dist, cls, _first_line(cls))
    return registry
