"""The NeMo ``LRSchedulerModule`` shape shared by the project's own schedulers (``--lr-stages``, cooldown).

NeMo's optimizer modules call ``.scheduler(model, optimizer)`` and expect its dict format around one torch
``LRScheduler``; each subclass only says which scheduler to build (:meth:`StepwiseSchedulerModule.build`).
"""

from __future__ import annotations

from typing import Any

from nemo.lightning.pytorch.optim.base import LRSchedulerModule
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler


class StepwiseSchedulerModule(LRSchedulerModule):
    """Args: interval, frequency, monitor: as every NeMo ``LRSchedulerModule`` (step the LR every step)."""

    def __init__(self, interval: str = "step", frequency: int = 1, monitor: str = "val_loss") -> None:
        super().__init__()
        self.interval = interval
        self.frequency = frequency
        self.monitor = monitor

    def build(self, optimizer: Optimizer) -> LRScheduler:
        raise NotImplementedError

    def scheduler(self, model: Any, optimizer: Optimizer) -> dict[str, Any]:
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": self.build(optimizer), "interval": self.interval, "frequency": self.frequency},
            "monitor": self.monitor,
        }
