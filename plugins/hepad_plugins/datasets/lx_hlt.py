"""The l+X@HLT view (Cerri et al., JHEP 05 (2019) 036; seed 004): 21 features of single-lepton events.

:func:`lx_hlt_features` turns the generator's record of an event -- the
ADC2021 layout ``Particles`` (N, 19, 4) and the per-event ``HLT`` columns of
:data:`~hepad_plugins.generators.detector_sim.HLT_COLUMNS` written by
``hepad-bench generate l1 --version 3`` -- into the 21 features of the
paper. Definitions (from the paper, with the emulation's limits):

* the trigger lepton is the leading reconstructed e or mu (``lep_pt``,
  ``lep_charge``, ``is_electron`` and its isolation sums ``iso_charged``,
  ``iso_neutral_hadron``, ``iso_photon`` in Delta R < 0.3);
* ``s_t``: scalar pT sum of the jets and leptons with pT > 30 GeV, |eta| <
  2.6 (isolated photons are not reconstructed by the emulation: they are in
  the jets); ``n_jets`` and ``m_jets`` (invariant mass, massless jets) of those
  jets, ``n_b`` of them b-tagged;
* ``met_parallel`` / ``met_perpendicular``: the missing pT vector projected
  on the lepton direction and across it (signed, right-handed), ``m_t`` =
  sqrt(2 pT MET (1 - cos dphi));
* ``n_mu``, ``m_mu``, ``pt_mu_total`` (magnitude of the vector sum) over all
  reconstructed muons, likewise for electrons (massless, up to 4 each: the
  ADC2021 slots);
* ``n_charged_hadrons``, ``n_neutral_hadrons``: particle counts, pile-up included.

The dataset ``lx-hlt-pythia`` holds these features for the l1 v3 events;
its background rate at the trigger is set from seed 004's events/month
(:data:`EVENTS_PER_MONTH`), so working points can be set as rates.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from hepad_bench import hookimpl
from hepad_bench.contracts import Dataset, Progress
from hepad_bench.data import WEIGHT, Benchmark
from hepad_bench.errors import DataError, UserError
from hepad_plugins._resources import dataset_folder, read_card
from hepad_plugins.datasets import adc2021
from hepad_bench.dataset_tools import load_benchmark

FEATURES: list[str] = [
    "lep_pt", "iso_charged", "iso_neutral_hadron", "iso_photon", "lep_charge", "is_electron",
    "s_t", "n_jets", "m_jets", "n_b", "met_parallel", "met_perpendicular", "m_t",
    "n_mu", "m_mu", "pt_mu_total", "n_e", "m_e", "pt_e_total", "n_charged_hadrons", "n_neutral_hadrons",
]
#: Features that get log1p before standardisation (positive, heavy-tailed).
LOG_FEATURES: list[str] = ["lep_pt", "iso_charged", "iso_neutral_hadron", "iso_photon", "s_t", "m_jets", "m_t",
                           "m_mu", "pt_mu_total", "m_e", "pt_e_total", "n_charged_hadrons", "n_neutral_hadrons"]
HLT_COLUMNS = ("lep_charge", "iso_charged", "iso_neutral_hadron", "iso_photon", "n_b", "n_charged_hadrons",
               "n_neutral_hadrons")  # the generator's HLT_Names, checked on reading
ST_PT_MIN, ST_ETA_MAX = 30.0, 2.6

#: Seed 004's table (l+X@HLT stream, events per month) and the month it assumes (30 days).
EVENTS_PER_MONTH = {"W": 110e6, "QCD": 63e6, "Z": 12e6, "ttbar": 0.6e6}
SECONDS_PER_MONTH = 30 * 86400.0

NAME = "lx-hlt-pythia"
BACKGROUND = "background.parquet"
GENERATE_HINT = ("hepad-bench generate l1 --version 3 --events N --seed S --out DIR, then "
                 "python datasets/build_embedded.py --only lx-hlt --l1 DIR")


def process_rates_hz() -> dict[str, float]:
    """Per-process rates at the trigger (Hz) from seed 004's events/month."""
    return {p: n / SECONDS_PER_MONTH for p, n in EVENTS_PER_MONTH.items()}


