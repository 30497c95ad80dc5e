"""Leaderboard tables: aggregation over seeds and rendering to Markdown and CSV.

Cells carry both the formatted text and the numbers behind it, so Markdown,
HTML and CSV are rendered from one table and always agree. Nothing here
depends on time or dict order: rebuilding from the same results gives the
same bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from hepad_bench.leaderboard.collect import Replica, Row, Section, Value, describe_replicas

#: The efficiency metric's default working points, smallest background efficiency first (a dataset may
#: name others: ``Dataset.working_points``; the tables use whatever ``eff@<number>`` keys the runs hold).
EFF_KEYS = ("eff@1e-5", "eff@1e-4", "eff@1e-3", "eff@1e-2")
MU_LIMIT, MU_KEY = "mu_limit", "mu_up_over_dnn"
CORRELATION = "score_correlation"
SIC = "sic_max"
NA = "n/a"


#: Percentiles of the 68.27 % band over seeds (one Gaussian sigma either side of the median).
BAND = (15.865, 84.135)
#: A working point is statistically limited below these effective counts (signal passing, background inside).
LIMITED_SIGNAL_EVENTS = 10
LIMITED_BACKGROUND_EVENTS = 20
LIMITED_MARK, SEEDS_MARK = "†", "‡"


@dataclass(frozen=True)
class Entry:
    """One run's value of a metric, its 68 % interval where the run stored one, and whether it is statistically limited."""

    value: float
    lo: float | None = None
    hi: float | None = None
    limited: bool = False


def _number(raw) -> float | None:
    return Value.parse(raw).value


def run_entry(metrics: dict, key: str) -> Entry | None:
    """The Entry of ``key`` in one run's metrics of one signal (interval from ``<key>_lo`` / ``<key>_hi``)."""
    if key not in metrics:
        return None
    value = _number(metrics[key])
    if value is None:
        return None
    lo, hi = _number(metrics.get(f"{key}_lo")), _number(metrics.get(f"{key}_hi"))
    n_sig, n_bkg = _number(metrics.get(f"{key}_n_sig")), _number(metrics.get(f"{key}_n_bkg"))
    limited = (n_sig is not None and n_sig < LIMITED_SIGNAL_EVENTS * (1 - 1e-9)) or \
              (n_bkg is not None and n_bkg < LIMITED_BACKGROUND_EVENTS * (1 - 1e-9))
    return Entry(value, lo if lo is not None and hi is not None else None, hi if lo is not None else None, limited)


@dataclass(frozen=True)
class Stat:
    """A metric over seeds: median, its 68 % interval, the seed band, mean and std, the number of seeds.

    ``lo``/``hi``: the interval shown. Its half-widths are the seed band's
    (16th to 84th percentile of the seeds' values, from two seeds on) and the
    median per-run statistical interval's, added in quadrature; with one seed
    the run's own interval; None when neither exists. All seeds are scored on
    the same test sample, so the statistical part does not shrink with more seeds.
    """

    median: float
    lo: float | None
    hi: float | None
    band_lo: float | None
    band_hi: float | None
    mean: float
    std: float | None  # sample standard deviation (ddof=1); None with one seed
    n: int
    limited: bool = False

    @classmethod
    def of_entries(cls, entries: list[Entry], bounds: tuple[float, float] | None = None) -> Stat | None:
        if not entries:
            return None
        values = np.array([e.value for e in entries], dtype=np.float64)
        median = float(np.median(values))
        band_lo, band_hi = (float(x) for x in np.percentile(values, BAND)) if len(values) > 1 else (None, None)
        with_interval = [e for e in entries if e.lo is not None and e.hi is not None]
        stat_down = float(np.median([e.value - e.lo for e in with_interval])) if with_interval else None
        stat_up = float(np.median([e.hi - e.value for e in with_interval])) if with_interval else None
        if band_lo is None and stat_down is None:
            lo = hi = None
        else:
            lo = median - float(np.hypot(stat_down or 0.0, median - band_lo if band_lo is not None else 0.0))
            hi = median + float(np.hypot(stat_up or 0.0, band_hi - median if band_hi is not None else 0.0))
            if bounds is not None:
                lo, hi = max(lo, bounds[0]), min(hi, bounds[1])
        std = float(np.std(values, ddof=1)) if len(values) > 1 else None
        return cls(median, lo, hi, band_lo, band_hi, float(np.mean(values)), std, len(values),
                   any(e.limited for e in entries))

    @classmethod
    def of(cls, values: list[Value]) -> Stat | None:
        """From plain values (no per-run intervals): median and seed band."""
        return cls.of_entries([Entry(v.value) for v in values if v.value is not None])

    def record(self, prefix: str) -> dict:
        """The numbers behind a cell, for the CSV."""
        return {f"{prefix}:{k}": getattr(self, k) for k in STAT_FIELDS[:-1]} | {f"{prefix}:limited": self.limited}


