"""What every nemo-resume command shares: one-line errors, exit codes, JSON output.

Light on purpose (standard library and ``nemo_resume.errors`` only): every command imports it first.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from typing import Any

from nemo_resume.errors import NemoResumeError, OneLineParser

EXIT_OK, EXIT_PROBLEM, EXIT_BAD_INPUT = 0, 1, 2


def parser(prog: str, description: str, epilog: str) -> OneLineParser:
    """A command's parser, with its examples kept as written in ``--help``."""
    return OneLineParser(
        prog=prog, description=description, epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter
    )


def run_cli(prog: str, body: Callable[[], int]) -> int:
    """Run a command body; turn bad input into one line on stderr and exit code 2.

    Unexpected exceptions also end in one line (set NEMO_RESUME_DEBUG=1 for the traceback),
    so a corrupt or hostile file never answers with a traceback.
    """
    try:
        return body()
    except NemoResumeError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:
        # `... | head` closed stdout: not an error of ours; keep Python from complaining at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as exc:  # noqa: BLE001 - the last line of defence for the one-line promise
        if os.environ.get("NEMO_RESUME_DEBUG"):
            raise
        print(f"{prog}: error: unexpected {type(exc).__name__}: {exc} (set NEMO_RESUME_DEBUG=1 for details)", file=sys.stderr)
        return EXIT_BAD_INPUT


def print_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=2, allow_nan=True)
    sys.stdout.write("\n")


def fmt_lr(x: float | None) -> str:
    return "-" if x is None else f"{x:.3g}"
