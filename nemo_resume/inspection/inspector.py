"""Inspect a path: every checkpoint's state and problems, and which one a resume should use."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nemo_resume.checkpoint.layout import find_checkpoints
from nemo_resume.checkpoint.state import CheckpointState, read_checkpoint
from nemo_resume.inspection.lineage import mixed_runs
from nemo_resume.inspection.problems import Problem, predict_problems


@dataclass(frozen=True)
class InspectedCheckpoint:
    state: CheckpointState
    problems: tuple[Problem, ...]

    @property
    def resumable(self) -> bool:
        """Complete, with optimizer state, and safe to load: a run can continue from it."""
        s = self.state
        return s.complete and s.has_optimizer_state is True and not s.hostile_calls and s.step is not None

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
            "has_optimizer_state": s.has_optimizer_state,
            "scheduler": s.scheduler.to_json() if s.scheduler else None,
            "config": s.config.to_json() if s.config else None,
            "unknown_pickle_calls": list(s.unknown_calls),
            "notes": list(s.notes),
            "problems": [p.to_json() for p in self.problems],
            "companion_of": str(loc.companion_of) if loc.companion_of else None,
        }


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


def inspect_path(path: Path | str) -> Inspection:
    """Find and read every checkpoint at or under ``path``, in step order.

    Raises:
        NemoResumeError: the path does not exist or holds no checkpoint.
    """
    found = []
    for loc in find_checkpoints(path):
        state = read_checkpoint(loc)
        found.append(InspectedCheckpoint(state, tuple(predict_problems(state))))
    found.sort(key=lambda c: (c.state.step if c.state.step is not None else -1, str(c.state.location.path)))
    return Inspection(tuple(found), mixed_runs([c.state for c in found]), Path(path))
