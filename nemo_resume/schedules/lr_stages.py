"""A staged LR schedule (``--lr-stages 75:1e-4,50:1e-5``) as one pure function of the step.

Seed 004's two-stage LoRA plan: 75 steps at 1e-4, then 50 at 1e-5. Each stage is
``STEPS:LR`` with an optional warmup inside it, ``STEPS:LR:wN``: the first N steps of the stage
ramp from the previous stage's LR (0 before the first stage) to the stage's LR with NeMo's
warmup convention, ``prev + (lr - prev) * (i + 1) / (N + 1)`` at step ``i`` of the stage.

Stage LRs are the LRs of the base param group. The optimizer is built with the first stage's
LR, and every param group keeps its ratio to it in every stage: group ``g`` runs at
``base_lrs[g] * stage_lr / stages[0].lr``, so ``--lr-mult`` multipliers hold throughout.
After the last stage the LR stays at the last stage's LR.

Torch-free: the inspector, the planner and the check call it; the scheduler in
:mod:`nemo_resume.schedules.staged` calls it too, so there is one definition of the shape.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from nemo_resume.errors import NemoResumeError

FLAG = "--lr-stages"


@dataclass(frozen=True)
class Stage:
    """One stage: ``steps`` optimizer steps at ``lr``, the first ``warmup_steps`` of them ramping to it."""

    steps: int
    lr: float
    warmup_steps: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"steps": self.steps, "lr": self.lr, "warmup_steps": self.warmup_steps}

    @property
    def spec(self) -> str:
        return f"{self.steps}:{self.lr!r}" + (f":w{self.warmup_steps}" if self.warmup_steps else "")


def _check(stages: Sequence[Stage], where: str) -> tuple[Stage, ...]:
    if not stages:
        raise NemoResumeError(f"{where}: no stages; give STEPS:LR[,STEPS:LR...], e.g. {FLAG} 75:1e-4,50:1e-5")
    for i, s in enumerate(stages, start=1):
        if isinstance(s.steps, bool) or not isinstance(s.steps, int) or s.steps < 1:
            raise NemoResumeError(f"{where}: stage {i} has {s.steps} steps; each stage needs a whole number >= 1")
        if isinstance(s.lr, bool) or not isinstance(s.lr, (int, float)) or not math.isfinite(s.lr) or s.lr <= 0:
            raise NemoResumeError(f"{where}: stage {i} LR {s.lr} must be a finite number > 0")
        w = s.warmup_steps
        if isinstance(w, bool) or not isinstance(w, int) or not 0 <= w < s.steps:
            raise NemoResumeError(
                f"{where}: stage {i} warmup w{w} must be a whole number from 0 to {s.steps - 1} (its steps - 1)"
            )
    return tuple(Stage(s.steps, float(s.lr), s.warmup_steps) for s in stages)


def parse_stages(text: str, flag: str = FLAG) -> tuple[Stage, ...]:
    """``"75:1e-4,50:1e-5:w10"`` -> stages.

    Raises:
        NemoResumeError: a malformed stage, naming the flag, the stage and the expected form.
    """
    stages = []
    for i, part in enumerate(str(text).split(","), start=1):
        fields = part.strip().split(":")
        try:
            if len(fields) not in (2, 3) or (len(fields) == 3 and not fields[2].startswith("w")):
                raise ValueError
            steps, lr = int(fields[0]), float(fields[1])
            warmup = int(fields[2][1:]) if len(fields) == 3 else 0
        except ValueError:
            raise NemoResumeError(
                f"{flag} {text}: stage {i} is {part.strip()!r}; write STEPS:LR or STEPS:LR:wWARMUP, e.g. 75:1e-4:w10"
            ) from None
        stages.append(Stage(steps, lr, warmup))
    return _check(stages, f"{flag} {text}")


def stages_from_json(obj: Any, where: str = "stages") -> tuple[Stage, ...]:
    """Stages from their plain-data form (a scheduler ``state_dict``'s ``stages``: a list of dicts).

    Raises:
        NemoResumeError: not a list of ``{"steps", "lr", "warmup_steps"}`` objects.
    """
    if not isinstance(obj, (list, tuple)) or not all(isinstance(s, dict) for s in obj):
        raise NemoResumeError(f"{where} must be a list of {{'steps', 'lr', 'warmup_steps'}} objects")
    try:
        stages = [Stage(s["steps"], s["lr"], s.get("warmup_steps", 0)) for s in obj]
    except KeyError as exc:
        raise NemoResumeError(f"{where}: a stage has no {exc.args[0]!r}") from None
    return _check(stages, where)


def describe(stages: Sequence[Stage]) -> str:
    """The ``--lr-stages`` text for ``stages`` (``75:0.0001,50:1e-05`` reads back the same)."""
    return ",".join(s.spec for s in stages)


def total_steps(stages: Sequence[Stage]) -> int:
    return sum(s.steps for s in stages)


def boundaries(stages: Sequence[Stage]) -> list[int]:
    """The first step of every stage (``[0, 75]`` for ``75:1e-4,50:1e-5``)."""
    starts, at = [], 0
    for s in stages:
        starts.append(at)
        at += s.steps
    return starts


def stage_index(stages: Sequence[Stage], step: int) -> int:
    """The stage ``step`` trains in (0-based); the last one at and after the end."""
    for i, start in enumerate(boundaries(stages)):
        if step < start + stages[i].steps:
            return i
    return len(stages) - 1


def stage_lr(stages: Sequence[Stage], step: int) -> float:
    """The base group's LR at ``last_epoch == step`` (the LR the optimizer step ``step`` uses)."""
    i = stage_index(stages, max(step, 0))
    s, start = stages[i], boundaries(stages)[i]
    offset = max(step, 0) - start
    if offset < s.warmup_steps:
        prev = stages[i - 1].lr if i > 0 else 0.0
        return prev + (s.lr - prev) * (offset + 1) / (s.warmup_steps + 1)
    return s.lr


def staged_lrs(stages: Sequence[Stage], base_lrs: Sequence[float], step: int) -> list[float]:
    """Every param group's LR at ``step``: each keeps its ratio to the first stage's LR."""
    scale = stage_lr(stages, step) / stages[0].lr
    return [float(b) * scale for b in base_lrs]


__all__ = [
    "FLAG",
    "Stage",
    "boundaries",
    "describe",
    "parse_stages",
    "stage_index",
    "stage_lr",
    "staged_lrs",
    "stages_from_json",
    "total_steps",
]
