"""Inspect a path: every checkpoint's state and problems, and which one a resume should use."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nemo_resume.checkpoint.layout import CheckpointLocation, find_checkpoints
from nemo_resume.checkpoint.run_layout import RunLayout
from nemo_resume.checkpoint.state import CheckpointState, read_checkpoint
from nemo_resume.inspection.lineage import mixed_runs
from nemo_resume.inspection.problems import INVALID_VALUE_CODES, Problem, predict_problems


@dataclass(frozen=True)
class InspectedCheckpoint:
    state: CheckpointState
    problems: tuple[Problem, ...]

    @property
    def invalid_values(self) -> tuple[Problem, ...]:
        """Saved values no run can train on (NaN, infinite or negative LRs, negative step counts)."""
        return tuple(p for p in self.problems if p.code in INVALID_VALUE_CODES)

    @property
    def resumable(self) -> bool:
        """Complete, with optimizer state, safe to load and with values a run can train on: a run can continue from it."""
        s = self.state
        return (s.complete and s.has_optimizer_state is True and s.step is not None
                and not self.invalid_values)

    @property
    def is_companion(self) -> bool:
        """One of NeMo's context-only ``-last`` folders (checkpoint.layout): not a checkpoint, not an error."""
        return self.state.location.companion_of is not None

    def to_json(self) -> dict[str, Any]:
        s = self.state
        loc = s.location
        return {
            "path": str(loc.path),
            "link_target": os.readlink(loc.path) if loc.path.is_symlink() else None,
            "format": loc.format,
            "complete": s.complete,
            "incomplete_reasons": list(s.incomplete_reasons),
            "step": s.step,
            "epoch": s.epoch,
            "consumed_samples": s.consumed_samples,
            "lr": s.lrs,
            "param_groups": [g.to_json() for g in s.param_groups],
            "param_groups_source": s.param_groups_source,
            "param_groups_objects": [o.to_json() for o in s.param_groups_objects],
            "content_metadata": s.content_metadata,
            "run_layout": s.run_layout.to_json(),
            "peft_base_found": peft_base_found(s.run_layout),
            "has_optimizer_state": s.has_optimizer_state,
            "scheduler": s.scheduler.to_json() if s.scheduler else None,
            "config": s.config.to_json() if s.config else None,
            "unsafe_pickle_globals": [g.to_json() for g in s.unsafe_globals],
            "notes": list(s.notes),
            "problems": [p.to_json() for p in self.problems],
            "companion_of": str(loc.companion_of) if loc.companion_of else None,
        }


def peft_base_found(layout: RunLayout) -> bool | None:
    """Whether the base model a LoRA/DoRA checkpoint names is there (a resume loads it); None: it names none."""
    return os.path.isdir(layout.peft_base) if layout.peft_base else None


@dataclass(frozen=True)
class Inspection:
    """The inspector's whole answer for one path."""

    checkpoints: tuple[InspectedCheckpoint, ...]
    # MIXED_RUNS when the checkpoints cannot all come from one run (nemo_resume.inspection.lineage)
    mixed: Problem | None = None
    # the path inspected: reports name each checkpoint relative to it
    root: Path | None = None

    @property
    def latest(self) -> InspectedCheckpoint | None:
        """The newest resumable checkpoint by step (not by file time, unlike AutoResume).

        At equal steps a real folder wins over its ``-last`` twin, so the answer is stable.
        """
        usable = [c for c in self.checkpoints if c.resumable]
        if not usable:
            return None
        return max(usable, key=lambda c: (c.state.step, not c.state.location.is_last_link, str(c.state.location.path)))

    @property
    def exit_code(self) -> int:
        """0 when the checkpoint a resume would use has no error-level problem, else 1."""
        latest = self.latest
        if latest is None or self.mixed is not None:
            return 1
        return 1 if any(p.severity == "error" for p in latest.problems) else 0

    def to_json(self) -> dict[str, Any]:
        latest = self.latest
        return {
            "checkpoints": [c.to_json() for c in self.checkpoints],
            "latest_complete": str(latest.state.location.path) if latest else None,
            "mixed_runs": self.mixed.to_json() if self.mixed else None,
        }


def _failure(exc: Exception) -> str:
    try:
        return f"{type(exc).__name__}: {exc}"
    except Exception:  # noqa: BLE001 - str() of a hostile value can raise too
        return type(exc).__name__


def _inspect_one(loc: CheckpointLocation) -> InspectedCheckpoint:
    """One checkpoint read and judged. Reading fails for reasons no list foresees (a file is hostile by
    assumption): any failure is this checkpoint's reason, so the good checkpoints beside it are still found."""
    try:
        state = read_checkpoint(loc)
        return InspectedCheckpoint(state, tuple(predict_problems(state)))
    except Exception as exc:  # noqa: BLE001 - the one place a checkpoint's failure stops at the checkpoint
        state = CheckpointState(loc, (*loc.layout_reasons, f"could not be read ({_failure(exc)})"))
        return InspectedCheckpoint(state, tuple(predict_problems(state)))


def inspect_path(path: Path | str) -> Inspection:
    """Find and read every checkpoint at or under ``path``, in step order.

    Raises:
        NemoResumeError: the path does not exist or holds no checkpoint.
    """
    found = [_inspect_one(loc) for loc in find_checkpoints(path)]
    found.sort(key=lambda c: (c.state.step if c.state.step is not None else -1, str(c.state.location.path)))
    return Inspection(tuple(found), mixed_runs([c.state for c in found]), Path(path))