def _massless_system(pt: np.ndarray, eta: np.ndarray, phi: np.ndarray, present: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(count, invariant mass, |vector pT sum|) per row of the objects flagged ``present`` (massless)."""
    w = present.astype(np.float64)
    px, py = (w * pt * np.cos(phi)).sum(1), (w * pt * np.sin(phi)).sum(1)
    pz, e = (w * pt * np.sinh(eta)).sum(1), (w * pt * np.cosh(eta)).sum(1)
    mass = np.sqrt(np.maximum(e * e - px * px - py * py - pz * pz, 0.0))
    return present.sum(1).astype(np.float64), mass, np.hypot(px, py)


def lx_hlt_features(particles: np.ndarray, hlt: np.ndarray) -> pl.DataFrame:
    """The 21 l+X@HLT features (float32 columns :data:`FEATURES`) of events in the ADC2021 layout + HLT record."""
    from hepad_plugins.generators import detector_sim as ds

    p = np.asarray(particles, dtype=np.float64)
    hlt = np.asarray(hlt, dtype=np.float64)
    if p.ndim != 3 or p.shape[1:] != (ds.N_ROWS, 4) or hlt.shape != (len(p), len(HLT_COLUMNS)):
        raise DataError(f"l+X@HLT features need Particles (N, {ds.N_ROWS}, 4) and HLT (N, {len(HLT_COLUMNS)}); "
                        f"got {p.shape} and {hlt.shape}")
    ele, mu, jet = p[:, ds.ELECTRON_ROWS], p[:, ds.MUON_ROWS], p[:, ds.JET_ROWS]
    e_ok, mu_ok, j_ok = ele[..., 0] > 0, mu[..., 0] > 0, jet[..., 0] > 0
    # Rows are pT-ordered: the trigger lepton is the first electron or the first muon.
    is_electron = ele[:, 0, 0] >= mu[:, 0, 0]
    lead = np.where(is_electron[:, None], ele[:, 0, :3], mu[:, 0, :3])
    lep_pt, lep_phi = lead[:, 0], lead[:, 2]
    met, met_phi = p[:, 0, 0], p[:, 0, 2]
    dphi = ds.delta_phi(met_phi, lep_phi)

    st_jet = j_ok & (jet[..., 0] > ST_PT_MIN) & (np.abs(jet[..., 1]) < ST_ETA_MAX)
    st_lep = [obj[..., 0] * (ok & (obj[..., 0] > ST_PT_MIN) & (np.abs(obj[..., 1]) < ST_ETA_MAX))
              for obj, ok in ((ele, e_ok), (mu, mu_ok))]
    n_j, m_j, _ = _massless_system(jet[..., 0], jet[..., 1], jet[..., 2], st_jet)
    n_mu, m_mu, pt_mu = _massless_system(mu[..., 0], mu[..., 1], mu[..., 2], mu_ok)
    n_e, m_e, pt_e = _massless_system(ele[..., 0], ele[..., 1], ele[..., 2], e_ok)
    columns = {
        "lep_pt": lep_pt, "iso_charged": hlt[:, 1], "iso_neutral_hadron": hlt[:, 2], "iso_photon": hlt[:, 3],
        "lep_charge": hlt[:, 0], "is_electron": is_electron.astype(np.float64),
        "s_t": (jet[..., 0] * st_jet).sum(1) + sum(x.sum(1) for x in st_lep), "n_jets": n_j, "m_jets": m_j,
        "n_b": hlt[:, 4], "met_parallel": met * np.cos(dphi), "met_perpendicular": met * np.sin(dphi),
        "m_t": np.sqrt(np.maximum(2.0 * lep_pt * met * (1.0 - np.cos(dphi)), 0.0)),
        "n_mu": n_mu, "m_mu": m_mu, "pt_mu_total": pt_mu, "n_e": n_e, "m_e": m_e, "pt_e_total": pt_e,
        "n_charged_hadrons": hlt[:, 5], "n_neutral_hadrons": hlt[:, 6],
    }
    return pl.DataFrame({k: np.asarray(columns[k], dtype=np.float32) for k in FEATURES})


def read_generated(path: Path) -> tuple[pl.DataFrame, dict[str, np.ndarray]]:
    """The 21 features of one l1 v3 HDF5 file, and its per-event ``Weight``/``Process`` where present."""
    import h5py

    adc2021.read_particles(path)  # the layout validation of the public reader
    with h5py.File(path, "r") as fh:
        if "HLT" not in fh:
            raise DataError(f"{path}: no 'HLT' dataset; the l+X@HLT view needs 'hepad-bench generate l1 --version 3'")
        names = tuple(n.decode() for n in np.asarray(fh["HLT_Names"]))
        if names != HLT_COLUMNS:
            raise DataError(f"{path}: 'HLT_Names' is {names}, expected {HLT_COLUMNS}")
        table = lx_hlt_features(np.asarray(fh["Particles"]), np.asarray(fh["HLT"]))
        extras = {k: np.asarray(fh[k]) for k in ("Weight", "Process") if k in fh}
    return table, extras


class LxHltPythia(Dataset):
    """The l1-pythia v3 events as seed 004's 21 l+X@HLT features (generated; NOT the paper's data)."""

    name = NAME
    version = "1"
    task = "unsupervised"
    card = read_card(NAME)
    Options = adc2021.UnsupervisedOptions
    uses_data_seed = True  # --data-seed draws the splits (adc2021.assemble_unsupervised)

    def load(self, data_dir: Path | None, progress: Progress) -> Benchmark:
        from hepad_plugins.datasets.embedded import content_identity, l1_signal_file, provenance, read_embedded

        folder = dataset_folder(self.name)
        if not (folder / BACKGROUND).is_file():
            raise UserError(f"{self.name} has no sample in {folder} yet; make one with: {GENERATE_HINT}")
        inputs = {"background": folder / BACKGROUND}
        inputs |= {f"signal/{s}": folder / l1_signal_file(s) for s in adc2021.SIGNALS
                   if (folder / l1_signal_file(s)).is_file()}
        if len(inputs) == 1:
            raise UserError(f"{self.name} has no signal files in {folder}; make them with: {GENERATE_HINT}")

        def read_raw(path: Path) -> tuple[pl.DataFrame, dict[str, Any]]:
            table = read_embedded(path, FEATURES, float32=True)
            return table, {"file": path.name, "size": path.stat().st_size, "events": table.height}

        def assemble(raw: dict[str, pl.DataFrame], facts: dict[str, dict[str, Any]]) -> Benchmark:
            rates = process_rates_hz()
            meta = {"source": "generated with Pythia 8 (hepad-bench generate l1 --version 3); not the paper's data",
                    "provenance": provenance(self.name),
                    "weights": "background: per-process sigma x efficiency weights normalised to mean 1"
                    if WEIGHT in raw["background"].columns else "1",
                    "background_rate_hz": sum(rates.values()), "process_rates_hz": rates,
                    "background_events_per_day": {p: r * 86400.0 for p, r in rates.items()},
                    "rates_source": "seed 004 (Cerri et al. 2019) events/month, 30-day month"}
            return adc2021.assemble_unsupervised(self.name, self.version, self.options, raw, facts, meta,
                                                 features=FEATURES, log_features=LOG_FEATURES,
                                                 data_seed=self.data_seed)

        return load_benchmark(self.name, self.version, self.options, inputs, read_raw, assemble,
                              identity=content_identity, reader_version="embedded-1", data_seed=self.data_seed)


@hookimpl
def hepad_datasets() -> list[type[Dataset]]:
    return [LxHltPythia]
