"""ADC2021-like single-lepton ("l1") events: SM background cocktail and four signals.

13 TeV pp with Pythia 8, the detector emulation of :mod:`detector_sim`, and
HDF5 files in the public ADC2021 layout (Govorkova et al., Sci. Data 9 (2022)
118): ``Particles`` (N, 19, 4), ``Particles_Names``, ``Particles_Classes``.
Every kept event passes the trigger (leading isolated e or mu, pT > 23 GeV).

Background processes (generated separately, then mixed):

* ``W``: f fbar -> W -> l nu (l = e, mu, tau);
* ``Z``: f fbar -> Z/gamma* -> l l (l = e, mu, tau), m(ll) > 40 GeV;
* ``ttbar``: g g, q qbar -> t tbar, inclusive decays;
* ``QCD``: heavy-flavour-enriched hard QCD, g g / q qbar -> b bbar, c cbar with
  pTHat > 20 GeV. A real (isolated) lepton in QCD comes overwhelmingly from
  semileptonic b and c hadron decays, so these pair-production processes are
  the tractable stand-in for the QCD multijet background with a lepton; the
  trigger is the lepton filter. Flavour excitation and gluon splitting are not
  generated: this QCD cross section is a lower bound. With the isolation of
  detector_sim (and no fake leptons emulated) about 1 in 10^4 or fewer of these
  events pass, so QCD's physical share is well below 1 % -- far from the 34 %
  of the public ADC2021 cocktail, whose QCD passes through Delphes' fakes. A
  pilot of 6000 tries usually keeps no QCD event; the file then records the
  95 % CL upper limit ``sigma_x_eff_pb_upper_95``.

Mixing: a pilot chunk per process measures sigma x filter efficiency
(Pythia's ``info.sigmaGen()`` times kept/tried); each process then gets a
number of kept events proportional to it, so the unweighted mixture in
``background_for_training.h5`` has physical fractions. The exact fractions
from the full run are written as attributes, and ``Weight`` (pb per event,
sigma x eff / N_kept of its process) corrects the residual rounding and pilot
statistics: sum(Weight) over a process is its filtered cross section.
Extra datasets: ``Process`` (int8 index into attribute ``process_names``) and
``Weight``.

Signals (file names as ADC2021): A(50 GeV) -> 4 l as the Higgs-like scalar
H (gg -> H) with m = 50 GeV forced to Z* Z* with Z* -> e e / mu mu; LQ(80 GeV) -> b tau
by pair-produced scalar leptoquarks (charge 2/3) forced to b tau+;
h0(60 GeV) -> tau tau from gg -> H, m = 60 GeV; h+(60 GeV) -> tau nu by f fbar' -> H+
with m = 60 GeV. No pile-up is simulated (the ADC "PU20" files had 20).
Tau channels, for speed (a lepton pT > 23 GeV from a 60 GeV boson is rare):
h+ forces tau -> e/mu nu nu, which is exact for the filtered sample (the
trigger lepton can only come from the tau); h0 forces the tau- to e/mu and
leaves the tau+ free, which over-represents the both-leptonic final state
(35 % of generated events instead of 21 % of those with at least one
leptonic tau). The forced branching fraction is recorded
(``forced_branching``) and included in ``sigma_x_eff_pb``.

Multiparton interactions (the underlying event) are off by default; they
cost three quarters of the generation time (``--underlying-event`` turns them on).
"""

from __future__ import annotations

import json
import time
from functools import partial
from pathlib import Path

import numpy as np

from hepad_bench import __version__
from hepad_bench.contracts import Progress
from hepad_plugins.generators import detector_sim
from hepad_plugins.generators.chunked import ProcessJob, run_chunked
from hepad_plugins.generators.pythia_util import COMMON_SETTINGS, final_state, make_pythia, package_version, sigma_gen_mb

PARTICLES_NAMES = [b"Pt", b"Eta", b"Phi", b"Class"]
PARTICLES_CLASSES = [b"MET_class_1", b"Four_Ele_class_2", b"Four_Mu_class_3", b"Ten_Jet_class_4"]
BACKGROUND_FILE = "background_for_training.h5"
MB_TO_PB = 1e9

BACKGROUND_SETTINGS: dict[str, tuple[str, ...]] = {
    "W": ("WeakSingleBoson:ffbar2W = on", "24:onMode = off", "24:onIfAny = 11 13 15"),
    "Z": ("WeakSingleBoson:ffbar2gmZ = on", "23:onMode = off", "23:onIfAny = 11 13 15", "PhaseSpace:mHatMin = 40"),
    "ttbar": ("Top:gg2ttbar = on", "Top:qqbar2ttbar = on"),
    "QCD": ("HardQCD:hardbbbar = on", "HardQCD:hardccbar = on", "PhaseSpace:pTHatMin = 20"),
}

