"""Where each attempt of a run started and ended, which steps it trained again or left out, and the LR at the seam.

A resume from a checkpoint older than the last step trained repeats steps (the checkpoint interval); one from a
checkpoint newer than any logged step skips some. The seam compares the first LR the new attempt trained at with
what the attempts before it trained at the same step when they logged it, else at the step before: a jump there is
what ``--max-jump`` guards against before a launch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from nemo_resume.audit.events import Attempt
from nemo_resume.constants import MAX_LR_JUMP
from nemo_resume.schedules.cosine import relative_jump


@dataclass(frozen=True)
class Seam:
    """The LR on both sides of a resume: ``before`` at ``before_step`` (earlier attempts), ``after`` at the new
    attempt's first step."""

    before_step: int
    before: tuple[float, ...]
    after_step: int
    after: tuple[float, ...]

    @property
    def relative(self) -> float:
        return relative_jump(self.before, self.after)

    @property
    def same_step(self) -> bool:
        return self.before_step == self.after_step

    def to_json(self) -> dict[str, Any]:
        return {"before_step": self.before_step, "before": list(self.before), "after_step": self.after_step,
                "after": list(self.after), "relative": self.relative}


@dataclass(frozen=True)
class Span:
    """One attempt: its steps, what it trained again or skipped compared with the attempts before, and its seam."""

    index: int
    events: str
    first_step: int
    last_step: int
    steps: int
    repeated: tuple[int, ...]
    skipped: tuple[int, ...]
    seam: Seam | None
    jump: bool  # the seam's LR changed more than --max-jump's default, or more than any step of the attempt before

    def to_json(self) -> dict[str, Any]:
        def span(steps: tuple[int, ...]) -> list[int] | None:
            return [steps[0], steps[-1]] if steps else None

        return {"attempt": self.index, "events": self.events, "first_step": self.first_step,
                "last_step": self.last_step, "steps": self.steps, "repeated": span(self.repeated),
                "repeated_steps": len(self.repeated), "skipped": span(self.skipped), "skipped_steps": len(self.skipped),
                "seam": self.seam.to_json() if self.seam else None, "lr_jump": self.jump}


def _largest_step_change(lrs: dict[int, tuple[float, ...]]) -> float:
    """The largest relative LR change between consecutive steps of one attempt: its schedule's own slope."""
    return max((relative_jump(lrs[s - 1], lrs[s]) for s in lrs if s - 1 in lrs), default=0.0)


def _before(first: int, earlier: Sequence[Attempt]) -> tuple[int, tuple[float, ...], float] | None:
    """The LR the attempts before trained at ``first`` (the latest to log it), else at ``first - 1``: its step, its
    LRs, and that attempt's own largest step-to-step change."""
    for step in (first, first - 1):
        for attempt in reversed(earlier):
            lrs = attempt.lrs
            if step in lrs:
                return step, lrs[step], _largest_step_change(lrs)
    return None


def spans(attempts: Sequence[Attempt]) -> list[Span]:
    """Each attempt, in the order they started."""
    out: list[Span] = []
    trained: set[int] = set()
    for i, attempt in enumerate(attempts):
        steps = attempt.steps
        first, after = steps[0], attempt.lrs.get(steps[0])
        before = _before(first, attempts[:i])
        seam = Seam(before[0], before[1], first, after) if before is not None and after is not None else None
        jump = False
        if seam is not None and before is not None and len(seam.before) == len(seam.after):
            jump = seam.relative > (MAX_LR_JUMP if seam.same_step else max(MAX_LR_JUMP, before[2]))
        out.append(Span(
            index=i, events=str(attempt.path), first_step=first, last_step=steps[-1], steps=len(steps),
            repeated=tuple(sorted(trained & set(steps))),
            skipped=tuple(range(max(trained) + 1, first)) if trained else (),
            seam=seam, jump=jump,
        ))
        trained |= set(steps)
    return out


def final_timeline(attempts: Sequence[Attempt]) -> dict[int, int]:
    """Step -> the attempt whose training of it the run kept: the last one to train it."""
    return {s: i for i, a in enumerate(attempts) for s in a.steps}
