"""The commands and Python snippets of README.md and docs/*.md, and a sandbox to run them in as written.

``tests/docs/test_doc_commands.py`` states the contract the docs follow (which fences run, how a
failing example says so, how a GPU launch is marked) and holds the policy tables; this module only
reads the Markdown and prepares the sandbox:

- :func:`doc_blocks` finds the fenced blocks of a document, :func:`commands` splits a shell block into
  commands (``\\`` continuations joined, the trailing comment and the comment lines directly above kept
  apart), :func:`snippets` gives the Python ones;
- :func:`prepare_sandbox` makes, once per session, the run folders the docs name with REAL runs of the
  fast Lightning stand-in (NeMo's trainer, scheduler and checkpointing on CPU), a checkpoint NeMo's
  ``MegatronStrategy`` wrote (the pretraining recipe's own ``--smoke`` rehearsal, distributed optimizer), a
  plan written by ``nemo-resume plan`` and a small instruction JSONL; :func:`block_dir` copies it for each block, so no block sees another's files.

Run it as a module to list what the test would run: ``python -m tests.support.doc_commands``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.megatron_data import write_indexed_dataset
from tests.support.tiny_qwen2 import write_tiny_qwen2

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv" / "bin"
#: The documents whose blocks run.
DOC_GLOBS = ("README.md", "docs/*.md")
#: Fence languages run with bash (``console``: only the ``$ `` lines are commands) and with Python.
SHELL_LANGS = frozenset({"bash", "sh", "console"})
PYTHON_LANGS = frozenset({"python"})
#: What a block's working directory links back to the repo, read-only in spirit: the scripts the docs run.
REPO_LINKS = ("recipes", "scripts", "benchmarks", "nemo_resume", ".venv")
_FENCE = re.compile(r"^```(\S*)(.*)$")


@dataclass(frozen=True)
class Block:
    """One fenced block: where it opens, its language and the other words of its info string (``gpu``)."""

    doc: str
    line: int
    lang: str
    tags: frozenset[str]
    lines: tuple[tuple[int, str], ...]  # (line number, text) of the body


@dataclass(frozen=True)
class Command:
    """One shell command of a block, as written (continuation lines kept) with its comments apart."""

    doc: str
    line: int  # the command's first line in the document
    block: Block
    code: str  # the command without its trailing comment (the backslash-newlines kept)
    comment: str  # the trailing comment and the comment lines directly above, joined

    @property
    def where(self) -> str:
        return f"{self.doc}:{self.line}"


@dataclass(frozen=True)
class Snippet:
    """One ```python block."""

    doc: str
    line: int
    code: str

    @property
    def where(self) -> str:
        return f"{self.doc}:{self.line}"


def documents(root: Path = ROOT) -> list[Path]:
    return sorted({p for pattern in DOC_GLOBS for p in root.glob(pattern)})


def doc_blocks(path: Path, root: Path = ROOT) -> list[Block]:
    """Every fenced block of ``path``; an unclosed fence is an error (the rest of the file would be code)."""
    rel = path.relative_to(root).as_posix()
    blocks: list[Block] = []
    opened: tuple[int, str, frozenset[str]] | None = None
    body: list[tuple[int, str]] = []
    for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        fence = _FENCE.match(text)
        if opened is None and fence:
            opened, body = (number, fence.group(1), frozenset(fence.group(2).split())), []
        elif opened is not None and text.strip() == "```":
            blocks.append(Block(rel, opened[0], opened[1], opened[2], tuple(body)))
            opened = None
        elif opened is not None:
            body.append((number, text))
    if opened is not None:
        raise ValueError(f"{rel}:{opened[0]}: the ``` fence is never closed")
    return blocks


def split_comment(line: str) -> tuple[str, str]:
    """``(code, comment)`` of one shell line: the comment starts at the first ``#`` outside quotes that
    begins a word, as bash reads it."""
    quote = ""
    escaped = False
    for i, ch in enumerate(line):
        if escaped:
            escaped = False
        elif ch == "\\" and quote != "'":
            escaped = True
        elif quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip(), line[i + 1 :].strip()
    return line.rstrip(), ""


