"""Progress on stderr (``rich``) for the slow parts: importing NeMo and a CPU smoke run.

stderr, so ``--json`` and piped tables stay clean; nothing is drawn when stderr is not a terminal.
"""

from __future__ import annotations

from collections.abc import Iterator
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


def step_progress(max_steps: int, label: str = "smoke run") -> Any:
    """A Lightning callback advancing a progress bar to ``max_steps`` after every training step.

    Watch-only: hand it to ``nemo_resume.smoke.train.train(watchers=...)``, which keeps it out of the
    run's ``context/io.json``.
    """
    import lightning.pytorch as pl
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    class StepProgress(pl.Callback):
        def __init__(self) -> None:
            self.bar = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                console=_console(), transient=True)
            self.task = self.bar.add_task(label, total=max_steps)

        def on_train_start(self, trainer: Any, pl_module: Any) -> None:
            self.bar.start()
            self.bar.update(self.task, completed=int(trainer.global_step))

        def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
            self.bar.update(self.task, completed=int(trainer.global_step))

        def on_train_end(self, trainer: Any, pl_module: Any) -> None:
            self.bar.stop()

        def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
            self.bar.stop()

    return StepProgress()
