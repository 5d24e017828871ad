"""The staged schedule in real NeMo CPU training: a checkpoint in stage 1, a resume into stage 2,
seed 004's checkpoint window, and what the inspector, the planner and the check make of it."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.nemo, pytest.mark.slow]

STAGES = "75:1e-3,50:1e-4"


def _cfg(**changes):
    from nemo_resume.schedules.staged import StagedLRScheduler
    from nemo_resume.smoke import SmokeConfig

    return SmokeConfig(
        lr=1e-3,
        max_steps=125,
        checkpoint_every=50,
        lr_mults=(0.5,),
        lr_scheduler=StagedLRScheduler(STAGES),
        name="staged",
    ).with_(**changes)


@pytest.fixture(scope="module")
def stage1_run(tmp_path_factory):
    """Stopped gracefully at step 60 (stage 1): checkpoints at 50 and the -last at 60."""
    from nemo_resume.smoke.train import train

    return train(_cfg(), tmp_path_factory.mktemp("stage1"), stop_after_step=60)


@pytest.fixture(scope="module")
def stage2_run(tmp_path_factory, stage1_run):
    """Resumed from step 50 into stage 2 with seed 004's window: --save-from-step 75 --checkpoint-every 1."""
    from nemo_resume.smoke.train import train

    cfg = _cfg(checkpoint_every=1, save_from_step=75, save_optim_on_train_end=True)  # as the recipes do
    return train(cfg, tmp_path_factory.mktemp("stage2"), resume_from=stage1_run.checkpoint_at(50))


def _request(stages=STAGES, **kw):
    from nemo_resume.schedules.lr_stages import parse_stages, total_steps
    from nemo_resume.schedules.request import ScheduleRequest

    st = parse_stages(stages)
    return ScheduleRequest(st[0].lr, 0.0, total_steps(st), lr_mults=(0.5,), schedule="staged", stages=st, **kw)


def test_stage_1_trains_at_the_first_lr_and_saves_its_stages(stage1_run):
    import torch

    assert stage1_run.ok and stage1_run.final_step == 60
    assert stage1_run.lrs[0] == [1e-3, 5e-4] and stage1_run.lrs[59] == [1e-3, 5e-4]
    sched = torch.load(stage1_run.checkpoint_at(50), map_location="cpu", weights_only=False)["lr_schedulers"][0]
    assert sched["stages"] == [
        {"steps": 75, "lr": 1e-3, "warmup_steps": 0},
        {"steps": 50, "lr": 1e-4, "warmup_steps": 0},
    ]
    assert sched["last_epoch"] == 50 and sched["base_lrs"] == [1e-3, 5e-4]


def test_resume_from_stage_1_switches_lr_at_step_75_and_saves_only_after_75_steps(stage2_run, stage1_run):
    from nemo_resume.smoke.train import checkpoint_step

    assert stage2_run.ok and stage2_run.final_step == 125
    assert stage2_run.resumed_from == stage1_run.checkpoint_at(50)
    assert sorted(stage2_run.lrs) == list(range(50, 125))
    assert stage2_run.lrs[74] == [1e-3, 5e-4]
    assert stage2_run.lrs[75] == pytest.approx([1e-4, 5e-5]) and stage2_run.lrs[124] == pytest.approx([1e-4, 5e-5])
    # seed 004: 50 checkpoints, one after each of the steps 75-124 (Lightning names them by steps done)
    steps = [checkpoint_step(p) for p in stage2_run.checkpoints() if not p.stem.endswith("-last")]
    assert sorted(steps) == list(range(76, 126))


def test_inspector_reports_the_stages_and_the_current_stage(stage1_run, stage2_run):
    from nemo_resume.inspection import inspect_path
    from nemo_resume.schedules.lr_stages import parse_stages

    (c50,) = [c for c in inspect_path(stage1_run.checkpoint_at(50)).checkpoints]
    assert c50.state.scheduler.stages == parse_stages(STAGES)
    (info,) = [p for p in c50.problems if p.code == "STAGED_SCHEDULE"]
    assert info.severity == "info" and info.step == 50
    assert (
        "stage 1 of 2 (LR 0.001, steps 0-74)" in info.message
        and "stage 2 starts at step 75 (LR 0.0001)" in info.message
    )
    (c100,) = inspect_path(stage2_run.checkpoint_at(100)).checkpoints
    assert any("stage 2 of 2 (LR 0.0001, steps 75-124)" in p.message for p in c100.problems)
    (end,) = inspect_path(stage2_run.checkpoint_at(125)).checkpoints
    assert any(p.code == "PAST_LAST_STAGE" and p.severity == "warning" for p in end.problems)