STAT_FIELDS = ("median", "lo", "hi", "band_lo", "band_hi", "mean", "std", "n", "limited")
STAT_TYPES = {"n": pl.Int64, "limited": pl.Boolean}


def empty_record(prefix: str) -> dict:
    return {f"{prefix}:{k}": (0 if k == "n" else None) for k in STAT_FIELDS}


def stat_schema(prefix: str) -> dict:
    return {f"{prefix}:{k}": STAT_TYPES.get(k, pl.Float64) for k in STAT_FIELDS}


def _fmt_sig(x: float, digits: int) -> str:
    text = f"{x:#.{digits}g}"
    return text.rstrip(".") if "e" not in text else text


def decimals_for(half_width: float) -> int | None:
    """Decimal places that give the interval two significant digits; None where fixed decimals would be unreadable."""
    if not half_width > 0 or not np.isfinite(half_width):
        return None
    decimals = 1 - int(np.floor(np.log10(half_width)))
    return max(decimals, 0) if decimals <= 6 else None


def _sci(x: float, exponent: int, digits_after: int) -> str:
    """``x`` as mantissa x 10^exponent with a shared exponent, e.g. 1.13e+06."""
    return f"{x / 10.0**exponent:.{digits_after}f}e{exponent:+03d}"


def fmt_interval(value: float, lo: float | None, hi: float | None) -> str:
    """``value [lo, hi]``, every number rounded to two significant digits of the smaller half-width.

    Fixed decimals from 1e-4 to 1e5; outside, one shared power of ten. A
    zero-width interval (a deterministic detector's seed band, no per-run
    interval) shows the value to three significant digits and ``(no spread)``.
    """
    if lo is None or hi is None:
        return _fmt_sig(value, 3)
    widths = [w for w in (value - lo, hi - value) if w > 0]
    if not widths:
        return f"{_fmt_sig(value, 3)} (no spread)"
    width = min(widths)
    magnitude = max(abs(value), abs(lo), abs(hi))
    decimals = decimals_for(width)
    if decimals is not None and magnitude < 1e5 and (magnitude >= 1e-4 or magnitude == 0):
        return f"{value:.{decimals}f} [{lo:.{decimals}f}, {hi:.{decimals}f}]"
    exponent = int(np.floor(np.log10(magnitude)))
    after = max(0, exponent - int(np.floor(np.log10(width))) + 1)
    return f"{_sci(value, exponent, after)} [{_sci(lo, exponent, after)}, {_sci(hi, exponent, after)}]"


def fmt_stat(stat: Stat | None, expected_n: int, missing_interval: str = "") -> str:
    """The cell text: ``median [lo, hi]``, † if statistically limited, (n=k) where fewer seeds gave a value."""
    if stat is None:
        return NA
    text = fmt_interval(stat.median, stat.lo, stat.hi)
    if stat.lo is None:
        text += missing_interval
    if stat.limited:
        text += f" {LIMITED_MARK}"
    if stat.n != expected_n:
        text += f" (n={stat.n})"
    return text


@dataclass
class Cell:
    text: str
    bold: bool = False
    stat: Stat | None = None


@dataclass
class Table:
    """A table independent of its output format: header, rows of cells, provenance and notes."""

    title: str
    columns: list[str]
    rows: list[list[Cell]]
    provenance: str
    notes: list[str] = field(default_factory=list)
    #: the same table as numbers (median, interval, band, mean, std, n per column), written as CSV
    csv: pl.DataFrame | None = None


def _mark_best(rows: list[list[Cell]], col: int, higher_is_better: bool) -> None:
    """Bold the best median of a column only where its interval clears the runner-up's.

    Nothing is bold when there is no runner-up, when either lacks an
    interval, or when the intervals overlap (ties included): the column
    then has no winner beyond its uncertainties.
    """
    stats = sorted(((r[col].stat, i) for i, r in enumerate(rows) if r[col].stat is not None),
                   key=lambda t: t[0].median, reverse=higher_is_better)
    if len(stats) < 2:
        return
    (best, i), (second, _) = stats[0], stats[1]
    if None in (best.lo, best.hi, second.lo, second.hi):
        return
    clear = best.lo > second.hi if higher_is_better else best.hi < second.lo
    if clear:
        rows[i][col].bold = True


def seeds_text(section: Section) -> str:
    """``seeds 1, 2, 3``; with data seeds ``3 data seeds x 2 run seeds (data seeds 1, 2, 3; run seeds 1, 2)``."""
    if not section.data_seeds:
        return f"seeds {', '.join(map(str, section.seeds)) or 'none'}"
    return (f"{describe_replicas(section.replicas)} (data seeds {', '.join(map(str, section.data_seeds))}; "
            f"run seeds {', '.join(map(str, section.seeds))})")


