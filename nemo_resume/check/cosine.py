"""The check for NeMo's ``CosineAnnealing``: a fresh run, or a resume with or without a plan.

The truth is NeMo's scheduler built as a recipe builds it (``CosineAnnealingScheduler``'s
``CosineAnnealing`` on the request's param groups); for a resume the checkpoint's scheduler state
is loaded into it the way Lightning does (``load_state_dict``) and the plan is written in with
:func:`nemo_resume.apply.apply_schedule`, the call the resume callback makes. Every branch of
``get_lr`` either raises at each of its steps or at none (the raise conditions do not depend on the
step inside a branch), so probing the first step of every branch finds the exact step at which a
naive run would first fail.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from nemo_resume.check import rules
from nemo_resume.check.inputs import validate_resume
from nemo_resume.check.nemo_cosine import cosine_annealing_class
from nemo_resume.check.probe import (
    NEMO_ERRORS,
    construct,
    describe_error,
    evaluate,
    lr_or_none,
    prepend,
    probe_points,
    restore,
)
from nemo_resume.check.result import Check, CheckName, CheckResult, Curve, Jump, ResumePoint, StepFailure
from nemo_resume.constants import END_REL_TOL, RATIO_REL_TOL
from nemo_resume.errors import NemoResumeError
from nemo_resume.schedules.cosine import (
    CosineState,
    ScheduleFailure,
    first_failure,
    first_warmup_stall,
    group_ratios,
    relative_jump,
    same_ratios,
)
from nemo_resume.schedules.hf_names import constant_steps_note
from nemo_resume.schedules.request import ScheduleRequest

SCHEDULER = "NeMo's CosineAnnealing"

# A schedule NeMo's constructor accepts whatever the group's LR: warmup at step 0, no constant phase.
_HARMLESS = CosineState(base_lrs=(1.0,), min_lr=0.0, max_steps=2, warmup_steps=1)

CHECKS: tuple[CheckName, ...] = (
    "finite", "at_or_above_min_lr", "no_jump_at_resume", "warmup_rising", "decay_non_increasing",
    "ends_at_min_lr", "group_ratios_kept", "no_negative_phase", "decay_spans_training",
)


def build(request: CosineState, base_lrs: Sequence[float] | None = None) -> Any:
    """NeMo's ``CosineAnnealing`` with ``request``'s fields on one param group per base LR.

    ``CosineAnnealingScheduler.scheduler()`` (what a recipe configures) builds exactly this and wraps it
    in Lightning's scheduler dict; the class comes from NeMo's own file (:mod:`nemo_cosine`).

    Raises:
        ValueError, AssertionError, ArithmeticError: NeMo's own, from the constructor's initial step.
    """
    cls = cosine_annealing_class()
    kwargs = dict(
        max_steps=request.max_steps,
        warmup_steps=request.warmup_steps,
        constant_steps=request.constant_steps,
        min_lr=request.min_lr,
    )
    return construct(lambda optimizer: cls(optimizer, **kwargs), base_lrs or request.base_lrs)


def fields(scheduler: Any) -> CosineState:
    """The live scheduler's schedule."""
    return CosineState(
        base_lrs=tuple(float(b) for b in scheduler.base_lrs),
        min_lr=float(scheduler.min_lr),
        max_steps=int(scheduler.max_steps),
        warmup_steps=int(scheduler.warmup_steps),
        constant_steps=int(scheduler.constant_steps),
        decay_steps=int(scheduler.decay_steps),
    )


