"""The one contract every hostile or damaged checkpoint is held to (issue 17), for every class of attack.

Each case is built from REAL checkpoints (``lightning_pair`` / ``megatron_pair``: two copies of a real
checkpoint under two step names, the newer one to be damaged) and checked by :func:`assert_contained`:

- ``inspect`` and ``plan`` finish in a fresh interpreter within :data:`MAX_SECONDS` and :data:`MAX_RSS_MB`
  (a hang is a timeout, never a stuck test);
- the damaged checkpoint is never chosen and not ``complete``/resumable, with a reason naming ``expect``;
- the good, older checkpoint beside it is still chosen (the plan resumes from it, exit 0);
- every problem is one line in the human report (no traceback, nothing forged by file-derived text);
- nothing on disk changed.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from tests.support.fuzz import CliCall, run_cli_measured, tree_manifest

MAX_SECONDS = 20.0  # generous for a loaded 2-core machine: a clean inspect takes about 0.3 s
MAX_RSS_MB = 100.0
# The plan a good step-400 copy of the incident checkpoint passes (the incident's own fix: min_lr below lr).
PLAN_ARGS = ["--lr", "1e-5", "--min-lr", "1e-6", "--max-steps", "1000", "--warmup-steps", "500"]


@dataclass(frozen=True)
class Pair:
    """A run folder with a good checkpoint and a copy of it named for a later step, to damage."""

    run: Path
    good: Path
    victim: Path


def _pair(run: Path, src: Path, good_step: int) -> Pair:
    ckpts = run / "checkpoints"
    ckpts.mkdir(parents=True)
    good, victim = ckpts / re.sub(r"step=\d+", f"step={good_step}", src.name, count=1), ckpts / src.name
    for dst in (good, victim):
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, dst)
    return Pair(run, good, victim)


def megatron_pair(root: Path, megatron_ckpt: Path) -> Pair:
    """Two real Megatron checkpoints (``weights/`` + ``context/``) under ``root/run``, the good one named step 10."""
    return _pair(root / "run", megatron_ckpt, 10)


def lightning_pair(root: Path, lightning_ckpt: Path) -> Pair:
    """Two real Lightning ``.ckpt`` files (with their ``context/`` folders) under ``root/run``, the good one named
    step 400."""
    pair = _pair(root / "run", lightning_ckpt, 400)
    context = lightning_ckpt.with_name(lightning_ckpt.name.removesuffix(".ckpt")) / "context"
    if context.is_dir():
        for ckpt in (pair.good, pair.victim):
            shutil.copytree(context, ckpt.with_name(ckpt.name.removesuffix(".ckpt")) / "context")
    return pair


@dataclass(frozen=True)
class Contained:
    inspect_json: CliCall
    plan_json: CliCall
    inspect_human: CliCall


def assert_contained(pair: Pair, expect: str = "", *, timeout: float = 60.0) -> Contained:
    """The contract above for ``pair.victim``; ``expect`` is a word its reason must contain. Returns the runs."""
    before = tree_manifest(pair.run)
    runs = Contained(
        run_cli_measured("inspect", [str(pair.run), "--json"], timeout=timeout),
        run_cli_measured("plan", [str(pair.run), *PLAN_ARGS, "--json"], timeout=timeout),
        run_cli_measured("inspect", [str(pair.run)], timeout=timeout),
    )
    assert tree_manifest(pair.run) == before, "inspecting or planning changed the run folder"
    for run in (runs.inspect_json, runs.plan_json, runs.inspect_human):
        assert run.seconds < MAX_SECONDS and run.max_rss_mb < MAX_RSS_MB, (run.seconds, run.max_rss_mb)
        assert "Traceback" not in run.err and "unexpected" not in run.err, run.err[-2000:]
    ins = runs.inspect_json
    assert ins.code in (0, 1) and ins.err == "", (ins.code, ins.err[-2000:])
    by_path = {c["path"]: c for c in ins.json["checkpoints"]}
    victims = [c for p, c in by_path.items() if p == str(pair.victim) or p.startswith(str(pair.victim) + "/")]
    assert victims, f"{pair.victim} is missing from the report: {list(by_path)}"
    reasons = [r for c in victims for r in c.get("incomplete_reasons", [])] + [
        p["message"] for c in victims for p in c.get("problems", [])
    ]
    refused = [c for c in victims if not c["complete"] or any(p["severity"] == "error" for p in c["problems"])]
    assert refused, f"{pair.victim} is reported complete with no error: {victims}"
    assert expect.lower() in " ".join(reasons).lower(), reasons
    assert ins.json["latest_complete"] != str(pair.victim)
    plan = runs.plan_json
    assert plan.code == 0, (plan.code, plan.err[-2000:], plan.out[-2000:])
    assert plan.json["checkpoint"] == str(pair.good), plan.json["checkpoint"]
    human = runs.inspect_human
    assert human.code == ins.code, (human.code, human.err[-2000:])
    # one line per problem: no file-derived text may start a line of its own
    for line in human.out.splitlines():
        assert not line.lstrip().startswith(("ERROR", "WARNING")) or " " in line.strip(), line
    return runs
