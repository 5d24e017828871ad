"""Every command answers a usage mistake the same way: one line naming it, exit code 2, no usage dump."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable

# (the command as a user types it, what it calls itself in the message)
COMMANDS = [
    ([PY, "-m", "nemo_resume.inspect", "results"], "python -m nemo_resume.inspect"),
    ([PY, "-m", "nemo_resume.plan", "results"], "python -m nemo_resume.plan"),
    ([PY, "-m", "nemo_resume", "inspect", "results"], "nemo-resume inspect"),
    ([PY, "-m", "nemo_resume", "check", "--lr", "1e-4"], "nemo-resume check"),
    ([PY, "scripts/check_schedule.py", "--lr", "1e-4"], "check_schedule.py"),
    ([PY, "recipes/qwen25_finetune.py"], "recipes/qwen25_finetune.py"),
    ([PY, "recipes/qwen25_pretrain.py"], "recipes/qwen25_pretrain.py"),
    ([PY, "scripts/demo.py"], "make demo"),
]


def _run(argv: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


def _one_line(proc: subprocess.CompletedProcess, prog: str) -> str:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: error: "), proc.stderr[-2000:]
    assert "usage:" not in proc.stderr and "Traceback" not in proc.stderr
    return lines[0]


@pytest.mark.parametrize(("argv", "prog"), COMMANDS, ids=[c[1] for c in COMMANDS])
def test_an_unknown_flag_is_one_line_and_exit_2(argv, prog):
    line = _one_line(_run([*argv, "--bogus"]), prog)
    assert "--bogus" in line


@pytest.mark.parametrize(
    ("argv", "prog", "says"),
    [
        ([PY, "-m", "nemo_resume.plan", "results", "--lr", "abc"], "python -m nemo_resume.plan", "--lr"),
        ([PY, "-m", "nemo_resume.plan", "results", "--lr-policy", "fast"], "python -m nemo_resume.plan", "--lr-policy"),
        ([PY, "-m", "nemo_resume", "check", "--max-steps", "1.5"], "nemo-resume check", "--max-steps"),
        ([PY, "-m", "nemo_resume.plan", "results", "--lr", "1e-4", "--min-lr", "0", "--max-steps", "10",
          "--max-jump", "-1"], "python -m nemo_resume.plan", "--max-jump -1 must be a finite number >= 0"),
        ([PY, "recipes/qwen25_finetune.py", "--size", "9b"], "recipes/qwen25_finetune.py", "--size"),
        ([PY, "-m", "nemo_resume.inspect"], "python -m nemo_resume.inspect", "path"),
    ],
)
def test_a_bad_value_or_a_missing_argument_is_one_line_and_exit_2(argv, prog, says):
    assert says in _one_line(_run(argv), prog)


def test_the_console_entry_without_or_with_an_unknown_command_is_one_line_and_exit_2():
    assert "no command given" in _one_line(_run([PY, "-m", "nemo_resume"]), "nemo-resume")
    assert "'inspekt'" in _one_line(_run([PY, "-m", "nemo_resume", "inspekt"]), "nemo-resume")


def test_help_still_prints_everything_and_exits_0():
    proc = _run([PY, "-m", "nemo_resume.plan", "--help"])
    assert proc.returncode == 0 and "usage:" in proc.stdout and "--lr-policy" in proc.stdout and "examples:" in proc.stdout
    top = _run([PY, "-m", "nemo_resume", "--help"])
    assert top.returncode == 0 and all(c in top.stdout for c in ("inspect", "plan", "check"))


def test_no_module_of_the_package_shadows_the_standard_library():
    """A script run from inside the package puts its folder first on sys.path: a module named like the
    standard library's (``inspect.py`` once) then replaced it for every import in that process."""
    package = ROOT / "nemo_resume"
    regular = {p.stem for p in package.rglob("*.py") if p.stem != "__init__" and p.stem != "__main__"}
    regular |= {p.parent.name for p in package.rglob("__init__.py")}
    assert not regular & set(sys.stdlib_module_names), sorted(regular & set(sys.stdlib_module_names))
    for folder in (package, package / "cli", package / "inspect"):
        proc = _run([PY, "-c", f"import sys; sys.path.insert(0, {str(folder)!r}); import inspect, dataclasses; "
                     "print(inspect.__file__)"])
        assert proc.returncode == 0 and "nemo_resume" not in proc.stdout, proc.stdout + proc.stderr
