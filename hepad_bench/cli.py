"""The ``hepad-bench`` command line."""

from __future__ import annotations

import json
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from hepad_bench import __version__
from hepad_bench.console import RichProgress, err_console, route_warnings
from hepad_bench.errors import UserError
from hepad_bench.plugins import Registry, register_commands
from hepad_bench import plugins

if TYPE_CHECKING:
    from hepad_bench.runner import Runner, RunResult

# Start-up: this module imports no numpy, polars or plugin (``--help`` and ``list`` in a fraction of a
# second, see benchmarks/startup.py); the runner, summaries and leaderboards are imported by their commands.
DEFAULT_DATASET = "l1-pythia"
DEFAULT_SEED = 42  # the runner's (runner.DEFAULT_SEED; tests/test_startup.py checks they agree)
#: core commands that need no plugin's sub-commands (``list`` does: it reports a plugin whose commands fail)
NO_PLUGIN_COMMANDS = ("run", "leaderboard", "datasets")

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


#: The plugins of this process, loaded once before parsing (plugins may add commands);
#: their warnings are held back and shown by the first command that uses the registry.
_loaded: dict[str, object] = {}


def load_registry(warn) -> Registry:  # noqa: ANN001
    """The CLI's plugins: served from the metadata cache, each module imported when a class of it is used."""
    return plugins.load_registry(warn=warn, use_cache=True)


def _load_plugins(commands: bool = True) -> dict[str, object]:
    """Load the registry once; with ``commands``, also let plugins add their sub-commands (imports them)."""
    if not _loaded:
        notes: list[str] = []
        try:
            reg: object = load_registry(warn=notes.append)
        except UserError as exc:  # two plugins claim one name: every command that needs plugins says so
            reg = exc
        _loaded.update(registry=reg, notes=notes, commands=False)
    if commands and not _loaded.get("commands") and not isinstance(_loaded["registry"], UserError):
        register_commands(_loaded["registry"], app, _loaded["notes"].append)
        _loaded["commands"] = True
    return _loaded


def _needs_plugin_commands(argv: list[str]) -> bool:
    """Whether ``argv`` may need the plugins' sub-commands: for help, ``list`` and any command the core lacks."""
    words = [a for a in argv if not a.startswith("-")]
    return not words or words[0] not in NO_PLUGIN_COMMANDS


def registry() -> Registry:
    state = _load_plugins(commands=False)
    if isinstance(state["registry"], UserError):
        raise state["registry"]
    for note in state["notes"]:
        _warn(note)
    state["notes"] = []
    return state["registry"]


def _split_pairs(items: list[str], what: str) -> tuple[tuple[str, str], ...]:
    pairs = []
    for item in items:
        if "=" not in item:
            raise UserError(f"bad {what} '{item}': expected name=value")
        key, value = item.split("=", 1)
        pairs.append((key.strip(), value.strip()))
    return tuple(pairs)


def _print_version(value: bool) -> None:
    if value:
        out.print(__version__)
        raise typer.Exit()


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of errors.")] = False,
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.", is_eager=True,
                                          callback=_print_version)] = False,
) -> None:
    _state["debug"] = debug


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


def _searches(results: list[RunResult], output: Path) -> None:
    """Best window and global significance of every sliding-window scan among ``results``."""
    from hepad_bench import search
    from hepad_bench.summary import format_value

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
                      format_value(None if best is None else best.z_local), format_value(s.z_global))
        search.write(s, output)
    out.print(table)


