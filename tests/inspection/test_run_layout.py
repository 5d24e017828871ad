"""What a resume restores beyond the LR (``RunLayout``), read from checkpoints NeMo's real Megatron path wrote on CPU
(the session rehearsals: MegatronStrategy, megatron-core's optimizer, torch_dist), never from hand-made files."""

from __future__ import annotations

import json

import pytest

from tests.support.fuzz import call_cli

pytestmark = [pytest.mark.nemo, pytest.mark.megatron]


def _layout(path):
    from nemo_resume.inspection import inspect_path

    return inspect_path(path).latest.state.run_layout


def test_the_distributed_optimizer_checkpoint_records_its_layout(megatron_incident_ckpt):
    """INCIDENT on one CPU rank: 20 steps of MockDataModule at the rehearsal's global batch 2, the distributed
    optimizer's dp_reshardable state, megatron's weight-decay split."""
    from nemo_resume.checkpoint.run_layout import GBS_DERIVED

    r = _layout(megatron_incident_ckpt)
    assert (r.tp, r.pp, r.cp, r.ep, r.devices, r.num_nodes, r.dp) == (1, 1, 1, 1, 1, 1, 1)
    assert (r.consumed_samples, r.global_step) == (40, 20)
    assert (r.global_batch_size, r.global_batch_size_source) == (2, GBS_DERIVED)  # MockDataModule is no IOMixin
    assert (r.optimizer, r.distributed_optimizer, r.has_optimizer_state) == ("adam", True, True)
    assert (r.optimizer_format, r.saved_optimizer_format, r.content_metadata) == ("dp_reshardable", "dp_reshardable", True)
    assert r.group_keys == ((1.0, 0.0), (1.0, 1.0))  # (lr_mult, wd_mult): no --lr-mult, the weight-decay split
    assert (r.lr_mult, r.peft, r.peft_base) == (None, None, None)
    assert r.precision == "fp32" and r.lightning_version


def test_two_ranks_and_the_plain_optimizer(megatron_run):
    two, plain = _layout(megatron_run(True, 2).run_dir), _layout(megatron_run(False, 1).run_dir)
    assert (two.devices, two.dp, two.optimizer_format) == (2, 2, "dp_reshardable")
    assert (plain.distributed_optimizer, plain.optimizer_format, plain.saved_optimizer_format) == (False, None, None)
    assert plain.group_keys == ((1.0, 0.0), (1.0, 1.0))  # common.pt's groups carry the same keys


def test_inspect_reports_it_in_json_and_in_the_table(megatron_incident_ckpt):
    (ckpt,) = json.loads(call_cli("inspect", [str(megatron_incident_ckpt), "--json"]).out)["checkpoints"]
    layout = ckpt["run_layout"]
    assert (layout["tp"], layout["dp"], layout["global_batch_size"], layout["optimizer_format"]) == (1, 1, 2, "dp_reshardable")
    assert layout["group_keys"] == [{"lr_mult": 1.0, "wd_mult": 0.0}, {"lr_mult": 1.0, "wd_mult": 1.0}]
    out = call_cli("inspect", [str(megatron_incident_ckpt)]).out
    assert "parallel: TP 1, PP 1, CP 1, EP 1, DP 1 (devices 1 x nodes 1)" in out
    assert "data: global batch 2 (derived from consumed_samples/global_step), seq_length 32, consumed samples 40" in out
    assert "optimizer: adam, distributed, state format dp_reshardable; group keys (lr_mult, wd_mult) (1, 0) (1, 1)" in out


def test_saved_lists_keep_their_own_order_past_ten_items():
    """Regression: the patterns were sorted by path text, so ``[10]`` came before ``[2]``; for the rules of
    LrMultOptimizerModule the order is the meaning (the first rule a name matches wins)."""
    from nemo_resume.checkpoint.run_layout import _strings

    leaves = {f"<root>.model.optim.lr_mults[{i}]": f"*p{i}*=2" for i in range(12)}
    leaves["<root>.model.optim.lr_mults_other[0]"] = "*x*=3"  # another list whose name starts the same
    assert _strings(leaves, ".model.optim.lr_mults") == tuple(f"*p{i}*=2" for i in range(12))
