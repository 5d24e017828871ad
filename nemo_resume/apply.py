"""Write a planned schedule into a live NeMo scheduler and its optimizer, after Lightning's restore.

Lightning restores the checkpoint's scheduler with ``__dict__.update`` after the strategy built
it from the config, so the checkpoint wins (facts file, section 3). The resume callback and the
pre-launch check both call :func:`apply_schedule` at that point, so what the check verifies is
exactly what the run will do.
"""

from __future__ import annotations

from typing import Any

from nemo_resume.schedules.cosine import CosineState, lr_at

# Megatron's param groups carry their own max_lr/min_lr (megatron/core/optimizer/__init__.py);
# NeMo's scheduler does not read them, but keeping them equal to the plan avoids a second truth.
_MEGATRON_GROUP_KEYS = ("max_lr", "min_lr")


def apply_schedule(scheduler: Any, target: CosineState, resume_step: int) -> dict[str, Any]:
    """Make ``scheduler`` (a NeMo ``CosineAnnealing``) follow ``target`` from ``resume_step`` on.

    Sets the scheduler fields NeMo's ``get_lr`` reads, ``last_epoch`` to the resume step, and
    every param group's ``lr``/``initial_lr`` (and Megatron's ``max_lr``/``min_lr``) so the
    next optimizer step already uses the planned LR.

    Args:
        scheduler: the restored scheduler; its ``optimizer`` holds the param groups.
        target: the planned schedule; one base LR per param group.
        resume_step: the step the checkpoint was saved at (its ``last_epoch``).

    Returns:
        ``{"before": {...}, "after": {...}}`` of the fields it changed, for the one log line.

    Raises:
        ValueError: the scheduler has a different number of param groups than the plan.
    """
    groups = scheduler.optimizer.param_groups
    if len(groups) != len(target.base_lrs):
        raise ValueError(
            f"plan has {len(target.base_lrs)} param group LRs but the optimizer has {len(groups)} groups"
        )
    before = _snapshot(scheduler)
    lrs = lr_at(target, resume_step)
    scheduler.base_lrs = list(target.base_lrs)
    scheduler.min_lr = target.min_lr
    scheduler.max_steps = target.max_steps
    scheduler.warmup_steps = target.warmup_steps
    scheduler.constant_steps = target.constant_steps
    scheduler.decay_steps = target.decay
    scheduler.last_epoch = resume_step
    scheduler._last_lr = list(lrs)
    for group, base, lr in zip(groups, target.base_lrs, lrs):
        group["initial_lr"] = base
        group["lr"] = lr
        for key in _MEGATRON_GROUP_KEYS:
            if key in group:
                group[key] = base if key == "max_lr" else target.min_lr
    return {"before": before, "after": _snapshot(scheduler)}


def _snapshot(scheduler: Any) -> dict[str, Any]:
    return {
        "base_lrs": list(getattr(scheduler, "base_lrs", [])),
        "min_lr": getattr(scheduler, "min_lr", None),
        "max_steps": getattr(scheduler, "max_steps", None),
        "warmup_steps": getattr(scheduler, "warmup_steps", None),
        "constant_steps": getattr(scheduler, "constant_steps", None),
        "last_epoch": getattr(scheduler, "last_epoch", None),
        "lr": [g.get("lr") for g in scheduler.optimizer.param_groups],
    }
