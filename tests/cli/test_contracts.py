"""Every command keeps the CLI contract (issue 16): paths validated before work, strict JSON, one line for a light
install, NeMo's start-up noise hidden unless --verbose."""

from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from nemo_resume.cli import main
from nemo_resume.cli.common import NEMO_EXTRA_MODULES, print_json
from nemo_resume.cli.startup_noise import KNOWN_NOISE

ROOT = Path(__file__).resolve().parents[2]
SCHEDULE = ["--lr", "1e-4", "--min-lr", "0", "--max-steps", "100"]


@pytest.mark.parametrize("run", ["no/such/run", "README.md"])
def test_check_run_refuses_a_path_that_is_not_a_run_like_plan(run, capsys):
    """Regression: `check --run <mistyped path>` (or README.md) said "every check passes", checking a fresh start."""
    path = str(ROOT / run)
    assert main(["plan", path, *SCHEDULE]) == 2
    plan_err = capsys.readouterr().err.strip().splitlines()
    assert main(["check", "--run", path, *SCHEDULE]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"nemo-resume check: error: {path}: ")
    assert err[0].split("error: ", 1)[1] == plan_err[0].split("error: ", 1)[1]  # the same rule, the same words


def test_json_is_strict_no_nan_or_infinity():
    out = io.StringIO()
    with redirect_stdout(out):
        print_json({"lr": math.nan, "steps": [1.0, math.inf, -math.inf], "ok": True})
    assert json.loads(out.getvalue(), parse_constant=lambda c: pytest.fail(c)) == {"lr": None, "steps": [1.0, None, None],
                                                                                   "ok": True}


_BLOCK_EXTRA = """
import importlib.abc, sys
EXTRA = {extra!r}
class Light(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in EXTRA:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
sys.meta_path.insert(0, Light())
from nemo_resume.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _light(*argv: str) -> subprocess.CompletedProcess:
    """A command on the light install (``pip install nemo-resume``: rich only), the NeMo extra's modules absent."""
    code = _BLOCK_EXTRA.format(extra=sorted(NEMO_EXTRA_MODULES))
    return subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=120)


@pytest.mark.nemo  # the fixture run is written by NeMo; the commands below run without it
def test_light_install_check_names_the_extra_in_one_line(finished_run):
    """Regression: the light install's `nemo-resume check` died with a traceback (No module named 'numpy')."""
    proc = _light("check", *SCHEDULE)
    assert proc.returncode == 2, proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("nemo-resume check: error: needs the NeMo extra (no module ") and "pip install 'nemo-resume[nemo]'" in line
    inspect = _light("inspect", str(finished_run.log_dir))  # the inspector needs nothing from the extra
    assert inspect.returncode == 0, inspect.stderr


@pytest.mark.nemo
def test_check_hides_nemos_start_up_noise_unless_verbose():
    """Regression: every command importing NeMo printed pynvml, megatron and OneLogger warnings on stderr."""
    argv = [sys.executable, "-m", "nemo_resume", "check", "--lr-stages", "75:1e-4,50:1e-5"]
    env = {**os.environ, "PYTHONWARNINGS": ""}
    quiet = subprocess.run(argv, capture_output=True, text=True, timeout=300, env=env)
    assert quiet.returncode == 0, quiet.stderr
    assert [n.text for n in KNOWN_NOISE if n.text in quiet.stderr] == []
    loud = subprocess.run([*argv, "--verbose"], capture_output=True, text=True, timeout=300, env=env)
    assert loud.returncode == 0 and any(n.text in loud.stderr for n in KNOWN_NOISE), loud.stderr


@pytest.mark.nemo
@pytest.mark.parametrize("argv", [
    ["inspect", "{run}", "--json"],
    ["plan", "{run}", "--lr", "1e-3", "--min-lr", "1e-4", "--max-steps", "400", "--warmup-steps", "50", "--json"],
    ["check", "--run", "{run}", "--lr", "1e-3", "--min-lr", "1e-4", "--max-steps", "400", "--warmup-steps", "50", "--json",
     "--plot", "{tmp}/lr.png"],
    ["check", "--lr-stages", "75:1e-4,50:1e-5", "--json"],
])
def test_every_json_is_exactly_one_strict_document_on_stdout(argv, finished_run, tmp_path):
    argv = [a.format(run=finished_run.log_dir, tmp=tmp_path) for a in argv]
    proc = subprocess.run([sys.executable, "-m", "nemo_resume", *argv], capture_output=True, text=True, timeout=300)
    assert proc.returncode in (0, 1), proc.stderr
    json.loads(proc.stdout, parse_constant=lambda c: pytest.fail(f"non-strict constant {c}"))


@pytest.mark.nemo
@pytest.mark.parametrize("cmd", [["inspect", "{run}"], ["plan", "{run}", "--lr", "1e-3", "--min-lr", "1e-4", "--max-steps", "400"]])
def test_a_reader_closing_the_pipe_keeps_the_verdict(cmd, finished_run):
    """Regression: `inspect RUN | head -1` exited 1 on a healthy run (rich exits 1 on a broken pipe); `| true` closes at once."""
    argv = [sys.executable, "-m", "nemo_resume", *(a.format(run=finished_run.log_dir) for a in cmd)]
    alone = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert alone.returncode == 0, alone.stderr
    piped = subprocess.run(["bash", "-o", "pipefail", "-c", " ".join(f"'{a}'" for a in argv) + " | true"],
                           capture_output=True, text=True, timeout=120)
    assert (piped.returncode, piped.stderr) == (0, "")


@pytest.mark.parametrize("flags", [["--lr-policy", "smooth"], ["--resume", "never"], ["--lr-policy", "auto"]])
def test_check_refuses_resume_flags_it_would_ignore(flags, tmp_path, capsys):
    """Regression: `check --plan FILE --lr-policy smooth` (or without --run at all) ignored the flag silently."""
    assert main(["check", *SCHEDULE, *flags]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"nemo-resume check: error: {flags[0]} apply with --run DIR only")
