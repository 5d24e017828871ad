"""The LR schedule a resumed run follows: ``--lr-policy keep|smooth|recompute|strict|auto|cooldown``.

NeMo restores the checkpoint's whole scheduler state over the config, so "lower min_lr and
resume" changes nothing. Each policy here produces the exact scheduler state to write back
after the restore (``target``; None means "leave NeMo's restored state alone"), and refuses,
with the reason and the step, when the resulting run would fail or silently flatline.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from nemo_resume.constants import END_REL_TOL, RATIO_REL_TOL
from nemo_resume.schedules.cooldown import POLICY as COOLDOWN
from nemo_resume.schedules.cooldown import CooldownState, cooldown_flags, cooldown_lrs, plan_cooldown
from nemo_resume.schedules.cosine import (
    CosineState,
    ScheduleFailure,
    first_failure,
    first_warmup_stall,
    group_ratios,
    lr_at,
    relative_jump,
    same_ratios,
)
from nemo_resume.schedules.lr_stages import describe, stages_from_json, total_steps
from nemo_resume.schedules.request import STAGED, ScheduleRequest

POLICIES: tuple[str, ...] = ("auto", "keep", "smooth", "recompute", "strict", COOLDOWN)


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
        cooldown: ``cooldown``'s schedule, run by its own scheduler module (then ``target`` is None).
    """

    policy: str
    target: CosineState | None
    refused: str | None = None
    jump: float = 0.0
    refused_step: int | None = None
    notes: tuple[str, ...] = ()
    cooldown: CooldownState | None = None

    def effective(self, saved: CosineState) -> CosineState:
        """The schedule the run follows after the resume step."""
        return saved if self.target is None else self.target


def _group_mismatch(saved_lrs: Sequence[float], request: ScheduleRequest) -> str:
    return (
        f"the checkpoint's param group LRs {list(saved_lrs)} do not fit the request's multipliers "
        f"{[1.0, *request.lr_mults]} (lr {request.lr:g}); match --lr-mult to the run's param groups"
    )


def _differences(saved: CosineState, request: ScheduleRequest) -> list[str]:
    wanted = request.cosine_state()
    group_lrs = request.group_lrs_for(saved.base_lrs)
    out = [] if group_lrs is not None else [_group_mismatch(saved.base_lrs, request)]
    rows: list[tuple[str, Any, Any]] = [
        ("lr per group", list(saved.base_lrs), list(group_lrs or saved.base_lrs)),
        ("min_lr", saved.min_lr, wanted.min_lr),
        ("max_steps", saved.max_steps, wanted.max_steps),
        ("warmup_steps", saved.warmup_steps, wanted.warmup_steps),
        ("constant_steps", saved.constant_steps, wanted.constant_steps),
    ]
    for name, have, want in rows:
        same = (
            all(math.isclose(a, b, rel_tol=1e-9) for a, b in zip(have, want)) and len(have) == len(want)
            if isinstance(have, list)
            else math.isclose(have, want, rel_tol=1e-9)
        )
        if not same:
            out.append(f"{name}: checkpoint {have}, requested {want}")
    return out


