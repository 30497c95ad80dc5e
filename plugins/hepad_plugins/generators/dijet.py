"""LHC-Olympics-2020-R&D-like dijet events: Pythia 8 + FastJet, written as the LHCO features table.

Physics (pp at 13 TeV, particle level, no detector simulation, no pile-up):

* Background ``qcd``: ``HardQCD:all`` (all 2 -> 2 QCD processes) generated with
  ``PhaseSpace:pTHatMin = 1000 GeV`` (the GENERATION cut). The FILTER keeps
  events with at least two jets and a leading jet pT > 1.2 TeV (the LHCO R&D
  trigger). The generation cut sits below the filter because a large-radius
  jet collects ISR and MPI radiation and can pass 1.2 TeV when the hard
  scattering had less: in a 2,500-event study generated at pTHatMin = 800 GeV,
  12% (+-2%) of the events passing the filter had pTHat < 1000 GeV (5% below
  900 GeV), mostly with a leading jet just above 1.2 TeV. So the sample
  slightly under-populates the first ~100 GeV above the trigger threshold (and
  the low end of mjj, far below the 3.3-3.7 TeV signal region); the price of
  a lower cut is CPU: 45% of generated events pass at 1000 GeV, 24% at 900 GeV.
  The LHCO trigger also asks |eta| < 2.5 of the 1.2 TeV jet; at 13 TeV that
  holds by kinematics (such a jet would carry more than 7 TeV of energy).
* Signal ``signal``: the LHCO topology W'(3.5 TeV) -> X(500 GeV) Y(100 GeV),
  X, Y -> q q, built from Pythia's W' (``NewGaugeBoson:ffbar2Wprime``, f fbar'
  -> W'+-, SM-like couplings to quarks) with m(W') = 3500 GeV and its decay
  table replaced by the single channel W'+ -> H+ A0 (PDG 37 and 36 of
  Pythia's two-Higgs-doublet set, ``Higgs:useBSM = on``; W'- -> H- A0 by
  conjugation), with m(H+) = 500 GeV as X and m(A0) = 100 GeV as Y. X is
  forced to u dbar or c sbar (50% each), Y to d dbar, u ubar or s sbar
  (1/3 each). All three widths are 1% of the mass; the channels use
  ``meMode = 100`` (partial width = total width x the branching ratio given),
  so Pythia needs no couplings for them. (A neutral Z' does not work here:
  Pythia's f fbar -> gamma*/Z/Z' cross section only counts fermion and WW
  final states, and vanishes for Z' -> scalars.) Same filter as the background.

Jets: all visible final-state particles (neutrinos removed) with |eta| < 4.9
(the calorimeter acceptance of ATLAS/CMS) are clustered with anti-kT, R = 1.0
(E-scheme) by the ``fastjet`` package, many events per call; jets need
pT > 20 GeV. The two leading-pT jets are stored, jet 1 = the leading-pT jet
(consumers such as CATHODE use min/max of mj1, mj2, so the order matters only
for the momentum columns). N-subjettiness tau1..3 (beta = 1, R0 = 1.0,
exclusive-kT axes, normalised by sum pT * R0) comes from
:mod:`hepad_plugins.generators.nsubjettiness`.

Constituents: the two leading jets' constituents of every event are also written
in the LHC Olympics raw layout, ``events_anomalydetection_v2.h5`` (pandas fixed
format, key ``"df"``, 2101 float32 columns: up to 700 particles as pT [GeV], eta,
phi, pT-ordered and zero-padded, then the label; rows in the order of the
features file). LHCO lists every particle-flow candidate of the event (up to
700); we keep only the two jets' constituents: that is all the jet features
need. The particles are written massless, as in the LHCO file, keeping pT,
rapidity and azimuth (so re-clustering finds the same jets; only energies and
jet masses shrink a little); the GAN-AE features
(:mod:`~hepad_plugins.generators.jet_features`) are computed from this layout by
the same code for generated and public data.

Output: ``events_anomalydetection_v2.features.h5`` (pandas, key ``"df"``,
columns exactly those of the public LHCO R&D features file, label 0 = QCD,
1 = signal, rows shuffled with the seed), plus the generation record (settings,
seed, cuts, cross sections, versions) as the ``hepad_generation`` attribute of
the key and as the JSON sidecar ``events_anomalydetection_v2.features.json``.
Generation runs in resumable, seeded chunks (:mod:`~hepad_plugins.generators.chunked`).
"""

