"""Gather stored runs into leaderboard sections (one per dataset variant).

A *section* is every run of one dataset identity (name, version, options,
event cap); a *row* is one detector configuration (name, version, config)
inside it, with its runs over seeds. Comparative metrics are evaluated here,
once per signal and replica, from the stored scores.

A *replica* is (data seed, run seed): runs with ``--data-seed`` differ only
by the split they drew, so runs differing only by data seed (and run seed)
are one section, aggregated over data seeds x run seeds. Runs without a data
seed have replicas (None, seed) and sections exactly as before; a section
never mixes the two (the canonical split is not one of the data seeds' draws).
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from hepad_bench.data import ScoredSignal, Unavailable
from hepad_bench.errors import UserError
from hepad_bench.params import stable_hash
from hepad_bench.store import METRICS, SCORES, StoredRun, iter_runs


def _warn(message: str) -> None:
    warnings.warn(message, UserWarning, stacklevel=3)


def unreadable(run: StoredRun) -> str | None:
    """Why a stored run cannot be used (damaged metrics.json or scores.parquet), or None.

    Failed runs have no scores to check. The Parquet footer is read here (a
    truncated file fails); damage deeper in the file is caught where the
    scores are read (:class:`ScoreCache`).
    """
    if not run.ok:
        return None
    try:
        if not isinstance(run.metrics(), dict):
            return f"{METRICS} is not a JSON object"
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return f"{METRICS} {type(exc).__name__}"
    try:
        pl.read_parquet_schema(run.folder / SCORES)
    except Exception as exc:  # polars raises several types for a damaged file
        return f"{SCORES} cannot be read ({type(exc).__name__})"
    return None


def readable_runs(results: Path) -> list[StoredRun]:
    """The runs under ``results`` that can be read; each other one is named in a warning and skipped."""
    out = []
    for run in iter_runs(Path(results), warn=_warn):
        problem = unreadable(run)
        if problem:
            _warn(f"skipped unreadable run {run.folder}: {problem}")
            continue
        out.append(run)
    return out


@dataclass(frozen=True)
class Value:
    """One number of the leaderboard, or the reason it is missing."""

    value: float | None
    unavailable: str | None = None

    @classmethod
    def parse(cls, raw: Any) -> Value:
        if isinstance(raw, Unavailable):
            return cls(None, raw.reason)
        if isinstance(raw, dict):
            return cls(None, str(raw.get("unavailable", "not a number")))
        try:
            number = float(raw)
        except (TypeError, ValueError):
            return cls(None, f"not a number: {raw!r}")
        return cls(number, None) if math.isfinite(number) else cls(None, f"non-finite value {number}")


#: (data seed or None, run seed): one training on one split
Replica = tuple["int | None", int]


def data_seed_of(run: StoredRun) -> int | None:
    """The run's ``--data-seed`` (run.json ``dataset.data_seed``), None for a dataset's canonical split."""
    value = (run.run.get("dataset") or {}).get("data_seed", run.run.get("data_seed"))
    return None if value is None else int(value)


def replica_of(run: StoredRun) -> Replica:
    return (data_seed_of(run), int(run.run["seed"]))


def replica_order(replica: Replica) -> tuple[int, int]:
    """Sort key: data seed (none first), then run seed."""
    return (-1 if replica[0] is None else replica[0], replica[1])


def describe_replicas(replicas: "list[Replica] | tuple[Replica, ...]") -> str:
    """``1, 2, 3`` (run seeds only), ``3 data seeds x 2 run seeds`` (a full grid), else each ``data/run`` pair."""
    if not replicas:
        return "none"
    data = sorted({d for d, _ in replicas if d is not None})
    seeds = sorted({s for _, s in replicas})
    if not data:
        return ", ".join(map(str, seeds))
    if len(set(replicas)) == len(data) * len(seeds):
        return f"{len(data)} data seed{'s' * (len(data) > 1)} x {len(seeds)} run seed{'s' * (len(seeds) > 1)}"
    return ", ".join(f"data seed {d}/seed {s}" for d, s in sorted(set(replicas), key=replica_order))


@dataclass
class Row:
    """One detector configuration on one dataset, over seeds."""

    detector: str
    version: str
    config_hash: str
    kind: str
    config: dict[str, Any]
    ok: list[StoredRun] = field(default_factory=list)
    failed: list[StoredRun] = field(default_factory=list)
    label: str = ""

    @property
    def seeds(self) -> list[int]:
        """The run seeds of the successful runs (each once)."""
        return sorted({int(r.run["seed"]) for r in self.ok})

    @property
    def replicas(self) -> list[Replica]:
        """(data seed, run seed) of every successful run, in order."""
        return sorted((replica_of(r) for r in self.ok), key=replica_order)

    def run_for(self, replica: Replica) -> StoredRun | None:
        return next((r for r in self.ok if replica_of(r) == replica), None)

    def values(self, signal: str, key: str) -> list[tuple[Replica, Value]]:
        """(replica, value) of a per-run metric over this row's successful runs."""
        out = []
        for run in sorted(self.ok, key=lambda r: replica_order(replica_of(r))):
            metrics = run.metrics().get(signal)
            if metrics is not None and key in metrics:
                out.append((replica_of(run), Value.parse(metrics[key])))
        return out


