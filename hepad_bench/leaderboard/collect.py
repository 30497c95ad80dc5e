"""Gather stored runs into leaderboard sections (one per dataset variant).

A *section* is every run of one dataset identity (name, version, options,
event cap); a *row* is one detector configuration (name, version, config)
inside it, with its runs over seeds. Comparative metrics are evaluated here,
once per signal and seed, from the stored scores.
"""

from __future__ import annotations

import math
import warnings
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
        return sorted(int(r.run["seed"]) for r in self.ok)

    def run_for(self, seed: int) -> StoredRun | None:
        return next((r for r in self.ok if int(r.run["seed"]) == seed), None)

    def values(self, signal: str, key: str) -> list[tuple[int, Value]]:
        """(seed, value) of a per-run metric over this row's successful runs."""
        out = []
        for run in sorted(self.ok, key=lambda r: int(r.run["seed"])):
            metrics = run.metrics().get(signal)
            if metrics is not None and key in metrics:
                out.append((int(run.run["seed"]), Value.parse(metrics[key])))
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

    @property
    def seeds(self) -> list[int]:
        return sorted({s for row in self.rows for s in row.seeds})

    @property
    def hepad_versions(self) -> list[str]:
        return sorted({str(r.run.get("versions", {}).get("hepad-bench")) for row in self.rows for r in row.ok + row.failed})

    def comparative_values(self, metric: str, signal: str, row: str, key: str) -> list[tuple[int, Value]]:
        return sorted(
            ((c.seed, c.value) for c in self.comparative
             if c.metric == metric and c.signal == signal and c.row == row and c.key == key),
            key=lambda t: t[0],
        )


def config_hash(config: dict[str, Any]) -> str:
    return stable_hash(config, 8)


def _row_labels(rows: list[Row]) -> None:
    """Detector name, disambiguated by version and config hash only where needed."""
    by_name: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        by_name[row.detector].append(row)
    for name, group in by_name.items():
        versions = {r.version for r in group}
        for row in group:
            if len(group) == 1:
                row.label = name
            elif len(versions) > 1:
                row.label = f"{name} v{row.version} [{row.config_hash}]"
            else:
                row.label = f"{name} [{row.config_hash}]"


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def collect_sections(results: Path) -> list[Section]:
    """Every dataset variant under ``results``, rows sorted by label."""
    runs = readable_runs(Path(results))
    if not runs:
        raise UserError(f"no runs found under {results}; run 'hepad-bench run --output {results}' first")
    groups: dict[str, list[StoredRun]] = defaultdict(list)
    for run in runs:
        groups[stable_hash(run.run.get("dataset", {}))].append(run)
    names = defaultdict(int)
    for members in groups.values():
        names[members[0].run["dataset"]["name"]] += 1

    sections = []
    for ident, members in groups.items():
        data = members[0].run["dataset"]
        rows: dict[tuple[str, str, str], Row] = {}
        for run in members:
            det = run.run.get("detector", {})
            config = det.get("config", {})
            key = (det.get("name", "?"), str(det.get("version", "?")), config_hash(config))
            row = rows.setdefault(key, Row(key[0], key[1], key[2], det.get("kind", "?"), config))
            (row.ok if run.ok else row.failed).append(run)
        row_list = list(rows.values())
        _row_labels(row_list)
        row_list.sort(key=lambda r: r.label)
        for row in row_list:
            row.ok.sort(key=lambda r: int(r.run["seed"]))
            row.failed.sort(key=lambda r: int(r.run["seed"]))
        name = data["name"]
        slug = _slug(name if names[name] == 1 else f"{name}-{ident[:8]}")
        signals = sorted({s for run in members for s in run.signals()})
        task = next((r.run.get("task") for r in members if r.run.get("task")), "unsupervised")
        sections.append(Section(slug, name, str(data.get("version", "?")), data.get("options", {}),
                                data.get("max_events"), task, signals, row_list))
    return sorted(sections, key=lambda s: s.slug)


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


def evaluate_comparative(section: Section, metric_classes: list[type], cache: ScoreCache) -> None:
    """Run every comparative metric once per seed and signal (so seeds can be averaged like the main table).

    Seeds are the outer loop and the score cache is emptied after each, so at
    most one seed's scores of every detector are in memory at once.
    """
    classes = sorted(metric_classes, key=lambda c: c.name)
    produced: set[str] = set()
    for seed in section.seeds:
        for signal in section.signals:
            runs: dict[str, list[ScoredSignal]] = {}
            for row in section.rows:
                run = row.run_for(seed)
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
                            Comparative(cls.name, str(cls.version), str(row_label), signal, seed, str(key), Value.parse(raw))
                        )
        cache.clear()
    for cls in classes:
        if cls.name not in produced and cls.name not in section.comparative_notes:
            section.comparative_notes[cls.name] = f"{cls.name} returned no values"
