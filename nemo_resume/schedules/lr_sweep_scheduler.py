"""``LrSweepScheduler``: the NeMo ``LRSchedulerModule`` of the LR range test (``--lr-find``).

The recipe sets the optimizer's LR to the sweep's ``min_lr``, so each param group starts at ``min_lr`` times its
``--lr-mult`` (``base_lrs``); every group is then multiplied by the same factor each step, and keeps its ratio.
The arguments are plain numbers, so NeMo-Run's YAML and ``context/io.json`` hold them as is.
"""

from __future__ import annotations

import warnings

from torch import Tensor
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from nemo_resume.schedules.lr_sweep import DEFAULT_MAX_LR, DEFAULT_MIN_LR, DEFAULT_STEPS, LrSweep
from nemo_resume.schedules.stepwise_module import StepwiseSchedulerModule


class LrSweepLR(LRScheduler):
    """Group ``g``'s LR at step ``t``: ``base_lrs[g] * sweep.lr(t) / sweep.min_lr``."""

    def __init__(self, optimizer: Optimizer, sweep: LrSweep, last_epoch: int = -1) -> None:
        self.sweep = sweep  # set before LRScheduler.__init__: its first step reads it
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float | Tensor]:
        if not self._get_lr_called_within_step:
            warnings.warn(
                "To get the last learning rate computed by the scheduler, please use `get_last_lr()`.", UserWarning
            )
        factor = self.sweep.lr(self.last_epoch) / self.sweep.min_lr
        return [float(b) * factor for b in self.base_lrs]


class LrSweepScheduler(StepwiseSchedulerModule):
    """The NeMo module around :class:`LrSweepLR` (``optim.lr_scheduler`` in an ``--lr-find`` recipe)."""

    def __init__(
        self, min_lr: float = DEFAULT_MIN_LR, max_lr: float = DEFAULT_MAX_LR, steps: int = DEFAULT_STEPS,
        interval: str = "step", frequency: int = 1, monitor: str = "val_loss",
    ) -> None:
        super().__init__(interval, frequency, monitor)
        self.sweep = LrSweep(float(min_lr), float(max_lr), int(steps))  # refused when built, not at step 0

    def build(self, optimizer: Optimizer) -> LRScheduler:
        return LrSweepLR(optimizer, self.sweep)