@dataclass
class Comparative:
    """One value returned by a comparative metric for a row, signal and seed."""

    metric: str
    metric_version: str
    row: str
    signal: str
    seed: int
    key: str
    value: Value
    data_seed: int | None = None

    @property
    def replica(self) -> Replica:
        return (self.data_seed, self.seed)


@dataclass
class Section:
    """All runs of one dataset variant."""

    slug: str
    name: str
    version: str
    options: dict[str, Any]
    max_events: int | None
    task: str
    signals: list[str]
    rows: list[Row]
    comparative: list[Comparative] = field(default_factory=list)
    #: comparative metric name -> why it produced nothing (not installed, raised ...)
    comparative_notes: dict[str, str] = field(default_factory=dict)
    #: installed comparative metrics: name -> version
    installed: dict[str, str] = field(default_factory=dict)
    #: the dataset's Benchmark.meta as one run recorded it (normalisation, background rate)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def seeds(self) -> list[int]:
        """Run seeds (each once)."""
        return sorted({s for row in self.rows for s in row.seeds})

    @property
    def data_seeds(self) -> list[int]:
        """The ``--data-seed`` values of the section's runs; empty for a dataset's canonical split."""
        return sorted({d for row in self.rows for d, _ in row.replicas if d is not None})

    @property
    def replicas(self) -> list[Replica]:
        return sorted({r for row in self.rows for r in row.replicas}, key=replica_order)

    @property
    def hepad_versions(self) -> list[str]:
        return sorted({str(r.run.get("versions", {}).get("hepad-bench")) for row in self.rows for r in row.ok + row.failed})

    def comparative_values(self, metric: str, signal: str, row: str, key: str) -> list[tuple[Replica, Value]]:
        return sorted(
            ((c.replica, c.value) for c in self.comparative
             if c.metric == metric and c.signal == signal and c.row == row and c.key == key),
            key=lambda t: replica_order(t[0]),
        )


def config_hash(config: dict[str, Any]) -> str:
    return stable_hash(config, 8)


#: Config keys that change how fast a detector runs, not what it computes: left out of row labels.
SPEED_ONLY_KEYS = frozenset({"threads", "n_jobs", "num_workers", "device"})

#: (plugin kind "dataset" / "detector", name) -> that plugin's default options / config, or None when unknown.
Defaults = Callable[[str, str], "dict[str, Any] | None"]


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":")) if not isinstance(value, str) else value
    return text if len(text) <= 24 else text[:21] + "..."


def _differences(config: dict[str, Any], reference: dict[str, Any] | None, ignore=SPEED_ONLY_KEYS) -> list[str]:
    """``key=value`` for each entry of ``config`` that differs from ``reference`` (sorted by key)."""
    if reference is None:
        return []
    plain = json.loads(json.dumps(reference, default=str))  # tuples -> lists, as run.json stores them
    return [f"{k}={_short(v)}" for k, v in sorted(config.items()) if k not in ignore and plain.get(k, object()) != v]


