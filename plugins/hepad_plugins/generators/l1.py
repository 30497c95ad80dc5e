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
  generated: this QCD cross section is a lower bound. In version 2, with the
  isolation of detector_sim (and no fake leptons emulated) about 1 in 10^4 or
  fewer of these events pass, so QCD's physical share is well below 1 % -- far from the 34 %
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

Version 3 (``--version 3``, :data:`V3`; version 2 stays the default and is
reproduced bit for bit) imitates the l+X@HLT stream of Cerri et al. (JHEP 05
(2019) 036): underlying event on; pile-up overlaid with Poisson(mu = 20)
minimum-bias interactions drawn from a pool of ``PILEUP_POOL`` SoftQCD
events generated once per chunk from the chunk's seed (charged pile-up in the
tracker subtracted from isolation and jets, everything else entering
isolation, jets and MET, see :mod:`detector_sim`); natural tau decays in the
signals (no forced branching); a very loose HLT isolation (scalar sum in
Delta R < 0.3 below ``HLT_ISO_MAX`` times the lepton pT) that lets the
leptons of semileptonic b and c decays in QCD through; and, per event, the
l+X@HLT quantities the ADC2021 layout lacks (``HLT`` (N, 7) with names in
``HLT_Names``, and ``NPileup``), from which :mod:`lx_hlt` computes the 21
features of the l+X@HLT view. Its looser isolation lets QCD pass at about
1.5e-3, so QCD is generated beyond the pilot (``min_main_efficiency``); a
pre-trigger (a true e or mu above ``PREFILTER_PT``) skips the pile-up overlay
and the detector for events that cannot pass, which makes that affordable.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np

from hepad_bench import __version__
from hepad_bench.contracts import Progress
from hepad_plugins.generators import detector_sim
from hepad_plugins.generators.chunked import ProcessJob, run_chunked
from hepad_plugins.generators.pythia_util import (COMMON_SETTINGS, final_state, final_state_and_heavy, make_pythia,
                                                  package_version, sigma_gen_mb)

PARTICLES_NAMES = [b"Pt", b"Eta", b"Phi", b"Class"]
PARTICLES_CLASSES = [b"MET_class_1", b"Four_Ele_class_2", b"Four_Mu_class_3", b"Ten_Jet_class_4"]
BACKGROUND_FILE = "background_for_training.h5"
MB_TO_PB = 1e9
#: QCD's generation cut (GeV), also the reference scale of its optional pTHat bias.
QCD_PTHAT_MIN = 20.0

