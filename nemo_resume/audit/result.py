"""What ``audit`` found: the attempts, the LR against the plan, the health findings, and the problems among them.

Plain data with ``to_json()`` (the ``--json`` output); :mod:`nemo_resume.cli.audit_cmd` renders it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nemo_resume.audit.compare import LR_REL_TOL, PlanComparison
from nemo_resume.audit.events import Attempt
from nemo_resume.audit.health import Finding
from nemo_resume.audit.resumes import Span
from nemo_resume.planning import ResumePlan

OFF_PLAN_ADVICE = ("a stock resume restores the checkpoint's scheduler whatever the config says: resume through the "
                   "recipe scripts (their callback applies the plan); a fresh run off its plan was launched with other "
                   "flags: plan again with them")
JUMP_ADVICE = "plan the resume with `nemo-resume plan` (docs/plan.md): --max-jump refuses an unasked jump before launch"


@dataclass(frozen=True)
class AuditProblem:
    """One problem found, with the attempt and step it shows at, and what to do (text only)."""

    code: str
    attempt: int | None
    step: int
    message: str
    advice: str

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "attempt": self.attempt, "step": self.step, "message": self.message,
                "advice": self.advice}


@dataclass(frozen=True)
class AuditResult:
    """Everything ``audit`` read and found for one run folder.

    Attributes:
        run: the run folder.
        attempts: every launch's log, in the order they started.
        spans: each attempt's steps, repeats, skips and seam.
        comparisons: each plan against the steps it planned (none without a plan).
        findings: the health rules broken.
        plan: the plan of the last attempt (or ``--plan``), which the report's stage switches come from.
        notes: what was not compared, and why.
    """

    run: Path
    attempts: tuple[Attempt, ...]
    spans: tuple[Span, ...]
    comparisons: tuple[PlanComparison, ...]
    findings: tuple[Finding, ...]
    plan: ResumePlan | None
    notes: tuple[str, ...]

    @property
    def every_group(self) -> bool:
        return all(a.every_group for a in self.attempts)

    def _planned_seam(self, span: Span) -> bool:
        """A plan compared the seam's step and the run was on it there: the plan chose the jump."""
        step = span.first_step
        return any(c.attempt in (span.index, None) and step in c.compared and (c.first is None or c.first.step > step)
                   for c in self.comparisons)

    @property
    def problems(self) -> list[AuditProblem]:
        """Every problem, by step: the LR off the plan, an unplanned LR jump at a resume, the health findings."""
        out = []
        for c in self.comparisons:
            if (d := c.first) is not None:
                out.append(AuditProblem(
                    "LR_OFF_PLAN", c.attempt, d.step,
                    f"step {d.step}: param group {d.group} trained at LR {d.actual:.6g}, the plan ({c.plan}) says "
                    f"{d.planned:.6g} ({d.relative:.2%} off; tolerance {LR_REL_TOL:.2%})", OFF_PLAN_ADVICE))
        for s in self.spans:
            if s.jump and s.seam is not None and not self._planned_seam(s):
                out.append(AuditProblem(
                    "LR_JUMP_AT_RESUME", s.index, s.first_step,
                    f"step {s.first_step}: attempt {s.index} resumed at LR {_lrs(s.seam.after)}, {s.seam.relative:.2%} "
                    f"from the {_lrs(s.seam.before)} trained at step {s.seam.before_step} before", JUMP_ADVICE))
        out += [AuditProblem(f.code, f.attempt, f.step, f.reason, f.advice) for f in self.findings]
        return sorted(out, key=lambda p: (p.step, p.attempt if p.attempt is not None else -1, p.code))

    @property
    def exit_code(self) -> int:
        return 1 if self.problems else 0

    def to_json(self) -> dict[str, Any]:
        return {
            "run": str(self.run),
            "ok": not self.problems,
            "attempts": [s.to_json() for s in self.spans],
            "lr": {"every_group_logged": self.every_group, "tolerance": LR_REL_TOL,
                   "comparisons": [c.to_json() for c in self.comparisons]},
            "health": [f.to_json() for f in self.findings],
            "problems": [p.to_json() for p in self.problems],
            "notes": list(self.notes),
        }


def _lrs(lrs: tuple[float, ...]) -> str:
    return "[" + ", ".join(f"{x:.6g}" for x in lrs) + "]"
