"""``CooldownScheduler``: the NeMo ``LRSchedulerModule`` a ``--lr-policy cooldown`` run is built with.

It plugs into ``MegatronOptimizerModule`` and ``PytorchOptimizerModule`` like NeMo's own modules:
``.scheduler(model, optimizer)`` returns NeMo's dict around :class:`CooldownLR`, whose shape is
:func:`nemo_resume.schedules.cooldown.cooldown_lrs`.

Resume: the run resumes a checkpoint saved by NeMo's ``CosineAnnealing``. Lightning restores that state into
this scheduler with ``load_state_dict`` (a ``__dict__.update``): ``last_epoch`` (the resume step) and the
cosine's own fields (``base_lrs``, ``min_lr``, ``max_steps``, ...) come back, and the cooldown's fields, whose
names the cosine's state does not have (``cooldown_*``), stay as the plan built them. A later resume of the
cooldown run restores its own cooldown state, as every scheduler's checkpoint wins.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

from torch import Tensor
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from nemo_resume.schedules.cooldown import CooldownState, cooldown_lrs
from nemo_resume.schedules.stepwise_module import StepwiseSchedulerModule


class CooldownLR(LRScheduler):
    """Group ``g``'s LR at step ``t``: ``cooldown_lrs(state, t)[g]`` (not ``base_lrs``: the restore replaces them).

    Raises:
        ValueError: the optimizer has another number of param groups than ``start_lrs``.
    """

    def __init__(self, optimizer: Optimizer, state: CooldownState, last_epoch: int = -1) -> None:
        if len(optimizer.param_groups) != len(state.start_lrs):
            raise ValueError(f"the cooldown was planned for {len(state.start_lrs)} param groups, the optimizer has "
                             f"{len(optimizer.param_groups)}: plan again with the run's --lr-mult")
        # Set before LRScheduler.__init__ (its first step reads them); plain data, saved in state_dict.
        self.cooldown_start_lrs = list(state.start_lrs)
        self.cooldown_min_lr = state.min_lr
        self.cooldown_start_step = state.start_step
        self.cooldown_steps = state.decay_steps
        self.cooldown_type = state.decay_type
        super().__init__(optimizer, last_epoch)

    @property
    def cooldown(self) -> CooldownState:
        """The cooldown this scheduler follows now (after a restore: the restored one)."""
        return CooldownState(tuple(self.cooldown_start_lrs), self.cooldown_min_lr, self.cooldown_start_step,
                             self.cooldown_steps, self.cooldown_type)

    def get_lr(self) -> list[float | Tensor]:
        if not self._get_lr_called_within_step:
            warnings.warn(
                "To get the last learning rate computed by the scheduler, please use `get_last_lr()`.", UserWarning
            )
        return list(cooldown_lrs(self.cooldown, self.last_epoch))


class CooldownScheduler(StepwiseSchedulerModule):
    """The NeMo module around :class:`CooldownLR` (``optim.lr_scheduler`` in a recipe); the arguments are
    :meth:`CooldownState.module_kwargs`, plain data for NeMo-Run and ``context/io.json``."""

    def __init__(
        self, start_lrs: Sequence[float], min_lr: float, start_step: int, decay_steps: int, decay_type: str,
        interval: str = "step", frequency: int = 1, monitor: str = "val_loss",
    ) -> None:
        super().__init__(interval, frequency, monitor)
        self.state = CooldownState(tuple(float(x) for x in start_lrs), float(min_lr), start_step, decay_steps,
                                   decay_type)

    def build(self, optimizer: Optimizer) -> LRScheduler:
        return CooldownLR(optimizer, self.state)