from __future__ import annotations

import hashlib
import json
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

from hepad_bench.contracts import Progress

from .chunked import ProcessJob, run_chunked

FEATURES_FILE = "events_anomalydetection_v2.features.h5"
SIDECAR_FILE = "events_anomalydetection_v2.features.json"
COLUMNS = [
    "pxj1", "pyj1", "pzj1", "mj1", "tau1j1", "tau2j1", "tau3j1",
    "pxj2", "pyj2", "pzj2", "mj2", "tau1j2", "tau2j2", "tau3j2",
    "label",
]  # fmt: skip

ECM_GEV = 13000.0
PTHAT_MIN_GEV = 1000.0  # generation cut of the QCD background (see the module docstring)
LEADING_JET_PT_MIN_GEV = 1200.0  # filter, both processes
JET_R = 1.0
JET_PT_MIN_GEV = 20.0
PARTICLE_ETA_MAX = 4.9
M_WPRIME, M_X, M_Y = 3500.0, 500.0, 100.0
CHUNK_EVENTS = 500
#: Events showered per FastJet call (the filter keeps a fraction of them).
_BATCH = 200
_NEUTRINOS = np.array([12, 14, 16])

_COMMON_SETTINGS = [
    f"Beams:eCM = {ECM_GEV:g}",
    "Print:quiet = on",
    "Next:numberCount = 0",
    "Next:numberShowEvent = 0",
    "Next:numberShowInfo = 0",
    "Next:numberShowProcess = 0",
]
PROCESS_SETTINGS: dict[str, list[str]] = {
    "qcd": ["HardQCD:all = on", f"PhaseSpace:pTHatMin = {PTHAT_MIN_GEV:g}"],
    "signal": [
        "NewGaugeBoson:ffbar2Wprime = on",
        "Higgs:useBSM = on",  # gives H+ (37) and A0 (36) their resonance treatment
        f"34:m0 = {M_WPRIME:g}",
        f"34:mWidth = {0.01 * M_WPRIME:g}",
        "34:mMin = 2500",
        "34:mMax = 4500",
        # onMode bRatio meMode products; meMode 100: partial width = total width x the given ratio.
        "34:oneChannel = 1 1.0 100 37 36",
        f"37:m0 = {M_X:g}",
        f"37:mWidth = {0.01 * M_X:g}",
        f"37:mMin = {M_X - 50:g}",
        f"37:mMax = {M_X + 50:g}",
        "37:oneChannel = 1 0.5 100 2 -1",
        "37:addChannel = 1 0.5 100 4 -3",
        f"36:m0 = {M_Y:g}",
        f"36:mWidth = {0.01 * M_Y:g}",
        f"36:mMin = {M_Y - 10:g}",
        f"36:mMax = {M_Y + 10:g}",
        "36:oneChannel = 1 0.3333 100 1 -1",
        "36:addChannel = 1 0.3333 100 2 -2",
        "36:addChannel = 1 0.3334 100 3 -3",
    ],
}
LABELS = {"qcd": 0, "signal": 1}


def pythia_settings(process: str, seed: int) -> list[str]:
    """Every Pythia setting of one chunk of ``process``."""
    if process not in PROCESS_SETTINGS:
        raise ValueError(f"unknown dijet process '{process}' (known: {', '.join(PROCESS_SETTINGS)})")
    return [*_COMMON_SETTINGS, *PROCESS_SETTINGS[process], "Random:setSeed = on", f"Random:seed = {seed}"]


def _make_pythia(process: str, seed: int):
    import pythia8mc

    pythia = pythia8mc.Pythia("", False)  # no banner
    for line in pythia_settings(process, seed):
        if not pythia.readString(line):
            raise RuntimeError(f"Pythia rejected the setting '{line}'")
    if not pythia.init():
        raise RuntimeError(f"Pythia failed to initialise the {process} process")
    return pythia


