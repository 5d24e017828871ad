"""The Qwen2.5 recipes: built from NeMo's own factories, every schedule value explicit, resumed exactly."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from nemo_resume.recipes.options import SIZES, build_parser, options_from_args

pytestmark = pytest.mark.nemo
ROOT = Path(__file__).resolve().parents[2]


def _opts(task, *argv):
    return options_from_args(task, build_parser(task, "test").parse_args(list(argv)))


def _build(task, *argv, run_dir_plan=None):
    from nemo_resume.planning import plan_resume
    from nemo_resume.recipes.qwen25 import qwen25_recipe

    opts = _opts(task, *argv)
    return opts, qwen25_recipe(opts, plan_resume(opts.run_dir, opts.request(), resume=opts.resume, policy=opts.lr_policy))


@pytest.fixture(autouse=True)
def _nemorun_home(tmp_path, monkeypatch):
    monkeypatch.setenv("NEMORUN_HOME", str(tmp_path / "nemorun"))


@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("peft", ["lora", "dora", "none"])
def test_every_finetune_size_and_peft_builds_with_an_explicit_schedule(tmp_path, size, peft):
    from nemo.collections import llm
    from nemo.lightning.pytorch.optim import CosineAnnealingScheduler

    from nemo_resume.recipes.launch import to_yaml

    nodes = "4" if (size, peft) == ("72b", "none") else "1"
    opts, recipe = _build("finetune", "--size", size, "--peft", peft, "--dir", str(tmp_path), "--num-nodes", nodes)
    assert recipe.__fn_or_cls__ is llm.finetune
    sched = recipe.optim.lr_scheduler
    assert sched.__fn_or_cls__ is CosineAnnealingScheduler
    # all four set explicitly: none left to the class defaults (6e-5, 750, 80000, 10)
    assert sched.__arguments__ == {"max_steps": 1000, "warmup_steps": 50, "constant_steps": 0, "min_lr": 0.0}
    assert recipe.optim.config.lr == {"lora": 1e-4, "dora": 1e-4, "none": 5e-6}[peft]
    assert (recipe.peft is not None) == (peft != "none") if hasattr(recipe, "peft") else peft == "none"
    assert recipe.trainer.max_steps == 1000
    assert recipe.log.ckpt.save_optim_on_train_end is True
    assert recipe.resume.resume_if_exists is False
    model_cfg = recipe.model.config.__fn_or_cls__.__name__
    assert model_cfg.startswith("Qwen25Config") and model_cfg.endswith(size.upper().replace(".", "P").replace("0P5B", "500M"))
    text = to_yaml(recipe)
    assert "min_lr: 0.0" in text and "constant_steps: 0" in text


def test_72b_full_finetune_on_too_few_nodes_is_a_one_line_error(tmp_path, capsys):
    from nemo_resume.cli.recipe_cmd import run_script

    code = run_script("finetune", ["--size", "72b", "--peft", "none", "--dir", str(tmp_path), "--dry-run"], prog="p")
    assert code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == "p: error: --size 72b --peft none needs --num-nodes 4 or more (got 1)"


@pytest.mark.parametrize("size", list(SIZES))
def test_every_pretrain_size_builds(tmp_path, size):
    from nemo.collections import llm

    opts, recipe = _build("pretrain", "--size", size, "--dir", str(tmp_path), "--tp", "2", "--pp", "2")
    assert recipe.__fn_or_cls__ is llm.pretrain
    assert recipe.optim.lr_scheduler.min_lr == pytest.approx(3e-5)  # 0.1 x the stock 3e-4
    assert recipe.trainer.strategy.tensor_model_parallel_size == 2
    assert recipe.trainer.strategy.pipeline_model_parallel_size == 2


def test_incident_lr_without_min_lr_sets_min_lr_below_lr_and_says_so():
    opts = _opts("pretrain", "--size", "7b", "--lr", "1e-5")
    assert opts.min_lr == 1e-6 and opts.request().min_lr == 1e-6
    assert any("0.1 x lr = 1e-06" in n for n in opts.notes)


def test_min_lr_zero_stays_zero():
    assert _opts("pretrain", "--lr", "1e-4", "--min-lr", "0").min_lr == 0.0


def test_incident_with_the_stock_min_lr_is_refused_before_anything_runs(tmp_path, capsys):
    """min_lr above lr is bad input, as in `plan`: one line, exit 2; --launch-anyway runs it as NeMo would."""
    from nemo_resume.cli.recipe_cmd import run_script

    argv = ["--size", "7b", "--lr", "1e-5", "--min-lr", "3e-5", "--dir", str(tmp_path), "--json"]
    code = run_script("pretrain", [*argv, "--dry-run"], prog="qwen25_pretrain.py")
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    (line,) = captured.err.strip().splitlines()
    assert "lr (1e-05) must be above min_lr (3e-05)" in line and "--min-lr" in line
    assert not (tmp_path / "qwen25_pretrain").exists()
    # with --launch-anyway the check still shows where NeMo fails; --to-yaml builds it, nothing is launched
    code = run_script("pretrain", [*argv, "--launch-anyway", "--to-yaml", str(tmp_path / "bad.yaml")], prog="p")
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["check"]["ok"] is False and out["check"]["failure"]["step"] == 501


def test_resume_points_autoresume_at_the_planned_checkpoint_and_adds_the_callback(incident_run):
    from nemo_resume.callback import PlannedLRCheck, ResumeScheduleCallback
    from nemo_resume.recipes.launch import to_yaml
    from nemo_resume.schedules.cosine import CosineState, lr_at

    log_dir = incident_run.log_dir
    opts, recipe = _build("pretrain", "--dir", str(log_dir.parent), "--name", log_dir.name, "--lr", "1e-5",
                          "--min-lr", "1e-6", "--warmup-steps", "500", "--max-steps", "1000")
    assert recipe.resume.resume_from_path == str(incident_run.checkpoint_at(499))
    (cb,) = [c for c in recipe.trainer.callbacks if c.__fn_or_cls__ is ResumeScheduleCallback]
    assert cb.resume_step == 499 and cb.min_lr == 1e-6 and cb.warmup_steps == 499
    assert cb.base_lrs == pytest.approx([1e-5 * 500 / 501])
    assert "nemo_resume.callback.ResumeScheduleCallback" in to_yaml(recipe)
    # the LRs of the first two resumed steps are checked, after the plan is written (the later callback)
    names = [c.__fn_or_cls__ for c in recipe.trainer.callbacks]
    assert names.index(PlannedLRCheck) == names.index(ResumeScheduleCallback) + 1
    check = recipe.trainer.callbacks[-1]
    target = CosineState(tuple(cb.base_lrs), cb.min_lr, cb.max_steps, cb.warmup_steps, cb.constant_steps)
    assert check.steps == [499, 500] and check.lrs == [lr_at(target, 499), lr_at(target, 500)]
    assert check.lrs[0] == [pytest.approx(1e-5 * 500 / 501)]  # the checkpoint's own: no jump


def test_the_planned_lr_check_names_the_group_and_both_lrs():
    from nemo_resume.callback import lr_mismatch

    assert lr_mismatch([1e-5, 2e-5], [1e-5, 2e-5 * (1 + 1e-12)]) is None
    assert lr_mismatch([1e-5, 2e-5], [1e-5, 2.1e-5]) == "param group 1 trains at LR 2e-05, the plan says 2.1e-05"
    assert lr_mismatch([1e-5], [1e-5, 1e-5]) == "the optimizer has 1 param groups, the plan 2"


def test_resume_callback_is_written_to_context_as_a_class_reference(tmp_path):
    """A plain callback would be cloudpickled into context/ and load_context would refuse it."""
    from nemo import lightning as nl
    from nemo.lightning.io import TrainerContext, load_context

    from nemo_resume.callback import ResumeScheduleCallback
    from nemo_resume.smoke.model import SmokeModel

    cb = ResumeScheduleCallback(499, [1e-5], 1e-6, 1000, 499)
    trainer = nl.Trainer(accelerator="cpu", devices=1, max_steps=1, callbacks=[cb], logger=False,
                         enable_checkpointing=False)
    TrainerContext(SmokeModel(), trainer, {}).io_dump(tmp_path / "context", yaml_attrs=[])
    assert "nemo_resume.callback" in (tmp_path / "context" / "io.json").read_text()
    loaded = load_context(tmp_path / "context", subpath="trainer")
    (restored,) = [c for c in loaded.callbacks if isinstance(c, ResumeScheduleCallback)]
    assert restored.target == cb.target and restored.resume_step == 499


def _dry_run(tmp_path, capsys, *extra):
    from nemo_resume.cli.recipe_cmd import run_script

    # NeMo-Run's Slurm tunnel runs shell commands through `invoke`, which reads stdin; give it
    # an empty one, as CI does, instead of pytest's unreadable stand-in.
    sys.stdin = io.StringIO("")

    code = run_script("finetune", ["--size", "0.5b", "--peft", "lora", "--resume", "auto", "--dir", str(tmp_path),
                                   "--dry-run", *extra], prog="qwen25_finetune.py")
    # NeMo-Run's rich console wraps long lines at the terminal width: compare without whitespace.
    captured = capsys.readouterr()
    assert code == 0, captured.err[-2000:]
    return code, re.sub(r"\s+", "", captured.out)


@pytest.fixture(autouse=True)
def _restore_stdin():
    saved = sys.stdin
    yield
    sys.stdin = saved


def test_dry_run_local_prints_config_plan_check_and_torchrun(tmp_path, capsys):
    code, out = _dry_run(tmp_path, capsys)
    assert code == 0
    assert "startingfromscratch" in out and "everycheckpasses" in out
    assert "_target_:nemo.collections.llm.api.finetune" in out
    assert "'torchrun'" in out and "'--nproc-per-node','8'" in out and "nemo_run.core.runners.fdl_runner" in out


def test_dry_run_slurm_prints_the_sbatch_script(tmp_path, capsys):
    code, out = _dry_run(tmp_path, capsys, "--executor", "slurm", "--account", "acct", "--partition", "batch",
                         "--num-nodes", "2", "--container-image", "nvcr.io/nvidia/nemo:25.09",
                         "--mount", f"{tmp_path}:{tmp_path}")
    assert code == 0
    assert "#SBATCH--account=acct" in out and "#SBATCH--nodes=2" in out and "#SBATCH--partition=batch" in out
    assert "--container-imagenvcr.io/nvidia/nemo:25.09" in out


def test_slurm_without_account_is_a_one_line_error(tmp_path, capsys):
    from nemo_resume.cli.recipe_cmd import run_script

    code = run_script("finetune", ["--dir", str(tmp_path), "--dry-run", "--executor", "slurm"], prog="p")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1] == "p: error: --executor slurm needs --account and --partition"


def test_to_yaml_round_trips_through_nemo_run(tmp_path, capsys):
    from nemo_resume.cli.recipe_cmd import run_script

    out = tmp_path / "cfg.yaml"
    assert run_script("finetune", ["--dir", str(tmp_path), "--to-yaml", str(out)], prog="p") == 0
    import yaml

    cfg = yaml.safe_load(out.read_text())
    assert cfg["optim"]["lr_scheduler"]["min_lr"] == 0.0 and cfg["trainer"]["max_steps"] == 1000


@pytest.mark.slow
def test_nemo_cli_finds_the_registered_factory(tmp_path):
    import yaml

    env = {**os.environ, "NEMORUN_HOME": str(tmp_path / "nr")}
    out = tmp_path / "f.yaml"
    nemo = Path(sys.executable).parent / "nemo"
    proc = subprocess.run([str(nemo), "llm", "finetune", "--factory", "nemo_resume_qwen25", "--to-yaml", str(out), "--yes"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    text = out.read_text()
    assert "CosineAnnealingScheduler" in text and "save_optim_on_train_end: true" in text
    # arguments are parsed by NeMo-Run from the factory's real annotations (regression:
    # string annotations from `from __future__ import annotations` fail with "Unsupported type")
    proc = subprocess.run([str(nemo), "llm", "pretrain", "--factory", "nemo_resume_qwen25(size='7b', lr=1e-5)",
                           "--to-yaml", str(out), "--yes"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    cfg = yaml.safe_load(out.read_text())
    assert cfg["model"]["config"]["_target_"].endswith("Qwen25Config7B")
    assert cfg["optim"]["lr_scheduler"]["min_lr"] == pytest.approx(1e-6)  # 0.1 x lr, not the stock 3e-5


def test_yaml_stays_right_after_nemo_has_dumped_a_context_in_the_same_process(tmp_path, incident_run):
    """Regression: NeMo's io_dump re-registers yaml.SafeDumper representers globally."""
    from nemo_resume.recipes.launch import to_yaml

    _, recipe = _build("finetune", "--dir", str(tmp_path))
    text = to_yaml(recipe)
    assert "_target_: nemo.collections.llm.api.finetune" in text and "min_lr: 0.0" in text
