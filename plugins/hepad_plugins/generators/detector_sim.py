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

Pile-up (l1 v3): particles flagged ``pileup`` come from overlaid minimum-bias
interactions. Charged pile-up particles inside the tracker (|eta| <
``chs_eta_max``) are identified by their vertex and removed from isolation
and jets (charged-hadron subtraction, as CMS particle flow); neutral pile-up
enters isolation, jets and MET, charged pile-up enters MET. Without pile-up
everything is as before.

:func:`simulate_hlt` also returns the per-event quantities of the l+X@HLT
view that the ADC2021 layout lacks (:data:`HLT_COLUMNS`): the trigger
lepton's charge and its three isolation sums (charged particles, neutral
hadrons, photons incl. undecayed pi0), the number of b-tagged jets (pT > 30
GeV, |eta| < 2.6; a jet is b- or c-labelled by a b or c hadron within its
radius and tagged with ``btag_eff_b`` / ``btag_eff_c`` / ``btag_mistag``), the
numbers of charged hadrons (pT > 0.5 GeV, |eta| < 2.5) and neutral hadrons
(pT > 1 GeV, |eta| < 3), pile-up included.
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
    chs_eta_max: float = 2.5
    btag_eff_b: float = 0.7
    btag_eff_c: float = 0.1
    btag_mistag: float = 0.01
    hlt_jet_pt_min: float = 30.0
    hlt_eta_max: float = 2.6
    charged_hadron_pt_min: float = 0.5
    charged_hadron_eta_max: float = 2.5
    neutral_hadron_pt_min: float = 1.0
    neutral_hadron_eta_max: float = 3.0


@dataclass
class Particles:
    """Flat final-state particles of a batch of events (``event`` sorted ascending)."""

    event: np.ndarray
    pid: np.ndarray
    px: np.ndarray
    py: np.ndarray
    pz: np.ndarray
    e: np.ndarray
    pileup: np.ndarray | None = None  # bool per particle; None: no pile-up


@dataclass
class HeavyHadrons:
    """Flat b and c hadrons of a batch (decayed, so not in the final state): jet flavour labels."""

    event: np.ndarray
    flavour: np.ndarray  # 5 or 4
    eta: np.ndarray
    phi: np.ndarray


#: Columns of the per-event array returned by :func:`simulate_hlt`.
HLT_COLUMNS = ("lep_charge", "iso_charged", "iso_neutral_hadron", "iso_photon", "n_b", "n_charged_hadrons",
               "n_neutral_hadrons")
#: |PDG id| of the electrically neutral particles that can be final here (c tau > 10 mm stable, pi0 undecayed).
NEUTRAL_PIDS = (12, 14, 16, 22, 111, 130, 310, 2112, 3122, 3212, 3322)
PHOTON_PIDS = (22, 111)


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
    return isolation_by_category(lep_event, lep_index, lep_eta, lep_phi, event, pt, eta, phi, dr,
                                 np.zeros(len(event), dtype=np.int64), 1)[:, 0]


def isolation_by_category(lep_event: np.ndarray, lep_index: np.ndarray, lep_eta: np.ndarray, lep_phi: np.ndarray,
                          event: np.ndarray, pt: np.ndarray, eta: np.ndarray, phi: np.ndarray, dr: float,
                          category: np.ndarray, n_categories: int) -> np.ndarray:
    """As :func:`isolation`, split by particle ``category`` (0..n-1; -1 = not counted): (n_leptons, n)."""
    if len(lep_event) == 0:
        return np.zeros((0, n_categories))
    n_events = int(max(event.max(initial=-1), lep_event.max())) + 1
    starts = np.searchsorted(event, np.arange(n_events), side="left")
    stops = np.searchsorted(event, np.arange(n_events), side="right")
    counts = stops[lep_event] - starts[lep_event]
    # One row per (lepton, particle of its event) pair, built without Python loops.
    owner = np.repeat(np.arange(len(lep_event)), counts)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    other = np.repeat(starts[lep_event], counts) + offsets
    dr2 = (eta[other] - lep_eta[owner]) ** 2 + delta_phi(phi[other], lep_phi[owner]) ** 2
    cat = category[other]
    inside = (dr2 < dr * dr) & (other != lep_index[owner]) & (cat >= 0)
    sums = np.bincount(owner * n_categories + np.maximum(cat, 0), weights=np.where(inside, pt[other], 0.0),
                       minlength=len(lep_event) * n_categories)
    return sums.reshape(len(lep_event), n_categories)


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
    out, passed, _ = _reconstruct(parts, n_events, rng, config, None, hlt=False)
    return out, passed


