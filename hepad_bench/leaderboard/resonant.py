"""The resonant-search table: significance with signal next to the fake-discovery rate of the null controls.

For every resonant dataset variant with injected signal, per detector
configuration: the readout's global significance (``sb_Z``: the SR excess
over the dijet fit of the selected sidebands, Sidak-corrected for the cuts
tried) over seeds, and from each run's background-only twin (run.json
``null_twin``, the same splits without injected signal) the fraction of
seeds whose null significance exceeds 2 sigma: the fake-discovery rate,
with its 68 % Clopper-Pearson interval. A method that "finds" bumps in its
null controls cannot claim the ones it finds with signal. The distance
correlation of the score with mjj on background, in the SR and in the
sidebands (``mass_dcorr_sr`` / ``mass_dcorr_sb``), says why.

Written as ``<dataset>/resonant.md`` and ``resonant.csv``; the core reads
only the per-run metric keys named here (a convention of the first-party
``sideband_fit`` and ``mass_correlation`` metrics), never a plugin.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import polars as pl

from hepad_bench.leaderboard.collect import Row, Section, Value, describe_replicas

Z_KEY, DCORR_SR, DCORR_SB = "sb_Z", "mass_dcorr_sr", "mass_dcorr_sb"
#: Where the readout cut (sb_on_training: 1 = the out-of-fold training pool, 0 = the held-out hunt sample;
#: sb_template: 1 = SR background from the detector's template) and what it saw at the 10 % cut.
ON_TRAINING, TEMPLATE, N_KEY, S_KEY, B_KEY, CLOSURE_KEY = (
    "sb_on_training", "sb_template", "sb_N@10%", "sb_S_true@10%", "sb_B@10%", "sb_closure@10%")
#: A null control "discovers" something above this global significance.
FAKE_THRESHOLD = 2.0


def _value(metrics: dict[str, Any], signal: str, key: str) -> float | None:
    v = Value.parse(metrics.get(signal, {}).get(key, {"unavailable": "missing"}))
    return v.value


def _mean_std(values: list[float]) -> str:
    if not values:
        return "n/a"
    mean = sum(values) / len(values)
    if len(values) == 1:
        return f"{mean:.2f}"
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    return f"{mean:.2f} ± {std:.2f}"


def _rate(k: int, n: int) -> str:
    if n == 0:
        return "n/a (no null controls)"
    from scipy.stats import binomtest

    ci = binomtest(k, n).proportion_ci(confidence_level=0.68, method="exact")
    return f"{k}/{n} [{ci.low:.2f}, {ci.high:.2f}]"


def row_numbers(row: Row, signal: str, runs_by_key: dict[str, Any]) -> dict[str, Any]:
    """Per seed: significance with signal, the twin's null significance, dcorr (SR, sidebands)."""
    z_sig, z_null, dc_sr, dc_sb, seeds = [], [], [], [], []
    readout: dict[str, list[float]] = {k: [] for k in (ON_TRAINING, TEMPLATE, N_KEY, S_KEY, B_KEY, CLOSURE_KEY)}
    for run in row.ok:
        metrics = run.metrics()
        seeds.append(int(run.run["seed"]))
        z = _value(metrics, signal, Z_KEY)
        if z is not None:
            z_sig.append(z)
        for key, out in readout.items():
            v = _value(metrics, signal, key)
            if v is not None:
                out.append(v)
        twin = runs_by_key.get(run.run.get("null_twin"))
        if twin is not None and twin.ok:
            twin_metrics = twin.metrics()
            zn = _value(twin_metrics, signal, Z_KEY)
            if zn is not None:
                z_null.append(zn)
            for key, out in ((DCORR_SR, dc_sr), (DCORR_SB, dc_sb)):
                v = _value(twin_metrics, signal, key)
                if v is not None:
                    out.append(v)
    return {"seeds": seeds, "z_signal": z_sig, "z_null": z_null, "dcorr_sr": dc_sr, "dcorr_sb": dc_sb,
            "readout": readout}


