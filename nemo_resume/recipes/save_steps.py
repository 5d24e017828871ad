"""``--save-from-step S``: no checkpoint while the first S steps train, then every ``--checkpoint-every``.

Seed 004's plan: 125 steps, LR 1e-4 for the first 75, 1e-5 for the last 50, a checkpoint after
each of the last 50 steps and none before (``--lr-stages 75:1e-4,50:1e-5 --save-from-step 75
--checkpoint-every 1``). Lightning names a checkpoint by the steps done when it is written, so
those 50 are ``step=76`` ... ``step=125``: the state after step index 75 ... 124 trained.

Torch-free: the recipe options report the steps; :mod:`nemo_resume.save_from_checkpoint` writes them.
"""

from __future__ import annotations

from typing import Optional


def saves_at(step: int, every: int, save_from_step: Optional[int]) -> bool:
    """Whether an interval checkpoint is written at ``global_step == step`` (steps done)."""
    return every >= 1 and step % every == 0 and (save_from_step is None or step > save_from_step)


def checkpoint_steps(max_steps: int, every: int, save_from_step: Optional[int]) -> list[int]:
    """Every ``step=N`` an interval checkpoint is written at, up to ``max_steps`` (the end is saved anyway)."""
    return [s for s in range(1, max_steps + 1) if saves_at(s, every, save_from_step)]
