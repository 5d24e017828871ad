"""``nemo-resume audit RUN``: what the run did, from its own TensorBoard logs, against its plan. Reads only;
``--plot`` and ``--report`` write the files they name, nothing else is written."""

from __future__ import annotations

from pathlib import Path

from nemo_resume.audit import AuditResult, audit_run, training_report
from nemo_resume.cli.common import OneLineParser, parse_args, parser, print_json, run_cli, write_json
from nemo_resume.cli.report import shown, stdout_console

EPILOG = """examples:
  # every attempt of the run against the plan its launch saved (<run>/plans/), and its health
  nemo-resume audit results/qwen25_pretrain
  # against a plan written by `nemo-resume plan RUN ... -o plan.json`, with a PNG and training_report.json
  nemo-resume audit results/qwen25_pretrain --plan plan.json --plot audit.png --report training_report.json

exit codes: 0 no problem found, 1 a problem found (the step and reason are printed), 2 bad input"""


def build_parser(prog: str) -> OneLineParser:
    p = parser(prog, "Compare what a run did (its TensorBoard logs) with its plan, and check its loss and grad norm.",
               EPILOG)
    p.add_argument("run", type=Path, help="the run folder: the recipe's <--dir>/<--name>")
    p.add_argument("--plan", metavar="FILE", type=Path,
                   help="a plan file (`nemo-resume plan -o`); default: the plans the recipe scripts saved per launch")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    p.add_argument("--plot", metavar="PNG", type=Path, help="write a PNG of LR (planned and logged), loss and grad norm")
    p.add_argument("--report", metavar="PATH", type=Path, help="write training_report.json there (docs/audit.md)")
    return p


def render_audit(result: AuditResult) -> None:
    """The human report: the attempts, the LR against each plan, the problems with their advice, the verdict."""
    from rich.table import Table

    console = stdout_console()
    logged = "every param group's LR logged" if result.every_group else "only param group 0's LR logged"
    attempts = Table(title=f"{shown(result.run)}: {len(result.attempts)} attempt(s), {logged}")
    for col in ("attempt", "steps", "trained again", "skipped", "LR at the resume"):
        attempts.add_column(col, overflow="fold")
    for s in result.spans:
        seam = "" if s.seam is None else (f"{_lrs(s.seam.before)} (step {s.seam.before_step}) -> {_lrs(s.seam.after)}: "
                                          f"{'[red]' if s.jump else ''}{s.seam.relative:.2%}{'[/]' if s.jump else ''}")
        attempts.add_row(str(s.index), f"{s.first_step}-{s.last_step}", _range(s.repeated), _range(s.skipped), seam)
    console.print(attempts)
    if result.comparisons:
        lr = Table(title="LR against the plan")
        for col in ("plan", "attempt", "steps compared", "first divergence"):
            lr.add_column(col, overflow="fold")
        for c in result.comparisons:
            d = c.first
            verdict = "[green]none[/]" if d is None else (
                f"[red]step {d.step}[/], group {d.group}: {d.actual:.6g} vs planned {d.planned:.6g} ({d.relative:.2%})")
            span = f"{c.compared[0]}-{c.compared[-1]}" if c.compared else "none"
            lr.add_row(shown(_short(Path(c.plan), result.run)), "all (final)" if c.attempt is None else str(c.attempt), span, verdict)
        console.print(lr)
    problems = result.problems
    if problems:
        table = Table(title="Problems (advice only: audit changes nothing)")
        for col in ("step", "attempt", "problem", "what", "advice"):
            table.add_column(col, overflow="fold")
        for p in problems:
            table.add_row(str(p.step), "" if p.attempt is None else str(p.attempt), p.code, shown(p.message),
                          shown(p.advice))
        console.print(table)
    for note in result.notes:
        console.print(f"[blue]note[/] {shown(note)}", soft_wrap=True)
    if problems:
        first = problems[0]
        console.print(f"[red bold]FAIL at step {first.step}[/] ({first.code}): {len(problems)} problem(s)", soft_wrap=True)
    else:
        console.print(f"[green bold]OK[/]: no problem found in {len(result.attempts)} attempt(s)")


def _short(path: Path, run: Path) -> Path:
    """A saved plan relative to its run folder (``plans/<time>.json``), any other path as given."""
    return path.relative_to(run) if path.is_relative_to(run) else path


def _lrs(lrs: tuple[float, ...]) -> str:
    return ", ".join(f"{x:.4g}" for x in lrs)


def _range(steps: tuple[int, ...]) -> str:
    return f"{steps[0]}-{steps[-1]} ({len(steps)})" if steps else ""


def main(argv: list[str] | None = None, prog: str = "nemo-resume audit") -> int:
    def body() -> int:
        args = parse_args(build_parser(prog), argv)
        result = audit_run(args.run, args.plan)
        if args.plot:
            from nemo_resume.audit.plot import write_plot

            write_plot(result, args.plot)
        if args.report:
            write_json(args.report, training_report(result).to_json(), "--report")
        if args.json:
            print_json(result.to_json())
        else:
            render_audit(result)
            for path in (args.plot, args.report):
                if path:
                    print(f"wrote {path}")
        return result.exit_code

    return run_cli(prog, body)
