"""The planner's predictions beyond the LR (``nemo_resume.planning.compat``), on layouts read from checkpoints NeMo's
real Megatron path wrote on CPU (the session rehearsals). A trap the rehearsals cannot write (an old format, a PEFT
base moved away, no datamodule state) is that real layout with the one recorded value changed."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from tests.support.fuzz import call_cli

pytestmark = [pytest.mark.nemo, pytest.mark.megatron]

PLAN = ["--lr", "1e-5", "--min-lr", "1e-6", "--max-steps", "60", "--warmup-steps", "30", "--lr-policy", "smooth"]


@pytest.fixture(scope="module")
def dist_opt(megatron_incident_ckpt):
    from nemo_resume.inspection import inspect_path

    return inspect_path(megatron_incident_ckpt).latest.state.run_layout


def _codes(layout, **new):
    from nemo_resume.planning.compat import NewRun, compat_problems

    return {p.code: p for p in compat_problems(layout, NewRun(**new))}


def test_the_same_layout_predicts_nothing(dist_opt):
    assert _codes(dist_opt) == {}
    assert _codes(dist_opt, tp=1, pp=1, cp=1, devices=1, num_nodes=1, global_batch_size=2, lr_mults=()) == {}


@pytest.mark.parametrize("flag", ["tp", "pp"])
def test_a_model_parallel_change_on_dp_reshardable_is_an_error(dist_opt, flag):
    p = _codes(dist_opt, **{flag: 2})["OPTIMIZER_NOT_RESHARDABLE"]
    assert p.severity == "error" and f"--{flag} 1 -> 2" in p.message and "dp_reshardable" in p.message


@pytest.mark.parametrize("new", [dict(devices=2), dict(num_nodes=4), dict(cp=2)], ids=["dp", "nodes", "cp"])
def test_data_and_context_parallel_changes_load(dist_opt, new):
    assert "OPTIMIZER_NOT_RESHARDABLE" not in _codes(dist_opt, **new)


def test_the_plain_optimizer_reshards_in_every_dimension(megatron_run):
    from nemo_resume.inspection import inspect_path

    plain = inspect_path(megatron_run(False, 1).run_dir).latest.state.run_layout
    assert _codes(plain, tp=2, pp=2) == {}


def test_another_lr_mult_changes_the_group_keys(dist_opt):
    p = _codes(dist_opt, lr_mults=(0.5,))["PARAM_GROUPS_CHANGED"]
    assert p.severity == "error" and "(1, 0), (1, 1)" in p.message and "distrib_optimizer.py:733-760" in p.message
    assert "PARAM_GROUPS_CHANGED" not in _codes(dist_opt, lr_mults=(1.0,))  # megatron-core's own 1.0 group


def test_a_global_batch_change_says_what_the_data_and_tokens_become(dist_opt):
    p = _codes(dist_opt, global_batch_size=4, max_steps=60)["GLOBAL_BATCH_SIZE_CHANGED"]
    assert p.severity == "warning"
    assert "--global-batch-size 2 (derived from consumed_samples/global_step) -> 4" in p.message
    assert "(40 at step 20)" in p.message
    assert "the 40 steps left to max_steps 60 consume 160 samples, not 80 (ending at sample 200)" in p.message
    assert "each step trains 128 tokens, not 64" in p.message and "see DATA_ORDER_CHANGED" in p.message
    assert "DATA_ORDER_CHANGED" not in _codes(dist_opt, global_batch_size=4, max_steps=60)  # MockDataModule: fixed size


@pytest.mark.parametrize(("new", "fix"), [
    (dict(max_steps=72), "keep max_steps x global batch at 240"),
    (dict(global_batch_size=8), "keep max_steps x global batch at 240"),
    (dict(max_steps=50), "num_train_samples=240"),
], ids=["max_steps grows", "batch doubles", "max_steps shrinks"])
def test_another_pretraining_dataset_size_warns_that_the_order_can_change(dist_opt, new, fix):
    """A PreTrainingDataModule run (the class common.pt keys the data position by) of 60 steps at global batch 4."""
    pretraining = replace(dist_opt, datamodule="PreTrainingDataModule", max_steps=60, global_batch_size=4)
    p = _codes(pretraining, **new)["DATA_ORDER_CHANGED"]
    assert p.severity == "warning" and "the run's was 60 x 4 = 240" in p.message and fix in p.message
    assert "gpt_dataset.py:369-393" in p.message
    assert "DATA_ORDER_CHANGED" not in _codes(pretraining, max_steps=120, global_batch_size=2)  # the same 240


def test_the_layout_names_the_datamodule_and_the_runs_max_steps(dist_opt):
    assert dist_opt.datamodule == "MockDataModule" and dist_opt.max_steps == 60


def test_no_datamodule_state_loses_the_data_position(dist_opt):
    p = _codes(replace(dist_opt, consumed_samples=None))["DATA_POSITION_LOST"]
    assert p.severity == "warning"


def test_a_peft_base_that_is_gone_is_an_error(dist_opt, tmp_path):
    moved = replace(dist_opt, peft="lora", peft_base=str(tmp_path / "base"))
    p = _codes(moved)["PEFT_BASE_MISSING"]
    assert p.severity == "error" and str(tmp_path / "base") in p.message
    (tmp_path / "base").mkdir()
    assert _codes(moved) == {}


def test_an_optimizer_format_megatron_core_would_not_request_is_an_error(dist_opt):
    """No content_metadata: megatron-core 0.15.3 requests fully_sharded_model_space, not the saved dp_reshardable."""
    p = _codes(replace(dist_opt, content_metadata=False))["CHECKPOINT_FORMAT_TOO_OLD"]
    assert p.severity == "error" and "fully_sharded_model_space" in p.message
    old = replace(dist_opt, optimizer_format="fully_sharded_model_space", saved_optimizer_format="fully_sharded_model_space")
    assert _codes(old)["CHECKPOINT_FORMAT_TOO_OLD"].severity == "warning"  # deprecated, still loads in 0.15.3


def test_plan_tp_2_on_a_dist_opt_checkpoint_is_refused(megatron_incident_ckpt):
    call = call_cli("plan", [str(megatron_incident_ckpt), *PLAN, "--tp", "2", "--json"])
    doc = json.loads(call.out)
    assert call.code == 1 and not doc["ok"]
    assert [p["code"] for p in doc["problems"]] == ["OPTIMIZER_NOT_RESHARDABLE"]


def test_plan_without_layout_flags_is_todays_plan(megatron_incident_ckpt):
    call = call_cli("plan", [str(megatron_incident_ckpt), *PLAN, "--json"])
    assert call.code == 0 and json.loads(call.out)["problems"] == []
    warned = call_cli("plan", [str(megatron_incident_ckpt), *PLAN, "--devices", "2", "--global-batch-size", "4"])
    assert warned.code == 0 and "WARNING GLOBAL_BATCH_SIZE_CHANGED" in warned.out


def test_a_bad_size_is_bad_input(megatron_incident_ckpt):
    call = call_cli("plan", [str(megatron_incident_ckpt), *PLAN, "--tp", "0"])
    assert call.code == 2 and "--tp" in call.err and "Traceback" not in call.err
