"""Build the embedded samples (l1-pythia, dijet-pythia) from generated HDF5 files.

One command, from the repository root, after ``hepad-bench generate l1`` and
``hepad-bench generate dijet`` have written their files::

    python datasets/build_embedded.py --l1 /work/gen/l1 --dijet /work/gen/dijet

It reads the HDF5 with the SAME readers the public datasets use
(``adc2021.read_particles``: layout validation and the 57 raw columns;
``lhco2020.read_lhco_table``: column validation), writes compact Parquet
(zstd) into ``datasets/l1-pythia`` and ``datasets/dijet-pythia``, and a
``provenance.json`` beside them with the generator's HDF5 attributes (command,
seed, versions, cross sections), the sha256 of every input and output, and
this command line.

dijet-pythia holds two tables from two generation runs, each built on its own
(``--dijet-table``, default: whichever the folder can make): ``events.parquet``
(v1, the public LHCO columns, feature set cathode4) from a folder without
constituents, and ``events_ganae42.parquet`` (v2: mjj, the 4 CATHODE and the
42 GAN-AE features computed by ``lhco_raw.read_raw_features``, the lhco2020
reader, from the constituent file ``events_anomalydetection_v2.h5``; float16
with ``--dijet-float16``) from a folder with it. Building one leaves the other
and its provenance record (the ``ganae42`` key of provenance.json) untouched::

    python datasets/build_embedded.py --only dijet --dijet /work/gen/dijet-v2 --dijet-float16

It exits with status 1 when the files of the folders built total more than
``--max-mb`` (25 MB), so the wheel stays small: then rerun with
``--l1-max-background`` to subsample.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import polars as pl

HERE = Path(__file__).resolve().parent
ZSTD_LEVEL = 19


def _decode(value: Any) -> Any:
    """HDF5 attribute -> JSON-friendly value (JSON strings are parsed)."""
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    if isinstance(value, np.ndarray):
        return [_decode(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return value.item()
    return value


def h5_attributes(path: Path) -> dict[str, Any]:
    import h5py

    with h5py.File(path, "r") as fh:
        return {k: _decode(v) for k, v in fh.attrs.items()}


def _sha256(path: Path) -> str:
    from hepad_bench.dataset_tools import sha256_of

    return sha256_of(path)


def _source(path: Path, events: int, attrs: dict[str, Any]) -> dict[str, Any]:
    return {"file": str(path), "size": path.stat().st_size, "sha256": _sha256(path), "events": events,
            "attributes": attrs}


def _write(table: pl.DataFrame, path: Path) -> dict[str, Any]:
    path.parent.mkdir(parents=True, exist_ok=True)
    table.write_parquet(path, compression="zstd", compression_level=ZSTD_LEVEL)
    return {"file": path.name, "size": path.stat().st_size, "sha256": _sha256(path), "events": table.height}


def _background_and_signals(source: Path, out: Path, bg_path: Path, background: pl.DataFrame, background_file: str,
                            read_signal: Callable[[Path], pl.DataFrame], label: str, max_background: int | None,
                            seed: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Write the (optionally subsampled) background and every signal found in ``source``: (sources, outputs)."""
    from hepad_plugins.datasets import adc2021, embedded
    from hepad_bench.dataset_tools import find_file

    full_events = background.height
    if max_background is not None and background.height > max_background:
        # a random subset (the file is ordered by process) that keeps the physical mixture
        keep = np.sort(np.random.default_rng(seed).choice(background.height, max_background, replace=False))
        background = background[keep]
    sources = {"background": _source(bg_path, full_events, h5_attributes(bg_path))}
    outputs = {"background": _write(background, out / background_file)}
    for sig, spec in adc2021.SIGNALS.items():
        path = find_file(spec.names, [source])
        target = out / embedded.l1_signal_file(sig)
        if path is None:
            print(f"{label}: no signal file for {sig} in {source} ({' or '.join(spec.names)}): skipped", file=sys.stderr)
            target.unlink(missing_ok=True)
            continue
        table = read_signal(path)
        sources[f"signal/{sig}"] = _source(path, table.height, h5_attributes(path))
        outputs[f"signal/{sig}"] = _write(table, target)
    return sources, outputs


