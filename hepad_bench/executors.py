"""Executors: where the runs of a grid are computed (``hepad-bench run --jobs N``, ``--executor dask``).

The unit of work is :meth:`Runner.run_one` (spec in, run folder out, under the
run's lock), so an executor only decides *where* it is called:

* ``serial``: in this process, one run at a time (``--jobs 1``, the default).
* :class:`LocalPool`: ``--jobs N`` *spawned* worker processes on this machine
  (not forked: polars' and torch's thread pools in the parent can leave a
  forked child deadlocked). Each worker caps its BLAS/OpenMP/torch threads at
  ``max(1, cores // N)`` so that N workers do not oversubscribe the cores.
* :class:`DaskPool`: tasks on a ``dask.distributed`` cluster, an existing one
  (``--scheduler ADDRESS``, e.g. dask-jobqueue on HTCondor or SLURM) or a
  ``LocalCluster`` of ``--jobs`` single-threaded worker processes.

A worker builds its own :class:`Runner` from a :class:`WorkerRecipe` (the
registry's classes travel by reference, so the plugins must be installed
where the worker runs) and keeps it for the grid, so each worker loads a
dataset once. Plugin messages are collected in the worker and replayed by the
parent, which prints one line per finished run.

A worker that dies (killed, out of memory) leaves no visible run folder (the
store writes a hidden temporary folder and renames it), and its lock is
released by the operating system. The parent then records the run as
*failed* with the reason, unless the run turned out complete; it is not
retried in this grid (a crash of that kind tends to repeat), but, like every
failed run, on the next invocation. Dask first applies its own policy (the
scheduler reschedules a task whose worker died, up to
``distributed.scheduler.allowed-failures`` times) before the run is recorded
as failed.
"""

from __future__ import annotations

import dataclasses
import os
import time
import traceback
import uuid
import warnings
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hepad_bench.contracts import Progress
from hepad_bench.errors import UserError

if TYPE_CHECKING:  # the runner imports polars and numpy: keep them out of a worker until its threads are capped
    from hepad_bench.plugins import PluginEntry, Registry
    from hepad_bench.runner import RunResult, RunSpec, Runner

EXECUTORS = ("local", "dask")
#: environment variables read by BLAS / OpenMP / polars when they load: set before a worker imports them
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
              "NUMEXPR_NUM_THREADS", "POLARS_MAX_THREADS")


def available_cores() -> int:
    """CPU cores this process may use (its affinity mask where the OS has one, e.g. under SLURM or taskset)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def threads_per_worker(jobs: int, cores: int | None = None) -> int:
    """Threads each of ``jobs`` workers may use so that together they use the cores once."""
    return max(1, (cores or available_cores()) // max(1, jobs))


def limit_threads(threads: int) -> None:
    """Cap the BLAS/OpenMP pools (threadpoolctl) and torch's intra-op threads of this process at ``threads``."""
    for name in THREAD_ENV:  # for libraries this process has not loaded yet
        os.environ[name] = str(threads)
    import sys

    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads)  # applies to the pools already loaded, process-wide
    if "torch" in sys.modules:  # else torch reads OMP_NUM_THREADS when it loads (importing it here costs seconds)
        sys.modules["torch"].set_num_threads(threads)


@contextmanager
def thread_env(threads: int) -> Iterator[None]:
    """The parent's environment with the thread caps set, while worker processes start (they inherit it)."""
    saved = {name: os.environ.get(name) for name in THREAD_ENV}
    os.environ.update({name: str(threads) for name in THREAD_ENV})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


# -- what a worker runs ---------------------------------------------------------------------------
@dataclass(frozen=True)
class WorkerRecipe:
    """Everything a worker needs to build the grid's Runner (picklable: the plugin classes go by reference)."""

    registry: Registry
    output: Path
    data_dir: Path | None
    force: bool
    timeout: float | None
    threads: int | None  # None: leave the worker's thread settings alone
    token: str = field(default_factory=lambda: uuid.uuid4().hex)  # one Runner per grid and worker process

    @classmethod
    def of(cls, runner: Runner, specs: list[RunSpec], threads: int | None) -> WorkerRecipe:
        return cls(grid_registry(runner.registry, specs), runner.output, runner.data_dir, runner.force,
                   runner.timeout, threads)


