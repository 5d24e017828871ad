"""Resuming a cooldown run's own checkpoint: the cooldown it holds continues to its end, exactly.

The cooldown run is real: the Lightning stand-in resumes the finished 300-step run's step-200 checkpoint with the
CooldownScheduler the planner chose (1-sqrt, 40 steps to 1e-6, so it ends at step 240) and is stopped after step
220, so its checkpoints (210, 220) hold the cooldown's own scheduler state, saved by Lightning.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nemo_resume.check import check_plan
from nemo_resume.cli.check_cmd import main as check_main
from nemo_resume.cli.plan_cmd import main as plan_main
from nemo_resume.planning import plan_resume
from nemo_resume.planning.resume_plan import POLICY_REFUSED
from nemo_resume.schedules.cooldown import cooldown_lrs, cooldown_module
from nemo_resume.schedules.request import ScheduleRequest

pytestmark = pytest.mark.nemo

STOPPED, END = 220, 240
SAME = ["--lr-policy", "cooldown", "--decay-steps", "40", "--decay-type", "1-sqrt"]


@pytest.fixture(scope="module")
def cooldown_run(finished_run, finished_config, tmp_path_factory):
    """(the cooldown the run was started with, its SmokeResult, its SmokeConfig): interrupted at step 220 of 240."""
    from nemo_resume.smoke.train import train

    request = ScheduleRequest(lr=1e-3, min_lr=1e-6, max_steps=40, decay_steps=40, decay_type="1-sqrt")
    plan = plan_resume(finished_run.log_dir, request, policy="cooldown")
    assert plan.ok and plan.cooldown is not None, plan.problems
    cfg = finished_config.with_(max_steps=plan.request.max_steps, checkpoint_every=10,
                                lr_scheduler=cooldown_module(plan.cooldown).build())
    run = train(cfg, tmp_path_factory.mktemp("cooldown"), resume_from=Path(plan.checkpoint), stop_after_step=STOPPED)
    assert run.error is None, run.error
    return plan.cooldown, run, cfg


def _request(**kw) -> ScheduleRequest:
    return ScheduleRequest(**{"lr": 1e-3, "min_lr": 1e-6, "max_steps": 1000, **kw})


@pytest.mark.parametrize(("policy", "kw"), [
    ("auto", {}), ("keep", {}), ("cooldown", dict(max_steps=40, decay_steps=40, decay_type="1-sqrt")),
])
def test_auto_keep_and_the_same_cooldown_continue_the_checkpoints_cooldown(cooldown_run, policy, kw):
    started, run, _ = cooldown_run
    plan = plan_resume(run.log_dir, _request(**kw), policy=policy)
    assert plan.ok, plan.problems
    assert plan.resume_step == STOPPED and plan.cooldown == started  # restored from the checkpoint, every value
    assert plan.request.max_steps == END and plan.decision.policy == "cooldown" and plan.target is None
    assert "continues the 1-sqrt cooldown started at step 200" in plan.decision.notes[0]
    # the LR the interrupted run's scheduler saved at its last checkpoint, and the one it trained with before
    assert plan.planned_lrs(STOPPED) == list(plan.choice.checkpoint.state.scheduler.last_lrs)
    assert plan.planned_lrs(STOPPED - 1) == run.lrs[STOPPED - 1]
    assert all(plan.planned_lrs(t) == cooldown_lrs(started, t) for t in range(STOPPED, END + 1))
    # the pre-launch check builds the module with these values, restores the checkpoint into it, steps it to 240
    result = check_plan(plan)
    assert result.ok, [c for c in result.checks if c.ok is not True]
    curve = result.curve("planned")
    assert [int(s) for s in curve.steps] == list(range(STOPPED, END + 1)) and result.jump.relative == 0.0
    assert all(list(row) == cooldown_lrs(started, int(s)) for s, row in zip(curve.steps, curve.lrs))


def test_a_given_max_steps_does_not_move_the_cooldowns_end_and_is_listed(cooldown_run):
    plan = plan_resume(cooldown_run[1].log_dir, _request(), policy="auto")
    assert plan.request.max_steps == END
    assert any("max_steps: requested 1000, the cooldown's 240" in n for n in plan.decision.notes)


def test_schedule_flags_the_checkpoints_cooldown_overrides_do_not_refuse_its_continuation(cooldown_run):
    """The recipes' defaults (warmup 500) with a short --max-steps are an invalid schedule on their own; the
    checkpoint's cooldown wins, so the pre-launch plan continues it instead of refusing (regression: refused)."""
    from nemo_resume.check.prelaunch import plan_and_check

    unchecked = ScheduleRequest(lr=1e-3, min_lr=1e-6, max_steps=30, warmup_steps=500, checked=False)
    plan, check, error = plan_and_check(cooldown_run[1].log_dir, unchecked, resume="auto", policy="auto")
    assert error is None and plan.ok and check.ok, (error, plan.problems)
    assert plan.cooldown == cooldown_run[0] and plan.request.max_steps == END