def provenance(section: Section, extra: str = "") -> str:
    options = json.dumps(section.options, sort_keys=True) if section.options else "defaults"
    cap = section.max_events if section.max_events is not None else "none"
    versions = ", ".join(section.hepad_versions)
    text = (f"Dataset {section.name} version {section.version} (options: {options}; max events: {cap}); "
            f"{seeds_text(section)}; hepad-bench {versions}; detector versions in the table")
    contamination = contamination_note(section)
    if contamination:
        text += f"; {contamination}"
    return text + (f"; {extra}" if extra else "") + "."


def contamination_note(section: Section) -> str:
    """Says when the runs trained on data with unlabelled signal (``run.json`` ``train_contamination``), else ''."""
    fractions = sorted({r.run["train_contamination"] for row in section.rows for r in row.ok
                        if r.run.get("train_contamination")})
    if not fractions:
        return ""
    shown = f"{fractions[0]:.3g}" if len(fractions) == 1 else f"{fractions[0]:.3g} to {fractions[-1]:.3g}"
    return f"training data contaminated: signal fraction {shown} unlabelled in train + validation"


def efficiency_keys(section: Section, signal: str) -> list[str]:
    """The ``eff@<background efficiency>`` keys the runs hold for ``signal``, smallest efficiency first."""
    found = set()
    for row in section.rows:
        for run in row.ok:
            for key in (run.metrics().get(signal) or {}):
                label = key.split("@", 1)[1] if key.startswith("eff@") else ""
                if label and "_" not in label and _is_number(label):
                    found.add(key)
    return sorted(found, key=lambda k: float(k.split("@", 1)[1]))


def working_point(section: Section, signal: str) -> str | None:
    """The smallest background efficiency with a value in every successful run, else in any run."""
    def values(key: str) -> list[Value]:
        return [v for row in section.rows for _, v in row.values(signal, key)]

    keys = efficiency_keys(section, signal)
    runs = sum(1 for row in section.rows for r in row.ok if signal in r.signals())
    for key in keys:
        found = [v for v in values(key) if v.value is not None]
        if runs and len(found) == runs:
            return key
    for key in keys:
        if any(v.value is not None for v in values(key)):
            return key
    return None


def row_stat(row: Row, signal: str, key: str) -> Stat | None:
    """A per-run metric of one row over its seeds, with intervals (efficiencies and AUC within [0, 1])."""
    entries = []
    for run in row.ok:
        entry = run_entry(run.metrics().get(signal) or {}, key)
        if entry is not None:
            entries.append(entry)
    bounds = (0.0, 1.0) if key.startswith("eff@") or key == "auc" else (0.0, np.inf)
    return Stat.of_entries(entries, bounds)


def reference_seeds(section: Section) -> tuple[Replica, ...]:
    """The (data seed, run seed) set most rows share (ties: the larger set, then the smaller seeds)."""
    counts: dict[tuple[Replica, ...], int] = {}
    for row in section.rows:
        if row.replicas:
            counts[tuple(row.replicas)] = counts.get(tuple(row.replicas), 0) + 1
    if not counts:
        return ()
    return min(counts, key=lambda s: (-counts[s], -len(s), [(-1 if d is None else d, x) for d, x in s]))


def seed_cell(row: Row, reference: tuple[Replica, ...]) -> Cell:
    """``5 (1, 2, 3, 4, 5)``; with data seeds ``6 (3 data seeds x 2 run seeds)``."""
    replicas = row.replicas
    text = f"{len(replicas)} ({describe_replicas(replicas)})" if replicas else "0 (all failed)"
    if replicas and tuple(replicas) != reference:
        text += f" {SEEDS_MARK}"
    return Cell(text)


#: Cost columns of run.json's "cost" (stored by the runner where it measures them): (key, header, integer?).
COST_COLUMNS = (("parameters", "parameters", True), ("macs_per_event", "MACs / event", False),
                ("latency_us_per_event", "latency µs / event", False))


def _cost_values(row: Row, key: str) -> list[float]:
    out = []
    for run in row.ok:
        cost = run.run.get("cost")
        value = _number(cost.get(key)) if isinstance(cost, dict) else None
        if value is not None:
            out.append(value)
    return out


def _cost_cell(values: list[float], integer: bool) -> Cell:
    if not values:
        return Cell(NA)
    if integer:
        return Cell(f"{int(round(float(np.median(values)))):,}")
    stat = Stat.of_entries([Entry(v) for v in values], (0.0, np.inf))
    return Cell(fmt_interval(stat.median, stat.lo, stat.hi), stat=stat)


