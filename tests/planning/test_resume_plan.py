"""The planner on real runs: checkpoint choice, policies, the CLI, and a real extended run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from nemo_resume.cli.plan_cmd import main as plan_main
from nemo_resume.planning import plan_resume
from nemo_resume.schedules.request import ScheduleRequest

pytestmark = pytest.mark.nemo

EXTEND = ScheduleRequest(lr=1e-3, min_lr=1e-5, max_steps=600, warmup_steps=50)


def test_auto_skips_weights_only_end_for_newest_full_checkpoint_and_offers_it(finished_run):
    plan = plan_resume(finished_run.log_dir, EXTEND, policy="smooth")
    assert plan.ok and plan.mode == "resume" and plan.resume_step == 200
    assert Path(plan.checkpoint).name == "smoke--step=200.ckpt"
    skipped = {Path(s.path).name: s.reason for s in plan.choice.skipped}
    assert "weights only" in skipped["smoke--step=300.ckpt"]
    assert plan.choice.weights_only is not None and plan.choice.weights_only.state.step == 300
    # NeMo's context-only -last folders (smoke--step=100-last/ ...) are companions, not skipped checkpoints
    assert (finished_run.checkpoint_dir / "smoke--step=100-last" / "context").is_dir()
    assert not [name for name in skipped if name.endswith("-last")], skipped


def test_restart_from_weights_uses_the_final_checkpoint_with_a_fresh_schedule(finished_run):
    plan = plan_resume(finished_run.log_dir, EXTEND, restart_from_weights=True)
    assert plan.ok and plan.mode == "restore-weights" and plan.resume_step == 0
    assert Path(plan.checkpoint).name.startswith("smoke--step=300")
    assert plan.schedule == EXTEND.cosine_state()


def test_keep_is_refused_when_more_steps_are_asked_than_the_saved_schedule_has(finished_run):
    plan = plan_resume(finished_run.log_dir, EXTEND, policy="keep")
    assert not plan.ok
    (p,) = plan.problems
    assert p.code == "POLICY_REFUSED" and "flat at min_lr" in p.message and "600" in p.message


def test_newest_unfinished_checkpoint_is_skipped_for_the_previous_complete_one(tmp_path, finished_run):
    run = tmp_path / "run"
    shutil.copytree(finished_run.log_dir, run, symlinks=True)
    ckpt = run / "checkpoints" / "smoke--step=200.ckpt"
    (run / "checkpoints" / "smoke--step=200-unfinished").touch()
    plan = plan_resume(run, EXTEND, policy="smooth")
    assert plan.ok and plan.resume_step == 100
    assert any(s.path == str(ckpt) and "unfinished" in s.reason for s in plan.choice.skipped)


def test_checkpoints_that_exist_but_none_usable_stop_with_an_error(tmp_path, finished_run):
    run = tmp_path / "run"
    shutil.copytree(finished_run.log_dir, run, symlinks=True)
    for step in (100, 200):
        (run / "checkpoints" / f"smoke--step={step}-unfinished").touch()
    plan = plan_resume(run, EXTEND)
    assert not plan.ok and plan.mode == "fresh" and plan.checkpoint is None
    assert plan.problems[0].code == "NO_USABLE_CHECKPOINT"


def test_fresh_start_is_said_out_loud(tmp_path):
    plan = plan_resume(tmp_path / "new-run", EXTEND)
    assert plan.ok and plan.mode == "fresh" and "starting from scratch" in plan.choice.why
    assert plan_resume(tmp_path, EXTEND).choice.why.startswith("no checkpoint under")


def test_explicit_path_that_is_not_resumable_is_an_error(finished_run):
    plan = plan_resume(finished_run.log_dir, EXTEND, resume=str(finished_run.checkpoint_at(300)))
    assert not plan.ok and "weights only" in plan.problems[0].message


def test_cli_json_has_the_documented_fields_and_exit_codes(incident_run, tmp_path, capsys):
    out_file = tmp_path / "plan.json"
    argv = [str(incident_run.log_dir), "--lr", "1e-5", "--min-lr", "1e-6", "--max-steps", "1000",
            "--warmup-steps", "500", "--json", "-o", str(out_file)]
    assert plan_main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out == json.loads(out_file.read_text())
    assert out["policy"] == "smooth" and out["resume_step"] == 499 and out["checkpoint"].endswith("step=499.ckpt")
    steps = [s for s, _ in out["schedule"]]
    assert steps[0] == 499 and steps[-1] == 1000
    assert out["schedule"][-1][1] == pytest.approx([1e-6])
    assert out["restored"]["min_lr"] == 3e-5 and out["target"]["min_lr"] == 1e-6
    assert plan_main(argv[:-2] + ["--lr-policy", "keep"]) == 1
    assert json.loads(capsys.readouterr().out)["problems"][0]["step"] == 501
    assert plan_main(argv[:1] + ["--lr", "1e-5", "--min-lr", "3e-5", "--max-steps", "1000"]) == 2
    assert "must be above min_lr" in capsys.readouterr().err


@pytest.mark.slow
def test_extending_a_finished_run_to_600_steps_decays_to_the_new_min_lr(tmp_path, finished_run, finished_config):
    from nemo_resume.callback import ResumeScheduleCallback
    from nemo_resume.smoke.train import train

    request = ScheduleRequest(lr=1e-3, min_lr=1e-5, max_steps=600, warmup_steps=50)
    plan = plan_resume(finished_run.log_dir, request, policy="smooth")
    result = train(
        finished_config.with_(max_steps=600, min_lr=1e-5),
        tmp_path,
        resume_from=plan.checkpoint,
        callbacks=[ResumeScheduleCallback.from_state(plan.target, plan.resume_step)],
    )
    assert result.error is None and result.final_step == 600
    lrs = [result.lrs[s][0] for s in sorted(result.lrs)]
    assert lrs[0] == pytest.approx(finished_run.lrs[200][0], rel=1e-9)
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))
    assert result.lrs[599][0] == pytest.approx(1e-5, rel=1e-3)


def test_keep_with_a_new_lr_below_min_lr_lists_what_the_checkpoint_overrides_and_the_check_agrees(
    finished_run, capsys
):
    """The checkpoint's LRs win under keep: NeMo raises nowhere, so neither does the plan (issue 22)."""
    from nemo_resume.check.prelaunch import check_plan

    ckpt = str(finished_run.checkpoint_at(200))
    argv = [ckpt, "--lr", "1e-5", "--min-lr", "3e-5", "--max-steps", "300", "--warmup-steps", "50",
            "--lr-policy", "keep", "--json"]
    assert plan_main(argv) == 0, capsys.readouterr().err
    out = json.loads(capsys.readouterr().out)
    ignored = [n for n in out["notes"] if n.startswith("ignored under keep")]
    assert ignored and "lr per group" in ignored[0] and "min_lr" in ignored[0]
    request = ScheduleRequest(1e-5, 3e-5, 300, 50, checked=False)
    assert check_plan(plan_resume(ckpt, request, resume=ckpt, policy="keep")).ok


def test_keep_names_the_real_reason_when_the_config_cannot_even_build_the_scheduler(finished_run, capsys):
    """Without warmup, NeMo computes step 0 from the config's lr < min_lr while building: it raises there."""
    from nemo_resume.check.prelaunch import check_plan

    ckpt = str(finished_run.checkpoint_at(200))
    request = ScheduleRequest(1e-5, 3e-5, 300, 0, checked=False)
    plan = plan_resume(ckpt, request, resume=ckpt, policy="keep")
    (p,) = plan.problems
    assert p.step == 0 and "builds the scheduler from the config before it restores" in p.message
    result = check_plan(plan)
    assert not result.ok and result.failure is not None and result.failure.when == "build"


def test_any_policy_but_keep_still_refuses_a_request_below_min_lr_as_bad_input(finished_run, capsys):
    ckpt = str(finished_run.checkpoint_at(200))
    argv = [ckpt, "--lr", "1e-5", "--min-lr", "3e-5", "--max-steps", "300", "--lr-policy", "smooth"]
    assert plan_main(argv) == 2
    assert "must be above min_lr" in capsys.readouterr().err