SIGNAL_SETTINGS: dict[str, tuple[str, ...]] = {
    "Ato4l_lepFilter_13TeV_filtered": (
        "HiggsSM:gg2H = on", "25:m0 = 50", "25:onMode = off", "25:onIfMatch = 23 23",
        "23:mMin = 1", "23:onMode = off", "23:onIfAny = 11 13",
    ),
    "leptoquark_LOWMASS_lepFilter_13TeV_filtered": (
        "LeptoQuark:gg2LQLQbar = on", "LeptoQuark:qqbar2LQLQbar = on", "42:m0 = 80",
        "42:chargeType = 2", "42:oneChannel = 1 1.0 0 5 -15",
    ),
    # tau- forced to e/mu (onMode 3 = only the antiparticle's channels on, then the tau- leptonic ones).
    "hToTauTau_13TeV_PU20_filtered": ("HiggsSM:gg2H = on", "25:m0 = 60", "25:onMode = off", "25:onIfMatch = 15 -15",
                                      "15:onMode = 3", "15:onPosIfAny = 11 13"),
    "hChToTauNu_13TeV_PU20_filtered": (
        "Higgs:useBSM = on", "HiggsBSM:ffbar2H+- = on", "37:m0 = 60", "37:onMode = off", "37:onIfMatch = 15 16",
        "15:onMode = off", "15:onIfAny = 11 13",
    ),
}

#: Branching fraction of the forced tau decays (tau -> e/mu nu nu, PDG), not in Pythia's sigmaGen.
FORCED_BRANCHING = {"hToTauTau_13TeV_PU20_filtered": 0.352, "hChToTauNu_13TeV_PU20_filtered": 0.352}

ALL_SETTINGS = {**BACKGROUND_SETTINGS, **SIGNAL_SETTINGS}
BATCH = 100  # events generated between two (vectorised) detector emulations
#: A process whose pilot filter efficiency is below this is not generated further:
#: its events in the mixture are the pilot's kept ones (its Weight carries its
#: physical share). With the isolation of detector_sim this is QCD (about 1e-4).
MIN_MAIN_EFFICIENCY = 2e-3
#: The QCD pilot tries this many times more events than the others.
QCD_PILOT_FACTOR = 3


def pilot_tries(events: int) -> int:
    """Generated events per background process in the pilot (QCD: QCD_PILOT_FACTOR times more)."""
    return int(np.clip(events // 10, 200, 2000))


def settings_for(process: str) -> tuple[str, ...]:
    if process not in ALL_SETTINGS:
        raise ValueError(f"unknown l1 process '{process}'")
    return ALL_SETTINGS[process]


def _batches(process: str, seed: int, underlying_event: bool):
    """Endless (pythia, Particles (n, 19, 4), trigger mask) batches of ``BATCH`` generated events.

    ``underlying_event=False`` switches multiparton interactions off: they
    cost three quarters of Pythia's time per event here (measured with
    benchmarks/generate_throughput.py).
    """
    mpi = () if underlying_event else ("PartonLevel:MPI = off",)
    pythia = make_pythia((*settings_for(process), *mpi), seed)
    rng = np.random.default_rng(seed)  # detector smearing, from the same chunk seed
    while True:
        blocks, n_batch = [], 0
        while n_batch < BATCH:
            if not pythia.next():
                continue  # Pythia counts the failure in its own cross-section bookkeeping
            fs = final_state(pythia.event)
            blocks.append(np.column_stack([np.full(len(fs), n_batch, dtype=np.float64), fs]))
            n_batch += 1
        flat = np.concatenate(blocks)
        parts = detector_sim.Particles(flat[:, 0].astype(np.int64), flat[:, 1].astype(np.int64),
                                       flat[:, 2], flat[:, 3], flat[:, 4], flat[:, 5])
        particles, passed = detector_sim.simulate(parts, n_batch, rng)
        yield pythia, particles, passed


def _meta(pythia, n_tried: int, n_kept: int) -> dict[str, np.ndarray]:
    sigma, sigma_err = sigma_gen_mb(pythia)
    return {"_sigma_gen_mb": np.asarray(sigma), "_sigma_err_mb": np.asarray(sigma_err),
            "_n_tried": np.asarray(n_tried), "_n_kept": np.asarray(n_kept)}


def make_chunk(process: str, n_events: int, seed: int, underlying_event: bool = False,
               max_tries_per_event: int = 5000) -> dict[str, np.ndarray]:
    """``n_events`` triggered events of ``process`` with Pythia seed ``seed`` (a run_chunked worker)."""
    kept: list[np.ndarray] = []
    n_kept = n_tried = 0
    pythia = None
    for pythia, particles, passed in _batches(process, seed, underlying_event):
        index = np.flatnonzero(passed)
        need = n_events - n_kept
        if len(index) >= need:
            # Tried events count up to the last one kept, so kept/tried is unbiased.
            n_tried += int(index[need - 1]) + 1
            index = index[:need]
        else:
            n_tried += len(passed)
        kept.append(particles[index])
        n_kept += len(index)
        if n_tried > max_tries_per_event * max(n_events, 1) and n_kept < n_events:
            raise RuntimeError(f"{process}: only {n_kept} of {n_events} events passed the trigger in {n_tried} tries")
        if n_kept >= n_events:
            break
    return {"Particles": np.concatenate(kept), **_meta(pythia, n_tried, n_kept)}


def pilot_chunk(process: str, n_tried: int, seed: int, underlying_event: bool = False) -> dict[str, np.ndarray]:
    """``n_tried`` GENERATED events of ``process``, each with its trigger decision (``passed``).

    The pilot fixes the number of tries, not of kept events, so that a process
    with a tiny filter efficiency (QCD) costs a bounded time.
    """
    blocks, flags, pythia = [], [], None
    for pythia, particles, passed in _batches(process, seed, underlying_event):
        blocks.append(particles)
        flags.append(passed)
        if sum(len(f) for f in flags) >= n_tried:
            break
    particles, passed = np.concatenate(blocks)[:n_tried], np.concatenate(flags)[:n_tried]
    return {"Particles": particles, "passed": passed, **_meta(pythia, n_tried, int(passed.sum()))}


def filtered_sigma_pb(meta: dict[str, np.ndarray]) -> tuple[float, float]:
    """(sigma x filter efficiency in pb, filter efficiency) from a process's merged metadata."""
    eff = float(meta["_n_kept"]) / float(meta["_n_tried"]) if float(meta["_n_tried"]) > 0 else 0.0
    return float(meta["_sigma_gen_mb"]) * MB_TO_PB * eff, eff


def mixture_counts(sigma_eff: dict[str, float], total: int) -> dict[str, int]:
    """Split ``total`` events over processes proportionally to ``sigma_eff`` (largest remainders)."""
    names = list(sigma_eff)
    values = np.array([sigma_eff[n] for n in names], dtype=float)
    if values.sum() <= 0:
        raise RuntimeError("no background process passed the trigger in the pilot run")
    exact = total * values / values.sum()
    counts = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - counts))[: total - counts.sum()]:
        counts[i] += 1
    return dict(zip(names, counts.tolist()))


