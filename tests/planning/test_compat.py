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
    from nemo_resume.planning.compat import compat_problems
    from nemo_resume.planning.new_run import NewRun

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


def _pretraining(layout, **recorded):
    """A PreTrainingDataModule run (the class common.pt keys the data position by) of 60 steps at global batch 4,
    saved at step 20 (80 samples consumed)."""
    fields = dict(datamodule="PreTrainingDataModule", max_steps=60, global_batch_size=4, consumed_samples=80,
                  global_step=20)
    return replace(layout, **{**fields, **recorded})


@pytest.mark.parametrize(("new", "fix"), [
    (dict(max_steps=72), "The resume reads 288 samples, more than the old run's dataset"),
    (dict(global_batch_size=8), "The resume reads 480 samples"),
    (dict(max_steps=50), "pass PreTrainingDataModule(num_train_samples=240)"),
], ids=["max_steps grows", "batch doubles", "max_steps shrinks"])
def test_another_pretraining_dataset_size_warns_that_the_order_can_change(dist_opt, new, fix):
    p = _codes(_pretraining(dist_opt), **new)["DATA_ORDER_CHANGED"]
    assert p.severity == "warning" and "the checkpoint's run to 240" in p.message and fix in p.message
    assert "the recipes measure it from --data" in p.message  # no token count: the order may change


def test_the_same_dataset_size_or_the_kept_one_keeps_the_order(dist_opt):
    ck = _pretraining(dist_opt)
    assert "DATA_ORDER_CHANGED" not in _codes(ck, max_steps=120, global_batch_size=2)  # the same 240
    assert _codes(ck, max_steps=50, num_train_samples=240) == {}  # the recipes' fix
    assert "DATA_ORDER_CHANGED" not in _codes(_pretraining(dist_opt, num_train_samples=300), max_steps=75)


def test_with_the_datasets_tokens_only_another_epoch_layout_warns(dist_opt):
    """240 samples of 32 tokens over 10000 tokens an epoch is one epoch; 288 too; 400 is two (the last apart)."""
    ck = _pretraining(dist_opt, seq_length=32)
    assert _codes(ck, max_steps=72, train_tokens=10_000) == {}
    p = _codes(ck, max_steps=100, train_tokens=10_000)["DATA_ORDER_CHANGED"]
    assert "10000 training tokens per epoch that is 1 epoch before and 2 epochs, the last shuffled apart now" in p.message


@pytest.mark.parametrize(("new", "step", "where"), [
    (dict(global_batch_size=2, max_steps=30), None, "no samples left to consume"),
    (dict(global_batch_size=2, max_steps=100), 80, "the data runs out at step 80"),
], ids=["at the start", "mid-run"])
def test_a_smaller_batch_that_reads_past_the_dataset_is_an_error(dist_opt, new, step, where):
    """80 samples consumed at step 20; global batch 2: NeMo builds max_steps x 2, too few for what the resume reads."""
    p = _codes(_pretraining(dist_opt), **new)["DATA_EXHAUSTED"]
    assert p.severity == "error" and p.step == step and where in p.message
    needed = 80 + (new["max_steps"] - 20) * 2
    assert f"Pass PreTrainingDataModule(num_train_samples={needed})" in p.message
    assert "DATA_EXHAUSTED" not in _codes(_pretraining(dist_opt), **new, num_train_samples=needed)


def test_nemos_sampler_fails_or_repeats_as_data_exhausted_says():
    """What the DATA_EXHAUSTED message cites, on NeMo's own sampler: consumed samples at or past the dataset's end
    fail at once; otherwise each new epoch reads again from the consumed samples."""
    from nemo.lightning.data import MegatronPretrainingSampler

    def sampler(consumed):
        return MegatronPretrainingSampler(total_samples=30, consumed_samples=consumed, micro_batch_size=1,
                                          data_parallel_rank=0, data_parallel_size=1, global_batch_size=2)

    with pytest.raises(RuntimeError, match="no samples left to consume"):
        sampler(30)
    s = sampler(20)
    assert list(s) == list(s) == [[i] for i in range(20, 30)]


def test_the_planned_dataset_size_is_the_old_runs_or_what_the_resume_reads(dist_opt):
    from nemo_resume.planning.compat import planned_train_samples
    from nemo_resume.planning.new_run import NewRun

    ck = _pretraining(dist_opt)
    assert planned_train_samples(ck, NewRun(max_steps=50)) == 240  # shrinking: the old run's dataset
    assert planned_train_samples(ck, NewRun(max_steps=72)) is None  # growing: NeMo's own 288
    assert planned_train_samples(ck, NewRun(max_steps=100, global_batch_size=2)) == 240  # needs 240
    assert planned_train_samples(ck, NewRun(max_steps=200, global_batch_size=2)) == 440  # needs 440 > 400
    assert planned_train_samples(dist_opt, NewRun(max_steps=50)) is None  # MockDataModule


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


def test_a_peft_resume_on_another_base_is_an_error(dist_opt, tmp_path):
    """NeMo's PEFT callback loads the base adapter_metadata.json names, not the run's restore_config."""
    (tmp_path / "old").mkdir()
    (tmp_path / "new").mkdir()
    lora = replace(dist_opt, peft="lora", peft_base=str(tmp_path / "old"))
    p = _codes(lora, peft_base=str(tmp_path / "new"))["PEFT_BASE_CHANGED"]
    assert p.severity == "error" and str(tmp_path / "old") in p.message and str(tmp_path / "new") in p.message
    assert _codes(lora, peft_base=str(tmp_path / "new" / ".." / "old")) == {}  # the same folder, spelled another way
    assert _codes(lora) == {}  # NeMo's default base: nothing to compare
