"""The Lightning callback that makes a resumed NeMo run follow the plan, not the restored state.

Lightning restores loops, optimizer state and then ``scheduler.load_state_dict`` (the
checkpoint wins) before any callback's ``on_train_start``. With PEFT (the fine-tuning recipes'
LoRA/DoRA), NeMo builds the optimizer and restores the adapter checkpoint's optimizer and scheduler
state later still, in its PEFT callback's ``on_train_epoch_start``
(nemo/lightning/pytorch/callbacks/peft.py:254-273), and that callback runs after the recipe's. So
the plan is written at the start of the first training batch: after every restore, before the first
optimizer step. :class:`PlannedLRCheck` then reads back the LR every param group trains with, at the
first steps after the restore, and stops the run if it is not the plan's.
"""

from __future__ import annotations

import logging
from typing import Any

from lightning.pytorch import Callback
from nemo.lightning import io

from nemo_resume.apply import apply_schedule
from nemo_resume.constants import PLANNED_LR_REL_TOL
from nemo_resume.schedules.cosine import CosineState

log = logging.getLogger("nemo_resume")


class ResumeScheduleCallback(Callback, io.IOMixin):
    """Rewrite the restored scheduler and param groups to the planned schedule.

    Its arguments are plain numbers and lists, so NeMo-Run can serialize it in a recipe, and
    as an IOMixin it is written to ``context/io.json`` as a class reference (a plain callback
    would be cloudpickled there, which ``load_context`` then refuses).

    Args:
        resume_step: the checkpoint step the plan was made for; a run that resumed from any
            other step stops at once instead of applying a wrong plan.
        base_lrs, min_lr, max_steps, warmup_steps, constant_steps: the planned
            :class:`~nemo_resume.schedules.cosine.CosineState`.
    """

    def __init__(
        self,
        resume_step: int,
        base_lrs: list[float],
        min_lr: float,
        max_steps: int,
        warmup_steps: int = 0,
        constant_steps: int = 0,
    ) -> None:
        super().__init__()
        self.resume_step = resume_step
        self.target = CosineState(tuple(base_lrs), min_lr, max_steps, warmup_steps, constant_steps)
        self.applied: dict[str, Any] | None = None

    @classmethod
    def from_state(cls, target: CosineState, resume_step: int) -> "ResumeScheduleCallback":
        return cls(resume_step, list(target.base_lrs), target.min_lr, target.max_steps, target.warmup_steps, target.constant_steps)

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        if self.applied is None:
            self._apply(trainer)

    def _apply(self, trainer: Any) -> None:
        if trainer.global_step != self.resume_step:
            raise RuntimeError(
                f"nemo-resume: the plan was made for a resume at step {self.resume_step}, but the trainer is at "
                f"step {trainer.global_step}; re-run the plan against the checkpoint actually restored"
            )
        configs = trainer.lr_scheduler_configs
        if len(configs) != 1:
            raise RuntimeError(f"nemo-resume: expected one LR scheduler, found {len(configs)}")
        scheduler = configs[0].scheduler
        if type(scheduler).__name__ != "CosineAnnealing":
            raise RuntimeError(
                f"nemo-resume: the plan targets NeMo's CosineAnnealing; this run uses {type(scheduler).__name__}. "
                "Use --lr-policy keep for other schedulers"
            )
        self.applied = apply_schedule(scheduler, self.target, self.resume_step)
        before, after = self.applied["before"], self.applied["after"]
        message = (
            f"nemo-resume: step {self.resume_step}: scheduler base_lrs {before['base_lrs']} -> {after['base_lrs']}, "
            f"min_lr {before['min_lr']} -> {after['min_lr']}, max_steps {before['max_steps']} -> {after['max_steps']}, "
            f"warmup_steps {before['warmup_steps']} -> {after['warmup_steps']}, lr {before['lr']} -> {after['lr']}"
        )
        log.warning(message)


class PlannedLRCheck(Callback, io.IOMixin):
    """Stop a resumed run whose optimizer does not train with the planned LRs, at the first steps after the restore.

    Every restore (Lightning's, NeMo PEFT's later one) is over by the first training batch, and the plan, if it
    rewrites anything, has been written (:class:`ResumeScheduleCallback` runs before this one). What the param
    groups hold then is what the optimizer step uses; one step later the scheduler has stepped once on its own.
    A mismatch means something else owns the schedule (another scheduler class, a restore that clobbered the
    plan, other param groups): hours of training at an unplanned LR are worse than a stop now.

    Args:
        steps: the global steps to check (the resume step and the next).
        lrs: for each of ``steps``, the planned LR of every param group, in the optimizer's group order.
    """

    def __init__(self, steps: list[int], lrs: list[list[float]]) -> None:
        super().__init__()
        if len(steps) != len(lrs):
            raise ValueError(f"PlannedLRCheck: {len(steps)} steps but {len(lrs)} LR lists")
        self.planned = {int(s): [float(x) for x in row] for s, row in zip(steps, lrs)}

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        planned = self.planned.get(trainer.global_step)
        if planned is None:
            return
        live = [float(g["lr"]) for opt in trainer.optimizers for g in opt.param_groups]
        problem = lr_mismatch(live, planned)
        if problem:
            message = (f"nemo-resume: step {trainer.global_step}: {problem}; stopping before this step trains. "
                       "Re-run the plan against the checkpoint and config this run restores")
            log.error(message)
            raise RuntimeError(message)
        log.info("nemo-resume: step %d: every param group trains at the planned LR", trainer.global_step)


def lr_mismatch(live: list[float], planned: list[float]) -> str | None:
    """Why the live param-group LRs are not the planned ones (None when they are, to PLANNED_LR_REL_TOL)."""
    if len(live) != len(planned):
        return f"the optimizer has {len(live)} param groups, the plan {len(planned)}"
    for i, (x, want) in enumerate(zip(live, planned)):
        if abs(x - want) > PLANNED_LR_REL_TOL * max(abs(want), abs(x)):
            return f"param group {i} trains at LR {x!r}, the plan says {want!r}"
    return None
