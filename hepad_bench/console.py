"""Rich-backed progress and output for the CLI (stderr, so stdout stays machine-readable)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Callable

from rich.console import Console
from rich.progress import (
    BarColumn, MofNCompleteColumn, Progress as RichBar, SpinnerColumn, TaskProgressColumn,
    TextColumn, TimeElapsedColumn, TimeRemainingColumn,
)

from hepad_bench.contracts import Progress

err_console = Console(stderr=True)


class RichProgress(Progress):
    """One live display; each plugin task becomes a bar that disappears when done."""

    def __init__(self, console: Console | None = None, enabled: bool = True):
        self.console = console or err_console
        self.bar = RichBar(
            SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TaskProgressColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
            console=self.console, transient=True, disable=not enabled,
        )

    def __enter__(self) -> RichProgress:
        self.bar.start()
        return self

    def __exit__(self, *exc) -> None:
        self.bar.stop()

    @contextmanager
    def task(self, description: str, total: float | None = None) -> Iterator[Callable[[float], None]]:
        task_id = self.bar.add_task(description, total=total)
        try:
            yield lambda n=1: self.bar.advance(task_id, n)
        finally:
            self.bar.remove_task(task_id)

    def log(self, message: str) -> None:
        self.console.log(message)
