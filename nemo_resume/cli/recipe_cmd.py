"""The body of ``recipes/qwen25_finetune.py`` and ``recipes/qwen25_pretrain.py``: five steps, in order."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any

from nemo_resume.audit import TRAINING_REPORT, audit_run, training_report
from nemo_resume.audit.plans import launch_plan_path
from nemo_resume.cli.common import (
    EXIT_OK,
    EXIT_PROBLEM,
    parse_args,
    print_json,
    run_cli,
    stdout_to_stderr,
    write_json,
)
from nemo_resume.cli.progress import step_progress, working
from nemo_resume.cli.report import render_check, render_plan
from nemo_resume.environment import preflight
from nemo_resume.errors import NemoResumeError
from nemo_resume.hf.import_model import ImportTarget, import_model
from nemo_resume.planning.plan_file import plan_to_json
from nemo_resume.recipes.data import (
    convert_instruction_jsonl,
    dataset_root,
    is_instruction_jsonl,
)
from nemo_resume.recipes.launch import Prepared, launch, launch_for, prepare, smoke, to_yaml
from nemo_resume.recipes.lr_find import lr_find_options
from nemo_resume.recipes.options import RecipeOptions, Task, build_parser, options_from_args
from nemo_resume.schedules.lr_sweep import LrSweep


def _json_doc(prepared: Prepared) -> dict[str, Any]:
    opts = {k: (str(v) if k in ("dir", "data") and v is not None else v) for k, v in dataclasses.asdict(prepared.opts).items()}
    return {"options": opts, "plan": plan_to_json(prepared.plan), "check": prepared.check.to_json(),
            "refusal": prepared.refusal}


def _save_plan(prepared: Prepared, doc: dict[str, Any]) -> None:
    """The plan beside the launch (``<run>/plans/<UTC time>.json``), so ``nemo-resume audit`` has both sides. Only
    when something trains: a dry run or ``--to-yaml`` changes nothing on disk."""
    path = launch_plan_path(prepared.opts.run_dir)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NemoResumeError(f"{path.parent}: cannot create the run's plans folder ({exc.strerror or exc}); "
                              "give a writable --dir") from None
    doc["plan_file"] = str(write_json(path, plan_to_json(prepared.plan), "the launch's plan file"))


def _write_report(prepared: Prepared, doc: dict[str, Any]) -> None:
    """``training_report.json`` in the run folder, from the run's own logs, once the run (or rehearsal) ended."""
    run_dir = prepared.opts.run_dir
    try:
        audit = audit_run(run_dir)
        path = write_json(run_dir / TRAINING_REPORT, training_report(audit).to_json(), "the training report")
    except NemoResumeError as exc:  # a run that logged no step, or a folder this machine does not see
        print(f"no training report: {exc}", file=sys.stderr)
        return
    doc["training_report"] = str(path)
    problems = audit.problems
    found = (f"{len(problems)} problem(s), the first at step {problems[0].step} ({problems[0].code}): "
             f"nemo-resume audit {run_dir}") if problems else "no problem found"
    print(f"wrote {path}: {found}")


