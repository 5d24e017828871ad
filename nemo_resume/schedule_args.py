"""The schedule flags shared by the recipes, the planner and the check, parsed one way."""

from __future__ import annotations

import argparse

from nemo_resume.request import ScheduleRequest


def add_schedule_args(p: argparse.ArgumentParser, *, defaults: dict | None = None) -> None:
    """``--lr --min-lr --max-steps --warmup-steps --constant-steps --lr-mult`` on ``p``."""
    d = defaults or {}
    g = p.add_argument_group("schedule (NeMo CosineAnnealingScheduler, every value explicit)")
    g.add_argument("--lr", type=float, required="lr" not in d, default=d.get("lr"), help="peak LR of the base param group")
    g.add_argument("--min-lr", type=float, required="min_lr" not in d, default=d.get("min_lr"), help="LR the cosine decays to (0 stays 0)")
    g.add_argument("--max-steps", type=int, required="max_steps" not in d, default=d.get("max_steps"), help="step the decay ends at (trainer.max_steps)")
    g.add_argument("--warmup-steps", type=int, default=d.get("warmup_steps", 0), help="linear warmup steps (default: %(default)s)")
    g.add_argument("--constant-steps", type=int, default=d.get("constant_steps", 0), help="steps at min_lr after the decay (default: %(default)s)")
    g.add_argument(
        "--lr-mult", type=float, action="append", default=[], metavar="MULT",
        help="an extra param group at lr * MULT (repeat for several groups)",
    )


def request_from_args(args: argparse.Namespace) -> ScheduleRequest:
    """The validated request; raises NemoResumeError naming the value to change."""
    return ScheduleRequest(
        lr=args.lr,
        min_lr=args.min_lr,
        max_steps=args.max_steps,
        warmup_steps=args.warmup_steps,
        constant_steps=args.constant_steps,
        lr_mults=tuple(args.lr_mult),
    )
