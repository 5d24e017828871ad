"""The human reports of every command, in ``rich``: one renderer per result type.

Library code never imports this module: results are plain data with ``to_json()``; only the CLIs render.
Every line is rich markup, and every string that came from a file (a checkpoint's name or path, a pickled
name, a saved config string, a message quoting them) enters it through :func:`shown` only.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from nemo_resume.cli.common import fmt_lr
from nemo_resume.constants import COMMON_PT, FORMAT_MEGATRON, WEIGHTS_DIR
from nemo_resume.inspection.inspector import peft_base_found

if TYPE_CHECKING:  # types only: `inspect` must not import numpy, torch or NeMo to render
    from rich.console import Console

    from nemo_resume.check import CheckResult
    from nemo_resume.checkpoint.run_layout import RunLayout
    from nemo_resume.checkpoint.state import CheckpointState
    from nemo_resume.inspection import InspectedCheckpoint, Inspection
    from nemo_resume.planning import ResumePlan


# C0 and C1 controls (ESC, CR, LF, backspace, ...), DEL, the line and paragraph separators, and the marks and
# overrides that reorder text (bidi): none may reach a terminal from a file.
_UNSHOWABLE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _visible_escape(m: re.Match[str]) -> str:
    code = ord(m.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def shown(text: object) -> str:
    """File-derived ``text`` as markup that prints exactly it, on the line it is on.

    Markup is escaped (``[red]`` or a bare ``[/]`` in a name once styled or crashed the report) and every
    control or bidi character is written as a visible escape (``\\x1b``, ``\\x0a``, ``\\u202e``): an ANSI
    sequence in a name erased the report's warning line, and a newline forged a line of its own.
    """
    from rich.markup import escape

    return escape(_UNSHOWABLE.sub(_visible_escape, str(text)))


def _exact(x: float | None) -> str:
    """A value as Python reads it back: the inspector must tell an LR from a min_lr that rounds alike."""
    return "-" if x is None else repr(x)


def _where(path: Path, root: Path | None) -> str:
    """``path`` relative to the inspected folder when under it (short enough for 80 columns), else its name; shown."""
    if root is not None and path != root and path.is_relative_to(root):
        return shown(path.relative_to(root))
    return shown(path.name or path)


_STYLES = {"error": "red", "warning": "yellow", "info": "blue"}


def _groups_source(s: CheckpointState) -> str:
    """A Megatron checkpoint's param groups: the file they were read from (weights/common.pt, or the .distcp file of
    the distributed optimizer's objects) and the optimizer's sharding from ``content_metadata``; shown."""
    if s.param_groups_source == "distcp":
        source = ", ".join(dict.fromkeys(o.to_json()["file"] for o in s.param_groups_objects))
    else:
        source = {"common.pt": f"{WEIGHTS_DIR}/{COMMON_PT}"}.get(s.param_groups_source or "", "not read")
    meta = s.content_metadata
    sharding = None if meta is None else meta.get("distrib_optim_sharding_type")
    optimizer = "" if meta is None else (" (no distributed optimizer)" if sharding is None
                                         else f" (distributed optimizer, {sharding})")
    return shown(f"param groups: {source}{optimizer}")


def _known(pairs: list[tuple[str, object]]) -> str:
    return ", ".join(f"{k} {v}" for k, v in pairs if v is not None)


def _layout_lines(r: RunLayout) -> list[str]:
    """What a resume restores beyond the LR (``RunLayout``), one short line per subject, only what is recorded; shown."""
    lines = []
    sizes = _known([("TP", r.tp), ("PP", r.pp), ("CP", r.cp), ("EP", r.ep), ("VPP", r.vpp), ("DP", r.dp)])
    if sizes or r.devices is not None:
        world = f" (devices {r.devices} x nodes {r.num_nodes})" if r.devices is not None and r.num_nodes else ""
        lines.append(f"parallel: {sizes or 'not recorded'}{world}")
    gbs = None if r.global_batch_size is None else f"{r.global_batch_size} ({r.global_batch_size_source})"
    batch = _known([("global batch", gbs), ("micro batch", r.micro_batch_size), ("seq_length", r.seq_length),
                    ("consumed samples", r.consumed_samples)])
    if batch:
        lines.append(f"data: {batch}")
    kind = {True: "distributed", False: "not distributed", None: None}[r.distributed_optimizer]
    fmt = f"state format {r.optimizer_format}" if r.optimizer_format else None
    optim = ", ".join(x for x in (r.optimizer, kind, fmt) if x)
    if r.group_keys:
        optim += "; group keys (lr_mult, wd_mult) " + " ".join(f"({lr:g}, {wd:g})" for lr, wd in r.group_keys)
    if optim:
        lines.append(f"optimizer: {optim}")
    if r.lr_mult is not None:
        on = f" on {', '.join(r.lr_mult_patterns)}" if r.lr_mult_patterns else ""
        lines.append(f"lr_mult: {r.lr_mult:g}{on}" + (f" ({r.scale_lr_cond})" if r.scale_lr_cond else ""))
    if r.lr_mult_rules or r.layer_lr_decay is not None:
        decay = [f"layer-wise decay {r.layer_lr_decay:g}"] if r.layer_lr_decay is not None else []
        lines.append("lr multipliers: " + ", ".join([*r.lr_mult_rules, *decay]) + " (LrMultOptimizerModule)")
    if r.peft is not None or r.peft_base is not None:
        found = {True: " (there)", False: " (not found: a resume fails loading it)", None: ""}[peft_base_found(r)]
        lines.append(f"PEFT: {r.peft or 'yes'}" + (f", base {r.peft_base}{found}" if r.peft_base else ""))
    rest = _known([("precision", r.precision), ("Lightning", r.lightning_version)])
    if rest:
        lines.append(rest)
    return [shown(line) for line in lines]


def _checkpoint_block(c: InspectedCheckpoint, name: str, latest: bool) -> list[str]:
    """One checkpoint as short lines, each value whole (never cut to a column): where, state, LRs, problems.

    ``name`` is already shown (:func:`_where`)."""
    s, sch = c.state, c.state.scheduler
    lines = [f"{'[bold]> [/]' if latest else '  '}step {'?' if s.step is None else s.step}  [bold]{name}[/]"]
    optim = {True: "yes", False: "no", None: "unknown"}[s.has_optimizer_state]
    complete = "[green]complete[/]" if s.complete else "[red]INCOMPLETE[/]"
    lines.append(f"    {shown(s.location.format)}, {complete}, optimizer state: {optim}")
    if s.lrs:
        lines.append("    LR per group: " + ", ".join(_exact(x) for x in s.lrs))
    if sch is not None:
        fields = {"min_lr": sch.min_lr, "max_steps": sch.max_steps, "warmup_steps": sch.warmup_steps,
                  "constant_steps": sch.constant_steps}
        saved = ", ".join(f"{k} {_exact(v)}" for k, v in fields.items() if v is not None)
        lines.append("    scheduler: " + (saved or "no cosine fields"))
    if s.location.format == FORMAT_MEGATRON and (s.param_groups_source or s.content_metadata is not None):
        lines.append("    " + _groups_source(s))
    lines += ["    " + line for line in _layout_lines(s.run_layout)]
    for p in c.problems:
        lines.append(f"    [{_STYLES[p.severity]}]{p.severity.upper()} {shown(p.code)}[/] {name}: {shown(p.message)}")
    return lines


def _companions_note(companions: list[InspectedCheckpoint], root: Path | None) -> str:
    """One line for NeMo's context-only ``-last`` folders: not checkpoints, not errors, nothing lost."""
    why = ("NeMo keeps a -last save's context/ when its .ckpt is replaced, or links -last to one: "
           "nothing to load, nothing lost, not an error")
    if len(companions) == 1:
        loc = companions[0].state.location
        keeper = _where(loc.companion_of, root) if loc.companion_of else "?"
        return f"note: {_where(loc.path, root)} holds only context/ ({why}); companion of {keeper}"
    steps = sorted({c.state.step for c in companions if c.state.step is not None})
    at = f" (steps {steps[0]}-{steps[-1]})" if steps else ""
    return f"note: {len(companions)} context-only -last folders{at} not listed ({why}; --json: companion_of)"


