"""The ``hepad-bench`` command line."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from hepad_bench import __version__
from hepad_bench.console import RichProgress, err_console
from hepad_bench.errors import UserError
from hepad_bench.plugins import Registry, load_registry
from hepad_bench.runner import DEFAULT_SEED, RunResult, Runner, expand_grid, resolve_device

DEFAULT_DATASET = "l1-pythia"
#: The per-signal figures printed after a run (keys of the first-party metrics).
SUMMARY_KEYS = ("auc", "eff@1e-2", "eff@1e-3", "eff@1e-4", "eff@1e-5", "sic_max")

app = typer.Typer(
    help="Benchmark anomaly detectors on particle-physics datasets.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
)
datasets_app = typer.Typer(help="Inspect and download datasets.", no_args_is_help=True)
app.add_typer(datasets_app, name="datasets")
# Wide tables when piped (CI logs, files) instead of rich's 80-column default.
out = Console(width=None if sys.stdout.isatty() else 180)
_state = {"debug": False}


def _warn(message: str) -> None:
    err_console.print(f"[yellow]warning:[/yellow] {message}", highlight=False, soft_wrap=True)


def registry() -> Registry:
    return load_registry(warn=_warn)


def _split_pairs(items: list[str], what: str) -> tuple[tuple[str, str], ...]:
    pairs = []
    for item in items:
        if "=" not in item:
            raise UserError(f"bad {what} '{item}': expected name=value")
        key, value = item.split("=", 1)
        pairs.append((key.strip(), value.strip()))
    return tuple(pairs)


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of errors.")] = False,
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    _state["debug"] = debug
    if version:
        out.print(__version__)
        raise typer.Exit()


@app.command("list")
def list_plugins(as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """List installed datasets, detectors and metrics (and broken plugins)."""
    reg = registry()
    if as_json:
        out.print_json(json.dumps({
            "plugins": [e.as_json() for e in reg.entries()], "broken": [b.as_json() for b in reg.broken],
        }))
        return
    table = Table(title="hepad-bench plugins")
    for col in ("category", "name", "version", "kind", "distribution", "summary"):
        table.add_column(col, overflow="fold")
    for e in reg.entries():
        table.add_row(e.category, e.name, e.version, e.kind, e.distribution, e.summary)
    for b in reg.broken:
        table.add_row("[red]broken[/red]", b.plugin, "", "", b.distribution, f"[red]{b.reason}[/red]")
    out.print(table)


def _fmt(value: object) -> str:
    if isinstance(value, dict):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1e4 else f"{value:.3e}"
    return "-" if value is None else str(value)


def _summary(results: list[RunResult]) -> None:
    table = Table(title="run summary (per signal; n/a = too few background events for that working point)")
    for col in ("dataset", "detector", "seed", "status", "signal", *SUMMARY_KEYS):
        table.add_column(col, justify="right" if col in SUMMARY_KEYS else "left")
    for res in results:
        head = [res.spec.dataset, res.spec.detector, str(res.spec.seed), res.status]
        if res.status == "failed":
            table.add_row(*head, f"[red]{res.error}[/red]", *[""] * len(SUMMARY_KEYS))
            continue
        for signal, values in sorted(res.metrics.items()):
            table.add_row(*head, signal, *[_fmt(values.get(k)) for k in SUMMARY_KEYS])
    out.print(table)


def _searches(results: list[RunResult], output: Path) -> None:
    """Best window and global significance of every sliding-window scan among ``results``."""
    from hepad_bench import search

    found = search.summarise(results)
    if not found:
        return
    table = Table(title="sliding-window searches (Sidak over windows x cuts; see hepad_bench/search.py)")
    for col in ("dataset", "detector", "seed", "null", "signal", "windows", "best SR (TeV)", "local Z", "global Z"):
        table.add_column(col)
    for s in found:
        best = s.best
        table.add_row(s.dataset, s.detector, str(s.seed), "yes" if s.null_control else "no", s.signal,
                      str(len(s.windows)), "-" if best is None else f"{best.signal_region[0]:g}-{best.signal_region[1]:g}",
                      _fmt(None if best is None else best.z_local), _fmt(s.z_global))
        search.write(s, output)
    out.print(table)


@app.command()
def run(
    detector: Annotated[list[str], typer.Option("--detector", "-d", help="Detector name (repeatable: a grid).")],
    dataset: Annotated[Optional[list[str]], typer.Option("--dataset", help=f"Dataset name (repeatable). Default: {DEFAULT_DATASET}.")] = None,
    seed: Annotated[Optional[list[int]], typer.Option("--seed", help=f"Run seed (repeatable). Default: {DEFAULT_SEED}.")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    output: Annotated[Path, typer.Option(help="Results folder.")] = Path("results"),
    param: Annotated[Optional[list[str]], typer.Option("--param", "-p", help="Detector hyperparameter name=value, or detector.name=value for one detector of the grid.")] = None,
    option: Annotated[Optional[list[str]], typer.Option("--option", "-o", help="Dataset option name=value.")] = None,
    max_events: Annotated[Optional[int], typer.Option(min=1, help="Cap every split at N events (quick runs).")] = None,
    data_dir: Annotated[Optional[Path], typer.Option(help="Folder with the dataset's files already on disk.")] = None,
    force: Annotated[bool, typer.Option(help="Rerun runs that are already complete.")] = False,
    quiet: Annotated[bool, typer.Option(help="No progress bars.")] = False,
    null_controls: Annotated[bool, typer.Option(help="Also run each resonant run on its background-only twin.")] = True,
) -> None:
    """Train and score detectors on datasets; store every run under OUTPUT.

    On resonant datasets every run is followed by its null control (the same
    data without injected signal; --no-null-controls skips them), and
    -o sr_scan=LOW:HIGH:STEP runs one training per signal-region window and
    reports the best window with its global significance.
    """
    reg = registry()
    if data_dir is not None and not data_dir.is_dir():
        raise UserError(f"--data-dir {data_dir} is not a folder")
    specs = expand_grid(
        dataset or [DEFAULT_DATASET], detector, seed or [DEFAULT_SEED],
        dataset_options=_split_pairs(option or [], "dataset option"), params=_split_pairs(param or [], "parameter"),
        device=resolve_device(device), max_events=max_events,
    )
    with RichProgress(enabled=not quiet) as progress:
        runner = Runner(reg, output, data_dir=data_dir, progress=progress, force=force)
        specs = runner.expand(specs, null_controls=null_controls)
        runner.validate(specs)
        results = []
        for spec in specs:
            null = ", null control" if spec.null_of is not None else ""
            progress.log(f"{spec.dataset} x {spec.detector} (seed {spec.seed}, {spec.device}{null})")
            res = runner.run_one(spec)
            results.append(res)
            note = res.error if res.status == "failed" else str(res.folder)
            progress.log(f"  {res.status}: {note}")
    _summary(results)
    _searches(results, output)
    failed = [r for r in results if r.status == "failed"]
    if failed:
        err_console.print(f"[red]{len(failed)} of {len(results)} runs failed[/red] (see run.json in each folder)")
        raise typer.Exit(1)


@app.command()
def leaderboard(
    results: Annotated[Path, typer.Argument(help="Results folder written by 'hepad-bench run'.")],
    output: Annotated[Path, typer.Option(help="Where to write the tables.")] = Path("leaderboards"),
) -> None:
    """Render leaderboards (Markdown, CSV, Parquet, plots, HTML) from stored runs."""
    if not results.is_dir():
        raise UserError(f"results folder {results} does not exist; run 'hepad-bench run' first")
    from hepad_bench.leaderboard import build_leaderboards

    written = build_leaderboards(results, output, registry())
    for path in written:
        out.print(str(path))


@datasets_app.command("fetch")
def datasets_fetch(
    name: Annotated[str, typer.Argument(help="Dataset name, e.g. adc2021.")],
    option: Annotated[Optional[list[str]], typer.Option("--option", "-o", help="Dataset option name=value.")] = None,
) -> None:
    """Download a dataset's public files (with checksums) into the user cache."""
    from hepad_bench.params import build_config

    reg = registry()
    cls = reg.dataset(name)
    options = build_config(cls.Options, list(option or []), f"dataset {name}")
    with RichProgress() as progress:
        paths = cls(options).fetch(progress)
    if not paths:
        out.print(f"{name} ships with hepad-bench: nothing to download")
    for path in paths:
        out.print(str(path))


@datasets_app.command("info")
def datasets_info(name: Annotated[str, typer.Argument(help="Dataset name.")]) -> None:
    """Print a dataset's card (source, citation, licence, files, schema)."""
    from rich.markdown import Markdown

    out.print(Markdown(registry().dataset(name).card or f"{name} has no card"))


def _register_plugin_commands() -> None:
    """Let plugins add sub-commands (``hepad-bench generate ...``)."""
    try:
        reg = load_registry(warn=lambda _m: None)
    except UserError:
        return  # the clash is reported by whichever command runs
    if reg.manager is not None:
        reg.manager.hook.hepad_register_commands(cli=app)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        _register_plugin_commands()
        code = app(args=argv, standalone_mode=False)  # click returns Exit codes instead of raising here
        if isinstance(code, int) and code != 0:
            sys.exit(code)
    except UserError as exc:
        if debug:
            raise
        err_console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        err_console.print("[red]aborted[/red]")
        sys.exit(130)
    except Exception as exc:  # click usage errors come through here in non-standalone mode
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        if debug:
            raise
        err_console.print(f"[red]error:[/red] {type(exc).__name__}: {escape(str(exc))} (rerun with --debug for the traceback)", highlight=False, soft_wrap=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