def simulate_hlt(parts: Particles, n_events: int, rng: np.random.Generator, config: DetectorConfig = DetectorConfig(),
                 heavy: HeavyHadrons | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """As :func:`simulate`, plus the (n, len(HLT_COLUMNS)) float32 l+X@HLT quantities."""
    return _reconstruct(parts, n_events, rng, config, heavy, hlt=True)


def particle_category(apid: np.ndarray) -> np.ndarray:
    """0 charged, 1 neutral hadron, 2 photon (incl. pi0), -1 neutrino: the three isolation sums of PF."""
    cat = np.where(np.isin(apid, NEUTRAL_PIDS), 1, 0)
    cat = np.where(np.isin(apid, PHOTON_PIDS), 2, cat)
    return np.where(np.isin(apid, NEUTRINOS), -1, cat)


def _jet_flavour(jev: np.ndarray, jeta: np.ndarray, jphi: np.ndarray, heavy: HeavyHadrons | None, r: float) -> np.ndarray:
    """5, 4 or 0 per jet: the heaviest hadron flavour within ``r`` of the jet axis in its event."""
    flavour = np.zeros(len(jev), dtype=np.int64)
    if heavy is None or len(heavy.event) == 0 or len(jev) == 0:
        return flavour
    # (jet, hadron) pairs of the same event; per-batch sizes are small (tens of hadrons).
    same = jev[:, None] == heavy.event[None, :]
    dr2 = (jeta[:, None] - heavy.eta[None, :]) ** 2 + delta_phi(jphi[:, None], heavy.phi[None, :]) ** 2
    match = same & (dr2 < r * r)
    return np.max(np.where(match, heavy.flavour[None, :], 0), axis=1)


def _reconstruct(parts: Particles, n_events: int, rng: np.random.Generator, config: DetectorConfig,
                 heavy: HeavyHadrons | None, hlt: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    c = config
    out = np.zeros((n_events, N_ROWS, 4), dtype=np.float32)
    apid = np.abs(parts.pid)
    pt, eta, phi = pt_eta_phi(parts.px, parts.py, parts.pz)
    visible = ~np.isin(apid, NEUTRINOS) & (np.abs(eta) < c.eta_acceptance)
    vis = np.flatnonzero(visible)
    ev_v, pt_v, eta_v, phi_v = parts.event[vis], pt[vis], eta[vis], phi[vis]
    apid_v = apid[vis]

    # Charged pile-up in the tracker is removed from isolation and jets (charged-hadron subtraction).
    category_v = particle_category(apid_v)
    charged_v = category_v == 0
    if parts.pileup is not None:
        pu_v = parts.pileup[vis]
        chs_removed = pu_v & charged_v & (np.abs(eta_v) < c.chs_eta_max)
        category_v = np.where(chs_removed, -1, category_v)
    else:
        chs_removed = np.zeros(len(vis), dtype=bool)

    # Lepton candidates among visible particles; isolation uses every visible particle (after CHS).
    is_e = (apid_v == 11) & (np.abs(eta_v) < c.electron_eta_max)
    is_mu = (apid_v == 13) & (np.abs(eta_v) < c.muon_eta_max)
    cand = np.flatnonzero((is_e | is_mu) & (pt_v > min(c.electron_pt_min, c.muon_pt_min) * 0.5) & ~chs_removed)
    iso_parts = isolation_by_category(ev_v[cand], cand, eta_v[cand], phi_v[cand], ev_v, pt_v, eta_v, phi_v, c.iso_dr,
                                      category_v, 3)
    iso_sum = iso_parts.sum(axis=1)
    isolated = iso_sum < c.iso_max * pt_v[cand]
    cand_e = is_e[cand]
    rel = np.where(cand_e, c.electron_res, np.hypot(c.muon_res, c.muon_res_slope * pt_v[cand]))
    pt_smeared = _smear(rng, pt_v[cand], rel, c.smear)
    pt_cut = np.where(cand_e, c.electron_pt_min, c.muon_pt_min)
    reco = isolated & (pt_smeared > pt_cut)
    lep = cand[reco]
    lep_pt, lep_e = pt_smeared[reco], cand_e[reco]

    # Jets from the visible particles that are not reconstructed leptons nor subtracted pile-up.
    jet_input = ~chs_removed
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
    passed = lead > c.trigger_pt_min
    if not hlt:
        return out, passed, None

    extra = np.zeros((n_events, len(HLT_COLUMNS)), dtype=np.float32)
    # The trigger lepton: the leading reconstructed one of its event.
    order = np.lexsort((-lep_pt, lev))
    first = order[np.r_[True, lev[order][1:] != lev[order][:-1]]] if len(order) else order
    lead_ev = lev[first]
    extra[lead_ev, 0] = -np.sign(parts.pid[vis][lep][first])  # e-, mu- have positive PDG ids
    extra[lead_ev, 1:4] = iso_parts[reco][first]
    # b tagging of the S_T jets, drawn after every other random number (the ADC layout stays as without it).
    hlt_jet = jet_ok & (jpt_smeared > c.hlt_jet_pt_min) & (np.abs(jeta) < c.hlt_eta_max)
    flavour = _jet_flavour(jev, jeta, jphi, heavy, c.jet_r)
    p_tag = np.select([flavour == 5, flavour == 4], [c.btag_eff_b, c.btag_eff_c], c.btag_mistag)
    tagged = rng.random(len(jev)) < p_tag
    extra[:, 4] = np.bincount(jev[hlt_jet & tagged], minlength=n_events)
    charged_hadron = charged_v & ~np.isin(apid_v, (11, 13)) & (pt_v > c.charged_hadron_pt_min) & (
        np.abs(eta_v) < c.charged_hadron_eta_max)
    neutral_hadron = (particle_category(apid_v) == 1) & (pt_v > c.neutral_hadron_pt_min) & (
        np.abs(eta_v) < c.neutral_hadron_eta_max)
    extra[:, 5] = np.bincount(ev_v[charged_hadron], minlength=n_events)
    extra[:, 6] = np.bincount(ev_v[neutral_hadron], minlength=n_events)
    return out, passed, extra
