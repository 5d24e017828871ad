"""``--lr-find`` on the recipes: the user's recipe turned into a short fresh LR sweep in a folder of its own.

The sweep runs as ``<dir>/<name>-lr-find`` (never the user's run folder): a fresh start (``--resume never``), the
optimizer's LR set to the sweep's start and :class:`~nemo_resume.schedules.lr_sweep_scheduler.LrSweepScheduler`
in place of the schedule, and checkpointing kept but saving nothing (``save_top_k=0``, no ``-last``), so no
checkpoint is written anywhere. Everything else (model, data, parallelism, ``--lr-mult``) is the user's recipe.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from nemo_resume.planning.choice import RESUME_NEVER
from nemo_resume.recipes.options import RecipeOptions
from nemo_resume.schedules.lr_sweep import LrSweep

#: The sweep's run name is the user's with this suffix.
SUFFIX = "-lr-find"


def lr_find_options(opts: RecipeOptions, sweep: LrSweep) -> RecipeOptions:
    """``opts`` as the sweep's run: its own name, ``sweep.steps`` steps from scratch, a constant LR at the sweep's
    start for the plan and the pre-launch check (the recipe then swaps in the sweep, :func:`sweep_recipe`)."""
    note = (f"--lr-find: a fresh {sweep.steps}-step LR sweep from {sweep.min_lr:g} to {sweep.max_lr:g} in "
            f"{opts.dir / (opts.name + SUFFIX)} (no checkpoint saved; {opts.run_dir} is not touched); the plan and "
            "check below are of its fresh start")
    return dataclasses.replace(
        opts, name=opts.name + SUFFIX, lr=sweep.min_lr, min_lr=0.0, max_steps=sweep.steps, warmup_steps=0,
        constant_steps=0, schedule="constant", stages=(), decay_steps=None, decay_type=None, resume=RESUME_NEVER,
        lr_policy="auto", save_from_step=None, lr_find=sweep, notes=(*opts.notes, note),
    )


def sweep_recipe(recipe: Any, sweep: LrSweep) -> None:
    """Edit ``recipe`` (``qwen25_recipe``'s ``run.Partial``) in place into the sweep: its scheduler, its LR, no save."""
    import nemo_run as run

    from nemo_resume.schedules.lr_sweep_scheduler import LrSweepScheduler

    recipe.optim.config.lr = sweep.min_lr  # each group starts at min_lr x its --lr-mult
    recipe.optim.lr_scheduler = run.Config(LrSweepScheduler, min_lr=sweep.min_lr, max_lr=sweep.max_lr, steps=sweep.steps)
    ckpt = recipe.log.ckpt
    ckpt.save_top_k, ckpt.save_last, ckpt.save_optim_on_train_end = 0, False, False
    ckpt.every_n_train_steps = sweep.steps
