"""NeMo's CosineAnnealing as one pure function of (state, step), failures included.

``nemo/core/optim/lr_scheduler.py`` decides an LR from ``last_epoch`` and the fields below,
and raises in three places (facts file, section 4): the ``ValueError`` "received an initial
learning rate that was lower than the minimum learning rate" in ``_get_lr``, and bare
``assert``s in ``_linear_warmup_with_cosine_annealing`` when ``constant_steps > 0``.
This module mirrors that logic without importing torch, so the inspector can say *when* a
run will fail; tests hold it equal, step by step, to NeMo's own class, which stays the truth.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from nemo_resume.constants import NEMO_BELOW_MIN_LR_TEXT, RATIO_REL_TOL

FailureKind = Literal["below_min_lr", "assert_max_lr_gt_min_lr", "assert_decay_ratio", "zero_division"]

# NeMo's own text, so reports match what the user saw in the log.


@dataclass(frozen=True)
class CosineState:
    """The fields of NeMo's ``CosineAnnealing`` that decide the LR at a step.

    ``decay_steps`` is kept as saved (NeMo computes it once, at construction, as
    ``max_steps - warmup_steps - constant_steps`` and restores it verbatim on resume).
    """

    base_lrs: tuple[float, ...]
    min_lr: float
    max_steps: int
    warmup_steps: int = 0
    constant_steps: int = 0
    decay_steps: int | None = None

    @property
    def decay(self) -> int:
        if self.decay_steps is not None:
            return self.decay_steps
        return self.max_steps - (self.constant_steps + self.warmup_steps)

    def to_json(self) -> dict[str, Any]:
        """The scheduler ``state_dict`` fields this state sets (``load_state_dict`` takes them)."""
        return {
            "base_lrs": list(self.base_lrs),
            "min_lr": self.min_lr,
            "max_steps": self.max_steps,
            "warmup_steps": self.warmup_steps,
            "constant_steps": self.constant_steps,
            "decay_steps": self.decay,
        }


def relative_jump(before: Sequence[float], after: Sequence[float]) -> float:
    """The largest relative LR change between two per-group LR lists (inf from an LR of 0)."""
    worst = 0.0
    for b, a in zip(before, after):
        if a != b:
            worst = max(worst, abs(a - b) / abs(b) if b else math.inf)
    return worst


def group_ratios(lrs: Sequence[float]) -> list[float]:
    """Each group's LR over group 0's (nan where group 0's is 0)."""
    return [x / lrs[0] if lrs[0] else math.nan for x in lrs]


def same_ratios(a: Sequence[float], b: Sequence[float]) -> bool:
    """Two per-group LR lists keep the same ratios to their group 0 (float noise only)."""
    return all(math.isclose(x, y, rel_tol=RATIO_REL_TOL) for x, y in zip(group_ratios(a), group_ratios(b)))


@dataclass(frozen=True)
class Failure:
    """Where and how NeMo's scheduler raises."""

    step: int
    kind: FailureKind

    @property
    def message(self) -> str:
        return {
            "below_min_lr": f"NeMo's ValueError 'CosineAnnealing ... {NEMO_BELOW_MIN_LR_TEXT}'",
            "assert_max_lr_gt_min_lr": "AssertionError (assert max_lr > min_lr) in _linear_warmup_with_cosine_annealing",
            "assert_decay_ratio": "AssertionError (decay_ratio out of [0, 1]) in _linear_warmup_with_cosine_annealing",
            "zero_division": "ZeroDivisionError in the cosine decay (decay length 0)",
        }[self.kind]


class ScheduleFailure(Exception):
    """Raised by :func:`lr_at` exactly where NeMo's scheduler would raise."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(f"step {failure.step}: {failure.message}")
        self.failure = failure


def _megatron_cosine(s: CosineState, step: int) -> list[float]:
    """``_linear_warmup_with_cosine_annealing``: group 0's LR for every group (the collapse)."""
    max_lr = s.base_lrs[0]
    if not max_lr > s.min_lr:
        raise ScheduleFailure(Failure(step, "assert_max_lr_gt_min_lr"))
    w, d = s.warmup_steps, s.decay
    if w > 0 and step <= w:
        lr = max_lr * float(step) / float(w)
    elif step > w + d:
        lr = s.min_lr
    else:
        if d == 0:
            raise ScheduleFailure(Failure(step, "zero_division"))
        ratio = float(step - w) / float(d)
        if not 0.0 <= ratio <= 1.0:
            raise ScheduleFailure(Failure(step, "assert_decay_ratio"))
        lr = s.min_lr + 0.5 * (math.cos(math.pi * ratio) + 1.0) * (max_lr - s.min_lr)
    return [lr for _ in s.base_lrs]


def lr_at(s: CosineState, step: int) -> list[float]:
    """The LR of every param group at ``last_epoch == step``, as ``CosineAnnealing.get_lr``.

    Raises:
        ScheduleFailure: where NeMo raises, with the same cause.
    """
    w, c = s.warmup_steps, s.constant_steps
    if w > 0 and step <= w:
        if c:
            return _megatron_cosine(s, step)
        return [b * (step + 1) / (w + 1) for b in s.base_lrs]
    if c > 0 and (w + s.decay) < step <= s.max_steps:
        return _megatron_cosine(s, step)
    if step > s.max_steps:
        return [s.min_lr for _ in s.base_lrs]
    if any(b < s.min_lr for b in s.base_lrs):
        raise ScheduleFailure(Failure(step, "below_min_lr"))
    if c:
        return _megatron_cosine(s, step)
    span = s.max_steps - w
    if span == 0:
        raise ScheduleFailure(Failure(step, "zero_division"))
    mult = 0.5 * (1 + math.cos(math.pi * (step - w) / span))
    return [(b - s.min_lr) * mult + s.min_lr for b in s.base_lrs]


def first_warmup_stall(s: CosineState, start: int, end: int) -> int | None:
    """The first step in ``start + 1 .. min(warmup_steps, end)`` whose LR is not above the step before's.

    Proved from the schedule's form where it can be: NeMo's warmup LR is ``b * (t + 1) / (W + 1)`` (or group
    0's ``b * t / W`` with ``constant_steps > 0``), an increasing ratio times a fixed base LR. Consecutive
    ratios differ by a factor of at least ``1 + 1/(W + 1)``, far above float rounding (``2**-53`` relative)
    while ``W < 2**50`` and every product stays a normal float; then the warmup rises at every step.
    Otherwise (a zero or denormal LR) every warmup step is computed, so no stall hides between probes.
    """
    w = s.warmup_steps
    last = min(w, end)
    if w <= 0 or last <= start:
        return None
    bases = s.base_lrs[:1] if s.constant_steps else s.base_lrs
    if w < 2**50 and all(b >= 4 * sys.float_info.min * (w + 1) for b in bases):
        return None
    before = lr_at(s, start)
    for step in range(start + 1, last + 1):
        now = lr_at(s, step)
        if not all(a > b for a, b in zip(now, before)):
            return step
        before = now
    return None


def first_failure(s: CosineState, start: int, end: int) -> Failure | None:
    """The first step in ``[start, end]`` at which NeMo's scheduler raises, or None.

    Exact, in O(1) per phase: every raise in ``get_lr`` depends only on which phase the step
    is in, so checking the first step of each phase inside the range finds the earliest.
    """
    w, d, m = s.warmup_steps, s.decay, s.max_steps
    # Phase starts: warmup (0..w), decay (w+1..w+d), constant (w+d+1..m), flat (> m).
    candidates = {start, w, w + 1, w + d, w + d + 1, m, m + 1}
    for step in sorted(x for x in candidates if start <= x <= end):
        try:
            lr_at(s, step)
        except ScheduleFailure as exc:
            # An earlier step of the same phase fails the same way: walk back to the phase start.
            return Failure(_phase_start(s, step, start), exc.failure.kind)
    return None


def _phase_start(s: CosineState, step: int, start: int) -> int:
    """The first step >= start in the same phase as ``step`` (every step of a phase fails alike)."""
    w, d = s.warmup_steps, s.decay
    if w > 0 and step <= w:
        lo = 0
    elif s.constant_steps > 0 and w + d < step:
        lo = max(w + d + 1, w + 1 if w > 0 else 0)
    else:
        lo = w + 1 if w > 0 else 0
    return max(lo, start)
