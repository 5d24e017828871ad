"""The LR the run trained at, step by step, against the plan: the first step and group that differ, and by how much.

The planned LR has one definition, the plan's own (:meth:`ResumePlan.planned_lrs`: the pure mirror of NeMo's
scheduler the planner and the callback use); for the schedules only NeMo's class steps (``--schedule NAME``), the
pre-launch check's curve of NeMo's real scheduler, at the steps it probed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nemo_resume.planning import ResumePlan
from nemo_resume.schedules.cosine import ScheduleFailure, relative_jump

#: Largest relative difference between a logged and a planned LR that is not a divergence. TensorBoard stores
#: float32 (about 7 significant digits); a schedule that is not the plan's differs by orders of magnitude more.
LR_REL_TOL = 1e-4


@dataclass(frozen=True)
class Divergence:
    """The first logged LR that is not the plan's: ``group`` is the param group's index in the log."""

    step: int
    group: int
    actual: float
    planned: float

    @property
    def relative(self) -> float:
        """``|actual - planned| / planned`` (infinite where the plan says 0)."""
        return relative_jump([self.planned], [self.actual])

    def to_json(self) -> dict[str, Any]:
        return {"step": self.step, "group": self.group, "actual": self.actual, "planned": self.planned,
                "relative": self.relative}


@dataclass(frozen=True)
class PlanComparison:
    """One plan against the steps it planned.

    Attributes:
        plan: the plan file.
        attempt: the attempt compared (0-based), or None for the run's final timeline (``--plan``).
        compared: the steps that had both a logged and a planned LR.
        first: the first divergence, or None.
        planned: step -> the planned LR of every group (for the plot).
        note: why fewer steps were compared than logged, if so.
    """

    plan: str
    attempt: int | None
    compared: tuple[int, ...]
    first: Divergence | None
    planned: Mapping[int, tuple[float, ...]]
    note: str | None = None

    def to_json(self) -> dict[str, Any]:
        steps = self.compared
        return {"plan": self.plan, "attempt": self.attempt, "from_step": steps[0] if steps else None,
                "to_step": steps[-1] if steps else None, "steps_compared": len(steps),
                "divergence": self.first.to_json() if self.first else None, "note": self.note}


def planned_lrs(plan: ResumePlan, steps: Sequence[int]) -> tuple[dict[int, tuple[float, ...]], str | None]:
    """The plan's LRs at ``steps`` and a note where some have none.

    ``planned_lrs`` raises where NeMo's scheduler would: the plan is compared up to that step.
    """
    out: dict[int, tuple[float, ...]] = {}
    for step in steps:
        try:
            lrs = plan.planned_lrs(step)
        except ScheduleFailure as exc:
            return out, f"the plan's schedule makes NeMo raise at step {exc.failure.step}: compared up to it"
        if lrs is None:
            return _checked_curve(plan, steps)
        out[step] = tuple(lrs)
    return out, None


def _checked_curve(plan: ResumePlan, steps: Sequence[int]) -> tuple[dict[int, tuple[float, ...]], str | None]:
    """A schedule only NeMo's class steps: the check's curve of it, at the steps both have."""
    from nemo_resume.check.prelaunch import check_plan

    check = check_plan(plan, max_jump=plan.max_jump)
    curve = check.curve("planned") or check.curve("restored") or check.curve("schedule")
    probed = {} if curve is None else {int(s): tuple(float(x) for x in row) for s, row in zip(curve.steps, curve.lrs)}
    out = {s: probed[s] for s in steps if s in probed}
    return out, f"{plan.request.schedule}: compared at the {len(out)} steps the schedule check probed"


def _within(actual: float, planned: float) -> bool:
    return relative_jump([planned], [actual]) <= LR_REL_TOL


def divergence(step: int, actual: Sequence[float], planned: Sequence[float]) -> Divergence | None:
    """The first group whose logged LR is not the plan's at ``step``.

    Group by group when the log has as many groups as the plan (a resume: the checkpoint's groups, in order).
    Otherwise (a fresh plan has one group per multiplier; megatron-core also splits each by weight decay) every
    logged LR must be one of the planned ones; the nearest is reported.
    """
    if len(actual) == len(planned):
        pairs = list(zip(actual, planned))
    else:
        pairs = [(a, min(planned, key=lambda p: abs(p - a))) for a in actual]
    return next((Divergence(step, g, a, p) for g, (a, p) in enumerate(pairs) if not _within(a, p)), None)


def compare(actual: Mapping[int, tuple[float, ...]], plan: ResumePlan, label: str, attempt: int | None) -> PlanComparison:
    """The logged LRs ``actual`` (step -> every group's) against ``plan`` over its horizon (its resume step to
    ``max_steps``)."""
    steps = [s for s in sorted(actual) if plan.resume_step <= s <= plan.request.max_steps]
    planned, note = planned_lrs(plan, steps)
    compared = tuple(s for s in steps if s in planned)
    first = next((d for s in compared if (d := divergence(s, actual[s], planned[s])) is not None), None)
    if not compared and note is None:
        note = f"no logged step in the plan's horizon (steps {plan.resume_step}-{plan.request.max_steps})"
    return PlanComparison(label, attempt, compared, first, planned, note)
