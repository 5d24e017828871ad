"""The one error type the CLIs turn into a one-line message and exit code 2, and the parser that raises it."""

from __future__ import annotations

import argparse


class NemoResumeError(Exception):
    """Bad input or an impossible request, with a message that names the value and the fix.

    The CLIs print ``str(error)`` on one line and exit 2; no traceback reaches the user.
    """


class OneLineParser(argparse.ArgumentParser):
    """argparse whose usage errors are bad input like any other: a :class:`NemoResumeError`, so one line
    and exit code 2 (``nemo_resume.cli.common.run_cli``). Stock argparse prints the whole usage block
    first; ``--help`` still prints everything and exits 0.
    """

    def error(self, message: str) -> None:  # type: ignore[override]
        raise NemoResumeError(f"{message} (--help lists the flags)")
