"""N-subjettiness tau_N of jets (Thaler & Van Tilburg, JHEP 03 (2011) 015, arXiv:1011.2268).

Definition used here (the one of the LHC Olympics 2020 features, FastJet
contrib ``Nsubjettiness`` with ``NormalizedMeasure(beta=1, R0=1.0)`` and
``ExclusiveKT`` axes)::

    tau_N = (1 / d0) * sum_k pT_k * min_j dR(j, k) ** beta,    d0 = sum_k pT_k * R0 ** beta

* ``k`` runs over the jet's constituents, ``j`` over N axes;
* the axes are the N exclusive subjets of the constituents re-clustered with
  the kT algorithm (E-scheme, R = 1000 so that the beam never wins: only the
  pairwise distances order the merging);
* dR is measured in (rapidity, azimuth), as FastJet does;
* beta = 1 and R0 = 1.0 by default, so tau_N is dimensionless and 0 <= tau_1 <= max dR / R0.

A jet with at most N constituents has tau_N = 0 (every constituent is its own axis).

Constituents are given as four-momenta (px, py, pz, E). ``nsubjettiness`` takes one
jet as an (n, 4) array; ``nsubjettiness_batch`` takes many jets at once as an
awkward array ``jets * var * {px, py, pz, E}`` and runs every re-clustering in
one FastJet call, which is what the generator uses.
"""

from __future__ import annotations

import warnings

import awkward as ak
import fastjet
import numpy as np

#: The kT "radius" for exclusive re-clustering: large enough that no particle is merged with the beam.
_EXCLUSIVE_R = 1000.0


def _rapidity_phi(px: np.ndarray, py: np.ndarray, pz: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # Massless particles along the beam would give an infinite rapidity; clip the ratio, as FastJet caps |y|.
    num = np.maximum(e + pz, 1e-300)
    den = np.maximum(e - pz, 1e-300)
    return 0.5 * np.log(num / den), np.arctan2(py, px)


def _as_jagged(constituents: ak.Array) -> ak.Array:
    """Give a ``jets * var * {px, py, pz, E}`` record array the Lorentz-vector behaviour FastJet wants."""
    import vector  # noqa: F401  (registers the "Momentum4D" behaviour used by fastjet's awkward interface)

    return ak.zip(
        {"px": constituents.px, "py": constituents.py, "pz": constituents.pz, "E": constituents.E},
        with_name="Momentum4D",
        behavior=vector.backends.awkward.behavior,
    )


def _exclusive_kt_axes(jets: ak.Array, n_axes: int) -> np.ndarray:
    """(n_jets, n_axes, 4) four-momenta of the exclusive-kT subjets of each jet (all jets have > n_axes constituents)."""
    if len(jets) == 0:
        return np.zeros((0, n_axes, 4))
    jet_def = fastjet.JetDefinition(fastjet.kt_algorithm, _EXCLUSIVE_R)
    sequence = fastjet.ClusterSequence(jets, jet_def)
    with warnings.catch_warnings():
        # fastjet's awkward interface warns about exclusive jets for every algorithm, kT included.
        warnings.filterwarnings("ignore", message="dcut and exclusive jets")
        axes = sequence.exclusive_jets(n_jets=n_axes)
    out = np.stack([ak.to_numpy(ak.flatten(axes[c])) for c in ("px", "py", "pz", "E")], axis=-1)
    return out.reshape(len(jets), n_axes, 4)


def nsubjettiness_batch(constituents: ak.Array, n_max: int = 3, beta: float = 1.0, r0: float = 1.0) -> np.ndarray:
    """tau_1..tau_{n_max} of many jets: (n_jets, n_max) float64.

    ``constituents`` is an awkward array ``jets * var * {px, py, pz, E}``.
    A jet without constituents gets tau = 0.
    """
    jets = _as_jagged(constituents)
    n_jets = len(jets)
    counts = ak.to_numpy(ak.num(jets, axis=1))
    flat = {c: ak.to_numpy(ak.flatten(getattr(jets, c))).astype(np.float64) for c in ("px", "py", "pz", "E")}
    owner = np.repeat(np.arange(n_jets), counts)  # jet index of each flat constituent
    pt = np.hypot(flat["px"], flat["py"])
    rap, phi = _rapidity_phi(flat["px"], flat["py"], flat["pz"], flat["E"])
    d0 = np.bincount(owner, weights=pt, minlength=n_jets) * r0**beta

    taus = np.zeros((n_jets, n_max), dtype=np.float64)
    for n_axes in range(1, n_max + 1):
        enough = counts > n_axes  # with <= N constituents every one is an axis: tau_N = 0
        if not enough.any():
            continue
        chosen = np.flatnonzero(enough)
        axes = _exclusive_kt_axes(jets[chosen], n_axes)  # (n_chosen, N, 4)
        axis_rap, axis_phi = _rapidity_phi(axes[..., 0], axes[..., 1], axes[..., 2], axes[..., 3])
        # Map every flat constituent of a chosen jet to its row in `axes`.
        row_of_jet = np.full(n_jets, -1)
        row_of_jet[chosen] = np.arange(len(chosen))
        rows = row_of_jet[owner]
        keep = rows >= 0
        r = rows[keep]
        d_rap = rap[keep, None] - axis_rap[r]
        d_phi = np.abs(phi[keep, None] - axis_phi[r])
        d_phi = np.where(d_phi > np.pi, 2 * np.pi - d_phi, d_phi)
        min_dr = np.sqrt(d_rap**2 + d_phi**2).min(axis=1)
        numerator = np.bincount(owner[keep], weights=pt[keep] * min_dr**beta, minlength=n_jets)
        with np.errstate(invalid="ignore", divide="ignore"):
            taus[:, n_axes - 1] = np.where(d0 > 0, numerator / np.where(d0 > 0, d0, 1.0), 0.0)
    return taus


def nsubjettiness(constituents: np.ndarray, n_max: int = 3, beta: float = 1.0, r0: float = 1.0) -> np.ndarray:
    """tau_1..tau_{n_max} of one jet whose constituents are an (n, 4) array of (px, py, pz, E)."""
    c = np.asarray(constituents, dtype=np.float64).reshape(-1, 4)
    record = ak.zip({"px": c[:, 0], "py": c[:, 1], "pz": c[:, 2], "E": c[:, 3]})
    return nsubjettiness_batch(ak.unflatten(record, [len(c)]), n_max=n_max, beta=beta, r0=r0)[0]
