"""``python -m nemo_resume.inspect PATH [--json]``: what a checkpoint will restore, and what breaks.

Imports neither torch nor NeMo, and runs no code from the checkpoint.
"""

from __future__ import annotations

import argparse
import sys

from nemo_resume.cli_support import EXIT_OK, fmt_lr, print_json, run_cli
from nemo_resume.inspection import Inspection, inspect_path

EPILOG = """examples:
  python -m nemo_resume.inspect results/qwen25_pretrain          # a whole run, recursively
  python -m nemo_resume.inspect results/.../checkpoints/NAME --json

exit codes: 0 nothing wrong, 1 an error in the checkpoint a resume would use, 2 bad input"""


def build_parser(prog: str = "nemo-resume inspect") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Read trainer state (step, LR per group, scheduler, saved config) from NeMo 2 checkpoints.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("path", help="a checkpoint folder, its weights/, a .ckpt file, a checkpoints/ folder or a run root")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    return p


def render(result: Inspection) -> None:
    """The human report: one table row per checkpoint, then each problem in plain words."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    table = Table(title="NeMo checkpoints", show_lines=False)
    for col in ("step", "format", "complete", "LR per group", "sched min_lr", "sched max_steps", "warmup", "optim", "path"):
        table.add_column(col)
    latest = result.latest
    for c in result.checkpoints:
        s = c.state
        sch = s.scheduler
        mark = "[green]yes[/]" if s.complete else "[red]no[/]"
        table.add_row(
            str(s.step) if s.step is not None else "?",
            s.location.format,
            mark,
            ", ".join(fmt_lr(x) for x in s.lrs) or "-",
            fmt_lr(sch.min_lr) if sch else "-",
            str(sch.max_steps) if sch else "-",
            str(sch.warmup_steps) if sch else "-",
            {True: "yes", False: "[yellow]no[/]", None: "?"}[s.has_optimizer_state],
            ("[bold]> [/]" if c is latest else "") + s.location.path.name,
        )
    console.print(table)
    for c in result.checkpoints:
        for p in c.problems:
            style = {"error": "red", "warning": "yellow", "info": "blue"}[p.severity]
            console.print(f"[{style}]{p.severity.upper()} {p.code}[/] {c.state.location.path.name}: {p.message}", soft_wrap=True)
    if result.mixed is not None:
        console.print(f"[red]ERROR {result.mixed.code}[/] {escape(result.mixed.message)}", soft_wrap=True)
    if latest is None:
        console.print("[red]No checkpoint here can be resumed from.[/]")
    elif result.mixed is not None:
        console.print("[red]No automatic choice between runs:[/] pass --resume PATH to the planner.", soft_wrap=True)
    else:
        console.print(f"Resume from (newest resumable, by step): [bold]{latest.state.location.path}[/]", soft_wrap=True)


def main(argv: list[str] | None = None, prog: str = "nemo-resume inspect") -> int:
    args = build_parser(prog).parse_args(argv)

    def body() -> int:
        result = inspect_path(args.path)
        if args.json:
            print_json(result.to_json())
        else:
            render(result)
        return result.exit_code if result.checkpoints else EXIT_OK

    return run_cli(prog, body)


if __name__ == "__main__":
    sys.exit(main(prog="python -m nemo_resume.inspect"))
