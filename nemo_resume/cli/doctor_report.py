"""The doctor's human report, in ``rich``: one row per finding, the checkpoint estimate, then the verdict."""

from __future__ import annotations

from nemo_resume.cli.report import shown, stdout_console
from nemo_resume.environment import Launch, Report
from nemo_resume.environment.storage import size_text

_MARKS = {"blocker": "[red]BLOCKER[/]", "warning": "[yellow]warning[/]", "ok": "[green]ok[/]", "info": "[blue]info[/]"}


def _estimate_line(launch: Launch) -> str:
    """The disk formula with this run's numbers (docs/doctor.md)."""
    c = launch.checkpoints
    saved = f"{c.saved_params:,} {c.adapters.kind} adapter parameters" if c.adapters else f"{c.saved_params:,} parameters"
    kept = f"{c.kept} kept (save_top_k {c.save_top_k}, {c.interval_saves} interval saves)"
    extra = c.copies - c.kept
    model = f"the rehearsal's tiny {c.shape.name}" if launch.accelerator == "cpu" else c.shape.name
    return (f"{saved} ({model}) x {c.weight_bytes + c.optimizer_bytes} bytes (weights {c.weight_bytes} + "
            f"optimizer {c.optimizer_bytes}) = {size_text(c.checkpoint_bytes)} per checkpoint; {kept} + {extra} "
            f"(the -last copy, one being written) = {c.copies} copies, {size_text(c.needed_bytes)}")


def render_doctor(report: Report, launch: Launch) -> None:
    from rich.table import Table

    console = stdout_console()
    where = "the --smoke rehearsal on CPU" if launch.accelerator == "cpu" else f"a {launch.executor} launch"
    table = Table(title=f"Environment for {where}, --dir {shown(launch.dir)}")
    for col in ("check", "result", "subject", "detail"):
        table.add_column(col, overflow="fold")
    for f in report.findings:
        table.add_row(f.check, _MARKS[f.level], shown(f.subject), shown(f.message))
    console.print(table)
    console.print(f"[bold]Checkpoints:[/] {shown(_estimate_line(launch))}", soft_wrap=True)
    blockers, warnings = report.at("blocker"), report.at("warning")
    tail = f", {len(warnings)} warning{'s' if len(warnings) != 1 else ''}" if warnings else ""
    if blockers:
        which = ", ".join(dict.fromkeys(f.check for f in blockers))
        console.print(f"[red bold]BLOCKED[/]: {len(blockers)} blocker{'s' if len(blockers) != 1 else ''} "
                      f"({which}){tail}")
    else:
        console.print(f"[green bold]OK[/]: nothing blocks this launch{tail}")
