"""What the check reports: named checks, NeMo's first failure, key steps and the probed curves.

Plain data with ``to_json()`` (the ``--json`` output); :mod:`nemo_resume.cli.report` renders it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from nemo_resume.schedules.cooldown import CooldownState
from nemo_resume.schedules.cosine import CosineState
from nemo_resume.schedules.request import ScheduleRequest

CheckName = Literal[
    "plan_safe",  # a plan the planner refused (check_plan): one verdict for both
    "nemo_runs",
    "finite",
    "at_or_above_min_lr",
    "no_jump_at_resume",
    "warmup_rising",
    "decay_non_increasing",
    "ends_at_min_lr",
    "group_ratios_kept",
    "no_negative_phase",
    "decay_spans_training",
    # other NeMo schedulers (nemo_resume.check.other_schedulers)
    "stages_as_requested",
    "schedule_spans_training",
    # --lr-policy cooldown (nemo_resume.check.cooldown)
    "cooldown_as_planned",
]


@dataclass(frozen=True)
class ResumePoint:
    """Where a resume starts and what it restores.

    Attributes:
        step: the checkpoint's step (its scheduler ``last_epoch``); the resumed run computes
            LRs from ``step + 1`` on.
        restored: the checkpoint's scheduler ``state_dict`` fields (``base_lrs``, ``min_lr``,
            ``max_steps``, ``warmup_steps``, ``constant_steps``, ``decay_steps``, ``last_epoch``,
            optionally ``_last_lr``; the keys of ``SchedulerState.to_json()``). Missing keys keep
            the config's values, as ``__dict__.update`` does.
        target: the planned schedule written in with ``apply_schedule``; None is NeMo's
            default behaviour: the restored schedule simply continues.
        jump_chosen_by: what chose a jump at the resume step (``--lr-policy recompute``): the jump is
            then reported, not refused.
        cooldown: ``--lr-policy cooldown``'s schedule: the run builds its own scheduler with it (``target`` None).
    """

    step: int
    restored: Mapping[str, Any]
    target: CosineState | None = None
    jump_chosen_by: str | None = None
    cooldown: CooldownState | None = None

    @property
    def planned(self) -> bool:
        """A plan rewrites the restored schedule (a target) or replaces it (a cooldown)."""
        return self.target is not None or self.cooldown is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "restored": dict(self.restored),
            "target": self.target.to_json() if self.target else None,
            "jump_chosen_by": self.jump_chosen_by,
            "cooldown": self.cooldown.to_json() if self.cooldown else None,
        }


@dataclass(frozen=True)
class Check:
    """One named check. ``ok`` is None when it could not run (NeMo raised before it mattered)."""

    name: CheckName
    ok: bool | None
    step: int | None
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "step": self.step, "reason": self.reason}


@dataclass(frozen=True)
class StepFailure:
    """The first step at which NeMo's scheduler raises, and what it raised.

    ``when`` is ``"build"`` when the constructor raised (its initial step computes step 0's LR,
    so even a resume fails there: the config's values are used before the restore),
    ``"apply"`` when ``apply_schedule`` refused the plan, else ``"step"``.
    """

    step: int
    error: str
    when: Literal["build", "apply", "step"] = "step"

    def to_json(self) -> dict[str, Any]:
        return {"step": self.step, "error": self.error, "when": self.when}


@dataclass(frozen=True)
class Curve:
    """NeMo's LRs at the probed steps, up to (not including) the first step that raises.

    Attributes:
        label: ``"schedule"`` (a fresh run), ``"restored"`` (the checkpoint's schedule, before
            the plan; from step 0) or ``"planned"`` (after ``apply_schedule``; from the resume step).
        steps: probed steps, increasing (int64).
        lrs: one row per step, one column per param group (float64).
        failure: where this curve's scheduler raised, if it did within the horizon.
    """

    label: Literal["schedule", "restored", "planned"]
    steps: np.ndarray
    lrs: np.ndarray
    failure: StepFailure | None = None


@dataclass(frozen=True)
class Jump:
    """The LR change at the resume step: what the restored run had vs what the resumed run uses."""

    step: int
    before: tuple[float, ...] | None
    after: tuple[float, ...]
    relative: float | None

    def to_json(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "before": list(self.before) if self.before is not None else None,
            "after": list(self.after),
            "relative": self.relative,
        }


@dataclass(frozen=True)
class CheckResult:
    """Everything the check found; ``to_json()`` is the ``--json`` output.

    Attributes:
        request: the schedule the config asks for (what NeMo builds the scheduler from).
        resume: the resume point, or None for a fresh run.
        schedule: the fields of the scheduler that actually runs (after restore and plan).
        start, end: the checked horizon (``0`` or ``resume step + 1``, to the trainer's ``max_steps``).
        checks: every named check, in a fixed order.
        failure: the first step NeMo raises at, or None.
        key_steps: ``(step, label, lrs or None where NeMo raises)``, in step order.
        curves: the probed LRs, for plots (see :mod:`nemo_resume.check.plot`).
        jump: the LR change at the resume step (resumes only).
        evaluated_steps: how many distinct steps NeMo's ``get_lr`` was probed at (live curve).
        notes: hints that are not checks (e.g. the fix ``ScheduleRequest`` suggests).
        scheduler: which scheduler was checked, for reports (``NeMo's CosineAnnealing``).
    """

    request: CosineState | ScheduleRequest
    resume: ResumePoint | None
    schedule: CosineState | None
    start: int
    end: int
    checks: tuple[Check, ...]
    failure: StepFailure | None
    key_steps: tuple[tuple[int, str, tuple[float, ...] | None], ...]
    curves: tuple[Curve, ...]
    jump: Jump | None = None
    evaluated_steps: int = 0
    notes: tuple[str, ...] = field(default=())
    scheduler: str = "NeMo's CosineAnnealing"

    @property
    def ok(self) -> bool:
        return all(c.ok is not False for c in self.checks)

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    @property
    def first_problem(self) -> Check | None:
        """The failing check with the earliest step (on a tie NeMo's own failure, and the planner's refusal last)."""
        failed = [c for c in self.checks if c.ok is False]
        return min(failed, key=lambda c: (c.step if c.step is not None else -1, c.name == "plan_safe")) if failed else None

    def curve(self, label: str) -> Curve | None:
        return next((c for c in self.curves if c.label == label), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checks": [c.to_json() for c in self.checks],
            "key_steps": [[s, list(lrs) if lrs is not None else None] for s, _, lrs in self.key_steps],
            "key_step_labels": [[s, label] for s, label, _ in self.key_steps],
            "failure": self.failure.to_json() if self.failure else None,
            "request": self.request.to_json(),
            "schedule": self.schedule.to_json() if self.schedule else None,
            "horizon": {"start": self.start, "end": self.end},
            "resume": self.resume.to_json() if self.resume else None,
            "jump": self.jump.to_json() if self.jump else None,
            "evaluated_steps": self.evaluated_steps,
            "notes": list(self.notes),
            "scheduler": self.scheduler,
        }