def _read_on(readout: dict[str, list[float]]) -> str:
    """Which sample the cut was read on and how its background was estimated (the seeds' majority)."""
    if not readout[ON_TRAINING]:
        return "n/a"
    sample = "training pool (OOF)" if _mean(readout[ON_TRAINING]) >= 0.5 else "hunt"
    how = "SR template" if readout[TEMPLATE] and _mean(readout[TEMPLATE]) >= 0.5 else "sideband fit"
    return f"{sample}, {how}"


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def _counts(readout: dict[str, list[float]]) -> str:
    """N / S_true / B at the 10 % cut, means over seeds (S_true: the truth, never used by the readout)."""
    parts = [f"{_mean(readout[k]):.0f}" if readout[k] else "n/a" for k in (N_KEY, S_KEY, B_KEY)]
    return " / ".join(parts)


def resonant_section_markdown(section: Section, runs_by_key: dict[str, Any]) -> tuple[str, pl.DataFrame] | None:
    """The table of one resonant section with signal (None for other sections)."""
    if section.task != "resonant" or not any(r.run.get("null_twin") for row in section.rows for r in row.ok):
        return None
    lines = [f"## Resonant search: {section.name} (version {section.version})", "",
             f"*sideband-fit readout (`{Z_KEY}`), mean ± std over "
             + (describe_replicas(section.replicas) if section.data_seeds else f"seeds {section.seeds}")
             + "; null controls: the same "
             f"splits without injected signal; fake-discovery rate = seeds whose null `{Z_KEY}` > {FAKE_THRESHOLD:g} "
             "(68 % Clopper-Pearson interval); dcorr on the null controls' background. Methods are read out on "
             "different samples (column *read on*: the out-of-fold training pool or the smaller held-out hunt "
             "sample), so their Z values compare only with the selected counts next to them: N selected SR events "
             "/ true signal among them / estimated background at the 10 % cut, means over seeds; closure: "
             "the template's sideband check (data / template efficiency), with signal*", "",
             "| detector | signal | Z global (with signal) | fake-discovery rate | max null Z | read on | "
             "N / S / B @10% | closure @10% | dcorr SR | dcorr SB |",
             "|:---|:---|---:|---:|---:|:---|---:|---:|---:|---:|"]
    records = []
    for signal in section.signals:
        for row in section.rows:
            n = row_numbers(row, signal, runs_by_key)
            fakes = sum(z > FAKE_THRESHOLD for z in n["z_null"])
            has_null = bool(n["z_null"])
            cells = [row.label, signal, _mean_std(n["z_signal"]), _rate(fakes, len(n["z_null"])),
                     f"{max(n['z_null']):.2f}" if has_null else "n/a", _read_on(n["readout"]),
                     _counts(n["readout"]), _mean_std(n["readout"][CLOSURE_KEY]),
                     _mean_std(n["dcorr_sr"]), _mean_std(n["dcorr_sb"])]
            lines.append("| " + " | ".join(cells) + " |")
            records.append({"detector": row.label, "signal": signal, "seeds": len(n["seeds"]),
                            "z_mean": sum(n["z_signal"]) / len(n["z_signal"]) if n["z_signal"] else None,
                            "null_runs": len(n["z_null"]), "null_above_2sigma": fakes,
                            "null_z_max": max(n["z_null"]) if n["z_null"] else None})
    lines += ["", "A value is missing where the readout was unavailable (see each run's metrics.json for why: "
              "too few selected sideband events, or an SR-only score without a background template).", ""]
    return "\n".join(lines), pl.DataFrame(records, schema={
        "detector": pl.String, "signal": pl.String, "seeds": pl.Int64, "z_mean": pl.Float64,
        "null_runs": pl.Int64, "null_above_2sigma": pl.Int64, "null_z_max": pl.Float64})


def write_resonant_tables(sections: list[Section], output: Path, written: list[Path]) -> list[str]:
    """Write ``<slug>/resonant.md`` and ``.csv`` per resonant section with signal; lines for the top README."""
    runs_by_key = {r.run.get("key"): r for s in sections for row in s.rows for r in row.ok + row.failed}
    readme: list[str] = []
    for section in sections:
        made = resonant_section_markdown(section, runs_by_key)
        if made is None:
            continue
        text, frame = made
        folder = Path(output) / section.slug
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "resonant.md").write_text(text, encoding="utf-8")
        (folder / "resonant.csv").write_text(frame.write_csv(), encoding="utf-8")
        written += [folder / "resonant.md", folder / "resonant.csv"]
        readme += [text.replace("## Resonant", "### Resonant", 1), ""]
    return readme