def unsafe_reason(schedule: CosineState, resume_step: int, max_steps: int) -> tuple[str, int] | None:
    """Why continuing ``schedule`` from ``resume_step`` to ``max_steps`` fails, flatlines or misbehaves.

    The same rules the pre-launch check applies to NeMo's real scheduler (``nemo_resume.check``), here on
    the pure mirror, so a plan is safe exactly when its check passes. None is the plan's guarantee:
    NeMo's checks pass at every step, every group follows its own schedule, the decay is not negative,
    and the LR ends at min_lr at ``max_steps``.
    """
    start = resume_step + 1
    failure = first_failure(schedule, start, max(max_steps, start))
    if failure is not None:
        return f"it fails at step {failure.step}: {failure.message}", failure.step
    stall = first_warmup_stall(schedule, max(resume_step, 0), max_steps)  # from the LR the run resumes with
    if stall is not None:
        return f"its warmup LR does not rise at step {stall} (a zero or denormal LR)", stall
    if schedule.decay < 0:
        return (
            f"its warmup_steps ({schedule.warmup_steps}) + constant_steps ({schedule.constant_steps}) exceed its "
            f"max_steps ({schedule.max_steps}): the LR does not decay, it falls to min_lr right after warmup",
            max(start, min(schedule.warmup_steps + 1, max_steps)),
        )
    collapsed = _first_collapsed_step(schedule, start, max_steps)
    if collapsed is not None:
        return (
            f"constant_steps={schedule.constant_steps} with per-group LRs {list(schedule.base_lrs)}: NeMo's "
            f"CosineAnnealing then gives every group group 0's LR (from step {collapsed})",
            collapsed,
        )
    if max_steps > schedule.max_steps:
        return (
            f"its max_steps is {schedule.max_steps}, so the LR sits flat at min_lr ({schedule.min_lr:g}) "
            f"from step {schedule.max_steps} to the requested {max_steps}",
            schedule.max_steps,
        )
    end = lr_at(schedule, max_steps) if max_steps >= start else [schedule.min_lr]
    if not all(math.isclose(x, schedule.min_lr, rel_tol=END_REL_TOL, abs_tol=0.0) for x in end):
        return (
            f"training stops at step {max_steps} with the LR at {', '.join(f'{x:.4g}' for x in end)}, before the "
            f"schedule reaches min_lr ({schedule.min_lr:g}) at step {schedule.warmup_steps + schedule.decay}",
            max_steps,
        )
    return None


def _first_collapsed_step(schedule: CosineState, start: int, end: int) -> int | None:
    """The first step in ``start..end`` where a group does not get the LR its own schedule gives it.

    Only NeMo's ``constant_steps > 0`` path does that (it uses group 0's base LR for every group); the
    groups agree again once the LR is held at min_lr, after the decay.
    """
    if schedule.constant_steps <= 0 or len(set(schedule.base_lrs)) < 2:
        return None
    last = min(end, schedule.warmup_steps + max(schedule.decay, 0))
    found = []
    for g in range(1, len(schedule.base_lrs)):  # as the check: each group against itself alone, until that raises
        alone = replace(schedule, base_lrs=(schedule.base_lrs[g],))
        for step in range(start, last + 1):
            try:
                own = lr_at(alone, step)[0]
            except ScheduleFailure:
                break
            if not math.isclose(lr_at(schedule, step)[g], own, rel_tol=RATIO_REL_TOL, abs_tol=1e-300):
                found.append(step)
                break
    return min(found, default=None)


