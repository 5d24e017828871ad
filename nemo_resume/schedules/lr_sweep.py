"""The LR range test's sweep (``--lr-find``): an exponential ramp from ``min_lr`` to ``max_lr`` over ``steps`` steps.

Seed 001's ``LearningRateFinder`` starts at 1e-7 and multiplies the LR by the same factor every step; the defaults
here are its own (up to 1, in 100 steps). Torch-free: the recipes validate it, the scheduler and the analysis
share :meth:`LrSweep.lr`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from nemo_resume.errors import NemoResumeError

DEFAULT_MIN_LR = 1e-7
DEFAULT_MAX_LR = 1.0
DEFAULT_STEPS = 100
#: Fewer steps than this and the smoothed curve has no shape to read a recommendation from.
MIN_STEPS = 10


@dataclass(frozen=True)
class LrSweep:
    """The sweep of group 0 (an ``--lr-mult`` group keeps its ratio to it: ``lr_g(t) = mult_g * lr(t)``).

    Raises:
        NemoResumeError: ``min_lr``/``max_lr`` not finite and ``0 < min_lr < max_lr``, or fewer than
            :data:`MIN_STEPS` steps.
    """

    min_lr: float = DEFAULT_MIN_LR
    max_lr: float = DEFAULT_MAX_LR
    steps: int = DEFAULT_STEPS

    def __post_init__(self) -> None:
        if not (math.isfinite(self.min_lr) and math.isfinite(self.max_lr) and 0 < self.min_lr < self.max_lr):
            raise NemoResumeError(f"--lr-find-min {self.min_lr:g} --lr-find-max {self.max_lr:g}: need "
                                  "0 < min < max (e.g. --lr-find-min 1e-7 --lr-find-max 1)")
        if self.steps < MIN_STEPS:
            raise NemoResumeError(f"--lr-find-steps {self.steps}: a sweep needs at least {MIN_STEPS} steps to smooth "
                                  f"its loss and find a slope; give {MIN_STEPS} or more (default {DEFAULT_STEPS})")

    def lr(self, step: int) -> float:
        """Group 0's LR at ``step`` (0-based): ``min_lr`` at 0, ``max_lr`` at ``steps - 1``, held there after."""
        t = min(max(step, 0), self.steps - 1) / (self.steps - 1)
        return self.min_lr * (self.max_lr / self.min_lr) ** t
