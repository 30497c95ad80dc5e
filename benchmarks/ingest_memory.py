"""Peak memory of loading and running on a public-size ADC2021 background, against the float32 feature table.

Writes an ADC2021-layout background (``background_for_training.h5``: ``Particles`` of
shape (N, 19, 4), rows MET, 4 e, 4 mu, 10 jets, columns pT, eta, phi, class id) and
one small signal file from random numbers into a temporary folder (deleted at the
end, never committed), with a fresh cache (``HEPAD_BENCH_CACHE``), then measures in
separate child processes, one after the other:

  1. ``load (HDF5)``: ``ADC2021().load`` on the empty cache: the HDF5 conversion,
     splits, preprocessing and the Parquet writes;
  2. ``load (cache)``: the same load again, now read from the cache, every split read (a run
     reads its training splits to fit, releases them, then reads the test split);
  3. ``run hbos``: ``hepad-bench run -d hbos --dataset adc2021`` (cache warm);
  4. ``run ae``: ``hepad-bench run -d ae -p epochs=2`` (cache warm).

For each it prints the wall time and the child's peak resident set size (from
``os.wait4``, the kernel's own maximum: no sampling) divided by the size of the
float32 feature table of the background (events x 57 x 4 bytes), the figure the
memory goal (<= 1.5) is stated in. For scale it also prints the fixed cost of a
run (the same ``hbos`` and ``ae`` runs on a 10 000-event file: imports,
torch's start-up) and (peak - fixed cost) / table, the part that grows with
the data, and the ``ae``'s scoring rate as the run recorded it in ``run.json``
(wall clock: it depends on how busy the machine is).

The children run ``python -m hepad_bench.cli`` with the interpreter running this
script, so the same script measures another checkout through its virtualenv:

    OMP_NUM_THREADS=1 python benchmarks/ingest_memory.py                # 4 M events (~1 GB table)
    OMP_NUM_THREADS=1 python benchmarks/ingest_memory.py --events 1000000
    OMP_NUM_THREADS=1 /path/to/other/.venv/bin/python benchmarks/ingest_memory.py --events 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

#: (number of slots, class id) in the row order of ``Particles``: MET, 4 e, 4 mu, 10 jets.
SLOTS = [(1, 1), (4, 2), (4, 3), (10, 4)]
N_FEATURES = 57
CHUNK = 250_000


def random_events(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` events in the public layout: each object type pT-ordered, empty slots all zero, jets |eta| <= 4."""
    out = np.zeros((n, 19, 4), dtype=np.float32)
    row = 0
    for slots, cls in SLOTS:
        present = np.arange(slots)[None, :] < rng.integers(1 if cls in (1, 4) else 0, slots + 1, size=(n, 1))
        if cls == 2:  # a leading lepton: every event has at least one electron slot filled
            present[:, 0] = True
        pt = -np.sort(-rng.exponential(30.0, size=(n, slots)), axis=1) + 1.0
        eta = 0.0 if cls == 1 else rng.uniform(-4.0 if cls == 4 else -2.5, 4.0 if cls == 4 else 2.5, size=(n, slots))
        phi = rng.uniform(-np.pi, np.pi, size=(n, slots))
        block = out[:, row:row + slots]
        for k, value in enumerate((pt, eta, phi, cls)):
            block[:, :, k] = np.where(present, value, 0.0)
        row += slots
    return out


