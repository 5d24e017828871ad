"""``--optim NAME`` on the recipes and the check: the mapped fields reach NeMo-Run's OptimizerConfig (and its
YAML), a refused name exits 2 with one line everywhere, and ``sgd`` trains on NeMo's real Megatron path."""

from __future__ import annotations

import pytest

from nemo_resume.recipes.options import build_parser, options_from_args

pytestmark = pytest.mark.nemo


@pytest.fixture(autouse=True)
def _nemorun_home(tmp_path, monkeypatch):
    monkeypatch.setenv("NEMORUN_HOME", str(tmp_path / "nemorun"))


def _recipe(tmp_path, task, *argv):
    from nemo_resume.planning import plan_resume
    from nemo_resume.recipes.qwen25 import qwen25_recipe

    opts = options_from_args(task, build_parser(task, "test").parse_args(["--dir", str(tmp_path), *argv]))
    return opts, qwen25_recipe(opts, plan_resume(opts.run_dir, opts.request(), resume=opts.resume, policy=opts.lr_policy))


@pytest.mark.parametrize("task", ["pretrain", "finetune"])
def test_sgd_sets_megatrons_sgd_and_turns_the_distributed_optimizer_off_in_config_and_yaml(tmp_path, task):
    from nemo_resume.recipes.launch import to_yaml

    opts, recipe = _recipe(tmp_path, task, "--optim", "sgd")
    c = recipe.optim.config
    assert (c.optimizer, c.sgd_momentum, c.use_distributed_optimizer) == ("sgd", 0.0, False)
    assert (c.lr, c.weight_decay) == (opts.lr, opts.weight_decay)  # the recipe's own values stay
    assert "--optim sgd: megatron-core OptimizerConfig(optimizer='sgd'" in " ".join(opts.notes)
    text = to_yaml(recipe)
    assert "optimizer: sgd" in text and "sgd_momentum: 0.0" in text and "use_distributed_optimizer: false" in text


def test_adamw_torch_keeps_the_recipes_distributed_adam_and_makes_adamw_explicit(tmp_path):
    _, stock = _recipe(tmp_path, "pretrain")
    _, recipe = _recipe(tmp_path, "pretrain", "--optim", "adamw_torch", "--adam-beta2", "0.999", "--adam-eps", "1e-8")
    c = recipe.optim.config
    assert (c.optimizer, c.decoupled_weight_decay, c.use_distributed_optimizer) == ("adam", True, True)
    assert (c.adam_beta2, c.adam_eps) == (0.999, 1e-8)
    assert "decoupled_weight_decay" not in stock.optim.config.__arguments__  # without --optim nothing is added


@pytest.mark.parametrize("task", ["pretrain", "finetune"])
def test_a_refused_name_exits_2_with_one_line_from_the_recipe_script(tmp_path, capsys, task):
    from nemo_resume.cli.recipe_cmd import run_script

    code = run_script(task, ["--dir", str(tmp_path / "res"), "--optim", "adafactor", "--dry-run"], prog="p")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert "--optim adafactor: megatron-core 0.15.3 builds only Adam and SGD" in err[0]
    assert err[0].endswith("use --optim adamw_torch (docs/optimizers.md)")
    assert not (tmp_path / "res").exists()


@pytest.mark.parametrize(("name", "code"), [("lion_32bit", 2), ("not_a_name", 2), ("sgd", 0)])
def test_the_check_accepts_or_refuses_a_name_as_the_recipes_do(capsys, name, code):
    from nemo_resume.cli.check_cmd import main

    assert main(["--lr", "1e-3", "--min-lr", "1e-4", "--max-steps", "20", "--optim", name, "--json"]) == code
    out, err = capsys.readouterr()
    if code:
        assert len(err.strip().splitlines()) == 1 and f"--optim {name}: " in err and out == ""


@pytest.mark.slow
@pytest.mark.megatron
def test_sgd_trains_and_saves_on_nemos_megatron_path(tmp_path):
    """The recipe's own distributed optimizer would refuse SGD at start-up (megatron-core's DistributedOptimizer
    asserts Adam); ``--optim sgd`` turns it off, trains, and the checkpoint's io.json says what ran."""
    from tests.support.rehearsals import kept_checkpoints, rehearse_recipe

    flags = ["--lr", "1e-3", "--min-lr", "1e-4", "--warmup-steps", "2", "--max-steps", "6", "--checkpoint-every", "3",
             "--optim", "sgd", "--dir", str(tmp_path)]
    run = rehearse_recipe("pretrain", flags)  # dist_opt=None: the recipe's config, as --optim set it
    assert run.result.error is None, run.why()
    assert run.result.final_step == 6 and sorted(run.lrs) == list(range(6))
    layout = kept_checkpoints(run.run_dir)[-1].state.run_layout
    assert (layout.optimizer, layout.distributed_optimizer, layout.has_optimizer_state) == ("sgd", False, True)
