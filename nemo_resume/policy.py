"""The LR schedule a resumed run follows: ``--lr-policy keep|smooth|recompute|strict|auto``.

NeMo restores the checkpoint's whole scheduler state over the config, so "lower min_lr and
resume" changes nothing. Each policy here produces the exact scheduler state to write back
after the restore (``target``; None means "leave NeMo's restored state alone"), and refuses,
with the reason and the step, when the resulting run would fail or silently flatline.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

from nemo_resume.request import ScheduleRequest
from nemo_resume.schedule import CosineState, first_failure, lr_at, relative_jump

Policy = Literal["keep", "smooth", "recompute", "strict", "auto"]
POLICIES: tuple[str, ...] = ("auto", "keep", "smooth", "recompute", "strict")


@dataclass(frozen=True)
class Decision:
    """A policy's outcome.

    Attributes:
        policy: the policy actually used (``auto`` resolves to ``keep`` or ``smooth``).
        target: scheduler state to write after the restore; None keeps the checkpoint's.
        refused: why no safe schedule exists under this policy (then ``target`` is unused).
        refused_step: the step at which the refused schedule would fail or flatline.
        jump: the largest relative LR change at the resume step over the param groups.
        notes: what the user should know (which values win, alternatives).
    """

    policy: str
    target: CosineState | None
    refused: str | None = None
    jump: float = 0.0
    refused_step: int | None = None
    notes: tuple[str, ...] = ()

    def effective(self, saved: CosineState) -> CosineState:
        """The schedule the run follows after the resume step."""
        return saved if self.target is None else self.target


def _differences(saved: CosineState, request: ScheduleRequest) -> list[str]:
    wanted = request.cosine_state()
    out = []
    for name, have, want in (
        ("lr per group", list(saved.base_lrs), list(wanted.base_lrs)),
        ("min_lr", saved.min_lr, wanted.min_lr),
        ("max_steps", saved.max_steps, wanted.max_steps),
        ("warmup_steps", saved.warmup_steps, wanted.warmup_steps),
        ("constant_steps", saved.constant_steps, wanted.constant_steps),
    ):
        same = (
            all(math.isclose(a, b, rel_tol=1e-9) for a, b in zip(have, want)) and len(have) == len(want)
            if isinstance(have, list)
            else math.isclose(have, want, rel_tol=1e-9)
        )
        if not same:
            out.append(f"{name}: checkpoint {have}, requested {want}")
    return out


def unsafe_reason(schedule: CosineState, resume_step: int, max_steps: int) -> tuple[str, int] | None:
    """Why continuing ``schedule`` from ``resume_step`` to ``max_steps`` fails or flatlines.

    None is the plan's guarantee: NeMo's checks pass at every step, and since each base LR is
    then at or above min_lr, the cosine (bounded by its base LR and min_lr) never dips below it.
    """
    failure = first_failure(schedule, resume_step + 1, max(max_steps, resume_step + 1))
    if failure is not None:
        return f"it fails at step {failure.step}: {failure.message}", failure.step
    if max_steps > schedule.max_steps:
        return (
            f"its max_steps is {schedule.max_steps}, so the LR sits flat at min_lr ({schedule.min_lr:g}) "
            f"from step {schedule.max_steps} to the requested {max_steps}",
            schedule.max_steps,
        )
    return None


def _keep(saved: CosineState, resume_step: int, request: ScheduleRequest) -> Decision:
    unsafe = unsafe_reason(saved, resume_step, request.max_steps)
    if unsafe:
        why, step = unsafe
        return Decision("keep", None, refused=f"keeping the checkpoint's schedule is unsafe: {why}", refused_step=step)
    return Decision("keep", None, notes=("the checkpoint's saved schedule continues unchanged",))


def _smooth(saved: CosineState, resume_step: int, request: ScheduleRequest) -> Decision:
    if resume_step >= request.max_steps:
        return Decision("smooth", None, refused=f"the checkpoint is at step {resume_step}; raise --max-steps above it")
    current = lr_at(saved, resume_step)
    low = [lr for lr in current if not lr > request.min_lr]
    if low:
        return Decision(
            "smooth",
            None,
            refused=f"the LR at the resume step ({low[0]:g}) is not above the requested min_lr "
            f"({request.min_lr:g}); lower --min-lr or use --lr-policy recompute",
        )
    # A cosine that starts at the checkpoint's LR: NeMo's decay phase with the warmup ending
    # exactly at the resume step. Every group keeps its current LR, so ratios are preserved.
    target = CosineState(
        base_lrs=tuple(current), min_lr=request.min_lr, max_steps=request.max_steps, warmup_steps=resume_step
    )
    return Decision(
        "smooth",
        target,
        jump=relative_jump(current, lr_at(target, resume_step)),
        notes=(
            f"cosine from the checkpoint's LR {', '.join(f'{x:.4g}' for x in current)} at step {resume_step} "
            f"to min_lr {request.min_lr:g} at step {request.max_steps}; written as warmup_steps={resume_step} "
            "in the scheduler state",
        ),
    )


def _recompute(saved: CosineState, resume_step: int, request: ScheduleRequest) -> Decision:
    target = request.cosine_state()
    jump = relative_jump(lr_at(saved, resume_step), lr_at(target, resume_step))
    return Decision(
        "recompute",
        target,
        jump=jump,
        notes=(f"the requested schedule as if used from step 0; LR changes by {jump:.1%} at step {resume_step}",),
    )


def decide(saved: CosineState, resume_step: int, request: ScheduleRequest, policy: str) -> Decision:
    """Apply ``policy`` to a checkpoint's saved schedule and the user's request.

    Args:
        saved: the scheduler state the checkpoint restores.
        resume_step: the checkpoint's step (the scheduler's ``last_epoch``).
        request: the validated schedule the user asked for.
        policy: one of :data:`POLICIES`.

    Returns:
        A :class:`Decision`; ``refused`` is set when no safe schedule exists under the policy.
    """
    if len(saved.base_lrs) != len(request.base_lrs):
        return Decision(
            policy,
            None,
            refused=f"the checkpoint has {len(saved.base_lrs)} param group(s) but the request has "
            f"{len(request.base_lrs)}; match --lr-mult to the checkpoint's groups",
        )
    if policy == "keep":
        return _keep(saved, resume_step, request)
    if policy == "smooth":
        return _smooth(saved, resume_step, request)
    if policy == "recompute":
        return _recompute(saved, resume_step, request)
    diffs = _differences(saved, request)
    if policy == "strict":
        if diffs:
            return Decision("strict", None, refused="the request differs from the checkpoint: " + "; ".join(diffs))
        return _keep(saved, resume_step, request)
    if policy != "auto":
        raise ValueError(f"unknown policy {policy!r}")
    unsafe = unsafe_reason(saved, resume_step, request.max_steps)
    if not diffs and unsafe is None:
        return _keep(saved, resume_step, request)
    decision = _smooth(saved, resume_step, request)
    reason = (
        "the request differs from the checkpoint (" + "; ".join(diffs) + ")"
        if diffs
        else f"keeping the checkpoint's schedule is unsafe: {unsafe[0]}"
    )
    return replace(decision, notes=(f"auto: {reason}", *decision.notes))