def check_cosine(state: CosineState, resume: ResumePoint | None, max_jump: float) -> CheckResult:
    """Run ``state`` (the config's schedule) through NeMo's CosineAnnealing and check it (see the module doc)."""
    if not state.base_lrs:
        raise NemoResumeError("the request has no param group LRs")
    if state.decay_steps is not None:
        raise NemoResumeError(
            f"request decay_steps={state.decay_steps}: NeMo computes it from max_steps, warmup_steps and "
            "constant_steps; leave it None"
        )
    if resume is not None:
        validate_resume(resume, len(state.base_lrs), state.max_steps)
    # On a resume the config only builds the scheduler; the checkpoint (or the plan) decides the rest.
    notes = _request_notes(state) if resume is None else []
    start = 0 if resume is None else resume.step + 1
    end = state.max_steps
    try:
        live = build(state)
    except NEMO_ERRORS as exc:
        failure = StepFailure(0, describe_error(exc) + " (while building the scheduler from the config)", "build")
        return rules.failed_early(state, resume, failure, start, end, notes, CHECKS, SCHEDULER)

    jump = None
    curves: list[Curve] = []
    if resume is not None:
        restore(live, resume)
        restored = live
        if resume.target is not None:
            restored = build(state)  # built fine once already; this copy keeps "before the plan"
            restore(restored, resume)
            from nemo_resume.apply import apply_schedule

            try:
                apply_schedule(live, resume.target, resume.step)
            except ValueError as exc:
                raise NemoResumeError(f"apply_schedule refused the plan: {exc}") from None
            except ScheduleFailure as exc:  # the plan itself fails at the resume step
                failure = StepFailure(resume.step, f"apply_schedule: {exc}", "apply")
                return rules.failed_early(state, resume, failure, start, end, notes, CHECKS, SCHEDULER)
        before = lr_or_none(restored, resume.step)
        if before is None and isinstance(resume.restored.get("_last_lr"), list):
            before = tuple(float(x) for x in resume.restored["_last_lr"])
        after = lr_or_none(live, resume.step) if resume.target is not None else before
        if after is not None:
            jump = Jump(resume.step, before, after, relative_jump(before, after) if before is not None else None)
        curves.append(evaluate(restored, _probe_steps(fields(restored), 0, end, (resume.step,)), "restored"))
        if resume.target is None:
            notes.append("no plan: Lightning's restore wins, so the checkpoint's schedule continues")

    f = fields(live)
    main = evaluate(live, _probe_steps(f, start, end, () if resume is None else (resume.step,)), "schedule")
    if resume is not None:
        # The resumed run computes LRs from resume step + 1; its curve also shows the LR it starts with.
        main = prepend(main, resume.step, jump.after if jump else None, "planned")
    if resume is None or resume.target is not None:
        curves.append(main)
    notes += _mirror_note(f, start, end, main.failure) + _ratio_note(state, resume, f)
    span = rules.upto(main, start, end)
    checks = (
        *rules.common_checks(
            main, resume, jump, start, end, warmup_steps=f.warmup_steps, min_lr=f.min_lr, max_jump=max_jump,
            scheduler=SCHEDULER,
        ),
        _check_warmup(main, f, end),
        _check_decay(main, f, span),
        _check_end(main, f, end),
        _check_ratios(live, f, main, start, span),
        _check_negative_phase(f, resume, start, end),
        _check_spans(f, resume, end),
    )
    return CheckResult(
        request=state,
        resume=resume,
        schedule=f,
        start=start,
        end=end,
        checks=checks,
        failure=main.failure,
        key_steps=rules.key_steps(live, _marks(f), resume, start, end, main.failure),
        curves=tuple(curves),
        jump=jump,
        evaluated_steps=len(main.steps) + (main.failure is not None),
        notes=tuple(notes),
        scheduler=SCHEDULER,
    )


