"""The disk estimate: parameter counts against an independent count, the bytes against real NeMo checkpoints,
and the keep count read from the recipes as they are built."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest

from nemo_resume.environment.checkpoint_size import ModelShape

pytestmark = pytest.mark.nemo

#: Qwen2.5-0.5B as Hugging Face publishes it: 494,032,768 parameters, input and output embeddings tied.
QWEN25_05B_TIED = 494_032_768
CONFIGS = ["Qwen25Config500M", "Qwen25Config1P5B", "Qwen25Config3B", "Qwen25Config7B", "Qwen25Config14B",
           "Qwen25Config32B", "Qwen25Config72B"]


def _nemo_config(name: str):
    from nemo.collections import llm

    return getattr(llm, name)()


def _hf_count(config) -> int:
    """The same architecture built by transformers' own Qwen2 class on the meta device (no memory), counted."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    hf = Qwen2Config(vocab_size=config.vocab_size, hidden_size=config.hidden_size,
                     intermediate_size=config.ffn_hidden_size, num_hidden_layers=config.num_layers,
                     num_attention_heads=config.num_attention_heads, num_key_value_heads=config.num_query_groups,
                     tie_word_embeddings=config.share_embeddings_and_output_weights)
    with torch.device("meta"):
        model = Qwen2ForCausalLM(hf)
    return sum(p.numel() for p in model.parameters())


def test_qwen25_05b_count_is_the_published_one_when_tied_and_nemo_unties_it():
    shape = ModelShape.from_config(_nemo_config("Qwen25Config500M"))
    assert not shape.tied_embeddings  # NeMo 2.7.3's Qwen25Config500M keeps a separate output layer
    assert dataclasses.replace(shape, tied_embeddings=True).parameter_count() == QWEN25_05B_TIED
    assert shape.parameter_count() == QWEN25_05B_TIED + shape.vocab_size * shape.hidden_size


@pytest.mark.parametrize("name", CONFIGS)
def test_every_qwen25_size_counts_as_transformers_builds_it(name):
    config = _nemo_config(name)
    assert ModelShape.from_config(config).parameter_count() == _hf_count(config)


# ------------------------------------------------------------------------- against real NeMo checkpoints


def _tensor_bytes(ckpt: Path) -> int:
    """Every tensor byte torch DCP's ``weights/.metadata`` lists (model and optimizer state; no file overhead)."""
    from torch.distributed.checkpoint import FileSystemReader

    meta = FileSystemReader(str(ckpt / "weights")).read_metadata()
    return sum(math.prod(m.size) * m.properties.dtype.itemsize
               for m in meta.state_dict_metadata.values() if hasattr(m, "size"))


def _rehearsal_launch(flags: list[str], devices: int, dist_opt: bool):
    """The doctor's Launch of the recipe the fixture rehearsed (``tests.support.megatron_runs``), shrunk the same way."""
    from nemo_resume.environment import launch_from_recipe
    from nemo_resume.recipes.launch import prepare
    from nemo_resume.recipes.options import build_parser, options_from_args
    from nemo_resume.recipes.qwen25 import qwen25_recipe
    from nemo_resume.smoke.rehearsal import cpu_rehearsal

    opts = options_from_args("pretrain", build_parser("pretrain", "t").parse_args([*flags, "--dir", "unused"]))
    prepared = prepare(opts, smoke_devices=devices)
    recipe = cpu_rehearsal(qwen25_recipe(prepared.opts, prepared.plan), devices=devices, dist_opt=dist_opt)
    return launch_from_recipe(recipe, interval_saves=1, executor="local", container_image=None)


@pytest.mark.megatron
@pytest.mark.parametrize(("fixture", "devices", "dist_opt", "per_param"), [
    ("megatron_incident_ckpt", 1, True, 4 + 12),  # the distributed optimizer saves an fp32 master copy too
    ("megatron_plain_ckpt", 2, False, 4 + 8),  # fp32 weights without it: Adam's two moments only
])
def test_one_checkpoint_is_as_big_as_nemo_writes_it(request, fixture, devices, dist_opt, per_param):
    from tests.support.megatron_runs import INCIDENT

    ckpt = request.getfixturevalue(fixture)
    estimate = _rehearsal_launch(INCIDENT, devices, dist_opt).checkpoints
    assert estimate.weight_bytes + estimate.optimizer_bytes == per_param
    assert estimate.checkpoint_bytes == _tensor_bytes(ckpt)


# ------------------------------------------------------------------------- what the recipes keep


def _launch(task: str, flags: list[str]):
    from nemo_resume.cli.doctor_cmd import build_parser
    from nemo_resume.recipes.launch import launch_for, prepare
    from nemo_resume.recipes.options import options_from_args
    from nemo_resume.recipes.qwen25 import qwen25_recipe

    args = build_parser(task, "t").parse_args(["--task", task, *flags, "--dir", "unused"])
    opts = options_from_args(task, args)
    prepared = prepare(opts)
    return launch_for(opts, qwen25_recipe(prepared.opts, prepared.plan), smoke=False)


def test_seed_004_keeps_its_50_checkpoints_plus_the_last_and_one_being_written():
    c = _launch("pretrain", ["--lr-stages", "75:1e-4,50:1e-5", "--save-from-step", "75",
                             "--checkpoint-every", "1"]).checkpoints
    assert (c.save_top_k, c.interval_saves, c.kept, c.copies) == (-1, 50, 50, 52)
    assert c.needed_bytes == 52 * c.saved_params * 14  # bf16 weights + fp32 master + Adam's moments


@pytest.mark.parametrize(("task", "top_k"), [("pretrain", 10), ("finetune", 2)])  # NeMo's default_log, finetune log
def test_the_stock_save_top_k_bounds_what_is_kept(task, top_k):
    c = _launch(task, ["--max-steps", "1000", "--checkpoint-every", "50"]).checkpoints
    assert (c.save_top_k, c.interval_saves, c.kept, c.copies) == (top_k, 20, top_k, top_k + 2)


def test_lora_checkpoints_hold_the_adapters_only():
    c = _launch("finetune", ["--peft", "lora"]).checkpoints
    assert c.adapters is not None and (c.adapters.kind, c.adapters.dim) == ("LoRA", 32)
    # NeMo's LoRA on the four linears of each of the 24 layers: dim x (in + out), fc1's out doubled (SwiGLU)
    h, qkv, ffn = 896, (14 + 2 * 2) * 64, 4864
    per_layer = 32 * ((h + qkv) + (h + h) + (h + 2 * ffn) + (ffn + h))
    assert c.saved_params == 24 * per_layer < c.shape.parameter_count() // 40
