"""A Progress that records torch's thread count each time a detector opens a progress task."""

from __future__ import annotations

from contextlib import contextmanager

import torch

from hepad_bench import Progress


class ThreadSpy(Progress):
    """``seen``: ``torch.get_num_threads()`` at the start of every ``task`` (e.g. each training loop)."""

    def __init__(self) -> None:
        self.seen: list[int] = []

    @contextmanager
    def task(self, description, total=None):  # noqa: ANN001
        self.seen.append(torch.get_num_threads())
        yield lambda _n=1: None