def commands(block: Block) -> list[Command]:
    """The commands of a shell block. Comment lines directly above a command (no blank line between)
    belong to it; a blank line drops them. In a ``console`` block only ``$ `` lines are commands."""
    out: list[Command] = []
    above: list[str] = []
    pending: list[tuple[int, str]] = []
    for number, raw in block.lines:
        text = raw
        if block.lang == "console" and not pending:
            if not raw.startswith("$ "):
                above = []
                continue
            text = raw[2:]
        if not pending:
            if not text.strip():
                above = []
                continue
            if text.lstrip().startswith("#"):
                above.append(text.lstrip()[1:].strip())
                continue
        pending.append((number, text))
        if text.rstrip().endswith("\\"):
            continue
        code, trailing = split_comment(pending[-1][1])
        full = "\n".join([t for _, t in pending[:-1]] + [code])
        out.append(Command(block.doc, pending[0][0], block, full, " ".join([*above, trailing]).strip()))
        pending, above = [], []
    if pending:
        raise ValueError(f"{block.doc}:{pending[0][0]}: the command ends with a backslash at the end of its block")
    return out


def snippets(block: Block) -> list[Snippet]:
    return [Snippet(block.doc, block.line + 1, "\n".join(t for _, t in block.lines) + "\n")]


def all_commands(root: Path = ROOT) -> list[Command]:
    return [c for doc in documents(root) for b in doc_blocks(doc, root) if b.lang in SHELL_LANGS for c in commands(b)]


def all_snippets(root: Path = ROOT) -> list[Snippet]:
    return [s for doc in documents(root) for b in doc_blocks(doc, root) if b.lang in PYTHON_LANGS for s in snippets(b)]


# ---------------------------------------------------------------------------------------------- sandbox


@dataclass(frozen=True)
class Sandbox:
    """The prepared folder every block's working directory is copied from, with what is in it."""

    root: Path
    env: dict[str, str] = field(repr=False)


#: The incident (docs/troubleshooting.md) and a finished 300-step run (docs/plan.md), as a cluster run
#: leaves them, made with the fast Lightning stand-in (``tests.support.lightning_runs``).
INCIDENT_ARGV = ("-m", "tests.support.lightning_runs", "incident")
FINISHED_ARGV = ("-m", "tests.support.lightning_runs", "finished")
#: The incident's resume plan (docs/check.md's ``--plan plan.json``).
PLAN_ARGV = ("nemo-resume", "plan", "results/qwen25_pretrain", "--lr", "1e-5", "--min-lr", "1e-6", "--max-steps", "1000",
             "--warmup-steps", "500", "-o", "plan.json")
#: docs/recipes.md's ``--data data/cs_all_unbalanced.jsonl``: seed 004's instruction records.
INSTRUCTION_JSONL = Path("data/cs_all_unbalanced.jsonl")
#: docs/troubleshooting.md's ``--data data/tokens``: a Megatron pre-training dataset (``.bin`` + ``.idx``).
MEGATRON_DATA = Path("data/tokens")
#: docs/recipes.md's ``--model tiny-qwen2``: a tiny random Hugging Face Qwen2 with its tokenizer.
HF_MODEL = Path("tiny-qwen2")
#: A finished run on NeMo's Megatron path: the recipe's ``--smoke`` rehearsal (MegatronStrategy on CPU).
MEGATRON_ARGV = ("recipes/qwen25_pretrain.py", "--smoke", "--lr", "1e-3", "--min-lr", "1e-4", "--warmup-steps", "5",
                 "--max-steps", "20", "--checkpoint-every", "10", "--json", "--dir")
#: What the runs leave (relative to a block's directory): the incident's Lightning checkpoint at step 499, the
#: finished run's at step 200, and the Megatron run's checkpoint at step 20 (weights/ + context/, as GPU runs
#: save it; moved out of its timestamped folder).
INCIDENT_CKPT = Path("results/qwen25_pretrain/checkpoints/qwen25_pretrain--step=499.ckpt")
FINISHED_CKPT = Path("results/run/checkpoints/run--step=200.ckpt")
MEGATRON_CKPT = Path("megatron/checkpoints/model_name=0--val_loss=0.00-step=19-consumed_samples=40.0")
#: The same Megatron run whole, as ``--dir smoke`` leaves it (docs/audit.md): its TensorBoard logs under
#: ``smoke/tb_logs/``, the plan the script saved and its training_report.json.
MEGATRON_RUN = Path("smoke/qwen25_pretrain")