def _write_h5(path: Path, particles: np.ndarray, attrs: dict, extra: dict[str, np.ndarray] | None = None) -> Path:
    import h5py

    tmp = path.with_name(path.name + ".tmp")
    with h5py.File(tmp, "w") as f:
        f.create_dataset("Particles", data=particles.astype(np.float32), compression="gzip", compression_opts=4)
        f.create_dataset("Particles_Names", data=np.array(PARTICLES_NAMES))
        f.create_dataset("Particles_Classes", data=np.array(PARTICLES_CLASSES))
        for name, data in (extra or {}).items():
            f.create_dataset(name, data=data)
        for key, value in attrs.items():
            f.attrs[key] = value if isinstance(value, (int, float, str)) else json.dumps(value)
    tmp.replace(path)
    return path


def _common_attrs(seed: int) -> dict:
    return {
        "generator": "Pythia 8 (pythia8mc) + hepad-bench detector emulation",
        "seed": int(seed),
        "sqrt_s_GeV": 13000.0,
        "versions": {"pythia8mc": package_version("pythia8mc"), "fastjet": package_version("fastjet"),
                     "hepad-bench": __version__},
        "detector": detector_sim.DetectorConfig().__dict__,
        "common_settings": list(COMMON_SETTINGS),
        "created_unix": int(time.time()),
    }