def test_the_continued_cooldown_trains_on_its_planned_lrs_to_its_end(cooldown_run, tmp_path):
    """What a recipe runs: the module with the plan's values, the checkpoint restored into it, and the resume-LR
    check (PlannedLRCheck from ``planned_lrs``) at the first two steps; it would stop an off-plan run."""
    from nemo_resume.callback import PlannedLRCheck
    from nemo_resume.smoke.train import train

    started, run, cfg = cooldown_run
    plan = plan_resume(run.log_dir, _request(), policy="auto")
    steps = [STOPPED, STOPPED + 1]
    guard = PlannedLRCheck(steps=steps, lrs=[plan.planned_lrs(s) for s in steps])
    resumed = train(cfg.with_(max_steps=plan.request.max_steps, lr_scheduler=cooldown_module(plan.cooldown).build()),
                    tmp_path, resume_from=Path(plan.checkpoint), callbacks=[guard])
    assert resumed.error is None, resumed.error
    assert resumed.final_step == END and min(resumed.lrs) == STOPPED
    assert all(resumed.lrs[t] == cooldown_lrs(started, t) for t in resumed.lrs)


@pytest.mark.parametrize(("flags", "texts"), [
    (["--lr-policy", "cooldown", "--decay-steps", "20"],
     ["decay_steps: checkpoint 40, requested 20", "decay_type: checkpoint '1-sqrt', requested 'linear'"]),
    ([*SAME[:-1], "cosine", "--min-lr", "1e-7"],
     ["min_lr: checkpoint 1e-06, requested 1e-07", "decay_type: checkpoint '1-sqrt', requested 'cosine'"]),
    (["--lr-policy", "smooth", "--max-steps", "400"], ["--lr-policy smooth cannot replace it"]),
    (["--lr-policy", "recompute", "--max-steps", "400"], ["--lr-policy recompute cannot replace it"]),
    (["--lr-policy", "strict", "--max-steps", "240"], ["--lr-policy strict cannot replace it"]),
])
def test_another_cooldown_or_a_cosine_policy_is_refused_saying_what_works(cooldown_run, capsys, flags, texts):
    assert plan_main([str(cooldown_run[1].log_dir), "--lr", "1e-3", "--min-lr", "1e-6", *flags, "--json"]) == 1
    (problem,) = [p for p in json.loads(capsys.readouterr().out)["problems"] if p["severity"] == "error"]
    assert problem["code"] == POLICY_REFUSED and "SCHEDULER_MISMATCH" not in problem["message"]
    for text in [*texts, "--lr-policy auto (the default) or keep, or --lr-policy cooldown --decay-steps 40 "
                 "--decay-type 1-sqrt --min-lr 1e-06, to continue it to step 240"]:
        assert text in problem["message"]


def test_the_cli_plan_the_plan_file_and_the_check_agree(cooldown_run, tmp_path, capsys):
    run_dir, out = str(cooldown_run[1].log_dir), tmp_path / "plan.json"
    assert plan_main([run_dir, "--lr", "1e-3", "--min-lr", "1e-6", *SAME, "--json", "-o", str(out)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["policy"] == "cooldown" and doc["request"]["max_steps"] == END and doc["resume_step"] == STOPPED
    assert "continues the 1-sqrt cooldown started at step 200" in doc["notes"][0]
    assert doc["restored"]["cooldown_start_step"] == 200 and doc["schedule"][-1] == [END, [1e-6]]
    assert check_main(["--plan", str(out), "--json"]) == 0
    from_file = json.loads(capsys.readouterr().out)
    assert check_main(["--run", run_dir, "--lr", "1e-3", "--min-lr", "1e-6", "--max-steps", "240", "--json"]) == 0
    from_run = json.loads(capsys.readouterr().out)
    assert from_file["key_steps"] == from_run["key_steps"] and from_file["resume"]["cooldown"]["cooldown_steps"] == 40
