"""The LHC Olympics 2020 R&D raw (constituent-level) layout and the GAN-AE feature set read from it.

Public file (Zenodo record 4536377, CC BY 4.0): ``events_anomalydetection_v2.h5``,
a pandas HDF5 table (key ``df``) of 1.1 M events and 2101 columns: up to 700
massless hadrons per event as (pT [GeV], eta, phi) triplets, pT-ordered and
zero-padded, then the truth label (1 = signal). ``hepad-bench generate dijet``
writes the same layout (float32) for its events.

:func:`read_raw_features` streams such a file in blocks of events (the public
one is about 18 GB as float64) through
:func:`hepad_plugins.generators.jet_features.ganae_features` and returns one
table: the 42 GAN-AE features, the four CATHODE features recomputed from the
same jets, ``mjj`` (TeV) and ``label``. FastJet (``pip install
'hepad-bench[generate]'``) does the clustering.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from hepad_bench.data import LABEL
from hepad_bench.errors import DataError, UserError

RAW_FILE = "events_anomalydetection_v2.h5"
#: Bump when the features computed from a raw file change (the converted-table cache is keyed by it).
READER_VERSION = "1"
MAX_PARTICLES = 700
RAW_COLUMNS = 3 * MAX_PARTICLES + 1
#: Events per block when streaming the raw file (about 12 MB of float64 per 1000 events).
BLOCK_EVENTS = 5000
CATHODE4 = ["mj_light", "mj_diff", "tau21_light", "tau21_heavy"]


def require_fastjet() -> None:
    """A one-line UserError when the clustering dependencies are missing."""
    try:
        import awkward  # noqa: F401
        import fastjet  # noqa: F401
        import vector  # noqa: F401
    except ImportError as exc:
        raise UserError(f"features=ganae42 clusters jets with FastJet, which is not installed ({exc.name}): "
                        "pip install 'hepad-bench[generate]'") from None


def raw_matrix(pt: np.ndarray, eta: np.ndarray, phi: np.ndarray, label: np.ndarray) -> np.ndarray:
    """(n, 2101) float32 rows in the LHCO raw layout from (n, k <= 700) particle arrays (pT = 0: none).

    Particles are written pT-ordered (highest first) and zero-padded to 700; a
    row with more than 700 particles keeps the 700 hardest.
    """
    pt = np.asarray(pt, dtype=np.float64)
    n = len(pt)
    order = np.argsort(-pt, axis=1, kind="stable")[:, :MAX_PARTICLES]
    out = np.zeros((n, MAX_PARTICLES, 3), dtype=np.float32)
    k = order.shape[1]
    for i, a in enumerate((pt, eta, phi)):
        out[:, :k, i] = np.take_along_axis(np.asarray(a, dtype=np.float64), order, axis=1)
    out[out[..., 0] <= 0] = 0.0  # padding is all zero, as in the public file
    return np.concatenate([out.reshape(n, -1), np.asarray(label, dtype=np.float32)[:, None]], axis=1)


def write_raw(path: Path, matrix: np.ndarray) -> None:
    """Write an (n, 2101) raw-layout matrix as the public file does: pandas fixed format, key ``df``."""
    import pandas as pd

    if matrix.ndim != 2 or matrix.shape[1] != RAW_COLUMNS:
        raise ValueError(f"raw matrix of shape {matrix.shape}: expected (events, {RAW_COLUMNS})")
    path = Path(path)
    tmp = path.with_suffix(".h5.tmp")
    tmp.unlink(missing_ok=True)
    pd.DataFrame(matrix).to_hdf(tmp, key="df", mode="w", complevel=5, complib="blosc:lz4")
    tmp.replace(path)


def _shape(path: Path) -> tuple[str, int, int]:
    import pandas as pd

    try:
        with pd.HDFStore(path, mode="r") as store:
            keys = store.keys()
            if not keys:
                raise DataError(f"{path}: empty HDF5 file; expected the LHCO raw table {RAW_FILE}")
            storer = store.get_storer(keys[0])
            shape = getattr(storer, "shape", None)  # (rows, columns) of a fixed-format frame
            if shape is None or len(shape) != 2:
                raise DataError(f"{path}: not a pandas fixed-format table; expected the LHCO raw table {RAW_FILE}")
    except DataError:
        raise
    except Exception as exc:  # tables / pandas raise many types for a foreign file
        why = type(exc).__name__
        raise DataError(f"{path}: not a readable pandas HDF5 table ({why}); expected {RAW_FILE}") from None
    n_events, n_cols = int(shape[0]), int(shape[1])
    if n_cols != RAW_COLUMNS:
        raise DataError(f"{path}: {n_cols} columns, expected {RAW_COLUMNS} (700 x pT, eta, phi + label) "
                        f"of the LHCO raw layout {RAW_FILE}")
    if n_events <= 0:
        raise DataError(f"{path}: holds no events")
    return keys[0], n_events, n_cols


def features_of_block(block: np.ndarray) -> pl.DataFrame:
    """GAN-AE 42 + CATHODE 4 + ``mjj`` (float32) and ``label`` (int8) of raw-layout rows."""
    from hepad_plugins.generators import jet_features as jf

    values = np.asarray(block, dtype=np.float64)
    label = values[:, -1]
    if not np.isfinite(values).all():
        raise DataError(f"{int((~np.isfinite(values)).any(axis=1).sum())} events with non-finite particle values")
    if not np.isin(label, (0.0, 1.0)).all():
        raise DataError(f"label column holds {sorted(set(label.tolist()))[:5]}, expected 0 or 1")
    pt, eta, phi = jf.split_raw(values[:, :-1])
    if (pt < 0).any():
        raise DataError("negative particle pT: not the LHCO raw layout (pT, eta, phi)")
    feats = jf.ganae_features(pt, eta, phi)
    feats |= jf.cathode_columns(feats)
    columns = ["mjj", *CATHODE4, *jf.GANAE42]
    return pl.DataFrame({c: feats[c].astype(np.float32) for c in columns}).with_columns(
        pl.Series(LABEL, label.astype(np.int8)))


def read_raw_features(path: Path, max_events: int | None = None, block_events: int = BLOCK_EVENTS) -> pl.DataFrame:
    """The feature table of a raw-layout file, computed block by block (DataError naming the file if invalid)."""
    import pandas as pd

    require_fastjet()
    path = Path(path)
    key, n_events, _ = _shape(path)
    if max_events is not None:
        n_events = min(n_events, max_events)
    parts = []
    for start in range(0, n_events, block_events):
        block = pd.read_hdf(path, key=key, start=start, stop=min(start + block_events, n_events)).to_numpy()
        try:
            parts.append(features_of_block(block))
        except DataError as exc:
            raise DataError(f"{path}, events {start}-{start + len(block)}: {exc}") from None
    return pl.concat(parts)
