"""Detectors for the fault-injection tests (test fixtures, not physics): one that hangs, one that is slow
and logs each fit to a file (so tests can count how often a run was computed)."""

from __future__ import annotations

import os
import time

from hepad_bench import Detector, hookimpl

import toy_plugin

#: file to which toy-slow appends one line per fit (set by the test)
FIT_LOG = "HEPAD_TEST_FIT_LOG"
#: file whose presence makes toy-killed kill its worker process (set by the test)
KILL_FLAG = "HEPAD_TEST_KILL_FLAG"


class HangingDetector(toy_plugin.NormDetector):
    """Never returns from fit (test fixture for --timeout)."""

    name = "toy-hang"

    def fit(self, train, ctx):
        time.sleep(3600)


class SlowDetector(toy_plugin.NormDetector):
    """Sleeps, then logs its seed to $HEPAD_TEST_FIT_LOG (test fixture for concurrent grids and kills)."""

    name = "toy-slow"

    def fit(self, train, ctx):
        time.sleep(float(os.environ.get("HEPAD_TEST_SLOW", "0.4")))
        path = os.environ.get(FIT_LOG)
        if path:
            with open(path, "a") as fh:  # one short O_APPEND write per fit: lines never interleave
                fh.write(f"{ctx.seed}\n")


class SelfKillingDetector(toy_plugin.NormDetector):
    """Kills its own (worker) process with SIGKILL in fit, once: while $HEPAD_TEST_KILL_FLAG names a file
    (removed first, so the rerun completes). Never in the test process itself (test fixture for executors)."""

    name = "toy-killed"

    def fit(self, train, ctx):
        import multiprocessing
        import signal

        flag = os.environ.get(KILL_FLAG)
        if flag and os.path.exists(flag) and multiprocessing.parent_process() is not None:
            os.remove(flag)
            os.kill(os.getpid(), signal.SIGKILL)
        super().fit(train, ctx)


class NoValidationDetector(toy_plugin.NormDetector):
    """Declares that it needs validation events (test fixture for the pre-flight check)."""

    name = "toy-needs-val"
    min_validation_events = 10


def hammer_write_run(folder: str, writer: int, times: int, failures) -> None:
    """Write one run folder ``times`` times, each write tagged (writer, i); report any exception."""
    from pathlib import Path

    import numpy as np
    import polars as pl

    from hepad_bench import store

    try:
        for i in range(times):
            tag = f"{writer}-{i}"
            scores = pl.DataFrame({"tag": [tag] * 50, "x": np.arange(50.0)})
            store.write_run(Path(folder), {"status": "ok", "tag": tag}, scores, {"s": {"tag_len": float(len(tag))}})
    except BaseException as exc:  # noqa: BLE001 - reported to the parent test
        failures.put(f"{type(exc).__name__}: {exc}")


@hookimpl
def hepad_detectors() -> list[type[Detector]]:
    return [HangingDetector, SlowDetector, SelfKillingDetector, NoValidationDetector]
