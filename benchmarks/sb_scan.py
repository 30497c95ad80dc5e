"""Performance against the injected signal fraction (S/B scan, as in CATHODE's figure 7).

For each injected signal amount (dataset option ``n_signal``, from 0 to the
dataset default) and seed, every detector runs on ``dijet-pythia`` through
the public Python API (``load_registry`` + ``Runner``, the code behind
``hepad-bench run``) into a results folder: complete runs are skipped, so an
interrupted scan resumes; ``--force`` redoes them. Then, per detector and
injection, the median and the 68 % band (16th-84th percentile) over seeds of

* the maximum significance improvement (metric key ``sic_max``), and
* the significance of the resonance (``SIGNIFICANCE_KEY``; a panel is left
  out when no run has it),

are drawn against the S/B actually injected into the signal region (read
from each run's ``dataset_meta``; the number of injected events where the
meta does not give it) and written as a figure and a CSV into
``<leaderboards>/<dataset>/`` (``sb_scan.png``, ``sb_scan.csv``).

Usage (from the repository root):

    make sb-scan                                      # the full scan: 5 injections x 5 seeds x 6 detectors
    python benchmarks/sb_scan.py --seed 1 --n-signal 0 --n-signal 550 -d cwola -d idealised   # a quick look
    python benchmarks/sb_scan.py --plot-only          # redraw from the stored runs

The full scan is 150 runs; CATHODE and LaCATHODE take about 1.5
CPU-minutes each on dijet-pythia (one torch thread), the others less: a few
hours in all (use ``--device cuda`` where there is a GPU).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from hepad_bench.errors import UserError
from hepad_bench.plugins import load_registry
from hepad_bench.runner import Runner, expand_grid, resolve_device
from hepad_bench.store import is_complete

DATASET = "dijet-pythia"
DETECTORS = ["cwola", "anode", "cathode", "lacathode", "idealised", "supervised-dnn"]
#: 0 to the dataset's default injection (n_signal 550 per full background sample on dijet-pythia), five points.
N_SIGNAL = [0, 138, 275, 412, 550]
SEEDS = [1, 2, 3, 4, 5]
SIC_KEY = "sic_max"
#: The significance drawn in the second panel: sideband_fit's SR excess over the dijet fit of the
#: selected sidebands, Sidak-corrected for its two cuts (docs/design.md, "Resonant searches").
SIGNIFICANCE_KEY = "sb_Z"
PANELS = {SIC_KEY: "max SIC  \u03b5$_S$ / \u221a\u03b5$_B$", SIGNIFICANCE_KEY: f"significance ({SIGNIFICANCE_KEY}, \u03c3)"}


def number(value: Any) -> float:
    """A stored metric value as a float (NaN for Unavailable and anything else that is not a number)."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan


def injected_s_over_b(run: dict[str, Any]) -> float:
    """S/B in the signal region of the fitted data, read defensively from the run's dataset meta."""
    facts = run.get("dataset_meta", {}).get("signal_region_data")
    if not isinstance(facts, dict):
        return math.nan
    value = number(facts.get("s_over_b"))
    if math.isnan(value):  # older or other loaders: counts only
        s, b = number(facts.get("signal")), number(facts.get("background"))
        value = s / b if b > 0 else math.nan
    return value