def build_l1(source: Path, out: Path, max_background: int | None = None, seed: int = 0) -> dict[str, Any]:
    """ADC2021-layout HDF5 files in ``source`` -> ``out``/{background,signal_<name>}.parquet + provenance."""
    import h5py

    from hepad_plugins.datasets import adc2021, embedded

    bg_path = source / adc2021.BACKGROUND_FILE
    if not bg_path.is_file():
        raise SystemExit(f"no {adc2021.BACKGROUND_FILE} in {source}: run 'hepad-bench generate l1' first")
    background = adc2021.read_particles(bg_path)
    with h5py.File(bg_path, "r") as fh:
        weight = np.asarray(fh["Weight"], dtype=np.float64) if "Weight" in fh else None
    if weight is not None:
        if len(weight) != background.height or not np.all(np.isfinite(weight)) or weight.mean() <= 0:
            raise SystemExit(f"{bg_path}: 'Weight' does not match 'Particles' or is not positive")
        # sigma x eff / N per process, normalised so the mean weight is 1 (unweighted mixture stays ~1)
        background = background.with_columns(pl.Series("weight", (weight / weight.mean()).astype(np.float32)))
    sources, outputs = _background_and_signals(source, out, bg_path, background, embedded.L1_BACKGROUND,
                                               adc2021.read_particles, "l1", max_background, seed)
    return _provenance(out, "l1", sources, outputs, {"max_background": max_background, "subsample_seed": seed})


def build_lx(source: Path, out: Path, max_background: int | None = None, seed: int = 0) -> dict[str, Any]:
    """l1 version-3 HDF5 files in ``source`` -> ``out``/{background,signal_<name>}.parquet of the 21 l+X@HLT features."""
    from hepad_plugins.datasets import adc2021, lx_hlt

    bg_path = source / adc2021.BACKGROUND_FILE
    if not bg_path.is_file():
        raise SystemExit(f"no {adc2021.BACKGROUND_FILE} in {source}: run 'hepad-bench generate l1 --version 3' first")
    background, extras = lx_hlt.read_generated(bg_path)
    if "Weight" in extras:
        weight = extras["Weight"].astype(np.float64)
        background = background.with_columns(pl.Series("weight", (weight / weight.mean()).astype(np.float32)))
    if "Process" in extras:  # which SM process each event is (index into the file's process_names)
        background = background.with_columns(pl.Series("process", extras["Process"].astype(np.int8)))
    sources, outputs = _background_and_signals(source, out, bg_path, background, lx_hlt.BACKGROUND,
                                               lambda p: lx_hlt.read_generated(p)[0], "lx-hlt", max_background, seed)
    return _provenance(out, "l1 v3 (l+X@HLT view)", sources, outputs,
                       {"max_background": max_background, "subsample_seed": seed})


def _dijet_source(path: Path, events: int) -> dict[str, Any]:
    """The generated features file as a provenance source, with the generation record pandas stored on it."""
    import pandas as pd

    attrs: dict[str, Any] = {}
    with pd.HDFStore(path, mode="r") as store:
        storer = store.get_storer(store.keys()[0])
        for key in storer.attrs._v_attrnamesuser:
            attrs[key] = _decode(getattr(storer.attrs, key))
    return _source(path, events, attrs)


def build_dijet(source: Path, out: Path, float16: bool = False, table: str = "auto") -> dict[str, Any]:
    """The generated dijet files in ``source`` -> one table in ``out`` + its provenance.

    ``table`` "events": ``events.parquet`` (the public LHCO columns; the v1
    sample, feature set cathode4). "ganae42": ``events_ganae42.parquet``
    (mjj, the 4 CATHODE and the 42 GAN-AE features computed from the
    constituent file ``events_anomalydetection_v2.h5``, and label; the v2
    sample, feature sets ganae42 and cathode4-v2). "auto": ganae42 when the
    folder holds the constituent file, else events. The other table and its
    provenance are left as they are: the two tables come from different
    generation runs (see the card).
    """
    from hepad_plugins.datasets import embedded, lhco2020, lhco_raw

    path = source / lhco2020.FILE
    if not path.is_file():
        raise SystemExit(f"no {lhco2020.FILE} in {source}: run 'hepad-bench generate dijet' first")
    raw_path = source / lhco_raw.RAW_FILE
    if table == "auto":
        table = "ganae42" if raw_path.is_file() else "events"
    events = lhco2020.read_lhco_table(path).with_columns(pl.col("label").cast(pl.Int8))
    sources = {"events": _dijet_source(path, events.height)}
    if table == "events":
        outputs = {"events": _write(events, out / embedded.DIJET_EVENTS)}
        return _provenance(out, "dijet", sources, outputs, {}, part=None)
    if not raw_path.is_file():
        raise SystemExit(f"no {lhco_raw.RAW_FILE} in {source}: the ganae42 table needs the constituents "
                         f"(generate with the current 'hepad-bench generate dijet')")
    # the GAN-AE features through the same reader as lhco2020 -o features=ganae42
    features = lhco_raw.read_raw_features(raw_path)
    if features.height != events.height or features["label"].to_list() != events["label"].to_list():
        raise SystemExit(f"{raw_path}: events do not match {path} row by row (labels differ)")
    sources["constituents"] = _source(raw_path, features.height, {})
    if float16:  # 11 significant bits: enough for these features (card), 40 % smaller
        features = features.with_columns([pl.col(c).cast(pl.Float16) for c in features.columns if c != "label"])
    outputs = {"ganae42": _write(features, out / embedded.DIJET_GANAE)}
    return _provenance(out, "dijet (v2: constituents)", sources, outputs, {"float16": float16}, part="ganae42")


