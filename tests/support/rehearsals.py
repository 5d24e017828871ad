"""Recipe rehearsals on NeMo's real Megatron path, for the tier in tests/megatron.

A rehearsal here is exactly what ``recipes/qwen25_*.py ... --smoke --launch-anyway`` runs: the options
parsed by the scripts' parser, the plan and the pre-launch check (``prepare``), NeMo's own recipe
edited by ``qwen25_recipe``, then :func:`nemo_resume.smoke.megatron_run.rehearse` on CPU ranks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

__all__ = ["Rehearsal", "rehearse_recipe", "checked_lrs", "off_plan"]


@dataclass(frozen=True)
class Rehearsal:
    prepared: object  # nemo_resume.recipes.launch.Prepared
    result: object  # nemo_resume.smoke.train.SmokeResult
    run_dir: Path

    @property
    def lrs(self) -> dict[int, list[float]]:
        return self.result.lrs  # type: ignore[attr-defined]

    def why(self) -> str:
        """The rehearsal's error and the tail of its output, for assertion messages."""
        out = self.result.output  # type: ignore[attr-defined]
        tail = Path(out).read_text(errors="replace")[-3000:] if out and Path(out).exists() else ""
        return f"{self.result.error}\n{tail}"  # type: ignore[attr-defined]


def rehearse_recipe(task: str, argv: Sequence[str], *, devices: int = 1, dist_opt: Optional[bool] = None,
                    stop_after_step: Optional[int] = None) -> Rehearsal:
    """Plan, check and rehearse ``recipes/qwen25_<task>.py ARGV`` (as with ``--launch-anyway``)."""
    from nemo_resume.recipes.launch import prepare
    from nemo_resume.recipes.options import build_parser, options_from_args
    from nemo_resume.recipes.qwen25 import qwen25_recipe
    from nemo_resume.smoke.megatron_run import rehearse

    opts = options_from_args(task, build_parser(task, "tier").parse_args(list(argv)))  # type: ignore[arg-type]
    prepared = prepare(opts)
    result = rehearse(qwen25_recipe(prepared.opts, prepared.plan), devices=devices, dist_opt=dist_opt,
                      stop_after_step=stop_after_step)
    return Rehearsal(prepared, result, opts.run_dir)


def checked_lrs(prepared: object) -> dict[int, list[float]]:
    """The LR of every group at every step as the pre-launch check stepped NeMo's scheduler through it:
    the plan's curve on a planned resume, the restored schedule on a stock one, the schedule when fresh."""
    check = prepared.check  # type: ignore[attr-defined]
    curve = check.curve("planned") or check.curve("restored") or check.curve("schedule")
    return {int(s): [float(x) for x in row] for s, row in zip(curve.steps, curve.lrs)}


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
