"""Plugin discovery: entry points of group ``hepad_bench``, validated and indexed.

First-party plugins (distribution ``hepad-bench``) are found exactly like
third-party ones. ``HEPAD_BENCH_PLUGINS=a,b`` restricts the *external* ones to
the named entry points or distributions (empty: built-ins only). A plugin that
fails to import, or returns something that is not a valid class, is recorded
as broken with the reason and skipped.

``load_registry(use_cache=True)`` (the CLI) serves names, versions, schemas
and cards from the metadata cache (``plugin_cache.py``) and imports a plugin's
module only when one of its classes is used: ``hepad-bench --help``, ``list``,
``datasets info`` and ``leaderboard`` never import torch.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import json
import os
import sys
import typing
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import pluggy

from hepad_bench import __version__, hookspecs, plugin_cache
from hepad_bench.contracts import (
    DETECTOR_KINDS, SCORE_REGIONS, ComparativeMetric, Dataset, Detector, Metric, RemoteFile, score_region_of,
)
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
    cls: type | None  # None until first used, for an entry served from the metadata cache
    summary: str
    #: what is known without importing the class (see ``describe``): schemas, defaults, card ...
    meta: dict[str, Any] = field(default_factory=dict, repr=False)
    loader: Callable[[], type] | None = field(default=None, repr=False, compare=False)

    def load(self) -> type:
        """The plugin class, importing its module on first use."""
        if self.cls is None:
            assert self.loader is not None, f"{self.category} {self.name} has neither a class nor a loader"
            self.cls = self.loader()
        return self.cls

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

    #: plugins that add sub-commands but are not imported yet (served from the metadata cache)
    command_plugins: list[Callable[[], Any]] = field(default_factory=list)

    def entry(self, category: str, name: str) -> PluginEntry:
        table = getattr(self, category + "s")
        if name not in table:
            known = ", ".join(sorted(table)) or "none installed"
            raise UserError(f"unknown {category} '{name}'; available: {known}")
        return table[name]

    def _get(self, table: dict[str, PluginEntry], what: str, name: str) -> type:
        return self.entry(what, name).load()

    def defaults(self, category: str, name: str) -> dict[str, Any] | None:
        """Default options (dataset) or config (detector) as stored in run.json, without importing the plugin.

        None when the plugin is not installed or its defaults cannot be built.
        """
        entry = getattr(self, category + "s").get(name)
        if entry is None:
            return None
        if "defaults" not in entry.meta:
            entry.meta.update(describe(entry.load()))
        return entry.meta["defaults"]

    def card(self, name: str) -> str:
        """A dataset's card (Markdown), without importing the plugin."""
        entry = self.entry("dataset", name)
        return entry.meta["card"] if "card" in entry.meta else entry.load().card

    def dataset_facts(self, name: str) -> list[tuple[str, str]]:
        """What ``datasets info`` says about a dataset before its card (files, data seeds, ...), without importing it."""
        entry = self.entry("dataset", name)
        if "facts" not in entry.meta:
            entry.meta.update(describe(entry.load()))
        return [(key, text.replace(DISTRIBUTION_SLOT, entry.distribution)) for key, text in entry.meta["facts"]]

    def dataset(self, name: str) -> type[Dataset]:
        return self._get(self.datasets, "dataset", name)

    def detector(self, name: str) -> type[Detector]:
        return self._get(self.detectors, "detector", name)

    def run_metrics(self) -> list[type[Metric]]:
        return [e.load() for e in self.metrics.values() if e.kind == "per-run"]

    def run_metric_versions(self, task: str) -> dict[str, str]:
        """{name: version} of the per-run metrics of ``task``, from the metadata where the class is not loaded yet
        (a run asks before training; importing the metrics then would hold their libraries through the fit)."""
        out = {}
        for entry in self.metrics.values():
            if entry.kind != "per-run":
                continue
            if entry.cls is not None:  # loaded: the class itself is the authority
                tasks, version = entry.cls.tasks, getattr(entry.cls, "version", entry.version)
            else:
                tasks, version = entry.meta.get("tasks", ()), entry.version
            if task in tasks:
                out[entry.name] = str(version)
        return out

    def comparative_metrics(self) -> list[type[ComparativeMetric]]:  # a leaderboard imports these, not the detectors
        return [e.load() for e in self.metrics.values() if e.kind == "comparative"]


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
    from hepad_bench.data import TASKS  # here, not at the top: data imports polars

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
    for load_module in registry.command_plugins:  # served from the cache: import them now (see load_registry)
        load_module()
    registry.command_plugins = []
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


#: id(distribution) -> (name, version): importlib.metadata parses METADATA (an email parser) on every access,
#: tens of milliseconds for hepad-bench's 17 entry points, a noticeable share of ``hepad-bench --help``
_DIST_FACTS: dict[int, tuple[Any, str, str]] = {}


