"""``StagedLRScheduler``: a NeMo ``LRSchedulerModule`` for ``--lr-stages 75:1e-4,50:1e-5``.

It plugs into ``PytorchOptimizerModule`` and ``MegatronOptimizerModule`` like NeMo's own
modules: ``.scheduler(model, optimizer)`` returns NeMo's dict format around a torch
``LRScheduler`` (:class:`StagedLR`). The shape is :func:`nemo_resume.schedules.lr_stages.staged_lrs`.

Resume: the stages are plain data in the scheduler's ``state_dict`` (``"stages"``: a list of
``{"steps", "lr", "warmup_steps"}``), so Lightning's restore (``load_state_dict``, a
``__dict__.update``) brings back the stages the run was started with, exactly as NeMo's
CosineAnnealing brings back its ``min_lr``: the checkpoint wins over a changed ``--lr-stages``
(the planner refuses that silent override under ``--lr-policy auto``; see docs/schedules.md).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Union

from torch import Tensor
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from nemo_resume.schedules.lr_stages import Stage, parse_stages, staged_lrs, stages_from_json, total_steps
from nemo_resume.schedules.stepwise_module import StepwiseSchedulerModule

StagesArg = Union[str, Sequence[Union[Stage, Mapping[str, Any]]]]


def _stages(stages: StagesArg) -> tuple[Stage, ...]:
    if isinstance(stages, str):
        return parse_stages(stages, flag="stages")
    return stages_from_json([s.to_json() if isinstance(s, Stage) else dict(s) for s in stages])


class StagedLR(LRScheduler):
    """Group ``g``'s LR at step ``t`` is ``base_lrs[g] * stage_lr(t) / stages[0].lr``.

    ``base_lrs`` are the param groups' LRs when the scheduler is built (``initial_lr``): the
    optimizer's LR, the first stage's, times each group's ``lr_mult``.

    Args:
        optimizer: a torch optimizer (NeMo's Megatron optimizer wrapper is one).
        stages: ``"75:1e-4,50:1e-5"``, or stages as :class:`Stage` or plain dicts.
    """

    def __init__(self, optimizer: Optimizer, stages: StagesArg, last_epoch: int = -1) -> None:
        # Set before LRScheduler.__init__: it takes the first step, which reads them.
        self.stages = [s.to_json() for s in _stages(stages)]  # plain data: saved in state_dict
        self.max_steps = total_steps(_stages(self.stages))
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float | Tensor]:
        if not self._get_lr_called_within_step:
            warnings.warn(
                "To get the last learning rate computed by the scheduler, please use `get_last_lr()`.", UserWarning
            )
        return list(staged_lrs(stages_from_json(self.stages), [float(b) for b in self.base_lrs], self.last_epoch))


class StagedLRScheduler(StepwiseSchedulerModule):
    """The NeMo module around :class:`StagedLR` (``optim.lr_scheduler`` in a recipe).

    Args:
        stages: ``"75:1e-4,50:1e-5:w10"`` (``--lr-stages``), or a list of ``{"steps", "lr",
            "warmup_steps"}``; plain data, so NeMo-Run and ``context/io.json`` hold it as is.
        interval, frequency, monitor: as every NeMo ``LRSchedulerModule`` (step the LR every step).
    """

    def __init__(
        self, stages: StagesArg, interval: str = "step", frequency: int = 1, monitor: str = "val_loss"
    ) -> None:
        super().__init__(interval, frequency, monitor)
        _stages(stages)  # refuse bad stages when the recipe is built, not at the first step
        self.stages = stages

    def build(self, optimizer: Optimizer) -> LRScheduler:
        return StagedLR(optimizer, self.stages)
