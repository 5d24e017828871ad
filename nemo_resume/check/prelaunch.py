"""The check every launch runs first: the plan, stepped through NeMo's real scheduler."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from nemo_resume.check.cooldown import check_cooldown
from nemo_resume.check.result import Check, CheckResult, ResumePoint
from nemo_resume.check.schedule import check_schedule
from nemo_resume.constants import MAX_LR_JUMP
from nemo_resume.errors import NemoResumeError
from nemo_resume.planning import MODE_RESUME, ResumePlan, plan_resume
from nemo_resume.planning.new_run import NewRun
from nemo_resume.planning.resume_plan import jump_chosen_by, with_compat
from nemo_resume.schedules.cooldown import POLICY as COOLDOWN
from nemo_resume.schedules.request import ScheduleRequest


def check_plan(plan: ResumePlan, *, max_jump: float = MAX_LR_JUMP) -> CheckResult:
    """Check ``plan`` exactly as the run will execute it.

    A fresh start is checked from step 0 with the requested schedule. A resume builds the
    scheduler from the request (what the config gives), restores the checkpoint's saved state
    over it (what Lightning does), then applies the plan's target (what the callback does).
    Any other schedule (``plan.request.is_cosine`` False) is checked with its own NeMo module,
    the checkpoint's saved state restored over it and nothing rewritten (``--lr-policy keep``).
    A jump the plan chose (``recompute``) is reported, not refused, as the planner does. A plan the planner
    refused fails its check too (``plan_safe``, with the planner's reasons); the rest of the check then
    shows what NeMo's own restore would run. So the check passes exactly when ``plan`` exits 0.
    """
    result = _check(plan, max_jump)
    refused = [p for p in plan.problems if p.severity == "error"]
    if not refused:
        return result
    step = min((p.step for p in refused if p.step is not None), default=None)
    verdict = Check("plan_safe", False, step, "the planner refuses this resume: " + "; ".join(p.message for p in refused))
    return replace(result, checks=(verdict, *result.checks))


def _check(plan: ResumePlan, max_jump: float) -> CheckResult:
    resume = None
    if not plan.request.is_cosine:
        request = plan.request
        if plan.mode == MODE_RESUME and plan.restored is not None:
            resume = ResumePoint(plan.resume_step, plan.restored)
            # shaped like the checkpoint's groups (megatron-core's weight-decay split adds some)
            request = request.for_groups(plan.restored.get("base_lrs") or [])
        return check_schedule(request, resume=resume, max_jump=max_jump)
    restored = plan.restored_state
    if plan.cooldown is not None and restored is not None:  # its own scheduler, restored from the checkpoint's state
        return check_cooldown(plan.config_state(), ResumePoint(plan.resume_step, restored, cooldown=plan.cooldown), max_jump)
    if plan.mode == MODE_RESUME and plan.saved is not None and restored is not None:
        resume = ResumePoint(plan.resume_step, restored, plan.target, jump_chosen_by(plan.decision))
    return check_schedule(plan.config_state(), resume=resume, max_jump=max_jump)


def plan_and_check(
    run_dir: Path | str, unchecked: ScheduleRequest, *, resume: str, policy: str, max_jump: float = MAX_LR_JUMP,
    new_run: NewRun | None = None,
) -> tuple[ResumePlan, CheckResult, str | None]:
    """Plan ``unchecked`` against ``run_dir`` and check the plan; also return why the request is invalid.

    ``new_run``: the run's layout, compared with the checkpoint's (:func:`with_compat`) before the check, so the
    check's verdict includes what the layout breaks.

    An invalid schedule is still planned, as NeMo would run it (the checkpoint's state kept, no
    plan applied), and checked, so the report shows the step it fails at and ``--launch-anyway``
    can reproduce a known-bad run on purpose.
    """
    try:
        request, error = replace(unchecked, checked=True), None
    except NemoResumeError as exc:
        if policy == COOLDOWN:  # a cooldown has no "as NeMo would run it" to fall back on
            raise
        request, error = unchecked, str(exc)
    plan = plan_resume(
        run_dir, request, resume=resume, policy="keep" if error else policy, max_jump=max_jump, validate=False
    )
    if error and plan.mode == MODE_RESUME and (policy == "keep" or plan.cooldown is not None):
        # the checkpoint's schedule runs (keep, or an interrupted cooldown continued): the plan lists what it ignores
        error = None
    if new_run is not None:
        plan = with_compat(plan, new_run)
    return plan, check_plan(plan, max_jump=max_jump), error