def _cell_legend(section: Section, what: str) -> str:
    """The first legend sentence: over what the median and band are taken (run seeds, or data seeds x run seeds)."""
    if section.data_seeds:
        return (f"Each cell: {what}, median over {describe_replicas(section.replicas)} (every run seed on every data "
                "seed's split) [68 % interval]. The interval adds in quadrature the spread of all these runs (16th to "
                "84th percentile) and the median per-run statistical interval at 68.27 % CL (Clopper-Pearson on "
                "effective event counts for efficiencies, DeLong for the AUC, both efficiencies' intervals for the "
                "SIC). Each data seed draws its own train/test split, so the spread already holds the test sample's "
                "fluctuation and adding the per-run interval is conservative. Digits: two significant digits of the "
                "interval. Mean ± std per column is in the CSV.")
    return (f"Each cell: {what}, median over seeds [68 % interval]. The interval adds in quadrature the spread of the "
            "seeds (16th to 84th percentile) and the median per-run statistical interval at 68.27 % CL (Clopper-Pearson "
            "on effective event counts for efficiencies, DeLong for the AUC, both efficiencies' intervals for the SIC); "
            "with one seed it is the run's own interval. Every seed is scored on the same test events, so more seeds do "
            "not shrink the statistical part. Digits: two significant digits of the interval. Mean ± std per column is in "
            "the CSV.")


def explanation_notes(section: Section, reference: tuple[Replica, ...], what: str) -> list[str]:
    """The legend under a table: what a cell holds, when it is bold, what the marks mean."""
    notes = [
        _cell_legend(section, what),
        "Bold: the best median whose interval does not overlap the runner-up's; no bold where the best is not better "
        f"beyond the uncertainties. {LIMITED_MARK}: statistically limited (fewer than {LIMITED_SIGNAL_EVENTS} signal "
        f"events pass, or fewer than {LIMITED_BACKGROUND_EVENTS} background events lie inside the working point). "
        "(n=k): only k seeds gave a value. n/a: no value (the reason is in numbers.parquet).",
        "Rows are named by the detector and its parameters that differ from the detector's defaults "
        "(speed-only settings such as threads left out); the full configuration is in leaderboard.csv "
        "and each run's run.json.",
    ]
    odd = [row.label for row in section.rows if row.replicas and tuple(row.replicas) != reference]
    if odd:
        notes.append(f"{SEEDS_MARK}: these rows come from other seeds than the rest ({describe_replicas(reference)}): "
                     f"{'; '.join(odd)}. Compare them with care.")
    return notes