def _row_labels(rows: list[Row], defaults: Defaults | None = None) -> None:
    """Detector name plus its non-default parameters, e.g. ``gan-ae (cycles=5)``.

    Defaults come from the installed detector's Config; without the plugin,
    the parameters that differ between rows of the same detector are named.
    A version is added where versions differ, and the config hash only when
    two rows would still read the same.
    """
    by_name: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        by_name[row.detector].append(row)
    for name, group in by_name.items():
        reference = defaults(
            "detector", name) if defaults is not None else None
        versions = {r.version for r in group}
        for row in group:
            changed = _differences(row.config, reference)
            if reference is None and len(group) > 1:
                varying = {k for r in group for k in set(r.config) | set(row.config)
                           if any(r.config.get(k) != row.config.get(k) for r in group)}
                changed = [f"{k}={_short(row.config[k])}" for k in sorted(varying - SPEED_ONLY_KEYS) if k in row.config]
            parts = ([f"v{row.version}"] if len(versions) > 1 else []) + changed
            row.label = f"{name} ({', '.join(parts)})" if parts else name
        labels = [r.label for r in group]
        for row in group:
            if labels.count(row.label) > 1:
                row.label = f"{row.label} [{row.config_hash}]"


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def section_slug(dataset: dict[str, Any], defaults: Defaults | None = None) -> str:
    """A dataset variant's folder name, stable whatever other runs exist.

    The dataset's name for its default options without an event cap; otherwise
    the name, ``--`` and the non-default options (``l1-pythia--max_events-5``),
    or a hash of them where that would be long.
    """
    name = dataset.get("name", "?")
    options, cap = dataset.get("options", {}) or {}, dataset.get("max_events")
    reference = defaults("dataset", name) if defaults is not None else None
    # unknown defaults (plugin not installed): the options count as default; collect_sections resolves clashes
    changed = _differences(options, reference, ignore=frozenset()) if reference is not None else []
    if not changed and cap is None:
        return _slug(name)
    parts = changed + ([f"max_events={cap}"] if cap is not None else [])
    suffix = "_".join(p.replace("=", "-") for p in parts)
    if len(suffix) > 40:
        suffix = stable_hash({"options": options, "max_events": cap}, 8)
    return _slug(f"{name}--{suffix}")


def collect_sections(results: Path, defaults: Defaults | None = None) -> list[Section]:
    """Every dataset variant under ``results``, rows sorted by label.

    ``defaults`` gives plugins' default options and configs (from the
    registry): they name rows by their non-default parameters and keep a
    dataset's default variant in a folder named by the dataset alone.
    """
    runs = readable_runs(Path(results))
    if not runs:
        raise UserError(f"no runs found under {results}; run 'hepad-bench run --output {results}' first")
    groups = _group_by_dataset(runs)

    sections = []
    for ident, members in groups.items():
        data = dict(members[0].run["dataset"])
        seeded = data.pop("data_seed", None) is not None
        rows: dict[tuple[str, str, str], Row] = {}
        for run in members:
            det = run.run.get("detector", {})
            config = det.get("config", {})
            key = (det.get("name", "?"), str(det.get("version", "?")), config_hash(config))
            row = rows.setdefault(key, Row(key[0], key[1], key[2], det.get("kind", "?"), config))
            (row.ok if run.ok else row.failed).append(run)
        row_list = list(rows.values())
        _row_labels(row_list, defaults)
        row_list.sort(key=lambda r: r.label)
        for row in row_list:
            row.ok.sort(key=lambda r: replica_order(replica_of(r)))
            row.failed.sort(key=lambda r: replica_order(replica_of(r)))
        name = data["name"]
        signals = sorted({s for run in members for s in run.signals()})
        task = next((r.run.get("task") for r in members if r.run.get("task")), "unsupervised")
        meta = next((r.run.get("dataset_meta") for r in sorted(members, key=lambda r: str(r.folder))
                     if r.ok and r.run.get("dataset_meta")), {})
        # a data-seeded section gets a folder of its own: the canonical split's folder keeps its name
        slug = section_slug(data, defaults) + ("--data-seeds" if seeded else "")
        sections.append(Section(slug, name, str(data.get("version", "?")),
                                data.get("options", {}), data.get("max_events"), task, signals, row_list, meta=meta))
    by_slug: dict[str, list[Section]] = defaultdict(list)
    for section in sections:
        by_slug[section.slug].append(section)
    for same in by_slug.values():
        # the newest dataset version keeps the name; older ones get --v<version>. Same version with other options
        # only happens when the dataset plugin is not installed (defaults unknown): the variant with most runs
        # keeps the name, the others get a hash of their options.
        same.sort(key=lambda s: (_version_key(s.version), sum(len(r.ok) + len(r.failed) for r in s.rows),
                                 stable_hash({"o": s.options, "m": s.max_events})))
        keeper = same[-1]
        for section in same[:-1]:
            suffix = f"v{section.version}" if section.version != keeper.version else \
                stable_hash({"options": section.options, "max_events": section.max_events}, 8)
            section.slug = _slug(f"{section.slug}--{suffix}")
    return sorted(sections, key=lambda s: s.slug)


