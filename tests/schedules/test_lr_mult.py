"""``--lr-mult PATTERN=MULT`` and ``--layer-lr-decay``: one multiplier onto MegatronOptimizerModule's own
scale_lr_cond/lr_mult pair, several (or a decay) through LrMultOptimizerModule's regrouping, both on real megatron-core."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nemo_resume.errors import NemoResumeError
from nemo_resume.schedules.lr_mult import LrMultPlan, LrMultRule, ParamPlace, lr_mult_plan, parse_lr_mult

HELPER = Path(__file__).resolve().parents[1] / "support" / "megatron_groups.py"
ROOT = Path(__file__).resolve().parents[2]


def test_pattern_and_multiplier_parse_with_the_last_equals_sign():
    assert parse_lr_mult("*lora*=0.5") == LrMultRule("*lora*", 0.5)
    assert parse_lr_mult("*a=b*=2") == LrMultRule("*a=b*", 2.0)


@pytest.mark.parametrize("text", ["0.5", "*lora*=", "=0.5", "*x*=0", "*x*=-1", "*x*=inf", "*x*=half"])
def test_malformed_lr_mult_is_a_one_line_error_with_the_form(text):
    with pytest.raises(NemoResumeError) as err:
        parse_lr_mult(text)
    assert str(err.value).startswith(f"--lr-mult {text}: write PATTERN=MULT")


def test_patterns_with_one_multiplier_are_nemos_own_pair():
    rules = [parse_lr_mult("*linear_fc2*=0.5"), parse_lr_mult("*output_layer*=0.5"), parse_lr_mult("*linear_fc2*=0.5")]
    plan = lr_mult_plan(rules)
    assert plan is not None and plan.stock and plan.patterns == ("*linear_fc2*", "*output_layer*") and plan.mult == 0.5
    assert lr_mult_plan([]) is None


def test_several_multipliers_take_the_first_rule_a_name_matches():
    plan = lr_mult_plan([parse_lr_mult("*output_layer*=5"), parse_lr_mult("*decoder*=0.5"), parse_lr_mult("*=2")])
    assert plan is not None and not plan.stock
    assert plan.specs == ("*output_layer*=5", "*decoder*=0.5", "*=2")
    at = {n: plan.mult_for(ParamPlace(n), 24) for n in ("m.output_layer.weight", "m.decoder.layers.3.mlp.weight",
                                                           "m.embedding.word_embeddings.weight")}
    assert at == {"m.output_layer.weight": 5.0, "m.decoder.layers.3.mlp.weight": 0.5,
                  "m.embedding.word_embeddings.weight": 2.0}


def test_layer_wise_decay_is_seed_001s_formula_below_the_rules():
    """Seed 001: layer i of L at decay^(L - 1 - i) (``layer`` is megatron's 1-based number, i + 1); the embedding one
    step below the first layer, the output layer and final norm at 1; a rule wins over the decay."""
    plan = LrMultPlan((LrMultRule("*output_layer*", 5.0),), 0.9)
    assert [plan.mult_for(ParamPlace("m.decoder.layers.x", layer), 4) for layer in (1, 2, 3, 4)] == [
        0.9**3, 0.9**2, 0.9, 1.0]
    assert plan.mult_for(ParamPlace("m.embedding.word_embeddings.weight", embedding=True), 4) == 0.9**4
    assert plan.mult_for(ParamPlace("m.decoder.final_layernorm.weight"), 4) == 1.0
    assert plan.mult_for(ParamPlace("m.output_layer.weight"), 4) == 5.0
    places = [ParamPlace("m.decoder.layers.x", layer) for layer in (1, 2, 3, 4)] + [ParamPlace("m.output_layer.weight")]
    assert plan.mults(places, 4) == (5.0, 0.9, 0.9**2, 0.9**3)  # the request's groups besides 1.0, largest first


@pytest.mark.parametrize("factor", [0.0, 1.0, 1.5, -0.5, math.nan, math.inf])
def test_a_decay_factor_outside_0_to_1_is_refused_with_the_formula(factor):
    with pytest.raises(NemoResumeError) as err:
        lr_mult_plan([], factor)
    assert str(err.value).startswith(f"--layer-lr-decay {factor:g}: give a factor between 0 and 1")


def test_one_pattern_with_two_multipliers_is_refused():
    with pytest.raises(NemoResumeError) as err:
        lr_mult_plan([parse_lr_mult("*adapter*=0.5"), parse_lr_mult("*adapter*=5")])
    assert str(err.value).startswith("--lr-mult '*adapter*=0.5' --lr-mult '*adapter*=5': one pattern with two multipliers")


@pytest.mark.nemo
def test_param_name_match_is_a_glob_over_full_names():
    from nemo_resume.schedules.param_match import ParamNameMatch

    cond = ParamNameMatch(["*linear_fc2*", "*output_layer*"])
    assert cond("module.decoder.layers.3.mlp.linear_fc2.weight", None)
    assert cond("module.output_layer.weight", None)
    assert not cond("module.decoder.layers.3.mlp.linear_fc1.weight", None)
    lower = ParamNameMatch(["*decoder.layers.[0-9].*"])  # docs/schedules.md: layers 0-9 only
    assert lower("module.decoder.layers.9.mlp.linear_fc1.weight") and not lower(
        "module.decoder.layers.13.mlp.linear_fc1.weight"
    )
    # NeMo's Megatron LoRA adapters are "...adapter.linear_in.weight": "*lora*" matches none of them
    assert not ParamNameMatch(["*lora*"])("module.decoder.layers.0.self_attention.linear_qkv.adapter.linear_in.weight")


@pytest.fixture(scope="module")
def megatron_groups():
    """Real megatron-core param groups and the staged scheduler on them (a gloo subprocess, about 10 s)."""
    spec = {"patterns": ["*linear_fc2*", "*output_layer*"], "lr_mult": 0.5, "stages": "3:1e-3,2:1e-4", "lr": 1e-3}
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, str(HELPER), json.dumps(spec)], capture_output=True, text=True, env=env, timeout=300
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout[-2000:] + proc.stderr[-4000:]
    return json.loads(lines[-1][len("RESULT ") :])


@pytest.mark.nemo
@pytest.mark.slow
def test_megatron_core_scales_exactly_the_matched_parameters(megatron_groups):
    groups = megatron_groups["groups"]
    scaled = [g for g in groups if g["lr"] == pytest.approx(5e-4)]
    assert len(scaled) == 1 and scaled[0]["names"] == [
        "module.decoder.layers.0.mlp.linear_fc2.weight",
        "module.decoder.layers.1.mlp.linear_fc2.weight",
        "module.output_layer.weight",
    ]
    # every other trainable parameter trains at lr (megatron also splits them by weight decay)
    others = sorted(n for g in groups if g is not scaled[0] for n in g["names"])
    assert others == sorted(set(megatron_groups["trainable"]) - set(scaled[0]["names"]))
    assert all(g["lr"] == pytest.approx(1e-3) for g in groups if g is not scaled[0])


@pytest.mark.nemo
@pytest.mark.slow
def test_several_multipliers_and_a_decay_regroup_megatron_cores_own_groups():
    """LrMultOptimizerModule's regrouping on megatron-core's _get_param_groups (the tiny GPT: 2 layers): each group
    keyed (lr_mult, wd_mult) as megatron keys them, NeMo's lr = lr * lr_mult, the scheduler driving each."""
    spec = {"rules": ["*output_layer*=5", "*linear_fc1*=0.5"], "layer_lr_decay": 0.9, "stages": "6:1e-3", "lr": 1e-3}
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, str(HELPER), json.dumps(spec)], capture_output=True, text=True, env=env,
                          timeout=300)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout[-2000:] + proc.stderr[-4000:]
    groups = json.loads(lines[-1][len("RESULT "):])["groups"]
    by_key = {(g["lr_mult"], g["wd_mult"]): g for g in groups}
    assert len(by_key) == len(groups) == 7
    assert by_key[(0.9**2, 1.0)]["names"] == ["module.embedding.word_embeddings.weight"]
    assert by_key[(5.0, 1.0)]["names"] == ["module.output_layer.weight"]
    assert by_key[(0.5, 1.0)]["names"] == ["module.decoder.layers.0.mlp.linear_fc1.weight",
                                           "module.decoder.layers.1.mlp.linear_fc1.weight"]
    assert "module.decoder.layers.0.self_attention.linear_qkv.weight" in by_key[(0.9, 1.0)]["names"]
    assert "module.decoder.layers.0.input_layernorm.weight" in by_key[(0.9, 0.0)]["names"]  # no weight decay on norms
    assert "module.decoder.final_layernorm.weight" in by_key[(1.0, 0.0)]["names"]
    assert all(g["lr"] == pytest.approx(1e-3 * g["lr_mult"], rel=1e-15) for g in groups)


@pytest.mark.nemo
@pytest.mark.slow
def test_staged_scheduler_runs_on_megatrons_optimizer_keeping_the_multiplier(megatron_groups):
    lrs = {int(k): v for k, v in megatron_groups["lrs"].items()}
    scaled = [i for i, g in enumerate(megatron_groups["groups"]) if g["lr"] == pytest.approx(5e-4)][0]
    for step, stage_lr in ((0, 1e-3), (2, 1e-3), (3, 1e-4), (5, 1e-4)):
        assert [lr / stage_lr for lr in lrs[step]] == pytest.approx(
            [0.5 if i == scaled else 1.0 for i in range(len(lrs[step]))]
        )
    assert megatron_groups["state"]["stages"] == [
        {"steps": 3, "lr": 1e-3, "warmup_steps": 0},
        {"steps": 2, "lr": 1e-4, "warmup_steps": 0},
    ]