def main_table(section: Section) -> Table:
    """Per detector: signal efficiency at the chosen working point and AUC per signal (median and interval over seeds)."""
    points = {s: working_point(section, s) for s in section.signals}
    reference = reference_seeds(section)
    costs = [c for c in COST_COLUMNS if any(_cost_values(row, c[0]) for row in section.rows)]
    columns = ["detector", "version", "kind", "seeds"] + [header for _, header, _ in costs]
    first_metric = len(columns)
    metrics: list[tuple[str, str]] = []
    for signal in section.signals:
        point = points[signal]
        if point is not None:
            eps_b = point.split("@", 1)[1]
            columns.append(f"{signal}: eff_S at eff_B={eps_b}{_background_interval(section, signal, point)}")
            metrics.append((signal, point))
        columns.append(f"{signal}: AUC")
        metrics.append((signal, "auc"))
        # resonant searches are usually compared by the maximum significance improvement (CATHODE, LHCO)
        if section.task == "resonant" and any(v.value is not None for row in section.rows for _, v in row.values(signal, SIC)):
            columns.append(f"{signal}: max SIC")
            metrics.append((signal, SIC))
    # task-aware: a column no run has a value for (AUC of a signal nobody could score, ...) is left out and named
    empty = [(signal, key) for signal, key in metrics if all(row_stat(row, signal, key) is None for row in section.rows)]
    dropped = [columns[first_metric + metrics.index(m)] for m in empty]
    columns = columns[:first_metric] + [c for c, m in zip(columns[first_metric:], metrics) if m not in empty]
    metrics = [m for m in metrics if m not in empty]

    rows: list[list[Cell]] = []
    records: list[dict] = []
    for row in section.rows:
        seeds = row.replicas
        cells = [Cell(row.label), Cell(row.version), Cell(row.kind), seed_cell(row, reference)]
        record: dict = {"detector": row.detector, "config_hash": row.config_hash, "label": row.label,
                        "config": json.dumps(row.config, sort_keys=True),
                        "version": row.version, "kind": row.kind, "seeds": _seeds_field(seeds)}
        for key, _, integer in costs:
            values = _cost_values(row, key)
            cells.append(_cost_cell(values, integer))
            record[f"cost:{key}:median"] = float(np.median(values)) if values else None
        for signal, key in metrics:
            stat = row_stat(row, signal, key)
            cells.append(Cell(fmt_stat(stat, len(seeds), " (no interval)"), stat=stat))
            record |= stat.record(f"{signal}:{key}") if stat else empty_record(f"{signal}:{key}")
        rows.append(cells)
        records.append(record)
    for col in range(first_metric, len(columns)):
        _mark_best(rows, col, higher_is_better=True)

    notes = explanation_notes(section, reference, "signal efficiency, AUC" + (" or max SIC" if section.task == "resonant" else ""))
    for signal in section.signals:
        if points[signal] is None:
            tried = efficiency_keys(section, signal)
            where = f" ({', '.join(tried)})" if tried else ""
            notes.append(f"{signal}: no signal efficiency at any background efficiency{where} is available.")
    if dropped:
        notes.append(f"Not shown (no value in any run): {'; '.join(dropped)}.")
    if costs:
        notes.append("Cost: trainable parameters, multiply-accumulates per event and scoring latency per event "
                     "(median over seeds [68 % band]), as each run measured them.")
    failed = [(row, r) for row in section.rows for r in row.failed]
    if failed:
        notes.append("Failed runs:")
        for row, run in failed:
            error = str(run.run.get("error") or "unknown error").strip().splitlines()[0]
            data = f"data seed {run.run['dataset']['data_seed']}, " if run.run.get("dataset", {}).get("data_seed") is not None else ""
            notes.append(f"- {row.label} {data}seed {run.run.get('seed')}: {error}")

    schema: dict[str, pl.DataType] = {k: pl.String for k in ("detector", "config_hash", "label", "config", "version",
                                                             "kind", "seeds")}
    schema |= {f"cost:{key}:median": pl.Float64 for key, _, _ in costs}
    for signal, key in metrics:
        schema |= stat_schema(f"{signal}:{key}")
    csv = pl.DataFrame(records, schema=schema) if records else pl.DataFrame(schema=schema)
    return Table(f"{section.name}: leaderboard", columns, rows, provenance(section), notes, csv)


def _seeds_field(replicas: list[Replica]) -> str:
    """The CSV's seeds: ``1 2 3``, or ``data/run`` pairs (``1/1 1/2 2/1``) for data-seeded runs."""
    return " ".join(str(s) if d is None else f"{d}/{s}" for d, s in replicas)


def _background_interval(section: Section, signal: str, key: str) -> str:
    """`` (eff_B in [lo, hi])``: the 68 % interval of the background efficiency the cut really has, from one run."""
    for row in section.rows:
        for run in row.ok:
            metrics = run.metrics().get(signal) or {}
            lo, hi = _number(metrics.get(f"{key}_bkg_lo")), _number(metrics.get(f"{key}_bkg_hi"))
            if lo is not None and hi is not None:
                return f" (eff_B in [{_fmt_sig(lo, 2)}, {_fmt_sig(hi, 2)}])"
    return ""


