"""Runs of NeMo's real Megatron path on CPU, shared by the tier (session-scoped, built lazily, each once).

Every run is a recipe rehearsal (``tests.support.rehearsals``): NeMo's own Qwen2.5 pretraining recipe
with a tiny Qwen2-family model, ``MegatronStrategy`` on gloo, megatron-core's optimizer (distributed
or not), ``CosineAnnealingScheduler``, ``nl.ModelCheckpoint`` writing ``weights/`` + ``context/``,
NeMo's default async and parallel save. About 20 s a run on one core, 40 s with two ranks.

- ``megatron_run(dist_opt, devices)``: a finished run, lr 1e-3, min_lr 1e-4, warmup 5, constant 0,
  max_steps 30, a checkpoint every 10 steps. ``MegatronRun.run_dir`` is its folder (find checkpoints
  with nemo_resume's own discovery, not by name); ``MegatronRun.lrs[step]`` is the LR of every live
  megatron param group used by the optimizer step at ``global_step == step``.
- ``incident(dist_opt, devices)``: the seed incident on a short horizon (``INCIDENT``): lr 1e-5 under
  the stock min_lr 3e-5, warmup 30, a checkpoint at step 20; NeMo raises computing step 31.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.rehearsals import Rehearsal, rehearse_recipe

FINISHED = ["--lr", "1e-3", "--min-lr", "1e-4", "--warmup-steps", "5", "--max-steps", "30", "--checkpoint-every", "10"]
INCIDENT = ["--lr", "1e-5", "--min-lr", "3e-5", "--warmup-steps", "30", "--max-steps", "60", "--checkpoint-every", "20"]
INCIDENT_SAVED, INCIDENT_DIES = 20, 31


@dataclass(frozen=True)
class MegatronRun:
    run_dir: Path
    lrs: dict[int, list[float]]


def _cached(tmp_path_factory, label: str, flags: list[str]):
    cache: dict[tuple[bool, int], Rehearsal] = {}

    def get(dist_opt: bool, devices: int) -> Rehearsal:
        key = (bool(dist_opt), int(devices))
        if key not in cache:
            root = tmp_path_factory.mktemp(f"{label}_do{int(dist_opt)}_dp{devices}")
            cache[key] = rehearse_recipe("pretrain", [*flags, "--dir", str(root)], devices=devices, dist_opt=dist_opt)
        return cache[key]

    return get


@pytest.fixture(scope="session")
def finished_rehearsal(tmp_path_factory):
    return _cached(tmp_path_factory, "finished", FINISHED)


@pytest.fixture(scope="session")
def megatron_run(finished_rehearsal):
    def get(dist_opt: bool, devices: int) -> MegatronRun:
        run = finished_rehearsal(dist_opt, devices)
        assert run.result.error is None, run.why()
        return MegatronRun(run.run_dir, run.lrs)

    return get


@pytest.fixture(scope="session")
def incident(tmp_path_factory):
    return _cached(tmp_path_factory, "incident", INCIDENT)
