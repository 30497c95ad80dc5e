"""``hepad-bench generate ...``: Pythia 8 event generation commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from hepad_bench import hookimpl
from hepad_bench.console import RichProgress, err_console

generate_app = typer.Typer(help="Generate event samples with Pythia 8 (needs hepad-bench\\[generate]).",
                           no_args_is_help=True)

EventsOpt = Annotated[int, typer.Option("--events", min=1, help="Background events to keep (after the trigger).")]
SeedOpt = Annotated[int, typer.Option("--seed", min=1, help="Seed of every random stream of the sample.")]
OutOpt = Annotated[Path, typer.Option("--out", help="Output folder (chunks under OUT/.chunks make reruns resume).")]
SignalOpt = Annotated[Optional[int], typer.Option("--signal-events", min=0,
                                                  help="Events per signal (default: events // 10).")]
WorkersOpt = Annotated[int, typer.Option("--workers", min=1, help="Worker processes.")]


def _report(paths: list[Path]) -> None:
    for path in paths:
        typer.echo(str(path))


@generate_app.command("l1")
def generate_l1(events: EventsOpt, seed: SeedOpt, out: OutOpt, signal_events: SignalOpt = None,
                workers: WorkersOpt = 1,
                underlying_event: Annotated[bool, typer.Option(
                    help="Simulate multiparton interactions (about 4x slower; version 2 only).")] = False,
                version: Annotated[int, typer.Option(
                    "--version", min=2, max=3,
                    help="2: no pile-up, forced tau decays; 3: l+X@HLT-like (UE, pile-up mu=20, natural taus, "
                         "loose isolation, HLT record for the lx-hlt view).")] = 2) -> None:
    """ADC2021-like single-lepton sample: W, Z, ttbar, QCD background and four signals (HDF5)."""
    from hepad_plugins.generators.pythia_util import require_generators

    require_generators()
    from hepad_plugins.generators import l1

    config = l1.config_for(version, underlying_event)
    with RichProgress() as progress:
        paths = l1.generate(out, events, seed, events // 10 if signal_events is None else signal_events, workers,
                            progress, config=config)
    _report(paths)


@generate_app.command("dijet")
def generate_dijet(events: EventsOpt, seed: SeedOpt, out: OutOpt, signal_events: SignalOpt = None,
                   workers: WorkersOpt = 1,
                   constituents: Annotated[bool, typer.Option(
                       help="Also write the two jets' constituents in the LHCO raw layout "
                            "(events_anomalydetection_v2.h5).")] = True) -> None:
    """LHC-Olympics-like dijet sample: QCD dijets and a W' -> X Y -> 4 q signal."""
    from hepad_plugins.generators.pythia_util import require_generators

    require_generators()
    from hepad_plugins.generators import dijet

    with RichProgress() as progress:
        paths = dijet.generate(out, events, seed, events // 10 if signal_events is None else signal_events, workers,
                               progress, constituents=constituents)
    _report(paths)


@hookimpl
def hepad_register_commands(cli):
    cli.add_typer(generate_app, name="generate")


__all__ = ["err_console", "generate_app", "hepad_register_commands"]
