"""Which checkpoint a resume starts from: ``--resume auto|never|PATH``.

AutoResume looks one level deep, picks ``*-last`` by link time, and with the recipes'
``resume_ignore_no_checkpoint=True`` trains from scratch when the path is wrong. Here the
newest *resumable* checkpoint by step wins, every skipped one gets a one-line reason, and
"checkpoints exist but none is usable" is an error, never a silent fresh start.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from nemo_resume.constants import WEIGHTS_DIR
from nemo_resume.errors import NemoResumeError
from nemo_resume.inspection import InspectedCheckpoint, inspect_path
from nemo_resume.inspection.problems import NO_OPTIMIZER_STATE

#: ``--resume`` keywords; any other value is a checkpoint path.
RESUME_AUTO, RESUME_NEVER = "auto", "never"
RESUME_KEYWORDS = (RESUME_AUTO, RESUME_NEVER)


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str


@dataclass(frozen=True)
class Choice:
    """The checkpoint to resume from (None: start fresh) and why the others were not taken.

    Attributes:
        checkpoint: the chosen checkpoint, or None for a fresh start.
        why: one line saying why this choice (shown to the user).
        skipped: unusable checkpoints, each with its reason.
        weights_only: a newer weights-only checkpoint (the end of a finished run) that could
            seed an explicit weights-only restart with a fresh optimizer, if the user asks.
        error: set when checkpoints exist but none can be resumed: the caller must stop.
    """

    checkpoint: InspectedCheckpoint | None
    why: str
    skipped: tuple[Skipped, ...] = ()
    weights_only: InspectedCheckpoint | None = None
    error: str | None = None
    error_code: str | None = None  # the plan's problem code for ``error`` (default NO_USABLE_CHECKPOINT)


def _reason(c: InspectedCheckpoint) -> str:
    s = c.state
    if s.unsafe_globals:  # first: whatever else is wrong, this one must never be loaded
        return "unsafe to load: " + "; ".join(g.describe() for g in s.unsafe_globals)
    if s.incomplete_reasons:
        return "; ".join(s.incomplete_reasons)
    if s.has_optimizer_state is not True:
        return "weights only (no optimizer state): Lightning cannot continue training from it"
    if c.invalid_values:
        return "; ".join(f"{p.code}: {p.message}" for p in c.invalid_values)
    return "its step could not be read"


def _skipped(checkpoints: tuple[InspectedCheckpoint, ...]) -> tuple[Skipped, ...]:
    # NeMo's context-only -last companions are not checkpoints: nothing was skipped there
    return tuple(Skipped(str(c.state.location.path), _reason(c)) for c in checkpoints
                 if not c.resumable and not c.is_companion)


def _newer_weights_only(checkpoints, chosen: InspectedCheckpoint | None) -> InspectedCheckpoint | None:
    floor = chosen.state.step if chosen else -1
    candidates = [
        c
        for c in checkpoints
        if c.state.complete
        and c.state.step is not None
        and c.state.step > floor
        and any(p.code == NO_OPTIMIZER_STATE for p in c.problems)
    ]
    return max(candidates, key=lambda c: c.state.step) if candidates else None


def default_resume(run: Path) -> str:
    """``auto`` for a run folder, the path itself for one checkpoint (a .ckpt or a folder with weights/)."""
    try:
        return RESUME_AUTO if run.is_dir() and not (run / WEIGHTS_DIR).is_dir() else str(run)
    except OSError:  # an unreadable folder: the search reports it
        return RESUME_AUTO


def choose_checkpoint(run_dir: Path | str, resume: str) -> Choice:
    """Apply ``--resume auto|never|PATH`` to ``run_dir``.

    Raises:
        NemoResumeError: ``resume`` names a path that does not exist or is not a checkpoint.
    """
    if resume == RESUME_NEVER:
        return Choice(None, "--resume never: starting from scratch, ignoring any checkpoint")
    if resume != RESUME_AUTO:
        result = inspect_path(resume)
        if len(result.checkpoints) != 1:
            raise NemoResumeError(
                f"--resume {resume}: holds {len(result.checkpoints)} checkpoints; name one, or use --resume auto"
            )
        only = result.checkpoints[0]
        if not only.resumable:
            return Choice(None, f"--resume {resume}", _skipped(result.checkpoints), error=f"{resume}: {_reason(only)}")
        return Choice(only, f"--resume {resume}: the checkpoint you named")
    run_dir = Path(run_dir)
    if not run_dir.exists():
        return Choice(None, f"{run_dir} does not exist yet: starting from scratch (first launch)")
    if run_dir.is_dir() and not os.access(run_dir, os.R_OK | os.X_OK):
        # unreadable is not empty: never turn a permission problem into a fresh start
        raise NemoResumeError(f"{run_dir}: permission denied; make the folder readable")
    try:
        result = inspect_path(run_dir)
    except NemoResumeError:
        return Choice(None, f"no checkpoint under {run_dir}: starting from scratch")
    latest = result.latest
    skipped = _skipped(result.checkpoints)
    if result.mixed is not None:
        return Choice(None, "--resume auto", skipped, error=result.mixed.message, error_code=result.mixed.code)
    weights_only = _newer_weights_only(result.checkpoints, latest)
    if latest is None:
        return Choice(
            None,
            "--resume auto",
            skipped,
            weights_only,
            error=f"{len(result.checkpoints)} checkpoint(s) under {run_dir} but none can be resumed; "
            "fix or move them, or pass --resume never to start from scratch deliberately",
        )
    return Choice(latest, f"--resume auto: newest resumable checkpoint by step ({latest.state.step})", skipped, weights_only)
