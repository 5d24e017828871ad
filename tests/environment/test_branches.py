"""The verdicts this machine cannot reach by itself: a GPU machine (enough GPUs, too few, no NCCL), a Slurm
login node (sbatch found or not, the container image), and an asynchronous save that does not fit in memory."""

from __future__ import annotations

import dataclasses
import stat
from pathlib import Path

import pytest

from nemo_resume.environment.accelerators import Accelerators, check_accelerators
from nemo_resume.environment.checkpoint_size import CheckpointEstimate, ModelShape
from nemo_resume.environment.launch import Launch
from nemo_resume.environment.memory import check_memory, host_memory
from nemo_resume.environment.slurm import check_container_image, check_sbatch

pytestmark = pytest.mark.nemo  # nemo_resume.environment serves the commands of the NeMo extra

#: The rehearsal's tiny Qwen2 (nemo_resume.smoke.rehearsal.TINY): the figures here do not depend on NeMo.
TINY = ModelShape("tiny", num_layers=2, hidden_size=64, ffn_hidden_size=128, num_attention_heads=4,
                  num_query_groups=2, kv_channels=16, vocab_size=128, gated_linear_unit=True, add_qkv_bias=True,
                  add_bias_linear=False, norm_params=1, qk_layernorm=False, tied_embeddings=False)
ESTIMATE = CheckpointEstimate(TINY, None, weight_bytes=2, optimizer_bytes=12, interval_saves=5, save_top_k=10,
                              save_last=True)
LAUNCH = Launch(dir=Path("."), executor="local", accelerator="gpu", devices=8, num_nodes=1, async_save=True,
                container_image=None, checkpoints=ESTIMATE)
H200 = Accelerators("2.13.0+cu128", "12.8", 8, "2.27.3", None)


@pytest.mark.parametrize(("found", "level", "says"), [
    (H200, "ok", "8 GPUs visible (--gpus-per-node 8)"),
    (dataclasses.replace(H200, gpus=4, cuda_visible_devices="0,1,2,3"), "blocker", "4 GPUs visible, and the launch asks for 8"),
    (dataclasses.replace(H200, nccl=None), "blocker", "torch has no NCCL"),
])
def test_a_local_gpu_launch(found, level, says):
    f = check_accelerators(found, LAUNCH)
    assert (f.level, f.facts["needed_gpus"]) == (level, 8) and says in f.message


def test_a_slurm_job_and_the_rehearsal_need_no_gpu_here():
    none = dataclasses.replace(H200, gpus=0, cuda_build=None, nccl=None)
    assert check_accelerators(none, dataclasses.replace(LAUNCH, executor="slurm")).level == "info"
    assert check_accelerators(none, dataclasses.replace(LAUNCH, accelerator="cpu")).level == "ok"


def test_sbatch_is_looked_up_on_path(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert check_sbatch().level == "blocker"
    sbatch = tmp_path / "sbatch"
    sbatch.write_text("#!/bin/sh\n")
    sbatch.chmod(sbatch.stat().st_mode | stat.S_IXUSR)
    f = check_sbatch()
    assert f.level == "ok" and f.facts["sbatch"] == str(sbatch)


def test_the_container_image(tmp_path):
    image = tmp_path / "nemo.sqsh"
    assert check_container_image(None).level == "warning"
    assert check_container_image(str(image)).level == "blocker"
    image.write_bytes(b"")
    assert check_container_image(str(image)).level == "ok"
    assert check_container_image("nvcr.io/nvidia/nemo:25.04").level == "info"


def test_an_async_save_that_does_not_fit_in_memory_is_a_warning():
    total, available = host_memory()
    assert 0 < available <= total
    params = available // 14 + 1  # a checkpoint of 14 bytes a parameter, over what is available
    big = dataclasses.replace(ESTIMATE, shape=dataclasses.replace(TINY, num_layers=0, vocab_size=1, hidden_size=params,
                                                                  tied_embeddings=True))
    assert big.checkpoint_bytes > available
    launch = dataclasses.replace(LAUNCH, checkpoints=big)
    assert check_memory(launch).level == "warning"
    assert check_memory(dataclasses.replace(launch, num_nodes=4 * (big.checkpoint_bytes // available + 1))).level == "ok"
    assert check_memory(dataclasses.replace(launch, async_save=False)).level == "ok"
    assert check_memory(dataclasses.replace(launch, executor="slurm")).level == "info"

