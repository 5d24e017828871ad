"""``make demo``: the seed incident replayed end to end on NeMo's real Megatron path, on CPU.

The seed run (warmup 500, max_steps 1000, a checkpoint at 499, death at 501) on a shorter
horizon: warmup 30, max_steps 60, a checkpoint every 20 steps. The checkpoint sits 10 steps before
the death, not 2: NeMo finalizes an async save at a later step and never after a crash
(nemo/utils/callbacks/dist_ckpt_io.py:163-168), and CPU steps are short. Every run is the recipe's
``--smoke`` rehearsal: ``MegatronStrategy``, megatron-core's distributed optimizer, ``torch_dist``
checkpoints, a tiny Qwen2-family model (docs/smoke.md).

1. The continued-pre-training recipe with ``--lr 1e-5`` and the stock ``min_lr=3e-5``: the
   schedule check fails at step 31; launched anyway (``--smoke --launch-anyway``), NeMo's own
   run checkpoints at step 20 and dies at step 31 with the below-min-LR error.
2. The inspector reads the run folder: step 20, LR 6.77e-6, the failure predicted at 31.
3. The seed notes' fix, ``min_lr`` lowered in the config, resumed through stock NeMo: the
   checkpoint's scheduler state wins and the run dies again at step 31.
4. ``--resume auto`` through nemo-resume: the plan and callback take the run to step 60.
5. ``demo-out/lr.png`` and ``demo-out/report.md``.

Every stage is checked, not just printed: the demo exits 0 only if each behaved as described.
Each stage calls the same functions as ``recipes/qwen25_pretrain.py`` (options, plan, check, smoke).
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from nemo_resume.cli.common import EXIT_OK, EXIT_PROBLEM, parse_args, parser, run_cli
from nemo_resume.cli.report import stdout_console
from nemo_resume.constants import NEMO_BELOW_MIN_LR_TEXT
from nemo_resume.inspection import Inspection, inspect_path
from nemo_resume.recipes.launch import Prepared, prepare, smoke
from nemo_resume.recipes.options import build_parser, options_from_args
from nemo_resume.schedules.cosine import lr_at

SCRIPT = "python recipes/qwen25_pretrain.py"
LR, WARMUP, MAX_STEPS, EVERY = 1e-5, 30, 60, 20
#: the checkpoint the incident leaves (global step), and the step NeMo dies at (the first after warmup)
SAVED, DIES = EVERY, WARMUP + 1
BASE_FLAGS = ["--size", "0.5b", "--lr", f"{LR:g}", "--warmup-steps", str(WARMUP), "--max-steps", str(MAX_STEPS),
              "--checkpoint-every", str(EVERY)]


@dataclass
class Stage:
    title: str
    command: str
    expected: str
    observed: str = ""
    ok: bool = False
    seconds: float = 0.0


@dataclass
class DemoResult:
    out_dir: Path
    stages: list[Stage] = field(default_factory=list)
    lrs: dict[str, dict[int, list[float]]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return len(self.stages) == 5 and all(s.ok for s in self.stages)


@contextlib.contextmanager
def _quiet(log: Path) -> Iterator[None]:
    """Send everything NeMo and Lightning print (at the file-descriptor level) to ``log``."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log, "a") as fh:
        os.dup2(fh.fileno(), 1)
        os.dup2(fh.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def _opts(run_root: Path, *flags: str):
    argv = [*BASE_FLAGS, "--dir", str(run_root), "--name", "qwen25_pretrain", *flags]
    return options_from_args("pretrain", build_parser("pretrain", SCRIPT).parse_args(argv))


def _command(*flags: str) -> str:
    return " ".join([SCRIPT, *BASE_FLAGS, "--dir", "demo-out/run", *flags])


def _prepare_and_smoke(opts, log: Path) -> tuple[Prepared, Any]:
    from nemo_resume.recipes.qwen25 import qwen25_recipe

    prepared = prepare(opts, opts.smoke_devices)  # the CPU rehearsal's layout
    with _quiet(log):
        result = smoke(qwen25_recipe(opts, prepared.plan), opts)
    return prepared, result


def _stage1(run_root: Path, log: Path, result: DemoResult) -> Stage:
    st = Stage("The incident: --lr 1e-5 under the stock min_lr 3e-5", _command("--min-lr", "3e-5", "--smoke", "--launch-anyway"),
               f"the check fails at step {DIES}; the real NeMo run checkpoints at {SAVED} and dies at {DIES} with NeMo's error")
    prepared, run = _prepare_and_smoke(_opts(run_root, "--min-lr", "3e-5"), log)
    failure = prepared.check.first_problem
    result.lrs["attempt 1 (stock min_lr)"] = run.lrs
    saved = sorted(c.state.step for c in inspect_path(run.checkpoint_dir).checkpoints if c.state.step is not None)
    st.observed = (f"check: fails at step {failure.step if failure else None}; run: {run.error or 'no error'} "
                   f"after step {max(run.lrs, default=None)} (trainer at {run.final_step}); checkpoints at steps {saved}")
    st.ok = (failure is not None and failure.step == DIES and run.error is not None and NEMO_BELOW_MIN_LR_TEXT in run.error
             and max(run.lrs, default=None) == WARMUP and SAVED in saved)
    return st


def _stage2(run_root: Path, result: DemoResult) -> tuple[Stage, Inspection]:
    st = Stage("Inspect the run folder", "python -m nemo_resume.inspect demo-out/run",
               f"step {SAVED}, LR {LR * (SAVED + 1) / (WARMUP + 1):.3g}, and the failure predicted at step {DIES}")
    found = inspect_path(run_root)
    latest = found.latest
    codes = {(p.code, p.step) for p in latest.problems} if latest else set()
    lr = latest.state.lrs[0] if latest and latest.state.lrs else None
    st.observed = f"newest resumable: step {latest.state.step if latest else None}, LR {lr}, problems {sorted(codes)}"
    st.ok = (latest is not None and latest.state.step == SAVED and lr is not None
             and abs(lr - LR * (SAVED + 1) / (WARMUP + 1)) < 1e-15 and ("LR_BELOW_MIN_LR", DIES) in codes)
    return st, found


def _stage3(run_root: Path, log: Path, result: DemoResult) -> Stage:
    st = Stage("The seed notes' fix: min_lr lowered to 1e-6, resumed through stock NeMo",
               _command("--min-lr", "1e-6", "--lr-policy", "keep", "--smoke", "--launch-anyway"),
               f"the checkpoint's saved scheduler state wins: the run dies again at step {DIES} with the same error")
    prepared, run = _prepare_and_smoke(_opts(run_root, "--min-lr", "1e-6", "--lr-policy", "keep"), log)
    result.lrs["attempt 2 (min_lr lowered, stock resume)"] = run.lrs
    st.observed = (f"plan refused keep ({prepared.plan.problems[0].code if prepared.plan.problems else 'none'}); "
                   f"run resumed at step {min(run.lrs) if run.lrs else None}: {run.error or 'no error'}")
    st.ok = (run.error is not None and NEMO_BELOW_MIN_LR_TEXT in run.error and min(run.lrs, default=None) == SAVED
             and max(run.lrs) == WARMUP)
    return st


def _stage4(run_root: Path, log: Path, result: DemoResult) -> Stage:
    st = Stage("Resume with nemo-resume: --resume auto", _command("--min-lr", "1e-6", "--resume", "auto", "--smoke"),
               f"the plan resumes step {SAVED} at the checkpoint's LR (no jump) with a smooth cosine to min_lr 1e-6: the "
               f"live LR equals the plan at every step, every LR >= 1e-6, step {MAX_STEPS} reached")
    prepared, run = _prepare_and_smoke(_opts(run_root, "--min-lr", "1e-6", "--resume", "auto"), log)
    result.lrs["attempt 3 (nemo-resume plan)"] = run.lrs
    steps = sorted(run.lrs)
    target = prepared.plan.target
    off_plan = [s for s in steps if target is None or not math.isclose(run.lrs[s][0], lr_at(target, s)[0], rel_tol=1e-12)]
    saved_lr = LR * (SAVED + 1) / (WARMUP + 1)
    first = run.lrs[steps[0]][0] if steps else None
    st.observed = (f"policy {prepared.plan.decision.policy if prepared.plan.decision else None}, check ok={prepared.check.ok}; "
                   f"run: steps {min(steps, default=None)}..{max(steps, default=None)}, reached {run.final_step}, "
                   f"first LR {first}, min LR {min((run.lrs[s][0] for s in steps), default=0):.3g}, "
                   f"steps off the plan {off_plan}; {run.error or 'no error'}")
    st.ok = (prepared.refusal is None and run.error is None and run.final_step == MAX_STEPS and steps[:1] == [SAVED]
             and not off_plan and first is not None and math.isclose(first, saved_lr, rel_tol=1e-12)
             and min(run.lrs[s][0] for s in steps) >= 1e-6 * (1 - 1e-9))
    return st


def _plot(result: DemoResult, path: Path) -> None:
    from nemo_resume.check.plot import new_figure

    fig = new_figure(9, 4.5)
    ax = fig.add_subplot()
    styles = [("-", None), ("--", "x"), ("-", None)]  # attempt 2 is two steps long: mark them
    for (label, lrs), (style, marker) in zip(result.lrs.items(), styles):
        steps = sorted(lrs)
        ax.plot(steps, [lrs[s][0] for s in steps], style, marker=marker, markersize=9, label=label, linewidth=1.8)
    ax.axhline(3e-5, color="red", linestyle=":", label="stock min_lr 3e-5")
    ax.axhline(1e-6, color="gray", linestyle=":", label="new min_lr 1e-6")
    ax.axvline(DIES, color="red", alpha=0.5)
    ax.annotate(f"NeMo dies at {DIES}", (DIES, 1.02e-5), color="red", fontsize=8)
    ax.axvline(SAVED, color="green", alpha=0.5)
    ax.annotate(f"resume from step {SAVED}", (SAVED, 2.2e-5), color="green", fontsize=8, ha="right")
    ax.set_xlabel("step")
    ax.set_ylabel("learning rate (param group 0)")
    ax.set_title("The below-min-LR incident, the stock fix, and the nemo-resume plan")
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _report(result: DemoResult, path: Path) -> None:
    lines = ["# nemo-resume demo report", "",
             "The recipe's --smoke rehearsal: NeMo's Megatron path on CPU (MegatronStrategy, megatron-core's "
             "distributed optimizer, CosineAnnealingScheduler, ModelCheckpoint with torch_dist checkpoints, NeMoLogger, "
             "AutoResume) on a tiny Qwen2-family model; see docs/smoke.md for what differs from a GPU run.", ""]
    for i, s in enumerate(result.stages, 1):
        lines += [f"## {i}. {s.title} ({'OK' if s.ok else 'FAILED'}, {s.seconds:.2f} s)", "", f"    {s.command}", "",
                  f"- expected: {s.expected}", f"- observed: {s.observed}", ""]
    lines += ["![LR of every attempt](lr.png)", ""]
    path.write_text("\n".join(lines))


def run_demo(out_dir: Path, *, console: Any = None) -> DemoResult:
    """Run the five stages into ``out_dir`` (replaced), checking each; returns what happened."""
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    run_root, log = out_dir / "run", out_dir / "nemo.log"
    result = DemoResult(out_dir)
    say = console.print if console is not None else (lambda *a, **k: None)

    def timed(fn, *args):
        t0 = time.perf_counter()
        out = fn(*args)
        stage = out[0] if isinstance(out, tuple) else out
        stage.seconds = time.perf_counter() - t0
        result.stages.append(stage)
        mark = "[green]OK[/]" if stage.ok else "[red]FAILED[/]"
        say(f"[bold]{len(result.stages)}. {stage.title}[/] {mark} ({stage.seconds:.2f} s)\n   $ {stage.command}\n"
            f"   expected: {stage.expected}\n   observed: {stage.observed}", soft_wrap=True)
        return out

    timed(_stage1, run_root, log, result)
    _, found = timed(_stage2, run_root, result)
    if console is not None:
        from nemo_resume.cli.report import render_inspection

        render_inspection(found)
    timed(_stage3, run_root, log, result)
    timed(_stage4, run_root, log, result)
    t0 = time.perf_counter()
    _plot(result, out_dir / "lr.png")
    _report(result, out_dir / "report.md")
    files = Stage("Plot and report", "(written by the demo)", "demo-out/lr.png and demo-out/report.md exist",
                  observed=f"{out_dir / 'lr.png'}, {out_dir / 'report.md'}", seconds=time.perf_counter() - t0)
    files.ok = (out_dir / "lr.png").stat().st_size > 0 and (out_dir / "report.md").exists()
    result.stages.append(files)
    _report(result, out_dir / "report.md")
    say(f"[bold]5. {files.title}[/] {'[green]OK[/]' if files.ok else '[red]FAILED[/]'}: {files.observed}")
    return result


def main(argv: list[str] | None = None, prog: str = "make demo") -> int:
    def body() -> int:
        p = parser(prog, __doc__.splitlines()[0], "example:\n  make demo   # or: python scripts/demo.py --out demo-out")
        p.add_argument("--out", type=Path, default=Path("demo-out"), help="output folder (replaced; default: %(default)s)")
        args = parse_args(p, argv)
        console = stdout_console()
        t0 = time.perf_counter()
        with console.status("running the demo (NeMo's logs go to demo-out/nemo.log)"):
            result = run_demo(args.out, console=console)
        verdict = "[green]every stage behaved as described[/]" if result.ok else "[red]a stage did not behave as described[/]"
        console.print(f"Demo finished in {time.perf_counter() - t0:.0f} s: {verdict}. Report: {args.out / 'report.md'}")
        return EXIT_OK if result.ok else EXIT_PROBLEM

    return run_cli(prog, body)
