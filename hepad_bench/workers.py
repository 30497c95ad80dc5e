"""Where a run's detector is fitted and scored: in this process, or in a child process with a deadline.

Both workers take the same two calls, with numpy inputs only: ``fit(data)``
(a fresh detector per call, seeded from the run seed) and ``score(x, mjj)``.
The runner prepares the arrays and builds the tables; the worker only runs
plugin code.

:class:`ChildWorker` (``hepad-bench run --timeout``) starts a *spawned*
process, not a forked one: the parent has polars' and torch's thread pools
running, which a forked child may find locked forever. The inputs go over a
pipe one call at a time (memory: one call's arrays), and when the run's time
is up the child is killed and :class:`TimeoutError` raised; the grid goes on.
"""

from __future__ import annotations

import multiprocessing
import random
import sys
import time
import traceback
from typing import Any

import numpy as np

from hepad_bench.contracts import Detector, FitContext, Progress
from hepad_bench.data import TrainingData


class ChildFailure(Exception):
    """An exception raised by the detector in the child process (message ``Type: text``, with its traceback)."""

    def __init__(self, message: str, child_traceback: str = ""):
        super().__init__(message)
        self.child_traceback = child_traceback


def seed_everything(seed: int) -> None:
    """Safety net for libraries that use global random state; plugins seed their own generators too."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    if "torch" in sys.modules:
        sys.modules["torch"].manual_seed(seed)


class InProcessWorker:
    """Fits and scores in this process (the default)."""

    def __init__(self, det_cls: type[Detector], config: Any, seed: int, device: str, progress: Progress):
        self.det_cls, self.config, self.seed, self.device, self.progress = det_cls, config, seed, device, progress
        self.detector: Detector | None = None

    def fit(self, data: TrainingData) -> float:
        """Fit a fresh detector on ``data``; the seconds it took."""
        seed_everything(self.seed)
        self.detector = self.det_cls(self.config)
        started = time.perf_counter()
        self.detector.fit(data, FitContext(seed=self.seed, device=self.device, progress=self.progress))
        return time.perf_counter() - started

    def score(self, x: np.ndarray, mjj: np.ndarray | None) -> np.ndarray:
        assert self.detector is not None, "fit before score"
        return np.asarray(self.detector.score(x, mjj=mjj), dtype=np.float64).reshape(-1)

    def cost(self, x: np.ndarray, mjj: np.ndarray | None, background_seconds: float) -> dict[str, Any]:
        """The fitted model's cost (parameters, MACs, latency) as :func:`hepad_bench.cost.measure_cost` gives it."""
        from hepad_bench.cost import measure_cost

        assert self.detector is not None, "fit before cost"
        return measure_cost(self.detector, x, mjj, background_seconds)

    def training_summary(self) -> dict[str, Any] | None:
        assert self.detector is not None, "fit before training_summary"
        return self.detector.training_summary()

    def training_scores(self) -> np.ndarray | None:
        """Out-of-fold scores of the training pool (methods that select on their own training data)."""
        assert self.detector is not None, "fit before training_scores"
        return self.detector.training_scores()

    def background_template(self) -> tuple[np.ndarray, np.ndarray | None] | None:
        """(scores, mjj) of the method's own signal-region background model, if it has one."""
        assert self.detector is not None, "fit before background_template"
        return self.detector.background_template()

    def close(self) -> None:
        self.detector = None


def _child_loop(conn: Any, det_cls: type[Detector], config: Any, seed: int, device: str) -> None:
    worker = InProcessWorker(det_cls, config, seed, device, Progress())  # the parent's display is not ours
    while True:
        try:
            call, args = conn.recv()
        except EOFError:
            return
        if call == "close":
            return
        try:
            reply = ("ok", getattr(worker, call)(*args))
        except BaseException as exc:  # everything goes back to the parent, which records it
            reply = ("error", (f"{type(exc).__name__}: {exc}", traceback.format_exc()))
        conn.send(reply)


class ChildWorker:
    """Fits and scores in a spawned child process; every call waits at most until the run's deadline."""

    def __init__(self, det_cls: type[Detector], config: Any, seed: int, device: str, timeout: float):
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout
        ctx = multiprocessing.get_context("spawn")
        self.conn, child_end = ctx.Pipe()
        self.process = ctx.Process(target=_child_loop, args=(child_end, det_cls, config, seed, device), daemon=True)
        self.process.start()
        child_end.close()

    def _call(self, call: str, *args: Any) -> Any:
        self.conn.send((call, args))
        if not self.conn.poll(max(0.0, self.deadline - time.monotonic())):
            self.close(kill=True)
            raise TimeoutError(f"run took more than --timeout {self.timeout:g} s and was killed")
        try:
            status, payload = self.conn.recv()
        except EOFError:
            self.process.join(5)
            code = self.process.exitcode
            self.close()
            raise ChildFailure(f"the run's process died (exit code {code})") from None
        if status == "error":
            raise ChildFailure(*payload)
        return payload

    def fit(self, data: TrainingData) -> float:
        return self._call("fit", data)

    def score(self, x: np.ndarray, mjj: np.ndarray | None) -> np.ndarray:
        return self._call("score", x, mjj)

    def cost(self, x: np.ndarray, mjj: np.ndarray | None, background_seconds: float) -> dict[str, Any]:
        return self._call("cost", x, mjj, background_seconds)

    def training_summary(self) -> dict[str, Any] | None:
        return self._call("training_summary")

    def training_scores(self) -> np.ndarray | None:
        return self._call("training_scores")

    def background_template(self) -> tuple[np.ndarray, np.ndarray | None] | None:
        return self._call("background_template")

    def close(self, kill: bool = False) -> None:
        if self.process.is_alive() and not kill:
            try:
                self.conn.send(("close", ()))
            except OSError:
                pass
            self.process.join(1)
        if self.process.is_alive():
            self.process.kill()
        self.process.join()
        self.conn.close()
