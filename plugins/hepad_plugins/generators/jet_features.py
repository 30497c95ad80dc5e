"""The 42 GAN-AE jet features computed from the constituents of an event (FastJet).

GAN-AE (Vaslin, Barra, Donini, EPJC 83 (2023), arXiv:2211.07446 and
arXiv:2305.15179) reads, for each of the two leading anti-kT R = 1.0 jets, 21
numbers: 2 x 21 = 42 inputs. The list is the authors' published feature
selection for the LHC Olympics R&D dijets (``selection/dijet_all_new2.txt`` of
github.com/lovaslin/GAN-AE); the features were computed by the LHCO
pre-processing the authors point to (Dinu, github.com/imdinu/clustering-lhco,
``jetminer``), whose parameters are used here. Per jet ``k`` = 1, 2
(``k`` = 1 is the leading-pT jet):

=============== =========================================================================
``pt_k``        jet transverse momentum (TeV)
``eta_k``       jet pseudorapidity
``e_k``         jet energy (TeV)
``mass_k``      jet invariant mass (TeV)
``nisj_k``      inclusive subjets: the jet's constituents re-clustered with kT, R = 0.2;
                the number of inclusive jets with pT > 0 (every kT R = 0.2 cluster)
``nesj_k``      exclusive subjets: the same kT R = 0.2 sequence stopped at d_cut = 0.1 GeV^2
                (FastJet ``n_exclusive_jets(0.1)``): the number of jets left once every
                step with d_ij or d_iB = pT^2 below d_cut is done; with so small a d_cut
                this is close to the number of constituents
``tau1_k``..    N-subjettiness tau_1, tau_2, tau_3 (beta = 1, R0 = 1.0, exclusive-kT axes;
``tau3_k``      :mod:`~hepad_plugins.generators.nsubjettiness`)
``tau32_k``     tau_3 / tau_2 (0 where tau_2 = 0)
``tau21_k``     tau_2 / tau_1 (0 where tau_1 = 0)
``eRing0_k``..  energy rings: the fraction of the jet energy carried by constituents
``eRing9_k``    at distance dR from the jet axis in ring i; the ring edges are
                0, 0.01 and 10 log-spaced radii up to R = 1.0
                (edges 0, 10^-2, 10^(-2 + 2/9), ..., 10^0), each ring [lo, hi) with
                the last one closed. Constituents beyond dR = R (anti-kT jets
                are not exact cones) fall in no ring, as in the reference, so the ten
                rings sum to the energy fraction inside dR <= R (1 up to a few 1e-3).
=============== =========================================================================

Choices where the reference is silent or where this code differs:

* dR between the jet axis and a constituent uses the jet's pseudorapidity and the
  constituent's (they are massless in the LHCO layout, so eta = rapidity) and the
  azimuth difference wrapped into [-pi, pi] (the reference does not wrap it);
* a particle on a ring edge belongs to the outer ring only (the reference counts
  it twice);
* ratios with a zero denominator are 0 (the reference writes inf), and an event
  with fewer than two jets has zeros for the missing jet (as the reference).

The event-level ``mjj`` (TeV, invariant mass of the two jets) is computed too; it
is the resonant observable, not one of the 42 inputs (GAN-AE uses it for the
event weights and the DisCo term). The four CATHODE features come from the same
jets (:func:`cathode_columns`) so that one table serves both feature sets.

Input: the LHC Olympics raw layout, one row per event of up to 700 massless
particles as (pT, eta, phi) triplets, zero-padded (particles with pT = 0 are
padding). :func:`ganae_features` takes such an (n_events, 3 * n_max) array.
"""

from __future__ import annotations

import warnings

import numpy as np

#: Per-jet features, in the published order (without the _k suffix).
JET_FEATURES: tuple[str, ...] = (
    "pt", "eta", "e", "mass", "nisj", "nesj", "tau1", "tau2", "tau3", "tau32", "tau21",
)  # fmt: skip
N_RINGS = 10
#: The 42 inputs, in the order of the authors' selection file.
GANAE42: list[str] = (
    [f"{f}_{k}" for k in (1, 2) for f in JET_FEATURES]
    + [f"eRing{i}_{k}" for k in (1, 2) for i in range(N_RINGS)]
)

JET_R = 1.0
SUBJET_R = 0.2
SUBJET_PT_MIN_GEV = 0.0
EXCLUSIVE_DCUT_GEV2 = 0.1
#: Ring edges in dR: 0, then 10 log-spaced radii from 0.01 to R.
RING_EDGES = np.concatenate([[0.0], JET_R * np.logspace(-2, 0, N_RINGS)])
GEV_PER_TEV = 1000.0


def _momenta(pt: np.ndarray, eta: np.ndarray, phi: np.ndarray) -> dict[str, np.ndarray]:
    """Massless four-momenta (GeV) of flat particle arrays."""
    return {"px": pt * np.cos(phi), "py": pt * np.sin(phi), "pz": pt * np.sinh(eta), "E": pt * np.cosh(eta)}


