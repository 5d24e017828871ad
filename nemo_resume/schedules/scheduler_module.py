"""Which NeMo ``LRSchedulerModule`` runs a request: a Hugging Face name's mapping, or the staged module."""

from __future__ import annotations

from nemo_resume.errors import NemoResumeError
from nemo_resume.schedules.hf_names import hf_module
from nemo_resume.schedules.lr_stages import FLAG, describe, total_steps
from nemo_resume.schedules.module_config import ModuleConfig, ScheduleFields

STAGED_TARGET = "nemo_resume.schedules.staged.StagedLRScheduler"


def _staged(req: ScheduleFields) -> ModuleConfig:
    given = describe(req.stages) if req.stages else ""
    if not req.stages:
        raise NemoResumeError(f"--schedule staged needs {FLAG} STEPS:LR[,STEPS:LR...], e.g. {FLAG} 75:1e-4,50:1e-5")
    for flag, value in (("--warmup-steps", req.warmup_steps), ("--constant-steps", req.constant_steps)):
        if value:
            raise NemoResumeError(
                f"{flag} {value} with {FLAG} {given}: put a warmup inside a stage (75:1e-4:w10); drop {flag}"
            )
    if req.decay_steps is not None or req.decay_type is not None:
        raise NemoResumeError(
            f"--decay-steps/--decay-type with {FLAG} {given}: they apply to warmup_stable_decay; drop them"
        )
    if req.max_steps != total_steps(req.stages):
        raise NemoResumeError(
            f"--max-steps {req.max_steps} with {FLAG} {given}: the stages cover {total_steps(req.stages)} steps; "
            f"drop --max-steps or make the stages add up to it"
        )
    if req.lr != req.stages[0].lr:
        raise NemoResumeError(
            f"--lr {req.lr:g} with {FLAG} {given}: the first stage sets the LR ({req.stages[0].lr:g}); drop --lr"
        )
    return ModuleConfig(STAGED_TARGET, {"stages": given})


def scheduler_module(req: ScheduleFields) -> ModuleConfig:
    """The NeMo module ``req`` runs on (``req.schedule``: a Hugging Face name or ``staged``).

    Raises:
        NemoResumeError: no faithful NeMo module, or flags that contradict the schedule.
    """
    if req.stages and req.schedule != "staged":
        raise NemoResumeError(f"{FLAG} with --schedule {req.schedule}: stages are their own schedule; drop --schedule")
    return _staged(req) if req.schedule == "staged" else hf_module(req)
