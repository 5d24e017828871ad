"""The checks every schedule gets, whichever NeMo scheduler runs it.

Each rule reads the probed curve (:mod:`nemo_resume.check.probe`) and returns one named
:class:`Check`; the scheduler-specific rules live beside their pipeline (``cosine``, ``other_schedulers``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from nemo_resume.check.probe import evaluate, lr_or_none, one_group
from nemo_resume.check.result import Check, CheckName, CheckResult, Curve, Jump, ResumePoint, StepFailure
from nemo_resume.constants import RATIO_REL_TOL
from nemo_resume.schedules.cosine import CosineState
from nemo_resume.schedules.request import ScheduleRequest

# Slack for "at or above min_lr" / "non-increasing": scheduler arithmetic can wobble in the last bit.
FLOAT_SLACK = 1e-12

KeySteps = tuple[tuple[int, str, tuple[float, ...] | None], ...]


def fmt(lrs: Sequence[float] | np.ndarray | None) -> str:
    if lrs is None:
        return "-"
    return "[" + ", ".join(f"{float(x):.6g}" for x in lrs) + "]"


def upto(curve: Curve, start: int, end: int) -> str:
    """The range a passing check vouches for: up to NeMo's first failure, else the whole horizon."""
    return f"up to step {curve.failure.step - 1}" if curve.failure else f"from step {start} to {end}"


def common_checks(
    curve: Curve,
    resume: ResumePoint | None,
    jump: Jump | None,
    start: int,
    end: int,
    *,
    warmup_steps: int,
    min_lr: float,
    max_jump: float,
    scheduler: str,
) -> tuple[Check, ...]:
    """The checks every scheduler gets, in report order: NeMo runs, finite, at or above min_lr, no jump."""
    span = upto(curve, start, end)
    return (
        check_nemo_runs(curve.failure, start, end, scheduler),
        check_finite(curve, start, span),
        check_min_lr(curve, start, warmup_steps, min_lr, span),
        check_jump(resume, jump, max_jump),
    )


def check_nemo_runs(failure: StepFailure | None, start: int, end: int, scheduler: str) -> Check:
    if failure is None:
        return Check("nemo_runs", True, None, f"{scheduler} computes an LR at every step from {start} to {end}")
    who = "the plan" if failure.when == "apply" else scheduler
    return Check("nemo_runs", False, failure.step, f"{who} raises at step {failure.step}: {failure.error}")


def check_finite(curve: Curve, start: int, span: str) -> Check:
    keep = curve.steps >= start
    steps, lrs = curve.steps[keep], curve.lrs[keep]
    bad = ~np.isfinite(lrs).all(axis=1)
    if bad.any():
        i = int(np.argmax(bad))
        return Check("finite", False, int(steps[i]), f"LR is {lrs[i].tolist()} at step {int(steps[i])}")
    return Check("finite", True, None, f"every LR is finite {span}")


def check_min_lr(curve: Curve, start: int, warmup_steps: int, min_lr: float, span: str) -> Check:
    """Every group at or above ``min_lr`` once the (first) warmup is over."""
    keep = curve.steps >= start
    steps, lrs = curve.steps[keep], curve.lrs[keep]
    after = steps > warmup_steps if warmup_steps > 0 else np.ones_like(steps, dtype=bool)
    floor = min_lr - FLOAT_SLACK * max(abs(min_lr), 1e-300)
    below = after[:, None] & (lrs < floor)
    if below.any():
        i, g = map(int, np.argwhere(below)[0])
        return Check(
            "at_or_above_min_lr", False, int(steps[i]),
            f"group {g} LR {lrs[i, g]:.6g} < min_lr {min_lr:.6g} at step {int(steps[i])}",
        )
    return Check("at_or_above_min_lr", True, None, f"every group at or above min_lr {min_lr:.6g} after warmup, {span}")


