"""An LR scheduler module as plain data: what a recipe puts in ``optim.lr_scheduler``.

:func:`nemo_resume.schedules.scheduler_module` turns a request into a :class:`ModuleConfig`;
the recipe makes it a ``run.Config``, the smoke run and the check build it, so all three
use the same NeMo ``LRSchedulerModule`` with the same arguments.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class ModuleConfig:
    """A NeMo ``LRSchedulerModule`` subclass by import path, and its keyword arguments.

    Attributes:
        target: ``module.Class`` of the ``LRSchedulerModule``.
        kwargs: every argument, explicit (NeMo's class defaults are traps: facts section 4).
        notes: where the shape differs from what the user may expect (said, never silent).
    """

    target: str
    kwargs: Mapping[str, Any]
    notes: tuple[str, ...] = field(default=())

    @property
    def name(self) -> str:
        return self.target.rsplit(".", 1)[-1]

    @property
    def label(self) -> str:
        """``NeMo's WarmupPolicyScheduler`` or ``nemo_resume's StagedLRScheduler``, for reports."""
        owner = "nemo_resume" if self.target.startswith("nemo_resume.") else "NeMo"
        return f"{owner}'s {self.name}"

    def cls(self) -> type:
        module, name = self.target.rsplit(".", 1)
        return getattr(importlib.import_module(module), name)

    def build(self) -> Any:
        """The ``LRSchedulerModule`` instance (imports NeMo)."""
        return self.cls()(**dict(self.kwargs))

    def run_config(self) -> Any:
        """``run.Config(cls, **kwargs)`` for a NeMo-Run recipe."""
        import nemo_run as run

        return run.Config(self.cls(), **dict(self.kwargs))

    def to_json(self) -> dict[str, Any]:
        return {"target": self.target, "kwargs": dict(self.kwargs), "notes": list(self.notes)}


class ScheduleFields(Protocol):
    """The request fields that pick and configure a scheduler module (:class:`ScheduleRequest` has them)."""

    @property
    def lr(self) -> float: ...
    @property
    def min_lr(self) -> float: ...
    @property
    def max_steps(self) -> int: ...
    @property
    def warmup_steps(self) -> int: ...
    @property
    def constant_steps(self) -> int: ...
    @property
    def lr_mults(self) -> tuple[float, ...]: ...
    @property
    def schedule(self) -> str: ...
    @property
    def stages(self) -> tuple[Any, ...]: ...
    @property
    def decay_steps(self) -> int | None: ...
    @property
    def decay_type(self) -> str | None: ...
