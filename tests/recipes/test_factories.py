"""``nemo llm finetune|pretrain --factory nemo_resume_qwen25``: NeMo's CLI never gets a silent fresh start.

Regression (issue 16, item 1): the factories ignored ``plan.ok``. With no usable checkpoint they built
``AutoResume(resume_if_exists=False)`` and trained from scratch; with a refused policy they resumed
without the callback. Now they refuse exactly where ``nemo-resume plan`` exits non-zero.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from nemo_resume.cli import main as cli_main
from nemo_resume.errors import NemoResumeError

pytestmark = pytest.mark.nemo
PRETRAIN = dict(lr=1e-5, min_lr=1e-6, warmup_steps=500, max_steps=1000)
PLAN_FLAGS = ["--lr", "1e-5", "--min-lr", "1e-6", "--warmup-steps", "500", "--max-steps", "1000"]


def _run_folder(tmp_path: Path, checkpoint: Path, name: str = "qwen25_pretrain") -> Path:
    """``tmp_path/name/checkpoints/<checkpoint>``: where the factory's ``dir``/``name`` look."""
    dest = tmp_path / name / "checkpoints" / checkpoint.name
    dest.parent.mkdir(parents=True)
    (shutil.copytree if checkpoint.is_dir() else shutil.copy2)(checkpoint, dest)
    return tmp_path / name


def _plan_exit(run: Path, *flags: str) -> int:
    return cli_main(["plan", str(run), *flags])


def test_factory_refuses_when_no_checkpoint_can_be_resumed(tmp_path, megatron_finished_ckpt, capsys):
    from nemo_resume.recipes.qwen25 import nemo_resume_qwen25_pretrain

    run = _run_folder(tmp_path, megatron_finished_ckpt)  # weights only: nothing a resume can continue
    assert _plan_exit(run, *PLAN_FLAGS) == 1
    with pytest.raises(NemoResumeError, match="refusing to build the pretrain recipe: .*none can be resumed"):
        nemo_resume_qwen25_pretrain(dir=str(tmp_path), **PRETRAIN)


def test_factory_refuses_a_policy_the_planner_refuses(tmp_path, incident_ckpt, capsys):
    from nemo_resume.recipes.qwen25 import nemo_resume_qwen25_pretrain

    run = _run_folder(tmp_path, incident_ckpt)
    # a floor above the LR the checkpoint is at (9.98e-6): smooth, the auto choice, cannot continue below it
    flags = ["--lr", "2e-5", "--min-lr", "1.5e-5", "--warmup-steps", "500", "--max-steps", "1000"]
    assert _plan_exit(run, *flags) == 1
    with pytest.raises(NemoResumeError, match="refusing to build the pretrain recipe: .*--lr-policy smooth"):
        nemo_resume_qwen25_pretrain(dir=str(tmp_path), lr=2e-5, min_lr=1.5e-5, warmup_steps=500, max_steps=1000)


def test_factory_says_what_it_starts_from(tmp_path, incident_ckpt, capsys):
    from nemo_resume.callback import ResumeScheduleCallback
    from nemo_resume.recipes.qwen25 import nemo_resume_qwen25_pretrain

    nemo_resume_qwen25_pretrain(dir=str(tmp_path / "new"), **PRETRAIN)
    assert "nemo_resume_qwen25: starting from step 0" in capsys.readouterr().err
    run = _run_folder(tmp_path, incident_ckpt)
    assert _plan_exit(run, *PLAN_FLAGS) == 0
    recipe = nemo_resume_qwen25_pretrain(dir=str(tmp_path), **PRETRAIN)
    assert f"nemo_resume_qwen25: resuming {run / 'checkpoints' / incident_ckpt.name} at step 499" in capsys.readouterr().err
    assert any(c.__fn_or_cls__ is ResumeScheduleCallback for c in recipe.trainer.callbacks)


@pytest.mark.slow
def test_nemo_cli_stops_with_the_reason_instead_of_training_from_scratch(tmp_path, megatron_finished_ckpt):
    _run_folder(tmp_path, megatron_finished_ckpt)
    out = tmp_path / "cfg.yaml"
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "nemo"), "llm", "pretrain", "--factory",
         f"nemo_resume_qwen25(dir='{tmp_path}', lr=1e-5, min_lr=1e-6, warmup_steps=500, max_steps=1000)",
         "--to-yaml", str(out), "--yes"],
        cwd=tmp_path, env={**os.environ, "NEMORUN_HOME": str(tmp_path / "nr")}, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode != 0, proc.stdout[-2000:]
    assert "refusing to build the pretrain recipe" in proc.stdout + proc.stderr
    assert not out.exists()
