"""The body of ``recipes/qwen25_finetune.py`` and ``recipes/qwen25_pretrain.py``: five steps, in order."""

from __future__ import annotations

import dataclasses
import sys

from nemo_resume.cli.common import EXIT_OK, EXIT_PROBLEM, print_json, run_cli
from nemo_resume.cli.report import render_check, render_plan
from nemo_resume.recipes.data import (
    convert_instruction_jsonl,
    dataset_root,
    is_instruction_jsonl,
)
from nemo_resume.recipes.launch import Prepared, launch, prepare, smoke, to_yaml
from nemo_resume.recipes.options import Task, build_parser, options_from_args


def _report(prepared: Prepared, as_json: bool) -> None:
    if as_json:
        opts = {k: (str(v) if k in ("dir", "data") and v is not None else v) for k, v in dataclasses.asdict(prepared.opts).items()}
        print_json({"options": opts, "plan": prepared.plan.to_json(), "check": prepared.check.to_json(),
                    "refusal": prepared.refusal})
        return
    for note in prepared.opts.notes:
        print(f"note: {note}")
    render_plan(prepared.plan)
    render_check(prepared.check)


def run_script(task: Task, argv: list[str], prog: str) -> int:
    """Parse, plan, check, build, launch. Exit 0 on success, 1 when refused or the run failed, 2 on bad input."""
    def body() -> int:
        args = build_parser(task, prog).parse_args(argv)
        # 1. options: every value explicit; defaults resolved and said out loud.
        opts = options_from_args(task, args)
        # 2 and 3. plan the resume, then step it through NeMo's real scheduler.
        prepared = prepare(opts)
        _report(prepared, args.json)
        if prepared.refusal:
            if not args.launch_anyway:
                print(f"{prog}: refusing to launch: {prepared.refusal} (fix it, or pass --launch-anyway)", file=sys.stderr)
                return EXIT_PROBLEM
            print(f"{prog}: launching anyway (--launch-anyway): {prepared.refusal}", file=sys.stderr)
        if args.smoke and not (args.dry_run or args.to_yaml):
            # 5'. the same schedule and resume plan on a tiny CPU model.
            result = smoke(opts, prepared.plan)
            print(f"smoke run: reached step {result.final_step}" + (f"; failed: {result.error}" if result.error else ""))
            return EXIT_OK if result.error is None else EXIT_PROBLEM
        # 4. NeMo's own Qwen2.5 recipe, edited.
        from nemo_resume.recipes.qwen25 import qwen25_recipe

        recipe = qwen25_recipe(opts, prepared.plan)
        if args.to_yaml:
            args.to_yaml.write_text(to_yaml(recipe))
            print(f"wrote {args.to_yaml}")
        if args.dry_run:
            print(to_yaml(recipe))
        if args.dry_run or args.to_yaml:
            if args.dry_run:
                launch(recipe, opts, dryrun=True)
            return EXIT_OK
        # 5. launch through NeMo-Run (instruction JSONL converted into the run folder first).
        if opts.task == "finetune" and opts.data is not None and is_instruction_jsonl(opts.data):
            counts = convert_instruction_jsonl(opts.data, dataset_root(opts.data, opts.run_dir))
            print(f"converted {opts.data}: {counts}")
        launch(recipe, opts, dryrun=False)
        return EXIT_OK

    return run_cli(prog, body)
