"""``--lr-mult PATTERN=MULT``: per-group LR multipliers by parameter name, as NeMo can take them.

NeMo 2.7.3's ``MegatronOptimizerModule(scale_lr_cond=..., lr_mult=...)`` hands both to
megatron-core's ``_get_param_groups`` (``megatron/core/optimizer/__init__.py``), which calls
``scale_lr_cond(name, param)`` for every trainable parameter and keys the param groups by
``(wd_mult, lr_mult, is_expert_parallel, is_decoupled_lr)`` with ``lr_mult`` either 1.0 or the
one ``lr_mult`` given. NeMo's ``setup_megatron_optimizer`` then multiplies each group's ``lr``
by it before the scheduler is built, so the scheduler's ``base_lrs`` are ``lr`` and ``lr * mult``.

So a run has ONE multiplier besides 1.0: several patterns with the same MULT become one
condition (a parameter matching any of them is scaled); patterns with different MULTs are
refused, with the reason. Layer-wise LR decay (one multiplier per layer) is not expressible
(docs/schedules.md). ``PytorchOptimizerModule`` stores ``scale_lr_cond``/``lr_mult`` but never
uses them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from nemo_resume.errors import NemoResumeError

FLAG = "--lr-mult"


@dataclass(frozen=True)
class LrMultRule:
    """Parameters whose full name matches ``pattern`` (``fnmatch``, case-sensitive) train at ``lr * mult``."""

    pattern: str
    mult: float

    @property
    def spec(self) -> str:
        return f"{self.pattern}={self.mult:g}"


@dataclass(frozen=True)
class LrMultPlan:
    """The one ``scale_lr_cond``/``lr_mult`` pair for ``MegatronOptimizerModule``."""

    patterns: tuple[str, ...]
    mult: float


def parse_lr_mult(text: str, flag: str = FLAG) -> LrMultRule:
    """``"*lora*=0.5"`` -> ``LrMultRule("*lora*", 0.5)``.

    Raises:
        NemoResumeError: not ``PATTERN=MULT`` with a finite MULT > 0.
    """
    pattern, sep, mult = str(text).rpartition("=")
    try:
        value = float(mult)
    except ValueError:
        value = math.nan
    if not sep or not pattern or not math.isfinite(value) or value <= 0:
        raise NemoResumeError(
            f"{flag} {text}: write PATTERN=MULT with MULT a finite number > 0, e.g. {flag} '*adapter*=0.5'"
        )
    return LrMultRule(pattern, value)


def lr_mult_plan(rules: Sequence[LrMultRule], flag: str = FLAG) -> LrMultPlan | None:
    """The one multiplier NeMo can apply, with every pattern that gets it (None without rules).

    Raises:
        NemoResumeError: two rules with different multipliers, saying why NeMo cannot.
    """
    if not rules:
        return None
    mults = sorted({r.mult for r in rules})
    if len(mults) > 1:
        given = " ".join(f"{flag} '{r.spec}'" for r in rules)
        raise NemoResumeError(
            f"{given}: NeMo's MegatronOptimizerModule takes one scale_lr_cond and one lr_mult (megatron-core gives "
            f"each parameter lr or lr * lr_mult), so {len(mults)} multipliers cannot apply; give every pattern the same MULT"
        )
    return LrMultPlan(tuple(dict.fromkeys(r.pattern for r in rules)), mults[0])
