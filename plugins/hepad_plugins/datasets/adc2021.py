"""ADC2021: the Anomaly Detection Data Challenge 2021 (Govorkova et al., Sci. Data 9 (2022) 118,
arXiv:2107.02157), an ``unsupervised`` task on L1-trigger-like events.

Files (Zenodo, CC BY 4.0): the Standard Model background ``background_for_training.h5``
and four signals, each an HDF5 file with the dataset ``Particles`` of shape
(N, 19, 4): rows MET, 4 electrons, 4 muons, 10 jets (each type pT-ordered,
empty slots zero), columns (pT, eta, phi, class id).

Features: the 57 (pT, eta, phi) values, named ``met_pt, met_eta, met_phi,
e1_pt, ..., e4_phi, mu1_pt, ..., mu4_phi, j1_pt, ..., j10_phi``, float32.

Preprocessing (``preprocessing="log-standard"``, the default): ``log1p`` on
every pT column (GeV), then each of the 57 columns is standardised with the
mean and standard deviation of the *training background only*; the fitted
values are recorded in ``Benchmark.meta["preprocessing"]`` so the raw values
can be recovered. Zero-padded slots stay recognisable: an empty slot's pT maps
to the column's lowest value (log1p(0) = 0 lies below every real object's
pT), and its eta/phi to a fixed value. phi is kept as it is given. With
``preprocessing="none"`` the raw values are passed on.

Splits (deterministic from the dataset option ``seed``, independent of the
run seed): the background is shuffled and cut into train
(``train_fraction``, default 0.5), validation (``validation_fraction``, 0.1)
and test (the rest, 0.4). Each signal is shuffled and cut into
``signal_train`` (``signal_train_fraction``, default 0.5: the labelled events
only the supervised reference trains on) and the test signal (the rest):
every detector is scored on the same held-out signal events. Split sizes go
into ``Benchmark.meta["split_sizes"]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl

from hepad_bench import hookimpl
from hepad_bench.contracts import Dataset, Progress
from hepad_bench.data import Benchmark
from hepad_bench.errors import DataError
from hepad_bench.params import as_dict
from hepad_plugins._resources import read_card
from hepad_bench.dataset_tools import (
    RemoteFile, Standardiser, cached_raw_table, check_fractions, find_file, load_benchmark, require_file,
    search_dirs, split_rows, take_block, warn, with_bookkeeping, zenodo_url,
)
from hepad_plugins.datasets._yields import adc2021_rate

# -- the public layout -----------------------------------------------------------
#: (object prefix, number of slots, class id) in the row order of ``Particles``.
OBJECTS: tuple[tuple[str, int, int], ...] = (("met", 1, 1), ("e", 4, 2), ("mu", 4, 3), ("j", 10, 4))
SLOT_NAMES: list[str] = [p if n == 1 else f"{p}{i}" for p, n, _ in OBJECTS for i in range(1, n + 1)]
SLOT_CLASS = np.array([c for _, n, c in OBJECTS for _ in range(n)], dtype=np.float64)
N_SLOTS = len(SLOT_NAMES)  # 19
FEATURES: list[str] = [f"{slot}_{v}" for slot in SLOT_NAMES for v in ("pt", "eta", "phi")]
PT_FEATURES: list[str] = [f for f in FEATURES if f.endswith("_pt")]
PARTICLE_NAMES = ("pt", "eta", "phi", "class")

BACKGROUND_RECORD, BACKGROUND_FILE = 5046428, "background_for_training.h5"


@dataclass(frozen=True)
class SignalFile:
    record: int
    names: tuple[str, ...]  # the name on Zenodo first, then accepted alternatives
    description: str


#: Short signal names (leaderboard keys) -> public files.
SIGNALS: dict[str, SignalFile] = {
    "Ato4l": SignalFile(7152590, ("Ato4l_lepFilter_13TeV_filtered.h5", "Ato4l_lepFilter_13TeV.h5"),
                        "A (50 GeV) -> 4 leptons"),
    "leptoquark": SignalFile(7152599, ("leptoquark_LOWMASS_lepFilter_13TeV_filtered.h5",
                                       "leptoquark_LOWMASS_lepFilter_13TeV.h5"), "LQ (80 GeV) -> b tau"),
    "hToTauTau": SignalFile(7152614, ("hToTauTau_13TeV_PU20_filtered.h5", "hToTauTau_13TeV_PU20.h5"),
                            "h0 (60 GeV) -> tau tau"),
    "hChToTauNu": SignalFile(7152617, ("hChToTauNu_13TeV_PU20_filtered.h5", "hChToTauNu_13TeV_PU20.h5"),
                             "h+ (60 GeV) -> tau nu"),
}

#: Rows read at once: bounds the one float64 chunk held next to the float32 table.
CHUNK_ROWS = 200_000
#: Bump when the HDF5 -> raw table conversion changes (invalidates converted caches).
READER_VERSION = "1"


def read_particles(path: Path, progress: Progress | None = None, chunk_rows: int = CHUNK_ROWS,
                   allow_empty: bool = False) -> pl.DataFrame:
    """The 57 raw (pT, eta, phi) columns (float32) of one ADC2021-layout HDF5 file.

    Validates the layout (``Particles`` present, shape (N, 19, 4), floating
    dtype, class ids per slot 0 or the slot's type, finite values) and raises a
    one-line :class:`DataError` naming the file otherwise. Reads ``chunk_rows``
    events at a time, so at most one chunk in the file's precision exists
    next to the float32 result.
    """
    import h5py

    progress = progress or Progress()
    try:
        fh = h5py.File(path, "r")
    except OSError as exc:
        raise DataError(f"{path}: not a readable HDF5 file ({exc}); expected an ADC2021 file") from None
    with fh:
        if "Particles" not in fh or not isinstance(fh["Particles"], h5py.Dataset):
            raise DataError(f"{path}: no 'Particles' dataset (keys: {', '.join(fh.keys()) or 'none'}); "
                            "expected the ADC2021 layout")
        ds = fh["Particles"]
        if ds.ndim != 3 or ds.shape[1:] != (N_SLOTS, 4):
            raise DataError(f"{path}: 'Particles' has shape {ds.shape}, expected (N, {N_SLOTS}, 4)")
        if ds.dtype.kind != "f":
            raise DataError(f"{path}: 'Particles' has dtype {ds.dtype}, expected floating point")
        if "Particles_Names" in fh:
            names = [n.decode() if isinstance(n, bytes) else str(n) for n in np.asarray(fh["Particles_Names"]).ravel()]
            if tuple(n.strip().lower() for n in names) != PARTICLE_NAMES:
                raise DataError(f"{path}: 'Particles_Names' is {names}, expected Pt, Eta, Phi, Class")
        n = ds.shape[0]
        if n == 0 and allow_empty:  # an empty signal file: the loader skips that signal with a warning
            return pl.DataFrame(schema={name: pl.Float32 for name in FEATURES})
        if n == 0:
            raise DataError(f"{path}: 'Particles' holds no events")
        out = np.empty((len(FEATURES), n), dtype=np.float32)  # one row per feature: columns without a copy
        with progress.task(f"reading {path.name}", total=n) as advance:
            for start in range(0, n, chunk_rows):
                chunk = ds[start:start + chunk_rows]
                _check_chunk(path, chunk, start)
                block = out[:, start:start + len(chunk)].reshape(N_SLOTS, 3, len(chunk))  # a view into out
                for k in range(3):  # one coordinate at a time: no second full-precision copy of the chunk
                    block[:, k, :] = chunk[:, :, k].T
                del chunk
                advance(min(chunk_rows, n - start))
    return pl.DataFrame({name: out[i] for i, name in enumerate(FEATURES)})


def _check_chunk(path: Path, chunk: np.ndarray, start: int) -> None:
    cls = chunk[:, :, 3]
    bad = (cls != 0) & (cls != SLOT_CLASS)
    if bad.any():
        row, slot = map(int, np.argwhere(bad)[0])
        raise DataError(
            f"{path}: class column of event {start + row}, slot {slot} ({SLOT_NAMES[slot]}) is {cls[row, slot]:g}, "
            f"expected {SLOT_CLASS[slot]:g} or 0 (rows: MET, 4 e, 4 mu, 10 jets)"
        )
    if not np.isfinite(chunk[:, :, :3]).all():
        row = int(np.argwhere(~np.isfinite(chunk[:, :, :3]))[0][0])
        raise DataError(f"{path}: event {start + row} has non-finite values")


# -- options and the shared benchmark assembly ---------------------------------------
@dataclass
class UnsupervisedOptions:
    """Load options (``-o key=value``).

    seed (20210701): dataset split seed, independent of the run seed.
    train_fraction (0.5) / validation_fraction (0.1): background shares of
    train and validation; the rest (0.4) is the background test set.
    signal_train_fraction (0.5): share of each signal given to the supervised
    reference (``signal_train``); the rest is the test signal.
    preprocessing ("log-standard"): log1p on pT then standardise with the
    training background's mean/std; "none" passes raw values.
    """

    seed: int = 20210701
    train_fraction: float = 0.5
    validation_fraction: float = 0.1
    signal_train_fraction: float = 0.5
    preprocessing: Literal["log-standard", "none"] = "log-standard"

    def __post_init__(self) -> None:
        check_fractions(train_fraction=self.train_fraction, validation_fraction=self.validation_fraction)
        if not 0.0 <= self.signal_train_fraction < 1.0:
            raise ValueError(f"signal_train_fraction={self.signal_train_fraction} must lie in [0, 1)")
        if self.train_fraction <= 0:
            raise ValueError("train_fraction must be above 0")


def assemble_unsupervised(name: str, version: str, options: UnsupervisedOptions, raw: dict[str, pl.DataFrame],
                          facts: dict[str, dict[str, Any]], meta: dict[str, Any], features: list[str] | None = None,
                          log_features: list[str] | None = None, data_seed: int | None = None) -> Benchmark:
    """Split, preprocess and label raw ADC2021-schema tables (roles ``background`` and ``signal/<name>``).

    Shared by adc2021 and the embedded l1-pythia sample: one path for public and generated data.
    ``features`` / ``log_features`` (default: the 57 ADC2021 columns, log1p on the pT ones) let another
    view of the same events (lx-hlt-pythia) use the same splits and preprocessing.
    ``data_seed`` (``--data-seed``) draws every split from it; None: the canonical split of ``options.seed``.
    """
    feature_list = list(FEATURES if features is None else features)
    log_list = list(PT_FEATURES if log_features is None else log_features)

    # Each split is gathered and preprocessed column by column into its own float32 block
    # (``take_block``): no copy of the training rows to fit on, no float64 copy of a table.
    background = raw["background"]
    bg_rows = split_rows(background.height, [options.train_fraction, options.validation_fraction],
                         options.seed, "background", data_seed)
    prep = (Standardiser.fit(background, feature_list, log_list, rows=bg_rows[0])
            if options.preprocessing == "log-standard" else None)

    def part(table: pl.DataFrame, rows: np.ndarray, process: str) -> pl.DataFrame:
        return with_bookkeeping(take_block(table, rows, feature_list, prep), process)

    train, validation, test = (part(background, rows, "background") for rows in bg_rows)
    signals, signal_train = {}, {}
    for role in sorted(r for r in raw if r.startswith("signal/")):
        sig = role.split("/", 1)[1]
        table = raw[role]
        tr_rows, te_rows = split_rows(table.height, [options.signal_train_fraction], options.seed, role,
                                    data_seed)
        signal_train[sig], signals[sig] = part(table, tr_rows, sig), part(table, te_rows, sig)
    sizes = {"train": train.height, "validation": validation.height, "test": test.height}
    sizes |= {f"signal/{k}": v.height for k, v in signals.items()}
    sizes |= {f"signal_train/{k}": v.height for k, v in signal_train.items()}
    meta = meta | {
        "options": as_dict(options), "inputs": facts, "split_sizes": sizes,
        "preprocessing": prep.to_meta() if prep else "none",
    } | ({"data_seed": data_seed} if data_seed is not None else {})
    return Benchmark(
        dataset=name, version=version, task="unsupervised", features=feature_list, train=train,
        validation=validation, test=test, signals=signals, signal_train=signal_train, meta=meta,
    )


# -- the public dataset -------------------------------------------------------------
class ADC2021(Dataset):
    """ADC2021 challenge data (Govorkova et al. 2022): 57 L1-trigger features, SM background + 4 signals."""

    name = "adc2021"
    version = "1"
    task = "unsupervised"
    card = read_card("adc2021")
    Options = UnsupervisedOptions
    uses_data_seed = True  # --data-seed draws the background and signal splits (ADBench-style repeated splits)

    #: The public files (Zenodo publishes no checksums): the default ``fetch`` downloads them.
    remote_files = (
        RemoteFile(BACKGROUND_FILE, zenodo_url(BACKGROUND_RECORD, BACKGROUND_FILE)),
        *(RemoteFile(spec.names[0], zenodo_url(spec.record, spec.names[0])) for spec in SIGNALS.values()),
    )

    def locate(self, data_dir: Path | None, progress: Progress) -> dict[str, Path]:
        """role -> file: --data-dir first, then the downloads folder; missing signals are skipped with a warning."""
        dirs = search_dirs(self.name, data_dir)
        where = " or ".join(str(d) for d in dirs)
        background = require_file(self.name, BACKGROUND_FILE, data_dir, zenodo_url(BACKGROUND_RECORD, BACKGROUND_FILE),
                                  what="ADC2021 background file")
        inputs = {"background": background}
        for sig, spec in SIGNALS.items():
            path = find_file(spec.names, dirs)
            if path is None:
                warn(progress, f"ADC2021 signal file {spec.names[0]} (or {spec.names[1]}) not found in {where}; "
                               f"signal {sig} skipped (get it from {zenodo_url(spec.record, spec.names[0])})")
            else:
                inputs[f"signal/{sig}"] = path
        return inputs

    def load(self, data_dir: Path | None, progress: Progress) -> Benchmark:
        inputs = self.locate(data_dir, progress)

        def read_raw(path: Path) -> tuple[pl.DataFrame, dict[str, Any]]:
            allow_empty = path != inputs["background"]  # an empty background is an error, an empty signal is skipped
            return cached_raw_table(self.name, path, READER_VERSION,
                                    lambda p: read_particles(p, progress, allow_empty=allow_empty), progress)

        def assemble(raw: dict[str, pl.DataFrame], facts: dict[str, dict[str, Any]]) -> Benchmark:
            empty = sorted(r.split("/", 1)[1] for r, t in raw.items() if r.startswith("signal/") and t.height == 0)
            raw = {r: t for r, t in raw.items() if not (r.startswith("signal/") and t.height == 0)}
            meta = {"source": "ADC2021 public files (Zenodo)",
                    "missing_signals": sorted(set(SIGNALS) - {r.split("/", 1)[1] for r in raw if "/" in r}),
                    "empty_signals": empty}
            return assemble_unsupervised(self.name, self.version, self.options, raw, facts, meta,
                                         data_seed=self.data_seed)

        bench = load_benchmark(self.name, self.version, self.options, inputs, read_raw, assemble,
                               reader_version=READER_VERSION, data_seed=self.data_seed)
        bench.meta |= adc2021_rate()  # published background rate; added after the cache (data unchanged)
        for sig in bench.meta.get("empty_signals", []):  # on every load, cached or not, like a missing file
            warn(progress, f"ADC2021 signal file {inputs[f'signal/{sig}']} holds no events; signal {sig} skipped")
        return bench


@hookimpl
def hepad_datasets() -> list[type[Dataset]]:
    return [ADC2021]
