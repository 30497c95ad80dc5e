"""Rich-backed progress and output for the CLI (stderr, so stdout stays machine-readable).

Lines are plain ``HH:MM:SS message`` (no source locations, no wrapping when
piped into a CI log). Messages from plugins are shown once per grid: a
detector that warns on every seed is heard once, and the count of repeats is
reported at the end of the grid.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
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

# Wide lines when piped (CI logs, files) instead of rich's 80-column default.
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 180)

WARNING_PREFIX = "warning: "


class RichProgress(Progress):
    """One live display per grid; each plugin task becomes a bar that disappears when done."""

    def __init__(self, console: Console | None = None, enabled: bool = True):
        self.console = console or err_console
        self.bar = RichBar(
            SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TaskProgressColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
            console=self.console, transient=True, disable=not enabled,
        )
        #: how often each plugin message (log or warning) was sent in this grid
        self.seen: Counter[tuple[str, str]] = Counter()

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

    def line(self, message: str, style: str | None = None) -> None:
        """The CLI's own line (never deduplicated); ``message`` is plain text, not markup."""
        text = escape(message) if style is None else f"[{style}]{escape(message)}[/{style}]"
        self.console.print(f"[dim]{time.strftime('%H:%M:%S')}[/dim] {text}", highlight=False, soft_wrap=True)

    def log(self, message: str) -> None:
        if message.startswith(WARNING_PREFIX):  # plugins written before Progress.warn existed
            self.warn(message[len(WARNING_PREFIX):])
        elif self._first("log", message):
            self.line(message)

    def warn(self, message: str) -> None:
        if self._first("warning", message):
            self.line(WARNING_PREFIX + message, style="yellow")

    def _first(self, kind: str, message: str) -> bool:
        self.seen[kind, message] += 1
        return self.seen[kind, message] == 1

    def repeated(self) -> list[tuple[str, str, int]]:
        """(kind, message, times) of every plugin message sent more than once in this grid."""
        return [(kind, msg, n) for (kind, msg), n in self.seen.items() if n > 1]

    def report_repeats(self) -> None:
        """One line per message that was shown once but sent several times."""
        for kind, message, times in self.repeated():
            self.line(f"({kind} sent {times} times in this grid, shown once: {message})", style="dim")


def route_warnings(console: Console | None = None) -> None:
    """Show Python warnings (cache rebuilt, run skipped, ...) as one ``warning:`` line each, not two with source."""
    import warnings

    target = console or err_console

    def show(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
        target.print(f"[yellow]warning:[/yellow] {escape(' '.join(str(message).split()))}", highlight=False, soft_wrap=True)

    warnings.showwarning = show
