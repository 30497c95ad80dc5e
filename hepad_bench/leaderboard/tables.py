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

from hepad_bench.leaderboard.collect import Section, Value

#: Working points of the per-run efficiency metric, smallest background efficiency first.
EFF_KEYS = ("eff@1e-5", "eff@1e-4", "eff@1e-3", "eff@1e-2")
MU_LIMIT, MU_KEY = "mu_limit", "mu_up_over_dnn"
CORRELATION = "score_correlation"
SIC = "sic_max"
NA = "n/a"


@dataclass(frozen=True)
class Stat:
    """Mean and sample standard deviation (ddof=1) over seeds."""

    mean: float
    std: float | None  # None with a single seed
    n: int

    @classmethod
    def of(cls, values: list[Value]) -> Stat | None:
        numbers = np.array([v.value for v in values if v.value is not None], dtype=np.float64)
        if numbers.size == 0:
            return None
        std = float(np.std(numbers, ddof=1)) if numbers.size > 1 else None
        return cls(float(np.mean(numbers)), std, int(numbers.size))


def fmt_number(x: float, sig: bool = False) -> str:
    """Three decimals for efficiencies and AUCs; significant digits for small values or ``sig``."""
    if sig or (x != 0 and abs(x) < 0.01) or abs(x) >= 1e4:
        return f"{x:.3g}"
    return f"{x:.3f}"


def _fmt_sig(x: float, digits: int) -> str:
    text = f"{x:#.{digits}g}"
    return text.rstrip(".") if "e" not in text else text


def fmt_stat(stat: Stat | None, expected_n: int, sig: bool = False) -> str:
    """``mean ± std``; with ``sig``: three significant digits for the mean, two for the std."""
    if stat is None:
        return NA
    text = _fmt_sig(stat.mean, 3) if sig else fmt_number(stat.mean)
    if stat.std is not None:
        fixed = not sig and "e" not in text and (stat.mean == 0 or abs(stat.mean) >= 0.01)
        text += f" ± {stat.std:.3f}" if fixed else f" ± {stat.std:.2g}"  # the std at the mean's precision
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
    #: the same table as numbers (mean, std, n per column), written as CSV
    csv: pl.DataFrame | None = None


def _mark_best(rows: list[list[Cell]], col: int, higher_is_better: bool, shown=None) -> None:
    """Bold the best mean of a column, and every mean that reads the same as it (ties as displayed)."""
    shown = shown or fmt_number
    stats = [(i, r[col].stat) for i, r in enumerate(rows) if r[col].stat is not None]
    if not stats:
        return
    best = shown((max if higher_is_better else min)(s.mean for _, s in stats))
    for i, s in stats:
        if shown(s.mean) == best:
            rows[i][col].bold = True


def provenance(section: Section, extra: str = "") -> str:
    options = json.dumps(section.options, sort_keys=True) if section.options else "defaults"
    cap = section.max_events if section.max_events is not None else "none"
    seeds = ", ".join(map(str, section.seeds)) or "none"
    versions = ", ".join(section.hepad_versions)
    text = (f"Dataset {section.name} version {section.version} (options: {options}; max events: {cap}); "
            f"seeds {seeds}; hepad-bench {versions}; detector versions in the table")
    return text + (f"; {extra}" if extra else "") + "."


def working_point(section: Section, signal: str) -> str | None:
    """The smallest background efficiency with a value in every successful run, else in any run."""
    def values(key: str) -> list[Value]:
        return [v for row in section.rows for _, v in row.values(signal, key)]

    runs = sum(1 for row in section.rows for r in row.ok if signal in r.signals())
    for key in EFF_KEYS:
        found = [v for v in values(key) if v.value is not None]
        if runs and len(found) == runs:
            return key
    for key in EFF_KEYS:
        if any(v.value is not None for v in values(key)):
            return key
    return None


def main_table(section: Section) -> Table:
    """Per detector: signal efficiency at the chosen working point and AUC per signal (mean ± std over seeds)."""
    points = {s: working_point(section, s) for s in section.signals}
    columns = ["detector", "version", "kind", "seeds"]
    metrics: list[tuple[str, str]] = []
    for signal in section.signals:
        point = points[signal]
        if point is not None:
            eps_b = point.split("@", 1)[1]
            columns.append(f"{signal}: eff_S at eff_B={eps_b}")
            metrics.append((signal, point))
        columns.append(f"{signal}: AUC")
        metrics.append((signal, "auc"))
        # resonant searches are usually compared by the maximum significance improvement (CATHODE, LHCO)
        if section.task == "resonant" and any(v.value is not None for row in section.rows for _, v in row.values(signal, SIC)):
            columns.append(f"{signal}: max SIC")
            metrics.append((signal, SIC))

    rows: list[list[Cell]] = []
    records: list[dict] = []
    for row in section.rows:
        seeds = row.seeds
        seed_text = f"{len(seeds)} ({', '.join(map(str, seeds))})" if seeds else "0 (all failed)"
        cells = [Cell(row.label), Cell(row.version), Cell(row.kind), Cell(seed_text)]
        record: dict = {"detector": row.detector, "config_hash": row.config_hash, "label": row.label,
                        "version": row.version, "kind": row.kind, "seeds": " ".join(map(str, seeds))}
        for signal, key in metrics:
            stat = Stat.of([v for _, v in row.values(signal, key)])
            cells.append(Cell(fmt_stat(stat, len(seeds)), stat=stat))
            for part, number in (("mean", None if stat is None else stat.mean),
                                 ("std", None if stat is None else stat.std),
                                 ("n", 0 if stat is None else stat.n)):
                record[f"{signal}:{key}:{part}"] = number
        rows.append(cells)
        records.append(record)
    for col in range(4, len(columns)):
        _mark_best(rows, col, higher_is_better=True)

    notes = ["Values are mean ± sample standard deviation (ddof=1) over seeds; (n=k) where fewer seeds gave a value; "
             "best per column in bold; n/a: no value (see numbers.parquet for the reason)."]
    for signal in section.signals:
        if points[signal] is None:
            notes.append(f"{signal}: no signal efficiency at any background efficiency ({', '.join(EFF_KEYS)}) is available.")
    failed = [(row, r) for row in section.rows for r in row.failed]
    if failed:
        notes.append("Failed runs:")
        for row, run in failed:
            error = str(run.run.get("error") or "unknown error").strip().splitlines()[0][:200]
            notes.append(f"- {row.label} seed {run.run.get('seed')}: {error}")

    schema: dict[str, pl.DataType] = {k: pl.String for k in ("detector", "config_hash", "label", "version", "kind", "seeds")}
    for signal, key in metrics:
        schema |= {f"{signal}:{key}:mean": pl.Float64, f"{signal}:{key}:std": pl.Float64, f"{signal}:{key}:n": pl.Int64}
    csv = pl.DataFrame(records, schema=schema) if records else pl.DataFrame(schema=schema)
    return Table(f"{section.name}: leaderboard", columns, rows, provenance(section), notes, csv)


