"""A simple, vectorised detector emulation producing the ADC2021 event layout.

Input: the visible and invisible final-state particles of a batch of events as
flat numpy arrays (``event`` index, PDG ``pid``, ``px, py, pz, e`` in GeV).
Output: ``Particles`` (n_events, 19, 4) in the ADC2021 layout, plus the
trigger decision.

What is emulated (every number is a field of :class:`DetectorConfig`):

* Acceptance: visible particles (not neutrinos) with |eta| < 4.9 reach the
  detector; neutrinos escape.
* Electrons (|pid| 11) with pT > 3 GeV, |eta| < 3 and muons (|pid| 13) with
  pT > 3 GeV, |eta| < 2.1 that are *isolated*: the scalar pT sum of all other
  visible particles within Delta R < 0.3 is below 0.1 times the lepton pT
  (true momenta). Non-isolated leptons are left to the jets.
* Resolution: Gaussian smearing of pT only (angles are kept):
  electrons sigma/pT = 2 %, muons sigma/pT = 1 % (+) 1e-4 pT/GeV (in quadrature),
  jets sigma/pT = 100 %/sqrt(pT/GeV) (+) 5 %. Acceptance cuts use smeared pT.
* Jets: anti-kT R = 0.4 (FastJet) of the visible particles that are not
  isolated leptons, kept with smeared pT > 15 GeV and |eta| < 4.
* MET: minus the vector sum of the visible particles in acceptance, with the
  smearing of the reconstructed leptons and of all clustered jets propagated
  (MET_vec = -sum(visible pT) - sum(smeared - true) over those objects).
* Trigger: the leading isolated electron or muon has pT > 23 GeV.
* Layout: row 0 MET (pT, 0, phi, 1), rows 1-4 electrons, 5-8 muons,
  9-18 jets, each pT-ordered, columns (pT, eta, phi, class) with class ids
  1 MET, 2 e, 3 mu, 4 jet; empty slots all zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

N_ELECTRONS, N_MUONS, N_JETS = 4, 4, 10
N_ROWS = 1 + N_ELECTRONS + N_MUONS + N_JETS
CLASS_MET, CLASS_E, CLASS_MU, CLASS_JET = 1, 2, 3, 4
ELECTRON_ROWS = slice(1, 1 + N_ELECTRONS)
MUON_ROWS = slice(1 + N_ELECTRONS, 1 + N_ELECTRONS + N_MUONS)
JET_ROWS = slice(1 + N_ELECTRONS + N_MUONS, N_ROWS)
NEUTRINOS = (12, 14, 16)


@dataclass(frozen=True)
class DetectorConfig:
    """Cuts and resolutions of the emulation (defaults: see the module docstring)."""

    eta_acceptance: float = 4.9
    electron_pt_min: float = 3.0
    electron_eta_max: float = 3.0
    muon_pt_min: float = 3.0
    muon_eta_max: float = 2.1
    iso_dr: float = 0.3
    iso_max: float = 0.1
    electron_res: float = 0.02
    muon_res: float = 0.01
    muon_res_slope: float = 1e-4
    jet_res_stochastic: float = 1.0
    jet_res_constant: float = 0.05
    jet_r: float = 0.4
    jet_pt_min: float = 15.0
    jet_eta_max: float = 4.0
    trigger_pt_min: float = 23.0
    smear: bool = True


@dataclass
class Particles:
    """Flat final-state particles of a batch of events (``event`` sorted ascending)."""

    event: np.ndarray
    pid: np.ndarray
    px: np.ndarray
    py: np.ndarray
    pz: np.ndarray
    e: np.ndarray


def pt_eta_phi(px: np.ndarray, py: np.ndarray, pz: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pt = np.hypot(px, py)
    # arcsinh(pz/pt) is the pseudorapidity; guard pt = 0 (beam-line particles) with a large |eta|.
    with np.errstate(divide="ignore", invalid="ignore"):
        eta = np.where(pt > 0, np.arcsinh(pz / np.where(pt > 0, pt, 1.0)), np.sign(pz) * 1e3)
    return pt, eta, np.arctan2(py, px)


def delta_phi(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a - b + np.pi) % (2 * np.pi) - np.pi


def isolation(lep_event: np.ndarray, lep_index: np.ndarray, lep_eta: np.ndarray, lep_phi: np.ndarray,
              event: np.ndarray, pt: np.ndarray, eta: np.ndarray, phi: np.ndarray, dr: float) -> np.ndarray:
    """Scalar pT sum of the other particles of the same event within ``dr`` of each lepton.

    ``event`` must be sorted; ``lep_index`` is each lepton's own position in
    the particle arrays (excluded from its sum).
    """
    if len(lep_event) == 0:
        return np.zeros(0)
    n_events = int(max(event.max(initial=-1), lep_event.max())) + 1
    starts = np.searchsorted(event, np.arange(n_events), side="left")
    stops = np.searchsorted(event, np.arange(n_events), side="right")
    counts = stops[lep_event] - starts[lep_event]
    # One row per (lepton, particle of its event) pair, built without Python loops.
    owner = np.repeat(np.arange(len(lep_event)), counts)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    other = np.repeat(starts[lep_event], counts) + offsets
    dr2 = (eta[other] - lep_eta[owner]) ** 2 + delta_phi(phi[other], lep_phi[owner]) ** 2
    inside = (dr2 < dr * dr) & (other != lep_index[owner])
    return np.bincount(owner, weights=np.where(inside, pt[other], 0.0), minlength=len(lep_event))


def _smear(rng: np.random.Generator, pt: np.ndarray, rel_sigma: np.ndarray, on: bool) -> np.ndarray:
    if not on or len(pt) == 0:
        return pt.copy()
    # Truncated at zero: a Gaussian tail cannot give a negative momentum.
    return np.maximum(pt * (1.0 + rel_sigma * rng.standard_normal(len(pt))), 0.0)


def _fill(out: np.ndarray, rows: slice, ev: np.ndarray, pt: np.ndarray, eta: np.ndarray, phi: np.ndarray, cls: int) -> None:
    """Write objects into their rows: per event pT-descending, first ``rows`` slots, rest stays zero."""
    if len(ev) == 0:
        return
    order = np.lexsort((-pt, ev))
    ev, pt, eta, phi = ev[order], pt[order], eta[order], phi[order]
    first = np.searchsorted(ev, ev, side="left")
    rank = np.arange(len(ev)) - first
    width = rows.stop - rows.start
    keep = rank < width
    slot = rows.start + rank[keep]
    out[ev[keep], slot, 0] = pt[keep]
    out[ev[keep], slot, 1] = eta[keep]
    out[ev[keep], slot, 2] = phi[keep]
    out[ev[keep], slot, 3] = cls


_BANNER_DONE = False


def _silence_fastjet_banner() -> None:
    """FastJet's C++ banner goes to stdout on the first clustering; swallow it once per process."""
    global _BANNER_DONE
    if _BANNER_DONE:
        return
    import os
    import sys

    import fastjet

    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 1)
            fastjet.ClusterSequence([fastjet.PseudoJet(1.0, 0.0, 0.0, 1.0)], fastjet.JetDefinition(fastjet.antikt_algorithm, 0.4))
    finally:
        os.dup2(saved, 1)
        os.close(saved)
    _BANNER_DONE = True