def rate_keys(section: Section) -> list[str]:
    """Working points at a fixed background rate (``eff@1Hz``, ``eff@50/day``) that the runs computed."""
    found = set()
    for row in section.rows:
        for run in row.ok:
            for values in run.metrics().values():
                for key in values:
                    label = key.split("@", 1)[1] if key.startswith("eff@") else ""
                    if label and "_" not in label and not _is_number(label):
                        found.add(key)
    return sorted(found)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def rate_table(section: Section) -> Table | None:
    """Signal efficiency at a fixed background rate (seed 004's l+X@HLT use case), where the dataset knows its rate."""
    rate = _number(section.meta.get("background_rate_hz"))
    keys = rate_keys(section)
    if rate is None or not keys:
        return None
    reference = reference_seeds(section)

    def header(signal: str, key: str) -> str:
        return f"{signal}: eff_S at {key.split('@', 1)[1]}"

    # task-aware: a working point no run reached (50/day on a small sample) is left out, with the reason
    pairs = [(s, k) for s in section.signals for k in keys]
    empty = [(s, k) for s, k in pairs if all(row_stat(row, s, k) is None for row in section.rows)]
    pairs = [p for p in pairs if p not in empty]
    if not pairs:
        return None
    dropped_reasons = sorted({v.unavailable for s, k in empty for row in section.rows
                              for _, v in row.values(s, k) if v.unavailable})
    columns = ["detector", "seeds"] + [header(s, k) for s, k in pairs]
    rows, records, reasons = [], [], set()
    for row in section.rows:
        cells = [Cell(row.label), seed_cell(row, reference)]
        record: dict = {"label": row.label}
        for signal, key in pairs:
            stat = row_stat(row, signal, key)
            cells.append(Cell(fmt_stat(stat, len(row.replicas), " (no interval)"), stat=stat))
            record |= stat.record(f"{signal}:{key}") if stat else empty_record(f"{signal}:{key}")
            reasons |= {v.unavailable for _, v in row.values(signal, key) if v.unavailable}
        rows.append(cells)
        records.append(record)
    for col in range(2, len(columns)):
        _mark_best(rows, col, higher_is_better=True)
    norm = section.meta.get("normalisation") or {}
    lumi = _number(norm.get("instantaneous_luminosity_cm-2s-1"))
    points = ", ".join(f"{k.split('@', 1)[1]} -> eff_B = {_rate_eps(k, rate)}" for k in keys)
    notes = [f"Total background rate {rate:.3g} Hz after the trigger"
             + (f" at {lumi:.3g} cm^-2 s^-1" if lumi else "")
             + (f" ({norm['source']})" if norm.get("source") else "") + f"; working points {points}.",
             *explanation_notes(section, reference, "signal efficiency")[:2]]
    if reasons:
        notes.append("n/a because: " + "; ".join(sorted(reasons)) + ".")
    if empty:
        notes.append(f"Not shown (no value in any run): {', '.join(header(s, k) for s, k in empty)}"
                     + (f"; because: {'; '.join(dropped_reasons)}" if dropped_reasons else "") + ".")
    schema: dict[str, pl.DataType] = {"label": pl.String}
    for signal, key in pairs:
        schema |= stat_schema(f"{signal}:{key}")
    csv = pl.DataFrame(records, schema=schema) if records else pl.DataFrame(schema=schema)
    return Table(f"{section.name}: signal efficiency at a fixed background rate", columns, rows, provenance(section),
                 notes, csv)


def _rate_eps(key: str, rate: float) -> str:
    label = key.split("@", 1)[1]
    per = {"Hz": 1.0, "/day": 1 / 86400, "/month": 1 / (30 * 86400), "/s": 1.0}
    for unit, factor in per.items():
        if label.endswith(unit) and _is_number(label[: -len(unit)]):
            return f"{float(label[: -len(unit)]) * factor / rate:.2g}"
    return "?"


def comparative_entries(section: Section, metric: str, signal: str, row: str, key: str) -> list[Entry]:
    """One Entry per seed of a comparative value, with its ``<key>_lo`` / ``<key>_hi`` where the metric gave them."""
    lows = dict(section.comparative_values(metric, signal, row, f"{key}_lo"))
    highs = dict(section.comparative_values(metric, signal, row, f"{key}_hi"))
    out = []
    for seed, value in section.comparative_values(metric, signal, row, key):
        if value.value is None:
            continue
        lo, hi = lows.get(seed), highs.get(seed)
        both = lo is not None and hi is not None and lo.value is not None and hi.value is not None
        out.append(Entry(value.value, lo.value if both else None, hi.value if both else None))
    return out


def _normalisation_heading(section: Section) -> tuple[str, str]:
    """(title suffix, note) saying whether mu is normalised to physical yields or to the fallback."""
    flags = {c.value.value for c in section.comparative if c.metric == MU_LIMIT and c.key == "mu_norm_from_card"}
    norm = section.meta.get("normalisation") or {}
    if flags == {1.0}:
        lumi = norm.get("integrated_luminosity_fb-1")
        where = f" at {lumi:g} fb^-1" if isinstance(lumi, (int, float)) else ""
        return (f" (physical yields{where})",
                f"Normalisation: expected signal and background events{where} from the dataset "
                f"({norm.get('source', 'Benchmark.meta')}); mu = 1 is the signal at its nominal cross section, "
                "so mu_up is the expected 95 % CL limit on sigma / sigma_nominal.")
    if flags == {0.0}:
        return (" (no physical yields: fallback normalisation)",
                "Normalisation: the dataset gives no expected yields, so the limit uses the fallback (background = "
                "test events, signal = 1 % of them); mu_up itself is not physical, only its ratio to the DNN is.")
    if flags:
        return (" (mixed normalisation)", "Normalisation: some runs had physical yields and some the fallback.")
    return "", ""


def _is_reference(entries: list[Entry]) -> bool:
    """The DNN's own ratio: 1 by definition with no interval (not a competitor's value)."""
    return bool(entries) and all(e.value == 1.0 and e.lo is None for e in entries)


