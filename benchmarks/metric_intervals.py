"""Cost of the per-run intervals: the AUC alone, with DeLong's interval, and with a 200-replicate bootstrap.

    python benchmarks/metric_intervals.py [--events 100000 1000000]

Prints seconds per call side by side and the ratios; the bootstrap is the
stratified one of tests/test_metrics_efficiency.py (resample each class with
its own size), vectorised as well as a plain numpy version can be.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.metrics import roc_auc_score

from hepad_bench import ScoredSample, ScoredSignal
from hepad_plugins.metrics._roc import delong_auc_interval
from hepad_plugins.metrics.efficiency import EfficiencyAtBackground, MaxSIC


def seconds(fn, repeat: int = 3) -> float:
    best = np.inf
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def bootstrap(bkg: np.ndarray, sig: np.ndarray, replicates: int, rng: np.random.Generator) -> tuple[float, float]:
    y = np.r_[np.zeros(len(bkg)), np.ones(len(sig))]
    values = [roc_auc_score(y, np.r_[rng.choice(bkg, len(bkg)), rng.choice(sig, len(sig))]) for _ in range(replicates)]
    return tuple(np.quantile(values, [0.15865, 0.84135]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, nargs="+", default=[100_000, 1_000_000], help="background events")
    parser.add_argument("--replicates", type=int, default=200)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"{'events':>9} {'auc only':>9} {'DeLong':>9} {'bootstrap':>10} {'DeLong/auc':>11} {'boot/DeLong':>12} "
          f"{'eff_at_bkg':>11} {'sic_max':>8}")
    for n in args.events:
        bkg, sig = rng.normal(size=n), rng.normal(1.0, size=n // 10)
        y = np.r_[np.zeros(n), np.ones(n // 10)]
        b, s = ScoredSample(bkg, np.ones(n)), ScoredSample(sig, np.ones(n // 10))
        scored = ScoredSignal("s", b, s, meta={"background_rate_hz": 300.0})
        t_auc = seconds(lambda: roc_auc_score(y, np.r_[bkg, sig]))
        t_delong = seconds(lambda: delong_auc_interval(b, s))
        t_boot = seconds(lambda: bootstrap(bkg, sig, args.replicates, rng), repeat=1)
        t_eff = seconds(lambda: EfficiencyAtBackground().compute(scored))
        t_sic = seconds(lambda: MaxSIC().compute(scored))
        print(f"{n:>9} {t_auc:>9.3f} {t_delong:>9.3f} {t_boot:>10.2f} {t_delong / t_auc:>11.1f} "
              f"{t_boot / t_delong:>12.0f} {t_eff:>11.3f} {t_sic:>8.3f}")


if __name__ == "__main__":
    main()