def generate(out: Path, events: int, seed: int, signal_events: int, workers: int, progress: Progress,
             chunk_size: int = 1000, underlying_event: bool = False) -> list[Path]:
    """Write the background cocktail (``events`` events) and four signals (``signal_events`` each) under ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    key = f"l1-v1-ue{int(underlying_event)}"
    backgrounds = list(BACKGROUND_SETTINGS)
    worker_pilot = partial(pilot_chunk, underlying_event=underlying_event)
    worker_main = partial(make_chunk, underlying_event=underlying_event)

    n_pilot = pilot_tries(events)
    pilot_jobs = [ProcessJob(p, n_pilot * (QCD_PILOT_FACTOR if p == "QCD" else 1)) for p in backgrounds]
    pilot = run_chunked(out, "l1-pilot", pilot_jobs, worker_pilot, seed, workers, progress,
                        chunk_size=max(100, n_pilot // 2), settings_key=key,
                        stream="pilot")  # its kept events join the sample: they must not replay the main run's
    pilot_kept = {p: pilot[p]["Particles"][pilot[p]["passed"]] for p in backgrounds}
    pilot_sigma = {p: filtered_sigma_pb(pilot[p])[0] for p in backgrounds}
    targets = mixture_counts(pilot_sigma, events)
    main_jobs = []
    for p in backgrounds:
        eff = filtered_sigma_pb(pilot[p])[1]
        more = targets[p] - len(pilot_kept[p]) if eff >= MIN_MAIN_EFFICIENCY else 0
        main_jobs.append(ProcessJob(p, max(0, more)))
    progress.log("pilot sigma x eff [pb]: " + ", ".join(f"{p} {v:.4g}" for p, v in pilot_sigma.items()))
    progress.log("background events per process: " + ", ".join(f"{p} {n}" for p, n in targets.items()))

    main = run_chunked(out, "l1-background", main_jobs, worker_main, seed, workers, progress,
                       chunk_size=chunk_size, settings_key=key)

    blocks, process_ids, weights, per_process = [], [], [], {}
    for i, p in enumerate(backgrounds):
        parts = [pilot_kept[p]] + ([main[p]["Particles"]] if "Particles" in main[p] else [])
        ev = np.concatenate(parts)[: targets[p]]
        tried, kept = float(pilot[p]["_n_tried"]), float(pilot[p]["_n_kept"])
        sig_w = [(float(pilot[p]["_sigma_gen_mb"]), tried)]
        if "_n_tried" in main[p]:
            tried, kept = tried + float(main[p]["_n_tried"]), kept + float(main[p]["_n_kept"])
            sig_w.append((float(main[p]["_sigma_gen_mb"]), float(main[p]["_n_tried"])))
        sigma_mb = sum(s * w for s, w in sig_w) / sum(w for _s, w in sig_w)
        eff = kept / tried
        sigma_eff_pb = sigma_mb * MB_TO_PB * eff
        per_process[p] = {"sigma_gen_pb": sigma_mb * MB_TO_PB, "filter_efficiency": eff, "sigma_x_eff_pb": sigma_eff_pb,
                          "n_tried": tried, "n_passed": kept, "n_events": len(ev),
                          "settings": list(BACKGROUND_SETTINGS[p])}
        if kept == 0:  # nothing passed: say how small it is (95 % CL upper limit, 3 events)
            per_process[p]["sigma_x_eff_pb_upper_95"] = sigma_mb * MB_TO_PB * 3.0 / tried
        blocks.append(ev)
        process_ids.append(np.full(len(ev), i, dtype=np.int8))
        weights.append(np.full(len(ev), sigma_eff_pb / max(len(ev), 1)))
    total_sigma = sum(v["sigma_x_eff_pb"] for v in per_process.values())
    n_total = sum(v["n_events"] for v in per_process.values())
    for v in per_process.values():
        v["physical_fraction"] = v["sigma_x_eff_pb"] / total_sigma
        v["sample_fraction"] = v["n_events"] / max(n_total, 1)
    progress.log("background mixture: " + ", ".join(
        f"{p} {v['physical_fraction']:.3%} (sigma {v['sigma_gen_pb']:.4g} pb, eff {v['filter_efficiency']:.3g}, "
        f"{v['n_events']} events)" for p, v in per_process.items()))

    attrs = {**_common_attrs(seed), "underlying_event": int(underlying_event), "process_names": backgrounds,
             "processes": per_process,
             "mixing": "pilot sigma x eff sets per-process counts; Weight = sigma x eff / N (pb)"}
    # Shuffled (deterministically) like the public file, so any first N events are a mixture.
    order = np.random.default_rng([seed, 1]).permutation(n_total)
    written = [_write_h5(out / BACKGROUND_FILE, np.concatenate(blocks)[order], attrs,
                         {"Process": np.concatenate(process_ids)[order], "Weight": np.concatenate(weights)[order]})]

    if signal_events > 0:
        signals = run_chunked(out, "l1-signals", [ProcessJob(s, signal_events) for s in SIGNAL_SETTINGS], worker_main,
                              seed, workers, progress, chunk_size=chunk_size, settings_key=key)
        for s, data in signals.items():
            sigma_pb, eff = filtered_sigma_pb(data)
            branching = FORCED_BRANCHING.get(s, 1.0)
            info = {"sigma_gen_pb": float(data["_sigma_gen_mb"]) * MB_TO_PB, "filter_efficiency": eff,
                    "forced_branching": branching, "sigma_x_eff_pb": sigma_pb * branching, "n_tried": float(data["_n_tried"]), "settings": list(SIGNAL_SETTINGS[s])}
            progress.log(f"{s}: sigma {info['sigma_gen_pb']:.4g} pb, filter efficiency {eff:.3g}")
            written.append(_write_h5(out / f"{s}.h5", data["Particles"],
                                     {**_common_attrs(seed), "underlying_event": int(underlying_event), "process": info}))
    return written
