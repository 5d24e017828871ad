"""``nemo-resume lr-find RUN``: the LR range test's analysis of a finished sweep (``--lr-find``) from its TensorBoard
logs, so a sweep run on a cluster is read on a login node. Reads only; ``--plot`` writes the file it names."""

from __future__ import annotations

from pathlib import Path

from nemo_resume.audit.lr_find import BETA, DIVERGE, LrFindResult, analyse_run
from nemo_resume.cli.common import OneLineParser, parse_args, parser, print_json, run_cli
from nemo_resume.cli.report import stdout_console

EPILOG = """examples:
  # the sweep `recipes/qwen25_pretrain.py --lr-find` ran (its run folder is <--dir>/<--name>-lr-find)
  nemo-resume lr-find results/qwen25_pretrain-lr-find --plot lr-find.png
  # or its TensorBoard logs folder, copied from the cluster
  nemo-resume lr-find results/tb_logs/qwen25_pretrain-lr-find --json

exit codes: 0 a recommendation, 2 bad input (no sweep logged there, too few steps, not a sweep)"""


def build_parser(prog: str) -> OneLineParser:
    p = parser(prog, "Recommend an LR from an LR range test's logs (docs/lr-find.md).", EPILOG)
    p.add_argument("run", type=Path, help="the sweep's run folder <--dir>/<--name>-lr-find, or its TensorBoard logs folder")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.add_argument("--plot", metavar="PNG", type=Path, help="write a PNG of the loss against the LR")
    return p


def render_lr_find(result: LrFindResult) -> None:
    """Both recommendations, with where each was read, and what the smoothing and the divergence rule are."""
    from rich.table import Table

    console = stdout_console()
    table = Table(title=f"LR range test: {len(result.steps)} steps, LR {result.lrs[0]:.3g} to {result.lrs[-1]:.3g}")
    for col in ("recommendation", "LR", "read at"):
        table.add_column(col)
    s, m = result.steepest, result.minimum
    table.add_row("steepest descent of the smoothed loss", f"[bold]{s.lr:.3g}[/]", f"step {s.step} (loss {s.loss:.4g})")
    table.add_row("min-loss LR / 10", f"[bold]{result.min_loss_lr:.3g}[/]",
                  f"step {m.step}: lowest loss {m.loss:.4g} at LR {m.lr:.3g}")
    console.print(table)
    stop = ("did not diverge" if result.diverged_at is None else
            f"diverged at step {result.diverged_at} (smoothed loss > {DIVERGE:g}x the best); the steps from there are ignored")
    console.print(f"[blue]note[/] loss smoothed by a bias-corrected moving average (beta {BETA}); the sweep {stop}; "
                  "the LR is param group 0's (an --lr-mult group keeps its ratio)", soft_wrap=True)


def main(argv: list[str] | None = None, prog: str = "nemo-resume lr-find") -> int:
    def body() -> int:
        args = parse_args(build_parser(prog), argv)
        result = analyse_run(args.run)
        if args.plot:
            from nemo_resume.audit.lr_find_plot import write_lr_find_plot

            write_lr_find_plot(result, args.plot)
        if args.json:
            print_json({**result.to_json(), "plot": str(args.plot) if args.plot else None})
        else:
            render_lr_find(result)
            if args.plot:
                print(f"wrote {args.plot}")
        return 0

    return run_cli(prog, body)