def test_planner_keeps_the_saved_stages_and_the_check_follows_them_into_stage_2(stage1_run):
    from nemo_resume.check.prelaunch import check_plan
    from nemo_resume.planning import plan_resume

    plan = plan_resume(stage1_run.log_dir, _request(), policy="auto")
    assert plan.ok and plan.resume_step == 60 and plan.decision.policy == "keep" and plan.target is None
    assert plan.restored["stages"][1] == {"steps": 50, "lr": 1e-4, "warmup_steps": 0}
    assert dict(plan.schedule_points()) == {
        60: [1e-3, 5e-4],
        74: [1e-3, 5e-4],
        75: pytest.approx([1e-4, 5e-5]),
        125: pytest.approx([1e-4, 5e-5]),
    }
    result = check_plan(plan)
    assert result.ok and result.start == 61 and result.scheduler == "nemo_resume's StagedLRScheduler"
    assert dict((s, lrs) for s, _, lrs in result.key_steps)[75] == pytest.approx((1e-4, 5e-5))


@pytest.mark.parametrize("policy", ["smooth", "recompute"])
def test_planner_refuses_to_rewrite_a_staged_schedule(stage1_run, policy):
    from nemo_resume.planning import plan_resume

    plan = plan_resume(stage1_run.log_dir, _request(), policy=policy)
    (problem,) = plan.problems
    assert not plan.ok and problem.code == "POLICY_REFUSED"
    assert (
        "--schedule staged is not NeMo's CosineAnnealing" in problem.message
        and "use --lr-policy keep" in problem.message
    )


def test_changed_stages_are_refused_under_auto_and_shown_as_ignored_under_keep(stage1_run):
    from nemo_resume.check.prelaunch import check_plan
    from nemo_resume.planning import plan_resume

    auto = plan_resume(stage1_run.log_dir, _request("75:1e-3,50:5e-5"), policy="auto")
    assert (
        not auto.ok and "stages: checkpoint 75:0.001,50:0.0001, requested 75:0.001,50:5e-05" in auto.problems[0].message
    )
    keep = plan_resume(stage1_run.log_dir, _request("75:1e-3,50:5e-5"), policy="keep")
    assert keep.ok and any(n.startswith("ignored (the checkpoint wins): stages") for n in keep.decision.notes)
    check = check_plan(keep)  # the check shows what the run will really do: the checkpoint's stages
    assert not check.ok and check.first_problem.name == "stages_as_requested"


def test_context_holds_the_staged_module_as_plain_data_and_load_context_rebuilds_it(stage1_run):
    from nemo.lightning.io import load_context

    from nemo_resume.checkpoint.context import read_saved_config
    from nemo_resume.schedules.staged import StagedLRScheduler

    context = stage1_run.checkpoint_at(50).with_suffix("") / "context"
    assert read_saved_config(context).scheduler_class == "nemo_resume.schedules.staged.StagedLRScheduler"
    sched = load_context(context, subpath="model").optim.lr_scheduler
    assert isinstance(sched, StagedLRScheduler) and sched.stages == STAGES


def test_plan_cli_takes_lr_stages_and_keeps_the_saved_ones(stage1_run, capsys):
    import json

    from nemo_resume.cli.plan_cmd import main

    assert main([str(stage1_run.log_dir), "--lr-stages", STAGES, "--lr-mult", "*head*=0.5", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["policy"] == "keep" and out["request"]["schedule"] == "staged" and out["resume_step"] == 60
    assert dict((s, lrs) for s, lrs in out["schedule"])[75] == pytest.approx([1e-4, 5e-5])
    assert main([str(stage1_run.log_dir), "--lr-stages", STAGES, "--lr-mult", "0.5", "--lr-policy", "smooth"]) == 1


def test_a_request_for_another_scheduler_module_than_the_checkpoints_is_refused(stage1_run):
    from nemo_resume.planning import plan_resume
    from nemo_resume.schedules.request import ScheduleRequest

    plan = plan_resume(stage1_run.log_dir, ScheduleRequest(1e-3, 0.0, 125, lr_mults=(0.5,), schedule="linear"))
    (problem,) = plan.problems
    assert not plan.ok and problem.code == "SCHEDULER_MISMATCH"
    assert "was saved by StagedLRScheduler, but --schedule linear builds WarmupHoldAnnealScheduler" in problem.message


def test_staged_resume_with_weight_decay_split_groups_plans_and_checks(tmp_path):
    """megatron-core splits groups by weight decay too: 3 saved groups for a request with one multiplier."""
    from nemo_resume.check.prelaunch import check_plan
    from nemo_resume.planning import plan_resume
    from nemo_resume.smoke.train import train

    run = train(_cfg(lr_mults=(1.0, 0.5)), tmp_path, stop_after_step=60)
    plan = plan_resume(run.log_dir, _request(), policy="auto")
    assert plan.ok and plan.resume_step == 60 and len(plan.restored["base_lrs"]) == 3
    result = check_plan(plan)
    assert result.ok, result.first_problem
    assert dict((s, lrs) for s, _, lrs in result.key_steps)[75] == pytest.approx((1e-4, 1e-4, 5e-5))
