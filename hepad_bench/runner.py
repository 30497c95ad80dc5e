"""Expand the CLI grid into run specs and execute each run.

A run is a pure function of its :class:`RunSpec` to its result folder: it
reads the (cached) dataset, fits, scores, computes per-run metrics and writes
the folder atomically. Nothing is shared between runs except read-only
dataset tables, so an executor may run specs in any order or place.

The run key holds the dataset's content fingerprint, so other input files
are other runs. ``run_one`` holds the run's lock (:func:`store.run_lock`) from
the "already done?" check to the final write: two grids on one output never
compute a run twice. With ``timeout`` the fit and scoring happen in a child
process (:mod:`hepad_bench.workers`) that is killed when the time is up (the
run is recorded as failed and the grid goes on); without it everything stays
in this process.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
import traceback
from dataclasses import dataclass, field, replace
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from hepad_bench import __version__
from hepad_bench.contracts import Detector, Progress, score_region_of
from hepad_bench.data import Benchmark, ScoredSignal, TrainingData, Unavailable, column_or_none, weights_of
from hepad_bench.errors import UserError
from hepad_bench.params import as_dict, build_config, stable_hash
from hepad_bench.plugins import Registry
from hepad_bench.cache import content_fingerprint
from hepad_bench.workers import ChildFailure, ChildWorker, InProcessWorker
from hepad_bench.store import (
    SCORE_SCHEMA, TEMPLATE, TRAINING, check_writable, is_complete, metric_to_json, run_dir, run_lock, scored_signal,
    try_lock, write_run,
)

DEFAULT_SEED = 42


@dataclass(frozen=True)
class RunSpec:
    dataset: str
    detector: str
    seed: int = DEFAULT_SEED
    dataset_options: tuple[tuple[str, str], ...] = ()
    params: tuple[tuple[str, str], ...] = ()
    device: str = "cpu"
    max_events: int | None = None
    #: Set on a background-only twin (null control): the dataset options of the run it controls.
    null_of: tuple[tuple[str, str], ...] | None = None
    #: ``--data-seed``: the dataset draws its splits from it (None: its canonical split; see Dataset)
    data_seed: int | None = None


@dataclass
class RunResult:
    spec: RunSpec
    folder: Path
    status: str  # ok | failed | skipped | busy (another process holds the run's lock)
    error: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    run: dict[str, Any] = field(default_factory=dict)


def _package_version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def _gpu_driver_present() -> bool:
    """A cheap hint, without importing torch, that CUDA may be available: an NVIDIA (or ROCm) driver on
    Linux; elsewhere (Windows, macOS) we cannot tell, so torch is asked."""
    if not sys.platform.startswith("linux"):
        return True
    return any(os.path.exists(p) for p in ("/proc/driver/nvidia/version", "/dev/nvidiactl", "/dev/kfd"))


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` where torch sees a GPU, else ``cpu``; ``cuda`` without one is an error."""
    if device not in ("auto", "cpu", "cuda") and not device.startswith("cuda:"):
        raise UserError(f"unknown device '{device}': use auto, cpu or cuda")
    if device == "cpu" or (device == "auto" and not _gpu_driver_present()):
        return "cpu"  # without a GPU driver torch could not see one: spare a run of pyod detectors its import
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if device == "auto":
        return "cuda" if has_cuda else "cpu"
    if not has_cuda:
        raise UserError("--device cuda was asked for but torch sees no CUDA GPU; use --device cpu or auto")
    return device


def params_for(detector: str, params: tuple[tuple[str, str], ...], detectors: list[str]) -> tuple[tuple[str, str], ...]:
    """The ``-p`` pairs that apply to ``detector``: unscoped ones, and ``<detector>.<name>`` ones."""
    out = []
    for key, value in params:
        scope, dot, name = key.rpartition(".")
        if not dot:
            out.append((key, value))
        elif scope not in detectors:
            raise UserError(f"parameter '{key}' is scoped to '{scope}', which is not among the detectors of this run")
        elif scope == detector:
            out.append((name, value))
    return tuple(out)


def expand_grid(datasets: list[str], detectors: list[str], seeds: list[int],
                params: tuple[tuple[str, str], ...] = (), data_seeds: list[int] | None = None,
                **common: Any) -> list[RunSpec]:
    """Every (dataset, detector, data seed, seed); ``params`` may be scoped as ``<detector>.<name>``.

    ``data_seeds`` None or empty: one canonical split per dataset (no data seed).
    """
    return [RunSpec(dataset=d, detector=m, seed=s, params=params_for(m, params, detectors), data_seed=ds, **common)
            for d in datasets for m in detectors for ds in (data_seeds or [None]) for s in seeds]


