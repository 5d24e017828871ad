"""The schedule flags shared by the planner and the check, parsed one way."""

from __future__ import annotations

import argparse

from nemo_resume.errors import NemoResumeError
from nemo_resume.request import STAGED, ScheduleRequest
from nemo_resume.schedules.groups import lr_mult_plan, parse_lr_mult
from nemo_resume.schedules.stages import Stage, parse_stages, total_steps


def add_schedule_args(p: argparse.ArgumentParser, *, defaults: dict | None = None) -> None:
    """``--lr --min-lr --max-steps --warmup-steps --constant-steps --lr-mult --schedule --lr-stages
    --decay-steps --decay-type`` on ``p`` (``--lr --min-lr --max-steps`` needed unless in ``defaults``
    or given by ``--lr-stages``)."""
    d = defaults or {}
    g = p.add_argument_group("schedule (every value explicit; NeMo's CosineAnnealingScheduler by default)")
    g.add_argument("--lr", type=float, default=d.get("lr"), help="peak LR of the base param group")
    g.add_argument("--min-lr", type=float, default=d.get("min_lr"), help="LR the schedule decays to (0 stays 0)")
    g.add_argument("--max-steps", type=int, default=d.get("max_steps"), help="step the schedule ends at (trainer.max_steps)")
    g.add_argument("--warmup-steps", type=int, default=d.get("warmup_steps", 0),
                   help="linear warmup steps (default: %(default)s)")
    g.add_argument("--constant-steps", type=int, default=d.get("constant_steps", 0),
                   help="cosine: steps at min_lr after the decay (default: %(default)s; NeMo's class default is 80000)")
    g.add_argument(
        "--lr-mult", action="append", default=[], metavar="[PATTERN=]MULT",
        help="an extra param group at lr * MULT (repeat for several groups); PATTERN=MULT as the recipes take it",
    )
    g.add_argument("--schedule", default="cosine", help="a Hugging Face scheduler name NeMo can run (docs/schedules.md)")
    g.add_argument("--lr-stages", metavar="STEPS:LR,...",
                   help="staged LR, e.g. 75:1e-4,50:1e-5 (STEPS:LR:wN: N warmup steps in a stage)")
    g.add_argument("--decay-steps", type=int, help="warmup_stable_decay: decay length (HF's num_decay_steps)")
    g.add_argument("--decay-type", help="warmup_stable_decay: linear or 1-sqrt")


def lr_mults(values: list[str] | None) -> tuple[float, ...]:
    """``--lr-mult`` values: a bare MULT is one group each; PATTERN=MULT ones share NeMo's one ``lr_mult``.

    Raises:
        NemoResumeError: a value that is neither, or patterns with different multipliers.
    """
    floats, rules = [], []
    for v in values or ():
        if "=" in v:
            rules.append(parse_lr_mult(v))
            continue
        try:
            floats.append(float(v))
        except ValueError:
            raise NemoResumeError(f"--lr-mult {v}: give MULT (a number) or PATTERN=MULT") from None
    plan = lr_mult_plan(rules)
    return (*floats, *((plan.mult,) if plan else ()))


def stages_from_args(args: argparse.Namespace) -> tuple[Stage, ...]:
    """``--lr-stages``, with ``--lr``, ``--max-steps`` and ``--min-lr`` (0) filled in from the stages when not given."""
    if not args.lr_stages:
        return ()
    stages = parse_stages(args.lr_stages)
    args.lr = stages[0].lr if args.lr is None else args.lr
    args.max_steps = total_steps(stages) if args.max_steps is None else args.max_steps
    args.min_lr = 0.0 if args.min_lr is None else args.min_lr
    return stages


def request_from_args(args: argparse.Namespace, *, checked: bool = True) -> ScheduleRequest:
    """The request the flags describe; validated (NemoResumeError naming the value to change)
    unless ``checked=False``, where the check is left to judge a known-bad schedule."""
    stages = stages_from_args(args)
    missing = [f"--{f.replace('_', '-')}" for f in ("lr", "min_lr", "max_steps") if getattr(args, f) is None]
    if missing:
        raise NemoResumeError(f"{', '.join(missing)} required (or give --lr-stages)")
    return ScheduleRequest(
        lr=args.lr,
        min_lr=args.min_lr,
        max_steps=args.max_steps,
        warmup_steps=args.warmup_steps or 0,  # None where a CLI leaves them unset (check_cli)
        constant_steps=args.constant_steps or 0,
        lr_mults=lr_mults(args.lr_mult),
        schedule=STAGED if stages and args.schedule == "cosine" else args.schedule,
        stages=stages,
        decay_steps=args.decay_steps,
        decay_type=args.decay_type,
        checked=checked,
    )
