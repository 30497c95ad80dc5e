"""Does the resonant workflow find an injected resonance, and only then?

The check the issue asks for, on the shipped generated dijet sample
(``dijet-pythia``, a W'(3.5 TeV) -> X Y -> 4q signal in QCD dijets):

* with injected signal (the dataset's default ``n_signal``), CWoLa, ANODE and
  GAN-AE find it: maximum SIC clearly above 1 and the bump hunt after the
  score cut locates the resonance (a window around 3.5 TeV); the idealised
  classifier should do at least as well as CWoLa and the supervised DNN
  (the reference) best;
* with no injected signal (``-o n_signal=0``) the weakly supervised and
  unsupervised detectors' SIC is compatible with 1 and the bump hunt finds
  nothing significant.

It runs every (detector, signal on/off, seed) through the public Python API
(``load_registry`` + ``Runner``/``expand_grid``, the code behind
``hepad-bench run``) into a results folder (complete runs are reused; use
``--force`` to redo them) and prints, per detector and setting, the mean over
seeds of AUC, max SIC and the bump hunt's local/global significance and
window at the 10 % and 1 % score cuts, then a verdict per expectation.

Verdict thresholds (rough, stated here so that nobody mistakes them for a
statistical test): "finds it" = max SIC > 1.5 and the 10 % or 1 % bump window
contains 3.5 TeV with a local significance above 3 sigma; "nothing" = max SIC
< 1.5 and no bump above 3 sigma global significance (3.1 is the most 1000
pseudo-experiments can show).

Reading the no-signal rows: the bump hunt is the decisive check. AUC and max
SIC only rank events, so a weak classifier that learnt nothing (a nearly
constant logit) still ranks the signal sample by its tiny random slopes;
where the signal sits in a corner the background never reaches, that
ranking can put it on top by luck (max SIC far above 1 from a flat
classifier). Judge them by their spread over seeds (``--seed`` repeated).

Usage (from the repository root; minutes on 2 CPU cores per detector and seed):

    python benchmarks/resonant_checks.py --seed 1 --seed 2 --seed 3
    python benchmarks/resonant_checks.py --detector cwola --detector anode --max-events 20000
"""

from __future__ import annotations

import argparse
import math
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch

from hepad_bench.errors import UserError
from hepad_bench.plugins import load_registry
from hepad_bench.runner import Runner, expand_grid, resolve_device

DATASET = "dijet-pythia"
DETECTORS = ["supervised-dnn", "idealised", "cwola", "anode", "gan-ae"]
RESONANCE_TEV = 3.5
CUTS = ("10%", "1%")


def number(value: Any) -> float:
    """A metric value as a float (NaN for Unavailable, in memory or as stored JSON)."""
    if isinstance(value, (int, float)):
        return float(value)
    return math.nan


def mean(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return sum(finite) / len(finite) if finite else math.nan


def fmt(value: float, digits: int = 2) -> str:
    return "n/a" if math.isnan(value) else f"{value:.{digits}f}"


def summarise(results: list, settings: dict[str, tuple[tuple[str, str], ...]]) -> dict[tuple[str, str], dict[str, Any]]:
    """(detector, setting) -> mean metrics over seeds and signals, plus the bump windows seen."""
    by_options = {opts: name for name, opts in settings.items()}
    rows: dict[tuple[str, str], dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for res in results:
        key = (res.spec.detector, by_options[res.spec.dataset_options])
        row = rows[key]
        row["status"].append(res.status if res.status != "skipped" else "ok (reused)")
        if res.error:
            row["errors"].append(res.error)
        for values in res.metrics.values():  # one entry per signal (one W' signal here)
            row["auc"].append(number(values.get("auc")))
            row["sic_max"].append(number(values.get("sic_max")))
            for cut in CUTS:
                for part in ("local_sig", "global_sig", "low", "high"):
                    row[f"{part}@{cut}"].append(number(values.get(f"bump_{part}@{cut}")))
    out = {}
    for key, row in rows.items():
        summary: dict[str, Any] = {k: mean(v) for k, v in row.items() if k not in ("status", "errors")}
        summary["status"] = ", ".join(sorted(set(row["status"])))
        summary["errors"] = row.get("errors", [])
        summary["n"] = len(row["status"])
        windows = []
        for cut in CUTS:
            edges = zip(row[f"low@{cut}"], row[f"high@{cut}"], row[f"local_sig@{cut}"])
            windows += [(lo, hi, loc, cut) for lo, hi, loc in edges]
        summary["windows"] = windows
        out[key] = summary
    return out


def located(summary: dict[str, Any]) -> bool:
    """Some seed's bump window (either cut) holds the resonance at > 3 sigma local significance."""
    return any(lo <= RESONANCE_TEV <= hi and loc > 3 for lo, hi, loc, _ in summary["windows"]
               if not (math.isnan(lo) or math.isnan(hi) or math.isnan(loc)))


def print_table(summary: dict[tuple[str, str], dict[str, Any]], detectors: list[str], settings: list[str]) -> None:
    head = ["detector", "signal", "runs", "AUC", "max SIC"]
    for cut in CUTS:
        head += [f"local Z@{cut}", f"global Z@{cut}", f"window@{cut} (TeV)"]
    lines = [head]
    for det in detectors:
        for setting in settings:
            s = summary.get((det, setting))
            if s is None:
                continue
            get = lambda key: s.get(key, math.nan)  # noqa: E731
            line = [det, setting, f"{s['n']} {s['status']}", fmt(get("auc"), 3), fmt(get("sic_max"))]
            for cut in CUTS:
                window = f"{fmt(get(f'low@{cut}'))}-{fmt(get(f'high@{cut}'))}"
                line += [fmt(get(f"local_sig@{cut}"), 1), fmt(get(f"global_sig@{cut}"), 1), window]
            lines.append(line)
    widths = [max(len(str(r[i])) for r in lines) for i in range(len(head))]
    for i, row in enumerate(lines):
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)))
        if i == 0:
            print("  ".join("-" * w for w in widths))
    for (det, setting), s in sorted(summary.items()):
        for err in s["errors"][:1]:
            print(f"! {det} ({setting}) failed: {err}")