def _dist_facts(ep: EntryPoint) -> tuple[str, str]:
    """(name, version) of the distribution providing ``ep``."""
    dist = ep.dist
    if dist is None:
        return "unknown", ""
    known = _DIST_FACTS.get(id(dist))
    if known is None or known[0] is not dist:
        meta = dist.metadata
        known = _DIST_FACTS[id(dist)] = (dist, meta["Name"], meta["Version"])
    return known[1], known[2]


def _dist_name(ep: EntryPoint) -> str:
    return _dist_facts(ep)[0]


#: stands for the plugin's distribution in cached texts (the class alone does not know it)
DISTRIBUTION_SLOT = "{distribution}"


def describe(cls: type) -> dict[str, Any]:
    """What the CLI shows or checks about a plugin class without importing it (JSON-plain; cached)."""
    meta: dict[str, Any] = {"module": cls.__module__, "qualname": cls.__qualname__, "doc": inspect.getdoc(cls) or ""}
    if issubclass(cls, Detector):
        meta.update(tasks=cls.tasks, score_region=score_region_of(cls),
                    min_validation_events=cls.min_validation_events, **_schema(cls.Config))
    elif issubclass(cls, Dataset):
        from hepad_bench.dataset_tools import dataset_facts  # numpy, polars: only when the cache is built

        meta.update(task=cls.task, card=cls.card, null_options=cls.null_options,
                    facts=dataset_facts(cls, DISTRIBUTION_SLOT),
                    uses_data_seed=bool(getattr(cls, "uses_data_seed", False)), **_schema(cls.Options))
    else:
        meta.update(tasks=getattr(cls, "tasks", ()))
    return json.loads(json.dumps(meta, default=str))


def _schema(holder: type) -> dict[str, Any]:
    """Fields (name, type, default) of a Config/Options dataclass, its docstring and its defaults as run.json stores them."""
    from hepad_bench.params import _type_name, as_dict

    if not dataclasses.is_dataclass(holder):
        return {"params": [], "params_doc": "", "defaults": None}
    try:
        hints = typing.get_type_hints(holder)
    except Exception:  # an unresolvable annotation: the raw text
        hints = {}
    params = []
    for f in dataclasses.fields(holder):
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        params.append({"name": f.name, "type": _type_name(hints.get(f.name, f.type)), "default": default})
    try:
        defaults = as_dict(holder())
    except Exception:  # no default for some field, or a __post_init__ that refuses them
        defaults = None
    return {"params": params, "params_doc": inspect.getdoc(holder) or "", "defaults": defaults}


def _add(table: dict[str, PluginEntry], entry: PluginEntry) -> None:
    """Index ``entry``; a second plugin claiming its name is a UserError naming both."""
    other = table.get(entry.name)
    if other is not None and not (other.cls is not None and other.cls is entry.cls):
        def module(e: PluginEntry) -> str:
            return e.cls.__module__ if e.cls is not None else e.meta.get("module", "?")

        raise UserError(
            f"two plugins claim the {entry.category} name '{entry.name}': "
            f"{other.distribution} ({module(other)}) and {entry.distribution} ({module(entry)}); "
            f"uninstall one or restrict plugins with {ENV_FILTER}"
        )
    table[entry.name] = entry


def _module_loader(pm: pluggy.PluginManager, plugin_name: str, dist: str, load: Callable[[], Any]) -> Callable[[], Any]:
    """Import and register a cached plugin's module on first call; later calls return it."""
    loaded: list[Any] = []

    def module() -> Any:
        if not loaded:
            try:
                mod = load()
            except Exception as exc:  # it imported when the cache was built; say which plugin fails now
                raise UserError(f"plugin {plugin_name} ({dist}) failed to import: {type(exc).__name__}: {exc}") from exc
            if not pm.is_registered(mod):
                pm.register(mod, name=f"{dist}:{plugin_name}")
            loaded.append(mod)
        return loaded[0]

    return module


def _class_loader(pm: pluggy.PluginManager, module: Callable[[], Any], hook_name: str, entry: PluginEntry,
                  plugin_name: str) -> Callable[[], type]:
    """The class ``entry`` describes, from its plugin's hook (the module imported on first call)."""
    bases = HOOKS[hook_name][1]

    def load() -> type:
        mod = module()
        for impl in getattr(pm.hook, hook_name).get_hookimpls():
            if impl.plugin is mod:
                try:
                    classes = _hook_classes(impl.function(), hook_name)
                except Exception as exc:
                    raise UserError(f"plugin {plugin_name} ({entry.distribution}): {hook_name} raised "
                                    f"{type(exc).__name__}: {exc}") from exc
                for cls in classes:
                    if getattr(cls, "name", None) == entry.name and _check_class(cls, bases) is None:
                        return cls
        plugin_cache.invalidate()  # only if the plugin changed under a running command: the next one rebuilds
        raise UserError(f"plugin {plugin_name} ({entry.distribution}) no longer provides the {entry.category} "
                        f"'{entry.name}'; run the command again")

    return load