def _keep(saved: CosineState, resume_step: int, request: ScheduleRequest) -> Decision:
    """The checkpoint's schedule continues; the request's schedule values only build the scheduler first."""
    built = first_failure(request.cosine_state(), 0, 0)
    if built is not None:  # NeMo builds the scheduler from the config (computing step 0) before the restore
        return Decision(
            "keep", None, refused_step=0,
            refused=f"NeMo builds the scheduler from the config before it restores the checkpoint, and the "
            f"config's schedule fails there: {built.message}; give --lr above --min-lr or --warmup-steps > 0",
        )
    unsafe = unsafe_reason(saved, resume_step, request.max_steps)
    if unsafe:
        why, step = unsafe
        return Decision("keep", None, refused=f"keeping the checkpoint's schedule is unsafe: {why}", refused_step=step)
    ignored = [d for d in _differences(saved, request) if not d.startswith("max_steps")]
    notes = ["the checkpoint's saved schedule continues unchanged"]
    if ignored:
        notes.append("ignored under keep (the checkpoint's values win): " + "; ".join(ignored))
    return Decision("keep", None, notes=tuple(notes))


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
            refused_step=resume_step + 1,  # where NeMo would raise on a cosine starting there
        )
    # A cosine that starts at the checkpoint's LR: NeMo's decay phase with the warmup ending
    # exactly at the resume step. Every group keeps its current LR, so ratios are preserved.
    target = CosineState(
        base_lrs=tuple(current), min_lr=request.min_lr, max_steps=request.max_steps, warmup_steps=resume_step
    )
    notes = [
        f"cosine from the checkpoint's LR {', '.join(f'{x:.4g}' for x in current)} at step {resume_step} "
        f"to min_lr {request.min_lr:g} at step {request.max_steps}; written as warmup_steps={resume_step} "
        "in the scheduler state"
    ]
    wanted = request.group_lrs_for(saved.base_lrs)
    if wanted and current[0] > 0 and not same_ratios(current, wanted):
        have = ", ".join(f"{r:.4g}" for r in group_ratios(current))
        want = ", ".join(f"{r:.4g}" for r in group_ratios(wanted))
        notes.append(f"each group continues from its own current LR: ratios [{have}] to group 0, not the "
                     f"multipliers' [{want}] (NeMo's one absolute min_lr floor moved them); the check follows the same")
    return Decision("smooth", target, jump=relative_jump(current, lr_at(target, resume_step)), notes=tuple(notes))


def _cooldown(saved: CosineState, resume_step: int, request: ScheduleRequest) -> Decision:
    """From each group's LR at the resume step to ``--min-lr`` over ``--decay-steps`` (see
    :mod:`nemo_resume.schedules.cooldown`); the checkpoint's own ``min_lr`` does not matter, the request's does."""
    current = lr_at(saved, resume_step)
    low = [(g, lr) for g, lr in enumerate(current) if not lr > request.min_lr]
    if low:
        g, lr = low[0]
        return Decision(COOLDOWN, None, refused_step=resume_step + 1, refused=(
            f"group {g}'s LR at the resume step {resume_step} ({lr:g}) is not above the requested min_lr "
            f"({request.min_lr:g}): there is nothing to anneal; lower --min-lr (e.g. --min-lr {lr / 10:g})"))
    state = plan_cooldown(current, resume_step, request)
    notes = (
        f"{state.decay_type} cooldown from the checkpoint's LR {', '.join(f'{x:.4g}' for x in current)} at step "
        f"{resume_step} to min_lr {state.min_lr:g} at step {state.end_step} (the run's new max_steps), then min_lr; "
        "no warmup, the step count and the data position continue",
        "run by nemo_resume's CooldownScheduler (the recipe builds it in place of NeMo's cosine); the checkpoint's "
        "saved schedule and the requested --lr are not used after the resume step",
    )
    jump = relative_jump(current, cooldown_lrs(state, resume_step))
    return Decision(COOLDOWN, None, jump=jump, notes=notes, cooldown=state)


def _cooldown_differences(held: CooldownState, request: ScheduleRequest) -> list[str]:
    """What ``--lr-policy cooldown`` asks for that a cooldown checkpoint's own cooldown is not."""
    rows: tuple[tuple[str, Any, Any], ...] = (
        ("decay_steps", held.decay_steps, request.decay_steps), ("min_lr", held.min_lr, request.min_lr),
        ("decay_type", held.decay_type, request.decay_type or "linear"),
    )
    return [f"{name}: checkpoint {have!r}, requested {want!r}" for name, have, want in rows
            if have != want and not (isinstance(have, float) and math.isclose(have, want, rel_tol=1e-9))]


