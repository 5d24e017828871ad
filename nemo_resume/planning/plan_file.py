"""The plan file: what ``nemo-resume plan -o FILE`` writes and ``nemo-resume check --plan FILE`` reads back.

One versioned schema, defined here only: :func:`plan_to_json` writes it (``plan --json`` prints the same) and
:func:`plan_from_json` rebuilds the :class:`ResumePlan` from it, so a plan checked from its file gets the
verdict it gets in memory (:func:`nemo_resume.check.prelaunch.check_plan`). A changed layout gets a new
``VERSION``; a file of another version (or none) is refused with the command that writes a current one.

Strict JSON: the one number a plan can hold that is not finite, an infinite ``jump`` (a resume from an LR of
0), is written as ``null`` and read back as infinity.
"""

from __future__ import annotations

import math
import reprlib
from collections.abc import Callable
from typing import Any, get_args

from nemo_resume.constants import MAX_LR_JUMP
from nemo_resume.errors import NemoResumeError
from nemo_resume.inspection.problems import Problem, Severity
from nemo_resume.planning.choice import Choice, Skipped
from nemo_resume.planning.policy import POLICIES, Decision
from nemo_resume.planning.resume_plan import MODE_FRESH, MODE_RESUME, MODE_WEIGHTS, ResumePlan, keeps_saved_state
from nemo_resume.schedules.cosine import CosineState
from nemo_resume.schedules.request import ScheduleRequest, is_real, is_whole
from nemo_resume.schedules.scheduler_module import scheduler_module

FORMAT = "nemo-resume-plan"
VERSION = 1
MODES = (MODE_FRESH, MODE_RESUME, MODE_WEIGHTS)
REWRITE = "write a current one with `nemo-resume plan RUN ... -o FILE` (the flags you planned with)"

REQUIRED = ("format", "version", "mode", "request")
# Written for the reader and not read back: derived from the rest (ok, schedule), naming a checkpoint the
# plan did not take (weights_only_option), or what the launch builds beyond the schedule (train_samples).
REPORT_ONLY = ("ok", "schedule", "weights_only_option", "train_samples")
FIELDS = (
    *REQUIRED, "checkpoint", "why", "skipped", "policy", "resume_step", "jump", "max_jump", "notes", "restored",
    "target", "problems", *REPORT_ONLY,
)
# A CosineState as the file holds it (``restored`` of a cosine resume, ``target``): its to_json() and the step.
_COSINE_REQUIRED = ("base_lrs", "min_lr", "max_steps")
_COSINE_FIELDS = (*_COSINE_REQUIRED, "warmup_steps", "constant_steps", "decay_steps", "last_epoch")


def plan_to_json(plan: ResumePlan) -> dict[str, Any]:
    """The plan file's document for ``plan`` (every key of :data:`FIELDS`)."""
    d, weights_only = plan.decision, plan.choice.weights_only
    return {
        "format": FORMAT,
        "version": VERSION,
        "ok": plan.ok,
        "mode": plan.mode,
        "checkpoint": plan.checkpoint,
        "why": plan.choice.why,
        "skipped": [{"path": s.path, "reason": s.reason} for s in plan.choice.skipped],
        "weights_only_option": str(weights_only.state.location.path) if weights_only else None,
        "policy": d.policy if d else None,
        "resume_step": plan.resume_step,
        "jump": (d.jump if math.isfinite(d.jump) else None) if d else 0.0,
        "max_jump": plan.max_jump,
        "notes": list(d.notes) if d else [],
        "request": plan.request.to_json(),
        "restored": plan.restored_state,
        "target": {**plan.target.to_json(), "last_epoch": plan.resume_step} if plan.target else None,
        "schedule": [[step, lrs] for step, lrs in plan.schedule_points()],
        "problems": [p.to_json() for p in plan.problems],
        "train_samples": plan.train_samples,
    }


