"""What every nemo-resume command shares: one-line errors, exit codes, JSON output.

Light on purpose (standard library, ``nemo_resume.errors`` and ``startup_noise`` only): every command imports it first.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from nemo_resume.cli.startup_noise import silence_known_noise
from nemo_resume.errors import NemoResumeError, OneLineParser

EXIT_OK, EXIT_PROBLEM, EXIT_BAD_INPUT = 0, 1, 2
T = TypeVar("T")
#: Top-level modules of the ``[nemo]`` extra (pyproject.toml) and what they pull in: missing one means
#: a light install, said as such instead of a traceback.
NEMO_EXTRA_MODULES = frozenset({"nemo", "nemo_run", "megatron", "lightning", "torch", "numpy", "matplotlib", "yaml",
                                "fiddle", "leptonai"})


def parser(prog: str, description: str, epilog: str) -> OneLineParser:
    """A command's parser, with its examples kept as written in ``--help``."""
    p = OneLineParser(
        prog=prog, description=description, epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_verbose_arg(p)
    return p


def add_verbose_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--verbose", action="store_true", help="show the third-party start-up messages nemo-resume hides")


def parse_args(p: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Parse ``argv``; unless ``--verbose``, hide the known third-party start-up noise before NeMo is imported."""
    args = p.parse_args(argv)
    if not args.verbose:
        silence_known_noise()
    return args


def run_cli(prog: str, body: Callable[[], T]) -> T | int:
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
    except ModuleNotFoundError as exc:
        top = (exc.name or "").split(".")[0]
        if top not in NEMO_EXTRA_MODULES:
            return _unexpected(prog, exc)
        print(f"{prog}: error: needs the NeMo extra (no module {exc.name!r} here): "
              "pip install 'nemo-resume[nemo]' (docs/install.md); only `inspect` runs without it", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as exc:  # noqa: BLE001 - the last line of defence for the one-line promise
        return _unexpected(prog, exc)


def _unexpected(prog: str, exc: Exception) -> int:
    if os.environ.get("NEMO_RESUME_DEBUG"):
        raise exc
    print(f"{prog}: error: unexpected {type(exc).__name__}: {exc} (set NEMO_RESUME_DEBUG=1 for details)", file=sys.stderr)
    return EXIT_BAD_INPUT


def strict_json(obj: Any) -> Any:
    """``obj`` with every NaN or infinity replaced by None: strict JSON has no such numbers, and
    ``json.dump`` would write ``NaN``, which most parsers (``jq``, JavaScript, Go) refuse."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: strict_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict_json(v) for v in obj]
    return obj


def write_json(path: Path, doc: dict[str, Any], flag: str) -> Path:
    """``doc`` as strict JSON in ``path`` (a number that is not finite is null): plan files, reports.

    Raises:
        NemoResumeError: the file cannot be written (``flag`` names where it was asked for).
    """
    try:
        path.write_text(json.dumps(strict_json(doc), indent=2, allow_nan=False) + "\n")
    except OSError as exc:
        raise NemoResumeError(f"{flag} {path}: cannot write ({exc.strerror or exc}); give a writable path") from None
    return path


def print_json(obj: Any) -> None:
    """The one JSON document a ``--json`` command prints on stdout (strict: no NaN or Infinity)."""
    json.dump(strict_json(obj), sys.stdout, indent=2, allow_nan=False)
    sys.stdout.write("\n")


@contextmanager
def stdout_to_stderr(active: bool = True) -> Iterator[None]:
    """While a ``--json`` command works, send everything printed to stdout to stderr instead.

    NeMo-Run's dry run, YAML dumps, progress and the launched processes all write to stdout; with
    ``--json`` stdout must hold exactly one JSON document, printed after this block. The file
    descriptor is redirected too, so child processes and handlers holding the old stream follow.
    """
    if not active:
        yield
        return
    stream = sys.stdout
    stream.flush()
    try:
        fd: int | None = stream.fileno()
    except (AttributeError, OSError, ValueError):  # a stream without a descriptor (pytest's capsys)
        fd = None
    saved = os.dup(fd) if fd is not None else None
    if fd is not None:
        os.dup2(sys.stderr.fileno(), fd)
    sys.stdout = sys.stderr
    try:
        yield
    finally:
        sys.stderr.flush()
        sys.stdout = stream
        if fd is not None and saved is not None:
            os.dup2(saved, fd)
            os.close(saved)


def fmt_lr(x: float | None) -> str:
    return "-" if x is None else f"{x:.3g}"
