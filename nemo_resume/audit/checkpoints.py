"""The checkpoints a run kept on disk, counted by the inspector: what ``training_report.json`` reports.

NeMo's ``-last`` twin of a checkpoint and the context-only ``-last`` folders it leaves behind are not checkpoints
of their own, so seed 004's plan (``--save-from-step 75 --checkpoint-every 1``, 125 steps) counts 50.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nemo_resume.errors import NemoResumeError
from nemo_resume.inspection import inspect_path


@dataclass(frozen=True)
class KeptCheckpoints:
    """The step of every complete checkpoint under a run folder (a step saved by two attempts counts twice)."""

    steps: tuple[int, ...]

    @property
    def count(self) -> int:
        return len(self.steps)

    def to_json(self) -> dict[str, Any]:
        return {"count": self.count, "first_step": self.steps[0] if self.steps else None,
                "last_step": self.steps[-1] if self.steps else None}


def kept_checkpoints(run_dir: Path) -> KeptCheckpoints:
    """The complete checkpoints under ``run_dir`` (none when it holds no checkpoint)."""
    try:
        found = inspect_path(run_dir).checkpoints
    except NemoResumeError:
        return KeptCheckpoints(())
    steps = [c.state.step for c in found
             if c.state.complete and not c.is_companion and not c.state.location.is_last_link]
    return KeptCheckpoints(tuple(sorted(s for s in steps if s is not None)))
