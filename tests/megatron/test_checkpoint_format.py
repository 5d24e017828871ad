"""What NeMo's ``MegatronStrategy`` writes with megatron-core's distributed optimizer (nemo 2.7.3, megatron-core
0.15.3), as the shared fixtures hold it: the facts the inspector relies on, checked against torch's own readers."""

from __future__ import annotations

import json

import pytest

pytestmark = [pytest.mark.nemo, pytest.mark.slow, pytest.mark.megatron]


def _torch_load(path):
    import torch

    return torch.load(path, map_location="cpu", weights_only=False)


def _dcp_keys(weights) -> set[str]:
    from torch.distributed.checkpoint import FileSystemReader

    return set(FileSystemReader(str(weights)).read_metadata().state_dict_metadata)


def test_a_distributed_optimizer_checkpoint(megatron_incident_ckpt):
    weights = megatron_incident_ckpt / "weights"
    # the folder is named for global_step - 1 (Lightning's step counter at save time), 2 samples a step
    assert megatron_incident_ckpt.name == "model_name=0--val_loss=0.00-step=19-consumed_samples=40.0"
    assert json.loads((weights / "metadata.json").read_text())["sharded_backend"] == "torch_dist"
    assert (megatron_incident_ckpt / "context" / "io.json").is_file()

    keys = _dcp_keys(weights)
    assert {"module.output_layer.weight", "module.decoder.layers.self_attention.linear_qkv.weight"} <= keys
    # the param groups (with each group's LR) are a ShardedObject in the .distcp files, not in common.pt
    assert "optimizer.distributed.dp_group_idx_0.optimizer/shard_0_1" in keys

    common = _torch_load(weights / "common.pt")
    assert common["global_step"] == 20
    assert common["lr_schedulers"][0]["min_lr"] == 3e-5
    assert common["lr_schedulers"][0]["base_lrs"] == [1e-5, 1e-5]  # megatron-core's weight-decay split
    assert common["optimizer"] == [{"param_state_sharding_type": "dp_reshardable"}]
    assert common["content_metadata"]["distrib_optim_sharding_type"] == "dp_reshardable"
    assert "param_groups" not in str(common["optimizer"])


def test_the_weights_only_checkpoint_nemo_writes_at_the_end(megatron_finished_ckpt):
    weights = megatron_finished_ckpt / "weights"
    common = _torch_load(weights / "common.pt")
    assert common["global_step"] == 6
    assert not {"optimizer", "lr_schedulers"} & set(common)
    keys = _dcp_keys(weights)
    assert "module.output_layer.weight" in keys
    assert not any(k.startswith("optimizer.") for k in keys)
