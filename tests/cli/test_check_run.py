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
