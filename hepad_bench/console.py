"""Rich-backed progress and output for the CLI (stderr, so stdout stays machine-readable)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Callable

from rich.console import Console
from rich.markup import escape
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


def route_warnings(console: Console | None = None) -> None:
    """Show Python warnings (cache rebuilt, run skipped, ...) as one ``warning:`` line each, not two with source."""
    import warnings

    target = console or err_console

    def show(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
        target.print(f"[yellow]warning:[/yellow] {escape(' '.join(str(message).split()))}", highlight=False, soft_wrap=True)

    warnings.showwarning = show
