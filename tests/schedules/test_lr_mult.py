"""``--lr-mult PATTERN=MULT`` onto MegatronOptimizerModule's one scale_lr_cond/lr_mult pair, through real megatron-core."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nemo_resume.errors import NemoResumeError
from nemo_resume.schedules.lr_mult import LrMultPlan, LrMultRule, lr_mult_plan, parse_lr_mult

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


def test_patterns_with_one_multiplier_become_one_condition():
    rules = [parse_lr_mult("*linear_fc2*=0.5"), parse_lr_mult("*output_layer*=0.5"), parse_lr_mult("*linear_fc2*=0.5")]
    assert lr_mult_plan(rules) == LrMultPlan(("*linear_fc2*", "*output_layer*"), 0.5)
    assert lr_mult_plan([]) is None


def test_two_multipliers_are_refused_because_nemo_takes_one_pair():
    with pytest.raises(NemoResumeError) as err:
        lr_mult_plan([parse_lr_mult("*adapter*=0.5"), parse_lr_mult("*output_layer*=5")])
    assert str(err.value) == (
        "--lr-mult '*adapter*=0.5' --lr-mult '*output_layer*=5': NeMo's MegatronOptimizerModule takes one scale_lr_cond "
        "and one lr_mult (megatron-core gives each parameter lr or lr * lr_mult), so 2 multipliers cannot apply; give "
        "every pattern the same MULT"
    )


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
