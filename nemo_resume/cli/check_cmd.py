"""``nemo-resume check`` (and ``python scripts/check_schedule.py``): a recipe's LR schedule through NeMo's own scheduler.

Input errors are found before torch and NeMo are imported, so a typo answers at once.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from nemo_resume.check.inputs import load_plan
from nemo_resume.check.prelaunch import check_plan, plan_and_check
from nemo_resume.check.result import CheckResult
from nemo_resume.check.schedule import check_schedule
from nemo_resume.cli.common import OneLineParser, parse_args, parser, print_json, run_cli
from nemo_resume.cli.report import render_check
from nemo_resume.errors import NemoResumeError
from nemo_resume.planning.choice import default_resume
from nemo_resume.planning.flags import (
    LAYOUT_FLAGS,
    add_layout_args,
    add_max_jump_arg,
    add_resume_args,
    new_run_from_args,
)
from nemo_resume.schedules.flags import add_schedule_args, given_flags, request_from_args
from nemo_resume.schedules.scheduler_module import scheduler_module

EPILOG = """examples:
  # the incident: lr lowered to 1e-5 under the pretrain recipe's min_lr 3e-5 (fails at step 501)
  python scripts/check_schedule.py --lr 1e-5 --min-lr 3e-5 --warmup-steps 500 --max-steps 1000
  # a LoRA fine-tune with a second param group at 10x, as JSON, with a plot
  python scripts/check_schedule.py --lr 1e-4 --min-lr 0 --warmup-steps 50 --max-steps 1000 --lr-mult 10 --json --plot lr.png
  # a plan saved by `nemo-resume plan RUN ... -o plan.json`: the same verdict as --run with the plan's flags
  python scripts/check_schedule.py --plan plan.json --plot lr.png
  # a Hugging Face schedule name, run by the NeMo module that gives its shape (docs/schedules.md)
  python scripts/check_schedule.py --schedule linear --lr 1e-4 --min-lr 0 --warmup-steps 50 --max-steps 1000
  # seed 004's two stages, LoRA adapters at half the LR
  python scripts/check_schedule.py --lr-stages 75:1e-4,50:1e-5 --lr-mult '*adapter*=0.5'

exit codes: 0 every check passes, 1 a check fails (the step and reason are printed), 2 bad input"""


def build_parser(prog: str) -> OneLineParser:
    p = parser(
        prog,
        "Check an LR schedule (fresh, or a resumed cosine) with the real NeMo scheduler module a recipe uses.",
        EPILOG,
    )
    # None defaults: "given" must be told apart from "left out" (--plan carries its own request).
    add_schedule_args(p, defaults={"warmup_steps": None, "constant_steps": None})
    p.add_argument("--plan", metavar="FILE", help="check a plan `nemo-resume plan ... -o FILE` wrote (docs/check.md)")
    g = p.add_argument_group("or plan the resume here (as the recipes do) and check it")
    g.add_argument("--run", metavar="DIR", help="the run folder (or a checkpoint) to plan the resume against")
    add_resume_args(g, when="with --run: ", resume_default=None, policy_default=None)
    add_layout_args(g)
    add_max_jump_arg(p)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    p.add_argument("--plot", metavar="PNG", help="write a PNG of every group's LR over the horizon")
    return p


def _planned(args: argparse.Namespace) -> CheckResult:
    """``--run DIR``: plan the resume for the recipe flags, then check the plan (as the recipes do)."""
    if args.plan:
        raise NemoResumeError("give --plan FILE or --run DIR, not both")
    unchecked = request_from_args(args, checked=False)
    # as `plan RUN`: a path that is neither a run folder nor a checkpoint is refused, never checked as a fresh start
    resume = args.resume or default_resume(Path(args.run))
    policy = args.lr_policy or "auto"
    return plan_and_check(args.run, unchecked, resume=resume, policy=policy, max_jump=args.max_jump,
                          new_run=new_run_from_args(args, unchecked))[1]


def _from_plan(args: argparse.Namespace) -> CheckResult:
    """``--plan FILE`` (``nemo-resume plan -o FILE``): the plan checked as ``--run`` checks it when planned there."""
    given = given_flags(args)
    if given or args.schedule != "cosine":
        raise NemoResumeError(f"--plan carries its own request; drop {' '.join(given) or '--schedule'}")
    plan = load_plan(args.plan)
    if args.max_jump != plan.max_jump:
        raise NemoResumeError(
            f"--plan {args.plan} was planned with --max-jump {plan.max_jump:g}: check it with --max-jump "
            f"{plan.max_jump:g}, or plan again with --max-jump {args.max_jump:g} -o {args.plan}"
        )
    return check_plan(plan, max_jump=args.max_jump)


def _checked(args: argparse.Namespace) -> CheckResult:
    """The schedule flags, checked as given (a schedule NeMo would fail on included)."""
    request = request_from_args(args, checked=False)
    scheduler_module(request)  # a name with no faithful NeMo module is refused before torch is imported
    return check_schedule(request, max_jump=args.max_jump)


def main(argv: list[str] | None = None, prog: str = "nemo-resume check") -> int:
    def body() -> int:
        args = parse_args(build_parser(prog), argv)
        stray = given_flags(args, ("resume", "lr_policy", *LAYOUT_FLAGS))
        if stray and not args.run:
            raise NemoResumeError(f"{' and '.join(stray)} apply with --run DIR only (a --plan file carries its own); "
                                  "add --run, or drop them")
        result = _planned(args) if args.run else _from_plan(args) if args.plan else _checked(args)
        if args.plot:
            from nemo_resume.check.plot import write_plot

            write_plot(result, args.plot)
        if args.json:
            print_json(result.to_json())
        else:
            render_check(result)
            if args.plot:
                print(f"wrote {args.plot}")
        return result.exit_code

    return run_cli(prog, body)
