"""``python -m nemo_resume.plan RUN --lr X --min-lr Y --max-steps N``: a resume that cannot fail.

Picks the checkpoint (``--resume auto|never|PATH``), the LR policy (``--lr-policy``) and shows
the schedule the resumed run will follow, at the steps that matter.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from nemo_resume.cli_support import EXIT_OK, EXIT_PROBLEM, fmt_lr, print_json, run_cli
from nemo_resume.planning import ResumePlan, plan_resume
from nemo_resume.policy import POLICIES
from nemo_resume.schedule_args import add_schedule_args, request_from_args

EPILOG = """examples:
  python -m nemo_resume.plan results/qwen25_pretrain --lr 1e-5 --min-lr 1e-6 --max-steps 1000 --warmup-steps 500
  python -m nemo_resume.plan results/run --lr 1e-4 --min-lr 1e-5 --max-steps 600 --lr-policy smooth --json -o plan.json

exit codes: 0 the plan is safe, 1 no safe plan exists for the request, 2 bad input"""


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0], epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", help="the run folder (searched recursively) or one checkpoint")
    p.add_argument("--resume", default=None, help="auto (default for a folder), never, or a checkpoint PATH")
    p.add_argument("--lr-policy", choices=POLICIES, default="auto", help="how the LR continues (default: auto)")
    p.add_argument("--restart-from-weights", action="store_true",
                   help="start from the newest weights-only checkpoint with a fresh optimizer and schedule")
    add_schedule_args(p)
    p.add_argument("--json", action="store_true", help="print the plan as one JSON object")
    p.add_argument("-o", "--output", type=Path, help="also write the plan JSON here (for scripts/check_schedule.py --plan)")
    return p


def render(plan: ResumePlan) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(f"[bold]Checkpoint:[/] {plan.checkpoint or '(none: ' + plan.mode + ')'}", soft_wrap=True)
    console.print(f"  {plan.choice.why}", soft_wrap=True)
    for s in plan.choice.skipped:
        console.print(f"  [yellow]skipped[/] {Path(s.path).name}: {s.reason}", soft_wrap=True)
    if plan.choice.weights_only:
        console.print(f"  weights-only checkpoint available: {plan.choice.weights_only.state.location.path} "
                      "(use --restart-from-weights for a fresh optimizer from it)", soft_wrap=True)
    if plan.decision:
        console.print(f"[bold]LR policy:[/] {plan.decision.policy}")
        for note in plan.decision.notes:
            console.print(f"  {note}", soft_wrap=True)
    points = plan.schedule_points()
    if points:
        table = Table(title=f"Schedule from step {plan.resume_step} to {plan.request.max_steps}")
        table.add_column("step")
        table.add_column("LR per group")
        for step, lrs in points:
            table.add_row(str(step), ", ".join(fmt_lr(x) for x in lrs))
        console.print(table)
    for p in plan.problems:
        style = "red" if p.severity == "error" else "yellow"
        console.print(f"[{style}]{p.severity.upper()} {p.code}[/] {p.message}", soft_wrap=True)
    console.print("[green]Plan is safe.[/]" if plan.ok else "[red]No safe plan for this request.[/]")


def _default_resume(run: Path) -> str:
    """``auto`` for a run folder, the path itself for one checkpoint (a .ckpt or a folder with weights/)."""
    try:
        return "auto" if run.is_dir() and not (run / "weights").is_dir() else str(run)
    except OSError:  # an unreadable folder: the search reports it
        return "auto"


def main(argv: list[str] | None = None, prog: str = "nemo-resume plan") -> int:
    args = build_parser(prog).parse_args(argv)

    def body() -> int:
        resume = args.resume or _default_resume(Path(args.run))
        plan = plan_resume(args.run, request_from_args(args), resume=resume, policy=args.lr_policy,
                           restart_from_weights=args.restart_from_weights)
        if args.output:
            args.output.write_text(json.dumps(plan.to_json(), indent=2) + "\n")
        print_json(plan.to_json()) if args.json else render(plan)
        return EXIT_OK if plan.ok else EXIT_PROBLEM

    return run_cli(prog, body)


if __name__ == "__main__":
    sys.exit(main(prog="python -m nemo_resume.plan"))
