"""The Qwen2.5 recipes with ``--schedule``, ``--lr-stages``, ``--save-from-step`` and ``--lr-mult``."""

from __future__ import annotations

import pytest

from nemo_resume.recipes.options import build_parser, options_from_args

pytestmark = pytest.mark.nemo
SEED_004 = [
    "--lr-stages",
    "75:1e-4,50:1e-5",
    "--save-from-step",
    "75",
    "--checkpoint-every",
    "1",
    "--lr-mult",
    "*adapter*=0.5",
]


@pytest.fixture(autouse=True)
def _nemorun_home(tmp_path, monkeypatch):
    monkeypatch.setenv("NEMORUN_HOME", str(tmp_path / "nemorun"))


def _build(tmp_path, *argv, task="finetune"):
    from nemo_resume.planning import plan_resume
    from nemo_resume.recipes.qwen25 import qwen25_recipe

    opts = options_from_args(task, build_parser(task, "test").parse_args(["--dir", str(tmp_path), *argv]))
    return opts, qwen25_recipe(
        opts, plan_resume(opts.run_dir, opts.request(), resume=opts.resume, policy=opts.lr_policy)
    )


def test_several_multipliers_build_the_regrouping_module_as_plain_data(tmp_path):
    import fiddle as fdl

    from nemo_resume.recipes.launch import to_yaml
    from nemo_resume.schedules.param_groups import LrMultOptimizerModule

    argv = ("--lr-mult", "*linear_qkv.adapter*=5", "--lr-mult", "*linear_proj.adapter*=0.5", "--layer-lr-decay", "0.9")
    opts, recipe = _build(tmp_path, *argv)
    assert recipe.optim.__fn_or_cls__ is LrMultOptimizerModule
    assert recipe.optim.lr_mults == ["*linear_qkv.adapter*=5", "*linear_proj.adapter*=0.5"]
    assert recipe.optim.layer_lr_decay == 0.9
    # the other adapters of layer i (0.5b: 24 layers) at 0.9^(23 - i): the last layer's at 1.0
    assert opts.request().lr_mults == tuple(sorted((5.0, 0.5, *(0.9**k for k in range(1, 24))), reverse=True))
    text = to_yaml(recipe)
    assert "_target_: nemo_resume.schedules.param_groups.LrMultOptimizerModule" in text and "layer_lr_decay: 0.9" in text
    # NeMo's IOMixin wraps the first __init__ of the hierarchy it meets: a stock module built first (as in a run that
    # built one before) must not leave the rules out of what context/io.json records
    from megatron.core.optimizer import OptimizerConfig
    from nemo.lightning.pytorch.optim import MegatronOptimizerModule

    MegatronOptimizerModule(OptimizerConfig())
    optim = fdl.build(recipe.optim)
    assert optim.__io__.lr_mults == ["*linear_qkv.adapter*=5", "*linear_proj.adapter*=0.5"]  # context/io.json's
    assert optim.__io__.layer_lr_decay == 0.9


def test_seed_004_builds_stages_one_lr_mult_pair_and_the_checkpoint_window(tmp_path):
    import fiddle as fdl

    from nemo_resume.recipes.launch import to_yaml
    from nemo_resume.save_from_checkpoint import SaveFromStepCheckpoint
    from nemo_resume.schedules.param_match import ParamNameMatch
    from nemo_resume.schedules.staged import StagedLRScheduler

    opts, recipe = _build(tmp_path, *SEED_004)
    assert opts.notes[-1] == "--save-from-step 75 --checkpoint-every 1: 50 checkpoints, step=76 ... step=125"
    assert recipe.optim.config.lr == 1e-4 and recipe.trainer.max_steps == 125
    sched = recipe.optim.lr_scheduler
    assert sched.__fn_or_cls__ is StagedLRScheduler and sched.__arguments__ == {"stages": "75:0.0001,50:1e-05"}
    assert recipe.optim.scale_lr_cond.__fn_or_cls__ is ParamNameMatch and recipe.optim.lr_mult == 0.5
    ckpt = recipe.log.ckpt
    assert ckpt.__fn_or_cls__ is SaveFromStepCheckpoint and ckpt.save_from_step == 75 and ckpt.every_n_train_steps == 1
    text = to_yaml(recipe)
    assert "_target_: nemo_resume.schedules.staged.StagedLRScheduler" in text and "stages: 75:0.0001,50:1e-05" in text
    assert "save_from_step: 75" in text and "'*adapter*'" in text
    optim = fdl.build(recipe.optim)  # NeMo's MegatronOptimizerModule, as the job builds it
    assert optim.scale_lr_cond("module.decoder.layers.0.self_attention.linear_qkv.adapter.linear_in.weight", None)
    assert isinstance(optim.lr_scheduler, StagedLRScheduler)


