"""Reading the columns a ``table`` card needs from ROOT, Parquet, HDF5 and CSV files,
and turning them into fixed-length float features with awkward.

Every reader gives, per requested name, an awkward array with one entry per
event: a number (flat column) or a list of numbers (a jagged branch, a list
column, a 2-D HDF5 dataset). :func:`evaluate` then applies one feature
expression (see ``table_card``). A problem is a one-line :class:`DataError`
naming the file and the column, branch or key.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from hepad_bench.errors import DataError
from hepad_plugins.datasets.table_card import Card, Feature

#: file suffix -> reader
KINDS = {".root": "root", ".parquet": "parquet", ".pq": "parquet", ".h5": "hdf5", ".hdf5": "hdf5", ".hdf": "hdf5",
         ".csv": "csv"}
TREE_CLASSES = ("TTree", "ROOT::RNTuple")
#: internal name of the label column in a converted file (dropped from the benchmark tables)
LABEL_COLUMN = "__label__"


def _why(exc: Exception) -> str:
    """An exception as one line (some libraries put newlines in their messages)."""
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


def _hint(name: str, available: list[str]) -> str:
    close = difflib.get_close_matches(name, available, n=3)
    if close:
        return f" (did you mean {', '.join(repr(c) for c in close)}?)"
    shown = ", ".join(available[:12]) + (", ..." if len(available) > 12 else "")
    return f" (it has: {shown or 'nothing'})"


class Source:
    """The columns of one file (one tree or key), read on demand."""

    word = "column"

    def __init__(self, path: Path, names: list[str], get: Callable[[str], Any]):
        self.path, self.names, self._get = path, names, get
        self._read: dict[str, Any] = {}  # a branch used by several expressions is read once

    def array(self, name: str):
        """The awkward array of column ``name`` (DataError naming file and column when absent)."""
        if name not in self._read:
            self._read[name] = self._array(name)
        return self._read[name]

    def _array(self, name: str):
        import awkward as ak

        if name not in self.names:
            raise DataError(f"{self.path}: no {self.word} '{name}'{_hint(name, self.names)}")
        try:
            values = self._get(name)
        except DataError:
            raise
        except Exception as exc:  # a type the library cannot interpret
            raise DataError(f"{self.path}: {self.word} '{name}' cannot be read ({_why(exc)})") from None
        return values if isinstance(values, ak.Array) else _to_awkward(values)


def _to_awkward(values: Any):
    import awkward as ak

    arr = np.asarray(values)
    if arr.dtype.kind in "OSU":  # strings (a label column): one Python string per event
        return ak.Array([v.decode() if isinstance(v, bytes) else str(v) for v in arr.tolist()])
    return ak.from_numpy(arr, regulararray=True)


def open_root(path: Path, tree: str | None) -> Source:
    import uproot

    try:
        fh = uproot.open(path)
    except Exception as exc:
        raise DataError(f"{path}: not a readable ROOT file ({_why(exc)})") from None
    # TTrees and RNTuples (what uproot >= 5.7 writes by default) are read alike
    trees = sorted({k.rsplit(";", 1)[0] for k, c in fh.classnames().items() if c in TREE_CLASSES})
    if tree is None:
        if len(trees) != 1:
            raise DataError(f"{path}: holds {len(trees)} TTrees ({', '.join(trees) or 'none'}); "
                            'name one with tree = "..." in the card')
        tree = trees[0]
    try:
        obj = fh[tree]
    except Exception:
        raise DataError(f"{path}: no TTree '{tree}'{_hint(tree, trees)}") from None
    if getattr(obj, "classname", None) not in TREE_CLASSES:
        raise DataError(f"{path}: '{tree}' is a {getattr(obj, 'classname', type(obj).__name__)}, not a TTree "
                        f"(TTrees: {', '.join(trees) or 'none'})")
    names = list(dict.fromkeys([*(obj.keys(full_paths=False) if isinstance(obj, uproot.TTree) else []), *obj.keys()]))
    src = Source(path, names, lambda n: obj[n].array(library="ak"))
    src.word = "branch"
    return src


def open_parquet(path: Path) -> Source:
    import awkward as ak
    import pyarrow.parquet as pq

    try:
        names = list(pq.read_schema(path).names)
    except Exception as exc:
        raise DataError(f"{path}: not a readable Parquet file ({_why(exc)})") from None
    return Source(path, names, lambda n: ak.from_arrow(pq.read_table(path, columns=[n]).column(n)))


def open_csv(path: Path) -> Source:
    try:
        frame = pl.read_csv(path, infer_schema_length=None)
    except Exception as exc:
        raise DataError(f"{path}: not a readable CSV file ({_why(exc)})") from None

    def get(name: str) -> Any:
        col = frame[name]
        if col.null_count():
            row = int(col.is_null().arg_max())
            raise DataError(f"{path}: column '{name}' has {col.null_count()} empty values (first in row {row})")
        return col.to_numpy()

    return Source(path, frame.columns, get)


def open_hdf5(path: Path, key: str | None) -> Source:
    """A pandas table (written by ``DataFrame.to_hdf``), a compound dataset, or a group of datasets
    (each 1-D dataset a column, each 2-D one an array per event)."""
    import h5py

    try:
        fh = h5py.File(path, "r")
    except OSError as exc:
        raise DataError(f"{path}: not a readable HDF5 file ({_why(exc)})") from None
    with fh:
        keys = list(fh.keys())
        if key is not None and key.strip("/") not in fh:
            raise DataError(f"{path}: no HDF5 key '{key}'{_hint(key, keys)}")
        obj = fh[key] if key is not None else fh["/"]
        if key is None and len(keys) == 1 and not isinstance(fh[keys[0]], h5py.Dataset) \
                and "pandas_type" in fh[keys[0]].attrs:
            key, obj = keys[0], fh[keys[0]]  # a file holding one pandas table
        if isinstance(obj, h5py.Group) and "pandas_type" in obj.attrs:
            return _pandas_source(path, key)
        if key is None and len(keys) == 1 and isinstance(fh[keys[0]], h5py.Dataset) and fh[keys[0]].dtype.names:
            obj = fh[keys[0]]  # one compound dataset
        if isinstance(obj, h5py.Dataset):
            if not obj.dtype.names:
                raise DataError(f"{path}: '{obj.name}' is a plain dataset of shape {obj.shape}; name a group of "
                                "column datasets, a compound dataset or a pandas table with tree = \"...\"")
            data = obj[()]
            return Source(path, list(obj.dtype.names), lambda n: data[n])
        group = obj.name
        shapes = {n: obj[n].shape for n in obj if isinstance(obj[n], h5py.Dataset)}
    lengths = {n: s[0] for n, s in shapes.items() if len(s) >= 1}

    def get(name: str) -> Any:  # read on demand: a group may hold large datasets the card does not use
        if name not in lengths:
            raise DataError(f"{path}: dataset '{name}' is a scalar, not one value per event")
        if len(set(lengths.values())) > 1:
            raise DataError(f"{path}: the datasets have different lengths ({lengths}); cannot tell events apart")
        with h5py.File(path, "r") as fh:
            return fh[group][name][()]

    return Source(path, list(shapes), get)


def _pandas_source(path: Path, key: str | None) -> Source:
    import pandas as pd

    try:
        frame = pd.read_hdf(path, key)
    except Exception as exc:
        raise DataError(f"{path}: pandas cannot read key '{key}' ({_why(exc)})") from None
    if isinstance(frame, pd.Series):
        frame = frame.to_frame()
    return Source(path, [str(c) for c in frame.columns], lambda n: frame[n].to_numpy())


def open_source(path: Path, tree: str | None) -> Source:
    kind = KINDS.get(path.suffix.lower())
    if kind == "root":
        return open_root(path, tree)
    if kind == "parquet":
        return open_parquet(path)
    if kind == "hdf5":
        return open_hdf5(path, tree)
    if kind == "csv":
        return open_csv(path)
    raise DataError(f"{path}: unknown file type '{path.suffix}' (use {', '.join(sorted(KINDS))})")


# -- expressions ------------------------------------------------------------------
def shape_of(arr) -> tuple[str, int]:
    """(leaf kind, list depth): kind is a numpy dtype kind, "string" or "other"; depth 0 = one value per event."""
    layout, depth = arr.layout, 0
    while True:
        if layout.parameter("__array__") in ("string", "bytestring"):
            return "string", depth
        if layout.is_option or layout.is_indexed:
            layout = layout.content
        elif layout.is_list or layout.is_regular:
            depth, layout = depth + 1, layout.content
        elif layout.is_numpy:
            return layout.dtype.kind, depth + len(layout.inner_shape)
        elif layout.is_unknown:  # only empty lists seen: no type to object to
            return "f", depth
        else:
            return "other", depth


def evaluate(feature: Feature, arr, where: str) -> dict[str, np.ndarray]:
    """The float64 columns of one feature expression; ``where`` names the file and column in errors."""
    import awkward as ak

    kind, depth = shape_of(arr)
    if kind not in ("b", "i", "u", "f"):
        raise DataError(f"{where} is not numeric ({'strings' if kind == 'string' else ak.type(arr)}); "
                        "only numbers can be features")
    if depth > 1:
        raise DataError(f"{where} is nested {depth} levels deep; only one value or one list per event is supported")
    if bool(ak.any(ak.is_none(arr, axis=-1))):
        raise DataError(f"{where} has missing (None) values")
    arr = ak.values_astype(arr, np.float64)  # booleans and integers as numbers
    if feature.kind == "flat":
        if depth:
            raise DataError(f"{where} holds a list per event: use {feature.column}[0:N] (padded) or "
                            f"count|sum|max|min|mean({feature.column})")
        return {feature.names[0]: ak.to_numpy(arr).astype(np.float64)}
    if depth == 0:
        raise DataError(f"{where} holds one value per event, not a list: use plain '{feature.column}'")
    if feature.kind == "slice":  # elements [start, stop) in stored order; absent slots get the fill value
        padded = ak.fill_none(ak.pad_none(arr, feature.stop, axis=1, clip=True), feature.fill)
        block = ak.to_numpy(padded[:, feature.start:feature.stop]).astype(np.float64)
        return {name: block[:, i] for i, name in enumerate(feature.names)}
    count = ak.to_numpy(ak.num(arr, axis=1)).astype(np.float64)
    if feature.kind == "count":
        values = count
    elif feature.kind == "sum":
        values = ak.to_numpy(ak.sum(arr, axis=1)).astype(np.float64)
    elif feature.kind == "mean":
        total = ak.to_numpy(ak.sum(arr, axis=1)).astype(np.float64)
        values = np.divide(total, count, out=np.full_like(total, feature.fill), where=count > 0)
    else:  # max / min: the fill value for an empty list
        reduce = ak.max if feature.kind == "max" else ak.min
        values = ak.to_numpy(ak.fill_none(reduce(arr, axis=1), feature.fill)).astype(np.float64)
    return {feature.names[0]: values}


def flat_values(arr, where: str) -> np.ndarray:
    """One value per event (numbers as float64, strings as str objects): the label column."""
    import awkward as ak

    kind, depth = shape_of(arr)
    if depth:
        raise DataError(f"{where} holds a list per event; a label must be one value per event")
    if kind == "string":
        return np.asarray(ak.to_list(arr), dtype=object)
    if kind not in ("b", "i", "u", "f"):
        raise DataError(f"{where} is neither numbers nor strings ({ak.type(arr)})")
    return ak.to_numpy(arr).astype(np.float64)


def _first_bad(values: np.ndarray) -> int:
    return int(np.flatnonzero(~np.isfinite(values))[0])


def read_file(path: Path, card: Card, tree: str | None, with_label: bool = True) -> pl.DataFrame:
    """One file's feature columns (float64), ``weight``, the resonant observable and (``with_label``: some
    process selects events of this file by label) the raw label column."""
    src = open_source(path, tree)

    def where(name: str) -> str:
        return f"{path}: {src.word} '{name}'"

    columns: dict[str, np.ndarray] = {}
    for feature in card.features:
        columns |= evaluate(feature, src.array(feature.column), where(feature.column))
    if card.resonant is not None:
        columns |= evaluate(card.resonant, src.array(card.resonant.column), where(card.resonant.column))
    for name, values in columns.items():
        if not np.all(np.isfinite(values)):
            raise DataError(f"{path}: '{name}' is not finite in event {_first_bad(values)}")
    if card.weight is not None:
        w = flat_values(src.array(card.weight), where(card.weight))
        if w.dtype == object:
            raise DataError(f"{where(card.weight)} holds strings; a weight must be a number")
        if not np.all(np.isfinite(w)):
            raise DataError(f"{where(card.weight)} is not finite in event {_first_bad(w)}")
        if (w < 0).any():
            raise DataError(f"{where(card.weight)} is negative in event {int(np.argmax(w < 0))} "
                            f"({w.min():g}); the metrics need non-negative weights")
        columns["weight"] = w
    if card.label is not None and with_label:
        columns[LABEL_COLUMN] = flat_values(src.array(card.label), where(card.label))
    lengths = {k: len(v) for k, v in columns.items()}
    if len(set(lengths.values())) > 1:
        raise DataError(f"{path}: columns have different numbers of events ({lengths})")
    table = pl.DataFrame({k: v for k, v in columns.items() if k != LABEL_COLUMN})
    if LABEL_COLUMN in columns:
        label = columns[LABEL_COLUMN]
        table = table.with_columns(pl.Series(LABEL_COLUMN, label.astype(str) if label.dtype == object else label))
    return table


def label_mask(label: pl.Series, values: tuple[Any, ...], path: Path, card: Card, where: str) -> np.ndarray:
    """Events of a converted file whose label is one of ``values``."""
    column = label.to_numpy()
    is_text = label.dtype == pl.Utf8
    if is_text != all(isinstance(v, str) for v in values) or (is_text and not values):
        kind = "strings" if is_text else "numbers"
        raise DataError(f"{path}: label column '{card.label}' holds {kind}, but {where} selects {list(values)}")
    if is_text:
        return np.isin(column, [str(v) for v in values])
    return np.isin(column, np.asarray(values, dtype=np.float64))