def plan_from_json(obj: Any, where: str) -> ResumePlan:
    """The plan :func:`plan_to_json` wrote; ``where`` (``--plan FILE``) starts every error.

    Everything the check uses comes back: the mode, the request as given (a ``keep`` plan may carry one NeMo
    would refuse), the step, the restored scheduler state, the policy with its target and jump limit, and the
    problems, so a plan the planner refused stays refused. The choice comes back as text (``why``,
    ``skipped``); :data:`REPORT_ONLY` fields are not read. A hand-written file needs only :data:`REQUIRED`
    (a resume also ``resume_step``, ``restored`` and, to rewrite the schedule, ``policy`` and ``target``).

    Raises:
        NemoResumeError: not a plan file, another version, or a field missing, unknown or mistyped.
    """
    if not isinstance(obj, dict):
        raise NemoResumeError(f"{where}: expected a JSON object (a plan file), got {type(obj).__name__}; {REWRITE}")
    if obj.get("format") != FORMAT:
        raise NemoResumeError(f'{where}: not a nemo-resume plan file (no "format": "{FORMAT}"); {REWRITE}')
    version = obj.get("version")
    if not (is_whole(version) and version == VERSION):
        raise NemoResumeError(
            f"{where}: plan file version {reprlib.repr(version)} is not one this nemo-resume reads ({VERSION}); {REWRITE}"
        )
    missing, unknown = [k for k in REQUIRED if k not in obj], sorted(set(obj) - set(FIELDS))
    if missing or unknown:
        what = f"missing {missing}" if missing else f"unknown field(s) {unknown}"
        raise NemoResumeError(f"{where}: {what}; a version {VERSION} plan file has {list(FIELDS)}")
    mode = _get(obj, "mode", where, lambda v: v in MODES, f"one of {list(MODES)}")
    request = ScheduleRequest.from_json(obj["request"], where=f"{where}: request", checked=False)
    try:
        scheduler_module(request)  # a name with no faithful NeMo module: refused before the check imports torch
    except NemoResumeError as exc:
        raise NemoResumeError(f"{where}: request: {exc}") from None
    step = _get(obj, "resume_step", where, _count, "a whole number >= 0", 0)
    restored = _get(obj, "restored", where, lambda v: v is None or isinstance(v, dict), "an object or null")
    policy = _get(obj, "policy", where, lambda v: v is None or v in POLICIES, f"null or one of {list(POLICIES)}")
    target = None if obj.get("target") is None else _cosine(obj["target"], where, "target", step)
    if mode != MODE_RESUME and (restored is not None or target is not None):
        raise NemoResumeError(f"{where}: restored and target belong to mode {MODE_RESUME!r}, not {mode!r}; set them to null")
    if target is not None and policy is None:
        raise NemoResumeError(f"{where}: a target needs the policy that chose it (policy)")
    saved = raw = None
    if restored is not None and keeps_saved_state(request, restored):
        raw = restored
    elif restored is not None:
        saved = _cosine(restored, where, "restored", step)
    decision = None if policy is None else Decision(policy, target, jump=_jump(obj, where), notes=_notes(obj, where))
    return ResumePlan(
        request=request,
        choice=Choice(None, _get(obj, "why", where, _text, "a string", ""), _skipped(obj, where)),
        mode=mode,
        checkpoint=_get(obj, "checkpoint", where, lambda v: v is None or _text(v), "a path or null"),
        resume_step=step,
        saved=saved,
        decision=decision,
        problems=tuple(_problem(p, where) for p in _get(obj, "problems", where, _list, "a list", [])),
        restored=raw,
        max_jump=_get(obj, "max_jump", where, _fraction, "a finite number >= 0", MAX_LR_JUMP),
    )


def _text(v: Any) -> bool:
    return isinstance(v, str)


def _list(v: Any) -> bool:
    return isinstance(v, list)


def _count(v: Any) -> bool:
    return is_whole(v) and v >= 0


def _fraction(v: Any) -> bool:
    return is_real(v) and math.isfinite(v) and v >= 0


def _get(obj: dict[str, Any], key: str, where: str, fits: Callable[[Any], bool], shape: str, default: Any = None) -> Any:
    value = obj.get(key, default)
    if not fits(value):
        raise NemoResumeError(f"{where}: {key}={reprlib.repr(value)} must be {shape}")
    return value


def _jump(obj: dict[str, Any], where: str) -> float:
    jump = _get(obj, "jump", where, lambda v: v is None or _fraction(v), "a number >= 0, or null (infinite)", 0.0)
    return math.inf if jump is None else float(jump)


def _notes(obj: dict[str, Any], where: str) -> tuple[str, ...]:
    return tuple(_get(obj, "notes", where, lambda v: _list(v) and all(map(_text, v)), "a list of strings", []))


def _skipped(obj: dict[str, Any], where: str) -> tuple[Skipped, ...]:
    def fits(v: Any) -> bool:
        return _list(v) and all(isinstance(s, dict) and set(s) == {"path", "reason"} and all(map(_text, s.values())) for s in v)

    return tuple(Skipped(s["path"], s["reason"]) for s in _get(obj, "skipped", where, fits, 'a list of {"path", "reason"}', []))


def _problem(obj: Any, where: str) -> Problem:
    severities = get_args(Severity)
    if not (
        isinstance(obj, dict) and {"code", "severity", "message"} <= set(obj) <= {"code", "severity", "message", "step"}
        and _text(obj["code"]) and obj["severity"] in severities and _text(obj["message"])
        and (obj.get("step") is None or is_whole(obj["step"]))
    ):
        raise NemoResumeError(
            f"{where}: problems: {reprlib.repr(obj)} must be {{code, severity (one of {list(severities)}), message, step}}"
        )
    return Problem(obj["code"], obj["severity"], obj["message"], obj.get("step"))


def _cosine(obj: Any, where: str, name: str, step: int) -> CosineState:
    """``{**state.to_json(), "last_epoch": step}`` back to the state; ``last_epoch`` may be left out."""
    if not isinstance(obj, dict) or set(obj) - set(_COSINE_FIELDS) or any(k not in obj for k in _COSINE_REQUIRED):
        raise NemoResumeError(
            f"{where}: {name} needs {', '.join(_COSINE_REQUIRED)} (optional: {', '.join(_COSINE_FIELDS[3:])}), "
            f"got {reprlib.repr(obj)}"
        )
    at = f"{where}: {name}"
    base = _get(obj, "base_lrs", at, lambda v: _list(v) and v and all(map(is_real, v)), "a non-empty list of numbers")
    counts = {k: _get(obj, k, at, _count, "a whole number >= 0", 0) for k in ("max_steps", "warmup_steps", "constant_steps")}
    _get(obj, "last_epoch", at, lambda v: v is None or (is_whole(v) and v == step), f"the resume_step ({step}) or left out")
    return CosineState(
        base_lrs=tuple(float(b) for b in base),
        min_lr=float(_get(obj, "min_lr", at, is_real, "a number")),
        decay_steps=_get(obj, "decay_steps", at, lambda v: v is None or is_whole(v), "a whole number or null"),
        **counts,
    )
