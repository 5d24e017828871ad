"""``training_report.json``: what a finished (or stopped) run did, in one document.

The recipe scripts write it into the run folder when a launch or a ``--smoke`` rehearsal ends; ``nemo-resume audit
RUN --report PATH`` writes it on demand. It holds the steps, the attempts, the checkpoints kept, the LR at each
stage switch of the plan, the final loss, the time per step and the problems ``audit`` found.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from nemo_resume.audit.checkpoints import KeptCheckpoints, kept_checkpoints
from nemo_resume.audit.compare import planned_lrs
from nemo_resume.audit.events import LOSS_TAG, STEP_TIME_TAG
from nemo_resume.audit.result import AuditResult
from nemo_resume.audit.resumes import final_timeline
from nemo_resume.planning import ResumePlan

#: The report's name in the run folder (seed 004 keeps it as results/training_report.json).
TRAINING_REPORT = "training_report.json"


@dataclass(frozen=True)
class StageSwitch:
    """The LR on both sides of a switch the plan makes at ``step`` (its first step in the new stage)."""

    step: int
    planned: tuple[float, ...] | None
    before: tuple[float, ...] | None  # logged at step - 1
    after: tuple[float, ...] | None  # logged at step

    def to_json(self) -> dict[str, Any]:
        def out(lrs: tuple[float, ...] | None) -> list[float] | None:
            return list(lrs) if lrs is not None else None

        return {"step": self.step, "planned": out(self.planned), "before": out(self.before), "after": out(self.after)}


@dataclass(frozen=True)
class TrainingReport:
    """The report; ``to_json()`` is the file."""

    audit: AuditResult
    checkpoints: KeptCheckpoints
    switches: tuple[StageSwitch, ...]

    def to_json(self) -> dict[str, Any]:
        a = self.audit
        kept = final_timeline(list(a.attempts))
        steps = sorted(kept)
        last = steps[-1]
        times = [v for att in a.attempts for s, v in sorted(att.series(STEP_TIME_TAG).items()) if s != att.first_step]
        return {
            "run": str(a.run),
            "steps": {"first": steps[0], "last": last, "trained": len(steps),
                      "max_steps": a.plan.request.max_steps if a.plan else None},
            "attempts": [s.to_json() for s in a.spans],
            "checkpoints": self.checkpoints.to_json(),
            "stage_switches": [s.to_json() for s in self.switches],
            "final_loss": {"step": last, "value": a.attempts[kept[last]].series(LOSS_TAG).get(last)},
            # each attempt's first step holds its start-up (NeMo's timer includes it)
            "seconds_per_step": statistics.median(times) if times else None,
            "problems": [p.to_json() for p in a.problems],
        }


def _switch_steps(plan: ResumePlan) -> list[int]:
    """The first step of each stage the plan's schedule switches to: ``--lr-stages`` boundaries, or a cosine's first
    decay step and first constant step."""
    if not plan.request.is_cosine:  # staged: the stages the plan's LRs come from (the checkpoint's on a resume)
        return plan.stage_switches
    if plan.cooldown is not None:
        return []
    s = plan.schedule
    return [x for x in (s.warmup_steps + 1 if s.warmup_steps else None,
                        s.warmup_steps + s.decay + 1 if s.constant_steps else None) if x is not None]


def training_report(audit: AuditResult) -> TrainingReport:
    """The report of an audited run (its checkpoints counted by the inspector)."""
    switches: list[StageSwitch] = []
    if audit.plan is not None:
        lrs: dict[int, tuple[float, ...]] = {}
        for attempt in audit.attempts:
            lrs.update(attempt.lrs)
        at = _switch_steps(audit.plan)
        planned, _ = planned_lrs(audit.plan, at)
        switches = [StageSwitch(s, planned.get(s), lrs.get(s - 1), lrs.get(s)) for s in at]
    return TrainingReport(audit, kept_checkpoints(audit.run), tuple(switches))