def _lorentz(record) -> object:
    import awkward as ak
    import vector

    return ak.zip({c: record[c] for c in ("px", "py", "pz", "E")}, with_name="Momentum4D",
                  behavior=vector.backends.awkward.behavior)


def split_raw(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pt, eta, phi) arrays (n_events, n_max) of an LHCO raw-layout matrix (n_events, 3 * n_max)."""
    raw = np.asarray(raw, dtype=np.float64)
    if raw.ndim != 2 or raw.shape[1] % 3:
        raise ValueError(f"raw particle matrix of shape {raw.shape}: expected (events, 3 * particles)")
    triplets = raw.reshape(len(raw), -1, 3)
    return triplets[..., 0], triplets[..., 1], triplets[..., 2]


def leading_jets(pt: np.ndarray, eta: np.ndarray, phi: np.ndarray, n_jets: int = 2):
    """Anti-kT R = 1.0 jets of every event; the ``n_jets`` leading ones and their constituents.

    ``pt``, ``eta``, ``phi``: (n_events, n_max) with pT = 0 as padding. Returns
    (jets, constituents, n_found) as awkward arrays ``events * n_jets`` (missing
    jets are None) and ``events * n_jets * var`` and the numpy count of jets.
    """
    import awkward as ak
    import fastjet

    real = pt > 0
    counts = real.sum(axis=1)
    flat = _momenta(pt[real], eta[real], phi[real])
    particles = ak.unflatten(_lorentz(flat), counts)
    sequence = fastjet.ClusterSequence(particles, fastjet.JetDefinition(fastjet.antikt_algorithm, JET_R))
    jets = sequence.inclusive_jets()
    constituents = sequence.constituents()
    jet_pt = np.sqrt(jets.px**2 + jets.py**2)
    order = ak.argsort(jet_pt, axis=1, ascending=False)[:, :n_jets]
    found = ak.to_numpy(ak.num(order, axis=1))
    order = ak.pad_none(order, n_jets, axis=1)
    return jets[order], constituents[order], found


def subjet_counts(constituents) -> tuple[np.ndarray, np.ndarray]:
    """(inclusive, exclusive) subjet counts of many jets (``jets * var * {px, py, pz, E}``, GeV).

    Inclusive: kT R = 0.2 jets with pT > SUBJET_PT_MIN_GEV. Exclusive: the same
    sequence resolved at d_cut = EXCLUSIVE_DCUT_GEV2 (GeV^2). Jets without
    constituents get 0 and 0.
    """
    import awkward as ak
    import fastjet

    counts = ak.to_numpy(ak.num(constituents, axis=1))
    n_incl = np.zeros(len(counts), dtype=np.int64)
    n_excl = np.zeros(len(counts), dtype=np.int64)
    has = np.flatnonzero(counts > 0)
    if len(has) == 0:
        return n_incl, n_excl
    sequence = fastjet.ClusterSequence(_lorentz(constituents[has]),
                                       fastjet.JetDefinition(fastjet.kt_algorithm, SUBJET_R))
    n_incl[has] = ak.to_numpy(ak.num(sequence.inclusive_jets(min_pt=SUBJET_PT_MIN_GEV), axis=1))
    with warnings.catch_warnings():
        # fastjet's awkward interface warns about exclusive jets for every algorithm, kT included.
        warnings.filterwarnings("ignore", message="dcut and exclusive jets")
        n_excl[has] = np.asarray(sequence.n_exclusive_jets(EXCLUSIVE_DCUT_GEV2), dtype=np.int64)
    return n_incl, n_excl


def _eta_phi(px: np.ndarray, py: np.ndarray, pz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pt = np.hypot(px, py)
    with np.errstate(divide="ignore", invalid="ignore"):
        eta = np.where(pt > 0, np.arcsinh(pz / np.where(pt > 0, pt, 1.0)), 0.0)
    return eta, np.arctan2(py, px)


def energy_rings(jet_eta: np.ndarray, jet_phi: np.ndarray, jet_e: np.ndarray, owner: np.ndarray,
                 c_eta: np.ndarray, c_phi: np.ndarray, c_e: np.ndarray) -> np.ndarray:
    """(n_jets, N_RINGS) energy fractions per ring.

    Jet ``j`` has axis (``jet_eta[j]``, ``jet_phi[j]``) and energy ``jet_e[j]``;
    constituent ``i`` (flat arrays) belongs to jet ``owner[i]``. Jets with zero
    energy get zeros.
    """
    n = len(jet_e)
    d_phi = np.abs(c_phi - jet_phi[owner])
    d_phi = np.where(d_phi > np.pi, 2 * np.pi - d_phi, d_phi)
    d_r = np.hypot(c_eta - jet_eta[owner], d_phi)
    ring = np.searchsorted(RING_EDGES, d_r, side="right") - 1  # [lo, hi): index of the ring
    ring = np.where(d_r == RING_EDGES[-1], N_RINGS - 1, ring)  # the outer edge R itself is in the last ring
    inside = (ring >= 0) & (ring < N_RINGS)
    energy = np.bincount(owner[inside] * N_RINGS + ring[inside], weights=c_e[inside], minlength=n * N_RINGS)
    energy = energy.reshape(n, N_RINGS)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(jet_e[:, None] > 0, energy / np.where(jet_e > 0, jet_e, 1.0)[:, None], 0.0)


def ganae_features(pt: np.ndarray, eta: np.ndarray, phi: np.ndarray) -> dict[str, np.ndarray]:
    """The 42 GAN-AE features, ``mjj`` and the jets' CATHODE inputs of every event.

    ``pt`` (GeV), ``eta``, ``phi``: (n_events, n_max), pT = 0 marks padding.
    Returns float64 columns named as :data:`GANAE42`, plus ``mjj`` (TeV).
    """
    import awkward as ak

    from .nsubjettiness import nsubjettiness_batch

    pt = np.asarray(pt, dtype=np.float64)
    n_events = len(pt)
    jets, constituents, _found = leading_jets(pt, np.asarray(eta, np.float64), np.asarray(phi, np.float64))
    # Every (event, slot) pair as one row: missing jets become empty constituent lists and zero momenta.
    flat_jets = ak.flatten(jets, axis=1)
    present = ~ak.to_numpy(ak.is_none(flat_jets))
    comp = {c: np.where(present, ak.to_numpy(ak.fill_none(flat_jets[c], 0.0)), 0.0)
            for c in ("px", "py", "pz", "E")} if len(flat_jets) else {c: np.zeros(0) for c in ("px", "py", "pz", "E")}
    jet_cons = ak.fill_none(ak.flatten(constituents, axis=1), [], axis=0)
    jet_cons = ak.zip({c: jet_cons[c] for c in ("px", "py", "pz", "E")})

    j_pt = np.hypot(comp["px"], comp["py"])
    j_eta, j_phi = _eta_phi(comp["px"], comp["py"], comp["pz"])
    j_mass = np.sqrt(np.maximum(comp["E"] ** 2 - comp["px"] ** 2 - comp["py"] ** 2 - comp["pz"] ** 2, 0.0))
    n_incl, n_excl = subjet_counts(jet_cons)
    taus = nsubjettiness_batch(jet_cons, n_max=3)
    with np.errstate(divide="ignore", invalid="ignore"):
        tau21 = np.where(taus[:, 0] > 0, taus[:, 1] / np.where(taus[:, 0] > 0, taus[:, 0], 1.0), 0.0)
        tau32 = np.where(taus[:, 1] > 0, taus[:, 2] / np.where(taus[:, 1] > 0, taus[:, 1], 1.0), 0.0)

    counts = ak.to_numpy(ak.num(jet_cons, axis=1))
    owner = np.repeat(np.arange(len(counts)), counts)
    c = {k: ak.to_numpy(ak.flatten(jet_cons[k])).astype(np.float64) for k in ("px", "py", "pz", "E")}
    c_eta, c_phi = _eta_phi(c["px"], c["py"], c["pz"])
    rings = energy_rings(j_eta, j_phi, comp["E"], owner, c_eta, c_phi, c["E"])

    per_jet = {
        "pt": j_pt / GEV_PER_TEV, "eta": j_eta, "e": comp["E"] / GEV_PER_TEV, "mass": j_mass / GEV_PER_TEV,
        "nisj": n_incl.astype(np.float64), "nesj": n_excl.astype(np.float64),
        "tau1": taus[:, 0], "tau2": taus[:, 1], "tau3": taus[:, 2], "tau32": tau32, "tau21": tau21,
    }
    per_jet |= {f"eRing{i}": rings[:, i] for i in range(N_RINGS)}
    out: dict[str, np.ndarray] = {}
    for name in GANAE42:
        base, k = name.rsplit("_", 1)
        out[name] = per_jet[base].reshape(n_events, 2)[:, int(k) - 1]
    both = {key: v.reshape(n_events, 2).sum(axis=1) for key, v in comp.items()}
    m2 = both["E"] ** 2 - both["px"] ** 2 - both["py"] ** 2 - both["pz"] ** 2
    out["mjj"] = np.sqrt(np.maximum(m2, 0.0)) / GEV_PER_TEV
    return out


def cathode_columns(features: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """CATHODE's four features (TeV) from the per-jet masses and taus of :func:`ganae_features`.

    Same definitions as ``lhco2020.dijet_features``: the lighter jet's mass,
    the mass difference, tau21 of the lighter and of the heavier jet.
    """
    first_lighter = features["mass_1"] <= features["mass_2"]
    m_light = np.where(first_lighter, features["mass_1"], features["mass_2"])
    m_heavy = np.where(first_lighter, features["mass_2"], features["mass_1"])
    return {
        "mj_light": m_light,
        "mj_diff": m_heavy - m_light,
        "tau21_light": np.where(first_lighter, features["tau21_1"], features["tau21_2"]),
        "tau21_heavy": np.where(first_lighter, features["tau21_2"], features["tau21_1"]),
    }
