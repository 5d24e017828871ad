"""The schedule check CLI with ``--schedule NAME``, ``--lr-stages`` and ``--lr-mult``: NeMo's module, every group checked."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.nemo
pytest.importorskip("nemo.lightning.pytorch.optim.lr_scheduler")

from nemo_resume.cli.check_cmd import main  # noqa: E402


def _json(argv, capsys):
    code = main([*argv, "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_a_hugging_face_name_is_checked_with_the_nemo_module_that_runs_it(capsys):
    code, out = _json(
        [
            "--schedule",
            "linear",
            "--lr",
            "1e-4",
            "--min-lr",
            "0",
            "--warmup-steps",
            "10",
            "--max-steps",
            "100",
            "--lr-mult",
            "*adapter*=0.5",
        ],
        capsys,
    )
    assert code == 0 and out["ok"] and out["scheduler"] == "NeMo's WarmupHoldAnnealScheduler"
    assert out["request"]["schedule"] == "linear" and out["request"]["lr_mults"] == [0.5]
    lrs = dict((s, v) for s, v in out["key_steps"])
    assert lrs[10] == pytest.approx([1e-4, 5e-5]) and lrs[100] == [0.0, 0.0]


def test_staged_lr_switches_and_a_group_below_min_lr_fails_at_the_switch(capsys):
    code, out = _json(["--lr-stages", "75:1e-4,50:1e-5", "--min-lr", "8e-6", "--lr-mult", "*adapter*=0.5"], capsys)
    failed = [c for c in out["checks"] if c["ok"] is False]
    assert code == 1 and [c["name"] for c in failed] == ["at_or_above_min_lr"]
    assert failed[0]["step"] == 75 and "group 1 LR 5e-06 < min_lr 8e-06" in failed[0]["reason"]
    assert dict(out["key_step_labels"])[75] == "stage 2 starts"


def test_every_group_of_a_floored_schedule_is_checked_against_min_lr(capsys):
    code, out = _json(
        [
            "--schedule",
            "constant_with_warmup",
            "--lr",
            "1e-4",
            "--min-lr",
            "1e-5",
            "--warmup-steps",
            "5",
            "--max-steps",
            "50",
            "--lr-mult",
            "0.05",
        ],
        capsys,
    )
    (failed,) = [c for c in out["checks"] if c["ok"] is False]
    assert code == 1 and failed["name"] == "at_or_above_min_lr" and failed["step"] == 6


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["--schedule", "cosine_with_restarts"],
            "--schedule cosine_with_restarts: NeMo 2.7.3 has no cosine-with-restarts",
        ),
        (["--schedule", "staged"], "--schedule staged needs --lr-stages"),
        (["--lr-mult", "*a*=0.5", "--lr-mult", "*a*=2"], "--lr-mult '*a*=0.5' --lr-mult '*a*=2': one pattern with two"),
        (["--lr-mult", "half"], "--lr-mult half: give MULT (a number) or PATTERN=MULT"),
    ],
)
def test_refusals_exit_2_with_one_line_before_nemo_runs(argv, message, capsys):
    assert main(["--lr", "1e-4", "--min-lr", "0", "--max-steps", "100", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_a_plan_file_carries_its_own_schedule(capsys):
    assert main(["--plan", "plan.json", "--schedule", "linear"]) == 2
    assert "--plan carries its own request; drop --schedule" in capsys.readouterr().err


def test_the_plot_names_the_module_it_checked(tmp_path, capsys):
    from nemo_resume.check import check_schedule
    from nemo_resume.check.plot import plotted_series
    from nemo_resume.schedules.lr_stages import parse_stages
    from nemo_resume.schedules.request import ScheduleRequest

    png = tmp_path / "lr.png"
    assert main(["--lr-stages", "75:1e-4,50:1e-5", "--plot", str(png)]) == 0
    assert png.stat().st_size > 1000 and "nemo_resume's StagedLRScheduler" in capsys.readouterr().out
    result = check_schedule(ScheduleRequest(1e-4, 0.0, 125, schedule="staged", stages=parse_stages("75:1e-4,50:1e-5")))
    (series,) = plotted_series(result)
    assert series.y[list(series.x).index(75)] == pytest.approx(1e-5)
