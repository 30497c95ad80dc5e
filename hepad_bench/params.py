"""``-p name=value`` overrides, validated against a Config/Options dataclass."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import types
import typing
from typing import Any

from hepad_bench.errors import UserError


def _describe(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp)).replace("typing.", "")


def _convert(raw: str, tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if raw.lower() in ("none", "null") and len(args) < len(typing.get_args(tp)):
            return None
        for arg in args:
            try:
                return _convert(raw, arg)
            except (ValueError, TypeError):
                continue
        raise ValueError(raw)
    if origin is typing.Literal:
        choices = typing.get_args(tp)
        if raw not in choices:
            raise ValueError(raw)
        return raw
    if origin in (tuple, list):
        (inner, *_rest) = typing.get_args(tp) or (str,)
        items = [s for s in raw.replace(",", " ").split() if s]
        return origin(_convert(s, inner) for s in items)
    if tp is bool:
        low = raw.lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ValueError(raw)
    if tp is int:
        return int(raw)
    if tp is float:
        value = float(raw)
        if not math.isfinite(value):  # nan passes every "x <= 0" check in __post_init__ and fails the run late
            raise ValueError(raw)
        return value
    if tp is str:
        return raw
    raise TypeError(f"unsupported type {tp}")


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) is typing.Literal:
        return "one of " + "|".join(map(str, typing.get_args(tp)))
    return _describe(tp) if isinstance(tp, type) else str(tp).replace("typing.", "")


def valid_names(config_type: type) -> str:
    hints = typing.get_type_hints(config_type)
    return ", ".join(f"{f.name} ({_type_name(hints[f.name])})" for f in dataclasses.fields(config_type))


def build_config(config_type: type, overrides: list[str] | dict[str, str], owner: str) -> Any:
    """Instantiate ``config_type`` with ``name=value`` overrides, or raise a UserError."""
    if isinstance(overrides, dict):
        pairs = list(overrides.items())
    else:
        pairs = []
        for item in overrides:
            if "=" not in item:
                raise UserError(f"bad parameter '{item}' for {owner}: expected name=value")
            name, value = item.split("=", 1)
            pairs.append((name.strip(), value.strip()))
    hints = typing.get_type_hints(config_type)
    names = {f.name for f in dataclasses.fields(config_type)}
    values: dict[str, Any] = {}
    for name, raw in pairs:
        if name not in names:
            listing = valid_names(config_type) or "none"
            raise UserError(f"{owner} has no parameter '{name}'; valid parameters: {listing}")
        try:
            values[name] = _convert(raw, hints[name])
        except (ValueError, TypeError):
            raise UserError(
                f"bad value '{raw}' for {owner} parameter '{name}': expected {_type_name(hints[name])}"
                + (" (finite)" if hints[name] is float else "")
            ) from None
    try:
        return config_type(**values)
    except (ValueError, TypeError) as exc:  # __post_init__ validation
        raise UserError(f"bad parameters for {owner}: {exc}") from None


def as_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config) if dataclasses.is_dataclass(config) else {}


def stable_hash(obj: Any, length: int = 12) -> str:
    """A short hash of a JSON-serialisable object, independent of key order."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]
