"""Small generated samples that ship inside hepad-bench: ``l1-pythia`` and ``dijet-pythia``.

They are NOT the public challenge data: they were generated with Pythia 8 by
``hepad-bench generate`` and converted by ``datasets/build_embedded.py`` (see
each card). They exist so that the benchmark runs out of the box, offline.

They go through the same code as the public loaders; only the file reading
differs. ``l1-pythia`` stores the raw table that
:func:`~hepad_plugins.datasets.adc2021.read_particles` makes from the
ADC2021-layout HDF5 files (57 float32 columns, plus a per-event ``weight`` for
the background) and is split and preprocessed by
:func:`~hepad_plugins.datasets.adc2021.assemble_unsupervised`.
``dijet-pythia`` stores the public LHCO R&D columns, turned into features by
:func:`~hepad_plugins.datasets.lhco2020.dijet_features` and partitioned by
:func:`~hepad_plugins.datasets.lhco2020.assemble_resonant`; with
``-o features=ganae42`` it reads the table that
:func:`~hepad_plugins.datasets.lhco_raw.read_raw_features` made from the
generated constituent file (the lhco2020 raw-file path), partitioned by
:func:`~hepad_plugins.datasets.lhco2020.assemble_feature_set`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import polars as pl

from hepad_bench import hookimpl
from hepad_bench.contracts import Dataset, Progress
from hepad_bench.data import WEIGHT, Benchmark
from hepad_bench.errors import DataError, UserError
from hepad_plugins._resources import dataset_folder, read_card
from hepad_plugins.datasets import adc2021, lhco2020
from hepad_bench.dataset_tools import load_benchmark, sha256_of
from hepad_plugins.datasets._yields import l1_generated_yields

L1_BACKGROUND = "background.parquet"
DIJET_EVENTS = "events.parquet"
#: GAN-AE 42 + CATHODE 4 + mjj (float32) and label, computed from the generated constituents (features=ganae42).
DIJET_GANAE = "events_ganae42.parquet"
PROVENANCE = "provenance.json"
REBUILD = "python datasets/build_embedded.py (from a source checkout, after 'hepad-bench generate')"


def l1_signal_file(signal: str) -> str:
    return f"signal_{signal}.parquet"


def content_identity(path: Path) -> dict[str, Any]:
    """Shipped files are small: identify them by content (install times say nothing)."""
    return {"name": path.name, "size": path.stat().st_size, "sha256": sha256_of(path)}


def read_embedded(path: Path, columns: list[str], float32: bool) -> pl.DataFrame:
    """One shipped Parquet table, checked to hold ``columns`` (float32 where asked)."""
    try:
        table = pl.read_parquet(path)
    except Exception as exc:  # polars raises several types for a damaged file
        raise DataError(f"{path}: not a readable Parquet file ({type(exc).__name__}); rebuild it with {REBUILD}") from None
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise DataError(f"{path}: missing columns {', '.join(missing[:5])}; rebuild it with {REBUILD}")
    if float32 and any(table[c].dtype != pl.Float32 for c in columns):
        raise DataError(f"{path}: feature columns are not float32; rebuild it with {REBUILD}")
    return table


def _require(path: Path, name: str) -> Path:
    if not path.is_file():
        raise UserError(f"embedded dataset {name} is missing {path}; rebuild it with {REBUILD}")
    return path


def _generation_seed(attributes: dict[str, Any]) -> Any:
    """The generator's seed: an HDF5 attribute (l1) or inside the pandas table's record (dijet)."""
    if "seed" in attributes:
        return attributes["seed"]
    record = attributes.get("hepad_generation")
    return record.get("seed") if isinstance(record, dict) else None


def provenance(name: str, part: str | None = None) -> dict[str, Any]:
    """The short form of a sample's provenance.json for Benchmark.meta (the file has everything).

    ``part`` names a table built on its own, whose record sits under that key
    (dijet-pythia's ``ganae42``: the v2 sample, built apart from ``events.parquet``).
    """
    path = dataset_folder(name) / PROVENANCE
    if not path.is_file():
        return {}
    record = json.loads(path.read_text())
    if part is not None:
        record = record.get(part) or {}
    sources = {
        role: {"file": Path(src.get("file", "")).name, "sha256": src.get("sha256"), "events": src.get("events"),
               "generation_seed": _generation_seed(src.get("attributes") or {})}
        for role, src in record.get("sources", {}).items()
    }
    return {"built_utc": record.get("built_utc"), "command": record.get("command"), "sources": sources}


class L1Pythia(Dataset):
    """Pythia 8 L1-trigger-like events in the ADC2021 schema (shipped, small; NOT the challenge data)."""

    name = "l1-pythia"
    version = "2"  # 2: background without the pilot events replayed by the generator (v1 had ~1500 duplicates)
    task = "unsupervised"
    card = read_card("l1-pythia")
    Options = adc2021.UnsupervisedOptions
    uses_data_seed = True  # --data-seed draws the splits (adc2021.assemble_unsupervised)

    def load(self, data_dir: Path | None, progress: Progress) -> Benchmark:
        folder = dataset_folder(self.name)
        inputs = {"background": _require(folder / L1_BACKGROUND, self.name)}
        for sig in adc2021.SIGNALS:
            if (folder / l1_signal_file(sig)).is_file():
                inputs[f"signal/{sig}"] = folder / l1_signal_file(sig)
        if len(inputs) == 1:
            raise UserError(f"embedded dataset {self.name} has no signal files in {folder}; rebuild it with {REBUILD}")

        def read_raw(path: Path) -> tuple[pl.DataFrame, dict[str, Any]]:
            table = read_embedded(path, adc2021.FEATURES, float32=True)
            return table, {"file": path.name, "size": path.stat().st_size, "events": table.height}

        def assemble(raw: dict[str, pl.DataFrame], facts: dict[str, dict[str, Any]]) -> Benchmark:
            meta = {"source": "generated with Pythia 8 (hepad-bench generate l1); not the ADC2021 data",
                    "provenance": provenance(self.name),
                    "weights": "background: per-process sigma x efficiency weights normalised to mean 1"
                    if WEIGHT in raw["background"].columns else "1"}
            return adc2021.assemble_unsupervised(self.name, self.version, self.options, raw, facts, meta,
                                                 data_seed=self.data_seed)

        bench = load_benchmark(self.name, self.version, self.options, inputs, read_raw, assemble,
                               identity=content_identity, reader_version="embedded-1", data_seed=self.data_seed)
        # physical yields and rate from the generator's cross sections (added after the cache: data unchanged)
        bench.meta |= l1_generated_yields(folder / PROVENANCE)
        return bench


#: The feature sets of dijet-pythia and the sample each reads: v1 (31 500 + 6 000 events, ``events.parquet``, the
#: committed leaderboard) or v2 (140 000 + 15 000 events with constituents, ``events_ganae42.parquet``).
DIJET_FEATURE_SETS = {"cathode4": "v1", "ganae42": "v2", "cathode4-v2": "v2"}


@dataclass
class DijetPythiaOptions(lhco2020.ResonantOptions):
    """As lhco2020's options, with ``n_signal`` (550 per 31 500 background events, S/B 1.7 %) scaled to the small sample (see the card).

    features: "cathode4" (default: the four CATHODE features of the v1
    sample, 31 500 QCD + 6 000 signal events), "ganae42" (the 42 GAN-AE
    features of the v2 sample, 140 000 + 15 000 events, computed from the
    constituents) or "cathode4-v2" (the four CATHODE features of that same v2
    sample, from its massless constituents). n_signal is the same number on
    either sample (on v2 it is S/B 0.39 %; -o n_signal=2444 restores 1.7 %).
    """

    n_signal: int = 550
    # the same field as lhco2020's, one more value; the default is unchanged, so run keys are too
    features: Literal["cathode4", "ganae42", "cathode4-v2"] = "cathode4"


class DijetPythia(lhco2020.ResonantDataset):
    """Pythia 8 QCD dijets + W' -> X Y in the LHCO R&D schema (shipped, small; NOT the challenge data)."""

    name = "dijet-pythia"
    version = "2"  # 2: n_signal per full background sample (550 ~ the 300 of v1 in train + validation); region checks
    card = read_card("dijet-pythia")
    Options = DijetPythiaOptions

    def load(self, data_dir: Path | None, progress: Progress) -> Benchmark:
        if DIJET_FEATURE_SETS[self.options.features] == "v2":
            return self._load_v2(progress)
        path = _require(dataset_folder(self.name) / DIJET_EVENTS, self.name)

        def read_raw(p: Path) -> tuple[pl.DataFrame, dict[str, Any]]:
            table = lhco2020.validate_lhco_table(p, read_embedded(p, lhco2020.COLUMNS, float32=False))
            return lhco2020.dijet_features(table), {"file": p.name, "size": p.stat().st_size, "events": table.height}

        def assemble(raw: dict[str, pl.DataFrame], facts: dict[str, dict[str, Any]]) -> Benchmark:
            meta = {"source": "generated with Pythia 8 + FastJet (hepad-bench generate dijet); not the LHCO data",
                    "provenance": provenance(self.name)}
            return lhco2020.assemble_resonant(self.name, self.version, self.options, raw["events"], facts, meta, progress,
                                              data_seed=self.data_seed)

        return load_benchmark(self.name, self.version, self.options, {"events": path}, read_raw, assemble,
                              identity=content_identity, reader_version="embedded-1", data_seed=self.data_seed)

    def _load_v2(self, progress: Progress) -> Benchmark:
        """The v2 table (features=ganae42 or cathode4-v2): one float16 file with mjj, both feature sets and label."""
        from hepad_plugins.datasets.lhco_raw import CATHODE4
        from hepad_plugins.generators.jet_features import GANAE42

        path = dataset_folder(self.name) / DIJET_GANAE
        if not path.is_file():
            raise UserError(f"embedded dataset {self.name} has no constituent-level table {DIJET_GANAE} (needed by "
                            f"features={self.options.features}): generate with 'hepad-bench generate dijet' "
                            f"(see its card) and rebuild it with {REBUILD}")

        def read_raw(p: Path) -> tuple[pl.DataFrame, dict[str, Any]]:
            columns = [lhco2020.RESONANT, *CATHODE4, *GANAE42]
            table = read_embedded(p, [*columns, "label"], float32=False)
            # float16 on disk saves 40 % of the bytes (see the card); detectors get float32
            if any(table[c].dtype not in (pl.Float16, pl.Float32) for c in columns):
                raise DataError(f"{p}: feature columns are not float16/float32; rebuild it with {REBUILD}")
            table = table.with_columns([pl.col(c).cast(pl.Float32) for c in columns] + [pl.col("label").cast(pl.Int8)])
            return table, {"file": p.name, "size": p.stat().st_size, "events": table.height}

        def assemble(raw: dict[str, pl.DataFrame], facts: dict[str, dict[str, Any]]) -> Benchmark:
            meta = {"source": "generated with Pythia 8 + FastJet (hepad-bench generate dijet), v2 sample: features "
                              "from the two jets' massless constituents; not the LHCO data",
                    "sample": "v2", "provenance": provenance(self.name, "ganae42")}
            if self.options.features == "cathode4-v2":  # the CATHODE features of the v2 events
                events = raw["events"].select([lhco2020.RESONANT, *CATHODE4, "label"])
                bench = lhco2020.assemble_resonant(self.name, self.version, self.options, events, facts, meta, progress)
                return replace(bench, meta=bench.meta | {"feature_set": "cathode4-v2"})
            return lhco2020.assemble_feature_set(self.name, self.version, self.options, raw["events"], facts, meta,
                                                 progress, data_seed=self.data_seed)

        return load_benchmark(self.name, self.version, self.options, {"events": path}, read_raw, assemble,
                              identity=content_identity, reader_version="embedded-1", data_seed=self.data_seed)


@hookimpl
def hepad_datasets() -> list[type[Dataset]]:
    return [L1Pythia, DijetPythia]
