"""Can the resonant search fake a discovery? The sliding-window search with and without signal.

The check issue 8 asks for, on the shipped generated dijet sample
(``dijet-pythia``: a W'(3.5 TeV) -> X Y -> 4q signal in QCD dijets), with the
protocol of ``docs/design.md`` ("Resonant searches"):

* each weakly supervised detector runs a sliding-window search
  (``-o sr_scan=LOW:HIGH:STEP``, one training per signal-region window);
  each window is read out by ``sideband_fit`` (SR excess over a dijet fit of
  the selected sidebands) and the search reports its best window with a
  global significance (Sidak over windows x cuts, ``hepad_bench.search``);
* every window also runs on its background-only twin (the null control:
  same splits, no injected signal), searched the same way.

Expectations (the issue's acceptance): with no signal, no method exceeds
2 sigma global in more than 1 seed of 10; with the default injection, every
weakly supervised method's best window contains 3.5 TeV. Also printed: the
distance correlation of the score with mjj on the null controls' background,
in the SR and in the sidebands, for the window centred nearest 3.5 TeV.

Everything goes through the public Python API (``Runner.expand`` +
``run_one``, the code behind ``hepad-bench run``) into a results folder;
complete runs are reused (``--force`` redoes them).

Usage (from the repository root; one training per window, detector, seed
and setting: about 2 x 5 x seeds trainings per detector):

    python benchmarks/resonant_checks.py --seed 1 --seed 2 ... --seed 10
    python benchmarks/resonant_checks.py --detector cwola --seed 1 --scan 3.1:3.9:0.4 -p cwola=epochs=10
    python benchmarks/resonant_checks.py --report-only --detector anode --detector-version anode=2

``--report-only`` trains nothing: it reports the complete scan runs stored
under ``--output`` (of the installed detector versions unless told), so a
change to the search (``hepad_bench.search``: the template calibration by
the other windows) can be read off stored runs.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch

from hepad_bench import search
from hepad_bench.errors import UserError
from hepad_bench.plugins import load_registry
from hepad_bench.runner import Runner, RunSpec, resolve_device

DATASET = "dijet-pythia"
DETECTORS = ["cwola", "idealised", "anode", "cathode", "lacathode"]  # the last two where installed
RESONANCE_TEV = 3.5
SCAN = "3.1:3.9:0.2"
NULL_THRESHOLD = 2.0


def number(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) else math.nan


def fmt(value: float, digits: int = 2) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def mean(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return sum(finite) / len(finite) if finite else math.nan


def contains(window: tuple[float, float] | None, mass: float = RESONANCE_TEV) -> bool:
    return window is not None and window[0] <= mass < window[1]


def dcorr_near_resonance(results: list, detector: str) -> dict[str, list[float]]:
    """mass_dcorr_sr / _sb of the null runs of the window whose centre is nearest 3.5 TeV (per seed)."""
    best: dict[int, tuple[float, Any]] = {}
    for res in results:
        run = res.run or {}
        if res.spec.detector != detector or not run.get("null_control") or res.status == "failed":
            continue
        low, high = run["dataset_meta"]["signal_region"]
        distance = abs((low + high) / 2 - RESONANCE_TEV)
        if res.spec.seed not in best or distance < best[res.spec.seed][0]:
            best[res.spec.seed] = (distance, res)
    out: dict[str, list[float]] = defaultdict(list)
    for _, res in best.values():
        for values in res.metrics.values():
            out["sr"].append(number(values.get("mass_dcorr_sr")))
            out["sb"].append(number(values.get("mass_dcorr_sb")))
    return out


def closure_on_nulls(results: list, detector: str) -> list[float]:
    """sb_closure@10% (the template's sideband check: data / template efficiency) of every null run."""
    out = []
    for res in results:
        if res.spec.detector == detector and (res.run or {}).get("null_control") and res.status != "failed":
            out += [number(values.get("sb_closure@10%")) for values in res.metrics.values()]
    return out


def mark_null_controls(results: list) -> None:
    """Flag every background-only run as a null control, also one stored earlier as a primary
    ``-o n_signal=0`` run (same run key as the twin, so the runner skips it with its old run.json)."""
    for res in results:
        run = res.run or {}
        if getattr(res.spec, "null_of", None) is not None or run.get("dataset", {}).get("options", {}).get("n_signal") == 0:
            run["null_control"] = True


def report(results: list, detectors: list[str], seeds: list[int]) -> int:
    mark_null_controls(results)
    searches = search.summarise(results)
    print(f"\n{DATASET}: sliding-window search, seeds {seeds}\n")
    head = ["detector", "setting", "seed", "best SR (TeV)", "local Z", "global Z", "windows read"]
    rows = [head]
    verdicts = []
    for det in detectors:
        mine = sorted((s for s in searches if s.detector == det), key=lambda s: (s.null_control, s.seed))
        if not mine:
            continue
        for s in mine:
            best = s.best
            read = sum(w.p_local is not None for w in s.windows)
            rows.append([det, "null" if s.null_control else "signal", str(s.seed),
                         "-" if best is None else f"{best.signal_region[0]:g}-{best.signal_region[1]:g}",
                         fmt(math.nan if best is None else best.z_local), fmt(math.nan if s.z_global is None else s.z_global),
                         f"{read}/{len(s.windows)}"])
        signal = [s for s in mine if not s.null_control]
        null = [s for s in mine if s.null_control]
        fakes = sum((s.z_global or 0.0) > NULL_THRESHOLD for s in null)
        located = sum(contains(None if s.best is None else s.best.signal_region) for s in signal)
        dc = dcorr_near_resonance(results, det)
        verdicts.append(
            f"  {det:10s} null: {fakes}/{len(null)} seeds above {NULL_THRESHOLD:g} sigma global "
            f"({'PASS' if fakes <= max(1, len(null) // 10) else 'FAIL'}: at most 1 in 10); "
            f"signal: best window contains {RESONANCE_TEV} TeV in {located}/{len(signal)} seeds "
            f"({'PASS' if signal and located == len(signal) else 'FAIL'}), mean global Z "
            f"{fmt(mean([s.z_global if s.z_global is not None else math.nan for s in signal]))}; "
            f"dcorr(score, mjj) on background, window nearest {RESONANCE_TEV} TeV: SR {fmt(mean(dc['sr']), 3)}, "
            f"sidebands {fmt(mean(dc['sb']), 3)}; template closure on the nulls (10 % cut, data / template "
            f"efficiency in the sidebands): {fmt(mean(closure_on_nulls(results, det)))}")
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    for i, row in enumerate(rows):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)))
        if i == 0:
            print("  ".join("-" * w for w in widths))
    print("\nAcceptance:")
    print("\n".join(verdicts))
    failed = [r for r in results if r.status == "failed"]
    for res in failed[:5]:
        print(f"! {res.spec.detector} seed {res.spec.seed} failed: {res.error}")
    return 1 if failed else 0