def mu_table(section: Section, installed: dict[str, str]) -> Table:
    """Upper limit on the signal strength, normalised to the supervised DNN (lower is better)."""
    columns = ["detector", *section.signals]
    rows: list[list[Cell]] = []
    records: list[dict] = []
    for row in section.rows:
        cells = [Cell(row.label)]
        record: dict = {"detector": row.label}
        for signal in section.signals:
            stat = Stat.of([v for _, v in section.comparative_values(MU_LIMIT, signal, row.label, MU_KEY)])
            cells.append(Cell(fmt_stat(stat, len(row.seeds), sig=True), stat=stat))
            record[f"{signal}:mean"] = None if stat is None else stat.mean
            record[f"{signal}:std"] = None if stat is None else stat.std
            record[f"{signal}:n"] = 0 if stat is None else stat.n
        rows.append(cells)
        records.append(record)
    for col in range(1, len(columns)):
        _mark_best(rows, col, higher_is_better=False, shown=lambda x: _fmt_sig(x, 3))
    extra = f"metric {MU_LIMIT} version {installed[MU_LIMIT]}" if MU_LIMIT in installed else f"metric {MU_LIMIT} not installed"
    notes = ["mu_up / mu_up(supervised DNN), mean ± std over seeds (each seed's limit normalised to the same seed's DNN); "
             "lower is better, best in bold."]
    if MU_LIMIT not in installed:
        notes.append(f"n/a everywhere: the comparative metric '{MU_LIMIT}' is not installed.")
    elif MU_LIMIT in section.comparative_notes:
        notes.append(f"n/a: {section.comparative_notes[MU_LIMIT]}")
    reasons = sorted({c.value.unavailable for c in section.comparative
                      if c.metric == MU_LIMIT and c.key == MU_KEY and c.value.unavailable})
    if reasons:
        shown = "; ".join(reasons[:3]) + (f"; and {len(reasons) - 3} more" if len(reasons) > 3 else "")
        notes.append(f"n/a where {MU_LIMIT} gave no value: {shown}.")
    schema: dict[str, pl.DataType] = {"detector": pl.String}
    for signal in section.signals:
        schema |= {f"{signal}:mean": pl.Float64, f"{signal}:std": pl.Float64, f"{signal}:n": pl.Int64}
    csv = pl.DataFrame(records, schema=schema) if records else pl.DataFrame(schema=schema)
    return Table(f"{section.name}: upper limit on mu relative to the supervised DNN", columns, rows,
                 provenance(section, extra), notes, csv)


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
    """Every number of a section in long format, one row per (run, signal, metric), sorted."""
    records = []
    for row in section.rows:
        base = {"dataset": section.name, "dataset_version": section.version, "detector": row.detector,
                "detector_version": row.version, "config_hash": row.config_hash, "row": row.label}
        for run in row.ok:
            seed = int(run.run["seed"])
            common = base | {"seed": seed, "run_key": str(run.run.get("key", run.folder.name))}
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
        for run in row.failed:
            records.append(base | {"seed": int(run.run["seed"]), "run_key": str(run.run.get("key", run.folder.name)),
                                   "signal": "", "metric": "status", "value": None,
                                   "unavailable": f"run failed: {run.run.get('error')}", "source": "run"})
    by_label = {row.label: row for row in section.rows}
    for c in section.comparative:
        row = by_label.get(c.row)
        run = row.run_for(c.seed) if row is not None else None
        records.append({
            "dataset": section.name, "dataset_version": section.version,
            "detector": row.detector if row else c.row, "detector_version": row.version if row else "",
            "config_hash": row.config_hash if row else "", "row": c.row, "seed": c.seed,
            "run_key": str(run.run.get("key", run.folder.name)) if run else "",
            "signal": c.signal, "metric": f"{c.metric}:{c.key}", "value": c.value.value,
            "unavailable": c.value.unavailable, "source": f"{c.metric} {c.metric_version}",
        })
    schema = {"dataset": pl.String, "dataset_version": pl.String, "detector": pl.String, "detector_version": pl.String,
              "config_hash": pl.String, "row": pl.String, "seed": pl.Int64, "run_key": pl.String, "signal": pl.String,
              "metric": pl.String, "value": pl.Float64, "unavailable": pl.String, "source": pl.String}
    frame = pl.DataFrame(records, schema=schema) if records else pl.DataFrame(schema=schema)
    return frame.sort(["detector", "detector_version", "config_hash", "seed", "signal", "metric", "source"])
