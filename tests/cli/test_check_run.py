"""`check --run DIR`: the check plans the resume itself, exactly as the recipes do, then checks it."""

from __future__ import annotations

import json

import pytest

from nemo_resume.cli.check_cmd import main as check_main

pytestmark = pytest.mark.nemo


def _run(incident_run, capsys, *extra):
    code = check_main(["--run", str(incident_run.log_dir), "--lr", "1e-5", "--min-lr", "1e-6", "--max-steps", "1000",
                       "--warmup-steps", "500", "--json", *extra])
    return code, json.loads(capsys.readouterr().out)


def test_planned_resume_of_the_incident_passes(incident_run, capsys):
    code, out = _run(incident_run, capsys)
    assert code == 0 and out["ok"] is True
    assert out["resume"]["step"] == 499 and out["resume"]["target"]["min_lr"] == 1e-6


def test_stock_resume_of_the_incident_fails_at_501(incident_run, capsys):
    code, out = _run(incident_run, capsys, "--lr-policy", "keep")
    assert code == 1 and out["failure"]["step"] == 501


def test_run_and_plan_together_is_bad_input(incident_run, tmp_path, capsys):
    assert check_main(["--run", str(incident_run.log_dir), "--plan", str(tmp_path / "p.json")]) == 2
    assert "not both" in capsys.readouterr().err


def test_a_plan_the_planner_refuses_fails_the_check_with_the_planners_reason(incident_run, capsys):
    """One verdict (issue 22): strict refuses a request that differs from the checkpoint; the check agrees."""
    from nemo_resume.cli.plan_cmd import main as plan_main

    argv = [str(incident_run.log_dir), "--lr", "1e-5", "--min-lr", "1e-6", "--max-steps", "1000",
            "--warmup-steps", "500", "--lr-policy", "strict", "--json"]
    assert plan_main(argv) == 1
    capsys.readouterr()
    code, out = _run(incident_run, capsys, "--lr-policy", "strict")
    assert code == 1 and out["ok"] is False
    (safe,) = [c for c in out["checks"] if c["name"] == "plan_safe"]
    assert safe["ok"] is False and "the planner refuses this resume" in safe["reason"] and "differs" in safe["reason"]


@pytest.mark.megatron
def test_the_resumed_runs_layout_is_part_of_the_checks_verdict(megatron_incident_ckpt, capsys):
    """`--tp 2` on a dp_reshardable distributed-optimizer checkpoint: the check fails as the plan refuses."""
    argv = ["--run", str(megatron_incident_ckpt), "--lr", "1e-5", "--min-lr", "1e-6", "--max-steps", "60",
            "--warmup-steps", "30", "--lr-policy", "smooth", "--json"]
    assert check_main(argv) == 0
    capsys.readouterr()
    assert check_main([*argv, "--tp", "2"]) == 1
    (safe,) = [c for c in json.loads(capsys.readouterr().out)["checks"] if c["name"] == "plan_safe"]
    assert safe["ok"] is False and "--tp 1 -> 2" in safe["reason"] and "dp_reshardable" in safe["reason"]


def test_a_layout_flag_without_run_is_bad_input(capsys):
    assert check_main(["--lr", "1e-5", "--min-lr", "1e-6", "--max-steps", "60", "--tp", "2"]) == 2
    assert "--tp apply with --run DIR only" in capsys.readouterr().err
