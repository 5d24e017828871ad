"""``--lr-mult`` patterns that match no trainable parameter of the run are refused (``*lora*`` matched nothing).

The catalogue (``nemo_resume/recipes/param_names.py``) is held to the real libraries: NeMo's Qwen2.5
configs as the recipes build them, ``LoRA()``/``DoRA()``'s defaults, and the names megatron-core's
``_get_param_groups`` sees on a real tiny GPT with NeMo's LoRA/DoRA applied and NeMo's bf16-mixed
wrapping (a gloo subprocess: this module run as ``python -m tests.recipes.test_param_names``).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from nemo_resume.recipes.options import build_parser, options_from_args
from nemo_resume.recipes.param_names import NUM_LAYERS, PEFT_TARGETS, TIED_EMBEDDINGS, trainable_names

ROOT = Path(__file__).resolve().parents[2]
LAYER = re.compile(r"\.layers\.(\d+)\.")


def _options(tmp_path, *argv, task="finetune"):
    return options_from_args(task, build_parser(task, "p").parse_args(["--dir", str(tmp_path), *argv]))


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--lr-mult", "*lora*=2"],
         "--lr-mult '*lora*=2': matches no parameter a --size 0.5b --peft lora run trains, so it would change nothing "
         "(the LoRA adapters are named like module.module.decoder.layers.0.self_attention.linear_qkv.adapter.linear_in"
         ".weight); use e.g. --lr-mult '*adapter*=2'"),
        # NeMo's PEFT freezes the base model: only the adapters reach scale_lr_cond
        (["--size", "7b", "--peft", "dora", "--lr-mult", "*output_layer*=0.5"],
         "--lr-mult '*output_layer*=0.5': matches no parameter a --size 7b --peft dora run trains"),
        (["--peft", "lora", "--lr-mult", "*adapter*=2", "--lr-mult", "*weight_magnitude*=2"],
         "--lr-mult '*weight_magnitude*=2': matches no parameter a --size 0.5b --peft lora run trains"),
        # the full name has two wrappers (DDP, bf16's Float16Module): an anchored pattern gets a leading *
        (["--peft", "none", "--lr-mult", "module.output_layer.weight=2"],
         "(the model's weights are named like module.module.output_layer.weight); "
         "use e.g. --lr-mult '*module.output_layer.weight=2'"),
        (["--peft", "none", "--lr-mult", "*decoder.layers.24.*=2"], "--size 0.5b --peft none run trains"),
    ],
)
def test_a_pattern_matching_no_trainable_parameter_is_exit_2_in_one_line(tmp_path, capsys, argv, message):
    from nemo_resume.cli.recipe_cmd import run_script

    code = run_script("finetune", ["--dir", str(tmp_path), *argv, "--dry-run"], prog="p")
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("p: error: --lr-mult ") and message in err[0], captured
    assert not (tmp_path / "qwen25_finetune").exists()


def test_pretraining_with_tied_embeddings_has_no_output_layer_weight_on_one_stage(tmp_path):
    from nemo_resume.errors import NemoResumeError

    with pytest.raises(NemoResumeError, match=r"a --size 3b pre-training run trains.*'\*linear_fc2\*=0.5'"):
        _options(tmp_path, "--size", "3b", "--lr-mult", "*output_layer*=0.5", task="pretrain")
    # with stages, the last stage holds its own output weight (megatron-core's GPTModel)
    _options(tmp_path, "--size", "3b", "--pp", "2", "--lr-mult", "*output_layer*=0.5", task="pretrain")
    _options(tmp_path, "--size", "7b", "--lr-mult", "*output_layer*=0.5", task="pretrain")


@pytest.mark.parametrize(
    "argv",
    [
        ["--lr-mult", "*adapter*=2"],
        ["--lr-mult", "*linear_fc2*=0.5"],  # the linear_fc2 adapters
        ["--peft", "dora", "--lr-mult", "*weight_magnitude*=2"],
        ["--peft", "none", "--lr-mult", "*layer_norm_weight*=2"],  # Transformer Engine spec (GPU)
        ["--peft", "none", "--lr-mult", "*input_layernorm*=2"],  # local spec
        ["--peft", "none", "--lr-mult", "*decoder.layers.[0-9].*=0.5", "--lr-mult", "*embedding*=0.5"],
    ],
)
def test_patterns_matching_trainable_parameters_are_accepted(tmp_path, argv):
    given = [argv[i + 1].rpartition("=")[0] for i, a in enumerate(argv) if a == "--lr-mult"]
    opts = _options(tmp_path, *argv)
    assert opts.lr_mult is not None and list(opts.lr_mult.patterns) == given


@pytest.mark.nemo
def test_layer_counts_and_tied_embeddings_are_the_configs_the_recipes_build(tmp_path, monkeypatch):
    import fiddle as fdl

    from nemo_resume.recipes.options import SIZES
    from nemo_resume.recipes.qwen25 import _stock_recipe

    monkeypatch.setenv("NEMORUN_HOME", str(tmp_path / "nemorun"))
    assert set(NUM_LAYERS) == set(SIZES)
    tied = set()
    for size in SIZES:
        config = fdl.build(_stock_recipe(_options(tmp_path, "--size", size, task="pretrain")).model.config)
        assert NUM_LAYERS[size] == config.num_layers, (size, type(config).__name__)
        if config.share_embeddings_and_output_weights:
            tied.add(size)
        names = trainable_names(size, "none")
        assert max(int(m.group(1)) for n in names if (m := LAYER.search(n))) == config.num_layers - 1
    assert tied == set(TIED_EMBEDDINGS)


@pytest.mark.nemo
def test_lora_and_dora_default_targets_are_the_catalogues():
    from nemo.collections.llm.peft import DoRA, LoRA

    assert LoRA().target_modules == DoRA().target_modules == list(PEFT_TARGETS)
    names = trainable_names("0.5b", "lora")
    assert {n.split(".adapter.")[0].rsplit(".", 1)[1] for n in names} == set(PEFT_TARGETS)


def _real_trainable_names() -> dict:
    """In a fresh process: the tiny GPT of tests.support.megatron_ckpt, NeMo's PEFT applied as the recipes
    apply it (``LoRA()``/``DoRA()`` freeze the model and wrap the targets), then NeMo's ``bf16-mixed``
    ``convert_module`` and NeMo's DDP: the names ``setup_megatron_optimizer`` hands ``_get_param_groups``."""
    from types import SimpleNamespace

    from tests.support.megatron_ckpt import GPT_CONFIG, _build_gpt, _init_single_process_group, _install_cpu_stand_ins

    _install_cpu_stand_ins()
    import nemo.collections.llm.peft.lora as nemo_lora
    import nemo.collections.llm.peft.utils as nemo_peft_utils
    import torch
    import torch.distributed as dist
    from megatron.core.distributed import DistributedDataParallelConfig
    from megatron.core.models.gpt.gpt_layer_specs import get_gpt_layer_local_spec
    from nemo.collections.llm import fn
    from nemo.collections.llm.peft import DoRA, LoRA
    from nemo.lightning.megatron_parallel import DDP
    from nemo.lightning.pytorch.plugins.mixed_precision import MegatronMixedPrecision

    # No Transformer Engine on CPU: megatron-core's MagicMock stand-ins pass NeMo's HAVE_TE check, and
    # LoRA.transform compares with te.Linear unguarded. Say it is absent (the GPU path is the TE spec).
    nemo_peft_utils.HAVE_TE = False
    nemo_lora.te = SimpleNamespace(Linear=type("TransformerEngineLinearAbsent", (), {}))

    class Chunk(fn.FNMixin, torch.nn.Module):  # what MegatronParallel holds: a module with .module
        def __init__(self, module: torch.nn.Module) -> None:
            super().__init__()
            self.module = module

    out: dict = {"num_layers": GPT_CONFIG["num_layers"], "keys_map": get_gpt_layer_local_spec(
        normalization="RMSNorm").submodules.sharded_state_dict_keys_map}
    with tempfile.TemporaryDirectory() as tmp:
        _init_single_process_group(Path(tmp))
        try:
            for peft, transform in (("none", None), ("lora", LoRA()), ("dora", DoRA())):
                _, gpt = _build_gpt(1234)
                chunk = Chunk(gpt)
                if transform is not None:
                    chunk = transform(chunk)
                chunk = MegatronMixedPrecision(precision="bf16-mixed").convert_module(chunk)
                ddp = DDP(gpt.config, DistributedDataParallelConfig(use_distributed_optimizer=False), chunk.module)
                out[peft] = [n for n, p in ddp.named_parameters() if p.requires_grad]
        finally:
            dist.destroy_process_group()
    return out