def grid_registry(registry: Registry, specs: list[RunSpec]) -> Registry:
    """The registry cut down to the grid's datasets and detectors (and every metric), without the plugin manager.

    It is what goes to the workers: unpickling it imports only the plugin modules the grid needs
    (no torch for a grid of pyod detectors), and the manager is neither picklable nor needed to run.
    """
    from hepad_bench.plugins import Registry

    def loaded(entry: PluginEntry) -> PluginEntry:  # a lazy entry's loader is a closure: send the class instead
        return dataclasses.replace(entry, cls=entry.load(), loader=None)

    datasets, detectors = {s.dataset for s in specs}, {s.detector for s in specs}
    return Registry(datasets={k: loaded(v) for k, v in registry.datasets.items() if k in datasets},
                    detectors={k: loaded(v) for k, v in registry.detectors.items() if k in detectors},
                    metrics={k: loaded(v) for k, v in registry.metrics.items() if v.kind == "per-run"})


def plugin_modules(registry: Registry, specs: list[RunSpec]) -> list[str]:
    """The modules a worker imports to run ``specs`` (imported while the parent pre-flights the grid)."""
    slim = grid_registry(registry, specs)
    return sorted({entry.cls.__module__ for entry in slim.entries()})


class CollectingProgress(Progress):
    """A worker's progress: no bars; log lines and warnings kept for the parent to show."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, str]] = []

    def log(self, message: str) -> None:
        self.messages.append(("log", message))

    def warn(self, message: str) -> None:
        self.messages.append(("warning", message))


@dataclass
class Finished:
    """A run's result as a worker hands it back."""

    result: RunResult
    seconds: float
    messages: list[tuple[str, str]]
    worker: str  # host:pid, for the user to find a worker's log


_RUNNERS: dict[str, Runner] = {}  # recipe token -> this worker process's Runner


def execute(recipe: WorkerRecipe, spec: RunSpec, wait: bool) -> Finished:
    """Run one spec in this (worker) process: :meth:`Runner.run_one` under the run's lock."""
    import socket

    if recipe.token not in _RUNNERS:
        if recipe.threads is not None:
            limit_threads(recipe.threads)
        from hepad_bench.runner import Runner

        _RUNNERS.clear()  # a new grid: drop the previous one's datasets
        _RUNNERS[recipe.token] = Runner(recipe.registry, recipe.output, data_dir=recipe.data_dir,
                                        force=recipe.force, timeout=recipe.timeout)
    runner = _RUNNERS[recipe.token]
    runner.progress = progress = CollectingProgress()
    started = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:  # Python warnings too go to the parent, as one line each
        result = runner.run_one(spec, wait=wait)
    messages = progress.messages + [("warning", " ".join(str(w.message).split())) for w in caught]
    return Finished(result, time.perf_counter() - started, messages, f"{socket.gethostname()}:{os.getpid()}")


