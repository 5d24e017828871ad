"""What the check is given: a schedule as NeMo takes it, a ``--plan`` file, a resume point; each refused
with one line when NeMo could not even start from it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from nemo_resume.check.result import ResumePoint
from nemo_resume.errors import NemoResumeError
from nemo_resume.planning import MODE_RESUME, ResumePlan
from nemo_resume.planning.plan_file import REWRITE, plan_from_json
from nemo_resume.schedules.cooldown import POLICY as COOLDOWN
from nemo_resume.schedules.cooldown import holds_cooldown, plan_cooldown, saved_cooldown
from nemo_resume.schedules.cosine import CosineState, lr_at
from nemo_resume.schedules.request import ScheduleRequest, is_real, is_whole

# Scheduler fields that a checkpoint restores and the check accepts in ResumePoint.restored.
_INT_FIELDS = ("max_steps", "warmup_steps", "constant_steps", "decay_steps", "last_epoch", "_step_count")
_FLOAT_FIELDS = ("min_lr",)
_LIST_FIELDS = ("base_lrs", "_last_lr")


def unchecked_request(
    lr: float,
    min_lr: float,
    max_steps: int,
    warmup_steps: int = 0,
    constant_steps: int = 0,
    lr_mults: Sequence[float] = (),
) -> CosineState:
    """A recipe's schedule options as NeMo takes them, refused only where NeMo could not even start.

    Unlike a checked :class:`ScheduleRequest`, a schedule NeMo would fail on (``lr < min_lr``,
    negative decay, ``constant_steps > 0`` with several groups) is accepted: finding where it
    fails is the check's job.

    Raises:
        NemoResumeError: from :func:`nemo_resume.schedules.request.validate_values`.
    """
    return ScheduleRequest(
        lr, min_lr, max_steps, warmup_steps, constant_steps, tuple(lr_mults), checked=False
    ).cosine_state()


def load_plan(path: str | Path) -> ResumePlan:
    """The plan in ``path``, a file ``nemo-resume plan -o`` wrote (:mod:`nemo_resume.planning.plan_file`), to be
    checked with :func:`nemo_resume.check.prelaunch.check_plan` as if planned here.

    Raises:
        NemoResumeError: the file is unreadable, not strict JSON (``NaN`` is refused), not a plan file of this
            version, or a field is missing or mistyped.
    """
    where = f"--plan {path}"
    try:
        data = json.loads(Path(path).read_text(), parse_constant=_refuse_constant)
    except OSError as exc:
        raise NemoResumeError(f"{where}: cannot read ({exc.strerror or exc})") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise NemoResumeError(f"{where}: not strict JSON ({exc}); {REWRITE}") from None
    plan = plan_from_json(data, where)
    try:
        return with_cooldown(plan)
    except NemoResumeError as exc:
        raise NemoResumeError(f"{where}: restored: {exc}") from None


def with_cooldown(plan: ResumePlan) -> ResumePlan:
    """A cooldown plan read back with its cooldown: the file holds what decides it (the policy, the request with
    ``decay_steps``/``decay_type``, the restored schedule and the step), as the planner derives it; a cooldown
    run's checkpoint holds its cooldown in the restored state, which the resume continues.

    Raises:
        NemoResumeError: the restored state names a cooldown it does not hold.
    """
    d = plan.decision
    if d is None or d.policy != COOLDOWN or d.cooldown is not None or plan.mode != MODE_RESUME:
        return plan
    if plan.restored is not None and holds_cooldown(plan.restored):
        cooldown = saved_cooldown(plan.restored)
    elif plan.saved is not None:
        cooldown = plan_cooldown(lr_at(plan.saved, plan.resume_step), plan.resume_step, plan.request)
    else:
        return plan
    return replace(plan, decision=replace(d, cooldown=cooldown))


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def validate_resume(resume: ResumePoint, groups: int, max_steps: int) -> None:
    """A resume point NeMo could restore into a scheduler with ``groups`` param groups and ``max_steps``.

    Raises:
        NemoResumeError: a step that is not a whole number or is past ``max_steps``, a restored field
            that is not a number, group counts that differ, a ``last_epoch`` that is not the step.
    """
    if not is_whole(resume.step) or resume.step < 0:
        raise NemoResumeError(f"resume step {resume.step} must be a whole number >= 0")
    if resume.step >= max_steps:
        raise NemoResumeError(
            f"resume step {resume.step} is at or past max_steps ({max_steps}): nothing left to train; raise max_steps"
        )
    for key, v in resume.restored.items():
        ok = (
            (key in _INT_FIELDS and is_whole(v))
            or (key in _FLOAT_FIELDS and is_real(v))
            or (key in _LIST_FIELDS and isinstance(v, list) and all(is_real(x) for x in v))
            or key not in (*_INT_FIELDS, *_FLOAT_FIELDS, *_LIST_FIELDS)
        )
        if not ok:
            raise NemoResumeError(f"restored {key}={v!r} is not a valid scheduler value (missing or mistyped)")
    base = resume.restored.get("base_lrs")
    if base is not None and len(base) != groups:
        raise NemoResumeError(
            f"restored base_lrs has {len(base)} entries but the request has {groups} param group(s); "
            "give one --lr-mult per extra group"
        )
    last = resume.restored.get("last_epoch")
    if last is not None and last != resume.step:
        raise NemoResumeError(f"restored last_epoch ({last}) differs from the resume step ({resume.step})")
    if resume.target is not None and len(resume.target.base_lrs) != groups:
        raise NemoResumeError(f"the plan has {len(resume.target.base_lrs)} param group LR(s) but the request has {groups}")