def mu_table(section: Section, installed: dict[str, str]) -> Table | None:
    """Upper limit on the signal strength, normalised to the supervised DNN (lower is better), and absolute where physical.

    None where no detector has a limit (no supervised reference, metric not installed, a generic dataset):
    see :func:`mu_absent_reason`. Columns without a value in any row are left out.
    """
    suffix, norm_note = _normalisation_heading(section)
    physical = "physical" in suffix and "no physical" not in suffix
    keys = [(MU_KEY, s) for s in section.signals] + ([("mu_up", s) for s in section.signals] if physical else [])

    def has_value(key: str, signal: str) -> bool:
        for row in section.rows:
            entries = comparative_entries(section, MU_LIMIT, signal, row.label, key)
            if entries and not (key == MU_KEY and _is_reference(entries)):
                return True
        return False

    keys = [(k, s) for k, s in keys if has_value(k, s)]  # task-aware: no all-n/a column, no all-n/a table
    if not keys:
        return None
    columns = ["detector", "seeds"] + [f"{s}: mu_up / DNN" if k == MU_KEY else f"{s}: mu_up" for k, s in keys]
    reference = reference_seeds(section)
    rows: list[list[Cell]] = []
    records: list[dict] = []
    for row in section.rows:
        cells = [Cell(row.label), seed_cell(row, reference)]
        record: dict = {"detector": row.label}
        for key, signal in keys:
            entries = comparative_entries(section, MU_LIMIT, signal, row.label, key)
            stat = Stat.of_entries(entries, (0.0, np.inf))
            if key == MU_KEY and _is_reference(entries):
                cells.append(Cell("1 (reference)"))  # the DNN itself: 1 by definition, not a competitor
            else:
                cells.append(Cell(fmt_stat(stat, len(row.replicas)), stat=stat))
            prefix = f"{signal}" if key == MU_KEY else f"{signal}:mu_up"
            record |= stat.record(prefix) if stat else empty_record(prefix)
        rows.append(cells)
        records.append(record)
    for col in range(2, len(columns)):
        _mark_best(rows, col, higher_is_better=False)
    extra = f"metric {MU_LIMIT} version {installed[MU_LIMIT]}" if MU_LIMIT in installed else f"metric {MU_LIMIT} not installed"
    notes = [n for n in [norm_note] if n]
    ratios = any(k == MU_KEY for k, _ in keys)
    if ratios:
        notes.append("mu_up / mu_up(supervised DNN): each seed's expected limit over the same seed's DNN limit; the cell "
                     "is the median of these per-seed ratios [68 % interval: the seed band and the median per-seed "
                     "template-statistics interval (the finite test samples filling the histograms) in quadrature]. "
                     "Lower is better; bold only where the best interval clears the runner-up's.")
    if MU_LIMIT not in installed:
        notes.append(f"n/a everywhere: the comparative metric '{MU_LIMIT}' is not installed.")
    elif MU_LIMIT in section.comparative_notes:
        notes.append(f"n/a: {section.comparative_notes[MU_LIMIT]}")
    reasons = sorted({c.value.unavailable for c in section.comparative
                      if c.metric == MU_LIMIT and c.key == MU_KEY and c.value.unavailable})
    if reasons and ratios:
        notes.append(f"n/a where {MU_LIMIT} gave no value: {'; '.join(reasons)}.")
    elif reasons:  # task-aware: the ratio columns are left out; say why
        notes.append(f"No mu_up / DNN columns: {'; '.join(reasons)}.")
    schema: dict[str, pl.DataType] = {"detector": pl.String}
    for key, signal in keys:
        schema |= stat_schema(f"{signal}" if key == MU_KEY else f"{signal}:mu_up")
    csv = pl.DataFrame(records, schema=schema) if records else pl.DataFrame(schema=schema)
    title = "upper limit on mu relative to the supervised DNN" if ratios else "upper limit on mu"
    return Table(f"{section.name}: {title}{suffix}", columns, rows, provenance(section, extra), notes, csv)


def mu_absent_reason(section: Section, installed: dict[str, str]) -> str:
    """Why a section has no mu-limit table (one sentence)."""
    if MU_LIMIT not in installed:
        return f"the comparative metric '{MU_LIMIT}' is not installed"
    if MU_LIMIT in section.comparative_notes:
        return section.comparative_notes[MU_LIMIT]
    reasons = sorted({c.value.unavailable for c in section.comparative
                      if c.metric == MU_LIMIT and c.key == MU_KEY and c.value.unavailable})
    return "; ".join(reasons) if reasons else f"{MU_LIMIT} gave no limit for any detector"


