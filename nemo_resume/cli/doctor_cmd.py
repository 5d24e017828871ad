"""``nemo-resume doctor [recipe flags] [--task pretrain|finetune] [--report FILE] [--json]``: the machine a
launch is about to use, against the recipe it would run.

It takes the recipe scripts' flags, builds the same recipe (or, with ``--smoke``, its CPU rehearsal) without
running it, and checks: the installed stack, GPUs/CUDA/NCCL, write permission and free disk under ``--dir``
for the checkpoints the recipe keeps, host memory and, with ``--executor slurm``, sbatch and the image.
Nothing is written except ``--report FILE``.
"""

from __future__ import annotations

from pathlib import Path

from nemo_resume.cli.common import (
    EXIT_OK,
    EXIT_PROBLEM,
    OneLineParser,
    parse_args,
    print_json,
    run_cli,
    write_json,
)
from nemo_resume.cli.progress import working
from nemo_resume.environment import doctor
from nemo_resume.errors import NemoResumeError
from nemo_resume.recipes.launch import launch_for
from nemo_resume.recipes.options import Task, options_from_args
from nemo_resume.recipes.options import build_parser as recipe_parser

TASKS: tuple[Task, ...] = ("pretrain", "finetune")
EPILOG = """examples:
  nemo-resume doctor --dir results                                  # the pretraining recipe's defaults
  nemo-resume doctor --task finetune --peft lora --dir results --smoke
  nemo-resume doctor --dir results --lr-stages 75:1e-4,50:1e-5 --save-from-step 75 --checkpoint-every 1 --json
  nemo-resume doctor --dir results --report validation_report.json

exit codes: 0 nothing blocks the launch (warnings shown), 1 a blocker, 2 bad input"""


def _task(argv: list[str] | None) -> Task:
    """``--task`` first: the recipe flags depend on it (``--peft`` is fine-tuning's only)."""
    pre = OneLineParser(add_help=False)
    pre.add_argument("--task", choices=TASKS, default="pretrain")
    return pre.parse_known_args(argv)[0].task


def build_parser(task: Task, prog: str) -> OneLineParser:
    """The recipe scripts' flags for ``task``, and the doctor's own."""
    p = recipe_parser(task, prog)
    p.description, p.epilog = __doc__.splitlines()[0], EPILOG
    g = p.add_argument_group("doctor")
    g.add_argument("--task", choices=TASKS, default="pretrain", help="the recipe whose launch is checked "
                   "(default: %(default)s); the other flags are that recipe script's")
    g.add_argument("--report", type=Path, metavar="FILE", help="also write the JSON report here (for example "
                   "validation_report.json); the doctor writes nothing else")
    return p


def main(argv: list[str] | None = None, prog: str = "nemo-resume doctor") -> int:
    def body() -> int:
        args = parse_args(build_parser(_task(argv), prog), argv)
        if args.report is not None and not args.report.parent.is_dir():
            raise NemoResumeError(f"--report {args.report}: folder {args.report.parent} does not exist; create it first")
        opts = options_from_args(args.task, args)
        with working("loading NeMo and building the recipe"):
            from nemo_resume.recipes.launch import prepare
            from nemo_resume.recipes.qwen25 import qwen25_recipe

            prepared = prepare(opts, opts.smoke_devices if args.smoke else None)
            launch = launch_for(opts, qwen25_recipe(prepared.opts, prepared.plan), args.smoke)
        report = doctor(launch)
        doc = {**report.to_json(), "launch": launch.to_json()}
        if args.report is not None:
            write_json(args.report, doc, "--report")
        if args.json:
            print_json(doc)
        else:
            from nemo_resume.cli.doctor_report import render_doctor

            render_doctor(report, launch)
            if args.report is not None:
                print(f"wrote {args.report}")
        return EXIT_OK if report.ok else EXIT_PROBLEM

    return run_cli(prog, body)


__all__ = ["build_parser", "main"]