def _cache_key(eps: list[EntryPoint]) -> tuple[dict[str, Any], list[str]]:
    """The metadata cache's key (see plugin_cache) and the plugin distributions' metadata folders."""
    listed, folders = [], []
    for ep in eps:
        listed.append([ep.name, ep.value, *_dist_facts(ep)])
        folder = getattr(ep.dist, "_path", None)  # a PathDistribution's .dist-info folder
        if folder is not None:
            folders.append(str(folder))
    key = {"hepad_bench": __version__, "python": sys.version, "entry_points": listed,
           "installed": plugin_cache.installed_key()}
    return key, folders


def load_registry(extra_plugins: list[tuple[str, Any]] | None = None, warn: Callable[[str], None] | None = None,
                  use_cache: bool = False) -> Registry:
    """Discover, validate and index every plugin.

    ``extra_plugins``: (distribution, module) pairs registered besides the
    entry points (used by tests of the plugin manager itself).
    ``use_cache`` (the CLI): serve the entry points' classes from the plugin
    metadata cache, importing each module only when one of its classes is
    used; rebuild the cache (importing every plugin) when it is stale.
    Plugins from ``extra_plugins`` and broken ones are never cached.
    """
    warn = warn or (lambda msg: warnings.warn(msg, stacklevel=2))
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    registry = Registry(manager=pm)

    eps = [ep for ep in sorted(entry_points(group=hookspecs.PROJECT), key=lambda e: (_dist_name(e) != FIRST_PARTY, e.name))
           if _selected(ep, _dist_name(ep))]
    candidates: list[tuple[str, str, Callable[[], Any]]] = [(ep.name, _dist_name(ep), ep.load) for ep in eps]
    for dist, module in extra_plugins or []:
        candidates.append((getattr(module, "__name__", str(module)), dist, lambda m=module: m))

    key = folders = cached = None
    if use_cache and not extra_plugins:
        key, folders = _cache_key(eps)
        cached = plugin_cache.read(key)
    records = {(r["plugin"], r["distribution"]): r for r in (cached or {}).get("plugins", []) if r.get("healthy")}

    # served from the cache: entries whose class is imported on first use
    for plugin_name, dist, load in candidates:
        record = records.get((plugin_name, dist))
        if record is None:
            continue
        module = _module_loader(pm, plugin_name, dist, load)
        if "hepad_register_commands" in record["hooks"]:
            registry.command_plugins.append(module)
        for item in record["entries"]:
            entry = PluginEntry(item["category"], item["name"], item["version"], item["kind"], dist, None,
                                item["summary"], meta=item["meta"])
            entry.loader = _class_loader(pm, module, item["hook"], entry, plugin_name)
            _add(getattr(registry, entry.category + "s"), entry)

    # imported now: everything without a cache, a stale cache's plugins, broken plugins (never cached)
    recorder = plugin_cache.FileRecorder() if key is not None and cached is None else None
    with recorder.recording() if recorder is not None else contextlib.nullcontext():
        built = _import_and_index(pm, registry, [c for c in candidates if (c[0], c[1]) not in records], warn,
                                  describe_entries=recorder is not None)
    if recorder is not None:
        stamps = recorder.stamps() + plugin_cache.dist_info_stamps(folders or [])
        plugin_cache.write(key, stamps, built)
    return registry


def _import_and_index(pm: pluggy.PluginManager, registry: Registry, candidates: list[tuple[str, str, Callable[[], Any]]],
                      warn: Callable[[str], None], describe_entries: bool = False) -> list[dict[str, Any]]:
    """Import ``candidates``, call their hooks (each guarded) and index their classes.

    Returns one cache record per candidate: its hooks and entries, and
    whether it is healthy (imported, and nothing of it broken); with
    ``describe_entries`` each entry's ``meta`` is filled for the cache.
    """
    origins: dict[int, tuple[str, str]] = {}  # id(plugin) -> (plugin name, distribution)
    records: dict[tuple[str, str], dict[str, Any]] = {}
    broken_before = len(registry.broken)
    for plugin_name, dist, loader in candidates:
        record = records[(plugin_name, dist)] = {"plugin": plugin_name, "distribution": dist, "hooks": [], "entries": []}
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
        record["hooks"] = sorted(caller.name for caller in pm.get_hookcallers(module) or [])

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
                entry = PluginEntry(category, cls.name, cls.version, _kind_of(cls), dist, cls, _first_line(cls))
                _add(table, entry)
                if (plugin_name, dist) in records:
                    records[(plugin_name, dist)]["entries"].append({
                        "hook": hook_name, "category": category, "name": cls.name, "version": cls.version,
                        "kind": entry.kind, "summary": entry.summary, "entry": entry})

    broken = {(b.plugin, b.distribution) for b in registry.broken[broken_before:]}
    out = []
    for (plugin_name, dist), record in records.items():
        record["healthy"] = (plugin_name, dist) not in broken
        for item in record["entries"]:
            entry = item.pop("entry")
            if describe_entries:
                entry.meta = item["meta"] = describe(entry.cls)
        out.append(record)
    return out