BACKGROUND_SETTINGS: dict[str, tuple[str, ...]] = {
    "W": ("WeakSingleBoson:ffbar2W = on", "24:onMode = off", "24:onIfAny = 11 13 15"),
    "Z": ("WeakSingleBoson:ffbar2gmZ = on", "23:onMode = off", "23:onIfAny = 11 13 15", "PhaseSpace:mHatMin = 40"),
    "ttbar": ("Top:gg2ttbar = on", "Top:qqbar2ttbar = on"),
    "QCD": ("HardQCD:hardbbbar = on", "HardQCD:hardccbar = on", f"PhaseSpace:pTHatMin = {QCD_PTHAT_MIN:g}"),
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

#: Measured (benchmarks/l1_v3_cost.py), not mixed: light-flavour hard QCD (u d s pair creation, and the
#: flavour excitation and gluon splitting that give most of its heavy flavour). Too rare to generate.
MEASURE_ONLY_SETTINGS: dict[str, tuple[str, ...]] = {
    "QCD_light": ("HardQCD:all = on", "PhaseSpace:pTHatMin = 20"),
}

ALL_SETTINGS = {**BACKGROUND_SETTINGS, **SIGNAL_SETTINGS, **MEASURE_ONLY_SETTINGS}
BATCH = 100  # events generated between two (vectorised) detector emulations
#: A process whose pilot filter efficiency is below this is not generated further:
#: its events in the mixture are the pilot's kept ones (its Weight carries its
#: physical share). With the isolation of detector_sim this is QCD (about 1e-4).
MIN_MAIN_EFFICIENCY = 2e-3
#: The QCD pilot tries this many times more events than the others.
QCD_PILOT_FACTOR = 3

#: Settings lines removed in version 3, whose signals decay taus naturally.
FORCED_TAU_SETTINGS = ("15:onMode = 3", "15:onPosIfAny = 11 13", "15:onMode = off", "15:onIfAny = 11 13")
MINIMUM_BIAS_SETTINGS = ("SoftQCD:inelastic = on",)
#: Minimum-bias events generated per chunk for the pile-up overlay (about 5 s at 180 events/s).
PILEUP_POOL = 1000
#: The very loose isolation of the l+X@HLT stream (sum pT in Delta R < 0.3 over lepton pT), see the card.
HLT_ISO_MAX = 0.5


@dataclass(frozen=True)
class L1Config:
    """What a sample version simulates (version 2: the defaults, version 3: :data:`V3`)."""

    version: int = 2
    underlying_event: bool = False
    pileup_mu: float = 0.0
    pileup_pool: int = PILEUP_POOL
    natural_taus: bool = False
    hlt_record: bool = False
    prefilter_pt: float = 0.0
    #: below this pilot filter efficiency a process keeps only its pilot events (v2: QCD); v3 generates QCD
    min_main_efficiency: float = MIN_MAIN_EFFICIENCY
    detector: detector_sim.DetectorConfig = field(default_factory=detector_sim.DetectorConfig)
    #: QCD only: sample pTHat with the bias (pTHat / qcd_bias_ref)^qcd_bias_pow, undone by Pythia's event weight
    #: (PhaseSpace:bias2Selection), so hard events, the ones whose b/c leptons pass the trigger, come more often;
    #: 0 = unbiased. Measured in benchmarks/l1_qcd_bias.py, plan in the l1-pythia card.
    qcd_bias_pow: float = 0.0
    qcd_bias_ref: float = QCD_PTHAT_MIN

    def settings(self, process: str) -> tuple[str, ...]:
        """The Pythia settings of ``process`` under this configuration."""
        lines = settings_for(process, self.natural_taus)
        if self.biased(process):
            lines = (*lines, "PhaseSpace:bias2Selection = on", f"PhaseSpace:bias2SelectionPow = {self.qcd_bias_pow:g}",
                     f"PhaseSpace:bias2SelectionRef = {self.qcd_bias_ref:g}")
        return lines

    def biased(self, process: str) -> bool:
        """Whether ``process`` is generated with weighted events (then chunks carry ``EventWeight``)."""
        return process == "QCD" and self.qcd_bias_pow > 0

    @property
    def key(self) -> str:
        """Chunk-cache key: chunks from other settings are regenerated."""
        if self.version == 2:
            return f"l1-v1-ue{int(self.underlying_event)}"  # the key samples of version 2 were made with
        return (f"l1-v{self.version}-ue{int(self.underlying_event)}-pu{self.pileup_mu:g}x{self.pileup_pool}"
                f"-tau{int(self.natural_taus)}-iso{self.detector.iso_max:g}-pre{self.prefilter_pt:g}"
                + (f"-qb{self.qcd_bias_pow:g}x{self.qcd_bias_ref:g}" if self.qcd_bias_pow > 0 else ""))


#: The pre-trigger: the trigger lepton (pT > 23 GeV after a 1-2 % resolution) needs a true one above 20 GeV.
PREFILTER_PT = 20.0
V3 = L1Config(version=3, underlying_event=True, pileup_mu=20.0, natural_taus=True, hlt_record=True,
              prefilter_pt=PREFILTER_PT, min_main_efficiency=1e-5, detector=detector_sim.DetectorConfig(iso_max=HLT_ISO_MAX))


def config_for(version: int, underlying_event: bool = False) -> L1Config:
    if version == 2:
        return L1Config(underlying_event=underlying_event)
    if version == 3:
        return V3
    raise ValueError(f"unknown l1 generator version {version} (2 or 3)")
def pilot_tries(events: int) -> int:
    """Generated events per background process in the pilot (QCD: QCD_PILOT_FACTOR times more)."""
    return int(np.clip(events // 10, 200, 2000))


def settings_for(process: str, natural_taus: bool = False) -> tuple[str, ...]:
    if process not in ALL_SETTINGS:
        raise ValueError(f"unknown l1 process '{process}'")
    if natural_taus:
        return tuple(line for line in ALL_SETTINGS[process] if line not in FORCED_TAU_SETTINGS)
    return ALL_SETTINGS[process]


def forced_branching(process: str, config: L1Config) -> float:
    return 1.0 if config.natural_taus else FORCED_BRANCHING.get(process, 1.0)


class PileupPool:
    """``size`` minimum-bias events generated once; :meth:`overlay` draws Poisson(mu) of them per event.

    Recycling a pool keeps the overlay cheap (a hard event with MPI costs as
    much as four minimum-bias ones); each event draws its own random subset,
    so overlays differ although pool events recur.
    """

    def __init__(self, size: int, seed: int):
        pythia = make_pythia((*MINIMUM_BIAS_SETTINGS,), seed)
        events = []
        while len(events) < size:
            if pythia.next():
                events.append(final_state(pythia.event))
        self.offsets = np.concatenate([[0], np.cumsum([len(e) for e in events])])
        self.flat = np.concatenate(events)

    def overlay(self, rng: np.random.Generator, mu: float) -> tuple[np.ndarray, int]:
        """(pid, px, py, pz, e) rows of Poisson(mu) pool events, and their number."""
        n = int(rng.poisson(mu))
        picks = rng.integers(0, len(self.offsets) - 1, size=n)
        if n == 0:
            return np.zeros((0, 5)), 0
        return np.concatenate([self.flat[self.offsets[i]:self.offsets[i + 1]] for i in picks]), n


def pileup_seed(seed: int) -> int:
    """The minimum-bias pool's Pythia seed: a stream apart from the chunk's hard events."""
    return int(np.random.SeedSequence([int(seed), 20]).generate_state(1)[0] % 900_000_000) + 1


def _has_trigger_candidate(fs: np.ndarray, pt_min: float) -> bool:
    """Whether a generated event has an e or mu above ``pt_min`` (true momentum): the cheap pre-trigger."""
    lepton = (np.abs(fs[:, 0]) == 11) | (np.abs(fs[:, 0]) == 13)
    return bool(np.any(lepton & (np.hypot(fs[:, 1], fs[:, 2]) > pt_min)))


def _batches(process: str, seed: int, config: L1Config):
    """Endless (pythia, Particles (n, 19, 4), trigger mask, extras) batches of ``BATCH`` generated events.

    ``underlying_event=False`` switches multiparton interactions off: they
    cost three quarters of Pythia's time per event here (measured with
    benchmarks/generate_throughput.py). ``extras`` holds ``HLT`` and
    ``NPileup`` when ``config.hlt_record``, else nothing. With
    ``config.prefilter_pt`` an event without a true e or mu above it skips the
    pile-up overlay and the detector (it fails the trigger; rows stay zero).
    """
    mpi = () if config.underlying_event else ("PartonLevel:MPI = off",)
    pythia = make_pythia((*config.settings(process), *mpi), seed)
    # then extras["EventWeight"] and ["EventPtHat"]: Pythia's weight and pTHat of every generated event
    weighted = config.biased(process)
    rng = np.random.default_rng(seed)  # detector smearing, from the same chunk seed
    pool = PileupPool(config.pileup_pool, pileup_seed(seed)) if config.pileup_mu > 0 else None
    pu_rng = np.random.default_rng([seed, 2])
    while True:
        blocks, heavy_blocks, pu_flags, n_pileup, selected, n_batch = [], [], [], [], [], 0
        event_weights: list[tuple[float, float]] = []
        while n_batch < BATCH:
            if not pythia.next():
                continue  # Pythia counts the failure in its own cross-section bookkeeping
            if weighted:  # infoPython() is a snapshot (a kept one would not follow the event): ask each time
                info = pythia.infoPython()
                event_weights.append((float(info.weight()), float(info.pTHat())))
            if config.hlt_record:
                fs, heavy = final_state_and_heavy(pythia.event)
            else:
                fs = final_state(pythia.event)
            if config.prefilter_pt > 0 and not _has_trigger_candidate(fs, config.prefilter_pt):
                n_batch += 1
                continue
            index = len(selected)  # the event's position among those sent to the detector
            selected.append(n_batch)
            if config.hlt_record:
                heavy_blocks.append(np.column_stack([np.full(len(heavy), index, dtype=np.float64), heavy]))
            flags = np.zeros(len(fs), dtype=bool)
            if pool is not None:
                pu, n_pu = pool.overlay(pu_rng, config.pileup_mu)
                fs = np.concatenate([fs, pu])
                flags = np.concatenate([flags, np.ones(len(pu), dtype=bool)])
                n_pileup.append(n_pu)
            blocks.append(np.column_stack([np.full(len(fs), index, dtype=np.float64), fs]))
            pu_flags.append(flags)
            n_batch += 1
        particles = np.zeros((n_batch, detector_sim.N_ROWS, 4), dtype=np.float32)
        passed = np.zeros(n_batch, dtype=bool)
        extras = {"HLT": np.zeros((n_batch, len(detector_sim.HLT_COLUMNS)), dtype=np.float32),
                  "NPileup": np.zeros(n_batch, dtype=np.int16)} if config.hlt_record else {}
        if weighted:
            extras["EventWeight"], extras["EventPtHat"] = np.asarray(event_weights, dtype=np.float64).reshape(-1, 2).T
        if selected:
            n_sel = len(selected)
            flat = np.concatenate(blocks)
            parts = detector_sim.Particles(flat[:, 0].astype(np.int64), flat[:, 1].astype(np.int64),
                                           flat[:, 2], flat[:, 3], flat[:, 4], flat[:, 5],
                                           np.concatenate(pu_flags) if pool is not None else None)
            if config.hlt_record:
                hv = np.concatenate(heavy_blocks) if heavy_blocks else np.zeros((0, 5))
                _pt, heta, hphi = detector_sim.pt_eta_phi(hv[:, 2], hv[:, 3], hv[:, 4])
                heavy_h = detector_sim.HeavyHadrons(hv[:, 0].astype(np.int64), hv[:, 1].astype(np.int64), heta, hphi)
                sel_particles, sel_passed, hlt = detector_sim.simulate_hlt(parts, n_sel, rng, config.detector, heavy_h)
                extras["HLT"][selected] = hlt
                if pool is not None:
                    extras["NPileup"][selected] = n_pileup
            else:
                sel_particles, sel_passed = detector_sim.simulate(parts, n_sel, rng, config.detector)
            particles[selected], passed[selected] = sel_particles, sel_passed
        yield pythia, particles, passed, extras


def _meta(pythia, n_tried: int, n_kept: int) -> dict[str, np.ndarray]:
    sigma, sigma_err = sigma_gen_mb(pythia)
    return {"_sigma_gen_mb": np.asarray(sigma), "_sigma_err_mb": np.asarray(sigma_err),
            "_n_tried": np.asarray(n_tried), "_n_kept": np.asarray(n_kept)}


def make_chunk(process: str, n_events: int, seed: int, underlying_event: bool = False,
               max_tries_per_event: int = 5000, config: L1Config | None = None) -> dict[str, np.ndarray]:
    """``n_events`` triggered events of ``process`` with Pythia seed ``seed`` (a run_chunked worker)."""
    config = config or L1Config(underlying_event=underlying_event)
    kept: list[np.ndarray] = []
    kept_extras: dict[str, list[np.ndarray]] = {}
    n_kept = n_tried = 0
    wsum_tried = 0.0
    pythia = None
    for pythia, particles, passed, extras in _batches(process, seed, config):
        index = np.flatnonzero(passed)
        need = n_events - n_kept
        if len(index) >= need:
            # Tried events count up to the last one kept, so kept/tried is unbiased.
            stop = int(index[need - 1]) + 1
            index = index[:need]
        else:
            stop = len(passed)
        n_tried += stop
        if "EventWeight" in extras:
            wsum_tried += float(extras["EventWeight"][:stop].sum())
        kept.append(particles[index])
        for name, values in extras.items():
            kept_extras.setdefault(name, []).append(values[index])
        n_kept += len(index)
        if n_tried > max_tries_per_event * max(n_events, 1) and n_kept < n_events:
            raise RuntimeError(f"{process}: only {n_kept} of {n_events} events passed the trigger in {n_tried} tries")
        if n_kept >= n_events:
            break
    out = {"Particles": np.concatenate(kept), **{k: np.concatenate(v) for k, v in kept_extras.items()},
           **_meta(pythia, n_tried, n_kept)}
    if "EventWeight" in out:
        out |= _weight_sums(wsum_tried, float(out["EventWeight"].sum()))
    return out


def _weight_sums(tried: float, kept: float) -> dict[str, np.ndarray]:
    """Weighted counts of a chunk of weighted events ("_n_" keys: chunks add them up)."""
    return {"_n_wsum_tried": np.asarray(tried), "_n_wsum_kept": np.asarray(kept)}


def pilot_chunk(process: str, n_tried: int, seed: int, underlying_event: bool = False,
                config: L1Config | None = None) -> dict[str, np.ndarray]:
    """``n_tried`` GENERATED events of ``process``, each with its trigger decision (``passed``).

    The pilot fixes the number of tries, not of kept events, so that a process
    with a tiny filter efficiency (QCD) costs a bounded time.
    """
    config = config or L1Config(underlying_event=underlying_event)
    blocks, flags, pythia = [], [], None
    extra_blocks: dict[str, list[np.ndarray]] = {}
    for pythia, particles, passed, extras in _batches(process, seed, config):
        blocks.append(particles)
        flags.append(passed)
        for name, values in extras.items():
            extra_blocks.setdefault(name, []).append(values)
        if sum(len(f) for f in flags) >= n_tried:
            break
    particles, passed = np.concatenate(blocks)[:n_tried], np.concatenate(flags)[:n_tried]
    extras = {k: np.concatenate(v)[:n_tried] for k, v in extra_blocks.items()}
    out = {"Particles": particles, "passed": passed, **extras, **_meta(pythia, n_tried, int(passed.sum()))}
    if "EventWeight" in extras:
        w = extras["EventWeight"]
        out |= _weight_sums(float(w.sum()), float(w[passed].sum()))
    return out


def filtered_sigma_pb(meta: dict[str, np.ndarray]) -> tuple[float, float]:
    """(sigma x filter efficiency in pb, filter efficiency) from a process's merged metadata.

    Weighted events (a pTHat bias): the efficiency is the passing share of the
    summed event weights (Pythia's sigmaGen already is the unbiased cross section).
    """
    if "_n_wsum_tried" in meta:
        kept, tried = float(meta["_n_wsum_kept"]), float(meta["_n_wsum_tried"])
    else:
        kept, tried = float(meta["_n_kept"]), float(meta["_n_tried"])
    eff = kept / tried if tried > 0 else 0.0
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
            f.create_dataset(name, data=data, **({"compression": "gzip", "compression_opts": 4} if data.ndim > 1 else {}))
        if extra and "HLT" in extra:
            f.create_dataset("HLT_Names", data=np.array([n.encode() for n in detector_sim.HLT_COLUMNS]))
        for key, value in attrs.items():
            f.attrs[key] = value if isinstance(value, (int, float, str)) else json.dumps(value)
    tmp.replace(path)
    return path


def _common_attrs(seed: int, config: L1Config) -> dict:
    return {
        "generator_version": config.version,
        "pileup_mu": config.pileup_mu,
        "pileup_pool_per_chunk": config.pileup_pool if config.pileup_mu > 0 else 0,
        "natural_tau_decays": int(config.natural_taus),
        "generator": "Pythia 8 (pythia8mc) + hepad-bench detector emulation",
        "seed": int(seed),
        "sqrt_s_GeV": 13000.0,
        "versions": {"pythia8mc": package_version("pythia8mc"), "fastjet": package_version("fastjet"),
                     "hepad-bench": __version__},
        "detector": config.detector.__dict__,
        "common_settings": list(COMMON_SETTINGS),
        "created_unix": int(time.time()),
    }


def generate(out: Path, events: int, seed: int, signal_events: int, workers: int, progress: Progress,
             chunk_size: int = 1000, underlying_event: bool = False, config: L1Config | None = None) -> list[Path]:
    """Write the background cocktail (``events`` events) and four signals (``signal_events`` each) under ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    config = config or L1Config(underlying_event=underlying_event)
    underlying_event = config.underlying_event
    key = config.key
    backgrounds = list(BACKGROUND_SETTINGS)
    worker_pilot = partial(pilot_chunk, config=config)
    worker_main = partial(make_chunk, config=config)
    extra_names = ("HLT", "NPileup") if config.hlt_record else ()
    weighted = [p for p in BACKGROUND_SETTINGS if config.biased(p)]  # processes with Pythia event weights

    n_pilot = pilot_tries(events)
    pilot_jobs = [ProcessJob(p, n_pilot * (QCD_PILOT_FACTOR if p == "QCD" else 1)) for p in backgrounds]
    pilot = run_chunked(out, "l1-pilot", pilot_jobs, worker_pilot, seed, workers, progress,
                        chunk_size=max(100, n_pilot // 2), settings_key=key,
                        stream="pilot")  # its kept events join the sample: they must not replay the main run's
    pilot_kept = {p: pilot[p]["Particles"][pilot[p]["passed"]] for p in backgrounds}
    pilot_extras = {p: {k: pilot[p][k][pilot[p]["passed"]] for k in (*extra_names, *(("EventWeight",) * (p in weighted)))}
                    for p in backgrounds}
    pilot_sigma = {p: filtered_sigma_pb(pilot[p])[0] for p in backgrounds}
    targets = mixture_counts(pilot_sigma, events)
    main_jobs = []
    for p in backgrounds:
        eff = filtered_sigma_pb(pilot[p])[1]
        more = targets[p] - len(pilot_kept[p]) if eff >= config.min_main_efficiency else 0
        main_jobs.append(ProcessJob(p, max(0, more)))
    progress.log("pilot sigma x eff [pb]: " + ", ".join(f"{p} {v:.4g}" for p, v in pilot_sigma.items()))
    progress.log("background events per process: " + ", ".join(f"{p} {n}" for p, n in targets.items()))

    main = run_chunked(out, "l1-background", main_jobs, worker_main, seed, workers, progress,
                       chunk_size=chunk_size, settings_key=key)

    blocks, process_ids, weights, per_process = [], [], [], {}
    extra_blocks: dict[str, list[np.ndarray]] = {k: [] for k in extra_names}
    for i, p in enumerate(backgrounds):
        parts = [pilot_kept[p]] + ([main[p]["Particles"]] if "Particles" in main[p] else [])
        ev = np.concatenate(parts)[: targets[p]]
        for k in extra_names:
            pieces = [pilot_extras[p][k]] + ([main[p][k]] if k in main[p] else [])
            extra_blocks[k].append(np.concatenate(pieces)[: targets[p]])
        tried, kept = float(pilot[p]["_n_tried"]), float(pilot[p]["_n_kept"])
        sig_w = [(float(pilot[p]["_sigma_gen_mb"]), tried)]
        if "_n_tried" in main[p]:
            tried, kept = tried + float(main[p]["_n_tried"]), kept + float(main[p]["_n_kept"])
            sig_w.append((float(main[p]["_sigma_gen_mb"]), float(main[p]["_n_tried"])))
        sigma_mb = sum(s * w for s, w in sig_w) / sum(w for _s, w in sig_w)
        eff = kept / tried
        event_w = None
        if p in weighted:  # weighted events: the passing share of the weights, and per-event shares of it
            w_tried = sum(float(r[p].get("_n_wsum_tried", 0.0)) for r in (pilot, main))
            w_kept = sum(float(r[p].get("_n_wsum_kept", 0.0)) for r in (pilot, main))
            eff = w_kept / w_tried if w_tried > 0 else 0.0
            pieces = [pilot_extras[p]["EventWeight"]] + ([main[p]["EventWeight"]] if "EventWeight" in main[p] else [])
            event_w = np.concatenate(pieces)[: targets[p]]
        sigma_eff_pb = sigma_mb * MB_TO_PB * eff
        per_process[p] = {"sigma_gen_pb": sigma_mb * MB_TO_PB, "filter_efficiency": eff, "sigma_x_eff_pb": sigma_eff_pb,
                          "n_tried": tried, "n_passed": kept, "n_events": len(ev),
                          "settings": list(config.settings(p))}
        if kept == 0:  # nothing passed: say how small it is (95 % CL upper limit, 3 events)
            per_process[p]["sigma_x_eff_pb_upper_95"] = sigma_mb * MB_TO_PB * 3.0 / tried
        blocks.append(ev)
        process_ids.append(np.full(len(ev), i, dtype=np.int8))
        if event_w is not None and event_w.sum() > 0:  # sum over the process stays sigma x eff
            weights.append(sigma_eff_pb * event_w / event_w.sum())
        else:
            weights.append(np.full(len(ev), sigma_eff_pb / max(len(ev), 1)))
    total_sigma = sum(v["sigma_x_eff_pb"] for v in per_process.values())
    n_total = sum(v["n_events"] for v in per_process.values())
    for v in per_process.values():
        v["physical_fraction"] = v["sigma_x_eff_pb"] / total_sigma
        v["sample_fraction"] = v["n_events"] / max(n_total, 1)
    progress.log("background mixture: " + ", ".join(
        f"{p} {v['physical_fraction']:.3%} (sigma {v['sigma_gen_pb']:.4g} pb, eff {v['filter_efficiency']:.3g}, "
        f"{v['n_events']} events)" for p, v in per_process.items()))

    attrs = {**_common_attrs(seed, config), "underlying_event": int(underlying_event), "process_names": backgrounds,
             "processes": per_process,
             "mixing": "pilot sigma x eff sets per-process counts; Weight = sigma x eff / N (pb)"}
    # Shuffled (deterministically) like the public file, so any first N events are a mixture.
    order = np.random.default_rng([seed, 1]).permutation(n_total)
    written = [_write_h5(out / BACKGROUND_FILE, np.concatenate(blocks)[order], attrs,
                         {"Process": np.concatenate(process_ids)[order], "Weight": np.concatenate(weights)[order],
                          **{k: np.concatenate(v)[order] for k, v in extra_blocks.items()}})]

    if signal_events > 0:
        signals = run_chunked(out, "l1-signals", [ProcessJob(s, signal_events) for s in SIGNAL_SETTINGS], worker_main,
                              seed, workers, progress, chunk_size=chunk_size, settings_key=key)
        for s, data in signals.items():
            sigma_pb, eff = filtered_sigma_pb(data)
            branching = forced_branching(s, config)
            info = {"sigma_gen_pb": float(data["_sigma_gen_mb"]) * MB_TO_PB, "filter_efficiency": eff,
                    "forced_branching": branching, "sigma_x_eff_pb": sigma_pb * branching, "n_tried": float(data["_n_tried"]),
                    "settings": list(settings_for(s, config.natural_taus))}
            progress.log(f"{s}: sigma {info['sigma_gen_pb']:.4g} pb, filter efficiency {eff:.3g}")
            written.append(_write_h5(out / f"{s}.h5", data["Particles"],
                                     {**_common_attrs(seed, config), "underlying_event": int(underlying_event),
                                      "process": info}, {k: data[k] for k in extra_names}))
    return written