def record_lost_run(runner: Runner, spec: RunSpec, folder: Path, reason: str) -> RunResult:
    """A run whose worker died or raised: recorded as failed (kept as it is if it completed after all)."""
    import json

    from hepad_bench.runner import RunResult
    from hepad_bench.store import is_complete, run_lock, try_lock, write_run

    lock = run_lock(folder)
    try_lock(lock, wait=True)  # a dead worker's lock is released by the OS
    try:
        if is_complete(folder):  # died after the final rename: the run is there
            run = json.loads((folder / "run.json").read_text())
            metrics = json.loads((folder / "metrics.json").read_text()) if (folder / "metrics.json").exists() else {}
            return RunResult(spec, folder, "ok", metrics=metrics, run=run)
        _, det_id = runner.detector_identity(spec)
        run = {"key": folder.name, "dataset": runner.data_identity(spec), "detector": det_id, "seed": spec.seed,
               "device": spec.device, "status": "failed", "error": reason, "traceback": "",
               "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        write_run(folder, run, None, None)
        return RunResult(spec, folder, "failed", error=reason, run=run)
    finally:
        lock.release()


# -- local worker processes ------------------------------------------------------------------------
def _pool_worker(conn: Any) -> None:
    """A LocalPool worker: run the specs sent to it, one at a time, until it gets None."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it stops the workers
    while True:
        try:
            task = conn.recv()
        except EOFError:  # the parent is gone
            return
        if task is None:
            return
        if task[0] == "import":  # warm-up: the plugin modules of the grid, while the parent pre-flights
            import importlib

            for module in task[1]:
                try:
                    importlib.import_module(module)
                except Exception:  # noqa: BLE001 - the run that needs it reports the error
                    pass
            continue
        try:
            reply = ("ok", execute(*task[1:]))
        except BaseException as exc:  # a UserError in a worker (its data) etc.: the parent records the run failed
            reply = ("error", f"{type(exc).__name__}: {exc}", traceback.format_exc())
        conn.send(reply)


class _Slot:
    """One worker process and the spec it is running."""

    def __init__(self, ctx: Any):
        self.conn, child = ctx.Pipe()
        # not a daemon: a worker may start its own child (--timeout runs each run in one)
        self.process = ctx.Process(target=_pool_worker, args=(child,), daemon=False, name="hepad-bench worker")
        self.process.start()
        child.close()
        self.task: tuple[RunSpec, bool] | None = None
        self.detectors: set[str] = set()  # detectors this worker has run (its one-off costs are paid)

    def stop(self) -> None:
        if self.process.is_alive():
            try:
                self.conn.send(None)
            except OSError:
                pass
            self.process.join(1)  # an idle worker exits at once; one still importing or running is killed
        if self.process.is_alive():
            self.process.kill()
        self.process.join()
        self.conn.close()


def _next_for(slot: _Slot, todo: deque[tuple[RunSpec, bool]], slots: list[_Slot]) -> tuple[RunSpec, bool]:
    """The task an idle worker takes: its own detector's next run, else that of the detector fewest workers run.

    A detector's first run in a process pays one-off costs (imports, torch start-up: seconds
    against a small run's fraction of a second), so each detector stays with as few workers as keep them all busy.
    """
    def rank(item: tuple[int, tuple[RunSpec, bool]]) -> tuple[int, int]:
        index, (spec, _) = item
        if spec.detector in slot.detectors:
            return (0, index)
        return (1 + sum(spec.detector in other.detectors for other in slots), index)

    index, task = min(enumerate(todo), key=rank)
    del todo[index]
    return task


class LocalPool:
    """``jobs`` spawned worker processes on this machine, each running one run at a time.

    A context manager: :meth:`start` (called early by the CLI, so that the workers start while this
    process pre-flights the grid) and :meth:`close`, which stops them.
    """

    def __init__(self, jobs: int):
        self.jobs = jobs
        self.threads = threads_per_worker(jobs)
        self.slots: list[_Slot] = []

    def describe(self) -> str:
        return f"{self.jobs} local worker processes, {self.threads} thread(s) each"

    def __enter__(self) -> LocalPool:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def start(self) -> None:
        """Start the workers (if not yet); they start importing while this process goes on."""
        import atexit
        import multiprocessing

        self._ctx = multiprocessing.get_context("spawn")
        with thread_env(self.threads):
            while len(self.slots) < self.jobs:
                self.slots.append(_Slot(self._ctx))
        atexit.register(self.close)  # non-daemon workers: an early exit (a user error) must not wait on them

    def warm(self, modules: list[str]) -> None:
        """Have every worker import ``modules`` (the grid's plugins) now, before its first run."""
        for slot in self.slots:
            slot.conn.send(("import", list(modules)))

    def close(self) -> None:
        for slot in self.slots:
            slot.stop()
        self.slots = []

    def map(self, runner: Runner, specs: list[RunSpec], folders: dict[RunSpec, Path]) -> Iterator[Finished]:
        from multiprocessing.connection import wait as wait_any

        if not self.slots:
            self.start()
        slots = self.slots
        recipe = WorkerRecipe.of(runner, specs, self.threads)
        todo: deque[tuple[RunSpec, bool]] = deque((spec, False) for spec in specs)
        later: list[RunSpec] = []  # runs another process holds: retried, waiting, at the end
        while todo or later or any(s.task for s in slots):
            if not todo and not any(s.task for s in slots):
                todo.extend((spec, True) for spec in later)
                later.clear()
            for i, slot in enumerate(slots):
                if slot.task is None and todo:
                    if not slot.process.is_alive():  # its worker died: a fresh one for the rest of the grid
                        with thread_env(self.threads):
                            slots[i] = slot = _Slot(self._ctx)
                    slot.task = _next_for(slot, todo, slots)
                    slot.detectors.add(slot.task[0].detector)
                    slot.conn.send(("run", recipe, *slot.task))
            busy = [s for s in slots if s.task]
            ready = wait_any([s.conn for s in busy] + [s.process.sentinel for s in busy])
            for slot in slots:
                if slot.task is None or (slot.conn not in ready and slot.process.sentinel not in ready):
                    continue
                spec, _ = slot.task
                try:
                    reply = slot.conn.recv()
                except (EOFError, OSError):  # the worker died mid-run
                    slot.process.join(5)
                    reason = (f"the worker process running this run died (exit code {slot.process.exitcode}); "
                              "not retried in this grid")
                    slot.stop()
                    slot.task = None  # replaced when there is work for it
                    yield Finished(record_lost_run(runner, spec, folders[spec], reason), 0.0, [], "lost")
                    continue
                slot.task = None
                if reply[0] == "error":
                    yield Finished(record_lost_run(runner, spec, folders[spec], reply[1]), 0.0, [], "error")
                elif reply[1].result.status == "busy":
                    later.append(spec)
                else:
                    yield reply[1]


# -- dask.distributed --------------------------------------------------------------------------------
class DaskPool:
    """Runs as tasks of a ``dask.distributed`` cluster: the one at ``scheduler``, or a LocalCluster of ``jobs`` workers.

    A context manager like :class:`LocalPool`: :meth:`start` connects (or starts the LocalCluster),
    :meth:`close` disconnects (and stops it).
    """

    def __init__(self, scheduler: str | None, jobs: int):
        try:
            import distributed  # noqa: F401
        except ImportError:
            raise UserError("--executor dask needs dask.distributed: pip install 'hepad-bench[dask]'") from None
        self.scheduler, self.jobs = scheduler, jobs
        # a LocalCluster shares this machine's cores; a remote worker's cores are its job's business: 1 thread per task
        self.threads = 1 if scheduler else threads_per_worker(jobs)
        self.client: Any = None
        self.cluster: Any = None

    def describe(self) -> str:
        if self.scheduler:
            return f"the Dask cluster at {self.scheduler}"
        return f"a Dask LocalCluster of {self.jobs} single-threaded worker processes"

    def __enter__(self) -> DaskPool:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def start(self) -> None:
        """Nothing yet: the cluster is reached (or a LocalCluster started, seconds) when the grid is pre-flighted,
        so that a typo's error does not wait for it."""

    def _connect(self) -> None:
        import atexit
        import logging

        from distributed import Client, LocalCluster

        if self.client is not None:
            return
        if self.scheduler:
            try:
                self.client = Client(self.scheduler, timeout="20s")
            except (OSError, TimeoutError) as exc:
                raise UserError(f"cannot reach the Dask scheduler at {self.scheduler} ({exc}); "
                                "check --scheduler and that the cluster is up") from None
            return
        import dask

        # not daemonic: a worker may start its own child process (--timeout runs each run in one)
        with thread_env(self.threads), dask.config.set({"distributed.worker.daemon": False}):
            self.cluster = LocalCluster(n_workers=self.jobs, threads_per_worker=1, processes=True,
                                        dashboard_address=None, silence_logs=logging.ERROR)
        self.client = Client(self.cluster)
        atexit.register(self.close)

    def warm(self, modules: list[str]) -> None:
        """Nothing: a Dask worker imports a plugin when it unpickles its first task."""

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()
        self.client = self.cluster = None

    def map(self, runner: Runner, specs: list[RunSpec], folders: dict[RunSpec, Path]) -> Iterator[Finished]:
        from distributed import as_completed

        self._connect()
        recipe = WorkerRecipe.of(runner, specs, self.threads)
        pending: dict[str, RunSpec] = {}

        def submit(spec: RunSpec, wait: bool) -> Any:
            future = self.client.submit(execute, recipe, spec, wait, pure=False)
            pending[future.key] = spec
            return future

        batch, wait = list(specs), False
        while batch:  # the grid, then (waiting) the runs another process held
            later = []
            for future in as_completed([submit(spec, wait) for spec in batch]):
                spec = pending.pop(future.key)
                try:
                    finished = future.result()
                except Exception as exc:  # KilledWorker (the task's worker died), or the run raised there
                    reason = f"{type(exc).__name__}: {exc}"
                    yield Finished(record_lost_run(runner, spec, folders[spec], reason), 0.0, [], "lost")
                    continue
                if finished.result.status == "busy":
                    later.append(spec)
                else:
                    yield finished
            batch, wait = later, True


def make_executor(executor: str, jobs: int, scheduler: str | None) -> LocalPool | DaskPool | None:
    """The executor the CLI options ask for; None: run in this process (``--jobs 1``, local)."""
    if executor not in EXECUTORS:
        raise UserError(f"unknown --executor '{executor}': use {' or '.join(EXECUTORS)}")
    if scheduler and executor != "dask":
        raise UserError("--scheduler is the address of a Dask scheduler: add --executor dask")
    if scheduler and jobs != 1:
        raise UserError("--jobs sets the workers of a local cluster; with --scheduler the cluster's workers run the grid")
    if executor == "dask":
        return DaskPool(scheduler, jobs)
    return LocalPool(jobs) if jobs > 1 else None


def run_grid(executor: LocalPool | DaskPool, runner: Runner, specs: list[RunSpec]) -> Iterator[Finished]:
    """Results of ``specs`` (already expanded and pre-flighted by ``runner``) in the order they finish."""
    folders = {spec: runner.folder(spec) for spec in specs}  # the parent's keys: a lost run is recorded under them
    for finished in executor.map(runner, list(specs), folders):  # a repeated spec: the lock makes the second 'skipped'
        expected = folders[finished.result.spec]
        if finished.result.folder.name != expected.name:
            runner.progress.warn(f"worker {finished.worker} read other data than this process (run key "
                                 f"{finished.result.folder.name}, expected {expected.name}): give every worker the "
                                 "same --data-dir files")
        yield finished