def correlation_matrix(section: Section, signal: str) -> tuple[list[str], np.ndarray] | None:
    """Mean over seeds of the Pearson correlation of background scores between detectors (score_correlation)."""
    labels = [row.label for row in section.rows]
    matrix = np.full((len(labels), len(labels)), np.nan)
    found = False
    for i, a in enumerate(labels):
        for j, b in enumerate(labels):
            if i == j:
                matrix[i, j] = 1.0
                continue
            stat = Stat.of([v for _, v in section.comparative_values(CORRELATION, signal, a, f"pearson:{b}")])
            if stat is not None:
                matrix[i, j] = stat.mean
                found = True
    keep = [i for i in range(len(labels)) if np.isfinite(np.delete(matrix[i], i)).any()]
    if not found or len(keep) < 2:
        return None
    return [labels[i] for i in keep], matrix[np.ix_(keep, keep)]


# -- rendering ---------------------------------------------------------------
def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(table: Table, level: int = 3) -> str:
    lines = [f"{'#' * level} {table.title}", "", f"*{table.provenance}*", ""]
    lines.append("| " + " | ".join(_md_escape(c) for c in table.columns) + " |")
    lines.append("|" + "|".join(":---" if i == 0 else "---:" for i in range(len(table.columns))) + "|")
    for cells in table.rows:
        texts = [f"**{_md_escape(c.text)}**" if c.bold else _md_escape(c.text) for c in cells]
        lines.append("| " + " | ".join(texts) + " |")
    lines.append("")
    for note in table.notes:
        lines.append(note)
        if not note.startswith("- "):  # list items stay together; paragraphs get a blank line
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def long_numbers(section: Section) -> pl.DataFrame:
    """Every number of a section in long format, one row per (run, signal, metric), sorted.

    Sections with data seeds add a ``data_seed`` column.
    """
    seeded = bool(section.data_seeds)

    def data_seed(run) -> dict:  # noqa: ANN001
        return {"data_seed": run.run["dataset"]["data_seed"]} if seeded else {}

    records = []
    for row in section.rows:
        base = {"dataset": section.name, "dataset_version": section.version, "detector": row.detector,
                "detector_version": row.version, "config_hash": row.config_hash, "row": row.label}
        for run in row.ok:
            seed = int(run.run["seed"])
            common = base | {"seed": seed, "run_key": str(run.run.get("key", run.folder.name))} | data_seed(run)
            for signal, values in sorted(run.metrics().items()):
                for key, raw in sorted(values.items()):
                    v = Value.parse(raw)
                    records.append(common | {"signal": signal, "metric": key, "value": v.value,
                                             "unavailable": v.unavailable, "source": "run"})
            for key in ("fit_seconds", "score_seconds"):
                if key in run.run:
                    v = Value.parse(run.run[key])
                    records.append(common | {"signal": "", "metric": key, "value": v.value,
                                             "unavailable": v.unavailable, "source": "run"})
            cost = run.run.get("cost")
            for key, _, _ in COST_COLUMNS if isinstance(cost, dict) else ():
                if key in cost:
                    v = Value.parse(cost[key]) if cost[key] is not None else Value(None, "not measured")
                    records.append(common | {"signal": "", "metric": f"cost:{key}", "value": v.value,
                                             "unavailable": v.unavailable, "source": "run"})
        for run in row.failed:
            records.append(base | {"seed": int(run.run["seed"]), "run_key": str(run.run.get("key", run.folder.name)),
                                   "signal": "", "metric": "status", "value": None,
                                   "unavailable": f"run failed: {run.run.get('error')}", "source": "run"}
                           | data_seed(run))
    by_label = {row.label: row for row in section.rows}
    for c in section.comparative:
        row = by_label.get(c.row)
        run = row.run_for(c.replica) if row is not None else None
        records.append({
            "dataset": section.name, "dataset_version": section.version,
            "detector": row.detector if row else c.row, "detector_version": row.version if row else "",
            "config_hash": row.config_hash if row else "", "row": c.row, "seed": c.seed,
            "run_key": str(run.run.get("key", run.folder.name)) if run else "",
            "signal": c.signal, "metric": f"{c.metric}:{c.key}", "value": c.value.value,
            "unavailable": c.value.unavailable, "source": f"{c.metric} {c.metric_version}",
        } | ({"data_seed": c.data_seed} if seeded else {}))
    schema = {"dataset": pl.String, "dataset_version": pl.String, "detector": pl.String, "detector_version": pl.String,
              "config_hash": pl.String, "row": pl.String, "seed": pl.Int64, "run_key": pl.String, "signal": pl.String,
              "metric": pl.String, "value": pl.Float64, "unavailable": pl.String, "source": pl.String}
    order = ["detector", "detector_version", "config_hash", "seed", "signal", "metric", "source"]
    if seeded:  # the column exists only where runs have data seeds, so other sections' files are unchanged
        schema["data_seed"] = pl.Int64
        order.insert(3, "data_seed")
    frame = pl.DataFrame(records, schema=schema) if records else pl.DataFrame(schema=schema)
    return frame.sort(order)