def stdout_console() -> Console:
    """rich's Console on stdout, except that a reader closing the pipe (``inspect | head``) is not a failure.

    rich's own handler exits 1 on a broken pipe, which turned a healthy report into an error; here the rest
    of the report is dropped and the command's own exit code stands. Emoji codes stay text: ``:fire:`` in a checkpoint's name is not a picture.
    """
    from rich.console import Console

    class PipeSafeConsole(Console):
        def on_broken_pipe(self) -> None:
            self.quiet = True
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())

    return PipeSafeConsole(emoji=False)


def render_inspection(result: Inspection) -> None:
    """The human report, whole at any width and when piped: one short block per checkpoint (paths relative
    to the inspected folder, every LR in full), a note for NeMo's context-only -last folders, then the verdict."""
    console = stdout_console()
    latest = result.latest
    listed = [c for c in result.checkpoints if not c.is_companion]
    companions = [c for c in result.checkpoints if c.is_companion]
    where = f" in {shown(result.root)}" if result.root is not None else ""
    console.print(f"[bold]NeMo checkpoints[/]{where}, by step (> marks the one to resume from):", soft_wrap=True)
    for c in listed:
        for line in _checkpoint_block(c, _where(c.state.location.path, result.root), c is latest):
            console.print(line, soft_wrap=True)
    if companions:
        console.print(f"[blue]{_companions_note(companions, result.root)}[/]", soft_wrap=True)
    if result.mixed is not None:
        console.print(f"[red]ERROR {shown(result.mixed.code)}[/] {shown(result.mixed.message)}", soft_wrap=True)
    if latest is None:
        console.print("[red]No checkpoint here can be resumed from.[/]")
    elif result.mixed is not None:
        console.print("[red]No automatic choice between runs:[/] pass --resume PATH to the planner.", soft_wrap=True)
    else:
        console.print(f"Resume from (newest resumable, by step): [bold]{shown(latest.state.location.path)}[/]",
                      soft_wrap=True)