def cluster_jets(event: np.ndarray, px: np.ndarray, py: np.ndarray, pz: np.ndarray, e: np.ndarray,
                 n_events: int, r: float, pt_min: float) -> tuple[np.ndarray, ...]:
    """Anti-kT jets of every event at once (FastJet's multi-event interface).

    Returns flat (event, px, py, pz, e) of the jets with pT > ``pt_min``.
    """
    import awkward as ak
    import fastjet

    _silence_fastjet_banner()
    if len(event) == 0:
        return (np.zeros(0, dtype=np.int64), *(np.zeros(0) for _ in range(4)))
    counts = np.bincount(event, minlength=n_events)
    flat = ak.zip({"px": px, "py": py, "pz": pz, "E": e}, with_name="Momentum4D")
    jagged = ak.unflatten(flat, counts)
    seq = fastjet.ClusterSequence(jagged, fastjet.JetDefinition(fastjet.antikt_algorithm, r))
    jets = seq.inclusive_jets(min_pt=pt_min)
    njet = ak.to_numpy(ak.num(jets))
    jev = np.repeat(np.arange(n_events), njet)
    flatj = ak.flatten(jets)
    return (jev, *(ak.to_numpy(flatj[k]).astype(np.float64) for k in ("px", "py", "pz", "E")))