def continue_cooldown(
    held: CooldownState, base_lrs: Sequence[float], resume_step: int, request: ScheduleRequest, policy: str
) -> Decision:
    """A cooldown run's checkpoint: the cooldown it holds continues to its end, whatever the policy asks.

    Lightning restores the checkpoint's scheduler state over whatever the config builds, the cooldown's fields
    included, so the one schedule a resume can run is that cooldown (``auto``, ``keep``, or ``cooldown`` with its
    own values). A policy that would plan another one is refused, saying what works.

    Args:
        held: the cooldown the checkpoint holds (:func:`nemo_resume.schedules.cooldown.saved_cooldown`).
        base_lrs: the checkpoint's scheduler ``base_lrs`` (one per param group).
        resume_step: the checkpoint's step.
        request: the schedule asked for.
        policy: one of :data:`POLICIES`.
    """
    started = (f"the {held.decay_type} cooldown started at step {held.start_step} (to min_lr {held.min_lr:g} at step "
               f"{held.end_step})")
    works = (f"resume with --lr-policy auto (the default) or keep, or {cooldown_flags(held)}, to continue it to step "
             f"{held.end_step}; or --restart-from-weights for a new schedule")
    if not request.is_cosine or policy in ("smooth", "recompute", "strict"):
        what = f"--schedule {request.schedule}" if not request.is_cosine else f"--lr-policy {policy}"
        return Decision(policy, None, refused=f"the checkpoint holds {started}, which Lightning restores over the "
                        f"config: {what} cannot replace it; {works}")
    if request.group_lrs_for(base_lrs) is None:
        return Decision(policy, None, refused=_group_mismatch(base_lrs, request))
    diffs = _cooldown_differences(held, request) if policy == COOLDOWN else []
    if diffs:
        return Decision(policy, None, refused=f"the request differs from the checkpoint's cooldown ({'; '.join(diffs)}): "
                        f"Lightning restores the checkpoint's; {works}")
    if resume_step >= held.end_step:
        return Decision(policy, None, refused_step=resume_step, refused=(
            f"the checkpoint (step {resume_step}) is at the end of {started}: nothing of it is left to run; "
            "--restart-from-weights starts a new schedule from its weights"))
    ignored = [f"{name}: requested {want:g}, the cooldown's {have:g}" for name, want, have in
               (("min_lr", request.min_lr, held.min_lr), ("max_steps", request.max_steps, held.end_step))
               if policy != COOLDOWN and not math.isclose(want, have, rel_tol=1e-9)]
    notes = [f"continues {started}, from the checkpoint's LR "
             f"{', '.join(f'{x:.4g}' for x in cooldown_lrs(held, resume_step))} at step {resume_step}; "
             f"the run ends at step {held.end_step}",
             "the checkpoint's cooldown (nemo_resume's CooldownScheduler) is restored as saved; the recipe builds it "
             "with the same values"]
    if ignored:
        notes.append("ignored (the checkpoint's cooldown wins): " + "; ".join(ignored))
    return Decision(COOLDOWN, None, notes=tuple(notes), cooldown=held)


def _recompute(saved: CosineState, resume_step: int, request: ScheduleRequest) -> Decision:
    group_lrs = request.group_lrs_for(saved.base_lrs)
    if group_lrs is None:
        return Decision("recompute", None, refused=_group_mismatch(saved.base_lrs, request))
    target = replace(request.cosine_state(), base_lrs=group_lrs)
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
    if policy != "keep" and request.group_lrs_for(saved.base_lrs) is None:
        return Decision(policy, None, refused=_group_mismatch(saved.base_lrs, request))
    if policy == "keep":
        return _keep(saved, resume_step, request)
    if policy == "smooth":
        return _smooth(saved, resume_step, request)
    if policy == "recompute":
        return _recompute(saved, resume_step, request)
    if policy == COOLDOWN:
        return _cooldown(saved, resume_step, request)
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
        if diffs or unsafe is None
        else f"keeping the checkpoint's schedule is unsafe: {unsafe[0]}"
    )
    return replace(decision, notes=(f"auto: {reason}", *decision.notes))


