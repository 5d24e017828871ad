"""The human reports of every command, in ``rich``: one renderer per result type.

Library code never imports this module: results are plain data with ``to_json()``; only the CLIs render.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from nemo_resume.cli.common import fmt_lr

if TYPE_CHECKING:  # types only: `inspect` must not import numpy, torch or NeMo to render
    from nemo_resume.check import CheckResult
    from nemo_resume.inspection import Inspection
    from nemo_resume.planning import ResumePlan


def render_inspection(result: Inspection) -> None:
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


def render_plan(plan: ResumePlan) -> None:
    """The chosen checkpoint and why, the LR policy and its notes, the schedule at key steps, then the verdict."""
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


def render_check(result: CheckResult) -> None:
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
