"""The pre-launch check for every schedule other than NeMo's CosineAnnealing (``--schedule NAME``, ``--lr-stages``).

The truth is the NeMo module the recipe uses (:func:`nemo_resume.schedules.scheduler_module`),
built on a throw-away optimizer with one param group per LR multiplier, its ``get_lr`` probed
at every step (or a grid plus every phase boundary on long horizons), exactly as
:mod:`nemo_resume.check` does for the cosine. For a resume the checkpoint's scheduler state is
loaded the way Lightning loads it (``load_state_dict``); nothing is rewritten (``keep``).
"""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

from nemo_resume.check import (
    _NEMO_ERRORS,
    DEFAULT_MAX_JUMP,
    RATIO_REL_TOL,
    Check,
    CheckName,
    CheckResult,
    Curve,
    Jump,
    ResumePoint,
    StepFailure,
    _check_finite,
    _check_jump,
    _check_min_lr,
    _check_nemo_runs,
    _describe,
    _evaluate,
    _failed_early,
    _fmt,
    _lr_or_none,
    _prepend,
    probe_points,
    scheduler_on_groups,
)
from nemo_resume.errors import NemoResumeError
from nemo_resume.request import STAGED, ScheduleRequest
from nemo_resume.schedule import relative_jump
from nemo_resume.schedules.module import ModuleConfig
from nemo_resume.schedules.select import scheduler_module
from nemo_resume.schedules.stages import boundaries, describe, staged_lrs, stages_from_json, total_steps

_CHECKS: tuple[CheckName, ...] = (
    "finite",
    "at_or_above_min_lr",
    "no_jump_at_resume",
    "group_ratios_kept",
    "stages_as_requested",
    "schedule_spans_training",
)


def _marks(request: ScheduleRequest, live: Any, extra: tuple[int, ...]) -> set[int]:
    """Every step where the schedule changes phase: warmup end, hold end, stage switches, max_steps."""
    marks = {request.warmup_steps, request.warmup_steps + 1, *extra}
    for key in ("warmup_steps", "hold_steps", "max_steps"):
        v = getattr(live, key, None)
        if isinstance(v, int):
            marks |= {v, v + 1}
    if request.stages:
        marks |= set(boundaries(request.stages))
    return marks


def _restore(live: Any, request: ScheduleRequest, resume: ResumePoint) -> None:
    if resume.step >= request.max_steps:
        raise NemoResumeError(
            f"resume step {resume.step} is at or past max_steps ({request.max_steps}): nothing left to train; raise max_steps"
        )
    base = resume.restored.get("base_lrs")
    if base is not None and len(base) != len(request.base_lrs):
        raise NemoResumeError(
            f"restored base_lrs has {len(base)} entries but the request has {len(request.base_lrs)} param group(s)"
        )
    live.load_state_dict({**resume.restored, "last_epoch": resume.step})


def check_module_schedule(
    request: ScheduleRequest, *, resume: ResumePoint | None = None, max_jump: float = DEFAULT_MAX_JUMP
) -> CheckResult:
    """Run ``request``'s NeMo module over the whole horizon and check it.

    Args:
        request: a schedule other than cosine (``request.is_cosine`` False); validated or not.
        resume: the checkpoint's step and scheduler state (no plan target: nothing is rewritten).
        max_jump: the largest relative LR change allowed at the resume step.

    Raises:
        NemoResumeError: no faithful NeMo module for the request, or inconsistent resume input.
    """
    if resume is not None and resume.target is not None:
        raise NemoResumeError(f"--schedule {request.schedule}: a plan target rewrites NeMo's CosineAnnealing only")
    module = scheduler_module(request)
    notes = list(module.notes)
    start, end = (0, request.max_steps) if resume is None else (resume.step + 1, request.max_steps)
    try:
        live = scheduler_on_groups(module.build(), request.base_lrs)
    except _NEMO_ERRORS as exc:
        failure = StepFailure(0, _describe(exc) + " (while building the scheduler from the config)", "build")
        return _failed_early(request, resume, failure, start, end, notes, _CHECKS, module.label)
    jump, curves = None, []
    if resume is not None:
        _restore(live, request, resume)
        before = _lr_or_none(live, resume.step)
        jump = Jump(resume.step, before, before, 0.0) if before is not None else None
        notes.append(f"resumed as saved: Lightning restores the checkpoint's {module.name} state over the config")
    steps = probe_points(_marks(request, live, () if resume is None else (resume.step,)), start, end)
    main = _evaluate(live, steps, "schedule")
    if resume is not None:
        main = _prepend(main, resume.step, jump.before if jump else None, "schedule")
    curves.append(main)
    upto = f"up to step {main.failure.step - 1}" if main.failure else f"from step {start} to {end}"
    in_range = main.steps >= start
    first_warmup = request.stages[0].warmup_steps if request.stages else request.warmup_steps
    floor = SimpleNamespace(warmup_steps=first_warmup, min_lr=request.min_lr)
    checks = (
        _check_nemo_runs(main.failure, start, end, module.label),
        _check_finite(main.steps[in_range], main.lrs[in_range], upto),
        _check_min_lr(main.steps[in_range], main.lrs[in_range], floor, upto),
        _check_jump(resume, jump, max_jump),
        _check_ratios(module, live, resume, main, start, upto),
        _check_stages(request, live, main),
        _check_spans(request, live, end),
    )
    return CheckResult(
        request=request,
        resume=resume,
        schedule=None,
        start=start,
        end=end,
        checks=checks,
        failure=main.failure,
        key_steps=_key_steps(request, live, resume, start, end, main.failure),
        curves=tuple(curves),
        jump=jump,
        evaluated_steps=len(main.steps) + (main.failure is not None),
        notes=tuple(notes),
        scheduler=module.label,
    )