@app.command()
def run(
    detector: Annotated[list[str], typer.Option("--detector", "-d", help="Detector name (repeatable: a grid).")],
    dataset: Annotated[Optional[list[str]], typer.Option("--dataset", help=f"Dataset name (repeatable). Default: {DEFAULT_DATASET}.")] = None,
    seed: Annotated[Optional[list[int]], typer.Option("--seed", help=f"Run seed (repeatable). Default: {DEFAULT_SEED}.")] = None,
    data_seed: Annotated[Optional[list[int]], typer.Option("--data-seed", min=0, help="Data seed (repeatable): the dataset draws its train/validation/test split (and injected signal) from it. Default: the dataset's fixed split.")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    output: Annotated[Path, typer.Option(help="Results folder.")] = Path("results"),
    param: Annotated[Optional[list[str]], typer.Option("--param", "-p", help="Detector hyperparameter name=value, or detector.name=value for one detector of the grid.")] = None,
    option: Annotated[Optional[list[str]], typer.Option("--option", "-o", help="Dataset option name=value.")] = None,
    max_events: Annotated[Optional[int], typer.Option(min=1, help="Cap every split at N events (quick runs).")] = None,
    data_dir: Annotated[Optional[Path], typer.Option(help="Folder with the dataset's files already on disk.")] = None,
    force: Annotated[bool, typer.Option(help="Rerun runs that are already complete.")] = False,
    quiet: Annotated[bool, typer.Option(help="No progress bars.")] = False,
    timeout: Annotated[Optional[float], typer.Option(min=0.001, help="Seconds a run may take; a run over it is killed and recorded as failed (runs in a child process).")] = None,
    null_controls: Annotated[bool, typer.Option(help="Also run each resonant run on its background-only twin.")] = True,
    jobs: Annotated[int, typer.Option(min=1, help="Runs computed at once: worker processes (local) or LocalCluster workers (dask), each with cores/N threads.")] = 1,
    executor: Annotated[str, typer.Option(help="local (this machine) or dask (a dask.distributed cluster).")] = "local",
    scheduler: Annotated[Optional[str], typer.Option(help="Address of an existing Dask scheduler (with --executor dask); without it a LocalCluster of --jobs workers.")] = None,
) -> None:
    """Train and score detectors on datasets; store every run under OUTPUT.

    --data-seed N draws another split of the same events (datasets that
    support it); the grid is dataset x detector x data seed x run seed, and
    the leaderboard aggregates over both seeds.

    On resonant datasets every run is followed by its null control (the same
    data without injected signal; --no-null-controls skips them), and
    -o sr_scan=LOW:HIGH:STEP runs one training per signal-region window and
    reports the best window with its global significance.
    """
    from hepad_bench.runner import Runner, expand_grid, resolve_device
    from hepad_bench.summary import summary_table
    from hepad_bench.executors import make_executor, plugin_modules

    pool = make_executor(executor, jobs, scheduler)  # None: in this process
    if pool is not None:
        pool.start()  # the workers start while this process loads the plugins and pre-flights the grid
    reg = registry()
    if data_dir is not None and not data_dir.is_dir():
        raise UserError(f"--data-dir {data_dir} is not a folder")
    specs = expand_grid(
        dataset or [DEFAULT_DATASET], detector, seed or [DEFAULT_SEED],
        dataset_options=_split_pairs(option or [], "dataset option"), params=_split_pairs(param or [], "parameter"),
        device=resolve_device(device), max_events=max_events, data_seeds=sorted(set(data_seed or [])),
    )
    started = time.perf_counter()
    with RichProgress(enabled=not quiet) as progress, (pool or nullcontext()):
        runner = Runner(reg, output, data_dir=data_dir, progress=progress, force=force, timeout=timeout)
        if pool is not None:
            runner.validate(specs)  # names first, so that the workers import only plugins that exist
            pool.warm(plugin_modules(reg, specs))  # while this process pre-flights
        specs = runner.expand(specs, null_controls=null_controls)  # scan windows, null-control twins
        runner.preflight(specs)  # names, parameters, output, data: everything checkable before training
        results = []
        counter = iter(range(1, len(specs) + 1))
        run_started = [0.0]

        def on_start(spec) -> None:  # noqa: ANN001
            run_started[0] = time.perf_counter()
            null = ", null control" if spec.null_of is not None else ""
            data = f"data seed {spec.data_seed}, " if spec.data_seed is not None else ""
            progress.line(f"run {next(counter, len(specs))}/{len(specs)}: {spec.dataset} x {spec.detector}, "
                          f"{data}seed {spec.seed} ({spec.device}{null})")

        if pool is None:
            for res in runner.iter_grid(specs, on_start=on_start):
                t0 = run_started[0]
                results.append(res)
                note = res.error if res.status == "failed" else str(res.folder)
                progress.line(f"  {res.status} in {time.perf_counter() - t0:.1f} s: {note}",
                              style="red" if res.status == "failed" else None)
        else:
            results = _run_on_executor(pool, runner, specs, progress)
    table, footer = summary_table(results)
    out.print(table)
    for line in footer:
        out.print(line, highlight=False, markup=False, soft_wrap=True)
    _searches(results, output)
    progress.report_repeats()
    _grid_end_line(results, time.perf_counter() - started, output)
    if any(r.status == "failed" for r in results):
        raise typer.Exit(1)


def _run_on_executor(pool, runner: Runner, specs: list, progress: RichProgress) -> list[RunResult]:  # noqa: ANN001
    """The grid on worker processes or a Dask cluster: one line per finished run; results in grid order."""
    from hepad_bench.executors import run_grid

    progress.line(f"{len(specs)} runs on {pool.describe()}")
    order = {spec: i for i, spec in reversed(list(enumerate(specs)))}
    done: list[tuple[int, RunResult]] = []
    for n, finished in enumerate(run_grid(pool, runner, specs), 1):
        res = finished.result
        for kind, message in finished.messages:  # the worker's plugin messages, each shown once per grid
            progress.warn(message) if kind == "warning" else progress.log(message)
        null = ", null control" if res.spec.null_of is not None else ""
        note = res.error if res.status == "failed" else str(res.folder)
        progress.line(f"run {n}/{len(specs)} {res.status} in {finished.seconds:.1f} s: {res.spec.dataset} x "
                      f"{res.spec.detector}, seed {res.spec.seed} ({res.spec.device}{null}): {note}",
                      style="red" if res.status == "failed" else None)
        done.append((order[res.spec], res))
    return [res for _, res in sorted(done, key=lambda pair: pair[0])]


def _grid_end_line(results: list[RunResult], seconds: float, output: Path) -> None:
    """One line closing a grid: runs by status, wall time, where the results are."""
    n = {status: sum(r.status == status for r in results) for status in ("ok", "skipped", "failed")}
    runs = "run" if len(results) == 1 else "runs"
    text = (f"{len(results)} {runs}: {n['ok']} ok, {n['skipped']} skipped, {n['failed']} failed in {seconds:.1f} s; "
            f"results in {output}")
    if n["failed"]:
        text += " (the error of each failed run is in its run.json)"
    err_console.print(f"[red]{escape(text)}[/red]" if n["failed"] else escape(text), highlight=False, soft_wrap=True)


@app.command()
def leaderboard(
    results: Annotated[Path, typer.Argument(help="Results folder written by 'hepad-bench run'.")],
    output: Annotated[Path, typer.Option(help="Where to write the tables.")] = Path("leaderboards"),
) -> None:
    """Render leaderboards (Markdown, CSV, Parquet, plots, HTML) from stored runs."""
    if not results.is_dir():
        raise UserError(f"results folder {results} does not exist; run 'hepad-bench run' first")
    from hepad_bench.leaderboard import build_leaderboards

    # progress on stderr (the comparative metrics take tens of seconds); the written files on stdout
    progress = Console(stderr=True, width=None if sys.stderr.isatty() else 180)
    start = time.monotonic()

    def say(line: str) -> None:
        progress.print(f"[{time.monotonic() - start:5.1f} s] {line}", markup=False, highlight=False)

    written = build_leaderboards(results, output, registry(), progress=say)
    for path in written:
        out.print(str(path))


@datasets_app.command("fetch")
def datasets_fetch(
    name: Annotated[str, typer.Argument(help="Dataset name, e.g. adc2021.")],
    option: Annotated[Optional[list[str]], typer.Option("--option", "-o", help="Dataset option name=value.")] = None,
) -> None:
    """Download a dataset's public files (with checksums where the source gives them) into the user cache."""
    from hepad_bench.dataset_tools import downloads_dir
    from hepad_bench.params import build_config

    reg = registry()
    cls = reg.dataset(name)
    dist = reg.datasets[name].distribution
    if not cls.has_remote_files():  # nothing declared: say where the data comes from instead (issue 12)
        out.print(f"{name} (from {dist}) has no files to download: its data comes with {dist} or is made locally; "
                  f"'hepad-bench datasets info {name}' says how", highlight=False, soft_wrap=True)
        return
    options = build_config(cls.Options, list(option or []), f"dataset {name}")
    with RichProgress() as progress:
        try:
            paths = cls(options).fetch(progress)
        except UserError:
            raise
        except Exception as exc:  # a download that fails (network, checksum) is one line naming the plugin
            raise UserError(f"fetching {name} (from {dist}) failed: {type(exc).__name__}: {exc}") from exc
    if not paths:
        out.print(f"{name} (from {dist}): nothing to download with these options", highlight=False)
    for path in paths:
        out.print(str(path), highlight=False, soft_wrap=True)
    if paths:
        err_console.print(f"{len(paths)} file(s) of {name} (from {dist}) in {downloads_dir(name)}; "
                          f"'hepad-bench run --dataset {name}' finds them there", highlight=False, soft_wrap=True)


@datasets_app.command("info")
def datasets_info(name: Annotated[str, typer.Argument(help="Dataset name.")]) -> None:
    """Print what a dataset is (distribution, files, data seeds, training data) and its card."""
    from rich.markdown import Markdown

    reg = registry()
    for key, value in reg.dataset_facts(name):
        out.print(f"{key}: {value}", highlight=False, markup=False, soft_wrap=True)
    out.print()
    card = reg.card(name)
    out.print(Markdown(card) if card else f"{name} has no card ({reg.datasets[name].distribution} provides none)")


@app.command("new-plugin")
def new_plugin(
    kind: Annotated[str, typer.Argument(help="detector or dataset.")],
    name: Annotated[str, typer.Argument(help="The plugin's CLI name, e.g. my-detector.")],
    output: Annotated[Optional[Path], typer.Option(help="Folder to write (absent or empty). Default: ./hepad-bench-NAME.")] = None,
) -> None:
    """Write a ready plugin package: pyproject with the entry point, a working module, a test, CI, README."""
    from hepad_bench.scaffold import check_name, write_package

    names = check_name(kind, name)
    reg = registry()
    taken = getattr(reg, f"{names.kind}s").get(names.name)
    if taken is not None:
        raise UserError(f"a {names.kind} named '{names.name}' is already installed (from {taken.distribution}); "
                        "choose another name")
    folder = output if output is not None else Path(names.distribution)
    for path in write_package(names, folder):
        out.print(str(path), highlight=False, soft_wrap=True)
    err_console.print(f"wrote {names.distribution} into {folder}: 'pip install -e \"{folder}[test]\"' then "
                      f"'pytest {folder}'", highlight=False, markup=False, soft_wrap=True)


def _click_errors() -> tuple[type, ...]:
    """ClickException of click and of the copy typer >= 0.29 bundles (not subclasses of one another)."""
    import click

    types: list[type] = [click.exceptions.ClickException]
    try:
        from typer._click import exceptions as bundled

        types.append(bundled.ClickException)
    except ImportError:
        pass
    return tuple(types)


def _usage_error(exc: Exception) -> None:
    """A usage error in one line, naming the option (exit 2); bare ``hepad-bench`` has printed its help (exit 0)."""
    if type(exc).__name__ == "NoArgsIsHelpError":
        sys.exit(0)
    message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
    ctx = getattr(exc, "ctx", None)
    hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
    err_console.print(f"[red]error:[/red] {escape(' '.join(message.split()))}{hint}", highlight=False, soft_wrap=True)
    sys.exit(getattr(exc, "exit_code", 2) or 2)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    route_warnings()
    try:
        # before parsing: plugins may add sub-commands (``hepad-bench generate ...``); the core's commands skip that
        _load_plugins(commands=_needs_plugin_commands(argv))
        code = app(args=argv, prog_name="hepad-bench", standalone_mode=False)  # Exit codes are returned, not raised
        if code == 130:  # typer turns Ctrl-C into Exit(130)
            err_console.print("[red]aborted[/red]")
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
        if isinstance(exc, _click_errors()):
            _usage_error(exc)
        if debug:
            raise
        err_console.print(f"[red]error:[/red] {type(exc).__name__}: {escape(str(exc))} (rerun with --debug for the traceback)", highlight=False, soft_wrap=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