def doc_env(nemorun_home: Path) -> dict[str, str]:
    """The environment the docs assume: the venv's ``python``, ``nemo-resume`` and ``nemo`` first on PATH;
    NeMo-Run's home in the test's folder, not ``~/.nemo_run``; no debug switch that would turn a one-line
    error into a traceback."""
    env = {k: v for k, v in os.environ.items() if k not in ("NEMO_RESUME_DEBUG", "VIRTUAL_ENV", "PYTHONPATH")}
    env["PATH"] = os.pathsep.join([str(VENV_BIN), env.get("PATH", "")])
    env["NEMORUN_HOME"] = str(nemorun_home)
    env["MPLBACKEND"] = "Agg"
    return env


def _run(argv: Sequence[str], cwd: Path, env: dict[str, str], expect: int, timeout: float = 600) -> None:
    argv = [str(VENV_BIN / "python"), *argv] if argv[0].endswith(".py") or argv[0] == "-m" else list(argv)
    p = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    if p.returncode != expect:
        raise RuntimeError(f"sandbox: {' '.join(argv)} exited {p.returncode}, expected {expect}:\n"
                           f"{p.stdout[-3000:]}\n{p.stderr[-3000:]}")


def link_repo(cwd: Path) -> None:
    for name in REPO_LINKS:
        (cwd / name).symlink_to(ROOT / name, target_is_directory=True)


def _left(root: Path, ckpt: Path) -> None:
    if not (root / ckpt).is_file():
        raise RuntimeError(f"sandbox: the smoke run left no {ckpt}; found {sorted(map(str, root.rglob('*.ckpt')))}")


def prepare_sandbox(root: Path) -> Sandbox:
    """Real smoke runs of the recipe scripts and what the docs name, made in ``root`` (two runs on the Lightning
    stand-in and one on the Megatron path, two at a time: about 40 s)."""
    root.mkdir(parents=True, exist_ok=True)
    link_repo(root)
    env = doc_env(root.with_name(root.name + "-nemo_run"))

    def incident() -> None:
        _run([*INCIDENT_ARGV, str(root / "results")], ROOT, env, expect=0)
        _left(root, INCIDENT_CKPT)
        _run(PLAN_ARGV, root, env, expect=0)

    def finished() -> None:
        _run([*FINISHED_ARGV, str(root / "results")], ROOT, env, expect=0)
        _left(root, FINISHED_CKPT)

    def megatron() -> None:
        rehearsal = root.with_name(root.name + "-megatron")
        _run([*MEGATRON_ARGV, str(rehearsal)], ROOT, env, expect=0)
        found = sorted(rehearsal.glob(f"*/*/checkpoints/{MEGATRON_CKPT.name}"))
        if len(found) != 1:
            raise RuntimeError(f"sandbox: the Megatron rehearsal left {found}, not one {MEGATRON_CKPT.name}")
        shutil.copytree(rehearsal, root / MEGATRON_RUN.parent, symlinks=True)
        (root / MEGATRON_CKPT).parent.mkdir(parents=True)
        shutil.move(found[0], root / MEGATRON_CKPT)

    with ThreadPoolExecutor(2) as pool:
        for done in [pool.submit(incident), pool.submit(finished), pool.submit(megatron)]:
            done.result()
    data = root / INSTRUCTION_JSONL
    data.parent.mkdir(parents=True)
    records = [{"instruction": f"Pick the answer to question {i}.", "input": "A) yes B) no" if i % 2 else "",
                "output": "A" if i % 3 else "B"} for i in range(40)]
    data.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    write_indexed_dataset(root / MEGATRON_DATA, docs=60)
    write_tiny_qwen2(root / HF_MODEL)
    for name in REPO_LINKS:
        (root / name).unlink()
    return Sandbox(root, env)


def block_dir(sandbox: Sandbox, dest: Path) -> Path:
    """A fresh copy of the sandbox for one block, with the repo's scripts linked in."""
    shutil.copytree(sandbox.root, dest, symlinks=True)
    link_repo(dest)
    return dest


def _main(argv: Sequence[str]) -> int:
    for c in all_commands():
        print(f"{c.where:28} [{c.block.lang}{' ' + ' '.join(sorted(c.block.tags)) if c.block.tags else ''}] "
              f"{c.code!r}  # {c.comment}")
    for s in all_snippets():
        print(f"{s.where:28} [python] {len(s.code.splitlines())} lines")
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
