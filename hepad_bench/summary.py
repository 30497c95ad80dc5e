"""The per-signal table printed after ``hepad-bench run``, with small samples marked.

A value is printed with a ``*`` when it rests on fewer events than its metric
needs to be more than an indication (the rule is :func:`small_sample_reason`):

* ``auc``: fewer than 100 test events in either class. The standard error of
  an AUC near 0.5 is sqrt((n_s + n_b + 1) / (12 n_s n_b)) (Hanley & McNeil
  1982), 0.04 for 100 events per class and 0.19 for 5.
* ``eff@...`` and ``sic_max``: fewer than 10 signal events pass the cut
  (N_signal x eps_S, unweighted test events), a relative statistical error
  above 1/sqrt(10) = 32%. The background side of these metrics is already
  guarded: the metrics report ``n/a`` below 10 background events.

The table's footer gives the test event counts (background, each signal) the
values come from, and explains each mark used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from rich.table import Table

from hepad_bench.runner import RunResult

#: The per-signal figures printed after a run (keys of the first-party metrics).
SUMMARY_KEYS = ("auc", "eff@1e-2", "eff@1e-3", "eff@1e-4", "eff@1e-5", "sic_max")
MIN_EVENTS_PER_CLASS = 100
MIN_SIGNAL_PASSING = 10
SMALL_SAMPLE_MARK = "*"


@dataclass(frozen=True)
class EventCounts:
    """Unweighted test events a signal's metrics were computed from."""

    background: int
    signal: int


def small_sample_reason(key: str, values: dict[str, Any], counts: EventCounts | None) -> str | None:
    """Why ``values[key]`` rests on too few events (a footer line), or None when it does not or cannot be told."""
    value = values.get(key)
    if counts is None or not isinstance(value, (int, float)):
        return None  # unavailable values already say why; unknown counts: nothing to judge
    if key == "auc":
        if min(counts.background, counts.signal) < MIN_EVENTS_PER_CLASS:
            return f"AUC from fewer than {MIN_EVENTS_PER_CLASS} test events in a class"
        return None
    eps_s = _signal_efficiency(key, values)
    if eps_s is not None and counts.signal * eps_s < MIN_SIGNAL_PASSING:
        return f"efficiency or SIC from fewer than {MIN_SIGNAL_PASSING} signal events passing the cut"
    return None


def _signal_efficiency(key: str, values: dict[str, Any]) -> float | None:
    """eps_S behind an efficiency-type value: the value itself, or sic_max x sqrt(eps_B at the maximum)."""
    if key.startswith("eff@"):
        return float(values[key])
    at = values.get("sic_max_eps_b")
    if key == "sic_max" and isinstance(at, (int, float)):
        return float(values[key]) * math.sqrt(at)
    return None


def counts_of(result: RunResult, signal: str) -> EventCounts | None:
    counts = result.run.get("event_counts") or {}
    if "test" not in counts or f"signal/{signal}" not in counts:
        return None
    return EventCounts(background=int(counts["test"]), signal=int(counts[f"signal/{signal}"]))


def format_value(value: object) -> str:
    if isinstance(value, dict):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1e4 else f"{value:.3e}"
    return "-" if value is None else str(value)


def _counts_line(result: RunResult) -> str | None:
    signals = sorted(result.metrics)
    counts = result.run.get("event_counts") or {}
    if "test" not in counts:
        return None
    parts = ", ".join(f"{s} {counts[f'signal/{s}']}" for s in signals if f"signal/{s}" in counts)
    cap = result.spec.max_events
    note = f" (--max-events {cap})" if cap is not None else ""
    return f"{result.spec.dataset} test events{note}: background {counts['test']}; signal {parts}"


def shown_keys(results: list[RunResult]) -> tuple[list[str], list[str]]:
    """(columns to print, columns left out): a column that has no number in any run is left out.

    On a small sample the deepest working points are ``n/a`` for every run (too
    few test background events); a column of nothing but ``n/a`` says nothing
    the footer cannot say once. When no run has a number at all (every run
    failed), all columns stay.
    """
    def has_number(key: str) -> bool:
        return any(isinstance(values.get(key), (int, float)) and not isinstance(values.get(key), bool)
                   for res in results if res.status != "failed" for values in res.metrics.values())

    shown = [key for key in SUMMARY_KEYS if has_number(key)]
    if not shown:
        return list(SUMMARY_KEYS), []
    return shown, [key for key in SUMMARY_KEYS if key not in shown]


def summary_table(results: list[RunResult]) -> tuple[Table, list[str]]:
    """The table and its footer lines (what each mark means, left-out columns, the test event counts)."""
    table = Table(title="run summary (per signal; n/a = too few background events for that working point)")
    keys, left_out = shown_keys(results)
    data_seeds = any(res.spec.data_seed is not None for res in results)  # the column only where a grid has them
    for col in ("dataset", "detector", *(["data seed"] if data_seeds else []), "seed", "status", "signal", *keys):
        table.add_column(col, justify="right" if col in keys else "left")
    reasons: dict[str, None] = {}  # ordered set
    count_lines: dict[str, None] = {}
    for res in results:
        head = [res.spec.dataset, res.spec.detector, *([str(res.spec.data_seed)] if data_seeds else []),
                str(res.spec.seed), res.status]
        if res.status == "failed":
            table.add_row(*head, f"[red]{res.error}[/red]", *[""] * len(keys))
            continue
        if (line := _counts_line(res)) is not None:
            count_lines[line] = None
        for signal, values in sorted(res.metrics.items()):
            counts = counts_of(res, signal)
            cells = []
            for key in keys:
                cell = format_value(values.get(key))
                if (why := small_sample_reason(key, values, counts)) is not None:
                    reasons[why] = None
                    cell += SMALL_SAMPLE_MARK
                cells.append(cell)
            table.add_row(*head, signal, *cells)
    footer = [f"{SMALL_SAMPLE_MARK} small sample: {why}" for why in reasons]
    if left_out:
        footer.append(f"left out: {', '.join(left_out)} (no value in any run: too few test background events for "
                      "that working point, or not computed)")
    footer += list(count_lines)
    return table, footer
