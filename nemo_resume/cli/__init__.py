"""Every command, thin: argument parsing over library calls, one place for all of them.

``nemo-resume inspect|plan|check`` (the console script), ``python -m nemo_resume ...`` and
``python -m nemo_resume.inspect|plan|check`` all land in :func:`main`; the recipe scripts in
``recipes/`` call :mod:`nemo_resume.cli.recipe_cmd`, ``make demo`` :mod:`nemo_resume.cli.demo`.
This module imports nothing heavy, so ``inspect`` stays free of torch and NeMo.
"""

from __future__ import annotations

import importlib
import sys

from nemo_resume.cli.common import EXIT_BAD_INPUT, EXIT_OK, run_cli

# Each subcommand's module, imported only when chosen.
COMMANDS = {
    "inspect": ("nemo_resume.cli.inspect_cmd", "read trainer state from NeMo 2 checkpoints"),
    "plan": ("nemo_resume.cli.plan_cmd", "choose the checkpoint and LR schedule for a safe resume"),
    "check": ("nemo_resume.cli.check_cmd", "step NeMo's real scheduler over the planned run"),
    "audit": ("nemo_resume.cli.audit_cmd", "compare what a run did (its logs) with its plan; loss and grad-norm health"),
    "doctor": ("nemo_resume.cli.doctor_cmd", "check the machine a launch is about to use (stack, GPUs, disk, memory)"),
    "lr-find": ("nemo_resume.cli.lr_find_cmd", "recommend an LR from an LR range test's logs (a --lr-find run)"),
    "export": ("nemo_resume.cli.export_cmd", "a LoRA checkpoint's adapter in Hugging Face PEFT format"),
}


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """Run ``argv[0]``'s command on the rest; ``prog`` names it in messages (default ``nemo-resume CMD``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        if argv and argv[0] in ("-h", "--help"):
            lines = [f"usage: nemo-resume {{{'|'.join(COMMANDS)}}} ...", ""]
            lines += [f"  {name:<8} {help_}" for name, (_, help_) in COMMANDS.items()]
            print("\n".join(lines))
            return EXIT_OK
        what = f"unknown command {argv[0]!r}" if argv else "no command given"
        print(f"nemo-resume: error: {what}; choose one of {', '.join(COMMANDS)} (--help says what each does)", file=sys.stderr)
        return EXIT_BAD_INPUT
    name = prog or f"nemo-resume {argv[0]}"
    # imported inside run_cli: a light install (no NeMo extra) gets one line, not a traceback
    module = run_cli(name, lambda: importlib.import_module(COMMANDS[argv[0]][0]))
    if isinstance(module, int):
        return module
    return module.main(argv[1:], prog=name)


__all__ = ["COMMANDS", "main"]