def simulate(parts: Particles, n_events: int, rng: np.random.Generator,
             config: DetectorConfig = DetectorConfig()) -> tuple[np.ndarray, np.ndarray]:
    """Reconstruct ``n_events`` events: (``Particles`` float32 (n, 19, 4), trigger bool (n,))."""
    c = config
    out = np.zeros((n_events, N_ROWS, 4), dtype=np.float32)
    apid = np.abs(parts.pid)
    pt, eta, phi = pt_eta_phi(parts.px, parts.py, parts.pz)
    visible = ~np.isin(apid, NEUTRINOS) & (np.abs(eta) < c.eta_acceptance)
    vis = np.flatnonzero(visible)
    ev_v, pt_v, eta_v, phi_v = parts.event[vis], pt[vis], eta[vis], phi[vis]
    apid_v = apid[vis]

    # Lepton candidates among visible particles; isolation uses every visible particle.
    is_e = (apid_v == 11) & (np.abs(eta_v) < c.electron_eta_max)
    is_mu = (apid_v == 13) & (np.abs(eta_v) < c.muon_eta_max)
    cand = np.flatnonzero((is_e | is_mu) & (pt_v > min(c.electron_pt_min, c.muon_pt_min) * 0.5))
    iso_sum = isolation(ev_v[cand], cand, eta_v[cand], phi_v[cand], ev_v, pt_v, eta_v, phi_v, c.iso_dr)
    isolated = iso_sum < c.iso_max * pt_v[cand]
    cand_e = is_e[cand]
    rel = np.where(cand_e, c.electron_res, np.hypot(c.muon_res, c.muon_res_slope * pt_v[cand]))
    pt_smeared = _smear(rng, pt_v[cand], rel, c.smear)
    pt_cut = np.where(cand_e, c.electron_pt_min, c.muon_pt_min)
    reco = isolated & (pt_smeared > pt_cut)
    lep = cand[reco]
    lep_pt, lep_e = pt_smeared[reco], cand_e[reco]

    # Jets from the visible particles that are not reconstructed leptons.
    jet_input = np.ones(len(vis), dtype=bool)
    jet_input[lep] = False
    ji = vis[jet_input]
    jev, jpx, jpy, jpz, je = cluster_jets(parts.event[ji], parts.px[ji], parts.py[ji], parts.pz[ji], parts.e[ji],
                                          n_events, c.jet_r, 0.5 * c.jet_pt_min)
    jpt, jeta, jphi = pt_eta_phi(jpx, jpy, jpz)
    jrel = np.hypot(c.jet_res_stochastic / np.sqrt(np.maximum(jpt, 1e-9)), c.jet_res_constant)
    jpt_smeared = _smear(rng, jpt, jrel, c.smear)
    jet_ok = (jpt_smeared > c.jet_pt_min) & (np.abs(jeta) < c.jet_eta_max)

    # MET: visible sum, corrected by the smearing of leptons and clustered jets.
    met_x = -np.bincount(ev_v, weights=pt_v * np.cos(phi_v), minlength=n_events)
    met_y = -np.bincount(ev_v, weights=pt_v * np.sin(phi_v), minlength=n_events)
    dl = lep_pt - pt_v[lep]
    met_x -= np.bincount(ev_v[lep], weights=dl * np.cos(phi_v[lep]), minlength=n_events)
    met_y -= np.bincount(ev_v[lep], weights=dl * np.sin(phi_v[lep]), minlength=n_events)
    dj = jpt_smeared - jpt
    met_x -= np.bincount(jev, weights=dj * np.cos(jphi), minlength=n_events)
    met_y -= np.bincount(jev, weights=dj * np.sin(jphi), minlength=n_events)
    out[:, 0, 0] = np.hypot(met_x, met_y)
    out[:, 0, 2] = np.arctan2(met_y, met_x)
    out[:, 0, 3] = CLASS_MET

    lev = ev_v[lep]
    _fill(out, ELECTRON_ROWS, lev[lep_e], lep_pt[lep_e], eta_v[lep][lep_e], phi_v[lep][lep_e], CLASS_E)
    _fill(out, MUON_ROWS, lev[~lep_e], lep_pt[~lep_e], eta_v[lep][~lep_e], phi_v[lep][~lep_e], CLASS_MU)
    _fill(out, JET_ROWS, jev[jet_ok], jpt_smeared[jet_ok], jeta[jet_ok], jphi[jet_ok], CLASS_JET)

    lead = np.zeros(n_events)
    np.maximum.at(lead, lev, lep_pt)
    return out, lead > c.trigger_pt_min
