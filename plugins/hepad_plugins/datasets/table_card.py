"""The TOML card of the ``table`` dataset: its schema, parsed and checked before any file is read.

A card names the input files of each process (background, signals), the
feature expressions, and optionally a label column, an event weight and a
resonant observable. Every mistake is a one-line :class:`UserError` that
starts with ``card <path>:`` and names the key at fault. The full schema,
with an example, is in ``datasets/table/CARD.md`` (``hepad-bench datasets
info table``).

Feature expressions (one string each, or ``{expr = "...", fill = x}``):

=================  =========================================================
``met``            a flat (one value per event) column or branch
``jet_pt[0]``      element 0 of an array-valued (jagged) branch, ``fill`` if absent
``jet_pt[0:4]``    elements 0..3 as four columns ``jet_pt[0]`` .. ``jet_pt[3]``, in
                   the order stored, padded with ``fill``; ``[:4]`` is ``[0:4]``
``count(jet_pt)``  number of elements
``sum(jet_pt)``    sum of the elements (0 for none)
``max(jet_pt)``    largest element, ``fill`` for none (also ``min``, ``mean``)
=================  =========================================================
"""

from __future__ import annotations

import glob
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hepad_bench.data import LABEL, PROCESS, WEIGHT
from hepad_bench.errors import UserError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

REDUCTIONS = ("count", "sum", "max", "min", "mean")
#: Column names the benchmark tables use for bookkeeping; a feature may not take them.
RESERVED = (WEIGHT, PROCESS, LABEL)
#: Sample names the results store uses besides the signals (scores.parquet ``sample``).
RESERVED_SAMPLES = ("background", "hunt", "training", "sr_template")

TOP_KEYS = ("tree", "features", "fill", "label", "weight", "resonant", "log1p", "preprocessing",
            "split", "background", "signals")
SPLIT_KEYS = ("train", "validation", "signal_train", "seed")
PROCESS_KEYS = ("files", "label", "tree")

_NAME = r"[^\[\]():]+?"
_FLAT = re.compile(rf"^\s*(?P<col>{_NAME})\s*$")
_INDEX = re.compile(rf"^\s*(?P<col>{_NAME})\s*\[\s*(?P<i>\d+)\s*\]\s*$")
_SLICE = re.compile(rf"^\s*(?P<col>{_NAME})\s*\[\s*(?P<a>\d*)\s*:\s*(?P<b>\d+)\s*\]\s*$")
_REDUCE = re.compile(rf"^\s*(?P<fn>[a-z]+)\s*\(\s*(?P<col>{_NAME})\s*\)\s*$")


@dataclass(frozen=True)
class Feature:
    """One feature expression of the card and the columns it becomes."""

    expr: str
    column: str  # the source column / branch
    kind: str  # "flat", "slice" (also a single index) or one of REDUCTIONS
    start: int = 0
    stop: int = 1
    fill: float = 0.0
    single: bool = False  # ``x[i]``: one column named like the expression

    @property
    def names(self) -> list[str]:
        """The output column names, in order."""
        if self.kind == "slice":
            return [f"{self.column}[{i}]" for i in range(self.start, self.stop)]
        if self.kind == "flat":
            return [self.column]
        return [f"{self.kind}({self.column})"]


@dataclass(frozen=True)
class Process:
    """Background or one signal: its files (as written, globs allowed) and label selection."""

    name: str
    patterns: tuple[str, ...]
    label: tuple[Any, ...] | None = None  # values of the card's label column; None: every event
    tree: str | None = None


@dataclass
class Card:
    path: Path
    data: dict[str, Any]  # the parsed TOML (part of the cache key: an edit means a new conversion)
    features: list[Feature]
    background: Process
    signals: dict[str, Process]
    tree: str | None = None
    label: str | None = None
    weight: str | None = None
    resonant: Feature | None = None
    log1p: list[str] = field(default_factory=list)  # output column names
    preprocessing: str = "standard"
    train: float = 0.5
    validation: float = 0.1
    signal_train: float = 0.5
    seed: int = 1

    @property
    def feature_names(self) -> list[str]:
        return [n for f in self.features for n in f.names]

    @property
    def processes(self) -> dict[str, Process]:
        """role -> process: ``background`` and ``signal/<name>``."""
        return {"background": self.background} | {f"signal/{k}": v for k, v in self.signals.items()}

    def fail(self, message: str) -> UserError:
        return UserError(f"card {self.path}: {message}")


