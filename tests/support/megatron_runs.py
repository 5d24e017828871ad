"""The shared runs on NeMo's real Megatron path on CPU: what they run, and a lazy per-session cache.

Every run is a recipe rehearsal (``tests.support.rehearsals``): NeMo's own Qwen2.5 pretraining recipe
with a tiny Qwen2-family model, ``MegatronStrategy`` on gloo, megatron-core's optimizer (distributed
or not), ``CosineAnnealingScheduler``, ``nl.ModelCheckpoint`` writing ``weights/`` + ``context/``,
NeMo's default async and parallel save. About 20 s a run on one core, 40 s with two ranks.

- ``FINISHED``: a finished run, lr 1e-3, min_lr 1e-4, warmup 5, constant 0, max_steps 30, a checkpoint
  every 10 steps (10 and 20 keep the optimizer state; the one NeMo writes at the end, step 30, does not).
- ``STOCK_END``: a short run ended with NeMo's stock checkpoint settings (``save_optim_on_train_end=False``,
  which the recipes turn on): its end checkpoint, step 6, holds the weights only.
- ``INCIDENT``: the seed incident on a short horizon: lr 1e-5 under the stock min_lr 3e-5, warmup 30,
  a checkpoint at step 20 (``INCIDENT_SAVED``); NeMo raises computing step 31 (``INCIDENT_DIES``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from tests.support.rehearsals import Rehearsal, rehearse_recipe

__all__ = ["FINISHED", "INCIDENT", "INCIDENT_SAVED", "INCIDENT_DIES", "STOCK_END", "STOCK_END_STEP", "MegatronRun",
           "cached_runs", "stock_end_run"]

FINISHED = ["--lr", "1e-3", "--min-lr", "1e-4", "--warmup-steps", "5", "--max-steps", "30", "--checkpoint-every", "10"]
STOCK_END = ["--lr", "1e-3", "--min-lr", "1e-4", "--warmup-steps", "2", "--max-steps", "6", "--checkpoint-every", "4"]
STOCK_END_STEP = 6
INCIDENT = ["--lr", "1e-5", "--min-lr", "3e-5", "--warmup-steps", "30", "--max-steps", "60", "--checkpoint-every", "20"]
INCIDENT_SAVED, INCIDENT_DIES = 20, 31


@dataclass(frozen=True)
class MegatronRun:
    run_dir: Path
    lrs: dict[int, list[float]]


def cached_runs(mktemp: Callable[[str], Path], label: str, flags: list[str]) -> Callable[[bool, int], Rehearsal]:
    """``get(dist_opt, devices)``: the pretraining rehearsal of ``flags``, run on first use only."""
    cache: dict[tuple[bool, int], Rehearsal] = {}

    def get(dist_opt: bool, devices: int) -> Rehearsal:
        key = (bool(dist_opt), int(devices))
        if key not in cache:
            root = mktemp(f"{label}_do{int(dist_opt)}_dp{devices}")
            cache[key] = rehearse_recipe("pretrain", [*flags, "--dir", str(root)], devices=devices, dist_opt=dist_opt)
        return cache[key]

    return get


def stock_end_run(root: Path) -> Rehearsal:
    """The ``STOCK_END`` rehearsal (distributed optimizer, one rank), with NeMo's own end-of-training save."""

    def stock_checkpoint(recipe) -> None:
        recipe.log.ckpt.save_optim_on_train_end = False

    return rehearse_recipe("pretrain", [*STOCK_END, "--dir", str(root)], dist_opt=True, edit=stock_checkpoint)
