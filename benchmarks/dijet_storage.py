"""Bytes per event of the dijet sample's possible shipped forms, from a generated folder.

    hepad-bench generate dijet --events 400 --signal-events 400 --seed 7 --out DIR
    python benchmarks/dijet_storage.py DIR [--budget-mb 20]

Prints, for zstd-19 Parquet: the feature table (mjj + 4 CATHODE + 42 GAN-AE
columns + label) in float32 and float16, and the two jets' constituents as
list columns in float32 and float16; the worst float16 rounding of the
constituents' eta and phi; and how many events each form fits in the budget.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from hepad_plugins.datasets.lhco_raw import RAW_FILE, features_of_block


def parquet_bytes(table: pa.Table) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.parquet"
        pq.write_table(table, path, compression="zstd", compression_level=19)
        return path.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--budget-mb", type=float, default=20.0)
    args = parser.parse_args()
    raw = pd.read_hdf(args.folder / RAW_FILE).to_numpy()
    n = len(raw)
    triplets = raw[:, :-1].reshape(n, -1, 3)
    real = triplets[..., 0] > 0
    offsets = pa.array(np.r_[0, np.cumsum(real.sum(axis=1))].astype(np.int32))
    features = features_of_block(raw)
    forms = {}
    for name, dtype in (("float32", np.float32), ("float16", np.float16)):
        target = pl.Float16 if dtype is np.float16 else pl.Float32
        cast = [pl.col(c).cast(target) for c in features.columns if c != "label"]
        forms[f"features {name}"] = parquet_bytes(features.with_columns(cast).to_arrow()) / n
        lists = {k: pa.ListArray.from_arrays(offsets, pa.array(triplets[..., i][real].astype(dtype)))
                 for i, k in enumerate(("pt", "eta", "phi"))}
        lists["label"] = pa.array(raw[:, -1].astype(np.int8))
        forms[f"constituents {name}"] = parquet_bytes(pa.table(lists)) / n
    print(f"{n} events, {real.sum(axis=1).mean():.0f} constituents per event")
    for name, per_event in forms.items():
        fits = args.budget_mb * 1e6 / per_event
        print(f"{name:24s} {per_event:8.0f} bytes/event  {fits:10.0f} events in {args.budget_mb:g} MB")
    for i, k in ((1, "eta"), (2, "phi")):
        v = triplets[..., i][real]
        print(f"float16 rounding of {k}: max {np.abs(v.astype(np.float16).astype(np.float64) - v).max():.1e}")


if __name__ == "__main__":
    main()
