"""Recipe rehearsals on NeMo's real Megatron path, for the tier in tests/megatron.

A rehearsal here is exactly what ``recipes/qwen25_*.py ... --smoke --launch-anyway`` runs: the options
parsed by the scripts' parser, the plan and the pre-launch check (``prepare``), NeMo's own recipe
edited by ``qwen25_recipe``, then :func:`nemo_resume.smoke.megatron_run.rehearse` on CPU ranks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

if TYPE_CHECKING:
    from nemo_resume.inspection import InspectedCheckpoint
    from nemo_resume.recipes.launch import Prepared
    from nemo_resume.smoke.train import SmokeResult

__all__ = ["Rehearsal", "rehearse_recipe", "checked_lrs", "off_plan", "kept_checkpoints", "checkpoint_at"]


@dataclass(frozen=True)
class Rehearsal:
    prepared: Prepared
    result: SmokeResult
    run_dir: Path

    @property
    def lrs(self) -> dict[int, list[float]]:
        return self.result.lrs

    def why(self) -> str:
        """The rehearsal's error and the tail of its output, for assertion messages."""
        out = self.result.output
        tail = out.read_text(errors="replace")[-3000:] if out and out.exists() else ""
        return f"{self.result.error}\n{tail}"


def rehearse_recipe(task: str, argv: Sequence[str], *, devices: int = 1, dist_opt: Optional[bool] = None,
                    stop_after_step: Optional[int] = None, edit: Optional[Callable[[Any], None]] = None) -> Rehearsal:
    """Plan, check and rehearse ``recipes/qwen25_<task>.py ARGV`` (as with ``--launch-anyway``).

    ``edit`` changes the recipe (a ``run.Partial``) before the rehearsal, as a user's own script would.
    """
    from nemo_resume.recipes.launch import prepare
    from nemo_resume.recipes.options import build_parser, options_from_args
    from nemo_resume.recipes.qwen25 import qwen25_recipe
    from nemo_resume.smoke.megatron_run import rehearse

    opts = options_from_args(task, build_parser(task, "tier").parse_args(list(argv)))  # type: ignore[arg-type]  # a Task
    prepared = prepare(opts, smoke_devices=devices)
    recipe = qwen25_recipe(prepared.opts, prepared.plan)
    if edit is not None:
        edit(recipe)
    result = rehearse(recipe, devices=devices, dist_opt=dist_opt, stop_after_step=stop_after_step)
    return Rehearsal(prepared, result, opts.run_dir)


def checked_lrs(prepared: Prepared) -> dict[int, list[float]]:
    """The LR of every group at every step as the pre-launch check stepped NeMo's scheduler through it:
    the plan's curve on a planned resume, the restored schedule on a stock one, the schedule when fresh."""
    check = prepared.check
    curve = check.curve("planned") or check.curve("restored") or check.curve("schedule")
    assert curve is not None, "the check probed no curve"
    return {int(s): [float(x) for x in row] for s, row in zip(curve.steps, curve.lrs)}


def kept_checkpoints(run_dir: Path) -> list[InspectedCheckpoint]:
    """The resumable checkpoints a rehearsal left under ``run_dir``, by step, without their ``-last`` copies."""
    from nemo_resume.inspection import inspect_path

    return sorted((c for c in inspect_path(run_dir).checkpoints
                   if c.resumable and not c.is_companion and not c.state.location.path.name.endswith("-last")),
                  key=lambda c: c.state.step or 0)


def checkpoint_at(run_dir: Path, step: int) -> Path:
    """The one kept checkpoint at ``step`` (see :func:`kept_checkpoints`)."""
    (hit,) = [c.state.location.path for c in kept_checkpoints(run_dir) if c.state.step == step]
    return hit


def off_plan(live: dict[int, list[float]], planned: dict[int, list[float]]) -> list[tuple[int, list[float], object]]:
    """Steps whose live LRs differ from the planned ones (or have no planned value).

    Group by group where the check was shaped like the run's groups (a resume: one LR per checkpoint
    group). A fresh run's check has one group per multiplier, and megatron-core also splits by weight
    decay: then the live LRs and the planned ones must be the same set of values.
    """
    def same(a: list[float], b: list[float]) -> bool:
        if len(a) != len(b):
            return set(a) == set(b)
        return all(math.isclose(x, y, rel_tol=1e-12, abs_tol=0.0) for x, y in zip(a, b))

    return [(s, lrs, planned.get(s)) for s, lrs in sorted(live.items()) if s not in planned or not same(lrs, planned[s])]
