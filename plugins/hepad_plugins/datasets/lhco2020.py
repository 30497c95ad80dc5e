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
from hepad_bench.dataset_tools import (
    Standardiser, cached_raw_table, check_fractions, download, load_benchmark, require_file,
    split_rows, take, warn, with_bookkeeping, zenodo_url,
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


def parse_windows(text: str, what: str) -> list[tuple[float, float]]:
    """``"a:b,c:d"`` -> [(a, b), (c, d)] (TeV), each with a < b; ValueError otherwise."""
    out = []
    for part in text.replace(" ", "").split(","):
        bits = part.split(":")
        try:
            lo, hi = (float(b) for b in bits)
        except ValueError:
            raise ValueError(f"{what}='{text}': expected windows LOW:HIGH separated by commas (TeV)") from None
        if not lo < hi:
            raise ValueError(f"{what}: window {part} is empty (LOW must be below HIGH)")
        out.append((lo, hi))
    return out


def parse_scan(text: str) -> np.ndarray:
    """``"LOW:HIGH:STEP"`` -> the signal-region centres LOW, LOW+STEP, ..., up to HIGH (TeV)."""
    try:
        lo, hi, step = (float(b) for b in text.split(":"))
    except ValueError:
        raise ValueError(f"sr_scan='{text}': expected LOW:HIGH:STEP (signal-region centres, TeV)") from None
    if not (step > 0 and lo <= hi):
        raise ValueError(f"sr_scan='{text}': needs LOW <= HIGH and STEP > 0")
    n = int(np.floor((hi - lo) / step + 1e-9)) + 1
    if n > MAX_SCAN_WINDOWS:
        raise ValueError(f"sr_scan='{text}' has {n} windows; at most {MAX_SCAN_WINDOWS} (one training each)")
    return np.round(lo + step * np.arange(n), 6)


#: A scan trains once per window: more than this is a typo rather than a plan.
MAX_SCAN_WINDOWS = 60


@dataclass
class ResonantOptions:
    """Load options (``-o key=value``); masses in TeV.

    seed (2020): dataset split seed, independent of the run seed.
    sr_low / sr_high (3.3 / 3.7): signal region (SR) in mjj.
    mjj_min / mjj_max (none): the range of the data tables (train, validation,
    hunt); the outer sidebands are [mjj_min, sr_low) and [sr_high, mjj_max).
    sb_width (none): width of one sideband on each side of the SR, for every
    method. None: each method's published default (CWoLa hunting: 0.2 TeV
    adjacent windows; ANODE/CATHODE/LaCATHODE: everything outside the SR).
    sidebands (none): explicit sideband windows "a:b,c:d" instead (outside the SR).
    sr_scan (none): a sliding-window search "LOW:HIGH:STEP": one run per SR
    centred on LOW, LOW+STEP, ..., HIGH, each as wide as sr_high - sr_low.
    min_region_events (100): the fewest training events the SR and each
    sideband may hold; fewer is an error before any training.
    n_signal (1000): injected signal per full background sample: every data
    split (train, validation, hunt) gets n_signal x its background fraction,
    so S/B over the whole mass range is n_signal / N_background in each.
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
    sb_width: float | None = None
    sidebands: str | None = None
    sr_scan: str | None = None
    min_region_events: int = 100
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
        if self.sb_width is not None and self.sidebands is not None:
            raise ValueError("give sb_width or sidebands, not both")
        if self.sb_width is not None and not self.sb_width > 0:
            raise ValueError(f"sb_width={self.sb_width} must be above 0 (TeV)")
        for a, b in self.sideband_override() or []:
            if b > self.sr_low and a < self.sr_high:
                raise ValueError(f"sideband {a:g}:{b:g} overlaps the signal region "
                                 f"[{self.sr_low:g}, {self.sr_high:g}); sidebands must lie outside it")
            if a < lo or b > hi:
                raise ValueError(f"sideband {a:g}:{b:g} lies outside [mjj_min, mjj_max]")
        if self.sr_scan is not None:
            half = (self.sr_high - self.sr_low) / 2
            centres = parse_scan(self.sr_scan)
            if centres[0] - half < lo or centres[-1] + half > hi:
                raise ValueError(f"sr_scan='{self.sr_scan}' has windows outside [mjj_min, mjj_max]")
        if self.min_region_events < 1:
            raise ValueError("min_region_events must be at least 1")

    def sideband_override(self) -> list[tuple[float, float]] | None:
        """The sideband windows every method uses, or None (each method's own default)."""
        if self.sidebands is not None:
            return parse_windows(self.sidebands, "sidebands")
        if self.sb_width is not None:
            return [(self.sr_low - self.sb_width, self.sr_low), (self.sr_high, self.sr_high + self.sb_width)]
        return None

    def scan_windows(self) -> list[tuple[float, float]]:
        """The (sr_low, sr_high) of every window of ``sr_scan`` (empty: no scan)."""
        if self.sr_scan is None:
            return []
        half = (self.sr_high - self.sr_low) / 2
        return [(round(c - half, 6), round(c + half, 6)) for c in parse_scan(self.sr_scan)]


def _in_range(table: pl.DataFrame, lo: float | None, hi: float | None) -> pl.DataFrame:
    cond = pl.lit(True)
    if lo is not None:
        cond = cond & (pl.col(RESONANT) >= lo)
    if hi is not None:
        cond = cond & (pl.col(RESONANT) < hi)
    return table.filter(cond)


def sr_counts(n_s: int, n_b: int) -> dict[str, Any]:
    return {"signal": int(n_s), "background": int(n_b), "s_over_b": n_s / n_b if n_b else None,
            "s_over_sqrt_b": float(n_s / np.sqrt(n_b)) if n_b else None}


def sr_composition(table: pl.DataFrame, o: ResonantOptions) -> dict[str, Any]:
    """True signal and background counts of ``table`` in the SR, S/B and S/sqrt(B)."""
    sr = _in_range(table, o.sr_low, o.sr_high)
    n_s = int((sr[LABEL] == 1).sum())
    return sr_counts(n_s, sr.height - n_s)


def check_regions(name: str, o: ResonantOptions, mjj: np.ndarray) -> dict[str, Any]:
    """The resolved SR/sideband geometry for ``Benchmark.meta``, checked against the data's mjj.

    UserError (one line, raised at load, so before any training) when the SR
    or a sideband lies outside the data range, or when the SR or a sideband
    (the override where set, else the CWoLa-hunting default windows and the
    outer sidebands) holds fewer than ``min_region_events`` events.
    """
    from hepad_plugins.regions import ADJACENT_WIDTH

    where = f"{name} (sr_low={o.sr_low:g}, sr_high={o.sr_high:g})"
    if len(mjj) == 0:
        raise UserError(f"{where}: the data holds no events in [mjj_min, mjj_max]")
    lo, hi = float(mjj.min()), float(mjj.max())
    if o.sr_low < lo or o.sr_high > hi:
        raise UserError(f"{where}: the signal region lies outside the data's mjj range [{lo:.3g}, {hi:.3g}] TeV")
    override = o.sideband_override()
    for a, b in override or []:
        if a < lo or b > hi:
            raise UserError(f"{where}: sideband {a:g}:{b:g} lies outside the data's mjj range [{lo:.3g}, {hi:.3g}] TeV")

    def count(a: float, b: float) -> int:
        return int(((mjj >= a) & (mjj < b)).sum())

    need = o.min_region_events
    windows = {"signal region": (o.sr_low, o.sr_high)}
    if override:
        windows |= {f"sideband {a:g}:{b:g}": (a, b) for a, b in override}
    else:
        windows |= {"lower sideband": (o.sr_low - ADJACENT_WIDTH, o.sr_low),
                    "upper sideband": (o.sr_high, o.sr_high + ADJACENT_WIDTH)}
    for what, (a, b) in windows.items():
        n = count(a, b)
        if n < need:
            raise UserError(f"{where}: the {what} [{a:g}, {b:g}) holds {n} training events, fewer than "
                            f"min_region_events={need}; move or widen the window")
    scan = None
    if o.sr_scan is not None:
        scan = {"spec": o.sr_scan, "windows": len(o.scan_windows())}
    return {
        "signal_region": [o.sr_low, o.sr_high],
        "sidebands": [[o.mjj_min, o.sr_low], [o.sr_high, o.mjj_max]],
        "sideband_override": [list(w) for w in override] if override else None,
        "data_range": [lo, hi],
        "scan": scan,
    }


def _shuffled(table: pl.DataFrame, seed: int, stream: str, data_seed: int | None = None) -> pl.DataFrame:
    """Mix injected signal among the background so that ``head(k)`` keeps the S/B."""
    (order,) = split_rows(table.height, [], seed, stream, data_seed)
    return take(table, order)


def assemble_resonant(name: str, version: str, options: ResonantOptions, events: pl.DataFrame,
                      facts: dict[str, dict[str, Any]], meta: dict[str, Any], progress: Progress,
                      data_seed: int | None = None) -> Benchmark:
    """Partition, inject, preprocess and label a dijet table (``dijet_features`` output).

    Shared by lhco2020 and the embedded dijet-pythia sample. ``data_seed``
    (``--data-seed``) draws the background partition, which signal events are
    injected and the mixing from it; None: the canonical draw of ``options.seed``.
    """
    o = options
    background = events.filter(pl.col(LABEL) == 0)
    signal = events.filter(pl.col(LABEL) == 1)
    bg = split_rows(background.height, [o.train_fraction, o.validation_fraction, o.hunt_fraction, o.test_fraction],
                    o.seed, "background", data_seed)
    # n_signal is per full background sample: each data split gets its background share of it,
    # so S/B (whole mass range) is n_signal / N_background in train, validation and hunt alike.
    shares = np.array([o.train_fraction, o.validation_fraction, o.hunt_fraction])
    n_inj = np.round(o.n_signal * shares).astype(int)
    if n_inj.sum() > signal.height // 2:  # keep half the signal for training the reference and testing
        n_inj = np.floor(n_inj * (signal.height // 2) / n_inj.sum()).astype(int)
        warn(progress, f"{name}: only {signal.height} signal events: injecting {int(n_inj.sum())} "
                       f"(asked {int(np.round(o.n_signal * shares).sum())})")
    (sig_order,) = split_rows(signal.height, [], o.seed, "signal", data_seed)
    sig_train_inj, sig_val_inj, sig_hunt_inj, rest = np.split(sig_order, np.cumsum(n_inj))
    n_ref = int(np.floor(o.signal_train_fraction * len(rest)))
    sig_ref, sig_test = rest[:n_ref], rest[n_ref:]

    def data(bg_rows: np.ndarray, sig_rows: np.ndarray, stream: str) -> pl.DataFrame:
        mixed = pl.concat([with_bookkeeping(take(background, bg_rows), "background"),
                           with_bookkeeping(take(signal, sig_rows), SIGNAL)])
        return _shuffled(_in_range(mixed, o.mjj_min, o.mjj_max), o.seed, stream, data_seed)

    def in_sr(table: pl.DataFrame) -> pl.DataFrame:
        return _in_range(table, o.sr_low, o.sr_high)

    train = data(bg[0], sig_train_inj, "train")
    validation = data(bg[1], sig_val_inj, "validation")
    hunt = data(bg[2], sig_hunt_inj, "hunt")
    test = in_sr(with_bookkeeping(take(background, bg[3]), "background"))
    model = in_sr(with_bookkeeping(take(background, bg[4]), "background"))
    sig_test_t = in_sr(with_bookkeeping(take(signal, sig_test), SIGNAL))
    sig_ref_t = with_bookkeeping(take(signal, sig_ref), SIGNAL)

    fit_data = pl.concat([train, validation])
    geometry = check_regions(name, o, fit_data[RESONANT].to_numpy().astype(np.float64))

    prep = Standardiser.fit(train, FEATURES) if o.preprocessing == "standard" else None
    tables = [train, validation, hunt, test, model, sig_test_t, sig_ref_t]
    if prep:
        tables = [prep.transform(t) for t in tables]
    train, validation, hunt, test, model, sig_test_t, sig_ref_t = tables

    sizes = {"train": train.height, "validation": validation.height, "test": test.height,
             f"signal/{SIGNAL}": sig_test_t.height, f"signal_train/{SIGNAL}": sig_ref_t.height,
             "extra/background_model": model.height, "extra/hunt": hunt.height}
    composition = {
        "train": sr_composition(pl.concat([train, validation]), o),
        "hunt": sr_composition(hunt, o),
        "test": sr_counts(sig_test_t.height, test.height),
    }
    meta = meta | geometry | {
        "options": as_dict(o), "inputs": facts, "split_sizes": sizes,
        "n_signal_requested": o.n_signal,
        "n_signal_injected": {"train": int((train[LABEL] == 1).sum()), "validation": int((validation[LABEL] == 1).sum()),
                              "hunt": int((hunt[LABEL] == 1).sum())},
        "injected_s_over_b": o.n_signal / background.height if background.height else None,
        # S and B in the SR: train = train + validation (what detectors learn from), hunt (held-out
        # data), test (separate signal and background samples for ROC metrics, not a mixture).
        "sr_composition": composition,
        "signal_region_data": composition["train"],
        "preprocessing": prep.to_meta() if prep else "none",
        "mjj_unit": "TeV",
    } | ({"data_seed": data_seed} if data_seed is not None else {})
    return Benchmark(
        dataset=name, version=version, task="resonant", features=list(FEATURES), train=train,
        validation=validation, test=test, signals={SIGNAL: sig_test_t}, signal_train={SIGNAL: sig_ref_t},
        extra={"background_model": model, "hunt": hunt}, resonant=RESONANT, meta=meta,
    )


# -- feature sets (issue 13) -------------------------------------------------
def assemble_feature_set(name: str, version: str, options: ResonantOptions, events: pl.DataFrame,
                         facts: dict[str, dict[str, Any]], meta: dict[str, Any], progress: Progress,
                         data_seed: int | None = None) -> Benchmark:
    """:func:`assemble_resonant` with the detector inputs chosen by ``options.features``.

    "cathode4" is assemble_resonant itself. "ganae42" partitions the same way
    (the table from :func:`~hepad_plugins.datasets.lhco_raw.read_raw_features`
    carries the CATHODE columns too), then makes the 42 GAN-AE columns the
    features, standardised with the training data like the CATHODE ones.
    """
    if options.features == "cathode4":
        return assemble_resonant(name, version, options, events, facts, meta, progress, data_seed)
    from dataclasses import replace

    from hepad_plugins.generators.jet_features import GANAE42

    missing = [c for c in GANAE42 if c not in events.columns]
    if missing:
        raise DataError(f"{name}: the event table lacks the GAN-AE columns ({', '.join(missing[:3])}, ...)")
    base = assemble_resonant(name, version, replace(options, preprocessing="none"), events, facts, meta, progress,
                             data_seed)
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



class ResonantDataset(Dataset):
    """What the LHCO-layout datasets share: a background-only twin and the sliding-window scan."""

    task = "resonant"
    null_options = (("n_signal", "0"),)
    uses_data_seed = True  # --data-seed draws the partition and which signal events are injected

    def scan_options(self) -> list[tuple[tuple[str, str], ...]]:
        return [(("sr_low", f"{a:.6g}"), ("sr_high", f"{b:.6g}")) for a, b in self.options.scan_windows()]


class LHCO2020(ResonantDataset):
    """LHC Olympics 2020 R&D dijets (Kasieczka et al. 2021): CATHODE features, W' signal injected, SR 3.3-3.7 TeV."""

    name = "lhco2020"
    version = "2"  # 2: n_signal per full background sample (every data split at the same S/B); region checks
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
        path = require_file(self.name, FILE, data_dir, zenodo_url(RECORD, FILE), what="LHCO 2020 file")

        def read_raw(p: Path) -> tuple[pl.DataFrame, dict[str, Any]]:
            return cached_raw_table(self.name, p, READER_VERSION, lambda q: dijet_features(read_lhco_table(q)), progress)

        def assemble(raw: dict[str, pl.DataFrame], facts: dict[str, dict[str, Any]]) -> Benchmark:
            return assemble_resonant(self.name, self.version, self.options, raw["events"], facts,
                                     {"source": "LHC Olympics 2020 R&D features file (Zenodo)"}, progress,
                                     data_seed=self.data_seed)

        return load_benchmark(self.name, self.version, self.options, {"events": path}, read_raw, assemble,
                              reader_version=READER_VERSION, data_seed=self.data_seed)

    def _load_raw(self, data_dir: Path | None, progress: Progress) -> Benchmark:
        """features=ganae42: the constituent-level file, clustered once (cached) into the feature table."""
        lhco_raw.require_fastjet()
        name = lhco_raw.RAW_FILE
        path = require_file(self.name, name, data_dir, zenodo_url(RECORD, name),
                            what="LHCO 2020 raw file (needed by features=ganae42)",
                            fetch_command="hepad-bench datasets fetch lhco2020 -o features=ganae42")

        def read_raw(p: Path) -> tuple[pl.DataFrame, dict[str, Any]]:
            progress.log(f"clustering {p.name} with FastJet (once; the result is cached)")
            return cached_raw_table(self.name, p, f"raw-{lhco_raw.READER_VERSION}", lhco_raw.read_raw_features, progress)

        def assemble(raw: dict[str, pl.DataFrame], facts: dict[str, dict[str, Any]]) -> Benchmark:
            return assemble_feature_set(self.name, self.version, self.options, raw["events"], facts,
                                        {"source": "LHC Olympics 2020 R&D raw constituent file (Zenodo)"}, progress,
                                        data_seed=self.data_seed)

        return load_benchmark(self.name, self.version, self.options, {"events": path}, read_raw, assemble,
                              reader_version=f"raw-{lhco_raw.READER_VERSION}", data_seed=self.data_seed)


@hookimpl
def hepad_datasets() -> list[type[Dataset]]:
    return [LHCO2020]
