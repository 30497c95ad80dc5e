"""Signal region and sidebands of a resonant benchmark (torch-free: detectors and metrics share it).

The dataset records the geometry in ``Benchmark.meta``:

* ``signal_region``: [low, high] in TeV (or the older ``sr_low``/``sr_high``);
* ``sidebands``: the *outer* windows, everything of the data outside the SR,
  [[mjj_min, low], [high, mjj_max]] with ``None`` for an open end;
* ``sideband_override``: ``None``, or the windows the user asked for
  (``-o sb_width=W`` gives [[low - W, low], [high, high + W]], ``-o
  sidebands=a:b,c:d`` gives them explicitly). When set, every method uses them.

When no override is set each method uses its own published default,
``"outer"`` or ``"adjacent"``:

* ``outer`` (ANODE, CATHODE, LaCATHODE): everything outside the SR; the
  conditional density is learnt on the whole outer spectrum and interpolated.
* ``adjacent`` (CWoLa hunting): one window of :data:`ADJACENT_WIDTH` TeV on
  each side of the SR. Collins, Howe, Nachman (arXiv:1805.02664, 1902.02634)
  train each SR against the two neighbouring mass bins of about the SR's
  resolution-driven width; on the LHCO R&D set (SR 3.3-3.7 TeV) the CWoLa
  baseline of the CATHODE comparison uses 200 GeV sidebands on each side
  (3.1-3.3 and 3.7-3.9 TeV), which is the default here.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from hepad_bench.errors import UserError

#: CWoLa hunting's sideband width on each side of the SR (TeV), when the dataset sets none.
ADJACENT_WIDTH = 0.2

SidebandDefault = Literal["outer", "adjacent"]


def signal_region(meta: dict[str, Any]) -> tuple[float, float]:
    """(low, high) of the signal region in TeV from the benchmark meta."""
    if "sr_low" in meta and "sr_high" in meta:
        low, high = meta["sr_low"], meta["sr_high"]
    elif isinstance(meta.get("signal_region"), (list, tuple)) and len(meta["signal_region"]) == 2:
        low, high = meta["signal_region"]
    else:
        raise UserError(
            "this resonant detector needs the signal region: the dataset's meta has neither 'sr_low'/'sr_high' "
            "nor 'signal_region' (TeV); use a resonant dataset that records it"
        )
    low, high = float(low), float(high)
    if not low < high:
        raise UserError(f"signal region [{low}, {high}] TeV in the dataset meta is empty; fix the dataset's signal region")
    return low, high


def _open(lo: Any, hi: Any) -> tuple[float, float]:
    return (-np.inf if lo is None else float(lo), np.inf if hi is None else float(hi))


def sideband_windows(meta: dict[str, Any], default: SidebandDefault = "outer") -> list[tuple[float, float]]:
    """The sideband windows [(low, high)] a method uses: the dataset's override, else the method's default."""
    low, high = signal_region(meta)
    override = meta.get("sideband_override")
    if override:
        return [_open(lo, hi) for lo, hi in override]
    if "sb_low" in meta or "sb_high" in meta:  # an older explicit form: one window around everything
        return [_open(meta.get("sb_low"), meta.get("sb_high"))]
    if default == "adjacent":
        return [(low - ADJACENT_WIDTH, low), (high, high + ADJACENT_WIDTH)]
    windows = meta.get("sidebands")
    if isinstance(windows, (list, tuple)) and windows:
        return [_open(lo, hi) for lo, hi in windows]
    return [(-np.inf, np.inf)]


def region_masks(mjj: np.ndarray, meta: dict[str, Any], default: SidebandDefault = "outer") -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks (signal region, sidebands) of ``mjj`` (TeV).

    Signal region: ``low <= mjj < high``. Sidebands: outside the SR and inside
    one of :func:`sideband_windows` (the override, else ``default``).
    """
    low, high = signal_region(meta)
    mjj = np.asarray(mjj, dtype=np.float64)
    sr = (mjj >= low) & (mjj < high)
    in_window = np.zeros(len(mjj), dtype=bool)
    for lo, hi in sideband_windows(meta, default):
        in_window |= (mjj >= lo) & (mjj < hi)
    return sr, ~sr & in_window


def fit_window(meta: dict[str, Any], default: SidebandDefault = "adjacent") -> tuple[float, float]:
    """(low, high): the span of SR and sidebands that a sideband fit of the selected spectrum covers."""
    low, high = signal_region(meta)
    windows = sideband_windows(meta, default)
    return min([low, *(lo for lo, _ in windows)]), max([high, *(hi for _, hi in windows)])