def _group_by_dataset(runs: list[StoredRun]) -> dict[str, list[StoredRun]]:
    """Runs by dataset identity; runs with a data seed by their identity without it (and without the fingerprint
    of the split it drew), so that all data seeds of one dataset variant are one section.

    Each data seed must have read one content fingerprint: where a data seed's runs read different data (other
    ``--data-dir`` files), the group falls back to one section per data and data seed, with a warning.
    """
    groups: dict[str, list[StoredRun]] = defaultdict(list)
    for run in runs:
        ident = dict(run.run.get("dataset", {}))
        if ident.get("data_seed") is not None:
            ident = {k: v for k, v in ident.items() if k not in ("data_seed", "fingerprint")} | {"data_seeds": True}
        groups[stable_hash(ident)].append(run)
    out: dict[str, list[StoredRun]] = {}
    for key, members in groups.items():
        prints: dict[int | None, set] = defaultdict(set)
        for run in members:
            prints[data_seed_of(run)].add(run.run.get("dataset", {}).get("fingerprint"))
        if all(len(p) == 1 for p in prints.values()):
            out[key] = members
            continue
        _warn(f"runs of {members[0].run['dataset'].get('name')} with one data seed read different data "
              "(other input files?): not aggregated over data seeds")
        for run in members:
            out.setdefault(stable_hash(run.run.get("dataset", {})), []).append(run)
    return out


def _version_key(version: str) -> tuple:
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in version.split("."))


class ScoreCache:
    """Scores of each run loaded once per section."""

    def __init__(self) -> None:
        self._frames: dict[Path, pl.DataFrame | None] = {}

    def scored(self, run: StoredRun, signal: str) -> ScoredSignal | None:
        if signal not in run.signals():
            return None
        if run.folder not in self._frames:
            try:
                self._frames[run.folder] = run.scores()
            except Exception as exc:  # damage the footer check could not see: this run drops out, the rest go on
                _warn(f"skipped unreadable run {run.folder}: {SCORES} cannot be read ({type(exc).__name__})")
                self._frames[run.folder] = None
        frame = self._frames[run.folder]
        return None if frame is None else run.scored(signal, frame)

    def clear(self) -> None:
        self._frames.clear()


def evaluate_comparative(section: Section, metric_classes: list[type], cache: ScoreCache,
                         progress: Callable[[str], None] | None = None) -> None:
    """Run every comparative metric once per seed and signal (so seeds can be averaged like the main table).

    Seeds are the outer loop and the score cache is emptied after each, so at
    most one seed's scores of every detector are in memory at once.
    ``progress`` receives one line per seed and signal.
    """
    classes = sorted(metric_classes, key=lambda c: c.name)
    produced: set[str] = set()
    steps, step = len(section.replicas) * len(section.signals), 0
    for data_seed, seed in section.replicas:  # detectors compared on the same split and seed
        for signal in section.signals:
            step += 1
            if progress is not None and classes:
                where = f"data seed {data_seed}, seed {seed}" if data_seed is not None else f"seed {seed}"
                progress(f"{section.slug}: comparative metrics, {where}, {signal} ({step}/{steps})")
            runs: dict[str, list[ScoredSignal]] = {}
            for row in section.rows:
                run = row.run_for((data_seed, seed))
                scored = cache.scored(run, signal) if run is not None else None
                if scored is not None and len(scored.background) and len(scored.signal_sample):
                    runs[row.label] = [scored]
            if not runs:
                continue
            for cls in classes:
                try:
                    result = cls().compare(signal, runs)
                except Exception as exc:  # a broken metric plugin must not lose the leaderboard
                    reason = f"{cls.name} raised {type(exc).__name__}: {exc}"
                    if cls.name not in section.comparative_notes:
                        warnings.warn(f"{section.name}: {reason}", stacklevel=2)
                    section.comparative_notes.setdefault(cls.name, reason)
                    continue
                for row_label, values in sorted((result or {}).items()):
                    if not hasattr(values, "items"):
                        continue
                    for key, raw in sorted(values.items()):
                        produced.add(cls.name)
                        section.comparative.append(
                            Comparative(cls.name, str(cls.version), str(row_label), signal, seed, str(key),
                                        Value.parse(raw), data_seed)
                        )
        cache.clear()
    for cls in classes:
        if cls.name not in produced and cls.name not in section.comparative_notes:
            section.comparative_notes[cls.name] = f"{cls.name} returned no values"