def _restored_differences(saved: Mapping[str, Any], request: ScheduleRequest) -> list[str]:
    """What the request changes that NeMo's restore would silently undo (fields the checkpoint has)."""
    if request.schedule == STAGED:
        have, want = describe(stages_from_json(saved["stages"])), describe(request.stages)
        return [] if have == want else [f"stages: checkpoint {have}, requested {want}"]
    out = []
    wanted: tuple[tuple[str, float], ...] = (
        ("min_lr", request.min_lr), ("max_steps", request.max_steps), ("warmup_steps", request.warmup_steps)
    )
    for name, value in wanted:
        saved_value = saved.get(name)
        if saved_value is not None and not math.isclose(saved_value, value, rel_tol=1e-9):
            out.append(f"{name}: checkpoint {saved_value}, requested {value}")
    have_lrs = list(saved.get("base_lrs") or [])
    want_lrs = request.group_lrs_for(have_lrs) or request.base_lrs
    if len(have_lrs) != len(want_lrs) or not all(math.isclose(a, b, rel_tol=1e-9) for a, b in zip(have_lrs, want_lrs)):
        out.append(f"lr per group: checkpoint {have_lrs}, requested {list(want_lrs)}")
    return out


def decide_restored(saved: Mapping[str, Any], resume_step: int, request: ScheduleRequest, policy: str) -> Decision:
    """``--lr-policy`` for a schedule other than NeMo's CosineAnnealing: the checkpoint's state continues.

    Only NeMo's CosineAnnealing state is rewritten by a plan (``smooth``, ``recompute``); any
    other scheduler, the staged one included, resumes with the state the checkpoint restores.
    ``keep`` continues it, ``strict`` and ``auto`` also refuse a request that differs from it
    (the difference would be silently ignored), ``smooth`` and ``recompute`` are refused.

    Args:
        saved: the checkpoint's scheduler ``state_dict`` fields (``base_lrs``, ``max_steps``,
            ``stages`` for a staged run, ...).
        resume_step: the checkpoint's step.
        request: the schedule asked for (``request.is_cosine`` is False).
        policy: one of :data:`POLICIES`.
    """
    name = request.schedule
    base = list(saved.get("base_lrs") or [])
    if request.group_lrs_for(base) is None:
        return Decision(policy, None, refused=_group_mismatch(base, request))
    if (name == STAGED) != bool(saved.get("stages")):
        what = "has no saved stages (not a --lr-stages run)" if name == STAGED else "is a staged run (--lr-stages)"
        return Decision(policy, None, refused=f"the checkpoint's scheduler {what}, but the request is --schedule {name}; "
                                             "resume with the schedule the run was started with")
    if policy in ("smooth", "recompute", COOLDOWN):
        what = "its stages are restored from the checkpoint" if name == STAGED else "its state is restored from the checkpoint"
        return Decision(policy, None, refused=f"--schedule {name} is not NeMo's CosineAnnealing, the only scheduler a plan "
                                             f"rewrites; {what}: use --lr-policy keep (or strict to require the same settings)")
    diffs = _restored_differences(saved, request)
    if diffs and policy in ("strict", "auto"):
        return Decision(policy, None, refused="the request differs from the checkpoint (" + "; ".join(diffs) + "); NeMo "
                        "restores the checkpoint's scheduler state over the config, so the change would be ignored: "
                        "use --lr-policy keep to continue the saved schedule")
    ends = total_steps(stages_from_json(saved["stages"])) if name == STAGED else saved.get("max_steps")
    if isinstance(ends, int) and ends < request.max_steps:
        return Decision("keep", None, refused_step=ends, refused=f"the saved schedule ends at step {ends} but training runs to "
                        f"{request.max_steps}: the LR would sit at its last value for {request.max_steps - ends} steps")
    notes = ("the checkpoint's saved schedule continues unchanged (NeMo restores it over the config)",)
    return Decision("keep", None, notes=notes + tuple(f"ignored (the checkpoint wins): {d}" for d in diffs))
