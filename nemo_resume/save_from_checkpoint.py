"""The ``nl.ModelCheckpoint`` behind ``--save-from-step S`` (which steps it writes: :mod:`nemo_resume.recipes.save_steps`)."""

from __future__ import annotations

from typing import Any, Optional

from nemo import lightning as nl


class SaveFromStepCheckpoint(nl.ModelCheckpoint):
    """``nl.ModelCheckpoint`` that skips its step-interval saves until more than ``save_from_step`` steps are done.

    Only the ``every_n_train_steps`` saves are held back: the save at the end of training
    (``on_train_end``, also after a graceful stop inside the first S steps) still happens, so a
    stopped run never loses its progress.

    Args:
        save_from_step: S; the first interval save is the first multiple of ``every_n_train_steps``
            above S. ``None`` saves as ``nl.ModelCheckpoint`` does.
        **kwargs: ``nl.ModelCheckpoint``'s arguments.
    """

    def __init__(self, *args: Any, save_from_step: Optional[int] = None, **kwargs: Any) -> None:
        if save_from_step is not None and (
            isinstance(save_from_step, bool) or not isinstance(save_from_step, int) or save_from_step < 0
        ):
            raise ValueError(f"save_from_step={save_from_step!r} must be a whole number >= 0 or None")
        super().__init__(*args, **kwargs)
        self.save_from_step = save_from_step

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.save_from_step is not None and trainer.global_step <= self.save_from_step:
            return
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
