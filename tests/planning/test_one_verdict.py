"""The planner and the pre-launch check give one verdict, and real stepping of NeMo's scheduler agrees with it.

Random checkpoints (a saved CosineAnnealing state at a step) and random requests, every policy: the plan is
safe exactly when the check of that plan passes; a safe plan runs through NeMo's real scheduler, stepped
one step at a time, without an error, every group at or above min_lr after warmup and at min_lr at the end;
a refusal that says a schedule fails at step N names the step where NeMo really raises.
"""

from __future__ import annotations

import math
import os

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from nemo_resume.errors import NemoResumeError
from nemo_resume.planning.choice import Choice
from nemo_resume.planning.resume_plan import MODE_RESUME, ResumePlan, plan_schedule
from nemo_resume.schedules.cosine import CosineState, lr_at
from nemo_resume.schedules.request import ScheduleRequest

pytest.importorskip("nemo.lightning.pytorch.optim.lr_scheduler")
from nemo_resume.check import ResumePoint  # noqa: E402
from nemo_resume.check.prelaunch import check_plan  # noqa: E402
from tests.support.naive_nemo import Naive  # noqa: E402

pytestmark = pytest.mark.nemo

# CI replays a few thousand derandomized examples; a local run explores fewer, new ones each time
# (NEMO_RESUME_VERDICT_EXAMPLES=N explores more).
EXAMPLES = int(os.environ.get("NEMO_RESUME_VERDICT_EXAMPLES", 2000 if os.environ.get("CI") else 300))
LRS = st.sampled_from([1e-6, 5e-6, 1e-5, 3e-5, 1e-4, 3e-4])


@st.composite
def resumes(draw):
    base = tuple(draw(st.lists(LRS, min_size=1, max_size=3)))
    saved = CosineState(
        base,
        draw(st.sampled_from([0.0, 1e-6, 1e-5, 3e-5])),
        draw(st.integers(1, 600)),
        draw(st.integers(0, 200)),
        draw(st.sampled_from([0, 0, 50])),
    )
    step = draw(st.integers(0, 700))
    try:
        lr_at(saved, step)
    except Exception:
        assume(False)  # a checkpoint cannot hold a step its own scheduler could not compute
    max_steps = draw(st.integers(step + 1, 900))
    warmup = draw(st.integers(0, max_steps))
    try:
        request = ScheduleRequest(
            draw(LRS),
            draw(st.sampled_from([0.0, 1e-7, 1e-6, 5e-6])),
            max_steps,
            warmup,
            draw(st.sampled_from([0, 0, 0, 30])),  # refused with several groups: the generator assumes it away
            tuple(b / base[0] for b in base[1:]),
        )
    except NemoResumeError:
        assume(False)
    policy = draw(st.sampled_from(["auto", "smooth", "recompute", "keep", "strict"]))
    return saved, step, request, policy


def _plan(saved, step, request, policy) -> ResumePlan:
    decision, problems = plan_schedule(saved, step, request, policy)
    return ResumePlan(request, Choice(None, "a synthetic checkpoint"), MODE_RESUME, "ckpt", step, saved, decision, problems)


def _stepped(plan: ResumePlan) -> Naive:
    restored = {**plan.saved.to_json(), "last_epoch": plan.resume_step}
    resume = ResumePoint(plan.resume_step, restored, plan.target)
    return Naive(plan.config_state(), resume).run_to(plan.request.max_steps)


@settings(max_examples=EXAMPLES, deadline=None)
@given(resumes())
def test_plan_is_safe_exactly_when_its_check_passes_and_real_stepping_agrees(case):
    saved, step, request, policy = case
    plan = _plan(saved, step, request, policy)
    try:
        result = check_plan(plan)
    except NemoResumeError:  # multipliers that do not fit the checkpoint's groups: bad input, exit 2 in both
        assert not plan.ok
        return
    failing = [(c.name, c.step, c.reason) for c in result.checks if c.ok is False]
    assert plan.ok == result.ok, ([p.message for p in plan.problems], failing)
    naive = _stepped(plan)
    if plan.ok:
        schedule = plan.schedule
        assert naive.failure is None, naive.failure
        for s, lrs in naive.lrs.items():
            if s > max(schedule.warmup_steps, step):  # the resume step itself holds the restored optimizer LR
                assert all(x >= schedule.min_lr * (1 - 1e-12) for x in lrs), (s, lrs)
        end = naive.lrs[request.max_steps]
        assert all(math.isclose(x, schedule.min_lr, rel_tol=1e-9, abs_tol=0.0) for x in end), end
    for p in plan.problems:
        if p.severity == "error" and "fails at step" in p.message:
            assert naive.failure_step == p.step, (p.message, naive.failure)


def test_the_issues_recompute_jump_is_reported_by_both_not_refused():
    """issue 22's first reproducer, as plan data: lr 5e-4 -> 1e-3 with a longer warmup, resumed at 150."""
    saved = CosineState((5e-4,), 5e-5, 200, 20)
    request = ScheduleRequest(1e-3, 5e-5, 200, 40)
    plan = _plan(saved, 150, request, "recompute")
    assert plan.ok and [p.code for p in plan.problems] == ["LR_JUMP"] and plan.problems[0].severity == "warning"
    assert "chosen by --lr-policy recompute" in plan.problems[0].message
    jump = next(c for c in check_plan(plan).checks if c.name == "no_jump_at_resume")
    assert jump.ok is True and "chosen by --lr-policy recompute" in jump.reason
    # a tighter --max-jump does not refuse a jump the user chose, in either
    assert check_plan(plan, max_jump=0.0).ok
    assert plan_schedule(saved, 150, request, "recompute", max_jump=0.0)[1][0].severity == "warning"


def test_smooth_with_a_multiplier_continues_each_groups_own_lr_and_the_check_agrees():
    """issue 22's second reproducer: NeMo's absolute min_lr floor moved the groups' ratio off 0.5."""
    saved = CosineState((2e-4, 1e-4), 1e-6, 150, 10)
    request = ScheduleRequest(2e-4, 0.0, 260, 10, 0, (0.5,))
    plan = _plan(saved, 100, request, "smooth")
    current = lr_at(saved, 100)
    assert current[1] / current[0] != pytest.approx(0.5, rel=1e-6)  # the floor moved them
    result = check_plan(plan)
    assert plan.ok and result.ok, [c for c in result.checks if c.ok is False]
    assert any("follows the plan's" in n for n in result.notes)
    assert any(n.startswith("each group continues from its own current LR") for n in plan.decision.notes)


def test_keep_with_a_shorter_max_steps_is_refused_by_the_planner_as_by_the_check():
    saved = CosineState((1e-5,), 0.0, 490, 187)
    request = ScheduleRequest(5e-6, 0.0, 316, 38)
    plan = _plan(saved, 49, request, "keep")
    assert not plan.ok and "before the schedule reaches min_lr" in plan.problems[0].message
    assert plan.problems[0].step == 316
    assert not check_plan(plan).ok
