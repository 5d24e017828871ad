"""``nemo-resume inspect|...``: one console entry point mirroring the ``python -m`` forms."""

from __future__ import annotations

import sys

# Each subcommand's module, imported only when chosen so `inspect` stays free of torch/NeMo.
COMMANDS = {
    "inspect": ("nemo_resume.inspect", "read trainer state from NeMo 2 checkpoints"),
    "plan": ("nemo_resume.plan", "choose the checkpoint and LR schedule for a safe resume"),
    "check": ("nemo_resume.check_cli", "step NeMo's real scheduler over the planned run"),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        names = "|".join(COMMANDS)
        lines = [f"usage: nemo-resume {{{names}}} ...", ""]
        lines += [f"  {name:<8} {help_}" for name, (_, help_) in COMMANDS.items()]
        print("\n".join(lines), file=sys.stderr if argv and argv[0] not in ("-h", "--help") else sys.stdout)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    import importlib

    module = importlib.import_module(COMMANDS[argv[0]][0])
    return module.main(argv[1:], prog=f"nemo-resume {argv[0]}")


if __name__ == "__main__":
    sys.exit(main())