def print_verdicts(summary: dict[tuple[str, str], dict[str, Any]], detectors: list[str]) -> None:
    print("\nExpectations (thresholds in the module docstring):")
    for det in detectors:
        on, off = summary.get((det, "injected")), summary.get((det, "none"))
        if det != "supervised-dnn" and on is not None:
            found = on.get("sic_max", 0) > 1.5 and located(on)
            print(f"  {det:15s} injected: max SIC {fmt(on.get('sic_max', math.nan))}, bump at {RESONANCE_TEV} TeV "
                  f"{'located' if located(on) else 'not located'} -> {'FINDS IT' if found else 'does not find it'}")
        # The supervised reference learns from labelled signal, not from the data: its SIC does not depend on
        # the injection, so only its bump hunt (on the data) is a no-signal check.
        if off is not None and det == "supervised-dnn":
            quiet = not any(off.get(f"global_sig@{cut}", 0) > 3 for cut in CUTS)
            print(f"  {det:15s} no signal: max global Z {fmt(max(off.get(f'global_sig@{cut}', math.nan) for cut in CUTS), 1)}"
                  f" (its SIC needs no injected signal) -> {'no bump (as expected)' if quiet else 'LOOK: bump without signal'}")
        elif off is not None:
            quiet = off.get("sic_max", math.inf) < 1.5 and not any(
                off.get(f"global_sig@{cut}", 0) > 3 for cut in CUTS)
            print(f"  {det:15s} no signal: max SIC {fmt(off.get('sic_max', math.nan))}, max global Z "
                  f"{fmt(max(off.get(f'global_sig@{cut}', math.nan) for cut in CUTS), 1)} "
                  f"-> {'nothing found (as expected)' if quiet else 'LOOK: something found without signal'}")
    sics = {det: s.get("sic_max", math.nan) for (det, setting), s in summary.items() if setting == "injected"}
    finite = {d: v for d, v in sics.items() if not math.isnan(v)}
    if finite:
        best = max(finite, key=finite.get)
        print(f"  highest max SIC with signal: {best} ({fmt(finite[best])})"
              f"{' -- the supervised reference, as expected' if best == 'supervised-dnn' else ''}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detector", action="append", help=f"detector (repeatable); default: {' '.join(DETECTORS)}")
    parser.add_argument("--seed", action="append", type=int, help="run seed (repeatable); default: 42")
    parser.add_argument("--dataset", default=DATASET, help=f"a resonant dataset (default {DATASET})")
    parser.add_argument("--output", type=Path, default=Path("results/resonant-checks"), help="results folder")
    parser.add_argument("--data-dir", type=Path, default=None, help="folder with the dataset's files (public datasets)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--max-events", type=int, default=None, help="cap every split (quick look)")
    parser.add_argument("--option", "-o", action="append", default=[],
                        help="extra dataset option name=value for both settings (n_signal is set here)")
    parser.add_argument("--param", "-p", action="append", default=[],
                        help="detector=name=value hyperparameter override, e.g. cwola=epochs=20")
    parser.add_argument("--force", action="store_true", help="rerun complete runs")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    detectors = args.detector or DETECTORS
    seeds = args.seed or [42]
    common = tuple(tuple(o.split("=", 1)) for o in args.option)
    if any(k == "n_signal" for k, _ in common):
        parser.error("n_signal is what this script varies; leave it out of --option")
    settings = {"injected": common, "none": (*common, ("n_signal", "0"))}
    params: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for item in args.param:
        det, _, pair = item.partition("=")
        name, _, value = pair.partition("=")
        if not name or not value:
            parser.error(f"bad --param '{item}': expected detector=name=value")
        params[det].append((name, value))

    try:
        return run_checks(args, detectors, seeds, settings, params)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def run_checks(args: argparse.Namespace, detectors: list[str], seeds: list[int],
               settings: dict[str, tuple[tuple[str, str], ...]], params: dict[str, list[tuple[str, str]]]) -> int:
    registry = load_registry(warn=lambda msg: print(f"warning: {msg}", file=sys.stderr))
    device = resolve_device(args.device)
    specs = []
    for options in settings.values():
        for spec in expand_grid([args.dataset], detectors, seeds, dataset_options=options, device=device,
                                max_events=args.max_events):
            specs.append(type(spec)(**{**spec.__dict__, "params": tuple(params.get(spec.detector, ()))}))
    runner = Runner(registry, args.output, data_dir=args.data_dir, force=args.force)
    runner.validate(specs)
    results = []
    for i, spec in enumerate(specs, 1):
        setting = "injected" if ("n_signal", "0") not in spec.dataset_options else "none"
        print(f"[{i}/{len(specs)}] {spec.detector} seed {spec.seed} signal {setting} ...", file=sys.stderr, flush=True)
        res = runner.run_one(spec)
        timing = res.run.get("fit_seconds")
        print(f"    {res.status}" + (f", fit {timing:.0f} s" if timing is not None else "")
              + (f": {res.error}" if res.error else ""), file=sys.stderr, flush=True)
        results.append(res)

    summary = summarise(results, settings)
    print(f"\n{args.dataset}: mean over seeds {seeds} (device {device}, max_events {args.max_events})\n")
    print_table(summary, detectors, list(settings))
    print_verdicts(summary, detectors)
    return 1 if any(r.status == "failed" for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
