"""The check for ``--lr-policy cooldown``: the scheduler the run builds, restored as Lightning restores it.

The truth is :class:`~nemo_resume.schedules.cooldown_scheduler.CooldownLR` from the module the recipe configures
(:func:`~nemo_resume.schedules.cooldown.cooldown_module`), built on the config's param groups, then given the
checkpoint's saved scheduler state with ``load_state_dict`` (what Lightning does at the resume), then probed from
the resume step to the new end. The LR the checkpoint holds at the resume step is NeMo's restored
``CosineAnnealing``'s, so a jump between the two is measured, not assumed away.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from nemo_resume.check import rules
from nemo_resume.check.cosine import build as build_cosine
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
from nemo_resume.constants import END_REL_TOL, RATIO_REL_TOL
from nemo_resume.schedules.cooldown import CooldownState, cooldown_lrs, cooldown_module, holds_cooldown, saved_cooldown
from nemo_resume.schedules.cosine import CosineState, relative_jump

SCHEDULER = "nemo_resume's CooldownScheduler"
CHECKS: tuple[CheckName, ...] = (
    "finite", "at_or_above_min_lr", "no_jump_at_resume", "decay_non_increasing", "ends_at_min_lr",
    "group_ratios_kept", "cooldown_as_planned", "schedule_spans_training",
)


def check_cooldown(config: CosineState, resume: ResumePoint, max_jump: float) -> CheckResult:
    """Run ``resume.cooldown`` through the scheduler the run builds, from the checkpoint's restored state.

    Args:
        config: the config's schedule, one base LR per checkpoint group (``ResumePlan.config_state``); its
            ``max_steps`` is the cooldown's end, the trainer's ``max_steps``.
        resume: the checkpoint's step and saved scheduler state, and the planned ``cooldown``.
        max_jump: the largest relative LR change allowed at the resume step.
    """
    cooldown = resume.cooldown
    assert cooldown is not None  # check_plan sends only cooldown plans here
    validate_resume(resume, len(cooldown.start_lrs), config.max_steps)
    start, end = resume.step + 1, config.max_steps
    module = cooldown_module(cooldown)
    try:
        live = scheduler_on_groups(module.build(), config.base_lrs)
    except (*NEMO_ERRORS, TypeError) as exc:
        failure = StepFailure(0, describe_error(exc) + " (while building the scheduler from the plan)", "build")
        return rules.failed_early(config, resume, failure, start, end, [], CHECKS, SCHEDULER)
    restore(live, resume)
    before = _checkpoint_lr(config, resume)
    after = lr_or_none(live, resume.step)
    jump = Jump(resume.step, before, after, relative_jump(before, after) if before is not None else None) if after else None
    restored = live.cooldown
    marks = {restored.start_step, restored.end_step, restored.end_step + 1, (restored.start_step + restored.end_step) // 2}
    main = prepend(evaluate(live, probe_points(marks, start, end), "schedule"), resume.step, after, "planned")
    span = rules.upto(main, start, end)
    checks = (
        *rules.common_checks(main, resume, jump, start, end, warmup_steps=0, min_lr=cooldown.min_lr,
                             max_jump=max_jump, scheduler=SCHEDULER),
        _check_decay(main, span),
        _check_end(main, cooldown, end),
        _check_groups(live, main, span),
        _check_planned(restored, cooldown, main),
        _check_spans(restored, end),
    )
    marks_labels = {cooldown.start_step + cooldown.decay_steps // 2: ["middle of cooldown"]}
    return CheckResult(
        request=config, resume=resume, schedule=None, start=start, end=end, checks=checks, failure=main.failure,
        key_steps=rules.key_steps(live, marks_labels, resume, start, end, main.failure), curves=(main,), jump=jump,
        evaluated_steps=len(main.steps) + (main.failure is not None),
        notes=(f"{cooldown.decay_type} cooldown from step {cooldown.start_step} to min_lr {cooldown.min_lr:g} at step "
               f"{cooldown.end_step}",),
        scheduler=SCHEDULER,
    )


def _checkpoint_lr(config: CosineState, resume: ResumePoint) -> tuple[float, ...] | None:
    """The LR the checkpoint's run had at the resume step: the cooldown a cooldown run's checkpoint holds, else
    NeMo's CosineAnnealing with its saved state (its ``_last_lr`` where that raises)."""
    if holds_cooldown(resume.restored):
        return tuple(cooldown_lrs(saved_cooldown(resume.restored), resume.step))
    try:
        saved = build_cosine(config)
    except NEMO_ERRORS:
        saved = None
    if saved is not None:
        restore(saved, resume)
        lrs = lr_or_none(saved, resume.step)
        if lrs is not None:
            return lrs
    last = resume.restored.get("_last_lr")
    return tuple(float(x) for x in last) if isinstance(last, list) else None


