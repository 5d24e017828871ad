"""Hypothesis damages copies of the real checkpoints and runs ``inspect`` and ``plan`` on them.

Whatever the damage (bytes flipped in common.pt, .metadata, a .ckpt or a shard; the pickle inside a
torch.save zip corrupted; files truncated, emptied or removed; JSON fields changed): no traceback
escapes, exit codes stay in {0, 1, 2}, an exit 2 is one line on stderr and never an "unexpected"
exception, nothing on disk changes, and a checkpoint whose metadata was cut short is never complete.

CI runs ``NEMO_RESUME_FUZZ_EXAMPLES`` cases (default 120, about 20 s); the full run is::

    NEMO_RESUME_FUZZ_EXAMPLES=3000 .venv/bin/python -m pytest -q -s -m fuzz tests/reliability/test_fuzz_cli.py
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.fuzz import CliCall, Mutation, call_cli, mutations, tree_manifest
from tests.support.hostile import PLAN_ARGS

pytestmark = [pytest.mark.nemo, pytest.mark.fuzz]

EXAMPLES = int(os.environ.get("NEMO_RESUME_FUZZ_EXAMPLES", "120"))
PROGS = {"inspect": "nemo-resume inspect", "plan": "nemo-resume plan"}


@pytest.fixture(scope="module")
def pristine(tmp_path_factory, megatron_incident_ckpt, incident_run) -> Path:
    """One run folder holding both real formats: the Megatron checkpoint and the Lightning ones."""
    root = tmp_path_factory.mktemp("fuzz-pristine") / "run"
    ckpts = root / "checkpoints"
    shutil.copytree(incident_run.checkpoint_dir, ckpts, symlinks=True)
    shutil.copytree(megatron_incident_ckpt, ckpts / megatron_incident_ckpt.name)
    return root


def _files(root: Path) -> tuple[list[str], list[str], list[str]]:
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and not p.is_symlink())
    json_files = [f for f in files if f.endswith(".json")]
    zip_files = [f for f in files if f.endswith((".ckpt", "common.pt"))]
    return files, json_files, zip_files


def _contract(call: CliCall, which: str) -> None:
    assert call.code in (0, 1, 2), (which, call.code)
    assert "Traceback" not in call.err, call.err
    if call.code == 2:
        lines = call.err.splitlines()
        assert len(lines) == 1 and lines[0].startswith(PROGS[which] + ": error: "), call.err
        assert "unexpected" not in call.err, f"an unhandled exception reached the CLI: {call.err}"
    else:
        assert call.err == "", call.err
    assert "needs more memory" not in call.out, "a damaged file made the reader allocate gigabytes"


def _checkpoint_of(root: Path, rel: str) -> str:
    """The path inspect reports for the checkpoint ``rel`` belongs to (a Megatron folder or the .ckpt)."""
    return str(root / rel.split("/weights/")[0]) if "/weights/" in rel else str(root / rel)


_STATE_FILES = ("common.pt", ".metadata", "metadata.json")


RESULTS = {"cases": 0, "exit": {}, "seconds": 0.0}


@pytest.fixture()
def memory_guard():
    """Cap this process's address space 3 GiB above its current size while fuzzing: an allocation bomb
    the guards miss then fails with MemoryError (reported as "needs more memory", which the contract
    check rejects) instead of taking the machine's memory (one did, 13 GiB, before the memo-index guard)."""
    with open("/proc/self/status") as status:
        size = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (size + (3 << 30), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def test_damaged_real_checkpoints_never_break_the_cli_contract(pristine, memory_guard):
    files, json_files, zip_files = _files(pristine)
    megatron = next(f for f in files if f.endswith("/weights/common.pt")).split("/weights/")[0]
    lightning = next(f for f in files if f.endswith("step=499.ckpt"))
    started = time.perf_counter()

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(
        muts=mutations(files, json_files, zip_files),
        human=st.booleans(),
        target=st.sampled_from(["run", "run", "megatron", "lightning"]),
    )
    def case(muts: list[Mutation], human: bool, target: str) -> None:
        with tempfile.TemporaryDirectory(prefix="nemo-resume-fuzz-") as tmp:
            root = Path(tmp) / "run"
            shutil.copytree(pristine, root, symlinks=True)
            shortened = set()
            for m in muts:
                cut = m.apply(root)
                if cut and (Path(m.file).name in _STATE_FILES or m.file.endswith(".ckpt")):
                    shortened.add(_checkpoint_of(root, m.file))
            before = tree_manifest(root)
            flag = [] if human else ["--json"]
            path = {"run": root, "megatron": root / megatron, "lightning": root / lightning}[target]
            ins = call_cli("inspect", [str(path), *flag])
            plan = call_cli("plan", [str(path), *PLAN_ARGS, *flag])
            assert tree_manifest(root) == before, "inspect/plan changed a file"
            _contract(ins, "inspect")
            _contract(plan, "plan")
            if not human and ins.code != 2:
                complete = {c["path"] for c in json.loads(ins.out)["checkpoints"] if c["complete"]}
                assert not complete & shortened, (muts, complete & shortened)
            if not human and plan.code != 2:
                chosen = json.loads(plan.out)["checkpoint"]
                assert chosen is None or chosen not in shortened, (muts, chosen)
            RESULTS["cases"] += 1
            key = f"inspect={ins.code} plan={plan.code}"
            RESULTS["exit"][key] = RESULTS["exit"].get(key, 0) + 1

    case()
    RESULTS["seconds"] = time.perf_counter() - started
    codes = sorted(RESULTS["exit"].items())
    print(f"\nfuzz: {RESULTS['cases']} cases in {RESULTS['seconds']:.0f} s; exit codes {codes}")
