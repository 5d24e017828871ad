"""Health rules over an attempt's loss and grad norm, each with the step it shows at and the user's own advice.

The thresholds and the advice are the seeds' (the user's notes): "watch the loss curve; if NaN appears lower the
LR", "grad norm normally 0.1-10, above 100 needs clipping" (seed 003, which halves the base LR and clips at 0.5
when the loss goes NaN, every per-group LR following its multiplier), "loss oscillating or diverging: lower the
LR, enable gradient clipping" (seed 002). The advice is text: ``audit`` never changes a run.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from nemo_resume.audit.events import GRAD_NORM_TAG, LOSS_TAG, Attempt
from nemo_resume.schedules.cosine import group_ratios

#: Seed 003: "grad norm normally 0.1-10, above 100 needs clipping".
GRAD_NORM_MAX = 100.0
#: A loss above this many times the median of the steps before it is a spike.
LOSS_SPIKE_FACTOR = 2.0
#: The grad norm is rising when the median of the last WINDOW steps is this many times the median of the WINDOW
#: steps before them (a single spike moves neither median).
GRAD_TREND_FACTOR = 2.0
#: The steps a rolling median looks back over, and the fewest it needs.
WINDOW = 20
MIN_HISTORY = 5

Code = Literal["NAN_LOSS", "LOSS_SPIKE", "GRAD_NORM_HIGH", "GRAD_NORM_RISING"]


@dataclass(frozen=True)
class Finding:
    """One rule broken in one attempt: at ``step`` first, at ``steps`` steps in all."""

    code: Code
    attempt: int
    step: int
    steps: int
    value: float
    reason: str
    advice: str

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "attempt": self.attempt, "step": self.step, "steps": self.steps,
                "value": self.value, "reason": self.reason, "advice": self.advice}


def _lower_lr(base_lr: float | None) -> str:
    if base_lr is None or not base_lr > 0:
        return "lower the base LR (--lr; every --lr-mult group keeps its ratio)"
    return f"lower the base LR: --lr {base_lr / 2:.3g} (half of {base_lr:.3g}; every --lr-mult group keeps its ratio)"


def _group_first(lrs: Sequence[float] | None) -> str:
    """Which group to lower first when the groups train at different LRs: the one with the highest."""
    ratios = group_ratios(lrs) if lrs else []
    if len({round(r, 6) for r in ratios if math.isfinite(r)}) < 2:
        return ""
    top = max(range(len(ratios)), key=lambda g: ratios[g] if math.isfinite(ratios[g]) else -math.inf)
    return f"; if it recurs, lower the multiplier of group {top} first (it trains at {ratios[top]:.3g}x group 0's LR)"


def advice(code: Code, base_lr: float | None, lrs: Sequence[float] | None) -> str:
    """What the seeds say to do about ``code`` at a step whose groups trained at ``lrs``; advice, never applied."""
    if code == "NAN_LOSS":
        return f'seed 003 ("if NaN appears, lower the LR"): {_lower_lr(base_lr)}, and clip gradients (--clip-grad 0.5)' \
               f"{_group_first(lrs)}"
    if code == "GRAD_NORM_HIGH":
        return f'seed 003 ("above {GRAD_NORM_MAX:g} needs clipping"): keep --clip-grad at 1.0 or lower it to 0.5; ' \
               f"if it recurs, {_lower_lr(base_lr)}"
    if code == "LOSS_SPIKE":
        return f'seed 002 ("loss oscillating or diverging"): {_lower_lr(base_lr)}, or clip gradients (--clip-grad 0.5)'
    return f'seed 003 ("watch the grad norm"): {_lower_lr(base_lr)} before it passes {GRAD_NORM_MAX:g}{_group_first(lrs)}'


def _median_before(values: Sequence[tuple[int, float]], i: int) -> tuple[float, int] | None:
    """The median of the finite values of the WINDOW steps before index ``i``, and how many there were."""
    history = [v for _, v in values[max(0, i - WINDOW):i] if math.isfinite(v)]
    return (statistics.median(history), len(history)) if len(history) >= MIN_HISTORY else None


def _spikes(loss: Mapping[int, float]) -> list[tuple[int, str]]:
    values = sorted(loss.items())
    out = []
    for i, (step, v) in enumerate(values):
        before = _median_before(values, i)
        if before is not None and math.isfinite(v) and before[0] > 0 and v > LOSS_SPIKE_FACTOR * before[0]:
            out.append((step, f"the loss {v:.4g} at step {step} is {v / before[0]:.3g}x the median of the "
                              f"{before[1]} steps before it ({before[0]:.4g})"))
    return out


def _rising(grad: Mapping[int, float]) -> list[tuple[int, str]]:
    """The first step at which the grad norm's median over the last WINDOW steps is GRAD_TREND_FACTOR times the
    WINDOW before."""
    values = [(s, v) for s, v in sorted(grad.items()) if math.isfinite(v)]
    for k in range(2 * WINDOW, len(values) + 1):
        old = statistics.median(v for _, v in values[k - 2 * WINDOW:k - WINDOW])
        new = statistics.median(v for _, v in values[k - WINDOW:k])
        if old > 0 and new >= GRAD_TREND_FACTOR * old:
            (a, _), (b, _) = values[k - WINDOW], values[k - 1]
            (c, _), (d, _) = values[k - 2 * WINDOW], values[k - WINDOW - 1]
            return [(b, f"grad norm rising: its median over steps {a}-{b} ({new:.3g}) is {new / old:.3g}x that over "
                        f"steps {c}-{d} ({old:.3g})")]
    return []


def findings(index: int, attempt: Attempt, base_lr: float | None) -> list[Finding]:
    """Every rule ``attempt`` (the ``index``-th) breaks, each once, at the first step it shows."""
    loss, grad, lrs = attempt.series(LOSS_TAG), attempt.series(GRAD_NORM_TAG), attempt.lrs
    hits: dict[Code, list[tuple[int, str]]] = {
        "NAN_LOSS": [(s, f"the loss is {v} at step {s}") for s, v in sorted(loss.items()) if not math.isfinite(v)],
        "LOSS_SPIKE": _spikes(loss),
        "GRAD_NORM_HIGH": [(s, f"grad norm {v:.4g} at step {s}, above {GRAD_NORM_MAX:g} (normally 0.1-10)")
                           for s, v in sorted(grad.items()) if not v <= GRAD_NORM_MAX],
        "GRAD_NORM_RISING": _rising(grad),
    }
    out = []
    for code, steps in hits.items():
        if steps:
            step, reason = steps[0]
            more = f" (and {len(steps) - 1} more step(s))" if len(steps) > 1 else ""
            value = loss[step] if code in ("NAN_LOSS", "LOSS_SPIKE") else grad[step]
            out.append(Finding(code, index, step, len(steps), value, reason + more, advice(code, base_lr, lrs.get(step))))
    return out
