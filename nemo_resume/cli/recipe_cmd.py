"""The body of ``recipes/qwen25_finetune.py`` and ``recipes/qwen25_pretrain.py``: five steps, in order."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any

from nemo_resume.cli.common import EXIT_OK, EXIT_PROBLEM, parse_args, print_json, run_cli, stdout_to_stderr
from nemo_resume.cli.progress import step_progress, working
from nemo_resume.cli.report import render_check, render_plan
from nemo_resume.errors import NemoResumeError
from nemo_resume.planning.plan_file import plan_to_json
from nemo_resume.recipes.data import (
    convert_instruction_jsonl,
    dataset_root,
    is_instruction_jsonl,
)
from nemo_resume.recipes.launch import Prepared, launch, prepare, smoke, to_yaml
from nemo_resume.recipes.options import Task, build_parser, options_from_args


def _json_doc(prepared: Prepared) -> dict[str, Any]:
    opts = {k: (str(v) if k in ("dir", "data") and v is not None else v) for k, v in dataclasses.asdict(prepared.opts).items()}
    return {"options": opts, "plan": plan_to_json(prepared.plan), "check": prepared.check.to_json(),
            "refusal": prepared.refusal}


def _steps(args: argparse.Namespace, task: Task, prog: str, doc: dict[str, Any]) -> int:
    """Steps 1-5; what ``--json`` prints is collected in ``doc``."""
    # 1. options: every value explicit; defaults resolved and said out loud.
    opts = options_from_args(task, args)
    if args.to_yaml and not args.to_yaml.parent.is_dir():
        raise NemoResumeError(f"--to-yaml {args.to_yaml}: folder {args.to_yaml.parent} does not exist; create it first")
    # 2 and 3. plan the resume, then step it through NeMo's real scheduler.
    with working("planning the resume and checking it with NeMo's scheduler"):
        prepared = prepare(opts, opts.smoke_devices if args.smoke else None)
    if prepared.request_error and not args.launch_anyway:
        # bad values, as in `plan`: one line, exit 2 (--launch-anyway runs them as NeMo would)
        raise NemoResumeError(f"{prepared.request_error} (or pass --launch-anyway to run it as NeMo would)")
    doc.update(_json_doc(prepared))
    if not args.json:
        for note in opts.notes:
            print(f"note: {note}")
        render_plan(prepared.plan)
        render_check(prepared.check)
    if prepared.refusal:
        if not args.launch_anyway:
            print(f"{prog}: refusing to launch: {prepared.refusal} (fix it, or pass --launch-anyway)", file=sys.stderr)
            return EXIT_PROBLEM
        print(f"{prog}: launching anyway (--launch-anyway): {prepared.refusal}", file=sys.stderr)
    print(f"{prog}: {prepared.headline}", file=sys.stderr)
    # 4. NeMo's own Qwen2.5 recipe, edited.
    with working("loading NeMo and building the recipe"):
        from nemo_resume.recipes.qwen25 import qwen25_recipe

        recipe = qwen25_recipe(opts, prepared.plan)
    if args.smoke and not (args.dry_run or args.to_yaml):
        # 5'. the same recipe rehearsed on CPU: NeMo's Megatron path, a tiny model of the same family.
        with step_progress(opts.max_steps) as on_step:
            result = smoke(recipe, opts, on_step=on_step)
        doc["smoke"] = {"final_step": result.final_step, "error": result.error}
        print(f"smoke run: reached step {result.final_step}" + (f"; failed: {result.error}" if result.error else ""))
        return EXIT_OK if result.error is None else EXIT_PROBLEM
    if args.to_yaml:
        args.to_yaml.write_text(to_yaml(recipe))
        print(f"wrote {args.to_yaml}")
    if args.dry_run:
        print(to_yaml(recipe))
        launch(recipe, opts, dryrun=True)
    if args.dry_run or args.to_yaml:
        return EXIT_OK
    # 5. launch through NeMo-Run (instruction JSONL converted into the run folder first).
    if opts.task == "finetune" and opts.data is not None and is_instruction_jsonl(opts.data):
        counts = convert_instruction_jsonl(opts.data, dataset_root(opts.data, opts.run_dir))
        print(f"converted {opts.data}: {counts}")
    try:
        outcome = launch(recipe, opts, dryrun=False)
    except Exception as exc:  # noqa: BLE001 - a launch that cannot start is a problem found, not bad input
        doc["launch"] = {"error": f"{type(exc).__name__}: {exc}"}
        print(f"{prog}: the launch failed to start: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_PROBLEM
    doc["launch"] = {"experiment": outcome.experiment_id, "failed": list(outcome.failed)}
    if outcome.failed:
        print(f"{prog}: the launched job did not succeed: {'; '.join(outcome.failed)} (its log: {outcome.logs_command})",
              file=sys.stderr)
        return EXIT_PROBLEM
    return EXIT_OK


def run_script(task: Task, argv: list[str], prog: str) -> int:
    """Parse, plan, check, build, launch. Exit 0 on success, 1 when refused or the run failed, 2 on bad input.

    With ``--json`` stdout holds one JSON document, printed at the end (also when refused or failed);
    every other line, NeMo-Run's and the job's included, goes to stderr.
    """
    def body() -> int:
        args = parse_args(build_parser(task, prog), argv)
        doc: dict[str, Any] = {}
        with stdout_to_stderr(args.json):
            code = _steps(args, task, prog, doc)
        if args.json:
            print_json(doc)
        return code

    return run_cli(prog, body)
