"""The resume flags, declared once: ``--resume`` (which checkpoint), ``--lr-policy`` (which schedule),
``--max-jump`` (the jump limit the planner and the check share) and the new run's layout (``--tp`` ...
``--micro-batch-size``: what :mod:`nemo_resume.planning.compat` compares with the checkpoint's)."""

from __future__ import annotations

import argparse
from typing import Any

from nemo_resume.constants import MAX_LR_JUMP
from nemo_resume.errors import NemoResumeError
from nemo_resume.planning.new_run import NewRun
from nemo_resume.planning.policy import POLICIES
from nemo_resume.schedules.flags import flag_name, non_negative, positive_int
from nemo_resume.schedules.request import ScheduleRequest


def add_resume_args(
    group: Any, *, resume_default: str | None = "auto", policy_default: str | None = "auto", when: str = ""
) -> None:
    """Add ``--resume`` and ``--lr-policy`` to an argparse parser or group.

    Args:
        resume_default: ``auto``, or None where the command picks it from its path (``plan``).
        policy_default: ``auto``, or None where a command must tell a given ``--lr-policy`` from none (``check``
            refuses it without ``--run`` instead of ignoring it).
        when: a prefix for the help, e.g. ``"with --run: "`` where the flags only apply with another one.
    """
    default = "auto for a folder, the path itself for one checkpoint" if resume_default is None else resume_default
    group.add_argument("--resume", default=resume_default, metavar="auto|never|PATH",
                       help=f"{when}the newest resumable checkpoint by step, a fresh start, or the checkpoint at PATH "
                            f"(default: {default})")
    group.add_argument("--lr-policy", choices=POLICIES, default=policy_default,
                       help=f"{when}how the LR continues after the resume (default: auto; docs/plan.md)")


def _fraction(text: str) -> float:
    """``--max-jump``'s value: a finite number >= 0 (bad input: one line, exit 2, as every command's)."""
    try:
        return non_negative(text)
    except argparse.ArgumentTypeError:
        raise NemoResumeError(f"--max-jump {text} must be a finite number >= 0 (a fraction: 0.01 is 1%)") from None


def add_max_jump_arg(group: Any) -> None:
    """``--max-jump``: the largest relative LR change at the resume step that is not a jump (planner and check)."""
    group.add_argument("--max-jump", type=_fraction, default=MAX_LR_JUMP, metavar="FRACTION",
                       help="largest relative LR change at the resume step a plan may make unasked; a jump "
                            "--lr-policy recompute chooses is reported, not refused (default: %(default)s)")


#: The new run's layout flags (argparse dests), each "same as the checkpoint" when not given.
LAYOUT_FLAGS = {
    "tp": "tensor-parallel size",
    "pp": "pipeline-parallel size",
    "cp": "context-parallel size",
    "devices": "GPUs per node",
    "num_nodes": "nodes",
    "global_batch_size": "global batch size",
    "micro_batch_size": "micro batch size",
}


def add_layout_args(group: Any) -> None:
    """The resumed run's layout, each optional: compared with the checkpoint's (docs/plan.md, "Layout")."""
    for dest, what in LAYOUT_FLAGS.items():
        group.add_argument(flag_name(dest), type=positive_int, metavar="N",
                           help=f"the resumed run's {what} (default: the checkpoint's)")


def new_run_from_args(args: argparse.Namespace, request: ScheduleRequest) -> NewRun:
    """The resumed run as the layout flags and the schedule (``--max-steps``, ``--lr-mult``) describe it."""
    return NewRun(**{dest: getattr(args, dest) for dest in LAYOUT_FLAGS}, max_steps=request.max_steps,
                  lr_mults=request.lr_mults)
