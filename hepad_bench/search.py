"""Sliding-window searches: the best window of a scan and its global significance.

A scan (``-o sr_scan=LOW:HIGH:STEP`` on a resonant dataset) runs one
training per signal-region window (``Runner.expand``). This module gathers
the window runs of one (dataset options, detector, configuration, seed,
null control or not) and reports the window with the smallest local
p-value and a global significance corrected for every window and cut tried.

It reads the per-run convention the resonant readout metric publishes:
``sb_p_min`` (the smallest local p-value over its cuts) and ``sb_trials``
(the number of cuts). Look-elsewhere: Sidak over all windows x cuts,
p_global = 1 - (1 - p_min)^(windows x cuts). Neighbouring windows overlap
and the cuts are nested, so the trials are positively correlated and the
correction is conservative (it overstates p_global); pseudo-experiments
would need one training per window per pseudo-experiment.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from scipy.stats import norm

from hepad_bench.params import stable_hash

P_MIN, TRIALS = "sb_p_min", "sb_trials"
#: Options that differ between the windows of one scan.
WINDOW_OPTIONS = ("sr_low", "sr_high")


@dataclass
class Window:
    signal_region: tuple[float, float]
    p_local: float | None
    z_local: float | None
    status: str


@dataclass
class Search:
    dataset: str
    options: dict[str, Any]  # the scan's options, window edges left out
    detector: str
    config: dict[str, Any]
    seed: int
    signal: str
    null_control: bool
    windows: list[Window]
    best: Window | None
    trials: int
    p_global: float | None
    z_global: float | None
    data_seed: int | None = None  # --data-seed of the runs (None: the dataset's fixed split)

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        if self.data_seed is None:  # files of runs without a data seed read as before
            del out["data_seed"]
        return out


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def summarise(results: list[Any]) -> list[Search]:
    """One :class:`Search` per scan group and signal among ``results`` (RunResult-like: .run, .metrics, .status)."""
    groups: dict[str, list[Any]] = {}
    for res in results:
        run = res.run or {}
        scan = (run.get("dataset_meta") or {}).get("scan")
        if not scan:
            continue
        options = {k: v for k, v in run["dataset"]["options"].items() if k not in WINDOW_OPTIONS}
        ident = {"dataset": run["dataset"]["name"], "options": options, "detector": run["detector"]["name"],
                 "config": run["detector"].get("config", {}), "seed": run["seed"]}
        if run.get("data_seed") is not None:  # each data seed's windows are a search of their own
            ident["data_seed"] = run["data_seed"]
        groups.setdefault(stable_hash(ident), []).append(res)
    out = []
    for members in groups.values():
        first = members[0].run
        signals = sorted({s for m in members for s in (m.run.get("signals") or [])})
        for signal in signals:
            windows, trials = [], 0
            for res in sorted(members, key=lambda r: r.run["dataset_meta"]["signal_region"][0]):
                values = (res.metrics or {}).get(signal, {})
                p, n_cuts = _number(values.get(P_MIN)), _number(values.get(TRIALS))
                sr = tuple(res.run["dataset_meta"]["signal_region"])
                status = "ok" if p is not None else (res.status if res.status == "failed" else "no readout")
                windows.append(Window(sr, p, None if p is None else max(0.0, float(norm.isf(p))), status))
                trials += int(n_cuts) if n_cuts else 0
            read = [w for w in windows if w.p_local is not None]
            best = min(read, key=lambda w: w.p_local) if read else None
            p_global = None if best is None else 1.0 - (1.0 - best.p_local) ** max(trials, 1)
            out.append(Search(
                dataset=first["dataset"]["name"],
                options={k: v for k, v in first["dataset"]["options"].items() if k not in WINDOW_OPTIONS},
                detector=first["detector"]["name"], config=first["detector"].get("config", {}),
                seed=int(first["seed"]), signal=signal, null_control=bool(first.get("null_control")),
                windows=windows, best=best, trials=trials, p_global=p_global,
                z_global=None if p_global is None else max(0.0, float(norm.isf(p_global))),
                data_seed=first.get("data_seed"),
            ))
    return out


def write(search: Search, root: Path) -> Path:
    """``<root>/<dataset>/<detector>/searches/<hash>.json`` (atomic: written aside, then renamed)."""
    ident = {"options": search.options, "config": search.config, "seed": search.seed, "signal": search.signal}
    if search.data_seed is not None:
        ident["data_seed"] = search.data_seed
    key = stable_hash(ident)
    folder = Path(root) / search.dataset / search.detector / "searches"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{key}.json"
    tmp = folder / f".tmp-{key}.json"
    tmp.write_text(json.dumps(search.as_json(), indent=1, sort_keys=True))
    tmp.replace(path)
    return path
