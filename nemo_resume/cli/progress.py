"""Progress on stderr (``rich``) for the slow parts: importing NeMo and a CPU smoke run.

stderr, so ``--json`` and piped tables stay clean; nothing is drawn when stderr is not a terminal.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


def _console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


@contextmanager
def working(label: str) -> Iterator[None]:
    """A spinner with ``label`` while the block runs (NeMo's imports take 10-20 s)."""
    with _console().status(label):
        yield


@contextmanager
def step_progress(max_steps: int, label: str = "smoke run") -> Iterator[Callable[[int], None]]:
    """A progress bar to ``max_steps``; yields the function to call with each step as it starts."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   console=_console(), transient=True)
    task = bar.add_task(label, total=max_steps)
    with bar:
        yield lambda step: bar.update(task, completed=step)