@pytest.fixture(scope="module")
def real_names():
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "tests.recipes.test_param_names"], cwd=ROOT, capture_output=True,
                          text=True, env=env, timeout=300)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout[-2000:] + proc.stderr[-4000:]
    return json.loads(lines[-1][len("RESULT "):])


def _first_layers(names, count: int) -> set[str]:
    return {n for n in names if not (m := LAYER.search(n)) or int(m.group(1)) < count}


@pytest.mark.nemo
@pytest.mark.slow
@pytest.mark.parametrize("peft", ["lora", "dora"])
def test_with_peft_the_catalogue_is_exactly_the_adapters_nemo_leaves_trainable(real_names, peft):
    real = set(real_names[peft])
    assert real and all(".adapter." in n for n in real)
    for size in NUM_LAYERS:
        assert _first_layers(trainable_names(size, peft), real_names["num_layers"]) == real, size


@pytest.mark.nemo
@pytest.mark.slow
def test_full_training_catalogue_is_every_real_name_in_both_layer_specs(real_names):
    real = set(real_names["none"])
    # the Transformer Engine spec's names for the local spec's layer norms, by megatron-core's own map
    te = {n.replace(f".{old}", f".{new}") for n in real for old, new in real_names["keys_map"].items() if f".{old}" in n}
    assert te and all("layer_norm_weight" in n for n in te)
    for size in NUM_LAYERS:
        pp = 2 if size in TIED_EMBEDDINGS else 1  # the tiny GPT has its own output layer
        assert _first_layers(trainable_names(size, "none", pp), real_names["num_layers"]) == real | te, size
    assert not any("output_layer" in n for size in TIED_EMBEDDINGS for n in trainable_names(size, "none"))


if __name__ == "__main__":
    print("RESULT " + json.dumps(_real_trainable_names()))


def test_with_pipeline_stages_names_are_the_stages_own_and_layers_global():
    """Each stage numbers its layers from 0 (the name a pattern sees); the decay follows the global layer."""
    from nemo_resume.recipes.param_names import group_mults, trainable_places
    from nemo_resume.schedules.lr_mult import LrMultPlan, LrMultRule

    places = trainable_places("0.5b", "none", pp=2)
    first = {p.layer for p in places if ".decoder.layers.0." in p.name}
    assert first == {1, 13} and {p.layer for p in places if p.layer} == set(range(1, 25))
    (out,) = [p for p in trainable_places("3b", "none", pp=2) if "output_layer" in p.name]
    assert out.embedding  # tied: the last stage's copy of the embedding takes the embedding's multiplier
    decay = LrMultPlan((), 0.9)
    assert group_mults(decay, "0.5b", "none", pp=2) == group_mults(decay, "0.5b", "none") == tuple(
        0.9**k for k in range(1, 25))
    first_layers = LrMultPlan((LrMultRule("*decoder.layers.0.*", 0.5),))
    assert group_mults(first_layers, "0.5b", "none", pp=2) == (0.5,)
