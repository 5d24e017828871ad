"""The check for every schedule other than NeMo's CosineAnnealing (``--schedule NAME``, ``--lr-stages``).

The truth is the NeMo module the recipe uses (:func:`nemo_resume.schedules.scheduler_module`),
built on a throw-away optimizer with one param group per LR multiplier and probed like the cosine
(:mod:`nemo_resume.check.probe`). For a resume the checkpoint's scheduler state is loaded the way
Lightning loads it (``load_state_dict``); nothing is rewritten (``keep``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from nemo_resume.check import rules
from nemo_resume.check.inputs import validate_resume
from nemo_resume.check.probe import (
    NEMO_ERRORS,
    describe_error,
    evaluate,
    lr_or_none,
    prepend,
    probe_points,
    restore,
    scheduler_on_groups,
)
from nemo_resume.check.result import Check, CheckName, CheckResult, Curve, Jump, ResumePoint, StepFailure
from nemo_resume.constants import RATIO_REL_TOL
from nemo_resume.errors import NemoResumeError
from nemo_resume.schedules.cosine import relative_jump
from nemo_resume.schedules.lr_stages import boundaries, describe, staged_lrs, stages_from_json, total_steps
from nemo_resume.schedules.request import STAGED, ScheduleRequest
from nemo_resume.schedules.scheduler_module import scheduler_module

CHECKS: tuple[CheckName, ...] = (
    "finite",
    "at_or_above_min_lr",
    "no_jump_at_resume",
    "group_ratios_kept",
    "stages_as_requested",
    "schedule_spans_training",
)


def check_module_schedule(request: ScheduleRequest, resume: ResumePoint | None, max_jump: float) -> CheckResult:
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
    if resume is not None:
        validate_resume(resume, len(request.base_lrs), request.max_steps)
    start, end = (0, request.max_steps) if resume is None else (resume.step + 1, request.max_steps)

    def build(base_lrs: Sequence[float]) -> Any:
        return scheduler_on_groups(module.build(), base_lrs)

    try:
        live = build(request.base_lrs)
    except NEMO_ERRORS as exc:
        failure = StepFailure(0, describe_error(exc) + " (while building the scheduler from the config)", "build")
        return rules.failed_early(request, resume, failure, start, end, notes, CHECKS, module.label)
    jump = None
    if resume is not None:
        restore(live, resume)
        before = lr_or_none(live, resume.step)
        jump = Jump(resume.step, before, before, 0.0) if before is not None else None
        notes.append(f"resumed as saved: Lightning restores the checkpoint's {module.name} state over the config")
    steps = probe_points(_marks(request, live, () if resume is None else (resume.step,)), start, end)
    main = evaluate(live, steps, "schedule")
    if resume is not None:
        main = prepend(main, resume.step, jump.before if jump else None, "schedule")
    span = rules.upto(main, start, end)
    first_warmup = request.stages[0].warmup_steps if request.stages else request.warmup_steps
    checks = (
        *rules.common_checks(
            main, resume, jump, start, end, warmup_steps=first_warmup, min_lr=request.min_lr, max_jump=max_jump,
            scheduler=module.label,
        ),
        rules.check_group_ratios(live, main, start, span, lambda lr: build((lr,))),
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
        key_steps=rules.key_steps(live, _labels(request, live), resume, start, end, main.failure),
        curves=(main,),
        jump=jump,
        evaluated_steps=len(main.steps) + (main.failure is not None),
        notes=tuple(notes),
        scheduler=module.label,
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


def _labels(request: ScheduleRequest, live: Any) -> dict[int, list[str]]:
    """The key steps of the schedule's phases, for the report."""
    labels: dict[int, list[str]] = {}
    w = request.warmup_steps
    if w:
        labels.setdefault(w, []).append("end of warmup")
    hold = getattr(live, "hold_steps", 0)
    if isinstance(hold, int) and hold > w:
        labels.setdefault(hold, []).append("end of stable phase")
    for k, b in enumerate(boundaries(request.stages)[1:], start=2):
        labels.setdefault(b - 1, []).append(f"last step of stage {k - 1}")
        labels.setdefault(b, []).append(f"stage {k} starts")
    return labels


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
                f"LR {rules.fmt(curve.lrs[i])} at step {int(step)}, the stages give {rules.fmt(want)}",
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
