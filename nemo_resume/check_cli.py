"""``python scripts/check_schedule.py``: run a recipe's LR schedule through NeMo's own scheduler.

Input errors are found before torch and NeMo are imported (about 10 s), so a typo answers at once.
"""

from __future__ import annotations

import argparse
import sys

from nemo_resume.check import DEFAULT_MAX_JUMP, CheckResult, check_schedule, load_plan, unchecked_request
from nemo_resume.cli_support import print_json, run_cli
from nemo_resume.errors import NemoResumeError

EPILOG = """examples:
  # the incident: lr lowered to 1e-5 under the pretrain recipe's min_lr 3e-5 (fails at step 501)
  python scripts/check_schedule.py --lr 1e-5 --min-lr 3e-5 --warmup-steps 500 --max-steps 1000
  # a LoRA fine-tune with a second param group at 10x, as JSON, with a plot
  python scripts/check_schedule.py --lr 1e-4 --min-lr 0 --warmup-steps 50 --max-steps 1000 --lr-mult 10 --json --plot lr.png
  # a resume: {"resume_step", "restored": {scheduler state_dict}, "target": {...} | null, "request": {...}}
  python scripts/check_schedule.py --plan plan.json --plot lr.png

exit codes: 0 every check passes, 1 a check fails (the step and reason are printed), 2 bad input"""

_RECIPE_FLAGS = ("lr", "min_lr", "max_steps", "warmup_steps", "constant_steps", "lr_mult")


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad flags as one line and exit code 2, like every other bad input."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise NemoResumeError(message)


def build_parser(prog: str = "nemo-resume check") -> argparse.ArgumentParser:
    p = _Parser(
        prog=prog,
        description="Check a cosine LR schedule (fresh or resumed) with NeMo's real CosineAnnealingScheduler.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    g = p.add_argument_group("the recipe's schedule options")
    g.add_argument("--schedule", default="cosine", help="LR schedule; only 'cosine' (CosineAnnealingScheduler) for now")
    g.add_argument("--lr", type=float, help="peak LR of param group 0 (optim.config.lr)")
    g.add_argument("--min-lr", type=float, help="lr_scheduler.min_lr")
    g.add_argument("--max-steps", type=int, help="trainer.max_steps (NeMo copies it into the scheduler)")
    g.add_argument("--warmup-steps", type=int, help="lr_scheduler.warmup_steps (default 0)")
    g.add_argument("--constant-steps", type=int, help="lr_scheduler.constant_steps (default 0; NeMo's class default is 80000)")
    g.add_argument("--lr-mult", type=float, action="append", metavar="MULT", help="one extra param group at lr*MULT (repeat)")
    p.add_argument("--plan", metavar="FILE", help="check a resume: JSON with resume_step, restored, target, request")
    p.add_argument("--max-jump", type=float, default=DEFAULT_MAX_JUMP, help="largest relative LR change at the resume step (default 0.01)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    p.add_argument("--plot", metavar="PNG", help="write a PNG of every group's LR over the horizon")
    return p


def _inputs(args: argparse.Namespace):
    if args.schedule != "cosine":
        raise NemoResumeError(f"--schedule {args.schedule} is not supported: only 'cosine' (NeMo's CosineAnnealingScheduler)")
    given = [f"--{f.replace('_', '-')}" for f in _RECIPE_FLAGS if getattr(args, f) is not None]
    if args.plan:
        if given:
            raise NemoResumeError(f"--plan carries its own request; drop {' '.join(given)}")
        return load_plan(args.plan)
    missing = [f"--{f.replace('_', '-')}" for f in ("lr", "min_lr", "max_steps") if getattr(args, f) is None]
    if missing:
        raise NemoResumeError(f"{', '.join(missing)} required (or give --plan FILE)")
    request = unchecked_request(
        args.lr, args.min_lr, args.max_steps, args.warmup_steps or 0, args.constant_steps or 0, args.lr_mult or ()
    )
    return request, None


def render(result: CheckResult) -> None:
    """The human report: key steps with each group's LR, every check, then the verdict."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    groups = len(result.request.base_lrs)
    table = Table(title="LR at key steps (NeMo CosineAnnealing)")
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