def with_options(spec: RunSpec, pairs: tuple[tuple[str, str], ...], **changes: Any) -> RunSpec:
    """``spec`` with ``pairs`` appended to its dataset options (a later pair overrides an earlier one)."""
    return replace(spec, dataset_options=(*spec.dataset_options, *pairs), **changes)


def train_contamination(bench: Benchmark) -> float | None:
    """The signal fraction of an unsupervised benchmark's train + validation events.

    From the tables' truth ``label`` where they carry one (so an event cap is
    accounted for), else what the dataset declared; None for resonant tasks,
    whose training data is signal-injected "data" by definition.
    """
    if bench.task != "unsupervised":
        return None
    pool = [t for t in (bench.train, bench.validation) if t.height]
    if pool and all("label" in t.columns for t in pool):
        n_signal = sum(int((t["label"] == 1).sum()) for t in pool)
        return n_signal / sum(t.height for t in pool)
    return bench.train_contamination


class Runner:
    """Runs specs in this process, loading each dataset once per distinct options."""

    def __init__(self, registry: Registry, output: Path, data_dir: Path | None = None,
                 progress: Progress | None = None, force: bool = False, timeout: float | None = None):
        self.registry = registry
        self.output = Path(output)
        self.data_dir = data_dir
        self.progress = progress or Progress()
        self.force = force
        self.timeout = timeout
        self._benchmarks: dict[tuple, Benchmark] = {}
        self._contaminations: dict[int, float | None] = {}  # id(benchmark) -> train_contamination, worked out once

    # -- spec -> identities ------------------------------------------------
    def dataset_identity(self, spec: RunSpec) -> tuple[Any, dict[str, Any]]:
        cls = self.registry.dataset(spec.dataset)
        if spec.data_seed is not None and not getattr(cls, "uses_data_seed", False):
            raise UserError(f"dataset {cls.name} has one fixed split and does not use data seeds; drop --data-seed "
                            "(use --seed for repeated trainings)")
        options = build_config(cls.Options, list(f"{k}={v}" for k, v in spec.dataset_options), f"dataset {cls.name}")
        ident = {"name": cls.name, "version": cls.version, "options": as_dict(options), "max_events": spec.max_events}
        if spec.data_seed is not None:  # only when given: run keys without a data seed stay what they were
            ident["data_seed"] = spec.data_seed
        return options, ident

    def detector_identity(self, spec: RunSpec) -> tuple[Any, dict[str, Any]]:
        cls = self.registry.detector(spec.detector)
        config = build_config(cls.Config, list(f"{k}={v}" for k, v in spec.params), f"detector {cls.name}")
        return config, {"name": cls.name, "version": cls.version, "config": as_dict(config)}

    def data_identity(self, spec: RunSpec) -> dict[str, Any]:
        """The dataset identity with the content fingerprint of the data actually read (loads the dataset)."""
        _, data_id = self.dataset_identity(spec)
        return data_id | {"fingerprint": self.benchmark(spec).fingerprint}

    def run_key(self, spec: RunSpec) -> str:
        _, det_id = self.detector_identity(spec)
        return stable_hash({"dataset": self.data_identity(spec), "detector": det_id, "seed": spec.seed})

    def folder(self, spec: RunSpec) -> Path:
        return run_dir(self.output, spec.dataset, spec.detector, self.run_key(spec))

    def validate(self, specs: list[RunSpec]) -> None:
        """Fail early, before any training, on names, parameters and task mismatches.

        Resonant datasets are also loaded here (the load is memoised, so it is
        not repeated): their signal region, sidebands and scan windows are
        checked against the data, and a region with too few events is a
        UserError before any detector trains.
        """
        for spec in specs:
            self.dataset_identity(spec)
            self.detector_identity(spec)
            data_cls, det_cls = self.registry.dataset(spec.dataset), self.registry.detector(spec.detector)
            if data_cls.task not in det_cls.tasks:
                raise UserError(
                    f"detector {det_cls.name} needs a {' or '.join(det_cls.tasks)} dataset; "
                    f"{data_cls.name} is {data_cls.task}"
                )
            if getattr(det_cls.check, "__func__", None) is not Detector.check.__func__:  # only then load the dataset here
                det_cls.check(self.detector_identity(spec)[0], len(self.benchmark(spec).features))
        for spec in specs:
            if self.registry.dataset(spec.dataset).task == "resonant":
                self.benchmark(spec)

    def preflight(self, specs: list[RunSpec]) -> None:
        """Everything that can fail before training does: names, parameters, the output folder,
        every dataset's files (loaded once each) and what each detector needs of them."""
        self.validate(specs)
        check_writable(self.output)
        for spec in specs:
            bench, det_cls = self.benchmark(spec), self.registry.detector(spec.detector)
            counts = bench.event_counts()  # from the cache's Parquet footers: no table is read for this
            if counts["train"] == 0:
                raise UserError(f"dataset {spec.dataset} has an empty training split; check its -o options")
            self._check_contamination(bench, self.registry.dataset(spec.dataset))
            if counts["validation"] < det_cls.min_validation_events:
                raise UserError(
                    f"detector {det_cls.name} needs at least {det_cls.min_validation_events} validation events; "
                    f"dataset {spec.dataset} has {counts['validation']} (raise -o validation_fraction)"
                )
            bench.release()  # the contamination check may have read the training splits: not held between runs

    def expand(self, specs: list[RunSpec], null_controls: bool = True) -> list[RunSpec]:
        """Scans into one spec per window, then each spec followed by its background-only twin.

        A dataset whose options ask for a scan (``Dataset.scan_options``, e.g.
        ``-o sr_scan=2.9:4.5:0.2``) becomes one run per window. Where the
        dataset defines ``null_options`` (resonant datasets: no injected
        signal), every run gets its null-control twin, right after it, with
        ``null_of`` set to the options of the run it controls; a run that
        already is background-only gets none.
        """
        out: list[RunSpec] = []
        for spec in specs:
            options, _ = self.dataset_identity(spec)
            data_cls = self.registry.dataset(spec.dataset)
            windows = data_cls(options).scan_options()
            for window in windows or [()]:
                run = with_options(spec, tuple(window))
                out.append(run)
                null = tuple(data_cls.null_options)
                if null_controls and null and spec.null_of is None and not self._is_null(run, null):
                    out.append(with_options(run, null, null_of=run.dataset_options))
        return out

    def _is_null(self, spec: RunSpec, null: tuple[tuple[str, str], ...]) -> bool:
        """Whether ``spec``'s options already are the background-only ones."""
        mine, _ = self.dataset_identity(spec)
        twin, _ = self.dataset_identity(with_options(spec, null))
        return as_dict(mine) == as_dict(twin)

    # -- running -----------------------------------------------------------
    def benchmark(self, spec: RunSpec) -> Benchmark:
        options, data_id = self.dataset_identity(spec)
        memo_key = (data_id["name"], stable_hash(data_id))
        if memo_key not in self._benchmarks:
            data_cls = self.registry.dataset(spec.dataset)
            dataset = data_cls(options) if spec.data_seed is None else data_cls(options, data_seed=spec.data_seed)
            bench = dataset.load(self.data_dir, self.progress)
            if bench.fingerprint is None:  # a dataset without the cache: hash what it returned
                bench.fingerprint = content_fingerprint(bench)
            points = tuple(getattr(data_cls, "working_points", ()) or ())
            if points and "working_points" not in bench.meta:  # the efficiency metric reads them from the meta
                bench.meta["working_points"] = [float(p) for p in points]
            self._benchmarks[memo_key] = bench.capped(spec.max_events)
        return self._benchmarks[memo_key]

    def _train_contamination(self, bench: Benchmark) -> float | None:
        """:func:`train_contamination` of a loaded benchmark, worked out once (it reads the training labels)."""
        if id(bench) not in self._contaminations:
            self._contaminations[id(bench)] = train_contamination(bench)
        return self._contaminations[id(bench)]

    def _check_contamination(self, bench: Benchmark, data_cls: type) -> None:
        """Refuse undeclared signal in an unsupervised training split (before any training)."""
        fraction = self._train_contamination(bench)
        if fraction and not getattr(data_cls, "contaminated_training", False):
            raise UserError(
                f"dataset {data_cls.name} puts signal (label 1, fraction {fraction:.3g}) into its training data "
                "but does not declare contaminated_training = True"
            )

    def run_all(self, specs: list[RunSpec], null_controls: bool = True) -> list[RunResult]:
        specs = self.expand(specs, null_controls)
        self.preflight(specs)
        return list(self.iter_grid(specs))

    def _pairing(self, spec: RunSpec) -> dict[str, Any]:
        """run.json fields linking a run and its null control (by run key)."""
        data_cls = self.registry.dataset(spec.dataset)
        if spec.null_of is not None:
            return {"null_control": True, "null_control_of": self.run_key(replace(spec, dataset_options=spec.null_of,
                                                                                      null_of=None))}
        if data_cls.null_options and not self._is_null(spec, tuple(data_cls.null_options)):
            twin = with_options(spec, tuple(data_cls.null_options))
            return {"null_control": False, "null_twin": self.run_key(twin)}
        return {"null_control": False}

    def iter_grid(self, specs: list[RunSpec], on_start: Any = None):
        """Results of ``specs``; a run another process is computing is put off to the end and then waited for."""
        later = []
        for spec in specs:
            if on_start is not None:
                on_start(spec)
            res = self.run_one(spec, wait=False)
            if res.status == "busy":
                self.progress.log("  busy: another process is computing this run; back to it at the end")
                later.append(spec)
                continue
            yield res
        for spec in later:
            if on_start is not None:
                on_start(spec)
            yield self.run_one(spec, wait=True)

    def run_one(self, spec: RunSpec, wait: bool = True) -> RunResult:
        """Run one spec under its lock: skipped when complete, ``busy`` (only with ``wait=False``) when locked."""
        folder = self.folder(spec)  # a UserError here (missing or bad file) stops the grid: nothing else can run
        lock = run_lock(folder)
        if not try_lock(lock, wait):
            return RunResult(spec, folder, "busy")
        try:
            return self._run_locked(spec, folder)
        finally:
            lock.release()

    def _run_locked(self, spec: RunSpec, folder: Path) -> RunResult:
        if not self.force and is_complete(folder):
            run = json.loads((folder / "run.json").read_text())
            if run.get("metric_versions") != self._metric_versions(run["task"]) and (folder / "scores.parquet").exists():
                # a metric changed since this run: recompute its metrics from the stored scores (no training)
                scores = pl.read_parquet(folder / "scores.parquet")
                run["metric_versions"] = self._metric_versions(run["task"])
                metrics = self._metrics(scores, run)
                write_run(folder, run, scores, metrics)
                return RunResult(spec, folder, "skipped", metrics=metric_to_json(metrics), run=run)
            metrics = json.loads((folder / "metrics.json").read_text()) if (folder / "metrics.json").exists() else {}
            return RunResult(spec, folder, "skipped", metrics=metrics, run=run)
        bench = self.benchmark(spec)
        config, det_id = self.detector_identity(spec)
        data_id = self.data_identity(spec)
        det_cls = self.registry.detector(spec.detector)
        run: dict[str, Any] = {
            "key": folder.name, "dataset": data_id,
            "detector": det_id | {"kind": det_cls.kind, "score_region": score_region_of(det_cls)},
            "seed": spec.seed, **({"data_seed": spec.data_seed} if spec.data_seed is not None else {}),
            "device": spec.device, "task": bench.task,
            "signals": sorted(bench.signals), "event_counts": bench.event_counts(),
            "dataset_meta": bench.meta, "resonant": bench.resonant,
            # signal fraction of train + validation (issue 12); None: resonant, or no truth labels and none declared
            "train_contamination": self._train_contamination(bench),
            "versions": {
                "hepad-bench": __version__, "plugin": det_cls.version,
                "plugin_distribution": self.registry.detectors[det_cls.name].distribution,
                "dataset_distribution": self.registry.datasets[spec.dataset].distribution,
                "torch": _package_version("torch"), "numpy": np.__version__,
                "python": platform.python_version(),
            },
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "metric_versions": self._metric_versions(bench.task),
        } | self._pairing(spec)
        try:
            if self.timeout is not None:
                run["timeout_seconds"] = self.timeout
            scores, timing = self._fit_and_score(det_cls, config, bench, spec)
            metrics = self._metrics(scores, run)
        except Exception as exc:  # a failing detector must not stop the grid
            message = str(exc) if isinstance(exc, ChildFailure) else f"{type(exc).__name__}: {exc}"
            trace = exc.child_traceback if isinstance(exc, ChildFailure) else traceback.format_exc()
            run |= {"status": "failed", "error": message, "traceback": trace}
            write_run(folder, run, None, None)
            return RunResult(spec, folder, "failed", error=run["error"], run=run)
        run |= {"status": "ok", "error": None} | timing
        write_run(folder, run, scores, metrics)
        # the JSON form, as stored, so a fresh run and a resumed one look the same to callers
        return RunResult(spec, folder, "ok", metrics=metric_to_json(metrics), run=run)

    def _training_data(self, bench: Benchmark, kind: str, signal: str | None) -> TrainingData:
        train, val = bench.train, bench.validation
        y = y_val = None
        if kind == "supervised":
            assert signal is not None
            # Background = the background rows only: on resonant data the training
            # tables carry injected signal (label 1), which must not be taught as
            # background. The signal comes from its own labelled split.
            if "label" in train.columns:
                train, val = train.filter(pl.col("label") == 0), val.filter(pl.col("label") == 0)
            sig = bench.signal_train[signal]
            n_val = max(1, sig.height // 5)
            sig_tr, sig_val = sig.slice(n_val), sig.head(n_val)
            resonant = [bench.resonant] if bench.resonant else []
            cols = list(dict.fromkeys([*bench.features, "weight", *resonant]))
            y = np.r_[np.zeros(train.height), np.ones(sig_tr.height)].astype(np.float32)
            y_val = np.r_[np.zeros(val.height), np.ones(sig_val.height)].astype(np.float32)
            train = pl.concat([train.select(cols), sig_tr.select(cols)], how="vertical_relaxed")
            val = pl.concat([val.select(cols), sig_val.select(cols)], how="vertical_relaxed")
        extra: dict[str, np.ndarray] = {}
        if kind != "unsupervised" and "background_model" in bench.extra:
            model = bench.extra["background_model"]
            extra["background_model"] = bench.features_of(model)
            extra["background_model_mjj"] = column_or_none(model, bench.resonant)
            extra["background_model_weight"] = weights_of(model)
        return TrainingData(
            features=list(bench.features), x=bench.features_of(train), weight=weights_of(train),
            x_val=bench.features_of(val), weight_val=weights_of(val), y=y, y_val=y_val,
            mjj=column_or_none(train, bench.resonant), mjj_val=column_or_none(val, bench.resonant),
            extra=extra, task=bench.task, signal=signal, meta=bench.meta,
        )

    def _score_table(self, bench: Benchmark, sample: str, table: pl.DataFrame, model: str, worker: Any) -> pl.DataFrame:
        mjj = column_or_none(table, bench.resonant)
        score = worker.score(bench.features_of(table), mjj)
        if score.shape[0] != table.height:
            raise RuntimeError(f"detector returned {score.shape[0]} scores for {table.height} events of {sample}")
        if not np.all(np.isfinite(score)):
            raise RuntimeError(f"detector returned {int((~np.isfinite(score)).sum())} non-finite scores on {sample}")
        label = table["label"].to_numpy() if "label" in table.columns else np.full(table.height, 1 if sample in bench.signals else 0)
        return pl.DataFrame({
            "sample": [sample] * table.height, "model": [model] * table.height,
            "event": np.arange(table.height, dtype=np.int64), "score": score, "weight": weights_of(table),
            "mjj": mjj if mjj is not None else np.full(table.height, None), "label": label.astype(np.int8),
        }, schema=SCORE_SCHEMA)

    def _worker(self, det_cls: type[Detector], config: Any, spec: RunSpec) -> Any:
        if self.timeout is None:
            return InProcessWorker(det_cls, config, spec.seed, spec.device, self.progress)
        return ChildWorker(det_cls, config, spec.seed, spec.device, self.timeout)

    def _training_table(self, oof: np.ndarray, bench: Benchmark, model: str) -> pl.DataFrame:
        """The detector's out-of-fold scores of train + validation, every row (NaN: a row the method did not use).

        Rows without a score are kept: a search's pre-cut sideband fit counts them.
        """
        pool = pl.concat([bench.train, bench.validation], how="vertical_relaxed")
        oof = np.asarray(oof, dtype=np.float64).reshape(-1)
        if oof.shape[0] != pool.height:
            raise RuntimeError(f"detector returned {oof.shape[0]} training scores for {pool.height} training events")
        if np.isinf(oof).any():
            raise RuntimeError("detector returned infinite out-of-fold training scores")
        rows = np.arange(pool.height)
        mjj = column_or_none(pool, bench.resonant)
        label = pool["label"].to_numpy() if "label" in pool.columns else np.zeros(pool.height)
        return pl.DataFrame({
            "sample": [TRAINING] * len(rows), "model": [model] * len(rows), "event": rows.astype(np.int64),
            "score": oof[rows], "weight": weights_of(pool)[rows],
            "mjj": mjj[rows] if mjj is not None else np.full(len(rows), None), "label": label[rows].astype(np.int8),
        }, schema=SCORE_SCHEMA)

    def _template_table(self, score: np.ndarray, mjj: np.ndarray | None, model: str) -> pl.DataFrame:
        """The detector's own SR background model, scored (finite scores only)."""
        score = np.asarray(score, dtype=np.float64).reshape(-1)
        if not np.all(np.isfinite(score)):
            raise RuntimeError(f"detector returned {int((~np.isfinite(score)).sum())} non-finite background-template scores")
        n = len(score)
        return pl.DataFrame({
            "sample": [TEMPLATE] * n, "model": [model] * n, "event": np.arange(n, dtype=np.int64), "score": score,
            "weight": np.ones(n), "mjj": np.asarray(mjj, dtype=np.float64) if mjj is not None else np.full(n, None),
            "label": np.zeros(n, dtype=np.int8),
        }, schema=SCORE_SCHEMA)

    def _fit_and_score(self, det_cls: type[Detector], config: Any, bench: Benchmark, spec: RunSpec) -> tuple[pl.DataFrame, dict]:
        per_signal = det_cls.kind == "supervised"
        if per_signal and not bench.signal_train:
            raise UserError(f"dataset {bench.dataset} has no labelled signal training split for {det_cls.name}")
        models = sorted(bench.signal_train) if per_signal else [None]
        parts, fit_s, score_s, extra = [], 0.0, 0.0, {}
        worker = self._worker(det_cls, config, spec)
        try:
            for signal in models:
                fit_s += worker.fit(self._training_data(bench, det_cls.kind, signal))
                bench.release("train", "validation")  # fitted: a cached benchmark reads test next, not on top of these
                t0 = time.perf_counter()
                model = signal or ""
                targets = [signal] if signal else sorted(bench.signals)
                with self.progress.task(f"scoring {det_cls.name}", total=len(targets) + 1) as advance:
                    parts.append(self._score_table(bench, "background", bench.test, model, worker))
                    background_s = time.perf_counter() - t0
                    advance(1)
                    for name in targets:
                        parts.append(self._score_table(bench, name, bench.signals[name], model, worker))
                        advance(1)
                    if "hunt" in bench.extra:
                        parts.append(self._score_table(bench, "hunt", bench.extra["hunt"], model, worker))
                oof = worker.training_scores()
                if oof is not None:
                    parts.append(self._training_table(oof, bench, model))
                template = worker.background_template()
                if template is not None:
                    parts.append(self._template_table(*template, model))
                score_s += time.perf_counter() - t0
                # model cost once (per-signal models share the architecture); a summary per fitted model
                if "cost" not in extra:
                    extra["cost"] = worker.cost(bench.features_of(bench.test),
                                                column_or_none(bench.test, bench.resonant), background_s)
                summary = worker.training_summary()
                if summary is not None:
                    extra.setdefault("training_summary", {})[model] = summary
        finally:
            worker.close()
            bench.release()  # a grid's next run reads its splits again, rather than every run holding them all
        return pl.concat(parts), {"fit_seconds": round(fit_s, 3), "score_seconds": round(score_s, 3)} | extra

    def _metric_versions(self, task: str) -> dict[str, str]:
        """{name: version} of the per-run metrics of ``task``: recorded in run.json, so stale metrics are redone."""
        return self.registry.run_metric_versions(task)

    def _metrics(self, scores: pl.DataFrame, run: dict[str, Any]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        metric_classes = [m for m in self.registry.run_metrics() if run["task"] in m.tasks]
        for signal in run["signals"]:
            scored: ScoredSignal = scored_signal(scores, signal, run)
            values: dict[str, Any] = {}
            for metric_cls in metric_classes:
                try:
                    result = dict(metric_cls().compute(scored))
                except Exception as exc:  # one broken metric must not lose the run's scores
                    result = {metric_cls.name: Unavailable(f"metric raised {type(exc).__name__}: {exc}")}
                values.update(result)
            out[signal] = values
        return out