def _probe_steps(s: CosineState, start: int, end: int, extra: Sequence[int] = ()) -> list[int]:
    """Every step where ``get_lr`` changes branch (and neighbours), ``extra``, and a grid or every step."""
    w, d, m = s.warmup_steps, s.decay, s.max_steps
    marks = {w, w + 1, w + d, w + d + 1, m, m + 1, *extra}
    if d > 0:
        marks.add(w + d // 2)
    return probe_points(marks, start, end)


def _marks(f: CosineState) -> dict[int, list[str]]:
    """The key steps of the cosine's phases, for the report."""
    w, d, c = f.warmup_steps, f.decay, f.constant_steps
    marks: dict[int, list[str]] = {}
    if w > 0:
        marks.setdefault(w, []).append("end of warmup")
        marks.setdefault(w + 1, []).append("first step after warmup")
    if d > 0:
        marks.setdefault(w + d // 2, []).append("middle of decay")
    if c > 0:
        marks.setdefault(w + max(d, 0) + 1, []).append("start of constant")
    return marks


def _check_warmup(curve: Curve, f: CosineState, end: int) -> Check:
    """NeMo's probed LRs rise through the warmup, and so does every step between the probes (proved from
    the warmup's form, or computed at every step where the form does not settle it: ``first_warmup_stall``)."""
    w = f.warmup_steps
    if w <= 0:
        return Check("warmup_rising", True, None, "no warmup")
    mask = curve.steps <= w
    s, v = curve.steps[mask], curve.lrs[mask]
    if len(s) < 2:
        return Check("warmup_rising", True, None, "warmup is over before the checked range")
    bad = ~(v[1:] > v[:-1]).all(axis=1)
    if bad.any():
        i = int(np.argmax(bad)) + 1
        return Check(
            "warmup_rising", False, int(s[i]),
            f"warmup LR does not rise from step {int(s[i - 1])} ({rules.fmt(v[i - 1])}) to {int(s[i])} ({rules.fmt(v[i])})",
        )
    stall = first_warmup_stall(f, int(s[0]), end)
    if stall is not None:
        return Check("warmup_rising", False, stall,
                     f"warmup LR does not rise at step {stall} (between the probed steps; a zero or denormal LR)")
    return Check("warmup_rising", True, None, f"warmup LR rises at every step to step {min(w, int(s[-1]))}")


def _check_decay(curve: Curve, f: CosineState, span: str) -> Check:
    mask = curve.steps >= f.warmup_steps
    s, v = curve.steps[mask], curve.lrs[mask]
    if len(s) < 2:
        return Check("decay_non_increasing", True, None, "no decay in the checked range")
    bad = (v[1:] > v[:-1] * (1 + rules.FLOAT_SLACK) + 1e-300).any(axis=1)
    if bad.any():
        i = int(np.argmax(bad)) + 1
        return Check(
            "decay_non_increasing", False, int(s[i]),
            f"LR rises after warmup, from {rules.fmt(v[i - 1])} at step {int(s[i - 1])} to {rules.fmt(v[i])} at step {int(s[i])}",
        )
    return Check("decay_non_increasing", True, None, f"LR never rises after warmup, {span}")


def _check_end(curve: Curve, f: CosineState, end: int) -> Check:
    if curve.failure is not None and curve.failure.step <= end:
        return Check("ends_at_min_lr", None, end, f"step {end} is not reached: NeMo raises at step {curve.failure.step}")
    last = curve.lrs[curve.steps == end][0]
    off = [g for g, x in enumerate(last) if not math.isclose(x, f.min_lr, rel_tol=END_REL_TOL, abs_tol=0.0)]
    if off:
        return Check(
            "ends_at_min_lr", False, end,
            f"LR at max_steps ({end}) is {rules.fmt(last)}, not min_lr {f.min_lr:.6g} (group(s) {off})",
        )
    return Check("ends_at_min_lr", True, None, f"LR at max_steps ({end}) equals min_lr {f.min_lr:.6g}")


def _ratio_note(request: CosineState, resume: ResumePoint | None, f: CosineState) -> list[str]:
    """On a resume the checkpoint (or the plan) sets every group's base LR, whatever the request's multipliers
    say: said as a note, as the planner lists what the checkpoint overrides (``smooth`` continues each group
    from its own current LR, whose ratios NeMo's absolute min_lr floor may have moved)."""
    if resume is None or len(request.base_lrs) < 2:
        return []
    if same_ratios(f.base_lrs, request.base_lrs):
        return []
    source = "the plan" if resume.target else "the checkpoint"
    return [f"{source}'s base LRs {rules.fmt(f.base_lrs)} have ratios {rules.fmt(group_ratios(f.base_lrs))} to "
            f"group 0, not the requested multipliers' {rules.fmt(group_ratios(request.base_lrs))}: the run follows "
            f"{source}'s"]


def _check_ratios(live: Any, f: CosineState, curve: Curve, start: int, span: str) -> Check:
    """Each group follows its own schedule (catches NeMo's constant_steps collapse onto group 0's LR)."""

    def explain(got: float, group0: float) -> str:
        if f.constant_steps > 0 and math.isclose(got, group0, rel_tol=RATIO_REL_TOL):
            return ": NeMo's constant_steps > 0 path gives every group group 0's LR"
        return ""

    # Built with harmless values (the constructor computes step 0, and with constant_steps > 0 NeMo asserts
    # on group 0 only, so a group alone at its own LR may not construct), then given the live state.
    return rules.check_group_ratios(live, curve, start, span, lambda lr: build(_HARMLESS), explain)


def _check_negative_phase(f: CosineState, resume: ResumePoint | None, start: int, end: int) -> Check:
    d = f.decay
    if d >= 0:
        return Check("no_negative_phase", True, None, f"warmup {f.warmup_steps}, decay {d}, constant {f.constant_steps} steps")
    step = max(start, min(f.warmup_steps + 1, end))
    if resume is None:
        what = (
            f"warmup_steps ({f.warmup_steps}) + constant_steps ({f.constant_steps}) > max_steps ({f.max_steps}): "
            f"decay_steps = {d}"
        )
    else:
        what = f"{'the plan' if resume.target else 'the checkpoint'}'s decay_steps is {d}"
    return Check(
        "no_negative_phase", False, step,
        f"{what}; the LR does not decay: it falls to min_lr right after warmup (step {f.warmup_steps + 1})",
    )


def _check_spans(f: CosineState, resume: ResumePoint | None, end: int) -> Check:
    if f.max_steps >= end:
        return Check("decay_spans_training", True, None, f"the schedule's max_steps ({f.max_steps}) covers training to {end}")
    source = "the plan" if resume and resume.target else "the checkpoint"
    return Check(
        "decay_spans_training", False, f.max_steps + 1,
        f"{source}'s scheduler max_steps is {f.max_steps} but training runs to {end}: the LR sits at min_lr "
        f"for the last {end - f.max_steps} steps (a new max_steps in the config does not reach a restored scheduler)",
    )


def _mirror_note(f: CosineState, start: int, end: int, failure: StepFailure | None) -> list[str]:
    """Cross-check NeMo's first failure against nemo_resume.schedules.cosine's pure mirror."""
    mirror = first_failure(f, start, end)
    ours = mirror.step if mirror else None
    theirs = failure.step if failure else None
    if ours != theirs:
        return [f"nemo_resume.schedules.cosine predicts a failure at step {ours}, NeMo's class at {theirs}; NeMo's is reported"]
    return []


def _request_notes(state: CosineState) -> list[str]:
    """What ScheduleRequest (the validated path) would say about these values: it names the fix."""
    lr = state.base_lrs[0]
    mults = tuple(b / lr for b in state.base_lrs[1:]) if lr > 0 else ()
    constant = constant_steps_note(state.max_steps, state.warmup_steps, state.constant_steps)
    notes = [constant] if constant else []
    try:
        ScheduleRequest(lr, state.min_lr, state.max_steps, state.warmup_steps, state.constant_steps, mults)
    except NemoResumeError as exc:
        notes.append(f"ScheduleRequest refuses this config: {exc}")
    return notes