def shipped_outputs(record: dict[str, Any]) -> list[dict[str, Any]]:
    """Every output a provenance record lists: its own and those of the tables built apart (``part`` records)."""
    found = list(record.get("outputs", {}).values())
    for value in record.values():
        if isinstance(value, dict) and "outputs" in value and "built_by" in value:
            found += list(value["outputs"].values())
    return found


def _provenance(out: Path, kind: str, sources: dict, outputs: dict, options: dict,
                part: str | None = None) -> dict[str, Any]:
    """Write ``out``/provenance.json; a ``part`` (a table built on its own) replaces only its key in the record,
    and a whole-folder build keeps the existing part records (the files they describe are untouched)."""
    from importlib.metadata import version

    record = {
        "what": f"hepad-bench embedded sample built from generated '{kind}' HDF5 (NOT the public challenge data)",
        "built_by": "datasets/build_embedded.py",
        "command": " ".join(["python", "datasets/build_embedded.py", *sys.argv[1:]]),
        "built_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "options": options,
        "versions": {p: version(p) for p in ("hepad-bench", "h5py", "polars", "pandas")},
        "sources": sources,
        "outputs": outputs,
    }
    path = out / "provenance.json"
    previous = json.loads(path.read_text()) if path.is_file() else {}
    if part is not None:
        record = previous | {part: record}
    elif "ganae42" in previous:  # dijet: the v2 table's record outlives a rebuild of events.parquet
        record["ganae42"] = previous["ganae42"]
    path.write_text(json.dumps(record, indent=1, default=str) + "\n")
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--l1", type=Path, default=Path("/work/gen/l1"), help="folder with the generated l1 HDF5")
    parser.add_argument("--dijet", type=Path, default=Path("/work/gen/dijet"), help="folder with the dijet HDF5")
    parser.add_argument("--out", type=Path, default=HERE, help="the datasets/ folder to write into")
    parser.add_argument("--only", choices=("l1", "dijet", "lx-hlt"), help="build one sample only")
    parser.add_argument("--l1-max-background", type=int, default=None, help="subsample the l1 background")
    parser.add_argument("--max-mb", type=float, default=25.0, help="refuse a total above this (MB)")
    parser.add_argument("--dijet-float16", action="store_true", help="store the GAN-AE feature table as float16")
    parser.add_argument("--dijet-table", choices=("auto", "events", "ganae42"), default="auto",
                        help="dijet table to build: events.parquet (v1, cathode4), events_ganae42.parquet (v2, from "
                             "the constituents), or auto: ganae42 when the folder has the constituent file")
    args = parser.parse_args(argv)
    records = {}
    if args.only == "lx-hlt":  # not in the default build until its sample ships (see its card)
        records["lx-hlt-pythia"] = build_lx(args.l1, args.out / "lx-hlt-pythia", args.l1_max_background)
    if args.only in (None, "l1"):
        records["l1-pythia"] = build_l1(args.l1, args.out / "l1-pythia", args.l1_max_background)
    if args.only in (None, "dijet"):
        records["dijet-pythia"] = build_dijet(args.dijet, args.out / "dijet-pythia", float16=args.dijet_float16,
                                              table=args.dijet_table)
    total = 0
    for name, record in records.items():  # every shipped file of the folders built, rebuilt now or not
        for info in shipped_outputs(record):
            total += info["size"]
            print(f"{name}/{info['file']}: {info['events']} events, {info['size'] / 1e6:.2f} MB")
    print(f"total {total / 1e6:.2f} MB (the folders built)")
    if total > args.max_mb * 1e6:
        print(f"error: above --max-mb {args.max_mb}; rerun with --l1-max-background", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