@pytest.mark.parametrize(
    "argv, target, arguments",
    [
        (
            ["--schedule", "linear", "--min-lr", "0"],
            "WarmupHoldAnnealScheduler",
            {"warmup_ratio": 0.05, "hold_ratio": 0.0, "max_steps": 1000, "decay_schedule": "linear", "min_lr": 0.0},
        ),
        (
            ["--schedule", "constant_with_warmup"],
            "WarmupPolicyScheduler",
            {"warmup_steps": 50, "warmup_ratio": None, "max_steps": 1000, "min_lr": 0.0},
        ),
        (
            ["--schedule", "constant"],
            "WarmupPolicyScheduler",
            {"warmup_steps": 0, "warmup_ratio": None, "max_steps": 1000, "min_lr": 0.0},
        ),
        (
            ["--schedule", "polynomial"],
            "PolynomialDecayAnnealingScheduler",
            {"max_steps": 1000, "min_lr": 0.0, "power": 1.0, "cycle": False},
        ),
        (
            ["--schedule", "cosine_with_min_lr", "--min-lr", "1e-5"],
            "CosineAnnealingScheduler",
            {"max_steps": 1000, "warmup_steps": 50, "constant_steps": 0, "min_lr": 1e-5},
        ),
        (
            ["--schedule", "warmup_stable_decay", "--decay-steps", "200", "--decay-type", "linear"],
            "WarmupHoldAnnealScheduler",
            {"warmup_ratio": 0.05, "hold_ratio": 0.75, "max_steps": 1000, "decay_schedule": "linear", "min_lr": 0.0},
        ),
    ],
)
def test_each_hf_name_builds_its_nemo_module_with_every_argument_explicit(tmp_path, argv, target, arguments):
    opts, recipe = _build(tmp_path, *argv)
    sched = recipe.optim.lr_scheduler
    assert sched.__fn_or_cls__.__name__ == target and sched.__arguments__ == arguments


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["--schedule", "inverse_sqrt"],
            "--schedule inverse_sqrt: NeMo's InverseSquareRootAnnealingScheduler takes no warmup_steps",
        ),
        (["--lr-mult", "*adapter*=0.5", "--lr-mult", "*linear_fc2*=2"],
         "--lr-mult '*linear_fc2*=2': every parameter it matches (module.module.decoder.layers.0.mlp.linear_fc2.adapter."
         "linear_in.weight, ...) is matched by the earlier --lr-mult '*adapter*=0.5'"),
        (["--layer-lr-decay", "1.5"], "--layer-lr-decay 1.5: give a factor between 0 and 1"),
        (["--lr-mult", "*adapter*=2", "--layer-lr-decay", "0.9"], "--layer-lr-decay 0.9: every parameter a --size 0.5b "
         "--peft lora run trains is matched by an --lr-mult rule"),
        (
            ["--lr-stages", "75:1e-4,50:1e-5", "--lr", "1e-3"],
            "--lr 0.001 with --lr-stages 75:1e-4,50:1e-5: the stages set the LR",
        ),
        (["--lr-stages", "75:1e-4,50:1e-5", "--max-steps", "100"], "the stages cover 125 steps"),
        (["--lr-stages", "75:1e-4", "--schedule", "linear"], "--lr-stages with --schedule linear"),
        (["--lr-mult", "0.5"], "--lr-mult 0.5: write PATTERN=MULT"),
    ],
)
def test_contradicting_or_unfaithful_flags_exit_2_in_one_line_even_with_launch_anyway(tmp_path, capsys, argv, message):
    from nemo_resume.cli.recipe_cmd import run_script

    code = run_script("finetune", ["--dir", str(tmp_path), "--dry-run", "--launch-anyway", *argv], prog="p")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("p: error: ") and message in err[-1]


@pytest.mark.slow
@pytest.mark.megatron
def test_seed_004_smoke_run_switches_lr_at_step_75_and_keeps_50_checkpoints(tmp_path, capsys):
    """On NeMo's Megatron path with the recipe's LoRA: every trainable parameter is an adapter, so the
    one param group runs at 0.5 x the stage LR; the 50 checkpoints after step 75 are all kept."""
    from nemo_resume.cli.recipe_cmd import run_script
    from tests.support.rehearsals import kept_checkpoints

    code = run_script("finetune", ["--dir", str(tmp_path), "--smoke", "--name", "seed004", *SEED_004], prog="p")
    assert code == 0, capsys.readouterr().err[-2000:]
    kept = kept_checkpoints(tmp_path / "seed004")
    assert [c.state.step for c in kept] == list(range(76, 126))
    first = kept[0]
    assert list(first.state.lrs) == pytest.approx([5e-6])
    assert first.state.scheduler.stages[1].to_json() == {"steps": 50, "lr": 1e-5, "warmup_steps": 0}


def test_cosine_constant_steps_with_a_multiplier_is_refused_with_the_collapse_reason():
    from nemo_resume.errors import NemoResumeError

    opts = options_from_args(
        "finetune",
        build_parser("finetune", "t").parse_args(
            ["--constant-steps", "100", "--min-lr", "1e-6", "--lr-mult", "*adapter*=0.5"]
        ),
    )
    with pytest.raises(
        NemoResumeError, match="constant_steps=100 with per-group LRs .* gives every group group 0's LR"
    ):
        opts.request()
