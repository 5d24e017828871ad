"""The resume flags, declared once: ``--resume`` (which checkpoint) and ``--lr-policy`` (which schedule)."""

from __future__ import annotations

from typing import Any

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