def write_file(path: Path, events: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    with h5py.File(path, "w") as fh:
        ds = fh.create_dataset("Particles", shape=(events, 19, 4), dtype=np.float32, chunks=(min(events, 10_000), 19, 4))
        fh.create_dataset("Particles_Names", data=np.array([b"Pt", b"Eta", b"Phi", b"Class"]))
        for start in range(0, events, CHUNK):
            ds[start:start + CHUNK] = random_events(min(CHUNK, events - start), rng)


#: Runs a command and prints its peak RSS (KiB) and exit code. A child started straight from this
#: script would inherit this script's own high-water mark (exec keeps the larger of the two), so
#: each command goes through this small launcher, started with ``-S`` (about 10 MB).
LAUNCHER = """
import os, subprocess, sys
p = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
err = p.stderr.read()
_, status, usage = os.wait4(p.pid, 0)
sys.stderr.buffer.write(err[-3000:])
print(usage.ru_maxrss, os.waitstatus_to_exitcode(status))
"""


def measure(argv: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """(wall seconds, peak RSS in bytes, exit code) of one child process."""
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-S", "-c", LAUNCHER, *argv], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    maxrss_kib, code = map(int, done.stdout.split())
    if code:
        lines = done.stderr.strip().splitlines()
        print(f"   child failed ({code}): {lines[-1] if lines else ''}", file=sys.stderr)
    return wall, maxrss_kib * 1024.0, code


LOAD = ("from pathlib import Path; from hepad_bench.contracts import Progress; "
        "from hepad_plugins.datasets.adc2021 import ADC2021; "
        "b = ADC2021().load(Path({d!r}), Progress()); print(sum(t.height for t in b.tables().values()))")
IMPORTS = "import hepad_bench.cli, hepad_plugins.datasets.adc2021"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=4_000_000, help="background events (default 4 M)")
    parser.add_argument("--signal-events", type=int, default=20_000)
    parser.add_argument("--keep", type=Path, default=None, help="work in this folder and keep it (default: a temp dir)")
    parser.add_argument("--skip", nargs="*", default=[], help="steps to leave out: hbos, ae")
    args = parser.parse_args()

    work = args.keep or Path(tempfile.mkdtemp(prefix="hepad-ingest-"))
    work.mkdir(parents=True, exist_ok=True)
    data, cache, out = work / "data", work / "cache", work / "results"
    data.mkdir(exist_ok=True)
    try:
        t0 = time.perf_counter()
        write_file(data / "background_for_training.h5", args.events, 1)
        write_file(data / "Ato4l_lepFilter_13TeV_filtered.h5", args.signal_events, 2)
        print(f"wrote {args.events} background + {args.signal_events} signal events in {time.perf_counter() - t0:.1f} s "
              f"to {data}")
        table = args.events * N_FEATURES * 4
        env = os.environ | {"HEPAD_BENCH_CACHE": str(cache), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
                            "MKL_NUM_THREADS": os.environ.get("MKL_NUM_THREADS", "1")}
        py = [sys.executable]
        cli = [*py, "-m", "hepad_bench.cli", "run", "--dataset", "adc2021", "--data-dir", str(data),
               "--output", str(out), "--quiet", "--device", "cpu"]
        steps = [
            ("imports only", [*py, "-c", IMPORTS]),
            ("load (HDF5)", [*py, "-c", LOAD.format(d=str(data))]),
            ("load (cache)", [*py, "-c", LOAD.format(d=str(data))]),
            ("run hbos", [*cli, "-d", "hbos"]),
            ("run ae epochs=2", [*cli, "-d", "ae", "-p", "epochs=2"]),
        ]
        print(f"float32 feature table of the background: {table / 1e6:.0f} MB ({args.events} x {N_FEATURES} x 4 B); "
              f"python {sys.executable}")
        # the fixed cost of a run (imports, JIT, torch's start-up): the same runs on a tiny file
        tiny = work / "tiny"
        tiny.mkdir(exist_ok=True)
        write_file(tiny / "background_for_training.h5", 10_000, 3)
        tiny_env = env | {"HEPAD_BENCH_CACHE": str(work / "tiny-cache")}
        tiny_cli = [*py, "-m", "hepad_bench.cli", "run", "--dataset", "adc2021", "--data-dir", str(tiny),
                    "--output", str(work / "tiny-results"), "--quiet", "--device", "cpu"]
        # A user's runs find the plugin metadata cache built (by the first command after an install, which
        # imports every plugin); build it here too, so that a run imports only the plugins it uses.
        for plugin_env in (env, tiny_env):
            subprocess.run([*py, "-m", "hepad_bench.cli", "list"], env=plugin_env, capture_output=True, check=True)
        floors = {}
        for det, extra in (("hbos", []), ("ae", ["-p", "epochs=2"])):
            if det not in args.skip:
                floors[det] = measure([*tiny_cli, "-d", det, *extra], tiny_env)[1]
        print("fixed cost of a run (10 000 events): " + ", ".join(f"{d} {v / 1e6:.0f} MB" for d, v in floors.items()))
        print(f"{'step':<18}{'wall s':>9}{'peak RSS MB':>13}{'RSS / table':>13}{'(RSS - fixed) / table':>23}")
        walls = {}
        for name, argv in steps:
            if any(s in name for s in args.skip):
                continue
            wall, rss, code = measure(argv, env)
            walls[name] = wall
            flag = "" if code == 0 else f"   (exit {code})"
            det = "hbos" if "hbos" in name else "ae" if " ae" in name else None
            net = f"{(rss - floors[det]) / table:>23.2f}" if det in floors else ""
            print(f"{name:<18}{wall:>9.1f}{rss / 1e6:>13.0f}{rss / table:>13.2f}{net}{flag}", flush=True)
        for run_json in sorted((out / "adc2021" / "ae").glob("*/run.json")):
            cost = json.loads(run_json.read_text()).get("cost", {})
            if cost.get("latency_us_per_event"):
                print(f"ae scoring as recorded in run.json: {1 / cost['latency_us_per_event']:.2f} M events/s "
                      f"({cost['latency_batch']} test events, 1 thread)")
        if "load (HDF5)" in walls and "load (cache)" in walls:
            print(f"load from the cache / HDF5 conversion: {walls['load (cache)']:.1f} s / {walls['load (HDF5)']:.1f} s "
                  f"= {walls['load (cache)'] / walls['load (HDF5)']:.2f} (each includes the imports)")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