def _visible_final_state(pythia) -> np.ndarray:
    """(n, 4) px, py, pz, E of the visible final-state particles with |eta| < PARTICLE_ETA_MAX.

    The binding has no array access to the event record; one list comprehension over
    ``Event.particles()`` calling only the accessors we need is the fastest route found
    (the visibility and eta tests are done afterwards in numpy).
    """
    rows = [(p.idAbs(), p.px(), p.py(), p.pz(), p.e()) for p in pythia.event.particles() if p.isFinal()]
    a = np.array(rows, dtype=np.float64).reshape(-1, 5)
    pt = np.hypot(a[:, 1], a[:, 2])
    p_abs = np.sqrt(pt**2 + a[:, 3] ** 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        eta = np.arctanh(np.where(p_abs > 0, a[:, 3] / np.where(p_abs > 0, p_abs, 1.0), 0.0))
    keep = ~np.isin(a[:, 0], _NEUTRINOS) & (np.abs(eta) < PARTICLE_ETA_MAX) & (pt > 0)
    return a[keep, 1:]


def _raw_constituents(lead_constituents, n: int, sel: np.ndarray) -> np.ndarray:
    """(n, 2100) float32: the two jets' constituents of events ``sel`` as massless particles, LHCO layout.

    The LHCO raw file lists massless particles; ours have masses. Each is
    written as the massless particle with the same pT, azimuth and RAPIDITY
    (stored in the eta slot, where for a massless particle eta = y): FastJet
    measures distances in (y, phi) and adds four-momenta, so re-clustering the
    written particles finds the same jets with the same px, py; only energies,
    pz and hence jet masses change (E drops from mT cosh y to pT cosh y).
    """
    import awkward as ak

    from hepad_plugins.datasets.lhco_raw import MAX_PARTICLES, raw_matrix

    both = ak.flatten(lead_constituents, axis=2)  # events * var: jet 1 and jet 2 constituents together
    counts = ak.to_numpy(ak.num(both, axis=1))
    width = max(int(counts.max()) if len(counts) else 0, 1)
    comp = {c: ak.to_numpy(ak.flatten(both[c])).astype(np.float64) for c in ("px", "py", "pz", "E")}
    pt = np.hypot(comp["px"], comp["py"])
    rapidity = 0.5 * np.log((comp["E"] + comp["pz"]) / (comp["E"] - comp["pz"]))  # pT > 0, so E > |pz|
    phi = np.arctan2(comp["py"], comp["px"])
    rows = np.repeat(np.arange(len(counts)), counts)
    cols = np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)
    grid = [np.zeros((len(counts), width)) for _ in range(3)]
    for g, v in zip(grid, (pt, rapidity, phi)):
        g[rows, cols] = v
    out = np.zeros((n, 3 * MAX_PARTICLES), dtype=np.float32)
    out[sel] = raw_matrix(*grid, np.zeros(len(counts)))[:, :-1]
    return out


def cluster_dijets(events: list[np.ndarray], constituents_out: bool = False) -> dict[str, np.ndarray]:
    """Anti-kT R=1.0 jets of many events; the two leading jets' features and a pass flag.

    ``events`` holds one (n, 4) px, py, pz, E array per event. Returns arrays with one
    row per event: ``passed`` (>= 2 jets and leading pT > 1.2 TeV), and for jets 1, 2
    px, py, pz, m, tau1..3 (zeros where an event has fewer jets). With
    ``constituents_out``, also ``raw``: the two jets' constituents in the LHCO raw
    layout (:func:`_raw_constituents`; zeros for events that fail).
    """
    import awkward as ak
    import fastjet
    import vector

    from .nsubjettiness import nsubjettiness_batch

    n = len(events)
    counts = np.array([len(e) for e in events])
    flat = np.concatenate(events) if n else np.zeros((0, 4))
    particles = ak.unflatten(
        ak.zip(
            {"px": flat[:, 0], "py": flat[:, 1], "pz": flat[:, 2], "E": flat[:, 3]},
            with_name="Momentum4D",
            behavior=vector.backends.awkward.behavior,
        ),
        counts,
    )
    sequence = fastjet.ClusterSequence(particles, fastjet.JetDefinition(fastjet.antikt_algorithm, JET_R))
    jets = sequence.inclusive_jets(min_pt=JET_PT_MIN_GEV)
    constituents = sequence.constituents(min_pt=JET_PT_MIN_GEV)
    pt = np.sqrt(jets.px**2 + jets.py**2)
    order = ak.argsort(pt, axis=1, ascending=False)[:, :2]
    lead_jets = jets[order]
    lead_constituents = constituents[order]
    n_jets = ak.to_numpy(ak.num(jets, axis=1))
    lead_pt = ak.to_numpy(ak.fill_none(ak.firsts(pt[order]), 0.0))
    passed = (n_jets >= 2) & (lead_pt > LEADING_JET_PT_MIN_GEV)

    out: dict[str, np.ndarray] = {"passed": passed}
    sel = np.flatnonzero(passed)
    if constituents_out:
        out["raw"] = _raw_constituents(lead_constituents[sel], n, sel)
    for slot in (0, 1):
        jet = lead_jets[sel, slot]
        px, py, pz, e = (ak.to_numpy(jet[c]).astype(np.float64) for c in ("px", "py", "pz", "E"))
        taus = nsubjettiness_batch(lead_constituents[sel, slot], n_max=3)
        values = {
            "px": px, "py": py, "pz": pz,
            "m": np.sqrt(np.maximum(e**2 - px**2 - py**2 - pz**2, 0.0)),
            "tau1": taus[:, 0], "tau2": taus[:, 1], "tau3": taus[:, 2],
        }  # fmt: skip
        for name, v in values.items():
            column = np.zeros(n)
            column[sel] = v
            out[f"{name}j{slot + 1}"] = column
    return out


