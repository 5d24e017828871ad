"""The LR range test's analysis: a sweep's loss per step, smoothed, and the LR it recommends, two ways.

Seed 001's ``LearningRateFinder`` (and fastai's) smooth the loss with a bias-corrected exponential moving average
(``beta`` 0.98), stop reading at the first step whose smoothed loss is above 4x the best so far (the LR is too
high from there), and recommend the LR of the lowest smoothed loss divided by 10; fastai also suggests the LR
where the smoothed loss falls fastest against log(LR). Both are shown: they often differ by a few times, and the
user picks. The sweep's loss and LR are read back from the run's own TensorBoard logs (:mod:`.events`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nemo_resume.audit.events import EVENT_GLOB, LOSS_TAG, LR_TAG, Attempt, read_attempt, read_run, tb_root
from nemo_resume.errors import NemoResumeError
from nemo_resume.schedules.lr_sweep import MIN_STEPS

#: The moving average's weight on the past (seed 001 and fastai).
BETA = 0.98
#: Past this many times the best smoothed loss, the sweep has diverged (seed 001 and fastai).
DIVERGE = 4.0
#: min-loss LR / this: seed 001's recommendation.
MIN_LOSS_DIVISOR = 10.0


@dataclass(frozen=True)
class Point:
    """One step of the sweep: its LR (param group 0's, NeMo's ``lr``) and smoothed loss."""

    step: int
    lr: float
    loss: float

    def to_json(self) -> dict[str, Any]:
        return {"step": self.step, "lr": self.lr, "smoothed_loss": self.loss}


@dataclass(frozen=True)
class LrFindResult:
    """What the sweep says.

    Attributes:
        steps, lrs, losses, smoothed: every logged step, in order (``smoothed`` as long as the others).
        diverged_at: the first step whose smoothed loss passed ``DIVERGE`` x the best (or was not finite), or None;
            the recommendations read only the steps before it.
        steepest: where the smoothed loss falls fastest against log(LR).
        minimum: the lowest smoothed loss.
    """

    steps: tuple[int, ...]
    lrs: tuple[float, ...]
    losses: tuple[float, ...]
    smoothed: tuple[float, ...]
    diverged_at: int | None
    steepest: Point
    minimum: Point

    @property
    def min_loss_lr(self) -> float:
        """Seed 001's recommendation: the LR at the lowest smoothed loss / 10."""
        return self.minimum.lr / MIN_LOSS_DIVISOR

    def to_json(self) -> dict[str, Any]:
        return {
            "recommended": {"steepest": self.steepest.lr, "min_loss_div_10": self.min_loss_lr},
            "steepest": self.steepest.to_json(), "minimum": self.minimum.to_json(),
            "diverged_at": self.diverged_at, "swept": [self.lrs[0], self.lrs[-1]],
            "points": [{"step": s, "lr": lr, "loss": x, "smoothed_loss": y}
                       for s, lr, x, y in zip(self.steps, self.lrs, self.losses, self.smoothed)],
        }


def smooth(losses: Sequence[float], beta: float = BETA) -> list[float]:
    """The bias-corrected exponential moving average (``avg / (1 - beta**(i+1))``), NaN from a non-finite loss on."""
    out, avg = [], 0.0
    for i, x in enumerate(losses):
        avg = beta * avg + (1 - beta) * x
        out.append(avg / (1 - beta ** (i + 1)))
    return out


def _diverged(smoothed: Sequence[float]) -> int | None:
    """The index of the first smoothed loss above ``DIVERGE`` x the best before it, or not finite."""
    best = math.inf
    for i, y in enumerate(smoothed):
        if not math.isfinite(y) or y > DIVERGE * best:
            return i
        best = min(best, y)
    return None


def _slopes(x: Sequence[float], y: Sequence[float]) -> list[float]:
    """dy/dx at every point: central differences inside, one-sided at the ends (as ``numpy.gradient``)."""
    n = len(x)
    return [(y[min(i + 1, n - 1)] - y[max(i - 1, 0)]) / (x[min(i + 1, n - 1)] - x[max(i - 1, 0)]) for i in range(n)]


def analyse(steps: Sequence[int], lrs: Sequence[float], losses: Sequence[float], where: str = "the sweep",
            beta: float = BETA) -> LrFindResult:
    """The recommendations from a sweep's loss per step (``beta``: the smoothing; 0 reads the raw loss).

    Raises:
        NemoResumeError: fewer than ``MIN_STEPS`` steps, an LR that does not rise every step (not a sweep), or a
            loss that diverged before three steps could be read (``where`` names the source in the message).
    """
    if len(steps) < MIN_STEPS:
        raise NemoResumeError(f"{where}: {len(steps)} step(s) logged; an LR sweep needs at least {MIN_STEPS} "
                              "(run it with --lr-find-steps 30 or more)")
    if any(not (0 < a < b) for a, b in zip(lrs, lrs[1:])):
        raise NemoResumeError(f"{where}: the logged LR does not rise every step, so this is not an LR sweep; "
                              "give the logs of a run started with --lr-find")
    smoothed = smooth(losses, beta)
    cut = _diverged(smoothed)
    kept = len(smoothed) if cut is None else cut
    if kept < 3:
        raise NemoResumeError(f"{where}: the loss diverged at step {steps[kept]} (LR {lrs[kept]:.3g}), before a slope "
                              "could be read; sweep again from a lower --lr-find-min")
    logs = [math.log(x) for x in lrs[:kept]]
    slopes = _slopes(logs, smoothed[:kept])
    steep = min(range(kept), key=lambda i: slopes[i])
    low = min(range(kept), key=lambda i: smoothed[i])
    return LrFindResult(tuple(steps), tuple(lrs), tuple(losses), tuple(smoothed),
                        None if cut is None else steps[cut],
                        Point(steps[steep], lrs[steep], smoothed[steep]), Point(steps[low], lrs[low], smoothed[low]))


def _attempts(path: Path) -> list[Attempt]:
    """The run folder's attempts (:func:`.events.read_run`), or those of the event files under ``path`` itself when it
    is the logs folder (``<dir>/tb_logs/<name>``, copied from a cluster) rather than a run folder."""
    if not tb_root(path).is_dir() and path.is_dir():
        found = [a for a in map(read_attempt, sorted(path.rglob(EVENT_GLOB))) if a is not None]
        if found:
            return sorted(found, key=lambda a: (a.started, str(a.path)))
    return read_run(path)


def analyse_run(path: Path) -> LrFindResult:
    """:func:`analyse` on the newest attempt logged for ``path``: an ``--lr-find`` run folder
    (``<dir>/<name>-lr-find``) or its TensorBoard logs folder.

    Raises:
        NemoResumeError: no readable logs there (:func:`.events.read_run`), or :func:`analyse`'s refusals.
    """
    attempt = _attempts(path)[-1]
    lr, loss = attempt.series(LR_TAG), attempt.series(LOSS_TAG)
    steps = sorted(set(lr) & set(loss))
    return analyse(steps, [lr[s] for s in steps], [loss[s] for s in steps], where=str(attempt.path.parent))