def check_jump(resume: ResumePoint | None, jump: Jump | None, max_jump: float) -> Check:
    if resume is None:
        return Check("no_jump_at_resume", True, None, "not a resume")
    if jump is None or jump.before is None:
        return Check("no_jump_at_resume", None, resume.step, f"no LR to compare at the resume step {resume.step}")
    pct = "inf" if jump.relative is None or math.isinf(jump.relative) else f"{100 * jump.relative:.4g}%"
    text = (
        f"LR at resume step {jump.step}: {fmt(jump.before)} restored -> {fmt(jump.after)} "
        f"{'planned' if resume.planned else 'continuing'} ({pct} change, limit {100 * max_jump:g}%)"
    )
    within = jump.relative is not None and jump.relative <= max_jump
    if not within and resume.jump_chosen_by:
        return Check("no_jump_at_resume", True, None, f"{text}; chosen by {resume.jump_chosen_by}")
    return Check("no_jump_at_resume", within, None if within else jump.step, text)


def check_group_ratios(
    live: Any,
    curve: Curve,
    start: int,
    span: str,
    build_one: Callable[[float], Any],
    explain: Callable[[float, float], str] = lambda got, group0: "",
) -> Check:
    """Each group gets the LR its own scheduler would give it alone (see :func:`probe.one_group`).

    ``build_one(lr)`` makes a one-group scheduler of the live one's class; ``explain(got, group 0's LR)``
    names a known cause of a difference.
    """
    n = len(live.base_lrs)
    if n == 1:
        return Check("group_ratios_kept", True, None, "one param group")
    keep = curve.steps >= start
    steps, lrs = curve.steps[keep], curve.lrs[keep]
    for g in range(1, n):
        own = evaluate(one_group(live, g, build_one), [int(x) for x in steps], "schedule")
        for i, step in enumerate(own.steps):
            got, want = float(lrs[i, g]), float(own.lrs[i, 0])
            if not math.isclose(got, want, rel_tol=RATIO_REL_TOL, abs_tol=1e-300):
                return Check(
                    "group_ratios_kept", False, int(step),
                    f"group {g} gets {got:.6g} at step {int(step)}, its own schedule "
                    f"(base {float(live.base_lrs[g]):.6g}) gives {want:.6g}{explain(got, float(lrs[i, 0]))}",
                )
    return Check("group_ratios_kept", True, None, f"every group follows its own base LR {fmt(live.base_lrs)}, {span}")


def failed_early(
    request: CosineState | ScheduleRequest,
    resume: ResumePoint | None,
    failure: StepFailure,
    start: int,
    end: int,
    notes: Sequence[str],
    names: Sequence[CheckName],
    scheduler: str,
) -> CheckResult:
    """NeMo raised before any LR of the checked range existed: only that failure is known."""
    skipped = "not checked: " + ("the scheduler could not be built" if failure.when == "build" else "the plan fails")
    checks = (check_nemo_runs(failure, start, end, scheduler), *(Check(n, None, None, skipped) for n in names))
    failed = Curve("schedule", np.zeros(0, np.int64), np.zeros((0, len(request.base_lrs))), failure)
    return CheckResult(
        request=request, resume=resume, schedule=None, start=start, end=end, checks=checks, failure=failure,
        key_steps=((failure.step, "NeMo raises", None),), curves=(failed,), notes=tuple(notes), scheduler=scheduler,
    )


def key_steps(
    live: Any,
    marks: Mapping[int, Sequence[str]],
    resume: ResumePoint | None,
    start: int,
    end: int,
    failure: StepFailure | None,
) -> KeySteps:
    """``(step, labels, LRs or None where NeMo raises)`` for ``marks`` plus start, end, resume and failure."""
    labels: dict[int, list[str]] = {0: ["start"]}
    for step, names in marks.items():
        labels.setdefault(step, []).extend(names)
    labels.setdefault(end, []).append("max_steps")
    if resume is not None:
        labels.setdefault(resume.step, []).append("resume step" + (" (planned LR)" if resume.planned else ""))
        labels.setdefault(resume.step + 1, []).append("first step after resume")
    if failure is not None:
        labels.setdefault(failure.step, []).append("NeMo raises")
    low = start if resume is None else resume.step
    return tuple(
        (step, ", ".join(labels[step]), lr_or_none(live, step)) for step in sorted(s for s in labels if low <= s <= end)
    )
