"""Throughput of the generators: kept and generated events/s per process, for 1 and 2 workers.

    python benchmarks/generate_throughput.py [--events 600] [--processes W Z ttbar qcd signal] [--underlying-event]

Process names of the l1 generator (W, Z, ttbar, QCD, the signal file names)
and of the dijet generator (qcd, signal) may be mixed.

Each process is generated through ``run_chunked`` (fresh folder, so nothing is
reused) with two chunks, so 2 workers have work to share. Times include
Pythia's initialisation per chunk, as in real runs. The last column is the
2-worker speed-up over 1 worker (about 2 on an idle 2-core machine; less on a
shared one).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from functools import partial
from pathlib import Path

from hepad_bench.contracts import Progress
from hepad_plugins.generators import dijet, l1
from hepad_plugins.generators.chunked import ProcessJob, run_chunked


def measure(process: str, events: int, workers: int, underlying_event: bool) -> tuple[float, float]:
    """(kept events/s, generated events/s) for one process."""
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        make_chunk = (dijet.make_chunk if process in dijet.PROCESS_SETTINGS
                      else partial(l1.make_chunk, underlying_event=underlying_event))
        out = run_chunked(Path(tmp), "bench", [ProcessJob(process, events)], make_chunk, seed=1, workers=workers,
                          progress=Progress(), chunk_size=max(1, events // 2))
        seconds = time.perf_counter() - start
    return events / seconds, float(out[process]["_n_tried"]) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=600, help="kept events per process and worker count")
    parser.add_argument("--processes", nargs="+", default=["W", "Z", "ttbar", "Ato4l_lepFilter_13TeV_filtered", "qcd", "signal"])
    parser.add_argument("--underlying-event", action="store_true", help="multiparton interactions on (l1 only; the dijet generator always simulates them)")
    args = parser.parse_args()
    print(f"{'process':<46}{'workers':>8}{'kept/s':>10}{'generated/s':>13}{'speed-up':>10}")
    for process in args.processes:
        base = None
        for workers in (1, 2):
            kept, tried = measure(process, args.events, workers, args.underlying_event)
            base = base or kept
            print(f"{process:<46}{workers:>8}{kept:>10.1f}{tried:>13.1f}{kept / base:>10.2f}", flush=True)


if __name__ == "__main__":
    main()
