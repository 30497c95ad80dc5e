"""What l1 version 3 costs, and which background composition its loose HLT isolation reaches.

    python benchmarks/l1_v3_cost.py [--tries 400] [--qcd-tries 4000] [--light-qcd-tries 0] [--seed 3] [--save runs.npz]

Per background process it generates ``--tries`` events (QCD: ``--qcd-tries``)
in one pilot chunk (one core; times include Pythia's initialisation and, with
pile-up, the 1000-event minimum-bias pool) under three settings side by side:

* v2: no underlying event, no pile-up, isolation 0.1 (the shipped l1-pythia);
* v3 without pile-up (UE on, natural taus, the v3 isolation and pre-trigger);
* v3 (UE on, pile-up mu = 20).

and prints generated events/s, kept events/s, the trigger efficiency and
sigma x efficiency. Then, from the v3 run, the trigger lepton's relative
isolation gives the composition for HLT isolation cuts up to v3's 0.5.
``--light-qcd-tries`` also measures the light-flavour hard QCD
(``QCD_light``, not in the mixture). ``--save`` keeps the kept events (with
their HLT record; v2 is run with the record on, which leaves its events as
they are) for benchmarks/l1_v3_figure.py.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np

from hepad_plugins.generators import detector_sim, l1

CUTS = (0.1, 0.2, 0.3, 0.4, 0.5)


def run(process: str, tries: int, seed: int, config: l1.L1Config) -> dict:
    start = time.perf_counter()
    chunk = l1.pilot_chunk(process, tries, seed, config=config)
    seconds = time.perf_counter() - start
    sigma_pb = float(chunk["_sigma_gen_mb"]) * l1.MB_TO_PB
    passed = chunk["passed"]
    return {"seconds": seconds, "rate": tries / seconds, "eff": passed.mean(), "sigma_pb": sigma_pb,
            "kept_rate": passed.sum() / seconds, "chunk": chunk}


def rel_iso(chunk: dict) -> np.ndarray:
    """Relative isolation of the trigger lepton of each passing event."""
    parts, hlt = chunk["Particles"][chunk["passed"]], chunk["HLT"][chunk["passed"]]
    lead = np.maximum(parts[:, detector_sim.ELECTRON_ROWS.start, 0], parts[:, detector_sim.MUON_ROWS.start, 0])
    return hlt[:, 1:4].sum(1) / lead


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tries", type=int, default=400)
    parser.add_argument("--qcd-tries", type=int, default=4000)
    parser.add_argument("--light-qcd-tries", type=int, default=0)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--save", default=None, help="write the kept events and cross sections here (.npz)")
    args = parser.parse_args()
    v3_nopu = replace(l1.V3, pileup_mu=0.0)
    v2 = l1.L1Config(hlt_record=True)
    saved: dict[str, np.ndarray] = {}
    processes = list(l1.BACKGROUND_SETTINGS) + (["QCD_light"] if args.light_qcd_tries else [])
    print(f"{'process':10s} {'setting':12s} {'gen ev/s':>9s} {'kept ev/s':>9s} {'trig eff':>9s} {'sigma x eff [pb]':>16s}")
    scan = {}
    for p in processes:
        tries = {"QCD": args.qcd_tries, "QCD_light": args.light_qcd_tries}.get(p, args.tries)
        rows = {"v2": run(p, tries, args.seed, v2), "v3 no PU": run(p, tries, args.seed, v3_nopu),
                "v3": run(p, tries, args.seed, l1.V3)}
        for name, r in rows.items():
            print(f"{p:10s} {name:12s} {r['rate']:9.1f} {r['kept_rate']:9.2f} {r['eff']:9.2e} "
                  f"{r['sigma_pb'] * r['eff']:16.4g}", flush=True)
        print(f"{p:10s} v3 / v2 generated-events/s ratio {rows['v3']['rate'] / rows['v2']['rate']:.2f}; "
              f"v3 / v3-no-PU {rows['v3']['rate'] / rows['v3 no PU']['rate']:.2f}", flush=True)
        iso = rel_iso(rows["v3"]["chunk"])
        scan[p] = {c: rows["v3"]["sigma_pb"] * np.sum(iso < c) / tries for c in CUTS}
        for name, r in rows.items():
            key = f"{p}/{name.replace(' ', '_')}"
            c = r["chunk"]
            saved |= {f"{key}/particles": c["Particles"][c["passed"]], f"{key}/hlt": c["HLT"][c["passed"]],
                      f"{key}/sigma_pb": np.asarray(r["sigma_pb"]), f"{key}/tries": np.asarray(tries),
                      f"{key}/seconds": np.asarray(r["seconds"])}
    print("\nHLT isolation cut -> background composition (sigma x eff; v3, pile-up mu 20)")
    for c in CUTS:
        total = sum(scan[p][c] for p in l1.BACKGROUND_SETTINGS)
        parts = ", ".join(f"{p} {scan[p][c] / total:.1%}" for p in l1.BACKGROUND_SETTINGS)
        light = f"; QCD_light / mixture {scan['QCD_light'][c] / total:.2f}" if "QCD_light" in scan else ""
        print(f"  relIso < {c:.1f}: {parts} (total {total:.4g} pb){light}")
    if args.save:
        np.savez_compressed(args.save, **saved)


if __name__ == "__main__":
    main()
