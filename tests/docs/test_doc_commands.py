"""Every command block of README.md and docs/*.md runs as written, so no doc example can rot.

The contract the docs follow:

- **What runs.** Each command of a ```bash, ```sh or ```console block (in ``console`` only the ``$ ``
  lines) runs with ``bash -o pipefail -c``, in order, in a working directory of its own block: a fresh
  copy of a sandbox prepared once per session by REAL smoke runs of the recipe scripts
  (``tests.support.doc_commands``): ``results/qwen25_pretrain`` (the incident: lr 1e-5 under min_lr 3e-5,
  checkpoint at step 499, NeMo raises at 501), ``results/run`` (a finished 300-step run, lr 1e-3 down to
  min_lr 1e-4, checkpoints at 100/200/300), ``plan.json`` (the incident's plan, ``nemo-resume plan -o``),
  a Megatron-layout checkpoint and ``data/cs_all_unbalanced.jsonl``. ``recipes/``, ``scripts/``,
  ``benchmarks/``, ``nemo_resume/`` and ``.venv/`` are linked from the repo, and ``.venv/bin`` is first
  on PATH (so ``python``, ``nemo-resume`` and ``nemo`` are the venv's). Each ```python block runs as a
  file with the venv's Python in such a directory: snippets carry their own imports.
- **Expected exit code.** 0, unless the command's comment says otherwise: its trailing comment or the
  comment lines directly above it (no blank line between). ``FAIL`` (the word the checks print) means
  exit 1; ``exit N`` means exit N. Example: ``python scripts/check_schedule.py ... # FAIL at step 501``.
  A ``--json`` command (not piped) that exits 0 or 1 must print one JSON document on stdout.
- **GPU launches.** A command that would start training (a recipe script without ``--dry-run``,
  ``--smoke`` or ``--to-yaml``; ``nemo llm finetune|pretrain`` without ``--dryrun`` or ``--to-yaml``;
  the Slurm executor included) must sit in a block whose fence says so, ```bash gpu (renderers show
  it as bash); the test runs it with the dry-run flag appended (:data:`LAUNCHERS`). Such a command in
  an unmarked block fails the test.
- **Placeholders** (``/path/to/run``, ``NAME``, ...) become sandbox paths through :data:`PLACEHOLDERS`,
  the one table of them; an entry no doc uses any more fails the test.
- **Not run**: the commands in :data:`NOT_RUN`, each with the reason; they show as skipped with it.
  An entry that matches no doc command fails the test.

A failure names the doc line (the test id is ``docs/FILE.md:LINE``) and shows the command as run and
the ends of its stdout and stderr. Most of the time is NeMo's import (about 12 s per recipe command);
blocks run two at a time (``NEMO_RESUME_DOC_WORKERS``): about 3 minutes on an idle 2-core machine.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.doc_commands import (
    INCIDENT_CKPT,
    MEGATRON_CKPT,
    VENV_BIN,
    Command,
    Sandbox,
    Snippet,
    all_commands,
    all_snippets,
    block_dir,
    prepare_sandbox,
)

pytestmark = [pytest.mark.nemo, pytest.mark.slow]

#: Commands the test does not run (a regex searched in the command), and why.
NOT_RUN: dict[str, str] = {
    r"^make test\b": "the whole suite, which this test is part of (recursion)",
    r"^make demo\b": "tests/test_demo.py runs the demo and asserts every stage",
    r"^make bench\b": "the benchmarks take about 7 minutes and rewrite docs/benchmarks.md",
    r"^git clone\b": "needs the network; the test runs inside a clone",
    r"\bpip install\b": "installs packages: network, and it would change the venv the suite runs in",
    r"-m venv\b": "creates a virtual environment (minutes, 3 GB)",
    r"-m pytest\b.*\btests/reliability\b": "part of the suite itself (make test runs tests/reliability); "
                                           "the full runs take minutes",
    r"-m tests\.support\.kill_harness\b": "the full kill run (36 real trainings killed mid-save, 60-80 s); "
                                          "tests/reliability runs its CI subset",
    r"--save-from-step 75 --checkpoint-every 1 --smoke$": "tests/schedules/test_recipe_schedules.py runs this "
                                                          "rehearsal and asserts its 50 checkpoints",
    r"-m tests\.support\.ablate_standins\b": "the ablation: 17 Megatron rehearsals, about 8 minutes",
}

#: Placeholder in a doc command -> the sandbox path it stands for (relative to a block's directory).
PLACEHOLDERS: dict[str, str] = {
    "results/qwen25_pretrain/checkpoints/NAME": str(MEGATRON_CKPT),  # a GPU run's checkpoint folder
    "NAME/weights": str(MEGATRON_CKPT / "weights"),
    "run/checkpoints/smoke--step=499.ckpt": str(INCIDENT_CKPT),
    "/path/to/run": "results/run",
    "/tmp/rehearsal": "rehearsal",  # smoke.md's run folder, kept inside the block's directory
}


@dataclass(frozen=True)
class Launcher:
    """A program that starts training unless one of ``safe`` is given; ``dry_run`` is what the test appends."""

    program: str  # regex on the command
    dry_run: str
    safe: tuple[str, ...]


LAUNCHERS = (
    Launcher(r"(^|\s)(\S*/)?recipes/qwen25_\w+\.py(\s|$)", "--dry-run", ("--dry-run", "--smoke", "--to-yaml", "--help")),
    Launcher(r"^nemo llm (finetune|pretrain)\b", "--dryrun", ("--dryrun", "--to-yaml", "--help")),
)

COMMANDS = all_commands()
SNIPPETS = all_snippets()
TIMEOUT_S = 600
#: Blocks run side by side (each NeMo import is one core for ~12 s); 1 runs them one after the other.
WORKERS = int(os.environ.get("NEMO_RESUME_DOC_WORKERS", min(2, os.cpu_count() or 1)))


def expected_exit(comment: str) -> int:
    """0, or what the command's comment says: ``FAIL`` is exit 1, ``exit N`` is N."""
    if m := re.search(r"\bexit (\d+)\b", comment):
        return int(m.group(1))
    return 1 if re.search(r"\bFAIL\b", comment) else 0