def parse_feature(item: Any, default_fill: float, where: str, fail) -> Feature:
    """A Feature from one entry of ``features`` (a string or ``{expr = ..., fill = ...}``)."""
    fill = default_fill
    if isinstance(item, dict):
        unknown = sorted(set(item) - {"expr", "fill"})
        if unknown or "expr" not in item:
            raise fail(f"{where} entry {item} must be a string or {{expr = \"...\", fill = number}}")
        fill = _number(item.get("fill", default_fill), f"{where} fill of '{item['expr']}'", fail)
        item = item["expr"]
    if not isinstance(item, str) or not item.strip():
        raise fail(f"{where} entry {item!r} must be a non-empty string such as \"met\" or \"jet_pt[0:4]\"")
    expr = item.strip()
    if m := _REDUCE.match(expr):
        if m["fn"] not in REDUCTIONS:
            raise fail(f"{where} '{expr}': unknown reduction '{m['fn']}' (use {', '.join(REDUCTIONS)})")
        return Feature(expr, m["col"].strip(), m["fn"], fill=fill)
    if m := _INDEX.match(expr):
        i = int(m["i"])
        return Feature(expr, m["col"].strip(), "slice", i, i + 1, fill, single=True)
    if m := _SLICE.match(expr):
        start, stop = int(m["a"] or 0), int(m["b"])
        if stop <= start:
            raise fail(f"{where} '{expr}': the slice selects no element (stop must exceed start)")
        return Feature(expr, m["col"].strip(), "slice", start, stop, fill)
    if m := _FLAT.match(expr):
        return Feature(expr, m["col"].strip(), "flat", fill=fill)
    raise fail(f"{where} '{expr}' is not understood: use name, name[i], name[a:b] or "
               f"{'|'.join(REDUCTIONS)}(name)")


def _number(value: Any, what: str, fail) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise fail(f"{what} must be a number, not {value!r}")
    return float(value)


def _string(value: Any, what: str, fail) -> str:
    if not isinstance(value, str) or not value.strip():
        raise fail(f"{what} must be a non-empty string, not {value!r}")
    return value.strip()


def _check_keys(table: Any, known: tuple[str, ...], where: str, fail) -> None:
    if not isinstance(table, dict):
        raise fail(f"{where} must be a table (e.g. [{where.strip('[]')}]), not {table!r}")
    for key in table:
        if key not in known:
            raise fail(f"unknown key '{key}' in {where} (valid: {', '.join(known)})")


def _process(name: str, table: Any, where: str, card_label: str | None, fail) -> Process:
    _check_keys(table, PROCESS_KEYS, where, fail)
    files = table.get("files")
    if isinstance(files, str):
        files = [files]
    if not files or not isinstance(files, list) or not all(isinstance(f, str) and f.strip() for f in files):
        raise fail(f"{where} needs files = [\"...\"] (paths or globs, relative to the card's folder)")
    label = table.get("label")
    if label is not None:
        if card_label is None:
            raise fail(f"{where} selects label values but the card names no label column (label = \"...\")")
        values = label if isinstance(label, list) else [label]
        if not values or not all(isinstance(v, (int, float, str)) for v in values):
            raise fail(f"{where} label must be a value or a list of values (numbers or strings), not {label!r}")
        label = tuple(values)
    tree = _string(table["tree"], f"{where} tree", fail) if "tree" in table else None
    return Process(name, tuple(f.strip() for f in files), label, tree)