def _steps(args: argparse.Namespace, task: Task, prog: str, doc: dict[str, Any]) -> int:
    """Steps 1-5; what ``--json`` prints is collected in ``doc``."""
    # 1. options: every value explicit; defaults resolved and said out loud.
    opts = options_from_args(task, args)
    if args.lr_find:  # the sweep's own fresh run, <name>-lr-find
        opts = lr_find_options(opts, LrSweep(args.lr_find_min, args.lr_find_max, args.lr_find_steps))
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
    if not (args.dry_run or args.to_yaml) and not _preflight(recipe, opts, args, prog, doc):
        return EXIT_PROBLEM
    if opts.model_import is not None and not (args.dry_run or args.to_yaml) and not _import(opts.model_import, prog, doc):
        return EXIT_PROBLEM
    if args.smoke and not (args.dry_run or args.to_yaml):
        # 5'. the same recipe rehearsed on CPU: NeMo's Megatron path, a tiny model of the same family.
        _save_plan(prepared, doc)
        with step_progress(opts.max_steps) as on_step:
            result = smoke(recipe, opts, on_step=on_step)
        doc["smoke"] = {"final_step": result.final_step, "error": result.error}
        print(f"smoke run: reached step {result.final_step}" + (f"; failed: {result.error}" if result.error else ""))
        if opts.lr_find:
            return _lr_find(opts, args, doc) if result.error is None else EXIT_PROBLEM
        _write_report(prepared, doc)
        return EXIT_OK if result.error is None else EXIT_PROBLEM
    yaml = to_yaml(recipe) if args.to_yaml or args.dry_run else ""
    if args.to_yaml:
        args.to_yaml.write_text(yaml)
        print(f"wrote {args.to_yaml}")
    if args.dry_run:
        print(yaml)
        launch(recipe, opts, dryrun=True)
    if args.dry_run or args.to_yaml:
        return EXIT_OK
    # 5. launch through NeMo-Run (instruction JSONL converted into the run folder first).
    if opts.task == "finetune" and opts.data is not None and is_instruction_jsonl(opts.data):
        counts = convert_instruction_jsonl(opts.data, dataset_root(opts.data, opts.run_dir))
        print(f"converted {opts.data}: {counts}")
    _save_plan(prepared, doc)
    try:
        outcome = launch(recipe, opts, dryrun=False)
    except Exception as exc:  # noqa: BLE001 - a launch that cannot start is a problem found, not bad input
        doc["launch"] = {"error": f"{type(exc).__name__}: {exc}"}
        print(f"{prog}: the launch failed to start: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_PROBLEM
    doc["launch"] = {"experiment": outcome.experiment_id, "failed": list(outcome.failed)}
    if not opts.lr_find:
        _write_report(prepared, doc)
    if outcome.failed:
        print(f"{prog}: the launched job did not succeed: {'; '.join(outcome.failed)} (its log: {outcome.logs_command})",
              file=sys.stderr)
        return EXIT_PROBLEM
    return _lr_find(opts, args, doc) if opts.lr_find else EXIT_OK


def _lr_find(opts: RecipeOptions, args: argparse.Namespace, doc: dict[str, Any]) -> int:
    """The finished sweep's analysis (``nemo-resume lr-find``'s, docs/lr-find.md) and its PNG in the sweep's folder;
    exit 1 when its logs give no recommendation (the reason printed)."""
    from nemo_resume.audit.lr_find import analyse_run
    from nemo_resume.audit.lr_find_plot import write_lr_find_plot
    from nemo_resume.cli.lr_find_cmd import render_lr_find

    try:
        result = analyse_run(opts.run_dir)
        plot = write_lr_find_plot(result, opts.run_dir / "lr-find.png")
    except NemoResumeError as exc:
        print(f"no LR recommendation: {exc}", file=sys.stderr)
        return EXIT_PROBLEM
    doc["lr_find"] = {**result.to_json(), "plot": str(plot)}
    if not args.json:
        render_lr_find(result)
        print(f"wrote {plot}")
    return EXIT_OK


def _import(target: ImportTarget, prog: str, doc: dict[str, Any]) -> bool:
    """``--model``: NeMo's importer, once per version of the folder (reused after); False (said) when it failed."""
    try:
        with working(f"importing {target.source} with NeMo's Qwen2 importer into {target.path}"):
            path = import_model(target)
    except NemoResumeError as exc:
        doc["import"] = {"error": str(exc)}
        print(f"{prog}: {exc}", file=sys.stderr)
        return False
    doc["import"] = {"path": str(path), "reused": target.complete}
    print(f"{prog}: base model: {path} ({'reused' if target.complete else 'imported'} from {target.source})", file=sys.stderr)
    return True


def _preflight(recipe: Any, opts: RecipeOptions, args: argparse.Namespace, prog: str, doc: dict[str, Any]) -> bool:
    """The doctor's cheap checks (installed stack, write permission, free disk for the checkpoints the recipe keeps;
    docs/doctor.md) on the machine about to run ``recipe``: False when a blocker refuses the launch."""
    checked = preflight(launch_for(opts, recipe, smoke=args.smoke))
    doc["preflight"] = checked.to_json()
    for f in (*checked.at("blocker"), *checked.at("warning")):
        print(f"{prog}: {f.level}: {f.check} {f.subject}: {f.message}", file=sys.stderr)
    if checked.ok or args.launch_anyway:
        return True
    print(f"{prog}: refusing to launch: the machine is not ready (fix it, or pass --launch-anyway)", file=sys.stderr)
    return False


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
