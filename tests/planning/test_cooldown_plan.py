"""``--lr-policy cooldown`` planned on a real run (the Lightning stand-in's finished 300-step run) and by the CLI."""

from __future__ import annotations

import json

import pytest

from nemo_resume.cli.plan_cmd import main as plan_main
from nemo_resume.planning import plan_resume
from nemo_resume.schedules.cosine import lr_at
from nemo_resume.schedules.request import ScheduleRequest

pytestmark = pytest.mark.nemo


def _cooldown(**kw):
    return ScheduleRequest(**{"lr": 1e-3, "min_lr": 1e-6, "max_steps": 50, "decay_steps": 50, "decay_type": "1-sqrt", **kw})


def test_a_cooldown_from_the_finished_runs_checkpoint_starts_at_its_lr_and_ends_at_resume_plus_d(finished_run):
    plan = plan_resume(finished_run.log_dir, _cooldown(), policy="cooldown")
    assert plan.ok, plan.problems
    assert plan.resume_step == 200 and plan.request.max_steps == 250  # the run ends at the resume step + D
    cd = plan.cooldown
    assert cd is not None and plan.target is None
    assert list(cd.start_lrs) == lr_at(plan.saved, 200)  # the checkpoint's LR at the resume step
    points = dict(plan.schedule_points())
    assert points[200] == list(cd.start_lrs) and points[250] == [1e-6]
    assert plan.decision.jump == 0.0


FLAGS = ["--lr", "1e-3", "--min-lr", "1e-6", "--lr-policy", "cooldown", "--decay-steps", "50"]


@pytest.mark.parametrize(("extra", "text"), [
    (["--max-steps", "600"], "--max-steps 600 with --lr-policy cooldown --decay-steps 50: the cooldown ends at step 250"),
    (["--warmup-steps", "5"], "never re-runs warmup"),
    (["--decay-type", "exp"], "--decay-type exp is not one of"),
])
def test_bad_cooldown_input_is_one_line_and_exit_2(finished_run, capsys, extra, text):
    assert plan_main([str(finished_run.log_dir), *FLAGS, *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert text in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_a_cooldown_without_a_checkpoint_or_without_the_policy_is_exit_2(tmp_path, finished_run, capsys):
    assert plan_main([str(tmp_path), *FLAGS]) == 2
    assert "--lr-policy cooldown anneals a checkpoint's LR, and this run starts fresh" in capsys.readouterr().err
    assert plan_main([str(finished_run.log_dir), "--lr", "1e-3", "--min-lr", "1e-6", "--max-steps", "600",
                      "--decay-type", "cosine"]) == 2
    assert "--decay-type with --schedule cosine apply to --lr-policy cooldown" in capsys.readouterr().err


def test_the_cli_plan_with_max_steps_given_as_the_end_and_a_refused_floor(finished_run, capsys):
    assert plan_main([str(finished_run.log_dir), *FLAGS, "--max-steps", "250", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["policy"] == "cooldown" and doc["request"]["max_steps"] == 250 and doc["jump"] == 0.0
    assert doc["schedule"][0][0] == 200 and doc["schedule"][-1] == [250, [1e-6]]
    # the checkpoint is at ~4.1e-4 at step 200: a floor above it has nothing to anneal (exit 1, the reason)
    assert plan_main([str(finished_run.log_dir), "--lr", "1e-3", "--min-lr", "5e-4", "--lr-policy", "cooldown",
                      "--decay-steps", "50"]) == 1
    assert "is not above the requested min_lr (0.0005)" in capsys.readouterr().out
