"""Stage 4 of the pipeline: a schedule or a resume plan, stepped through NeMo's real scheduler.

- ``result``: what a check reports (:class:`CheckResult`, :class:`Check`, :class:`ResumePoint`);
- ``inputs``: schedules as NeMo takes them, ``--plan`` files, resume points, refused in one line;
- ``probe``: NeMo's ``get_lr`` at any step of a live scheduler; ``nemo_cosine``: NeMo's class, loaded light;
- ``rules``: the checks every scheduler gets; ``cosine`` and ``other_schedulers``: each scheduler's pipeline;
- ``prelaunch``: a resume plan checked as the run will execute it; ``plot``: the PNG.
"""

from __future__ import annotations

from nemo_resume.check.inputs import load_plan, unchecked_request
from nemo_resume.check.prelaunch import check_plan, plan_and_check
from nemo_resume.check.result import Check, CheckResult, Curve, Jump, ResumePoint, StepFailure
from nemo_resume.check.schedule import check_schedule

__all__ = [
    "Check",
    "CheckResult",
    "Curve",
    "Jump",
    "ResumePoint",
    "StepFailure",
    "check_plan",
    "check_schedule",
    "load_plan",
    "plan_and_check",
    "unchecked_request",
]
