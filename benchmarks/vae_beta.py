"""VAE KL weight study on l1-pythia: AUC per signal of the total, reconstruction and KL-only scores.

One fit per (beta, seed) scores all three terms (the score choice does not change training).
Prints one row per (beta, seed, score) and the mean KL / reconstruction on the validation split.
beta is the VAE's own parameter (vae version 2: 1 = the ELBO of a unit-variance Gaussian decoder;
the training loss is reco + 2 beta / n_features * kl). The former default, 1e-3 on the
mean-over-features scale, is beta = 1e-3 * 57 / 2 = 0.0285 on l1-pythia.

    python benchmarks/vae_beta.py --beta 0.0285 --beta 0.1 --beta 0.285 --beta 1 --beta 2.85 --seed 1 --seed 2 --seed 3
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from hepad_bench import FitContext
from hepad_bench.plugins import load_registry
from hepad_bench.runner import Runner, RunSpec


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--beta", type=float, action="append", required=True)
    ap.add_argument("--seed", type=int, action="append", required=True)
    ap.add_argument("--dataset", default="l1-pythia")
    args = ap.parse_args()
    torch.set_num_threads(1)
    reg = load_registry()
    runner = Runner(reg, output="/tmp/unused")
    spec = RunSpec(dataset=args.dataset, detector="vae")
    bench = runner.benchmark(spec)
    train = runner._training_data(bench, "unsupervised", None)
    det_cls = reg.detector("vae")
    x_bg = bench.features_of(bench.test)
    signals = sorted(bench.signals)
    print(f"features: {len(bench.features)}; 2/n_features = {2 / len(bench.features):.4f}")
    print("beta      kl_weight seed score  " + "  ".join(f"{s:>14}" for s in signals) + "   mean_kl  mean_reco")
    for beta in args.beta:
        for seed in args.seed:
            det = det_cls(det_cls.Config(beta=beta))
            det.fit(train, FitContext(seed=seed))
            summary = det.training_summary() if hasattr(det, "training_summary") else {}
            for score in ("total", "reco", "kl"):
                det.config = dataclasses.replace(det.config, score=score)
                bg = det.score(x_bg)
                aucs = []
                for s in signals:
                    sig = det.score(bench.features_of(bench.signals[s]))
                    y = np.r_[np.zeros(len(bg)), np.ones(len(sig))]
                    aucs.append(roc_auc_score(y, np.r_[bg, sig]))
                extra = f"   {summary.get('mean_kl', float('nan')):7.3f}  {summary.get('mean_reco', float('nan')):9.4f}"
                print(f"{beta:<9.4g} {summary.get('kl_weight', float('nan')):<9.4g} {seed:>4} {score:<6} " + "  ".join(f"{a:>14.3f}" for a in aucs) + extra, flush=True)


if __name__ == "__main__":
    main()
