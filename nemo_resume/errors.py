"""The one error type the CLIs turn into a one-line message and exit code 2."""


class NemoResumeError(Exception):
    """Bad input or an impossible request, with a message that names the value and the fix.

    The CLIs print ``str(error)`` on one line and exit 2; no traceback reaches the user.
    """