def make_chunk(process: str, n_events: int, chunk_seed: int) -> dict[str, np.ndarray]:
    """Generate ``n_events`` filtered events of ``process`` with Pythia seed ``chunk_seed`` (for run_chunked).

    The result holds the features columns and ``raw`` (the constituents, see :func:`cluster_dijets`).
    """
    pythia = _make_pythia(process, chunk_seed)
    kept: list[dict[str, np.ndarray]] = []
    n_kept = n_tried = n_failed = 0
    start = time.perf_counter()
    while n_kept < n_events:
        batch, tried_at = [], []  # tried_at[i]: events tried up to and including batch event i
        # Shower about what the filter needs (most events pass) to waste little past the last kept event.
        batch_size = min(_BATCH, max(20, 3 * (n_events - n_kept)))
        while len(batch) < batch_size:
            n_tried += 1
            if not pythia.next():
                n_failed += 1
                continue
            batch.append(_visible_final_state(pythia))
            tried_at.append(n_tried)
        features = cluster_dijets(batch, constituents_out=True)
        idx = np.flatnonzero(features["passed"])[: n_events - n_kept]
        kept.append({k: v[idx] for k, v in features.items() if k != "passed"})
        n_kept += len(idx)
        if n_kept == n_events:
            # Events showered after the last kept one are not part of the sample:
            # leave them out of the count so that n_kept / n_tried is the filter efficiency.
            n_tried = tried_at[idx[-1]] if len(idx) else n_tried
        elif n_tried > 1000 * max(n_events, 1) + 10 * _BATCH:
            raise RuntimeError(f"{process}: filter efficiency below 1e-3, check the settings")
    info = pythia.infoPython()
    result = {k: np.concatenate([c[k] for c in kept]) for k in kept[0]}
    result["label"] = np.full(n_events, LABELS[process], dtype=np.int64)
    result["_sigma_gen_mb"] = np.asarray(info.sigmaGen())
    result["_sigma_err_mb"] = np.asarray(info.sigmaErr())
    result["_n_tried"] = np.asarray(n_tried)
    result["_n_failed"] = np.asarray(n_failed)
    result["_n_kept"] = np.asarray(n_kept)
    result["_seconds"] = np.asarray(time.perf_counter() - start)
    return result


