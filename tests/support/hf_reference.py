"""Each ``--schedule`` side by side: NeMo's module as the recipe builds it, and Hugging Face's function.

The tests (tests/schedules/test_hf_names.py) and the plots in docs/schedules.md
(scripts/plot_schedules.py) both come from here, so the documented differences are the tested ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from nemo_resume.check.probe import evaluate, scheduler_on_groups
from nemo_resume.schedules.scheduler_module import scheduler_module


def nemo_lrs(request: Any, steps: Sequence[int]) -> np.ndarray:
    """NeMo's LR per group (columns) at each of ``steps`` (rows), from the module the recipe uses."""
    curve = evaluate(scheduler_on_groups(scheduler_module(request).build(), request.base_lrs), list(steps), "schedule")
    if curve.failure is not None:
        raise RuntimeError(f"NeMo raised at step {curve.failure.step}: {curve.failure.error}")
    return curve.lrs


def hf_kwargs(request: Any) -> dict[str, Any]:
    """``scheduler_specific_kwargs`` for ``transformers.get_scheduler`` that mean what ``request`` means."""
    if request.schedule == "cosine_with_min_lr":
        return {"min_lr": request.min_lr}
    if request.schedule == "polynomial":
        return {"lr_end": request.min_lr, "power": 1.0}
    if request.schedule == "warmup_stable_decay":
        kind = {"linear": "linear", "1-sqrt": "1-sqrt"}[request.decay_type]
        return {"num_decay_steps": request.decay_steps, "decay_type": kind, "min_lr_ratio": request.min_lr / request.lr}
    return {}


def hf_lrs(request: Any, steps: Sequence[int], name: str | None = None) -> np.ndarray:
    """Hugging Face's LR per group at each of ``steps``: ``get_scheduler(name or request.schedule, ...)``.

    The optimizer's ``lr`` (HF's ``lr_init``/``min_lr_rate`` reference) is the base group's, as
    in a ``Trainer`` whose param groups carry their own LRs.
    """
    import torch
    from transformers import get_scheduler

    params = [torch.nn.Parameter(torch.zeros(1)) for _ in request.base_lrs]
    opt = torch.optim.SGD([{"params": [p], "lr": lr} for p, lr in zip(params, request.base_lrs)], lr=request.lr)
    sched = get_scheduler(
        name or request.schedule,
        opt,
        num_warmup_steps=request.warmup_steps,
        num_training_steps=request.max_steps,
        scheduler_specific_kwargs=hf_kwargs(request) if name is None else {},
    )
    rows = []
    for step in steps:  # LambdaLR is a closed form of last_epoch
        sched.last_epoch = step
        rows.append([base * fn(step) for base, fn in zip(sched.base_lrs, sched.lr_lambdas)])
    return np.asarray(rows, dtype=np.float64)
