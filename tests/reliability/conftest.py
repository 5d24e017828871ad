"""Helpers for the reliability tests: private copies of the real fixtures, CLI runners, disk manifests."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from nemo_resume.inspect import main as inspect_main
from nemo_resume.plan import main as plan_main
from nemo_resume.testing.kill_harness import tree_manifest

#: The schedule the planner is asked for in the catalogue: the incident's fix (min_lr lowered below lr).
PLAN_ARGS = ["--lr", "1e-5", "--min-lr", "1e-6", "--max-steps", "1000", "--warmup-steps", "500"]


@dataclass(frozen=True)
class CliRun:
    code: int
    out: str
    err: str
    seconds: float = 0.0
    max_rss_mb: float = 0.0

    @property
    def json(self):
        return json.loads(self.out)


def run_in_process(which: str, argv: list[str]) -> CliRun:
    """Call ``inspect.main`` or ``plan.main`` with ``argv`` in this process; capture what it prints."""
    main = {"inspect": inspect_main, "plan": plan_main}[which]
    out, err = io.StringIO(), io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return CliRun(code, out.getvalue(), err.getvalue(), time.perf_counter() - start)


_MEASURED = """
import os, resource, sys
from nemo_resume.{module} import main
code = main(sys.argv[1:])
with open(os.environ["NEMO_RESUME_RSS_OUT"], "w") as fh:
    fh.write(str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))
sys.exit(code)
"""


def run_in_subprocess(which: str, argv: list[str], *, timeout: float = 60.0, prefix: list[str] = ()) -> CliRun:
    """Run the CLI in a fresh interpreter: a hang becomes a timeout, and its peak memory is measured."""
    with tempfile.NamedTemporaryFile(suffix=".rss") as rss:
        env = {k: v for k, v in os.environ.items() if k != "NEMO_RESUME_DEBUG"}
        env["NEMO_RESUME_RSS_OUT"] = rss.name
        cmd = [*prefix, sys.executable, "-c", _MEASURED.format(module=which), *argv]
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
        seconds = time.perf_counter() - start
        text = Path(rss.name).read_text().strip()
    return CliRun(proc.returncode, proc.stdout, proc.stderr, seconds, int(text) / 1024 if text else 0.0)


def one_line_error(run: CliRun, prog: str) -> str:
    """The exit-2 contract: exactly one line on stderr, starting with the program name, no traceback."""
    assert run.code == 2, (run.code, run.err)
    lines = run.err.splitlines()
    assert len(lines) == 1, run.err
    assert lines[0].startswith(f"{prog}: error: ") and "Traceback" not in run.err
    return lines[0]


@pytest.fixture()
def mg(tmp_path, megatron_incident_ckpt) -> Path:
    """A private copy of the Megatron fixture (step 499) in ``tmp_path/run/checkpoints/``."""
    dst = tmp_path / "run" / "checkpoints" / megatron_incident_ckpt.name
    shutil.copytree(megatron_incident_ckpt, dst)
    return dst


@pytest.fixture()
def lt(tmp_path, incident_ckpt) -> Path:
    """A private copy of the Lightning fixture (step 499), with its context/ folder."""
    dst = tmp_path / "lightning" / "checkpoints" / incident_ckpt.name
    dst.parent.mkdir(parents=True)
    shutil.copy2(incident_ckpt, dst)
    context = incident_ckpt.with_name(incident_ckpt.name.removesuffix(".ckpt")) / "context"
    shutil.copytree(context, dst.with_name(dst.name.removesuffix(".ckpt")) / "context")
    return dst


@pytest.fixture()
def unchanged(tmp_path):
    """Asserts at teardown that nothing under ``tmp_path`` was created, removed or changed by the test body."""
    before = tree_manifest(tmp_path)
    yield before
    assert tree_manifest(tmp_path) == before
