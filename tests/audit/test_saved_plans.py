"""The plans the recipe scripts save beside a launch, and which attempt each belongs to."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

pytestmark = pytest.mark.nemo


def test_an_attempt_takes_the_last_plan_saved_before_its_first_step(tmp_path):
    """Two launches' plans, written as the recipe scripts write them; a stray file is named in a note, not paired."""
    import json

    from nemo_resume.audit.plans import launch_plan_path, plan_for, saved_plans
    from nemo_resume.planning import plan_resume
    from nemo_resume.planning.plan_file import plan_to_json
    from nemo_resume.schedules.request import ScheduleRequest

    run = tmp_path / "run"
    first = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc)
    second = first.replace(hour=9)
    assert launch_plan_path(run, first) == run / "plans" / "2026-01-02T03-04-05.678901Z.json"
    for when, max_steps in ((first, 20), (second, 40)):
        path = launch_plan_path(run, when)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(plan_to_json(plan_resume(run, ScheduleRequest(1e-3, 1e-4, max_steps, 2)))))
    (run / "plans" / "mine.json").write_text("{}")
    plans, notes = saved_plans(run)
    assert [p.plan.request.max_steps for p in plans] == [20, 40] and len(notes) == 1 and "mine.json" in notes[0]
    assert plan_for(first.timestamp() - 1, plans) is None
    assert plan_for(first.timestamp() + 60, plans).plan.request.max_steps == 20
    assert plan_for(second.timestamp(), plans).plan.request.max_steps == 40


@pytest.mark.slow
def test_a_dry_run_saves_no_plan_and_no_report(tmp_path, capsys, monkeypatch):
    """Nothing trains, so nothing is written into the run folder (the launch's plan is saved only when it runs)."""
    from nemo_resume.cli.recipe_cmd import run_script

    monkeypatch.setenv("NEMORUN_HOME", str(tmp_path / "nemorun"))
    code = run_script("pretrain", ["--dir", str(tmp_path / "res"), "--max-steps", "20", "--warmup-steps", "2", "--dry-run"], prog="p")
    assert code == 0, capsys.readouterr().err[-2000:]
    assert not (tmp_path / "res").exists()
