"""What a pTHat bias buys the l1 version-3 QCD: trigger passes per tried event, weight spread, CPU per event.

    python benchmarks/l1_qcd_bias.py [--tries 1500] [--pow 0 2 4] [--seed 11]

For each bias power it generates ``--tries`` heavy-flavour QCD events
(version 3: underlying event, pile-up, the pre-trigger, the loose HLT
isolation) in one pilot chunk on one core, with Pythia's
``PhaseSpace:bias2Selection`` (pTHat^pow, reference 20 GeV; pow 0 = unbiased)
and its compensating event weights, and prints side by side:

* the trigger pass rate per tried event (what the bias raises),
* the weighted filter efficiency sum(w passed) / sum(w tried) and sigma x eff
  (what must not change: it is the physical cross section),
* the weight spread of the passing events: Kish's effective number
  (sum w)^2 / sum w^2 over the number passing,
* CPU seconds per passing event and per EFFECTIVE passing event, and the
  gain against unbiased generation: a biased run's weighted efficiency is the
  unbiased pass probability, and pow 0 measures the CPU per tried event.

pow 0's own pass count is small (1.5e-3 per try): its 68 % Poisson range is printed.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np
from scipy import stats

from hepad_plugins.generators import l1


def poisson_68(n: int) -> tuple[float, float]:
    """Central 68 % Poisson interval of a count (Garwood)."""
    lo = stats.chi2.ppf(0.16, 2 * n) / 2 if n > 0 else 0.0
    return lo, stats.chi2.ppf(0.84, 2 * n + 2) / 2


def measure(tries: int, power: float, seed: int) -> dict:
    config = replace(l1.V3, qcd_bias_pow=power)
    start = time.process_time()
    chunk = l1.pilot_chunk("QCD", tries, seed, config=config)
    cpu = time.process_time() - start
    passed = chunk["passed"]
    w = chunk.get("EventWeight", np.ones(len(passed)))
    wp = w[passed]
    n_pass = int(passed.sum())
    n_eff = float(wp.sum() ** 2 / (wp**2).sum()) if n_pass else 0.0
    sigma_pb, eff = l1.filtered_sigma_pb(chunk)
    pthat = chunk.get("EventPtHat", np.full(len(passed), np.nan))[passed]
    return {"pthat_passed": pthat, "w_passed": wp, "pow": power, "cpu": cpu, "tried_per_s": tries / cpu, "n_pass": n_pass, "pass_rate": n_pass / tries,
            "eff": eff, "sigma_eff_pb": sigma_pb, "n_eff": n_eff, "kish": n_eff / n_pass if n_pass else 0.0,
            "cpu_per_pass": cpu / n_pass if n_pass else float("inf"),
            "cpu_per_eff": cpu / n_eff if n_eff else float("inf"),
            "w_max_over_mean": float(wp.max() / wp.mean()) if n_pass else 0.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tries", type=int, default=1500)
    parser.add_argument("--pow", type=float, nargs="+", default=[0.0, 2.0, 4.0])
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    rows = []
    header = (f"{'pow':>4s} {'CPU s':>7s} {'tried/s':>8s} {'passed':>7s} {'pass/try':>9s} {'w. eff':>9s} "
              f"{'sigma x eff pb':>14s} {'N_eff/N':>8s} {'w max/mean':>10s} {'CPU s/pass':>10s} {'CPU s/eff':>9s}")
    print(header)
    for power in args.pow:
        r = measure(args.tries, power, args.seed)
        rows.append(r)
        lo, hi = poisson_68(r["n_pass"])
        print(f"{r['pow']:4g} {r['cpu']:7.1f} {r['tried_per_s']:8.1f} {r['n_pass']:7d} {r['pass_rate']:9.2e} "
              f"{r['eff']:9.2e} {r['sigma_eff_pb']:14.4g} {r['kish']:8.2f} {r['w_max_over_mean']:10.2f} "
              f"{r['cpu_per_pass']:10.2f} {r['cpu_per_eff']:9.2f}   (passed 68 %: {lo:.1f}-{hi:.1f})", flush=True)
        if r["n_pass"] and np.isfinite(r["pthat_passed"]).all():  # where the passing cross section sits in pTHat
            order = np.argsort(r["pthat_passed"])
            share = np.cumsum(r["w_passed"][order]) / r["w_passed"].sum()
            print("     passing events, pTHat [GeV] : cumulative weight share: "
                  + ", ".join(f"{pt:.0f}:{c:.2f}" for pt, c in zip(r["pthat_passed"][order], share)), flush=True)
    # The weighted efficiency of a biased run IS the unbiased pass probability (the weights undo the bias), so the
    # gains are measured against it rather than against pow 0's handful of passing events; pow 0 gives the CPU per try.
    base = next((r for r in rows if r["pow"] == 0), None)
    for r in rows:
        if r["pow"] == 0 or not r["n_pass"]:
            continue
        line = f"pow {r['pow']:g}: pass rate per try x{r['pass_rate'] / r['eff']:.1f} the unbiased efficiency"
        if base:
            unbiased_cpu_per_event = 1.0 / (base["tried_per_s"] * r["eff"])
            line += (f"; CPU per effective passing event {r['cpu_per_eff']:.2f} s against "
                     f"{unbiased_cpu_per_event:.2f} s unbiased (x{unbiased_cpu_per_event / r['cpu_per_eff']:.1f})")
        print(line)

if __name__ == "__main__":
    main()
