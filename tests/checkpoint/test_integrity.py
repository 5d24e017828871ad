"""Broken and hostile checkpoints: copies of real fixtures, damaged the way crashes and attackers do."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from nemo_resume.cli.inspect_cmd import main as inspect_main
from nemo_resume.inspection import inspect_path

pytestmark = pytest.mark.nemo


@pytest.fixture()
def mg(tmp_path, megatron_incident_ckpt) -> Path:
    """A private copy of the Megatron fixture to damage."""
    dst = tmp_path / "checkpoints" / megatron_incident_ckpt.name
    shutil.copytree(megatron_incident_ckpt, dst)
    return dst


@pytest.fixture()
def lt(tmp_path, incident_ckpt) -> Path:
    dst = tmp_path / "lightning" / incident_ckpt.name
    dst.parent.mkdir(parents=True)
    shutil.copy2(incident_ckpt, dst)
    return dst


def _reasons(path: Path) -> str:
    (c,) = inspect_path(path).checkpoints
    assert not c.state.complete and not c.resumable
    assert "INCOMPLETE" in {p.code for p in c.problems}
    return " | ".join(c.state.incomplete_reasons)


def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def test_unfinished_marker_makes_a_checkpoint_incomplete(mg):
    Path(str(mg) + "-unfinished").touch()
    assert "-unfinished marker is present" in _reasons(mg)


def test_missing_shard_listed_in_metadata(mg):
    (mg / "weights" / "__0_1.distcp").unlink()
    assert "shard weights/__0_1.distcp listed in .metadata is missing" in _reasons(mg)


def test_truncated_shard(mg):
    _truncate(mg / "weights" / "__0_0.distcp")
    assert "shard weights/__0_0.distcp is truncated" in _reasons(mg)


@pytest.mark.parametrize("name", ["metadata.json", ".metadata", "common.pt"])
def test_missing_weights_file(mg, name):
    (mg / "weights" / name).unlink()
    assert f"weights/{name} is missing" in _reasons(mg)


def test_unknown_sharded_backend(mg):
    (mg / "weights" / "metadata.json").write_text('{"sharded_backend": "h5py_magic"}')
    assert "unknown sharded_backend 'h5py_magic'" in _reasons(mg)


def test_truncated_and_empty_common_pt(mg):
    _truncate(mg / "weights" / "common.pt")
    assert "weights/common.pt: not a complete torch.save zip" in _reasons(mg)
    (mg / "weights" / "common.pt").write_bytes(b"")
    assert "weights/common.pt" in _reasons(mg)


def test_truncated_lightning_ckpt_still_reports_step_from_its_name(lt):
    _truncate(lt, 0.9)
    (c,) = inspect_path(lt).checkpoints
    assert not c.state.complete and c.state.step == 499
    assert "truncated or not a checkpoint" in c.state.incomplete_reasons[0]


def test_garbage_io_json_is_a_note_not_a_crash(mg):
    (mg / "context" / "io.json").write_text("{not json")
    (c,) = inspect_path(mg).checkpoints
    assert c.state.complete and c.state.config is None
    assert any("io.json" in n for n in c.state.notes)


def test_dangling_and_looping_last_links(tmp_path, mg):
    ckpts = mg.parent
    os.symlink(ckpts / "gone", ckpts / "model_name=0--step=600-last")
    os.symlink("loop-last", ckpts / "loop-last")
    result = inspect_path(ckpts)
    reasons = {c.state.location.path.name: c.state.incomplete_reasons for c in result.checkpoints}
    assert "dangling link" in reasons["model_name=0--step=600-last"][0]
    assert "link loops" in reasons["loop-last"][0]
    assert result.latest.state.location.path == mg  # the broken links do not hide the good checkpoint


def test_last_link_to_a_checkpoint_is_reported_as_a_link(mg):
    link = mg.parent / (mg.name + "-last")
    os.symlink(mg.name, link)
    result = inspect_path(mg.parent)
    assert len(result.checkpoints) == 2
    assert result.latest.state.location.path == mg  # the real folder wins over its -last twin


def test_save_killed_before_anything_was_written_leaves_only_a_marker(mg):
    Path(str(mg.parent / "model_name=0--step=999") + "-unfinished").touch()
    result = inspect_path(mg.parent)
    orphan = [c for c in result.checkpoints if c.state.location.path.name == "model_name=0--step=999"]
    assert orphan and "only its -unfinished marker exists" in orphan[0].state.incomplete_reasons[0]
    assert orphan[0].state.step == 999
    assert result.latest.state.location.path == mg


def test_param_groups_in_neither_common_pt_nor_a_distributed_optimizer_object_are_a_problem_not_last_lr(
    tmp_path, megatron_plain_ckpt
):
    """The optimizer's param groups gone from common.pt, and no distributed-optimizer object holding them: a resume
    fails to load the optimizer, so the checkpoint is incomplete, saying where it looked; the scheduler's _last_lr
    (which it once reported as the LR per group) is no stand-in. (megatron-core's non-distributed optimizer keeps
    its param groups in common.pt.)"""
    import torch

    mg = tmp_path / "checkpoints" / megatron_plain_ckpt.name
    shutil.copytree(megatron_plain_ckpt, mg)

    common = mg / "weights" / "common.pt"
    state = torch.load(common, weights_only=False)
    state.pop("optimizer")
    torch.save(state, common)
    result = inspect_path(mg.parent)
    (c,) = result.checkpoints
    assert c.state.has_optimizer_state and not c.state.complete  # optimizer.* keys in .metadata, no param groups
    assert c.state.param_groups == () and c.state.param_groups_source is None
    (reason,) = c.state.incomplete_reasons
    assert "param groups are in neither weights/common.pt nor a readable distributed-optimizer object" in reason
    assert "optimizer.distributed.dp_group_idx_0.optimizer/shard_0_1" in reason
    assert result.latest is None


class _Payload:
    """What an attacker pickles: unpickling calls os.system (touch a sentinel file)."""

    def __init__(self, sentinel: Path) -> None:
        self.sentinel = sentinel

    def __reduce__(self):
        return (os.system, (f"touch {self.sentinel}",))


@pytest.mark.parametrize("kind", ["megatron", "lightning"])
def test_hostile_reduce_payload_is_reported_and_never_run(tmp_path, mg, lt, kind, capsys):
    import torch

    target = mg / "weights" / "common.pt" if kind == "megatron" else lt
    sentinel = tmp_path / "pwned"
    state = torch.load(target, weights_only=False)
    state["callbacks"]["evil"] = _Payload(sentinel)
    torch.save(state, target)
    path = mg if kind == "megatron" else lt
    (c,) = inspect_path(path).checkpoints
    assert not sentinel.exists()
    assert "UNSAFE_PICKLE" in {p.code for p in c.problems}
    assert not c.resumable
    assert inspect_main([str(path), "--json"]) == 1
    assert not sentinel.exists()


def test_pickle_bigger_than_the_limit_is_refused(tmp_path, lt, monkeypatch):
    import nemo_resume.checkpoint.safe_pickle as sp

    monkeypatch.setattr(sp, "MAX_PICKLE_BYTES", 1000)
    monkeypatch.setattr(sp.read_torch_file, "__defaults__", (1000,))
    (c,) = inspect_path(lt).checkpoints
    assert "refusing more than 1000 bytes" in c.state.incomplete_reasons[0]


def test_a_file_that_is_not_a_checkpoint(tmp_path, capsys):
    f = tmp_path / "notes.txt"
    f.write_text("hello")
    assert inspect_main([str(f)]) == 2
    assert "not a checkpoint" in capsys.readouterr().err


def test_inspecting_changes_nothing_on_disk(mg):
    def manifest():
        return {p: (p.stat().st_size, p.read_bytes()) for p in mg.rglob("*") if p.is_file()}

    before = manifest()
    inspect_path(mg.parent)
    assert manifest() == before
