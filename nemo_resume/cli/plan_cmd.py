"""``nemo-resume plan RUN --lr X --min-lr Y --max-steps N``: a resume that cannot fail.

Picks the checkpoint (``--resume auto|never|PATH``), the LR policy (``--lr-policy``) and shows
the schedule the resumed run will follow, at the steps that matter.
"""

from __future__ import annotations

from pathlib import Path

from nemo_resume.cli.common import (
    EXIT_OK,
    EXIT_PROBLEM,
    OneLineParser,
    parse_args,
    parser,
    print_json,
    run_cli,
    write_json,
)
from nemo_resume.cli.report import render_plan
from nemo_resume.planning import plan_resume
from nemo_resume.planning.choice import default_resume
from nemo_resume.planning.flags import add_layout_args, add_max_jump_arg, add_resume_args, new_run_from_args
from nemo_resume.planning.plan_file import plan_to_json
from nemo_resume.planning.resume_plan import with_compat
from nemo_resume.schedules.flags import add_schedule_args, request_from_args

EPILOG = """examples:
  python -m nemo_resume.plan results/qwen25_pretrain --lr 1e-5 --min-lr 1e-6 --max-steps 1000 --warmup-steps 500
  python -m nemo_resume.plan results/run --lr 1e-4 --min-lr 1e-5 --max-steps 600 --lr-policy smooth --json -o plan.json
  python -m nemo_resume.plan results/run --lr 1e-4 --min-lr 1e-5 --max-steps 600 --tp 2 --global-batch-size 64

exit codes: 0 the plan is safe, 1 no safe plan exists for the request, 2 bad input"""


def build_parser(prog: str) -> OneLineParser:
    p = parser(prog, __doc__.splitlines()[0], EPILOG)
    p.add_argument("run", help="the run folder (searched recursively) or one checkpoint")
    add_resume_args(p, resume_default=None)
    add_max_jump_arg(p)
    p.add_argument("--restart-from-weights", action="store_true",
                   help="start from the newest weights-only checkpoint with a fresh optimizer and schedule")
    add_schedule_args(p)
    add_layout_args(p.add_argument_group("the resumed run's layout (docs/plan.md; default: the checkpoint's)"))
    p.add_argument("--json", action="store_true", help="print the plan as one JSON object")
    p.add_argument("-o", "--output", type=Path, help="also write the plan file here, for `nemo-resume check --plan FILE` (docs/plan.md)")
    return p


def main(argv: list[str] | None = None, prog: str = "nemo-resume plan") -> int:
    def body() -> int:
        args = parse_args(build_parser(prog), argv)
        resume = args.resume or default_resume(Path(args.run))
        # keep: the checkpoint's schedule wins, so a request it overrides is listed, not refused
        request = request_from_args(args, checked=args.lr_policy != "keep")
        plan = plan_resume(args.run, request, resume=resume, policy=args.lr_policy,
                           restart_from_weights=args.restart_from_weights, max_jump=args.max_jump)
        plan = with_compat(plan, new_run_from_args(args, request))
        doc = plan_to_json(plan)
        if args.output:
            write_json(args.output, doc, "-o")  # the plan file `check --plan FILE` reads
        print_json(doc) if args.json else render_plan(plan)
        return EXIT_OK if plan.ok else EXIT_PROBLEM

    return run_cli(prog, body)
