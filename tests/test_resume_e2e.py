"""End to end on a real CPU NeMo run: the incident, stock NeMo's failed fix, and the planned resume."""

from __future__ import annotations

import pytest

from nemo_resume.planning import plan_resume
from nemo_resume.schedules.request import ScheduleRequest

pytestmark = [pytest.mark.nemo, pytest.mark.slow]

from nemo_resume.constants import NEMO_BELOW_MIN_LR_TEXT as NEMO_MIN_LR_ERROR  # noqa: E402

FIXED = ScheduleRequest(lr=1e-5, min_lr=1e-6, max_steps=1000, warmup_steps=500)


def test_the_incident_dies_at_step_501_and_stock_resume_with_lower_min_lr_dies_again(incident_run, incident_resume_run):
    assert incident_run.error is not None and NEMO_MIN_LR_ERROR in incident_run.error
    assert max(incident_run.lrs) == 500  # the step-501 scheduler.step() raised after step 500's update
    assert incident_resume_run.error is not None and NEMO_MIN_LR_ERROR in incident_resume_run.error
    assert max(incident_resume_run.lrs) == 500


def test_planned_resume_of_the_incident_reaches_max_steps_without_a_jump(tmp_path, incident_run, incident_config):
    from nemo_resume.callback import ResumeScheduleCallback
    from nemo_resume.smoke.train import train

    plan = plan_resume(incident_run.log_dir, FIXED)
    assert plan.ok and plan.resume_step == 499 and plan.decision.policy == "smooth"
    callback = ResumeScheduleCallback.from_state(plan.target, plan.resume_step)
    result = train(
        incident_config.with_(min_lr=1e-6),
        tmp_path,
        resume_from=plan.checkpoint,
        callbacks=[callback],
    )
    assert result.error is None, result.error
    assert result.final_step == 1000
    steps = sorted(result.lrs)
    assert steps[0] == 499 and steps[-1] == 999
    lrs = [result.lrs[s][0] for s in steps]
    assert all(lr >= 1e-6 * (1 - 1e-9) for lr in lrs)
    before = incident_run.lrs[499][0]
    assert lrs[0] == pytest.approx(before, rel=1e-9)  # the first resumed step uses the checkpoint's LR
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))  # smooth: decays from there, never jumps up
    assert abs(lrs[1] - lrs[0]) / lrs[0] < 1e-3
    assert callback.applied["before"]["min_lr"] == 3e-5 and callback.applied["after"]["min_lr"] == 1e-6


def test_resume_with_weight_decay_split_groups_plans_checks_and_finishes(tmp_path, incident_config):
    """megatron-core splits param groups by weight decay: two groups at the same LR, one requested."""
    from nemo_resume.callback import ResumeScheduleCallback
    from nemo_resume.check.prelaunch import check_plan
    from nemo_resume.smoke.train import train

    split = incident_config.with_(lr_mults=(1.0,))
    crashed = train(split, tmp_path / "first")
    assert crashed.error is not None and NEMO_MIN_LR_ERROR in crashed.error
    plan = plan_resume(crashed.log_dir, FIXED)
    assert plan.ok, plan.problems
    assert len(plan.target.base_lrs) == 2
    check = check_plan(plan)
    assert check.ok, check.first_problem
    result = train(split.with_(min_lr=1e-6), tmp_path / "resumed", resume_from=plan.checkpoint,
                   callbacks=[ResumeScheduleCallback.from_state(plan.target, plan.resume_step)])
    assert result.error is None and result.final_step == 1000
    assert all(a == b >= 1e-6 * (1 - 1e-9) for a, b in result.lrs.values())
