"""The resume flags, declared once: ``--resume`` (which checkpoint), ``--lr-policy`` (which schedule) and
``--max-jump`` (the jump limit the planner and the check share)."""

from __future__ import annotations

import math
from typing import Any

from nemo_resume.constants import MAX_LR_JUMP
from nemo_resume.errors import NemoResumeError
from nemo_resume.planning.policy import POLICIES


def add_resume_args(group: Any, *, resume_default: str | None = "auto", when: str = "") -> None:
    """Add ``--resume`` and ``--lr-policy`` to an argparse parser or group.

    Args:
        resume_default: ``auto``, or None where the command picks it from its path (``plan``).
        when: a prefix for the help, e.g. ``"with --run: "`` where the flags only apply with another one.
    """
    default = "auto for a folder, the path itself for one checkpoint" if resume_default is None else resume_default
    group.add_argument("--resume", default=resume_default, metavar="auto|never|PATH",
                       help=f"{when}the newest resumable checkpoint by step, a fresh start, or the checkpoint at PATH "
                            f"(default: {default})")
    group.add_argument("--lr-policy", choices=POLICIES, default="auto",
                       help=f"{when}how the LR continues after the resume (default: %(default)s; docs/plan.md)")


def _fraction(text: str) -> float:
    """``--max-jump``'s value: a finite number >= 0 (bad input: one line, exit 2, as every command's)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise NemoResumeError(f"--max-jump {text} must be a finite number >= 0 (a fraction: 0.01 is 1%)")
    return value


def add_max_jump_arg(group: Any) -> None:
    """``--max-jump``: the largest relative LR change at the resume step that is not a jump (planner and check)."""
    group.add_argument("--max-jump", type=_fraction, default=MAX_LR_JUMP, metavar="FRACTION",
                       help="largest relative LR change at the resume step a plan may make unasked; a jump "
                            "--lr-policy recompute chooses is reported, not refused (default: %(default)s)")
