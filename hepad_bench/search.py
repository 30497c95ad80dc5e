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

Template calibration from the other windows: a window whose readout takes
its SR background from the detector's own template (``sb_template`` = 1:
ANODE, CATHODE, the idealised classifier) inherits every bias of that
template in the SR, where no density was fitted (ANODE's p_BG samples pass
its 10 % cut ~30 % less often than the data on background-only runs). Each
other window of the scan is that same procedure retrained with the SR
placed elsewhere, a pseudo-signal-region: for window w and cut c the
background is scaled by R = sum N_j / sum B_j over the windows j that do
not overlap w (their observed over predicted counts, ``sb_N@c`` /
``sb_B@c``), with (sigma_R / R)^2 = 1 / sum N_j + sum dB_j^2 / (sum B_j)^2
added to its uncertainty, and the local p-value is Z_Bi's again. A signal
in the other windows raises R: conservative. A window no other window
leaves room for gets no p-value.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from scipy.stats import norm

from hepad_bench.params import stable_hash
from hepad_bench.significance import z_bi

P_MIN, TRIALS = "sb_p_min", "sb_trials"
#: Per cut c (the ``@c`` suffix): selected SR events, predicted background and its error; per run: template or not.
N_AT, B_AT, DB_AT, TEMPLATE = "sb_N@", "sb_B@", "sb_dB@", "sb_template"
#: Options that differ between the windows of one scan.
WINDOW_OPTIONS = ("sr_low", "sr_high")


@dataclass
class Window:
    signal_region: tuple[float, float]
    p_local: float | None
    z_local: float | None
    status: str
    calibration: float | None = None  # R of the best cut (template readouts calibrated by the other windows)


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


def _counts(values: dict[str, Any]) -> dict[str, tuple[float, float, float]]:
    """{cut: (N, B, dB)} of the cuts a window read out."""
    out = {}
    for key in values:
        if key.startswith(N_AT):
            cut = key[len(N_AT):]
            n, b, db = (_number(values.get(k + cut)) for k in (N_AT, B_AT, DB_AT))
            if n is not None and b is not None and db is not None and b > 0:
                out[cut] = (n, b, db)
    return out


def calibrated_p(sr: tuple[float, float], counts: dict[str, tuple[float, float, float]],
                 others: list[tuple[tuple[float, float], dict[str, tuple[float, float, float]]]]) -> tuple[float, float] | None:
    """(smallest calibrated local p over the cuts, its R), or None when no other window leaves room for ``sr``."""
    best = None
    for cut, (n, b, db) in counts.items():
        apart = [c[cut] for o_sr, c in others if cut in c and (o_sr[1] <= sr[0] + 1e-9 or o_sr[0] >= sr[1] - 1e-9)]
        sum_n, sum_b = sum(a[0] for a in apart), sum(a[1] for a in apart)
        if not apart or sum_n <= 0:
            continue
        r = sum_n / sum_b
        rel_var = 1.0 / sum_n + sum(a[2] ** 2 for a in apart) / sum_b**2
        background = b * r
        p, _ = z_bi(n, background, math.sqrt((db * r) ** 2 + background**2 * rel_var))
        if best is None or p < best[0]:
            best = (p, r)
    return best


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
            ordered = sorted(members, key=lambda r: r.run["dataset_meta"]["signal_region"][0])
            values_of = [(tuple(r.run["dataset_meta"]["signal_region"]), (r.metrics or {}).get(signal, {})) for r in ordered]
            counts_of = [(sr, _counts(v)) for sr, v in values_of]
            for i, (res, (sr, values)) in enumerate(zip(ordered, values_of)):
                p, n_cuts = _number(values.get(P_MIN)), _number(values.get(TRIALS))
                status = "ok" if p is not None else (res.status if res.status == "failed" else "no readout")
                calibration = None
                if p is not None and _number(values.get(TEMPLATE)) == 1.0:  # the template: calibrate it
                    found = calibrated_p(sr, counts_of[i][1], counts_of[:i] + counts_of[i + 1:])
                    p, calibration = (None, None) if found is None else found
                    status = status if found is not None else "no other window to calibrate the template"
                windows.append(Window(sr, p, None if p is None else max(0.0, float(norm.isf(p))), status, calibration))
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
