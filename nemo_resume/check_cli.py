"""``python scripts/check_schedule.py``: run a recipe's LR schedule through NeMo's own scheduler.

Input errors are found before torch and NeMo are imported (about 10 s), so a typo answers at once.
"""

from __future__ import annotations

import argparse
import sys

from nemo_resume.check import DEFAULT_MAX_JUMP, CheckResult, check_schedule, load_plan, unchecked_request
from nemo_resume.cli_support import print_json, run_cli
from nemo_resume.errors import NemoResumeError
from nemo_resume.policy import POLICIES
from nemo_resume.request import COSINE_SCHEDULES, STAGED
from nemo_resume.schedule_args import add_schedule_args, lr_mults, request_from_args, stages_from_args
from nemo_resume.schedules.select import scheduler_module

EPILOG = """examples:
  # the incident: lr lowered to 1e-5 under the pretrain recipe's min_lr 3e-5 (fails at step 501)
  python scripts/check_schedule.py --lr 1e-5 --min-lr 3e-5 --warmup-steps 500 --max-steps 1000
  # a LoRA fine-tune with a second param group at 10x, as JSON, with a plot
  python scripts/check_schedule.py --lr 1e-4 --min-lr 0 --warmup-steps 50 --max-steps 1000 --lr-mult 10 --json --plot lr.png
  # a resume: {"resume_step", "restored": {scheduler state_dict}, "target": {...} | null, "request": {...}}
  python scripts/check_schedule.py --plan plan.json --plot lr.png
  # a Hugging Face schedule name, run by the NeMo module that gives its shape (docs/schedules.md)
  python scripts/check_schedule.py --schedule linear --lr 1e-4 --min-lr 0 --warmup-steps 50 --max-steps 1000
  # seed 004's two stages, LoRA adapters at half the LR
  python scripts/check_schedule.py --lr-stages 75:1e-4,50:1e-5 --lr-mult '*adapter*=0.5'

exit codes: 0 every check passes, 1 a check fails (the step and reason are printed), 2 bad input"""

_RECIPE_FLAGS = ("lr", "min_lr", "max_steps", "warmup_steps", "constant_steps", "lr_mult", "lr_stages", "decay_steps", "decay_type")


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad flags as one line and exit code 2, like every other bad input."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise NemoResumeError(message)


def build_parser(prog: str = "nemo-resume check") -> argparse.ArgumentParser:
    p = _Parser(
        prog=prog,
        description="Check an LR schedule (fresh, or a resumed cosine) with the real NeMo scheduler module a recipe uses.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    # None defaults: "given" must be told apart from "left out" (--plan carries its own request).
    add_schedule_args(p, defaults={"warmup_steps": None, "constant_steps": None})
    p.add_argument("--plan", metavar="FILE", help="check a resume: JSON with resume_step, restored, target, request")
    g = p.add_argument_group("or plan the resume here (as the recipes do) and check it")
    g.add_argument("--run", metavar="DIR", help="the run folder (or a checkpoint) to plan the resume against")
    g.add_argument("--resume", default="auto", help="with --run: auto, never or a checkpoint PATH (default: auto)")
    g.add_argument("--lr-policy", choices=POLICIES, default="auto", help="with --run: the LR policy (default: auto)")
    p.add_argument("--max-jump", type=float, default=DEFAULT_MAX_JUMP, help="largest relative LR change at the resume step (default 0.01)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    p.add_argument("--plot", metavar="PNG", help="write a PNG of every group's LR over the horizon")
    return p


def _planned(args: argparse.Namespace) -> CheckResult:
    """``--run DIR``: plan the resume for the recipe flags, then check the plan (nemo_resume.prelaunch)."""
    from nemo_resume.prelaunch import plan_and_check

    if args.plan:
        raise NemoResumeError("give --plan FILE or --run DIR, not both")
    unchecked = request_from_args(args, checked=False)
    return plan_and_check(args.run, unchecked, resume=args.resume, policy=args.lr_policy)[1]


def _inputs(args: argparse.Namespace):
    given = [f"--{f.replace('_', '-')}" for f in _RECIPE_FLAGS if getattr(args, f) not in (None, [])]
    if args.plan:
        if given or args.schedule not in COSINE_SCHEDULES:
            raise NemoResumeError(f"--plan carries its own (cosine) request; drop {' '.join(given) or '--schedule'}")
        return load_plan(args.plan)
    stages = stages_from_args(args)  # the stages give the LR and the length; min_lr only a floor to check
    missing = [f"--{f.replace('_', '-')}" for f in ("lr", "min_lr", "max_steps") if getattr(args, f) is None]
    if missing:
        raise NemoResumeError(f"{', '.join(missing)} required (or give --plan FILE)")
    mults = lr_mults(args.lr_mult)
    request = unchecked_request(args.lr, args.min_lr, args.max_steps, args.warmup_steps or 0, args.constant_steps or 0, mults)
    schedule = STAGED if stages and args.schedule == "cosine" else args.schedule
    if schedule in COSINE_SCHEDULES and args.decay_steps is None and args.decay_type is None:
        return request, None
    other = request_from_args(args, checked=False)
    scheduler_module(other)  # a name with no faithful NeMo module is refused before torch is imported
    return other, None


def render(result: CheckResult) -> None:
    """The human report: key steps with each group's LR, every check, then the verdict."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    groups = len(result.request.base_lrs)
    table = Table(title=f"LR at key steps ({result.scheduler})")
    for col in ("step", "what", *(f"group {g}" for g in range(groups))):
        table.add_column(col, justify="right" if col != "what" else "left")
    for step, label, lrs in result.key_steps:
        cells = [f"{x:.4g}" for x in lrs] if lrs is not None else ["[red]raises[/]"] * groups
        table.add_row(str(step), label, *cells)
    console.print(table)
    checks = Table(title="Checks")
    for col in ("check", "result", "step", "reason"):
        checks.add_column(col, overflow="fold")
    marks = {True: "[green]pass[/]", False: "[red]FAIL[/]", None: "[yellow]skipped[/]"}
    for c in result.checks:
        checks.add_row(c.name, marks[c.ok], "" if c.step is None else str(c.step), c.reason)
    console.print(checks)
    for note in result.notes:
        console.print(f"[blue]note[/] {note}", soft_wrap=True)
    problem = result.first_problem
    if problem is None:
        console.print(f"[green bold]OK[/]: every check passes from step {result.start} to {result.end}")
    else:
        console.print(f"[red bold]FAIL at step {problem.step}[/] ({problem.name}): {problem.reason}", soft_wrap=True)


def main(argv: list[str] | None = None, prog: str = "nemo-resume check") -> int:
    def body() -> int:
        args = build_parser(prog).parse_args(argv)
        if args.run:
            result = _planned(args)
        else:
            request, resume = _inputs(args)
            result = check_schedule(request, resume=resume, max_jump=args.max_jump)
        if args.plot:
            from nemo_resume.plot import write_plot

            write_plot(result, args.plot)
        if args.json:
            print_json(result.to_json())
        else:
            render(result)
            if args.plot:
                print(f"wrote {args.plot}")
        return result.exit_code

    return run_cli(prog, body)


if __name__ == "__main__":
    sys.exit(main(prog="python -m nemo_resume.check_cli"))
