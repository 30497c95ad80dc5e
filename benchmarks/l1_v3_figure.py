"""Figure for the l1-pythia card: l1 v3 against v2 (composition, lepton isolation, MET), from l1_v3_cost.py runs.

    python benchmarks/l1_v3_cost.py --tries 300 --qcd-tries 2000 --save runs.npz
    python benchmarks/l1_v3_figure.py runs.npz datasets/l1-pythia/v3_vs_v2.png

Each setting's background is the mixture of its processes weighted by
sigma x efficiency per kept event (the physical mixture, as the generator
mixes it). Seed 004's table is drawn beside the compositions.
"""

from __future__ import annotations

import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from hepad_plugins.datasets.lx_hlt import EVENTS_PER_MONTH  # noqa: E402
from hepad_plugins.generators import detector_sim as ds  # noqa: E402

PROCESSES = ("W", "QCD", "Z", "ttbar")
SETTINGS = {"v2": "v2 (no UE, no PU, iso < 0.1)", "v3_no_PU": "v3 without pile-up", "v3": "v3 (UE, PU 20, iso < 0.5)"}


def mixture(runs, setting: str) -> dict[str, np.ndarray]:
    out: dict[str, list[np.ndarray]] = {"weight": [], "rel_iso": [], "met": [], "iso_neutral": []}
    for p in PROCESSES:
        key = f"{p}/{setting}"
        parts, hlt = runs[f"{key}/particles"], runs[f"{key}/hlt"]
        if len(parts) == 0:
            continue
        lead = np.maximum(parts[:, ds.ELECTRON_ROWS.start, 0], parts[:, ds.MUON_ROWS.start, 0])
        out["weight"].append(np.full(len(parts), float(runs[f"{key}/sigma_pb"]) / float(runs[f"{key}/tries"])))
        out["rel_iso"].append(hlt[:, 1:4].sum(1) / lead)
        out["met"].append(parts[:, 0, 0])
        out["iso_neutral"].append(hlt[:, 2] + hlt[:, 3])
    return {k: np.concatenate(v) for k, v in out.items()}


def composition(runs, setting: str) -> dict[str, float]:
    sig = {p: float(runs[f"{p}/{setting}/sigma_pb"]) * len(runs[f"{p}/{setting}/particles"])
           / float(runs[f"{p}/{setting}/tries"]) for p in PROCESSES}
    total = sum(sig.values())
    return {p: v / total for p, v in sig.items()}


def main(source: str, target: str) -> None:
    runs = dict(np.load(source))
    fig, axes = plt.subplots(1, 4, figsize=(17, 4))
    comps = {name: composition(runs, s) for s, name in (("v2", "v2"), ("v3", "v3"))}
    total = sum(EVENTS_PER_MONTH.values())
    comps["seed 004"] = {p: EVENTS_PER_MONTH[p] / total for p in PROCESSES}
    bottom = np.zeros(len(comps))
    for p in PROCESSES:
        values = np.array([c[p] for c in comps.values()])
        axes[0].bar(list(comps), values, bottom=bottom, label=p)
        bottom += values
    axes[0].set_ylabel("fraction of triggered background")
    axes[0].legend(fontsize=8)
    axes[0].set_title("composition (sigma x efficiency)")
    for s, label in SETTINGS.items():
        m = mixture(runs, s)
        w = m["weight"] / m["weight"].sum()
        axes[1].hist(np.clip(m["rel_iso"], 0, 0.6), bins=30, range=(0, 0.6), weights=w, histtype="step", label=label)
        axes[2].hist(np.clip(m["met"], 0, 150), bins=30, range=(0, 150), weights=w, histtype="step", label=label)
        axes[3].hist(np.clip(m["iso_neutral"], 0, 12), bins=24, range=(0, 12), weights=w, histtype="step", label=label)
    axes[1].set_xlabel("trigger-lepton relative isolation (Delta R < 0.3)")
    axes[2].set_xlabel("MET [GeV]")
    axes[3].set_xlabel("neutral-hadron + photon isolation sum [GeV]")
    for ax in axes[1:]:
        ax.set_yscale("log")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(target, dpi=110)
    for name, c in comps.items():
        print(name, ", ".join(f"{p} {v:.1%}" for p, v in c.items()))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