def report_stored(args: argparse.Namespace) -> int:
    """The report of the scan runs stored under --output (any seeds), without training or touching them."""
    import json

    from hepad_bench.runner import RunResult
    from hepad_bench.store import is_complete

    registry = load_registry(warn=lambda msg: print(f"warning: {msg}", file=sys.stderr))
    detectors = args.detector or [d for d in DETECTORS if d in registry.detectors]
    wanted = {d: registry.detectors[d].cls.version if d in registry.detectors else None for d in detectors}
    wanted |= dict(item.split("=", 1) for item in args.detector_version)
    seeds = set(args.seed or [])
    results = []
    for det in detectors:
        for folder in sorted((args.output / args.dataset / det).glob("*/")):
            if not is_complete(folder):
                continue
            run = json.loads((folder / "run.json").read_text())
            metrics = json.loads((folder / "metrics.json").read_text()) if (folder / "metrics.json").exists() else {}
            if str(run["detector"]["version"]) != str(wanted[det]) or not run["dataset_meta"].get("scan"):
                continue
            if seeds and run["seed"] not in seeds:
                continue
            spec = RunSpec(args.dataset, det, seed=int(run["seed"]))
            results.append(RunResult(spec, folder, "skipped", metrics=metrics, run=run))
    return report(results, detectors, sorted({r.spec.seed for r in results}))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detector", action="append", help=f"detector (repeatable); default: {' '.join(DETECTORS)}")
    parser.add_argument("--seed", action="append", type=int, help="run seed (repeatable); default: 1")
    parser.add_argument("--scan", default=SCAN, help=f"sr_scan LOW:HIGH:STEP of SR centres in TeV (default {SCAN})")
    parser.add_argument("--dataset", default=DATASET, help=f"a resonant dataset (default {DATASET})")
    parser.add_argument("--output", type=Path, default=Path("results/resonant-checks"), help="results folder")
    parser.add_argument("--data-dir", type=Path, default=None, help="folder with the dataset's files (public datasets)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--option", "-o", action="append", default=[], help="extra dataset option name=value")
    parser.add_argument("--param", "-p", action="append", default=[],
                        help="detector=name=value hyperparameter override, e.g. cwola=epochs=20")
    parser.add_argument("--force", action="store_true", help="rerun complete runs")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--report-only", action="store_true",
                        help="train nothing: report the complete scan runs already in --output (stored metrics as they are)")
    parser.add_argument("--detector-version", action="append", default=[],
                        help="with --report-only: detector=version to report (default: the installed versions)")
    args = parser.parse_args(argv)
    if args.report_only:
        return report_stored(args)
    torch.set_num_threads(args.threads)
    params: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for item in args.param:
        det, _, pair = item.partition("=")
        name, _, value = pair.partition("=")
        if not name or not value:
            parser.error(f"bad --param '{item}': expected detector=name=value")
        params[det].append((name, value))
    options = tuple(tuple(o.split("=", 1)) for o in args.option) + (("sr_scan", args.scan),)
    try:
        registry = load_registry(warn=lambda msg: print(f"warning: {msg}", file=sys.stderr))
        detectors = args.detector or [d for d in DETECTORS if d in registry.detectors]
        seeds = args.seed or [1]
        device = resolve_device(args.device)
        runner = Runner(registry, args.output, data_dir=args.data_dir, force=args.force)
        specs = runner.expand([RunSpec(args.dataset, det, seed=seed, dataset_options=options,
                                       params=tuple(params.get(det, ())), device=device)
                               for seed in seeds for det in detectors])  # seed-major: LaCATHODE reuses CATHODE's flow
        runner.validate(specs)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    results = []
    for i, spec in enumerate(specs, 1):
        sr = dict(spec.dataset_options)
        what = "null" if spec.null_of is not None else "signal"
        print(f"[{i}/{len(specs)}] {spec.detector} seed {spec.seed} SR {sr['sr_low']}-{sr['sr_high']} {what} ...",
              file=sys.stderr, flush=True)
        res = runner.run_one(spec)
        print(f"    {res.status}" + (f": {res.error}" if res.error else ""), file=sys.stderr, flush=True)
        results.append(res)
    return report(results, detectors, seeds)


if __name__ == "__main__":
    sys.exit(main())