def _versions() -> dict[str, str]:
    found = {}
    for package in ("pythia8mc", "fastjet", "awkward", "numpy", "pandas", "hepad-bench"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "unknown"
    return found


def _settings_key() -> str:
    """Changes whenever anything that shapes a chunk changes (stale chunks are then regenerated)."""
    text = json.dumps(
        {
            "settings": PROCESS_SETTINGS, "common": _COMMON_SETTINGS, "filter": LEADING_JET_PT_MIN_GEV,
            "jet": [JET_R, JET_PT_MIN_GEV, PARTICLE_ETA_MAX], "batch": _BATCH, "format": 3,
        },
        sort_keys=True,
    )  # fmt: skip
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def generate(out: Path, events: int, seed: int, signal_events: int, workers: int, progress: Progress,
             constituents: bool = True) -> list[Path]:
    """Generate ``events`` QCD + ``signal_events`` signal dijet events into ``out``; return the files written.

    With ``constituents`` (default) the two leading jets' constituents are written too, as
    ``events_anomalydetection_v2.h5`` in the LHCO raw layout, rows in the same order as the features file.
    """
    if events < 0 or signal_events < 0 or events + signal_events == 0:
        raise ValueError("need a positive number of events")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    # Signal first: it is small, so an interrupted run soon holds all of it and any prefix of QCD chunks.
    jobs = [ProcessJob(name, n) for name, n in (("signal", signal_events), ("qcd", events)) if n > 0]
    start = time.perf_counter()
    results = run_chunked(
        out, "dijet", jobs, make_chunk, seed=seed, workers=workers, progress=progress,
        chunk_size=CHUNK_EVENTS, settings_key=_settings_key(),
    )  # fmt: skip
    wall = time.perf_counter() - start

    import pandas as pd

    table = pd.concat(
        [pd.DataFrame({c: results[job.name][c] for c in COLUMNS}) for job in jobs], ignore_index=True
    )
    permutation = np.random.default_rng(seed).permutation(len(table))
    table = table.iloc[permutation].reset_index(drop=True)
    table = table.astype({c: "float64" for c in COLUMNS if c != "label"} | {"label": "int64"})

    processes = {}
    for job in jobs:
        r = results[job.name]
        tried = float(r["_n_tried"])
        efficiency = job.n_events / tried if tried else float("nan")
        processes[job.name] = {
            "label": LABELS[job.name],
            "events": job.n_events,
            "pythia_settings": pythia_settings(job.name, seed=0)[:-2],
            "sigma_gen_mb": float(r["_sigma_gen_mb"]),
            "sigma_err_mb_one_chunk": float(r["_sigma_err_mb"]),
            "events_tried": int(tried),
            "filter_efficiency": efficiency,
            "sigma_after_filter_pb": float(r["_sigma_gen_mb"]) * efficiency * 1e9,
            "chunks": int(r["_n_chunks"]),
            "mean_seconds_per_chunk": float(r["_seconds"]),
        }
    record = {
        "generator": "hepad_plugins.generators.dijet",
        "seed": seed,
        "events": {"qcd": events, "signal": signal_events},
        "cuts": {
            "generation_qcd_pTHatMin_GeV": PTHAT_MIN_GEV,
            "filter_leading_jet_pt_min_GeV": LEADING_JET_PT_MIN_GEV,
            "filter_min_jets": 2,
            "jet_algorithm": f"anti-kT R={JET_R}, E-scheme, jet pT > {JET_PT_MIN_GEV:g} GeV",
            "particles": f"visible final state (no neutrinos), |eta| < {PARTICLE_ETA_MAX}",
            "nsubjettiness": "beta=1, R0=1.0, exclusive-kT axes, tau_N = sum pT dR_min / sum pT R0",
            "jet_order": "j1 = leading-pT jet",
            "constituents": "two leading jets' constituents, massless at the same (pT, y, phi), LHCO raw layout"
            if constituents else "not written",
        },
        "processes": processes,
        "versions": _versions(),
        "wall_seconds": wall,
        "rows": len(table),
        "columns": COLUMNS,
    }

    h5_path = out / FEATURES_FILE
    tmp = h5_path.with_suffix(".h5.tmp")
    tmp.unlink(missing_ok=True)
    table.to_hdf(tmp, key="df", mode="w", format="table", complevel=5, complib="blosc:lz4")
    with pd.HDFStore(tmp, mode="a") as store:
        store.get_storer("df").attrs.hepad_generation = json.dumps(record)
    tmp.replace(h5_path)
    sidecar = out / SIDECAR_FILE
    sidecar.write_text(json.dumps(record, indent=2) + "\n")
    progress.log(f"dijet: wrote {len(table)} events to {h5_path}")
    written = [h5_path, sidecar]
    if constituents:
        from hepad_plugins.datasets.lhco_raw import RAW_FILE, write_raw

        raw = np.concatenate([results[job.name]["raw"] for job in jobs])[permutation]
        matrix = np.concatenate([raw, table["label"].to_numpy(np.float32)[:, None]], axis=1)
        write_raw(out / RAW_FILE, matrix)
        progress.log(f"dijet: wrote the two leading jets' constituents to {out / RAW_FILE}")
        written.insert(1, out / RAW_FILE)
    return written
