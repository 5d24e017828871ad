"""Issue 22's two reproducers, run for real on CPU (``--smoke``): the plan and the check agree, and the run
launches and finishes (before, the planner accepted both and the pre-launch check refused them)."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.nemo, pytest.mark.slow, pytest.mark.megatron]


def _run(task, tmp_path, capsys, *argv):
    from nemo_resume.cli.recipe_cmd import run_script

    code = run_script(task, [*argv, "--dir", str(tmp_path), "--smoke"], prog=f"recipes/qwen25_{task}.py")
    out = capsys.readouterr()
    return code, out.out, out.err


def _checkpoint(tmp_path, task, step):
    from tests.support.rehearsals import checkpoint_at

    return checkpoint_at(tmp_path / f"qwen25_{task}", step)


def test_recompute_with_a_new_lr_and_warmup_launches_and_reports_the_jump(tmp_path, capsys, finished_rehearsal):
    """The shared finished run (lr 1e-3, warmup 5, 30 steps) resumed at step 20 with a doubled LR and a longer
    warmup under recompute."""
    from tests.support.megatron_runs import FINISHED
    from tests.support.rehearsals import checkpoint_at

    source = finished_rehearsal(True, 1)
    assert source.result.error is None, source.why()
    resume = [*FINISHED, "--lr", "2e-3", "--warmup-steps", "8", "--max-steps", "40", "--lr-policy", "recompute",
              "--resume", str(checkpoint_at(source.run_dir, 20))]
    code, out, err = _run("pretrain", tmp_path, capsys, *resume)
    assert code == 0, (out[-3000:], err[-2000:])
    assert "refusing to launch" not in err
    assert "LR_JUMP" in out and "chosen by --lr-policy recompute" in out
    assert "smoke run: reached step 40" in out


def test_smooth_with_a_multiplier_after_the_floor_moved_the_ratio_launches(tmp_path, capsys):
    first = ["--lr", "2e-4", "--min-lr", "1e-6", "--warmup-steps", "4", "--max-steps", "30",
             "--lr-mult", "*adapter*=0.5", "--checkpoint-every", "10"]
    code, out, err = _run("finetune", tmp_path, capsys, *first)
    assert code == 0, err[-2000:]
    resume = ["--lr", "2e-4", "--min-lr", "0", "--warmup-steps", "4", "--max-steps", "52",
              "--lr-mult", "*adapter*=0.5", "--checkpoint-every", "10",
              "--resume", str(_checkpoint(tmp_path, "finetune", 20))]
    code, out, err = _run("finetune", tmp_path, capsys, *resume)
    assert code == 0, (out[-3000:], err[-2000:])
    assert "refusing to launch" not in err
    assert "smooth" in out and "smoke run: reached step 52" in out