def collect(runner: Runner, specs: list, run: bool) -> list[dict[str, Any]]:
    """One row per complete, successful run of ``specs`` (running the missing ones when ``run``)."""
    rows = []
    for i, spec in enumerate(specs, 1):
        n_signal = int(dict(spec.dataset_options)["n_signal"])
        folder = runner.folder(spec)
        if run:
            print(f"[{i}/{len(specs)}] {spec.detector} n_signal {n_signal} seed {spec.seed} ...",
                  file=sys.stderr, flush=True)
            res = runner.run_one(spec)
            fit = res.run.get("fit_seconds")
            print(f"    {res.status}" + (f", fit {fit:.0f} s" if fit is not None else "")
                  + (f": {res.error}" if res.error else ""), file=sys.stderr, flush=True)
        if not is_complete(folder):
            continue
        info = json.loads((folder / "run.json").read_text())
        if info.get("status") != "ok":
            continue
        metrics = json.loads((folder / "metrics.json").read_text()) if (folder / "metrics.json").exists() else {}
        for signal, values in metrics.items():
            rows.append({"detector": spec.detector, "n_signal": n_signal, "seed": spec.seed, "signal": signal,
                         "s_over_b": injected_s_over_b(info),
                         **{key: number(values.get(key)) for key in PANELS}})
    return rows


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Median and 16/84 % quantiles over seeds per (detector, signal, n_signal)."""
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[(row["detector"], row["signal"], row["n_signal"])].append(row)
    out = []
    for (det, signal, n_signal), group in sorted(groups.items()):
        line: dict[str, Any] = {"detector": det, "signal": signal, "n_signal": n_signal, "seeds": len(group),
                                "s_over_b": float(np.nanmedian([r["s_over_b"] for r in group]))
                                if any(not math.isnan(r["s_over_b"]) for r in group) else math.nan}
        for key in PANELS:
            values = np.array([r[key] for r in group])
            values = values[~np.isnan(values)]
            q = np.quantile(values, [0.5, 0.16, 0.84]) if len(values) else [math.nan] * 3
            line |= {f"{key}_median": float(q[0]), f"{key}_q16": float(q[1]), f"{key}_q84": float(q[2])}
        out.append(line)
    return out


def write_csv(summary: list[dict[str, Any]], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(summary[0]), lineterminator="\n")
        writer.writeheader()
        for line in summary:
            writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in line.items()})


def plot(summary: list[dict[str, Any]], detectors: list[str], dataset: str, path: Path) -> Path | None:
    import matplotlib.pyplot as plt

    from hepad_bench.leaderboard.plots import STYLE, _save, _style  # Agg backend and the mplhep style

    panels = [key for key in PANELS if any(not math.isnan(s[f"{key}_median"]) for s in summary)]
    if not panels:
        return None
    by_sb = all(not math.isnan(s["s_over_b"]) for s in summary)
    signals = sorted({s["signal"] for s in summary})
    with plt.style.context(STYLE):
        fig, axes = plt.subplots(len(signals), len(panels), figsize=(7 * len(panels), 5.5 * len(signals)),
                                 squeeze=False)
        for r, signal in enumerate(signals):
            for c, key in enumerate(panels):
                ax = axes[r][c]
                for i, det in enumerate(detectors):
                    line = sorted((s for s in summary if s["detector"] == det and s["signal"] == signal),
                                  key=lambda s: s["n_signal"])
                    line = [s for s in line if not math.isnan(s[f"{key}_median"])]
                    if not line:
                        continue
                    x = np.array([s["s_over_b"] if by_sb else s["n_signal"] for s in line])
                    style = _style(i)
                    ax.plot(x, [s[f"{key}_median"] for s in line], marker="o", label=det, **style)
                    ax.fill_between(x, [s[f"{key}_q16"] for s in line], [s[f"{key}_q84"] for s in line],
                                    color=style["color"], alpha=0.2, linewidth=0)
                ax.set_xlabel("injected S/B in the signal region" if by_sb else "injected signal events")
                ax.set_ylabel(PANELS[key])
                if key == SIC_KEY:
                    ax.axhline(1.0, color="grey", linewidth=1, linestyle=":")
                ax.set_title(f"{dataset}, {signal}: median and 68 % over seeds", loc="left")
                ax.legend(loc="upper left")
        fig.tight_layout()
        return _save(fig, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-d", "--detector", action="append", help=f"detector (repeatable); default {' '.join(DETECTORS)}")
    parser.add_argument("--seed", action="append", type=int, help=f"seed (repeatable); default {SEEDS}")
    parser.add_argument("--n-signal", action="append", type=int, help=f"injected signal events (repeatable); default {N_SIGNAL}")
    parser.add_argument("--dataset", default=DATASET, help=f"a resonant dataset with an n_signal option (default {DATASET})")
    parser.add_argument("--output", type=Path, default=Path("results/sb-scan"), help="results folder")
    parser.add_argument("--leaderboards", type=Path, default=Path("leaderboards"), help="where the figure and CSV go")
    parser.add_argument("--data-dir", type=Path, default=None, help="folder with the dataset's files (public datasets)")
    parser.add_argument("--device", default="cpu", help="auto, cpu or cuda")
    parser.add_argument("--max-events", type=int, default=None, help="cap every split (quick look)")
    parser.add_argument("-p", "--param", action="append", default=[],
                        help="hyperparameter name=value, or detector.name=value for one detector")
    parser.add_argument("--force", action="store_true", help="rerun complete runs")
    parser.add_argument("--plot-only", action="store_true", help="run nothing; draw from the complete runs stored")
    args = parser.parse_args(argv)
    detectors = args.detector or DETECTORS
    injections = args.n_signal or N_SIGNAL
    if min(injections) < 0:
        parser.error("--n-signal must not be negative")
    try:
        registry = load_registry(warn=lambda msg: print(f"warning: {msg}", file=sys.stderr))
        device = resolve_device(args.device)
        params = tuple(tuple(p.split("=", 1)) for p in args.param)
        if any(len(p) != 2 for p in params):
            raise UserError("a -p value must be name=value or detector.name=value")
        specs = [spec for n in injections
                 for spec in expand_grid([args.dataset], detectors, args.seed or SEEDS, params=params,
                                         dataset_options=(("n_signal", str(n)),), device=device,
                                         max_events=args.max_events)]
        runner = Runner(registry, args.output, data_dir=args.data_dir, force=args.force)
        runner.validate(specs)  # unknown names and bad values stop here, before any training
        rows = collect(runner, specs, run=not args.plot_only)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not rows:
        print("error: no complete runs to draw; run the scan first (without --plot-only)", file=sys.stderr)
        return 1
    summary = summarise(rows)
    out = args.leaderboards / args.dataset
    write_csv(summary, out / "sb_scan.csv")
    figure = plot(summary, detectors, args.dataset, out / "sb_scan.png")
    missing = [k for k in PANELS if all(math.isnan(s[f"{k}_median"]) for s in summary)]
    for key in missing:
        print(f"note: no run has metric '{key}'; its panel is left out", file=sys.stderr)
    print(f"wrote {out / 'sb_scan.csv'}" + (f" and {figure}" if figure else ""))
    incomplete = sum(1 for s in specs if not is_complete(runner.folder(s)))
    if incomplete:
        print(f"note: {incomplete} of {len(specs)} runs are missing or failed", file=sys.stderr)
    return 1 if incomplete else 0


if __name__ == "__main__":
    sys.exit(main())
