"""The plans the recipe scripts save beside every launch: ``<dir>/<name>/plans/<UTC time>.json``.

Each file is the plan file ``nemo-resume plan -o`` writes (:mod:`nemo_resume.planning.plan_file`), named by the time
the launch was planned, so ``audit`` pairs each attempt with the last plan saved before its first logged step.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from nemo_resume.check.inputs import load_plan
from nemo_resume.errors import NemoResumeError
from nemo_resume.planning import ResumePlan

PLANS_DIR = "plans"
#: A saved plan's name: the UTC time it was written, to the microsecond (two launches never share one).
STAMP = "%Y-%m-%dT%H-%M-%S.%fZ"


@dataclass(frozen=True)
class SavedPlan:
    """A plan file and when it was saved (seconds since the epoch)."""

    path: Path
    saved: float
    plan: ResumePlan


def launch_plan_path(run_dir: Path, now: datetime | None = None) -> Path:
    """Where a launch at ``now`` (default: this instant) saves its plan."""
    when = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    return run_dir / PLANS_DIR / f"{when.strftime(STAMP)}.json"


def _saved_at(path: Path) -> float | None:
    try:
        return datetime.strptime(path.stem, STAMP).replace(tzinfo=timezone.utc).timestamp()
    except ValueError:
        return None


def saved_plans(run_dir: Path) -> tuple[list[SavedPlan], list[str]]:
    """The plans saved in ``run_dir/plans``, oldest first, and a note for each file there that is not one.

    Raises:
        NemoResumeError: a saved plan is not a plan file this version reads (its path and the fix named).
    """
    folder = run_dir / PLANS_DIR
    plans, notes = [], []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        saved = _saved_at(path)
        if saved is None:
            notes.append(f"{path}: not named by a launch's time ({STAMP}); not paired with any attempt")
            continue
        try:
            plans.append(SavedPlan(path, saved, load_plan(path)))
        except NemoResumeError as exc:
            raise NemoResumeError(f"{exc} (a plan a launch saved: move it out of {folder} to audit without it)") from None
    return sorted(plans, key=lambda p: p.saved), notes


def plan_for(started: float, plans: list[SavedPlan]) -> SavedPlan | None:
    """The plan of an attempt that logged its first step at ``started``: the last one saved before it."""
    before = [p for p in plans if p.saved <= started]
    return before[-1] if before else None