def not_run_reason(cmd: Command) -> str | None:
    return next((why for pattern, why in NOT_RUN.items() if re.search(pattern, cmd.code)), None)


def _has_flag(words: list[str], flags: tuple[str, ...]) -> bool:
    return any(w == f or w.startswith(f + "=") for w in words for f in flags)


def _filled(code: str) -> str:
    for placeholder in sorted(PLACEHOLDERS, key=len, reverse=True):
        code = re.sub(rf"(?<![\w./=-]){re.escape(placeholder)}(?![\w./-])", PLACEHOLDERS[placeholder], code)
    return code


def _launch(code: str) -> Launcher | None:
    """The launcher ``code`` would start training with, or None (not a launcher, or a rehearsal flag given)."""
    launcher = next((lr for lr in LAUNCHERS if re.search(lr.program, code)), None)
    return None if launcher is None or _has_flag(shlex.split(code), launcher.safe) else launcher


def unmarked_launch(cmd: Command) -> str | None:
    """Why ``cmd`` may not run: it would start training and its block is not marked ``gpu``."""
    launcher = _launch(cmd.code)
    if launcher is None or "gpu" in cmd.block.tags:
        return None
    return (f"{cmd.where}: `{cmd.code}` would start training on GPUs; mark its block ```bash gpu "
            f"(the test then appends {launcher.dry_run}) or give it a dry-run flag")


def runnable(cmd: Command) -> str:
    """The command as the test runs it: placeholders filled, a GPU launch turned into its dry run."""
    code = _filled(cmd.code)
    launcher = _launch(code)
    return code if launcher is None else f"{code} {launcher.dry_run}"


# ---------------------------------------------------------------------------------------------- running


@dataclass(frozen=True)
class Outcome:
    argv: str
    rc: int
    stdout: str
    stderr: str

    def explain(self) -> str:
        return (f"ran: {self.argv}\nexit {self.rc}\n--- stdout (end) ---\n{self.stdout[-4000:]}\n"
                f"--- stderr (end) ---\n{self.stderr[-4000:]}")


