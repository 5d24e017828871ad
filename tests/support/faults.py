"""Faults injected into a real rehearsal, for ``nemo-resume audit``'s health rules (tests/audit).

:class:`LossFaults` is a Lightning callback the recipe carries (``rehearse_recipe(..., edit=...)`` appends it to
``trainer.callbacks``), so it is serialized with the recipe and built again in the rehearsal's own process: it must
stay importable there (``tests.support.faults``, with the repo root on ``PYTHONPATH``). It swaps NeMo's training
loss reduction for one step each:

- ``nan_at``: the step's loss mask is emptied, as a batch whose tokens are all masked out would be: NeMo's
  ``MaskedTokenLossReduction`` averages over no token, so ``reduced_train_loss`` is NaN, while megatron-core's
  backward divides by at least one token, so the gradients are zero and the run goes on;
- ``spike_at``: every token's loss is scaled by ``scale``: the logged loss and megatron-core's grad norm (before
  clipping) grow by the same factor, and the recipe's ``clip_grad`` keeps the update bounded.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl


class LossFaults(pl.Callback):
    def __init__(self, nan_at: int, spike_at: int, scale: float = 1000.0) -> None:
        self.nan_at, self.spike_at, self.scale = nan_at, spike_at, scale
        self._stock: Any = None

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        if trainer.global_step in (self.nan_at, self.spike_at):
            self._stock = pl_module.training_loss_reduction
            pl_module._training_loss_reduction = _faulty(trainer.global_step == self.nan_at, self.scale)

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self._stock is not None:
            pl_module._training_loss_reduction, self._stock = self._stock, None


def _faulty(empty_mask: bool, scale: float) -> Any:
    """NeMo's own reduction, given an empty loss mask or scaled per-token losses."""
    import torch
    from nemo.lightning.megatron_parallel import MaskedTokenLossReduction

    class Faulty(MaskedTokenLossReduction):
        def forward(self, batch: dict[str, Any], forward_out: Any) -> Any:
            if empty_mask:
                return super().forward({**batch, "loss_mask": torch.zeros_like(batch["loss_mask"])}, forward_out)
            return super().forward(batch, forward_out * scale)

    return Faulty()
