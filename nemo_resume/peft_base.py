"""Keep a resumed LoRA/DoRA run's checkpoints resumable: the base they name, and a path torch can load.

Two things NeMo 2.7.3 writes wrong into the checkpoints of a resumed PEFT run, each found on the CPU rehearsal:

- ``weights/adapter_metadata.json``'s ``model_ckpt_path`` (the base). On a resume NeMo's PEFT checkpoint IO loads
  the adapters a second time from the adapter checkpoint's folder, looks for that file at the folder's top
  (``peft.py:644-654``) where it is not (it is under ``weights/``), takes its "initial PEFT training" branch and
  records the adapter checkpoint as the base. With a ``--model`` import as the base, every later save then names
  it, and the next resume loads base weights from a checkpoint that holds only adapters (``Different dict keys
  encountered in apply_factory_merges``, before any step).
- ``ModelCheckpoint.last_model_path``: NeMo's ``AutoResume`` sets it to the adapter checkpoint as an ``AdapterPath``
  (``resume.py:127-128``), which the first save pickles into ``common.pt``; ``torch.load(weights_only=True)`` in
  NeMo's checkpoint load refuses that class, so that checkpoint cannot be resumed
  (``nemo_resume.checkpoint.safe_pickle.WEIGHTS_ONLY_REFUSED``).

This callback sets both right before the first step, so every save of the run is resumable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import Callback
from nemo.lightning import io


class PeftResumePaths(Callback, io.IOMixin):
    """At the first training batch: ``last_model_path`` as a plain string, and (with ``base``) NeMo's PEFT checkpoint
    IO ``model_ckpt_path`` set to ``base``.

    An IOMixin, so ``context/io.json`` holds it as a class reference and its arguments (a plain callback would be
    cloudpickled, which NeMo's ``load_context`` refuses for a class outside NeMo, torch and the libraries it names:
    ``nemo/lightning/io/mixin.py:50-83``); with two arguments, both required, because NeMo reads an IOMixin with one
    serialized value as the path of a pickle (``_io_unflatten_object``, ``mixin.py:673-680``).

    Args:
        base: the base checkpoint the run restores (``--model``'s import), or None to leave NeMo's.
        plain_last_model_path: turn an ``AdapterPath`` ``last_model_path`` into a string.
    """

    def __init__(self, base: str | None, plain_last_model_path: bool) -> None:
        self.base = base
        self.plain_last_model_path = plain_last_model_path
        self._done = False

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        if self._done:
            return
        from nemo.lightning.pytorch.callbacks.peft import PEFT

        self._done = True
        for callback in trainer.callbacks:
            last = getattr(callback, "last_model_path", None)
            if self.plain_last_model_path and isinstance(last, Path):  # AdapterPath is a Path: Lightning keeps a str
                callback.last_model_path = str(last)
            io = getattr(callback, "wrapped_io", None) if isinstance(callback, PEFT) else None
            if io is not None and self.base is not None:
                io.model_ckpt_path = Path(self.base)