def _alone(module: ModuleConfig, live: Any, resume: ResumePoint | None, group: int) -> Any:
    """The same module for one group alone (holding the live scheduler's restored state, if any)."""
    sched = scheduler_on_groups(module.build(), (float(live.base_lrs[group]),))
    if resume is not None:
        sched.load_state_dict({**resume.restored, "base_lrs": [float(live.base_lrs[group])], "last_epoch": resume.step})
    return sched


def _check_ratios(
    module: ModuleConfig, live: Any, resume: ResumePoint | None, curve: Curve, start: int, upto: str
) -> Check:
    """Each group gets the LR the module gives that group alone (NeMo's WarmupAnnealing gives every group group 0's)."""
    n = len(live.base_lrs)
    if n == 1:
        return Check("group_ratios_kept", True, None, "one param group")
    mask = curve.steps >= start
    steps, lrs = curve.steps[mask], curve.lrs[mask]
    for g in range(1, n):
        own = _evaluate(_alone(module, live, resume, g), [int(x) for x in steps], "schedule")
        for i, step in enumerate(own.steps):
            if not math.isclose(lrs[i, g], own.lrs[i, 0], rel_tol=RATIO_REL_TOL, abs_tol=1e-300):
                return Check(
                    "group_ratios_kept",
                    False,
                    int(step),
                    f"group {g} gets {lrs[i, g]:.6g} at step {int(step)}, "
                    f"its own schedule (base {float(live.base_lrs[g]):.6g}) gives {own.lrs[i, 0]:.6g}",
                )
    return Check("group_ratios_kept", True, None, f"every group follows its own base LR {_fmt(live.base_lrs)}, {upto}")


def _check_stages(request: ScheduleRequest, live: Any, curve: Curve) -> Check:
    """The LR the run uses is the requested stages' (a restored checkpoint brings back its own stages)."""
    if request.schedule != STAGED:
        return Check("stages_as_requested", True, None, "not a staged schedule")
    have = stages_from_json(live.stages)
    if describe(have) != describe(request.stages):
        return Check(
            "stages_as_requested",
            False,
            int(curve.steps[0]) if len(curve.steps) else None,
            f"the run uses the checkpoint's stages {describe(have)}, not the requested {describe(request.stages)}",
        )
    for i, step in enumerate(curve.steps):
        want = staged_lrs(request.stages, live.base_lrs, int(step))
        if relative_jump(want, curve.lrs[i]) > RATIO_REL_TOL:
            return Check(
                "stages_as_requested",
                False,
                int(step),
                f"LR {_fmt(curve.lrs[i])} at step {int(step)}, the stages give {_fmt(want)}",
            )
    switches = ", ".join(str(b) for b in boundaries(request.stages)[1:]) or "none"
    return Check(
        "stages_as_requested", True, None, f"the LR follows {describe(request.stages)}; switches at step(s) {switches}"
    )


def _check_spans(request: ScheduleRequest, live: Any, end: int) -> Check:
    length = (
        total_steps(stages_from_json(live.stages)) if request.schedule == STAGED else getattr(live, "max_steps", None)
    )
    if length is None or length >= end:
        return Check("schedule_spans_training", True, None, f"the schedule covers training to step {end}")
    last = "the last stage's LR" if request.schedule == STAGED else f"min_lr {getattr(live, 'min_lr', 0):g}"
    return Check(
        "schedule_spans_training",
        False,
        length + 1,
        f"the scheduler's schedule ends at step {length} but training runs to {end}: the LR sits at {last} "
        f"for the last {end - length} steps",
    )


def _key_steps(
    request: ScheduleRequest, live: Any, resume: ResumePoint | None, start: int, end: int, failure: StepFailure | None
) -> tuple[tuple[int, str, tuple[float, ...] | None], ...]:
    labels: dict[int, list[str]] = {0: ["start"], end: ["max_steps"]}
    w = request.warmup_steps
    if w:
        labels.setdefault(w, []).append("end of warmup")
    hold = getattr(live, "hold_steps", 0)
    if isinstance(hold, int) and hold > w:
        labels.setdefault(hold, []).append("end of stable phase")
    for k, b in enumerate(boundaries(request.stages)[1:], start=2):
        labels.setdefault(b - 1, []).append(f"last step of stage {k - 1}")
        labels.setdefault(b, []).append(f"stage {k} starts")
    if resume is not None:
        labels.setdefault(resume.step, []).append("resume step")
        labels.setdefault(resume.step + 1, []).append("first step after resume")
    if failure is not None:
        labels.setdefault(failure.step, []).append("NeMo raises")
    low = start if resume is None else resume.step
    return tuple(
        (step, ", ".join(labels[step]), _lr_or_none(live, step))
        for step in sorted(s for s in labels if low <= s <= end)
    )
