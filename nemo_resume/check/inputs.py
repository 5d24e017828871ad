"""What the check is given: a schedule as NeMo takes it, a ``--plan`` file, a resume point; each refused
with one line when NeMo could not even start from it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nemo_resume.check.result import ResumePoint
from nemo_resume.errors import NemoResumeError
from nemo_resume.schedules.cosine import CosineState
from nemo_resume.schedules.request import ScheduleRequest, is_real, is_whole

# Scheduler fields that a checkpoint restores and the check accepts in ResumePoint.restored.
_INT_FIELDS = ("max_steps", "warmup_steps", "constant_steps", "decay_steps", "last_epoch", "_step_count")
_FLOAT_FIELDS = ("min_lr",)
_LIST_FIELDS = ("base_lrs", "_last_lr")
# A plan file's "request": the cosine fields of ScheduleRequest.
_REQUEST_FIELDS = {"lr", "min_lr", "max_steps", "warmup_steps", "constant_steps", "lr_mults"}


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


def load_plan(path: str | Path) -> tuple[CosineState, ResumePoint]:
    """Read ``{"resume_step", "restored", "target", "request"}`` (the ``--plan`` file).

    ``request`` holds ``ScheduleRequest`` fields (``lr``, ``min_lr``, ``max_steps``,
    ``warmup_steps``, ``constant_steps``, ``lr_mults``), read without ``ScheduleRequest``'s
    refusals; ``target`` holds ``CosineState`` fields or is null.

    Raises:
        NemoResumeError: the file is unreadable, not JSON, or a field is missing or mistyped.
    """
    try:
        data = json.loads(Path(path).read_text())
    except OSError as exc:
        raise NemoResumeError(f"--plan {path}: cannot read ({exc.strerror or exc})") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise NemoResumeError(f"--plan {path}: not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise NemoResumeError(f"--plan {path}: expected a JSON object, got {type(data).__name__}")
    for key in ("resume_step", "restored", "request"):
        if key not in data:
            raise NemoResumeError(f"--plan {path}: missing key {key!r}")
    req = data["request"]
    if not isinstance(req, dict) or any(k not in req for k in ("lr", "min_lr", "max_steps")):
        raise NemoResumeError(f"--plan {path}: 'request' must be an object with lr, min_lr and max_steps")
    unknown = set(req) - _REQUEST_FIELDS
    if unknown:
        raise NemoResumeError(f"--plan {path}: unknown request field(s) {sorted(unknown)}")
    mults = req.get("lr_mults", [])
    if not isinstance(mults, list):
        raise NemoResumeError(f"--plan {path}: request.lr_mults must be a list")
    request = unchecked_request(
        req["lr"], req["min_lr"], req["max_steps"], req.get("warmup_steps", 0), req.get("constant_steps", 0), mults
    )
    target = data.get("target")
    if target is not None:
        target = _cosine_state_from_json(target, f"--plan {path}: target")
    if not isinstance(data["restored"], dict):
        raise NemoResumeError(f"--plan {path}: 'restored' must be an object (a scheduler state_dict)")
    return request, ResumePoint(step=data["resume_step"], restored=data["restored"], target=target)


def _cosine_state_from_json(obj: Any, where: str) -> CosineState:
    if not isinstance(obj, dict):
        raise NemoResumeError(f"{where} must be an object with CosineState fields or null")
    allowed = {"base_lrs", "min_lr", "max_steps", "warmup_steps", "constant_steps", "decay_steps"}
    if set(obj) - allowed or not {"base_lrs", "min_lr", "max_steps"} <= set(obj):
        raise NemoResumeError(f"{where} needs base_lrs, min_lr, max_steps (optional warmup_steps, constant_steps, decay_steps)")
    base = obj["base_lrs"]
    if not isinstance(base, list) or not base or not all(is_real(b) for b in base):
        raise NemoResumeError(f"{where}.base_lrs must be a non-empty list of numbers")
    if not is_real(obj["min_lr"]):
        raise NemoResumeError(f"{where}.min_lr must be a number")
    ints = {k: obj.get(k, 0) for k in ("max_steps", "warmup_steps", "constant_steps")}
    for k, v in ints.items():
        if not is_whole(v) or v < 0:
            raise NemoResumeError(f"{where}.{k}={v} must be a whole number >= 0")
    decay = obj.get("decay_steps")
    if decay is not None and not is_whole(decay):
        raise NemoResumeError(f"{where}.decay_steps={decay} must be a whole number or null")
    return CosineState(
        base_lrs=tuple(float(b) for b in base), min_lr=float(obj["min_lr"]), decay_steps=decay, **ints
    )


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

