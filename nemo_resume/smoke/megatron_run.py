"""Run a recipe's CPU rehearsal on NeMo's real Megatron path and report what happened.

The rehearsal (:func:`nemo_resume.smoke.rehearsal.cpu_rehearsal`) runs in its own process group
(:mod:`nemo_resume.smoke.megatron_child`), so the CPU stand-ins never touch the caller's process, a
hung rank is killed at the time limit, and ``devices > 1`` uses Lightning's own launcher.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Optional

from nemo_resume.smoke.rehearsal import base_weights_recipe, cpu_rehearsal, needs_base_weights
from nemo_resume.smoke.train import SmokeResult

__all__ = ["rehearse", "read_lr_log"]

#: A rehearsal that has not finished by then is killed and reported as timed out.
DEFAULT_TIMEOUT_S = 900.0


def read_lr_log(path: Path) -> tuple[dict[int, list[float]], dict[int, float]]:
    """``(lrs, losses)`` by step from a :class:`~nemo_resume.smoke.megatron_child.LiveLRLog` file."""
    lrs: dict[int, list[float]] = {}
    losses: dict[int, float] = {}
    for row in _rows(path):
        if "lrs" in row:
            lrs[row["step"]] = row["lrs"]
        elif "loss" in row:
            losses[row["step"]] = row["loss"]
    return lrs, losses


def _rows(path: Path) -> list[dict[str, Any]]:
    """The complete rows written so far (the child may be in the middle of a line)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().split("\n")[:-1]]


def rehearse(
    recipe: Any,
    *,
    devices: int = 1,
    dist_opt: Optional[bool] = None,
    stop_after_step: Optional[int] = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    on_step: Optional[Callable[[int], None]] = None,
    log_path: Optional[Path] = None,
) -> SmokeResult:
    """Run ``recipe`` (a ``run.Partial`` of ``llm.pretrain``/``llm.finetune``) as a CPU rehearsal.

    Args:
        recipe: the recipe as it would be launched; :func:`cpu_rehearsal` shrinks a copy.
        devices: CPU ranks (data-parallel size).
        dist_opt: override the recipe's ``use_distributed_optimizer`` (``None`` keeps it).
        stop_after_step: stop gracefully once ``global_step`` reaches it (the ``-last`` save still runs).
        timeout_s: kill the whole process group after this long.
        on_step: called with each new step as it starts (a progress bar).
        log_path: where the rehearsal's own output goes (default: a temporary file, kept on failure).

    Returns:
        A :class:`SmokeResult`: ``lrs[step]`` are the live megatron param groups' LRs at each step,
        ``error`` NeMo's exception text if the run died, ``losses`` the training loss per step.
    """
    rehearsal = cpu_rehearsal(recipe, devices=devices, dist_opt=dist_opt)
    run_dir = Path(rehearsal.log.log_dir) / rehearsal.log.name
    log_path = log_path or Path(tempfile.mkdtemp(prefix="nemo-resume-rehearsal-")) / "rehearsal.log"
    if needs_base_weights(rehearsal):
        base = _base_weights(rehearsal, run_dir / "rehearsal-base", timeout_s, log_path)
        if isinstance(base, SmokeResult):
            return base
        rehearsal.resume.restore_config = base
    return _run_child(rehearsal, run_dir, timeout_s, log_path, stop_after_step=stop_after_step, on_step=on_step)


def _base_weights(rehearsal: Any, base_dir: Path, timeout_s: float, log_path: Path) -> Any:
    """The ``RestoreConfig`` of the tiny base model a PEFT rehearsal trains adapters on (made once per run
    folder), or the failed base run's result.

    NeMo's PEFT records the base checkpoint's path in each adapter checkpoint and loads it again on
    resume (nemo/lightning/pytorch/callbacks/peft.py:637-648): without one, a PEFT run cannot resume.
    """
    import nemo_run as run
    from nemo import lightning as nl

    found = sorted(base_dir.glob("*/*/checkpoints/*/weights"))
    if not found:
        result = _run_child(base_weights_recipe(rehearsal, base_dir), base_dir, timeout_s, log_path)
        found = sorted(base_dir.glob("*/*/checkpoints/*/weights"))
        if result.error is not None or not found:
            result.error = f"making the tiny base model for PEFT failed: {result.error or 'no checkpoint written'}"
            return result
    return run.Config(nl.RestoreConfig, path=str(found[-1].parent), load_model_state=True, load_optim_state=False)


def _run_child(
    rehearsal: Any,
    run_dir: Path,
    timeout_s: float,
    log_path: Path,
    *,
    stop_after_step: Optional[int] = None,
    on_step: Optional[Callable[[int], None]] = None,
) -> SmokeResult:
    """Run one rehearsal recipe in :mod:`nemo_resume.smoke.megatron_child` and read back what it did."""
    from nemo_run.core.serialization.zlib_json import ZlibJSONSerializer

    work = Path(tempfile.mkdtemp(prefix="nemo-resume-rehearsal-"))
    spec = {
        "recipe": ZlibJSONSerializer().serialize(rehearsal),
        "lr_log": str(work / "lrs.jsonl"),
        "result": str(work / "result.json"),
        "stop_after_step": stop_after_step,
    }
    (work / "spec.json").write_text(json.dumps(spec))
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "nemo_resume.smoke.megatron_child", str(work / "spec.json")],
                                stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        timed_out = _wait(proc, work / "lrs.jsonl", timeout_s, on_step)
    lrs, losses = read_lr_log(work / "lrs.jsonl")
    result_file = work / "result.json"
    done = json.loads(result_file.read_text()) if result_file.exists() else {}
    error = done.get("error")
    if timed_out:
        error = f"rehearsal timed out after {timeout_s:.0f} s (output: {log_path})"
    elif not done:
        error = f"rehearsal process exited with {proc.returncode} before finishing (output: {log_path})"
    return SmokeResult(
        log_dir=Path(done["log_dir"]) if done.get("log_dir") else run_dir,
        checkpoint_dir=Path(done["checkpoint_dir"]) if done.get("checkpoint_dir") else run_dir / "checkpoints",
        lrs=lrs, error=error, final_step=int(done.get("final_step", 0)),
        resumed_from=Path(done["resumed_from"]) if done.get("resumed_from") else None,
        losses=losses, stand_ins=tuple(done.get("stand_ins", ())), output=log_path,
    )


def _wait(proc: subprocess.Popen, lr_log: Path, timeout_s: float, on_step: Optional[Callable[[int], None]]) -> bool:
    """Wait for ``proc``, reporting new steps; kill its process group at the deadline. True if it timed out."""
    deadline = time.monotonic() + timeout_s
    seen = 0
    while True:
        try:
            proc.wait(timeout=0.5)
            finished = True
        except subprocess.TimeoutExpired:
            finished = False
        if on_step is not None:
            rows = _rows(lr_log)
            for row in rows[seen:]:
                if "lrs" in row:
                    on_step(row["step"])
            seen = len(rows)
        if finished:
            return False
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return True