def read_card(path: Path) -> Card:
    """Parse and check the card at ``path`` (no data file is opened)."""
    path = Path(path)

    def fail(message: str) -> UserError:
        return UserError(f"card {path}: {message}")

    if not path.is_file():
        raise UserError(f"card {path} not found (-o card=PATH is taken relative to --data-dir, or to the "
                        "current folder without it)")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise fail(f"not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise fail(f"cannot be read ({exc})") from None
    _check_keys(data, TOP_KEYS, "the card's top level", fail)
    fill = _number(data.get("fill", 0.0), "fill", fail)
    raw_features = data.get("features")
    if not raw_features or not isinstance(raw_features, list):
        raise fail('features is missing or empty: list the columns/branches, e.g. features = ["met", "jet_pt[0:4]"]')
    features = [parse_feature(item, fill, "features", fail) for item in raw_features]
    label = _string(data["label"], "label", fail) if "label" in data else None
    weight = _string(data["weight"], "weight", fail) if "weight" in data else None
    resonant = parse_feature(data["resonant"], fill, "resonant", fail) if "resonant" in data else None
    tree = _string(data["tree"], "tree", fail) if "tree" in data else None
    preprocessing = data.get("preprocessing", "standard")
    if preprocessing not in ("standard", "none"):
        raise fail(f"preprocessing must be \"standard\" or \"none\", not {preprocessing!r}")

    names = [n for f in features for n in f.names]
    seen: set[str] = set()
    for n in names:
        if n in seen:
            raise fail(f"feature column '{n}' appears twice in features")
        if n in RESERVED:
            raise fail(f"feature '{n}' has the name of a bookkeeping column ({', '.join(RESERVED)}); it cannot be a feature")
        seen.add(n)
    if resonant is not None:
        (rname,) = resonant.names if len(resonant.names) == 1 else (None,)
        if rname is None:
            raise fail(f"resonant '{resonant.expr}' must be one value per event (a column, name[i] or a reduction)")
        if rname in seen or rname in RESERVED:
            raise fail(f"resonant observable '{rname}' is also a feature or a bookkeeping column: it is carried "
                       "raw beside the features, so it cannot be one of them")

    log_raw = data.get("log1p", [])
    if not isinstance(log_raw, list):
        raise fail(f"log1p must be a list of feature expressions, not {log_raw!r}")
    log1p: list[str] = []
    for item in log_raw:
        feat = parse_feature(item, fill, "log1p", fail)
        missing = [n for n in feat.names if n not in seen]
        if missing:
            raise fail(f"log1p names '{feat.expr}', which is not among the features")
        log1p += feat.names

    split = data.get("split", {})
    _check_keys(split, SPLIT_KEYS, "[split]", fail)
    train = _number(split.get("train", 0.5), "[split] train", fail)
    validation = _number(split.get("validation", 0.1), "[split] validation", fail)
    signal_train = _number(split.get("signal_train", 0.5), "[split] signal_train", fail)
    seed = split.get("seed", 1)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise fail(f"[split] seed must be a non-negative integer, not {seed!r}")
    if not 0 < train < 1 or not 0 <= validation < 1 or train + validation >= 1:
        raise fail(f"[split] train = {train:g} and validation = {validation:g} must be fractions with train > 0 "
                   "and train + validation < 1 (the rest is the test background)")
    if not 0 <= signal_train < 1:
        raise fail(f"[split] signal_train = {signal_train:g} must lie in [0, 1) (the rest is the test signal)")

    if "background" not in data:
        raise fail('[background] is missing: name its files, e.g. [background] files = ["qcd_*.root"]')
    background = _process("background", data["background"], "[background]", label, fail)
    signals_raw = data.get("signals")
    if not signals_raw:
        raise fail('[signals.NAME] is missing: name at least one signal, e.g. [signals.zprime] files = ["zp.root"]')
    if not isinstance(signals_raw, dict):
        raise fail(f"signals must be tables [signals.NAME], not {signals_raw!r}")
    signals = {}
    for name, table in signals_raw.items():
        if not re.fullmatch(r"[A-Za-z0-9_.+-]+", name) or name in RESERVED_SAMPLES:
            raise fail(f"signal name '{name}' must be letters, digits, _ . + - and not one of "
                       f"{', '.join(RESERVED_SAMPLES)}")
        signals[name] = _process(name, table, f"[signals.{name}]", label, fail)
    return Card(path=path, data=data, features=features, background=background, signals=signals, tree=tree,
                label=label, weight=weight, resonant=resonant, log1p=log1p, preprocessing=preprocessing,
                train=train, validation=validation, signal_train=signal_train, seed=seed)


def resolve_files(card: Card) -> dict[str, list[Path]]:
    """role -> the files its patterns match (sorted within each pattern, in the card's order).

    Paths are relative to the card's folder. A pattern that matches nothing,
    and a file shared by two processes that do not both select disjoint label
    values, are errors.
    """
    base = card.path.resolve().parent
    out: dict[str, list[Path]] = {}
    for role, proc in card.processes.items():
        where = "[background]" if role == "background" else f"[signals.{proc.name}]"
        files: list[Path] = []
        for pattern in proc.patterns:
            full = Path(pattern).expanduser()
            full = full if full.is_absolute() else base / full
            if glob.has_magic(str(full)):
                hits = sorted(Path(p) for p in glob.glob(str(full), recursive=True) if Path(p).is_file())
                if not hits:
                    raise card.fail(f"{where} files: no file matches '{pattern}' (in {base})")
            elif full.is_file():
                hits = [full]
            else:
                raise card.fail(f"{where} files: {full} not found")
            files += [h.resolve() for h in hits if h.resolve() not in files]
        out[role] = files
    _check_shared_files(card, out)
    return out


def _check_shared_files(card: Card, files: dict[str, list[Path]]) -> None:
    """A file named by two processes must be split between them by disjoint label values."""
    owners: dict[Path, list[str]] = {}
    for role, paths in files.items():
        for p in paths:
            owners.setdefault(p, []).append(role)
    procs = card.processes
    for path, roles in owners.items():
        if len(roles) < 2:
            continue
        if any(procs[r].label is None for r in roles):
            raise card.fail(f"{path} is named by {' and '.join(roles)}: give each a label = ... selection "
                            "(values of the label column) so no event belongs to two processes")
        seen: dict[Any, str] = {}
        for r in roles:
            for v in procs[r].label or ():
                if v in seen:
                    raise card.fail(f"label value {v!r} of {path} is selected by both {seen[v]} and {r}")
                seen[v] = r