def render_plan(plan: ResumePlan) -> None:
    """The chosen checkpoint and why, the LR policy and its notes, the schedule at key steps, then the verdict."""
    from rich.table import Table

    console = stdout_console()
    console.print(f"[bold]Checkpoint:[/] {shown(plan.checkpoint or '(none: ' + plan.mode + ')')}", soft_wrap=True)
    console.print(f"  {shown(plan.choice.why)}", soft_wrap=True)
    for s in plan.choice.skipped:
        console.print(f"  [yellow]skipped[/] {shown(Path(s.path).name)}: {shown(s.reason)}", soft_wrap=True)
    if plan.choice.weights_only:
        console.print(f"  weights-only checkpoint available: {shown(plan.choice.weights_only.state.location.path)} "
                      "(use --restart-from-weights for a fresh optimizer from it)", soft_wrap=True)
    if plan.decision:
        console.print(f"[bold]LR policy:[/] {shown(plan.decision.policy)}")
        for note in plan.decision.notes:
            console.print(f"  {shown(note)}", soft_wrap=True)
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
        console.print(f"[{style}]{p.severity.upper()} {shown(p.code)}[/] {shown(p.message)}", soft_wrap=True)
    console.print("[green]Plan is safe.[/]" if plan.ok else "[red]No safe plan for this request.[/]")


def render_check(result: CheckResult) -> None:
    """The human report: key steps with each group's LR, every check, then the verdict."""
    from rich.table import Table

    console = stdout_console()
    groups = len(result.request.base_lrs)
    table = Table(title=f"LR at key steps ({shown(result.scheduler)})")
    for col in ("step", "what", *(f"group {g}" for g in range(groups))):
        table.add_column(col, justify="right" if col != "what" else "left")
    for step, label, lrs in result.key_steps:
        cells = [f"{x:.4g}" for x in lrs] if lrs is not None else ["[red]raises[/]"] * groups
        table.add_row(str(step), shown(label), *cells)
    console.print(table)
    checks = Table(title="Checks")
    for col in ("check", "result", "step", "reason"):
        checks.add_column(col, overflow="fold")
    marks = {True: "[green]pass[/]", False: "[red]FAIL[/]", None: "[yellow]skipped[/]"}
    for c in result.checks:
        checks.add_row(shown(c.name), marks[c.ok], "" if c.step is None else str(c.step), shown(c.reason))
    console.print(checks)
    for note in result.notes:
        console.print(f"[blue]note[/] {shown(note)}", soft_wrap=True)
    problem = result.first_problem
    if problem is None:
        console.print(f"[green bold]OK[/]: every check passes from step {result.start} to {result.end}")
    else:
        console.print(f"[red bold]FAIL at step {problem.step}[/] ({shown(problem.name)}): {shown(problem.reason)}",
                      soft_wrap=True)