def _check_decay(curve: Curve, span: str) -> Check:
    """The LR never rises from the resume step on: no warmup, no bump."""
    v = curve.lrs
    bad = (v[1:] > v[:-1] * (1 + rules.FLOAT_SLACK) + 1e-300).any(axis=1) if len(v) > 1 else np.zeros(0, bool)
    if bad.any():
        i = int(np.argmax(bad)) + 1
        return Check("decay_non_increasing", False, int(curve.steps[i]),
                     f"LR rises from {rules.fmt(v[i - 1])} at step {int(curve.steps[i - 1])} to {rules.fmt(v[i])} at "
                     f"step {int(curve.steps[i])}")
    return Check("decay_non_increasing", True, None, f"LR never rises from the resume step, {span}")


def _check_end(curve: Curve, cooldown: CooldownState, end: int) -> Check:
    if curve.failure is not None and curve.failure.step <= end:
        return Check("ends_at_min_lr", None, end, f"step {end} is not reached: the scheduler raises at step {curve.failure.step}")
    last = curve.lrs[curve.steps == end][0]
    if not all(math.isclose(x, cooldown.min_lr, rel_tol=END_REL_TOL, abs_tol=0.0) for x in last):
        return Check("ends_at_min_lr", False, end, f"LR at max_steps ({end}) is {rules.fmt(last)}, not min_lr {cooldown.min_lr:.6g}")
    return Check("ends_at_min_lr", True, None, f"LR at max_steps ({end}) equals min_lr {cooldown.min_lr:.6g}")


def _check_groups(live: Any, curve: Curve, span: str) -> Check:
    """Each group follows its own cooldown: the same class on that group alone, with the live state."""
    state = live.cooldown
    for g in range(1, len(state.start_lrs)):
        alone = CooldownState((state.start_lrs[g],), state.min_lr, state.start_step, state.decay_steps, state.decay_type)
        one = scheduler_on_groups(cooldown_module(alone).build(), [state.start_lrs[g]])
        own = evaluate(one, [int(s) for s in curve.steps], "schedule")
        for i, step in enumerate(own.steps):
            got, want = float(curve.lrs[i, g]), float(own.lrs[i, 0])
            if not math.isclose(got, want, rel_tol=RATIO_REL_TOL, abs_tol=1e-300):
                return Check("group_ratios_kept", False, int(step),
                             f"group {g} gets {got:.6g} at step {int(step)}, its own cooldown gives {want:.6g}")
    return Check("group_ratios_kept", True, None, f"every group cools down from its own LR {rules.fmt(state.start_lrs)}, {span}")


def _check_planned(live: CooldownState, planned: CooldownState, curve: Curve) -> Check:
    """The run follows the planned cooldown: a restore that brought back another one (a cooldown checkpoint's) fails."""
    if live != planned:
        return Check("cooldown_as_planned", False, int(curve.steps[0]) if len(curve.steps) else None,
                     f"after the restore the scheduler holds {live.to_json()}, not the planned {planned.to_json()}")
    for i, step in enumerate(curve.steps):
        want = cooldown_lrs(planned, int(step))
        if relative_jump(want, curve.lrs[i]) > RATIO_REL_TOL:
            return Check("cooldown_as_planned", False, int(step),
                         f"LR {rules.fmt(curve.lrs[i])} at step {int(step)}, the plan gives {rules.fmt(want)}")
    return Check("cooldown_as_planned", True, None, f"the LR follows the planned {planned.decay_type} cooldown at every step")


def _check_spans(live: CooldownState, end: int) -> Check:
    if live.end_step == end:
        return Check("schedule_spans_training", True, None, f"the cooldown ends at max_steps ({end})")
    return Check("schedule_spans_training", False, min(live.end_step, end) + 1,
                 f"the cooldown ends at step {live.end_step} but training runs to {end}")
