"""The pre-launch check of ``--lr-policy cooldown``: the scheduler the run builds (CooldownLR), restored from
the checkpoint's NeMo CosineAnnealing state as Lightning restores it, stepped to the new end."""

from __future__ import annotations

import json

import pytest

from nemo_resume.check import check_plan, plan_and_check
from nemo_resume.cli.check_cmd import main as check_main
from nemo_resume.planning import plan_resume
from nemo_resume.schedules.cooldown import cooldown_lrs
from nemo_resume.schedules.request import ScheduleRequest

pytestmark = pytest.mark.nemo


def _request(decay_type: str = "1-sqrt", **kw) -> ScheduleRequest:
    return ScheduleRequest(**{"lr": 1e-3, "min_lr": 1e-6, "max_steps": 40, "decay_steps": 40, "decay_type": decay_type, **kw})


@pytest.mark.parametrize("decay_type", ["linear", "cosine", "1-sqrt"])
def test_the_check_steps_the_real_scheduler_through_the_planned_cooldown(finished_run, decay_type):
    plan, result, error = plan_and_check(finished_run.log_dir, _request(decay_type), resume="auto", policy="cooldown")
    assert error is None and plan.ok and result.ok, [c for c in result.checks if c.ok is not True]
    assert (result.start, result.end) == (201, 240) and result.scheduler == "nemo_resume's CooldownScheduler"
    curve = result.curve("planned")
    assert [int(s) for s in curve.steps] == list(range(200, 241))  # every step, from the resume step
    for step, row in zip(curve.steps, curve.lrs):
        assert list(row) == cooldown_lrs(plan.cooldown, int(step))
    assert result.jump.relative == 0.0 and list(result.jump.before) == list(plan.cooldown.start_lrs)
    assert {c.name for c in result.checks} >= {"cooldown_as_planned", "decay_non_increasing", "ends_at_min_lr"}


def test_a_restore_that_brings_back_another_cooldown_fails_the_check(finished_run):
    """The checkpoint's saved state wins over the config for every field it has: a saved cooldown (a cooldown
    run's checkpoint) replaces the planned one, and the check says so instead of passing."""
    from dataclasses import replace

    from nemo_resume.check.cooldown import check_cooldown
    from nemo_resume.check.result import ResumePoint

    plan = plan_resume(finished_run.log_dir, _request(), policy="cooldown")
    other = replace(plan.cooldown, decay_steps=20)
    restored = {**plan.restored_state, **other.to_json()}
    result = check_cooldown(plan.config_state(), ResumePoint(200, restored, cooldown=plan.cooldown), 0.01)
    failed = {c.name for c in result.checks if c.ok is False}
    assert "cooldown_as_planned" in failed and "schedule_spans_training" in failed


def test_check_run_and_check_plan_give_the_plans_verdict(finished_run, tmp_path, capsys):
    from nemo_resume.cli.plan_cmd import main as plan_main

    flags = ["--lr", "1e-3", "--min-lr", "1e-6", "--lr-policy", "cooldown", "--decay-steps", "40", "--decay-type", "linear"]
    out = tmp_path / "plan.json"
    assert plan_main([str(finished_run.log_dir), *flags, "-o", str(out), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["policy"] == "cooldown" and doc["request"]["max_steps"] == 240 and doc["request"]["decay_steps"] == 40
    assert check_main(["--plan", str(out), "--json"]) == 0
    from_file = json.loads(capsys.readouterr().out)
    assert check_main(["--run", str(finished_run.log_dir), *flags, "--json"]) == 0
    from_run = json.loads(capsys.readouterr().out)
    assert from_file["key_steps"] == from_run["key_steps"] and from_file["resume"]["cooldown"]["cooldown_steps"] == 40
    assert check_plan(plan_resume(finished_run.log_dir, _request("linear"), policy="cooldown")).ok
