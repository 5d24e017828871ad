"""Probing a live NeMo scheduler: its LR at any step, without stepping through every one before it.

Stepping NeMo one step at a time is too slow for million-step horizons, so ``get_lr`` is called at
chosen steps instead: every step where the schedule changes phase and its neighbours, the resume
step, and every step (short horizons) or a dense grid (long ones). Each NeMo scheduler computes the
LR from ``last_epoch`` alone, so setting it and calling ``get_lr`` is what ``step()`` does.
"""

from __future__ import annotations

import copy
import re
import traceback
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from nemo_resume.check.result import Curve, ResumePoint, StepFailure

# Steps evaluated every one when the horizon is at most this long; above it, a grid.
DENSE_LIMIT = 5000
# Evenly spaced probes over a long horizon (plus every phase boundary and its neighbours).
GRID_POINTS = 4001
# How far either side of a boundary to probe: catches off-by-one behaviour at phase edges.
NEIGHBOURS = 2
# What NeMo's schedulers raise: CosineAnnealing's "lower than the minimum learning rate" ValueError,
# bare asserts in the Megatron path, a ZeroDivisionError when a phase has length 0.
NEMO_ERRORS = (ValueError, AssertionError, ArithmeticError)


def scheduler_on_groups(module: Any, base_lrs: Sequence[float]) -> Any:
    """``module.scheduler(model=None, optimizer=...)``'s torch scheduler, on an optimizer with one group per LR.

    Raises:
        ValueError, AssertionError, ArithmeticError: NeMo's own, from the constructor's initial step.
    """
    return construct(lambda optimizer: module.scheduler(model=None, optimizer=optimizer)["lr_scheduler"]["scheduler"], base_lrs)


def construct(make: Callable[[Any], Any], base_lrs: Sequence[float]) -> Any:
    """``make(optimizer)`` on a throw-away SGD optimizer with one tiny parameter per group at ``base_lrs``."""
    import torch

    # One tiny parameter per group: a scheduler reads only the groups' "lr".
    params = [torch.nn.Parameter(torch.zeros(1)) for _ in base_lrs]
    optimizer = torch.optim.SGD([{"params": [p], "lr": lr} for p, lr in zip(params, base_lrs)], lr=base_lrs[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return make(optimizer)


def one_group(live: Any, group: int, build_one: Callable[[float], Any]) -> Any:
    """The same scheduler for ``group`` alone: ``build_one(group's base LR)``, then holding ``live``'s state.

    What a group's LR would be if it had its own scheduler; a scheduler that gives every group the
    same LR (NeMo's ``constant_steps > 0`` cosine path, ``WarmupAnnealing``) differs from it.
    ``build_one`` must not raise where ``live`` was built: NeMo's constructors check only some groups.
    """
    sched = build_one(float(live.base_lrs[group]))
    state = copy.deepcopy(live.state_dict())
    state["base_lrs"] = [float(live.base_lrs[group])]
    if isinstance(state.get("_last_lr"), list):
        state["_last_lr"] = [state["_last_lr"][group]]
    sched.load_state_dict(state)
    return sched


def restore(scheduler: Any, resume: ResumePoint) -> None:
    """What Lightning does after the strategy built the scheduler: ``load_state_dict`` (``__dict__.update``)."""
    state = {k: (list(v) if isinstance(v, list) else v) for k, v in resume.restored.items()}
    state.setdefault("last_epoch", resume.step)
    scheduler.load_state_dict(state)


@contextmanager
def probing(scheduler: Any) -> Iterator[Callable[[int], list[float]]]:
    """Call NeMo's ``get_lr`` at any step; put ``last_epoch`` and the step flag back afterwards."""
    saved = scheduler.last_epoch, scheduler._get_lr_called_within_step

    def lr_at_step(step: int) -> list[float]:
        scheduler.last_epoch = step
        # get_lr warns unless called from step(); we are standing in for step().
        scheduler._get_lr_called_within_step = True
        return [float(x) for x in scheduler.get_lr()]

    try:
        yield lr_at_step
    finally:
        scheduler.last_epoch, scheduler._get_lr_called_within_step = saved


def describe_error(exc: BaseException) -> str:
    """NeMo's error in one line; a bare assert gets its source line, an object repr its class name."""
    text = re.sub(r"<([\w.]+) object at 0x[0-9a-fA-F]+>", lambda m: m.group(1).rsplit(".", 1)[-1], str(exc))
    if text:
        return f"{type(exc).__name__}: {text}"
    frames = traceback.extract_tb(exc.__traceback__)
    if frames:
        last = frames[-1]
        return f"{type(exc).__name__} (bare `{(last.line or '').strip()}` in {last.name}, {Path(last.filename).name}:{last.lineno})"
    return type(exc).__name__


def evaluate(scheduler: Any, steps: Sequence[int], label: str) -> Curve:
    """NeMo's LRs at ``steps`` (in order), up to the first step that raises."""
    ok_steps: list[int] = []
    rows: list[list[float]] = []
    failure = None
    with probing(scheduler) as lr_at_step:
        for s in steps:
            try:
                rows.append(lr_at_step(s))
            except NEMO_ERRORS as exc:
                failure = StepFailure(s, describe_error(exc))
                break
            ok_steps.append(s)
    n_groups = len(scheduler.optimizer.param_groups)
    lrs = np.asarray(rows, dtype=np.float64).reshape(len(rows), n_groups)
    return Curve(label, np.asarray(ok_steps, dtype=np.int64), lrs, failure)  # type: ignore[arg-type]


def prepend(curve: Curve, step: int, lrs: Sequence[float] | None, label: str) -> Curve:
    """``curve`` relabelled, starting with ``lrs`` at ``step`` (the LR a resumed run starts with)."""
    if lrs is None:
        return replace(curve, label=label)  # type: ignore[arg-type]
    return replace(
        curve,
        label=label,  # type: ignore[arg-type]
        steps=np.concatenate([[step], curve.steps]).astype(np.int64),
        lrs=np.vstack([np.asarray(lrs, dtype=np.float64)[None, :], curve.lrs]),
    )


def lr_or_none(scheduler: Any, step: int) -> tuple[float, ...] | None:
    """Every group's LR at ``step``, or None where NeMo raises."""
    with probing(scheduler) as lr_at_step:
        try:
            return tuple(lr_at_step(step))
        except NEMO_ERRORS:
            return None


def probe_points(marks: set[int], start: int, end: int) -> list[int]:
    """``marks`` (phase boundaries) and their neighbours, ``start``, ``end``, and every step or a grid between."""
    marks = {*marks, start, end}
    points = {x + k for x in marks for k in range(-NEIGHBOURS, NEIGHBOURS + 1)}
    if end - start + 1 <= DENSE_LIMIT:
        points.update(range(start, end + 1))
    else:
        points.update(int(x) for x in np.linspace(start, end, GRID_POINTS).round())
    return sorted(p for p in points if start <= p <= end)
