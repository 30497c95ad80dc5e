"""The results store: one folder per run, written atomically.

``<root>/<dataset>/<detector>/<run-key>/`` holds ``run.json``,
``scores.parquet`` and ``metrics.json``. A run folder appears only complete:
everything is written into a hidden temporary folder that is renamed into
place, so a killed run leaves no half result and other runs' folders are
never touched.

Concurrent writers (two grids on one ``--output``, ``--jobs`` or Dask workers) are
serialised per run by a lock file ``<dataset>/<detector>/.<run-key>.lock``
(``filelock``): the runner holds it from "is this run done?" to the final
rename, so a run is computed once, and ``write_run`` takes it too, so two
writers never race on the rename.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from filelock import FileLock, Timeout

from hepad_bench.errors import UserError

from hepad_bench.data import ScoredSample, ScoredSignal, Unavailable

RUN_JSON, SCORES, METRICS = "run.json", "scores.parquet", "metrics.json"
#: The ``sample`` of out-of-fold training-pool scores in scores.parquet.
TRAINING = "training"
#: The ``sample`` of a detector's own SR background model (``Detector.background_template``).
TEMPLATE = "sr_template"
#: scores.parquet: sample is "background", a signal name, an extra split
#: ("hunt"), or "training" (a detector's out-of-fold scores of its own
#: training pool; event = row of train followed by validation); model is ""
#: for a detector fitted once, else the signal a per-signal (supervised)
#: model was trained for. "sr_template": the detector's own model of the SR
#: background (Detector.background_template; event = sample index).
SCORE_SCHEMA = {
    "sample": pl.String, "model": pl.String, "event": pl.Int64, "score": pl.Float64,
    "weight": pl.Float64, "mjj": pl.Float64, "label": pl.Int8,
}


def run_dir(root: Path, dataset: str, detector: str, key: str) -> Path:
    return Path(root) / dataset / detector / key


def run_lock(folder: Path) -> FileLock:
    """The lock of one run folder; re-entrant within a process (the runner holds it around write_run)."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(folder.with_name(f".{folder.name}.lock"), is_singleton=True)


def try_lock(lock: FileLock, wait: bool) -> bool:
    """Acquire ``lock``; with ``wait=False`` return False at once when another process holds it."""
    try:
        lock.acquire(timeout=-1 if wait else 0)
    except Timeout:
        return False
    return True


def check_writable(root: Path) -> None:
    """Fail before any training when the results folder cannot be created or written.

    Nothing is created here: a missing folder is checked through its nearest existing parent (the
    first run's lock creates it), so a grid refused later in its pre-flight leaves no empty folder.
    """
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise UserError(f"--output {root} exists and is not a folder")
    probe = root.absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise UserError(f"--output {root} cannot be created: {probe} is not a folder")
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as exc:
        raise UserError(f"--output {root} is not writable ({exc.strerror or exc})") from None


def is_complete(folder: Path) -> bool:
    """A run counts as done when it finished ok; failed runs are retried."""
    path = folder / RUN_JSON
    if not path.exists():
        return False
    try:
        return json.loads(path.read_text()).get("status") == "ok"
    except (OSError, json.JSONDecodeError):
        return False


def metric_to_json(value: Any) -> Any:
    if isinstance(value, Unavailable):
        return value.to_json()
    if isinstance(value, dict):
        return {k: metric_to_json(v) for k, v in value.items()}
    value = float(value)
    return value if math.isfinite(value) else {"unavailable": f"non-finite value {value}"}


def write_run(folder: Path, run: dict[str, Any], scores: pl.DataFrame | None, metrics: dict[str, Any] | None) -> Path:
    """Write a run's files into place atomically (replacing an older run of the same key), under the run's lock."""
    folder = Path(folder)
    with run_lock(folder):
        return _write_run_locked(folder, run, scores, metrics)


def _write_run_locked(folder: Path, run: dict[str, Any], scores: pl.DataFrame | None,
                      metrics: dict[str, Any] | None) -> Path:
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{folder.name}-", dir=folder.parent))
    try:
        if scores is not None:
            scores.write_parquet(tmp / SCORES, compression="zstd")
        if metrics is not None:
            (tmp / METRICS).write_text(json.dumps(metric_to_json(metrics), indent=1, sort_keys=True))
        (tmp / RUN_JSON).write_text(json.dumps(run, indent=1, sort_keys=True, default=str))
        if folder.exists():
            old = folder.with_name(f".old-{folder.name}")
            shutil.rmtree(old, ignore_errors=True)
            folder.rename(old)
            tmp.rename(folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


@dataclass
class StoredRun:
    folder: Path
    run: dict[str, Any]

    @property
    def ok(self) -> bool:
        return self.run.get("status") == "ok"

    def metrics(self) -> dict[str, Any]:
        path = self.folder / METRICS
        return json.loads(path.read_text()) if path.exists() else {}

    def scores(self) -> pl.DataFrame:
        return pl.read_parquet(self.folder / SCORES)

    def signals(self) -> list[str]:
        return list(self.run.get("signals", []))

    def scored(self, signal: str, scores: pl.DataFrame | None = None) -> ScoredSignal:
        """The stored scores of this run for one signal, as metrics see them."""
        return scored_signal(self.scores() if scores is None else scores, signal, self.run)


def _sample(df: pl.DataFrame) -> ScoredSample:
    def col(name: str) -> np.ndarray | None:
        values = df[name]
        return None if values.null_count() == values.len() else values.to_numpy()

    label = col("label")
    return ScoredSample(
        score=df["score"].to_numpy(), weight=df["weight"].to_numpy(), mjj=col("mjj"),
        label=None if label is None else label.astype(np.int8), event=df["event"].to_numpy(),
    )


def scored_signal(scores: pl.DataFrame, signal: str, run: dict[str, Any]) -> ScoredSignal:
    models = set(scores["model"].unique().to_list())
    model = signal if signal in models else ""
    mine = scores.filter(pl.col("model") == model)
    hunt = mine.filter(pl.col("sample") == "hunt")
    training = mine.filter(pl.col("sample") == TRAINING)
    template = mine.filter(pl.col("sample") == TEMPLATE)
    return ScoredSignal(
        signal=signal,
        background=_sample(mine.filter(pl.col("sample") == "background")),
        signal_sample=_sample(mine.filter(pl.col("sample") == signal)),
        task=run.get("task", "unsupervised"),
        hunt=_sample(hunt) if hunt.height else None,
        meta=run.get("dataset_meta", {}),
        training=_sample(training) if training.height else None,
        template=_sample(template) if template.height else None,
        score_region=run.get("detector", {}).get("score_region", "everywhere"),
    )


def iter_runs(root: Path, warn: Callable[[str], None] | None = None) -> list[StoredRun]:
    """Every run folder under ``root`` (hidden temporary folders excluded).

    A run.json that cannot be read is skipped and, given ``warn``, named.
    """
    out = []
    for path in sorted(Path(root).glob(f"*/*/*/{RUN_JSON}")):
        if any(part.startswith(".") for part in path.relative_to(root).parts):
            continue
        try:
            run = json.loads(path.read_text())
            if not isinstance(run, dict):
                raise ValueError("not a JSON object")
        except (OSError, UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError is a ValueError
            if warn is not None:
                warn(f"skipped unreadable run {path.parent}: {RUN_JSON} {type(exc).__name__}: {' '.join(str(exc).split())}")
            continue
        out.append(StoredRun(path.parent, run))
    return out
