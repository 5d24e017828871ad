"""``nemo-resume inspect PATH [--json]``: what a checkpoint will restore, and what breaks.

Imports neither torch nor NeMo, and runs no code from the checkpoint.
"""

from __future__ import annotations

from nemo_resume.cli.common import EXIT_OK, OneLineParser, parse_args, parser, print_json, run_cli
from nemo_resume.cli.report import render_inspection
from nemo_resume.inspection import inspect_path

EPILOG = """examples:
  python -m nemo_resume.inspect results/qwen25_pretrain          # a whole run, recursively
  python -m nemo_resume.inspect results/.../checkpoints/NAME --json

exit codes: 0 nothing wrong, 1 an error in the checkpoint a resume would use, 2 bad input"""


def build_parser(prog: str) -> OneLineParser:
    p = parser(prog, "Read trainer state (step, LR per group, scheduler, saved config) from NeMo 2 checkpoints.", EPILOG)
    p.add_argument("path", help="a checkpoint folder, its weights/, a .ckpt file, a checkpoints/ folder or a run root")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    return p


def main(argv: list[str] | None = None, prog: str = "nemo-resume inspect") -> int:
    def body() -> int:
        args = parse_args(build_parser(prog), argv)
        result = inspect_path(args.path)
        if args.json:
            print_json(result.to_json())
        else:
            render_inspection(result)
        return result.exit_code if result.checkpoints else EXIT_OK

    return run_cli(prog, body)
