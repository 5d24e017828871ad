"""``nemo-resume inspect`` on the checkpoints NeMo's real Megatron path writes on CPU: each param group's LR is read
from the checkpoint itself, and it is the LR the run trained with.

The runs come from the ``megatron_run`` fixture (MegatronStrategy, megatron-core's optimizer with and without the
distributed optimizer, DP 1 and 2, CosineAnnealingScheduler). With the distributed optimizer the param groups are
not in ``weights/common.pt`` but in a ShardedObject inside a ``.distcp`` file: the report must say so
(``param_groups_source: "distcp"``) and give exactly the LR the live param groups had at that step
(``MegatronRun.lrs``), and every group field as torch DCP itself loads the object. Checkpoints are found by
nemo_resume's own discovery, never by name.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from tests.support.fuzz import call_cli

pytestmark = [pytest.mark.nemo, pytest.mark.megatron]

RUNS = [(True, 1), (True, 2), (False, 1)]
GROUP_FIELDS = ("lr", "initial_lr", "max_lr", "min_lr", "weight_decay")
MULT_KEYS = ("lr_mult", "wd_mult", "pre_lr_mult", "pre_wd_mult", "pre_mult_lr", "pre_mult_wd")


def _torch_common(ckpt: Path) -> dict[str, Any]:
    import torch

    return torch.load(ckpt / "weights" / "common.pt", weights_only=False)  # the fixture's own trusted run


def _torch_param_groups(ckpt: Path, dist_opt: bool) -> list[dict[str, Any]]:
    """The param groups as a resume loads them: from common.pt, or the distributed optimizer's ShardedObject read by
    torch DCP's own metadata reader and loaded as ``DefaultLoadPlanner.load_bytes`` does (torch.load of its bytes)."""
    import torch
    from torch.distributed.checkpoint import FileSystemReader

    if not dist_opt:
        return _torch_common(ckpt)["optimizer"][0]["param_groups"]
    weights = ckpt / "weights"
    metadata = FileSystemReader(str(weights)).read_metadata()
    (info,) = [i for k, i in metadata.storage_data.items() if k.fqn.endswith("dp_group_idx_0.optimizer/shard_0_1")]
    raw = (weights / info.relative_path).read_bytes()[info.offset : info.offset + info.length]
    (obj,) = torch.load(io.BytesIO(raw), weights_only=False)
    return obj["param_groups"]


def _inspected(run_dir: Path) -> list[dict[str, Any]]:
    ins = call_cli("inspect", [str(run_dir), "--json"])
    assert ins.code in (0, 1) and ins.err == "", ins.err
    return [c for c in ins.json["checkpoints"] if not c["companion_of"]]


@pytest.mark.parametrize("dist_opt, devices", RUNS, ids=[f"dist_opt={d}-dp{n}" for d, n in RUNS])
def test_each_groups_lr_is_read_from_the_checkpoint_and_is_the_lr_the_run_trained_with(megatron_run, dist_opt, devices):
    run = megatron_run(dist_opt, devices)
    checkpoints = _inspected(run.run_dir)
    assert len(checkpoints) >= 3, [c["path"] for c in checkpoints]
    matched = 0
    for c in checkpoints:
        ckpt = Path(c["path"])
        assert c["complete"], c["incomplete_reasons"]
        assert c["param_groups_source"] == ("distcp" if dist_opt else "common.pt")
        assert not any("_last_lr" in n for n in c["notes"]), c["notes"]
        live = run.lrs.get(c["step"])
        if live is not None:  # the LR every live group had when the optimizer stepped at this global step
            assert c["lr"] == live, (c["step"], c["lr"], live)
            matched += 1
        else:  # the last save, after the last step: nothing trained with it; the scheduler set it as it saved
            assert c["lr"] == _torch_common(ckpt)["lr_schedulers"][0]["_last_lr"]
        groups = _torch_param_groups(ckpt, dist_opt)
        assert [{k: g[k] for k in GROUP_FIELDS} for g in c["param_groups"]] == [
            {k: g[k] for k in GROUP_FIELDS} for g in groups
        ]
        assert [g["mults"] for g in c["param_groups"]] == [{k: g[k] for k in MULT_KEYS if k in g} for g in groups]
        assert all(g["mults"] for g in c["param_groups"])  # NeMo's pre_lr_mult ... are there to be reported
    assert matched >= 2  # checkpoints inside the run, each held to the live LR


@pytest.mark.parametrize("dist_opt, devices", RUNS, ids=[f"dist_opt={d}-dp{n}" for d, n in RUNS])
def test_the_distributed_optimizers_sharding_is_reported_from_content_metadata(megatron_run, dist_opt, devices):
    run = megatron_run(dist_opt, devices)
    for c in _inspected(run.run_dir):
        ckpt = Path(c["path"])
        saved = _torch_common(ckpt)["content_metadata"]
        assert c["content_metadata"] == saved
        assert ("distrib_optim_sharding_type" in saved) == dist_opt
        objects = c["param_groups_objects"]
        if dist_opt:  # one object, saved by DP rank 0 only, whatever the DP size
            (obj,) = objects
            assert obj["key"] == "optimizer.distributed.dp_group_idx_0.optimizer/shard_0_1"
            assert (ckpt / obj["file"]).is_file() and obj["file"].endswith(".distcp")
            assert 0 < obj["length"] < 64 * 1024
        else:
            assert objects == []


@pytest.mark.parametrize("dist_opt, devices", RUNS, ids=[f"dist_opt={d}-dp{n}" for d, n in RUNS])
def test_the_human_report_shows_where_the_param_groups_came_from(megatron_run, dist_opt, devices):
    run = megatron_run(dist_opt, devices)
    human = call_cli("inspect", [str(run.run_dir)])
    assert human.code in (0, 1) and human.err == "", human.err
    for c in _inspected(run.run_dir):
        if dist_opt:
            (obj,) = c["param_groups_objects"]
            line = f"    param groups: {obj['file']} (distributed optimizer, dp_reshardable)"
        else:
            line = "    param groups: weights/common.pt (no distributed optimizer)"
        assert line in human.out.splitlines(), human.out
        assert "    LR per group: " + ", ".join(repr(x) for x in c["lr"]) in human.out.splitlines()