class BlockRunner:
    """Runs each block in a directory of its own, its commands in order as a reader pasting the block would;
    blocks run side by side on ``workers`` threads (each command in its own process)."""

    def __init__(self, sandbox: Sandbox, base: Path, workers: int) -> None:
        self.sandbox, self.base = sandbox, base
        self.pool = ThreadPoolExecutor(workers)
        self.lock = threading.Lock()
        self.runs: dict[tuple[str, int], Future[dict[str, Outcome]]] = {}

    def start(self, unit: Command | Snippet) -> Future[dict[str, Outcome]]:
        """The run of ``unit``'s block (started now if it was not yet)."""
        key = (unit.doc, unit.block.line if isinstance(unit, Command) else unit.line)
        with self.lock:
            if key not in self.runs:
                self.runs[key] = self.pool.submit(self._run_block, unit, self.base / f"{key[0].replace('/', '_')}-{key[1]}")
            return self.runs[key]

    def outcome(self, unit: Command | Snippet) -> Outcome:
        return self.start(unit).result()[unit.where]

    def _run_block(self, unit: Command | Snippet, dest: Path) -> dict[str, Outcome]:
        cwd = block_dir(self.sandbox, dest)
        if isinstance(unit, Snippet):
            (cwd / "doc_snippet.py").write_text(unit.code, encoding="utf-8")
            shown = f"python doc_snippet.py:\n{unit.code}"
            return {unit.where: self._exec([str(VENV_BIN / "python"), "doc_snippet.py"], shown, cwd)}
        outcomes = {}
        for cmd in COMMANDS:
            if cmd.block == unit.block and not skipped(cmd):
                code = runnable(cmd)
                outcomes[cmd.where] = self._exec(["bash", "-o", "pipefail", "-c", code], code, cwd)
        return outcomes

    def _exec(self, argv: list[str], shown: str, cwd: Path) -> Outcome:
        try:
            p = subprocess.run(argv, cwd=cwd, env=self.sandbox.env, capture_output=True, text=True,
                               timeout=TIMEOUT_S, stdin=subprocess.DEVNULL, check=False)
        except subprocess.TimeoutExpired as exc:
            return Outcome(shown, -1, str(exc.stdout or ""), f"timed out after {TIMEOUT_S} s")
        return Outcome(shown, p.returncode, p.stdout, p.stderr)


@pytest.fixture(scope="session")
def doc_runner(request, tmp_path_factory) -> Iterator[BlockRunner]:
    """The sandbox, and every selected block started at once (NEMO_RESUME_DOC_WORKERS side by side)."""
    base = tmp_path_factory.mktemp("doc_commands")
    runner = BlockRunner(prepare_sandbox(base / "sandbox"), base, WORKERS)
    for item in request.session.items:
        unit = getattr(item, "callspec", None) and item.callspec.params.get("unit")
        if isinstance(unit, Snippet) or (isinstance(unit, Command) and not skipped(unit)):
            runner.start(unit)
    yield runner
    runner.pool.shutdown(wait=False, cancel_futures=True)


def skipped(cmd: Command) -> bool:
    return bool(not_run_reason(cmd) or unmarked_launch(cmd))


@pytest.mark.parametrize("unit", COMMANDS, ids=[c.where for c in COMMANDS])
def test_doc_command_runs_as_written(unit: Command, doc_runner: BlockRunner):
    if why := not_run_reason(unit):
        pytest.skip(f"not run: {why}")
    if problem := unmarked_launch(unit):
        pytest.fail(problem)
    out = doc_runner.outcome(unit)
    want = expected_exit(unit.comment)
    assert out.rc == want, f"{unit.where}: exited {out.rc}, the doc expects {want}\n{out.explain()}"
    words = shlex.split(out.argv)
    if "--json" in words and "|" not in words and want in (0, 1):
        try:
            json.loads(out.stdout)
        except ValueError as exc:
            pytest.fail(f"{unit.where}: --json printed no single JSON document on stdout ({exc})\n{out.explain()}")


@pytest.mark.parametrize("unit", SNIPPETS, ids=[s.where for s in SNIPPETS])
def test_doc_python_snippet_runs(unit: Snippet, doc_runner: BlockRunner):
    out = doc_runner.outcome(unit)
    assert out.rc == 0, f"{unit.where}: the snippet failed\n{out.explain()}"


# ---------------------------------------------------------------------------------------------- the tables


def test_every_not_run_entry_and_placeholder_is_still_used():
    codes = [c.code for c in COMMANDS]
    unused = [p for p in NOT_RUN if not any(re.search(p, c) for c in codes)]
    unused += [p for p in PLACEHOLDERS if not any(p in c for c in codes)]
    assert not unused, f"no doc command uses these any more; remove them from the tables: {unused}"
