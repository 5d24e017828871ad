"""The schedule flags, declared once: the planner, the check and the recipes all add them here.

``--lr --min-lr --max-steps --warmup-steps --constant-steps --lr-mult --schedule --lr-stages
--decay-steps --decay-type``, and their reading into a :class:`ScheduleRequest`; ``--optim`` too (a Hugging Face
optimizer name: it does not change the LR schedule, but every command accepts or refuses a name the same way).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping
from typing import Any

from nemo_resume.errors import NemoResumeError
from nemo_resume.schedules.cooldown import POLICY as COOLDOWN
from nemo_resume.schedules.lr_mult import lr_mult_plan, parse_lr_mult
from nemo_resume.schedules.lr_stages import FLAG as STAGES_FLAG
from nemo_resume.schedules.lr_stages import Stage, parse_stages, total_steps
from nemo_resume.schedules.optim_names import optim_name
from nemo_resume.schedules.request import STAGED, ScheduleRequest

# Flags that describe the schedule itself (a --plan file carries its own).
SCHEDULE_FLAGS = (
    "lr", "min_lr", "max_steps", "warmup_steps", "constant_steps", "lr_mult", "lr_stages", "decay_steps", "decay_type",
)


def positive_int(text: str) -> int:
    """An argparse type: a whole number >= 1 (batch sizes, parallel sizes, nodes, GPUs, intervals)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def non_negative(text: str) -> float:
    """An argparse type: a finite number >= 0 (NaN, infinity or a negative is bad input: one line, exit 2)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text} must be a finite number >= 0")
    return value


def flag_name(dest: str) -> str:
    """``warmup_steps`` -> ``--warmup-steps``."""
    return "--" + dest.replace("_", "-")


def add_schedule_args(
    p: argparse.ArgumentParser, *, defaults: Mapping[str, Any] | None = None, hints: Mapping[str, str] | None = None
) -> Any:
    """Add the schedule flags to ``p`` in their own group, and return the group (callers may add to it).

    Args:
        defaults: per-flag defaults by dest (``lr``, ``min_lr``, ``max_steps`` default to None: required
            unless ``--lr-stages`` gives them; ``warmup_steps``, ``constant_steps`` to 0).
        hints: per-flag text appended to the help (a recipe's task-dependent defaults).
    """
    d = {"lr": None, "min_lr": None, "max_steps": None, "warmup_steps": 0, "constant_steps": 0, **(defaults or {})}
    h = hints or {}

    def helps(dest: str, text: str) -> str:
        return f"{text}; {h[dest]}" if dest in h else text

    g = p.add_argument_group("schedule (every value explicit; NeMo's CosineAnnealingScheduler by default)")
    g.add_argument("--lr", type=float, default=d["lr"], help=helps("lr", "peak LR of the base param group"))
    g.add_argument("--min-lr", type=float, default=d["min_lr"], help=helps("min_lr", "LR the schedule decays to (0 stays 0)"))
    g.add_argument("--max-steps", type=int, default=d["max_steps"],
                   help=helps("max_steps", "step the schedule ends at (trainer.max_steps)"))
    g.add_argument("--warmup-steps", type=int, default=d["warmup_steps"],
                   help=helps("warmup_steps", "linear warmup steps (default: %(default)s)"))
    g.add_argument("--constant-steps", type=int, default=d["constant_steps"],
                   help=helps("constant_steps", "cosine: steps at min_lr after the decay (default: %(default)s; "
                              "NeMo's class default is 80000)"))
    g.add_argument("--lr-mult", action="append", default=[], metavar="[PATTERN=]MULT",
                   help=helps("lr_mult", "PATTERN=MULT: parameters whose name matches the glob train at lr * MULT "
                              "(repeat; the first pattern a name matches wins); a bare MULT adds a param group at "
                              "lr * MULT (the check only)"))
    g.add_argument("--schedule", default="cosine",
                   help=helps("schedule", "a Hugging Face scheduler name NeMo can run (docs/schedules.md; "
                              "default: %(default)s)"))
    g.add_argument(STAGES_FLAG, metavar="STEPS:LR,...",
                   help=helps("lr_stages", "staged LR, e.g. 75:1e-4,50:1e-5 (STEPS:LR:wN: N warmup steps in a "
                              "stage; sets --lr and --max-steps)"))
    g.add_argument("--decay-steps", type=int, help="warmup_stable_decay: decay length (HF's num_decay_steps); "
                   "--lr-policy cooldown: the cooldown's length (the run ends at the resume step + D)")
    g.add_argument("--decay-type", help="warmup_stable_decay: linear or 1-sqrt; --lr-policy cooldown: linear "
                   "(default), cosine or 1-sqrt")
    g.add_argument("--optim", type=optim_name, metavar="NAME", help="a Hugging Face optimizer name megatron-core "
                   "runs (adamw_torch, sgd, ...; docs/optimizers.md); the schedule is the same whichever; "
                   "default: the recipe's megatron-core adam")
    return g


def given_flags(args: argparse.Namespace, names: tuple[str, ...] = SCHEDULE_FLAGS, *, values: bool = False) -> list[str]:
    """The flags among ``names`` given on the command line (not None, not an empty list), ``--flag value``
    with ``values``."""
    given = [n for n in names if getattr(args, n) not in (None, [])]
    return [f"{flag_name(n)} {getattr(args, n)}" if values else flag_name(n) for n in given]


def lr_mults(values: list[str] | None) -> tuple[float, ...]:
    """``--lr-mult`` values: a bare MULT is one group each, a PATTERN=MULT one group per distinct MULT (which
    parameters a pattern takes is the recipe's to know: ``nemo_resume.recipes.param_names``).

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
    return tuple(dict.fromkeys((*floats, *(r.mult for r in plan.rules)))) if plan else tuple(floats)


def request_from_args(args: argparse.Namespace, *, checked: bool = True) -> ScheduleRequest:
    """The request the flags describe; validated (NemoResumeError naming the value to change)
    unless ``checked=False``, where the check is left to judge a known-bad schedule.

    ``--lr-stages`` gives ``--lr`` (the first stage's), ``--max-steps`` (their sum) and ``--min-lr`` (0)
    when those are not given; ``--lr-policy cooldown`` leaves ``--max-steps`` to the planner; ``args`` is never
    changed.
    """
    stages: tuple[Stage, ...] = parse_stages(args.lr_stages) if args.lr_stages else ()
    lr = stages[0].lr if stages and args.lr is None else args.lr
    max_steps = total_steps(stages) if stages and args.max_steps is None else args.max_steps
    min_lr = 0.0 if stages and args.min_lr is None else args.min_lr
    if max_steps is None and getattr(args, "lr_policy", None) == COOLDOWN and args.decay_steps is not None:
        max_steps = args.decay_steps  # the planner's: the resume step + D (nemo_resume.schedules.cooldown.cooldown_end)
    missing = [flag_name(n) for n, v in (("lr", lr), ("min_lr", min_lr), ("max_steps", max_steps)) if v is None]
    if missing:
        raise NemoResumeError(f"{', '.join(missing)} required (or give {STAGES_FLAG})")
    return ScheduleRequest(
        lr=lr,
        min_lr=min_lr,
        max_steps=max_steps,
        warmup_steps=args.warmup_steps or 0,  # None where a command leaves them unset (check)
        constant_steps=args.constant_steps or 0,
        lr_mults=lr_mults(args.lr_mult),
        schedule=STAGED if stages and args.schedule == "cosine" else args.schedule,
        stages=stages,
        decay_steps=args.decay_steps,
        decay_type=args.decay_type,
        checked=checked,
    )
