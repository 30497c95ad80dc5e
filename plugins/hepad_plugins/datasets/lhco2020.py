"""LHC Olympics 2020 R&D (Kasieczka et al., Rep. Prog. Phys. 84 (2021) 124201), a ``resonant`` task.

File (Zenodo record 4536377, CC BY 4.0): ``events_anomalydetection_v2.features.h5``,
a pandas HDF5 table of 1 M QCD dijet events and 100 k W'(3.5 TeV) -> X(500 GeV)
Y(100 GeV) events with the columns pxj1 pyj1 pzj1 mj1 tau1j1 tau2j1 tau3j1,
the same for j2, and ``label`` (1 = signal). Momenta and masses in GeV.

Features (CATHODE's, in this order, all in TeV where dimensionful):
``mj_light`` = m_jmin (the lighter jet's mass), ``mj_diff`` = m_jmax - m_jmin,
``tau21_light`` = tau2/tau1 of the lighter jet, ``tau21_heavy`` = tau2/tau1 of
the heavier jet (0 where tau1 = 0). The resonant observable ``mjj`` (dijet
invariant mass from the two jets' four-momenta, TeV) is a separate column and
*not* a detector feature, as in CATHODE/ANODE/CWoLa, where it is the
conditioning or selection variable. With ``preprocessing="standard"`` (the
default) the four features are standardised with the mean/std of the training
data (background + injected signal: what an analyst has); ``mjj`` is never
transformed.

With ``-o features=ganae42`` the loader reads the raw constituent file of the
same record instead (:mod:`~hepad_plugins.datasets.lhco_raw`) and the detector
features are GAN-AE's 42 jet features (:func:`assemble_feature_set`).

Partition (deterministic from the dataset option ``seed``): the background is
shuffled and cut into train (``train_fraction`` 0.45), validation (0.10), hunt
(0.15), test (0.15) and background model (the rest, 0.15): disjoint pieces.
``n_signal`` (default 1000) signal events are injected into train +
validation (shared in proportion to their background), and the hunt sample
gets signal at the same S/B; the remaining signal is cut into ``signal_train``
(``signal_train_fraction`` 0.5, full mjj range, labelled, for the supervised
reference only) and the test signal. Injection is capped at half the available
signal (a warning says so), which matters for small generated samples.

Tables: ``train``/``validation`` = data in [mjj_min, mjj_max] (default: the
whole range, signal region and sidebands), with truth ``label`` (metrics
only); ``test`` = signal-region background; ``signals["wprime"]`` =
signal-region signal; ``signal_train["wprime"]``; ``extra["background_model"]``
= an independent signal-region background sample (the idealised classifier's
perfectly modelled background); ``extra["hunt"]`` = held-out data over the
same range as train, with truth ``label``, for bump hunts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl

from hepad_bench import hookimpl
from hepad_bench.contracts import Dataset, Progress
from hepad_bench.data import LABEL, Benchmark
from hepad_bench.errors import DataError, UserError
from hepad_bench.params import as_dict
from hepad_plugins._resources import read_card
from hepad_plugins.datasets import lhco_raw
from hepad_plugins.datasets._common import (
    Standardiser, cached_raw_table, check_fractions, download, find_file, load_benchmark,
    search_dirs, split_rows, take, warn, with_bookkeeping, zenodo_url,
)

RECORD, FILE = 4536377, "events_anomalydetection_v2.features.h5"
JET_COLUMNS = ("px", "py", "pz", "m", "tau1", "tau2", "tau3")
#: The public table's columns, in the public order.
COLUMNS: list[str] = [f"{c}j{j}" for j in (1, 2) for c in JET_COLUMNS] + ["label"]
FEATURES: list[str] = ["mj_light", "mj_diff", "tau21_light", "tau21_heavy"]
RESONANT = "mjj"
SIGNAL = "wprime"
READER_VERSION = "1"


def read_lhco_table(path: Path) -> pl.DataFrame:
    """The public columns of an LHCO-layout pandas HDF5 file (validated; DataError naming the file otherwise)."""
    import pandas as pd

    try:
        frame = pd.read_hdf(path)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:  # tables' HDF5ExtError is a RuntimeError
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        why = lines[-1] if lines else type(exc).__name__  # HDF5 back traces end with the useful line
        raise DataError(f"{path}: not a readable pandas HDF5 table ({why}); expected {FILE}") from None
    if not isinstance(frame, pd.DataFrame):
        raise DataError(f"{path}: holds a {type(frame).__name__}, expected a pandas table")
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: missing columns {', '.join(missing)}; expected the LHCO R&D features table")
    table = pl.from_pandas(frame[COLUMNS].reset_index(drop=True))
    return validate_lhco_table(path, table)


def validate_lhco_table(path: Path, table: pl.DataFrame) -> pl.DataFrame:
    """Types, finiteness and labels of the public columns (shared by the embedded reader)."""
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise DataError(f"{path}: missing columns {', '.join(missing)}; expected the LHCO R&D layout")
    numbers = table.select(COLUMNS[:-1])
    if not all(dt.is_float() or dt.is_integer() for dt in numbers.dtypes):
        raise DataError(f"{path}: non-numeric jet columns; expected floats")
    values = numbers.to_numpy()
    if not np.isfinite(values).all():
        raise DataError(f"{path}: {int((~np.isfinite(values)).any(axis=1).sum())} events with non-finite jet values")
    labels = set(table["label"].unique().to_list())
    if not labels <= {0, 1, 0.0, 1.0}:
        raise DataError(f"{path}: label column holds {sorted(labels)[:5]}, expected 0 (background) or 1 (signal)")
    if table.height == 0:
        raise DataError(f"{path}: holds no events")
    return table.select(COLUMNS)


def dijet_features(table: pl.DataFrame) -> pl.DataFrame:
    """``mjj`` and the four CATHODE features (TeV), float32, plus ``label`` (int8), from the public columns."""
    j = {c: table[c].to_numpy().astype(np.float64) for c in COLUMNS[:-1]}
    energy = [np.sqrt(j[f"pxj{k}"] ** 2 + j[f"pyj{k}"] ** 2 + j[f"pzj{k}"] ** 2 + j[f"mj{k}"] ** 2) for k in (1, 2)]
    e_sum = energy[0] + energy[1]
    p2 = sum((j[f"{c}j1"] + j[f"{c}j2"]) ** 2 for c in ("px", "py", "pz"))
    mjj = np.sqrt(np.clip(e_sum**2 - p2, 0.0, None))  # rounding can leave tiny negative m^2
    with np.errstate(divide="ignore", invalid="ignore"):
        tau21 = [np.where(j[f"tau1j{k}"] > 0, j[f"tau2j{k}"] / j[f"tau1j{k}"], 0.0) for k in (1, 2)]
    first_lighter = j["mj1"] <= j["mj2"]
    m_light = np.where(first_lighter, j["mj1"], j["mj2"])
    m_heavy = np.where(first_lighter, j["mj2"], j["mj1"])
    f32 = lambda x: x.astype(np.float32)  # noqa: E731
    return pl.DataFrame({
        RESONANT: f32(mjj / 1000.0),
        "mj_light": f32(m_light / 1000.0),
        "mj_diff": f32((m_heavy - m_light) / 1000.0),
        "tau21_light": f32(np.where(first_lighter, tau21[0], tau21[1])),
        "tau21_heavy": f32(np.where(first_lighter, tau21[1], tau21[0])),
        LABEL: table["label"].cast(pl.Int8),
    })


@dataclass
class ResonantOptions:
    """Load options (``-o key=value``); masses in TeV.

    seed (2020): dataset split seed, independent of the run seed.
    sr_low / sr_high (3.3 / 3.7): signal region in mjj.
    mjj_min / mjj_max (none): the range of the data tables (train, validation,
    hunt); the sidebands are [mjj_min, sr_low) and [sr_high, mjj_max).
    n_signal (1000): signal events injected into train + validation.
    train_fraction 0.45, validation_fraction 0.10, hunt_fraction 0.15,
    test_fraction 0.15 of the background; the rest (0.15) is the background model.
    signal_train_fraction (0.5): share of the non-injected signal for the supervised reference.
    preprocessing ("standard"): standardise the features with the training
    data's mean/std; "none" passes them as they are.
    features ("cathode4"): the detector inputs: "cathode4" (the four CATHODE
    features) or "ganae42" (the 42 GAN-AE jet features, computed with FastJet
    from the raw constituent file; see :mod:`~hepad_plugins.datasets.lhco_raw`).
    """

    seed: int = 2020
    sr_low: float = 3.3
    sr_high: float = 3.7
    mjj_min: float | None = None
    mjj_max: float | None = None
    n_signal: int = 1000
    train_fraction: float = 0.45
    validation_fraction: float = 0.10
    hunt_fraction: float = 0.15
    test_fraction: float = 0.15
    signal_train_fraction: float = 0.5
    preprocessing: Literal["standard", "none"] = "standard"
    # -- feature set (issue 13), kept last and apart: see assemble_feature_set --
    features: Literal["cathode4", "ganae42"] = "cathode4"

    def __post_init__(self) -> None:
        check_fractions(train_fraction=self.train_fraction, validation_fraction=self.validation_fraction,
                        hunt_fraction=self.hunt_fraction, test_fraction=self.test_fraction)
        if self.train_fraction <= 0 or self.test_fraction <= 0:
            raise ValueError("train_fraction and test_fraction must be above 0")
        if not self.sr_low < self.sr_high:
            raise ValueError(f"sr_low={self.sr_low} must be below sr_high={self.sr_high}")
        lo = -np.inf if self.mjj_min is None else self.mjj_min
        hi = np.inf if self.mjj_max is None else self.mjj_max
        if not lo <= self.sr_low < self.sr_high <= hi:
            raise ValueError("the signal region must lie inside [mjj_min, mjj_max]")
        if self.n_signal < 0:
            raise ValueError(f"n_signal={self.n_signal} must be >= 0")
        if not 0.0 <= self.signal_train_fraction < 1.0:
            raise ValueError(f"signal_train_fraction={self.signal_train_fraction} must lie in [0, 1)")


def _in_range(table: pl.DataFrame, lo: float | None, hi: float | None) -> pl.DataFrame:
    cond = pl.lit(True)
    if lo is not None:
        cond = cond & (pl.col(RESONANT) >= lo)
    if hi is not None:
        cond = cond & (pl.col(RESONANT) < hi)
    return table.filter(cond)


def _shuffled(table: pl.DataFrame, seed: int, stream: str) -> pl.DataFrame:
    """Mix injected signal among the background so that ``head(k)`` keeps the S/B."""
    (order,) = split_rows(table.height, [], seed, stream)
    return take(table, order)


def assemble_resonant(name: str, version: str, options: ResonantOptions, events: pl.DataFrame,
                      facts: dict[str, dict[str, Any]], meta: dict[str, Any], progress: Progress) -> Benchmark:
    """Partition, inject, preprocess and label a dijet table (``dijet_features`` output).

    Shared by lhco2020 and the embedded dijet-pythia sample.
    """
    o = options
    background = events.filter(pl.col(LABEL) == 0)
    signal = events.filter(pl.col(LABEL) == 1)
    bg = split_rows(background.height, [o.train_fraction, o.validation_fraction, o.hunt_fraction, o.test_fraction],
                    o.seed, "background")
    data_share = o.train_fraction + o.validation_fraction
    n_data = o.n_signal
    n_hunt = int(round(n_data * o.hunt_fraction / data_share))
    if n_data + n_hunt > signal.height // 2:  # keep half the signal for training the reference and testing
        scale = (signal.height // 2) / (n_data + n_hunt)
        n_data, n_hunt = int(n_data * scale), int(n_hunt * scale)
        warn(progress, f"{name}: only {signal.height} signal events: injecting {n_data} (asked {o.n_signal})")
    n_train = int(round(n_data * o.train_fraction / data_share))
    (sig_order,) = split_rows(signal.height, [], o.seed, "signal")
    cuts = np.cumsum([n_train, n_data - n_train, n_hunt])
    sig_train_inj, sig_val_inj, sig_hunt_inj, rest = np.split(sig_order, cuts)
    n_ref = int(np.floor(o.signal_train_fraction * len(rest)))
    sig_ref, sig_test = rest[:n_ref], rest[n_ref:]

    def data(bg_rows: np.ndarray, sig_rows: np.ndarray, stream: str) -> pl.DataFrame:
        mixed = pl.concat([with_bookkeeping(take(background, bg_rows), "background"),
                           with_bookkeeping(take(signal, sig_rows), SIGNAL)])
        return _shuffled(_in_range(mixed, o.mjj_min, o.mjj_max), o.seed, stream)

    def in_sr(table: pl.DataFrame) -> pl.DataFrame:
        return _in_range(table, o.sr_low, o.sr_high)

    train = data(bg[0], sig_train_inj, "train")
    validation = data(bg[1], sig_val_inj, "validation")
    hunt = data(bg[2], sig_hunt_inj, "hunt")
    test = in_sr(with_bookkeeping(take(background, bg[3]), "background"))
    model = in_sr(with_bookkeeping(take(background, bg[4]), "background"))
    sig_test_t = in_sr(with_bookkeeping(take(signal, sig_test), SIGNAL))
    sig_ref_t = with_bookkeeping(take(signal, sig_ref), SIGNAL)

    prep = Standardiser.fit(train, FEATURES) if o.preprocessing == "standard" else None
    tables = [train, validation, hunt, test, model, sig_test_t, sig_ref_t]
    if prep:
        tables = [prep.transform(t) for t in tables]
    train, validation, hunt, test, model, sig_test_t, sig_ref_t = tables

    fit_data = pl.concat([train, validation])
    sr_data = in_sr(fit_data)
    n_s = int((sr_data[LABEL] == 1).sum())
    n_b = sr_data.height - n_s
    sizes = {"train": train.height, "validation": validation.height, "test": test.height,
             f"signal/{SIGNAL}": sig_test_t.height, f"signal_train/{SIGNAL}": sig_ref_t.height,
             "extra/background_model": model.height, "extra/hunt": hunt.height}
    meta = meta | {
        "options": as_dict(o), "inputs": facts, "split_sizes": sizes,
        "signal_region": [o.sr_low, o.sr_high],
        "sidebands": [[o.mjj_min, o.sr_low], [o.sr_high, o.mjj_max]],
        "n_signal_requested": o.n_signal,
        "n_signal_injected": {"train": int((train[LABEL] == 1).sum()), "validation": int((validation[LABEL] == 1).sum()),
                              "hunt": int((hunt[LABEL] == 1).sum())},
        "signal_region_data": {"signal": n_s, "background": n_b,
                               "s_over_b": n_s / n_b if n_b else None,
                               "s_over_sqrt_b": float(n_s / np.sqrt(n_b)) if n_b else None},
        "preprocessing": prep.to_meta() if prep else "none",
        "mjj_unit": "TeV",
    }
    return Benchmark(
        dataset=name, version=version, task="resonant", features=list(FEATURES), train=train,
        validation=validation, test=test, signals={SIGNAL: sig_test_t}, signal_train={SIGNAL: sig_ref_t},
        extra={"background_model": model, "hunt": hunt}, resonant=RESONANT, meta=meta,
    )


# -- feature sets (issue 13) -------------------------------------------------
def assemble_feature_set(name: str, version: str, options: ResonantOptions, events: pl.DataFrame,
                         facts: dict[str, dict[str, Any]], meta: dict[str, Any], progress: Progress) -> Benchmark:
    """:func:`assemble_resonant` with the detector inputs chosen by ``options.features``.

    "cathode4" is assemble_resonant itself. "ganae42" partitions the same way
    (the table from :func:`~hepad_plugins.datasets.lhco_raw.read_raw_features`
    carries the CATHODE columns too), then makes the 42 GAN-AE columns the
    features, standardised with the training data like the CATHODE ones.
    """
    if options.features == "cathode4":
        return assemble_resonant(name, version, options, events, facts, meta, progress)
    from dataclasses import replace

    from hepad_plugins.generators.jet_features import GANAE42

    missing = [c for c in GANAE42 if c not in events.columns]
    if missing:
        raise DataError(f"{name}: the event table lacks the GAN-AE columns ({', '.join(missing[:3])}, ...)")
    base = assemble_resonant(name, version, replace(options, preprocessing="none"), events, facts, meta, progress)
    prep = Standardiser.fit(base.train, GANAE42) if options.preprocessing == "standard" else None

    def tr(t: pl.DataFrame) -> pl.DataFrame:
        return prep.transform(t) if prep else t

    return replace(
        base, features=list(GANAE42), train=tr(base.train), validation=tr(base.validation), test=tr(base.test),
        signals={k: tr(v) for k, v in base.signals.items()},
        signal_train={k: tr(v) for k, v in base.signal_train.items()},
        extra={k: tr(v) for k, v in base.extra.items()},
        meta=base.meta | {"options": as_dict(options), "preprocessing": prep.to_meta() if prep else "none",
                          "feature_set": "ganae42"},
    )


class LHCO2020(Dataset):
    """LHC Olympics 2020 R&D dijets (Kasieczka et al. 2021): CATHODE features, W' signal injected, SR 3.3-3.7 TeV."""

    name = "lhco2020"
    version = "1"
    task = "resonant"
    card = read_card("lhco2020")
    Options = ResonantOptions

    def fetch(self, progress: Progress) -> list[Path]:
        from hepad_bench.cache import downloads_dir

        name = lhco_raw.RAW_FILE if self.options.features == "ganae42" else FILE
        progress.log(f"downloading {name} from {zenodo_url(RECORD, name)}")
        return [download(zenodo_url(RECORD, name), name, downloads_dir(self.name))]

    def load(self, data_dir: Path | None, progress: Progress) -> Benchmark:
        if self.options.features == "ganae42":
            return self._load_raw(data_dir, progress)
        dirs = search_dirs(self.name, data_dir)
        path = find_file([FILE], dirs)
        if path is None:
            where = " or ".join(str(d) for d in dirs)
            raise UserError(f"LHCO 2020 file {FILE} not found in {where}: run 'hepad-bench datasets fetch lhco2020' "
                            f"or download {zenodo_url(RECORD, FILE)} into --data-dir")

        def read_raw(p: Path) -> tuple[pl.DataFrame, dict[str, Any]]:
            return cached_raw_table(self.name, p, READER_VERSION, lambda q: dijet_features(read_lhco_table(q)))

        def assemble(raw: dict[str, pl.DataFrame], facts: dict[str, dict[str, Any]]) -> Benchmark:
            return assemble_resonant(self.name, self.version, self.options, raw["events"], facts,
                                     {"source": "LHC Olympics 2020 R&D features file (Zenodo)"}, progress)

        return load_benchmark(self.name, self.version, self.options, {"events": path}, read_raw, assemble,
                              reader_version=READER_VERSION)

    def _load_raw(self, data_dir: Path | None, progress: Progress) -> Benchmark:
        """features=ganae42: the constituent-level file, clustered once (cached) into the feature table."""
        lhco_raw.require_fastjet()
        dirs = search_dirs(self.name, data_dir)
        name = lhco_raw.RAW_FILE
        path = find_file([name], dirs)
        if path is None:
            where = " or ".join(str(d) for d in dirs)
            raise UserError(f"LHCO 2020 raw file {name} (needed by features=ganae42) not found in {where}: run "
                            f"'hepad-bench datasets fetch lhco2020 -o features=ganae42' or download "
                            f"{zenodo_url(RECORD, name)} into --data-dir")

        def read_raw(p: Path) -> tuple[pl.DataFrame, dict[str, Any]]:
            progress.log(f"clustering {p.name} with FastJet (once; the result is cached)")
            return cached_raw_table(self.name, p, f"raw-{lhco_raw.READER_VERSION}", lhco_raw.read_raw_features)

        def assemble(raw: dict[str, pl.DataFrame], facts: dict[str, dict[str, Any]]) -> Benchmark:
            return assemble_feature_set(self.name, self.version, self.options, raw["events"], facts,
                                        {"source": "LHC Olympics 2020 R&D raw constituent file (Zenodo)"}, progress)

        return load_benchmark(self.name, self.version, self.options, {"events": path}, read_raw, assemble,
                              reader_version=f"raw-{lhco_raw.READER_VERSION}")


@hookimpl
def hepad_datasets() -> list[type[Dataset]]:
    return [LHCO2020]
