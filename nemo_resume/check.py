"""Check an LR schedule with NeMo's own scheduler before a run, or a resume, uses it.

The truth is NeMo's ``CosineAnnealingScheduler`` built exactly as a recipe builds it, on a
throw-away optimizer whose param groups match the request; for a resume the checkpoint's
scheduler state is loaded into it the way Lightning does (``load_state_dict``) and the plan
is written in with :func:`nemo_resume.apply.apply_schedule`, the call the resume callback makes.

Stepping NeMo one step at a time is too slow for million-step horizons, so NeMo's ``get_lr``
is probed at chosen steps instead: every step where ``get_lr`` changes branch (warmup end,
decay end, constant start, ``max_steps``) and its neighbours, the resume step, and a dense
grid. Every branch of ``get_lr`` either raises at each of its steps or at none (the raise
conditions do not depend on the step inside a branch), so probing the first step of every
branch finds the exact step at which a naive run would first fail.
"""

from __future__ import annotations

import json
import math
import re
import traceback
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from nemo_resume.errors import NemoResumeError
from nemo_resume.request import ScheduleRequest
from nemo_resume.schedule import CosineState, ScheduleFailure, first_failure, relative_jump

# Steps evaluated every one when the horizon is at most this long; above it, a grid.
DENSE_LIMIT = 5000
# Evenly spaced probes over a long horizon (plus every branch boundary and its neighbours).
GRID_POINTS = 4001
# How far either side of a boundary to probe: catches off-by-one behaviour at phase edges.
NEIGHBOURS = 2
# Default largest relative LR change allowed at the resume step (the --max-jump flag).
DEFAULT_MAX_JUMP = 0.01
# Tolerances: "LR at max_steps equals min_lr" and "group ratios kept" (float noise only).
END_REL_TOL = 1e-9
RATIO_REL_TOL = 1e-9
# Slack for "non-increasing" / "at or above min_lr": cosine arithmetic can wobble in the last bit.
FLOAT_SLACK = 1e-12

# What NeMo's CosineAnnealing raises: the "lower than the minimum learning rate" ValueError,
# bare asserts in the Megatron path, a ZeroDivisionError when a decay has length 0.
_NEMO_ERRORS = (ValueError, AssertionError, ArithmeticError)
# Scheduler fields that a checkpoint restores and the check accepts in ResumePoint.restored.
_INT_FIELDS = ("max_steps", "warmup_steps", "constant_steps", "decay_steps", "last_epoch", "_step_count")
_FLOAT_FIELDS = ("min_lr",)
_LIST_FIELDS = ("base_lrs", "_last_lr")

CheckName = Literal[
    "nemo_runs",
    "finite",
    "at_or_above_min_lr",
    "no_jump_at_resume",
    "warmup_rising",
    "decay_non_increasing",
    "ends_at_min_lr",
    "group_ratios_kept",
    "no_negative_phase",
    "decay_spans_training",
    # other NeMo schedulers (nemo_resume.schedules.module_check)
    "stages_as_requested",
    "schedule_spans_training",
]


@dataclass(frozen=True)
class ResumePoint:
    """Where a resume starts and what it restores.

    Attributes:
        step: the checkpoint's step (its scheduler ``last_epoch``); the resumed run computes
            LRs from ``step + 1`` on.
        restored: the checkpoint's scheduler ``state_dict`` fields (``base_lrs``, ``min_lr``,
            ``max_steps``, ``warmup_steps``, ``constant_steps``, ``decay_steps``, ``last_epoch``,
            optionally ``_last_lr``; the keys of ``SchedulerState.to_json()``). Missing keys keep
            the config's values, as ``__dict__.update`` does.
        target: the planned schedule written in with ``apply_schedule``; None is NeMo's
            default behaviour: the restored schedule simply continues.
    """

    step: int
    restored: Mapping[str, Any]
    target: CosineState | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "restored": dict(self.restored),
            "target": self.target.to_json() if self.target else None,
        }


@dataclass(frozen=True)
class Check:
    """One named check. ``ok`` is None when it could not run (NeMo raised before it mattered)."""

    name: CheckName
    ok: bool | None
    step: int | None
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "step": self.step, "reason": self.reason}


@dataclass(frozen=True)
class StepFailure:
    """The first step at which NeMo's scheduler raises, and what it raised.

    ``when`` is ``"build"`` when the constructor raised (its initial step computes step 0's LR,
    so even a resume fails there: the config's values are used before the restore),
    ``"apply"`` when ``apply_schedule`` refused the plan, else ``"step"``.
    """

    step: int
    error: str
    when: Literal["build", "apply", "step"] = "step"

    def to_json(self) -> dict[str, Any]:
        return {"step": self.step, "error": self.error, "when": self.when}


@dataclass(frozen=True)
class Curve:
    """NeMo's LRs at the probed steps, up to (not including) the first step that raises.

    Attributes:
        label: ``"schedule"`` (a fresh run), ``"restored"`` (the checkpoint's schedule, before
            the plan; from step 0) or ``"planned"`` (after ``apply_schedule``; from the resume step).
        steps: probed steps, increasing (int64).
        lrs: one row per step, one column per param group (float64).
        failure: where this curve's scheduler raised, if it did within the horizon.
    """

    label: Literal["schedule", "restored", "planned"]
    steps: np.ndarray
    lrs: np.ndarray
    failure: StepFailure | None = None


@dataclass(frozen=True)
class Jump:
    """The LR change at the resume step: what the restored run had vs what the resumed run uses."""

    step: int
    before: tuple[float, ...] | None
    after: tuple[float, ...]
    relative: float | None

    def to_json(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "before": list(self.before) if self.before is not None else None,
            "after": list(self.after),
            "relative": self.relative,
        }


@dataclass(frozen=True)
class CheckResult:
    """Everything the check found; ``to_json()`` is the ``--json`` output.

    Attributes:
        request: the schedule the config asks for (what NeMo builds the scheduler from).
        resume: the resume point, or None for a fresh run.
        schedule: the fields of the scheduler that actually runs (after restore and plan).
        start, end: the checked horizon (``0`` or ``resume step + 1``, to the trainer's ``max_steps``).
        checks: every named check, in a fixed order.
        failure: the first step NeMo raises at, or None.
        key_steps: ``(step, label, lrs or None where NeMo raises)``, in step order.
        curves: the probed LRs, for plots (see :mod:`nemo_resume.plot`).
        jump: the LR change at the resume step (resumes only).
        evaluated_steps: how many distinct steps NeMo's ``get_lr`` was probed at (live curve).
        notes: hints that are not checks (e.g. the fix ``ScheduleRequest`` suggests).
        scheduler: which scheduler was checked, for reports (``NeMo's CosineAnnealing``).
    """

    request: CosineState | ScheduleRequest
    resume: ResumePoint | None
    schedule: CosineState | None
    start: int
    end: int
    checks: tuple[Check, ...]
    failure: StepFailure | None
    key_steps: tuple[tuple[int, str, tuple[float, ...] | None], ...]
    curves: tuple[Curve, ...]
    jump: Jump | None = None
    evaluated_steps: int = 0
    notes: tuple[str, ...] = field(default=())
    scheduler: str = "NeMo's CosineAnnealing"

    @property
    def ok(self) -> bool:
        return all(c.ok is not False for c in self.checks)

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    @property
    def first_problem(self) -> Check | None:
        """The failing check with the earliest step (NeMo's own failure first on a tie)."""
        failed = [c for c in self.checks if c.ok is False]
        return min(failed, key=lambda c: c.step if c.step is not None else -1) if failed else None

    def curve(self, label: str) -> Curve | None:
        return next((c for c in self.curves if c.label == label), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checks": [c.to_json() for c in self.checks],
            "key_steps": [[s, list(lrs) if lrs is not None else None] for s, _, lrs in self.key_steps],
            "key_step_labels": [[s, label] for s, label, _ in self.key_steps],
            "failure": self.failure.to_json() if self.failure else None,
            "request": self.request.to_json(),
            "schedule": self.schedule.to_json() if self.schedule else None,
            "horizon": {"start": self.start, "end": self.end},
            "resume": self.resume.to_json() if self.resume else None,
            "jump": self.jump.to_json() if self.jump else None,
            "evaluated_steps": self.evaluated_steps,
            "notes": list(self.notes),
            "scheduler": self.scheduler,
        }


# --------------------------------------------------------------------------------------------
# Inputs


def unchecked_request(
    lr: float,
    min_lr: float,
    max_steps: int,
    warmup_steps: int = 0,
    constant_steps: int = 0,
    lr_mults: Sequence[float] = (),
) -> CosineState:
    """A recipe's schedule options as NeMo takes them, refused only where NeMo could not even start.

    Unlike :class:`ScheduleRequest`, a schedule NeMo would fail on (``lr < min_lr``, negative
    decay, ``constant_steps > 0`` with several groups) is accepted: finding where it fails is
    the check's job.

    Raises:
        NemoResumeError: a negative or non-integer step count, an LR that is not a finite
            number >= 0, a multiplier that is not a finite number > 0.
    """
    for name, v in (("lr", lr), ("min_lr", min_lr)):
        if not _is_real(v) or not math.isfinite(v) or v < 0:
            raise NemoResumeError(f"{name}={v} must be a finite number >= 0")
    for name, v in (("max_steps", max_steps), ("warmup_steps", warmup_steps), ("constant_steps", constant_steps)):
        if not _is_int(v) or v < 0:
            raise NemoResumeError(f"{name}={v} must be a whole number >= 0")
    if max_steps < 1:
        raise NemoResumeError(f"max_steps={max_steps} must be at least 1")
    for mult in lr_mults:
        if not _is_real(mult) or not math.isfinite(mult) or mult <= 0:
            raise NemoResumeError(f"lr multiplier {mult} must be a finite number > 0")
    return CosineState(
        base_lrs=(float(lr), *(float(lr) * m for m in lr_mults)),
        min_lr=float(min_lr),
        max_steps=max_steps,
        warmup_steps=warmup_steps,
        constant_steps=constant_steps,
    )


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
    unknown = set(req) - {"lr", "min_lr", "max_steps", "warmup_steps", "constant_steps", "lr_mults"}
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
    if not isinstance(base, list) or not base or not all(_is_real(b) for b in base):
        raise NemoResumeError(f"{where}.base_lrs must be a non-empty list of numbers")
    if not _is_real(obj["min_lr"]):
        raise NemoResumeError(f"{where}.min_lr must be a number")
    ints = {k: obj.get(k, 0) for k in ("max_steps", "warmup_steps", "constant_steps")}
    for k, v in ints.items():
        if not _is_int(v) or v < 0:
            raise NemoResumeError(f"{where}.{k}={v} must be a whole number >= 0")
    decay = obj.get("decay_steps")
    if decay is not None and not _is_int(decay):
        raise NemoResumeError(f"{where}.decay_steps={decay} must be a whole number or null")
    return CosineState(
        base_lrs=tuple(float(b) for b in base), min_lr=float(obj["min_lr"]), decay_steps=decay, **ints
    )


def _validate(request: CosineState, resume: ResumePoint | None) -> None:
    if not request.base_lrs:
        raise NemoResumeError("the request has no param group LRs")
    if request.decay_steps is not None:
        raise NemoResumeError(
            f"request decay_steps={request.decay_steps}: NeMo computes it from max_steps, warmup_steps and "
            "constant_steps; leave it None"
        )
    if resume is None:
        return
    groups = len(request.base_lrs)
    if not _is_int(resume.step) or resume.step < 0:
        raise NemoResumeError(f"resume step {resume.step} must be a whole number >= 0")
    if resume.step >= request.max_steps:
        raise NemoResumeError(
            f"resume step {resume.step} is at or past max_steps ({request.max_steps}): nothing left to train; "
            "raise max_steps"
        )
    for key, v in resume.restored.items():
        ok = (
            (key in _INT_FIELDS and _is_int(v))
            or (key in _FLOAT_FIELDS and _is_real(v))
            or (key in _LIST_FIELDS and isinstance(v, list) and all(_is_real(x) for x in v))
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
        raise NemoResumeError(
            f"the plan has {len(resume.target.base_lrs)} param group LR(s) but the request has {groups}"
        )


# --------------------------------------------------------------------------------------------
# NeMo's scheduler


def _build(request: CosineState) -> Any:
    """NeMo's ``CosineAnnealingScheduler(...).scheduler(model=None, optimizer=...)``, as a recipe builds it.

    Raises:
        ValueError, AssertionError, ArithmeticError: NeMo's own, from the constructor's initial step.
    """
    from nemo.lightning.pytorch.optim.lr_scheduler import CosineAnnealingScheduler

    module = CosineAnnealingScheduler(
        max_steps=request.max_steps,
        warmup_steps=request.warmup_steps,
        constant_steps=request.constant_steps,
        min_lr=request.min_lr,
    )
    return scheduler_on_groups(module, request.base_lrs)


def scheduler_on_groups(module: Any, base_lrs: Sequence[float]) -> Any:
    """``module.scheduler(model=None, optimizer=...)``'s torch scheduler, on an optimizer with one group per LR.

    Raises:
        ValueError, AssertionError, ArithmeticError: NeMo's own, from the constructor's initial step.
    """
    import torch

    # One tiny parameter per group: the scheduler reads only the groups' "lr".
    params = [torch.nn.Parameter(torch.zeros(1)) for _ in base_lrs]
    optimizer = torch.optim.SGD([{"params": [p], "lr": lr} for p, lr in zip(params, base_lrs)], lr=base_lrs[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return module.scheduler(model=None, optimizer=optimizer)["lr_scheduler"]["scheduler"]


def _restore(scheduler: Any, resume: ResumePoint) -> None:
    """What Lightning does after the strategy built the scheduler: ``load_state_dict`` (``__dict__.update``)."""
    state = {k: (list(v) if isinstance(v, list) else v) for k, v in resume.restored.items()}
    state.setdefault("last_epoch", resume.step)
    scheduler.load_state_dict(state)


def _fields(scheduler: Any) -> CosineState:
    return CosineState(
        base_lrs=tuple(float(b) for b in scheduler.base_lrs),
        min_lr=float(scheduler.min_lr),
        max_steps=int(scheduler.max_steps),
        warmup_steps=int(scheduler.warmup_steps),
        constant_steps=int(scheduler.constant_steps),
        decay_steps=int(scheduler.decay_steps),
    )


@contextmanager
def _probing(scheduler: Any) -> Iterator[Any]:
    """Call NeMo's ``get_lr`` at any step; put ``last_epoch`` and the step flag back afterwards."""
    saved = scheduler.last_epoch, scheduler._get_lr_called_within_step

    def lr_at_step(step: int) -> list[float]:
        scheduler.last_epoch = step
        # get_lr warns unless called from step(); we are standing in for step().
        scheduler._get_lr_called_within_step = True
        return [float(x) for x in scheduler.get_lr()]

    try:
        yield lr_at_step
    finally:
        scheduler.last_epoch, scheduler._get_lr_called_within_step = saved


def _describe(exc: BaseException) -> str:
    """NeMo's error in one line; a bare assert gets its source line, an object repr its class name."""
    text = re.sub(r"<([\w.]+) object at 0x[0-9a-fA-F]+>", lambda m: m.group(1).rsplit(".", 1)[-1], str(exc))
    if text:
        return f"{type(exc).__name__}: {text}"
    frames = traceback.extract_tb(exc.__traceback__)
    if frames:
        last = frames[-1]
        return f"{type(exc).__name__} (bare `{(last.line or '').strip()}` in {last.name}, {Path(last.filename).name}:{last.lineno})"
    return type(exc).__name__


def _evaluate(scheduler: Any, steps: Sequence[int], label: str) -> Curve:
    ok_steps: list[int] = []
    rows: list[list[float]] = []
    failure = None
    with _probing(scheduler) as lr_at_step:
        for s in steps:
            try:
                rows.append(lr_at_step(s))
            except _NEMO_ERRORS as exc:
                failure = StepFailure(s, _describe(exc))
                break
            ok_steps.append(s)
    n_groups = len(scheduler.optimizer.param_groups)
    lrs = np.asarray(rows, dtype=np.float64).reshape(len(rows), n_groups)
    return Curve(label, np.asarray(ok_steps, dtype=np.int64), lrs, failure)  # type: ignore[arg-type]


def _prepend(curve: Curve, step: int, lrs: tuple[float, ...] | None, label: str) -> Curve:
    if lrs is None:
        return replace(curve, label=label)
    return replace(
        curve,
        label=label,
        steps=np.concatenate([[step], curve.steps]).astype(np.int64),
        lrs=np.vstack([np.asarray(lrs, dtype=np.float64)[None, :], curve.lrs]),
    )


def _lr_or_none(scheduler: Any, step: int) -> tuple[float, ...] | None:
    with _probing(scheduler) as lr_at_step:
        try:
            return tuple(lr_at_step(step))
        except _NEMO_ERRORS:
            return None


def _probe_steps(s: CosineState, start: int, end: int, extra: Sequence[int] = ()) -> list[int]:
    """Every step where ``get_lr`` changes branch (and neighbours), ``extra``, and a grid or every step."""
    w, d, m = s.warmup_steps, s.decay, s.max_steps
    marks = {w, w + 1, w + d, w + d + 1, m, m + 1, *extra}
    if d > 0:
        marks.add(w + d // 2)
    return probe_points(marks, start, end)


def probe_points(marks: set[int], start: int, end: int) -> list[int]:
    """``marks`` (phase boundaries) and their neighbours, ``start``, ``end``, and every step or a grid between."""
    marks = {*marks, start, end}
    points = {x + k for x in marks for k in range(-NEIGHBOURS, NEIGHBOURS + 1)}
    if end - start + 1 <= DENSE_LIMIT:
        points.update(range(start, end + 1))
    else:
        points.update(int(x) for x in np.linspace(start, end, GRID_POINTS).round())
    return sorted(p for p in points if start <= p <= end)


# --------------------------------------------------------------------------------------------
# The check


def check_schedule(
    request: ScheduleRequest | CosineState,
    *,
    resume: ResumePoint | None = None,
    max_jump: float = DEFAULT_MAX_JUMP,
) -> CheckResult:
    """Run the schedule through NeMo's real scheduler over the whole horizon and check it.

    Args:
        request: the config's schedule. A :class:`ScheduleRequest` is already validated (one of
            another schedule than cosine is checked by :mod:`nemo_resume.schedules.module_check`); pass a
            :class:`CosineState` (e.g. from :func:`unchecked_request`) to check values that
            ``ScheduleRequest`` refuses, such as ``lr < min_lr`` (its ``decay_steps`` must be None).
        resume: a resume point; None checks a fresh run from step 0.
        max_jump: the largest relative LR change allowed at the resume step.

    Returns:
        The checks, NeMo's first failure, key steps and the probed curves.

    Raises:
        NemoResumeError: inconsistent input (group counts, a resume step past ``max_steps``,
            a restored field that is not a number).
    """
    if isinstance(request, ScheduleRequest) and not request.is_cosine:
        from nemo_resume.schedules.module_check import check_module_schedule

        return check_module_schedule(request, resume=resume, max_jump=max_jump)
    state = request.cosine_state() if isinstance(request, ScheduleRequest) else request
    _validate(state, resume)
    if not _is_real(max_jump) or not max_jump >= 0:
        raise NemoResumeError(f"--max-jump {max_jump} must be a number >= 0")
    # On a resume the config only builds the scheduler; the checkpoint (or the plan) decides the rest.
    notes = _request_notes(state) if resume is None else []
    start = 0 if resume is None else resume.step + 1
    end = state.max_steps
    try:
        live = _build(state)
    except _NEMO_ERRORS as exc:
        failure = StepFailure(0, _describe(exc) + " (while building the scheduler from the config)", "build")
        return _failed_early(state, resume, failure, start, end, notes)

    jump = None
    curves: list[Curve] = []
    if resume is not None:
        _restore(live, resume)
        restored = live
        if resume.target is not None:
            restored = _build(state)  # built fine once already; this copy keeps "before the plan"
            _restore(restored, resume)
            from nemo_resume.apply import apply_schedule

            try:
                apply_schedule(live, resume.target, resume.step)
            except ValueError as exc:
                raise NemoResumeError(f"apply_schedule refused the plan: {exc}") from None
            except ScheduleFailure as exc:  # the plan itself fails at the resume step
                failure = StepFailure(resume.step, f"apply_schedule: {exc}", "apply")
                return _failed_early(state, resume, failure, start, end, notes)
        before = _lr_or_none(restored, resume.step)
        if before is None and isinstance(resume.restored.get("_last_lr"), list):
            before = tuple(float(x) for x in resume.restored["_last_lr"])
        after = _lr_or_none(live, resume.step) if resume.target is not None else before
        jump = Jump(resume.step, before, after, relative_jump(before, after) if before is not None else None) if after is not None else None
        curves.append(_evaluate(restored, _probe_steps(_fields(restored), 0, end, (resume.step,)), "restored"))
        if resume.target is None:
            notes.append("no plan: Lightning's restore wins, so the checkpoint's schedule continues")

    fields = _fields(live)
    main = _evaluate(live, _probe_steps(fields, start, end, () if resume is None else (resume.step,)), "schedule")
    if resume is not None:
        # The resumed run computes LRs from resume step + 1; its curve also shows the LR it starts with.
        main = _prepend(main, resume.step, jump.after if jump else None, "planned")
    if resume is None or resume.target is not None:
        curves.append(main)
    notes += _mirror_note(fields, start, end, main.failure)
    checks = _run_checks(state, resume, live, fields, main, start, end, jump, max_jump)
    return CheckResult(
        request=state,
        resume=resume,
        schedule=fields,
        start=start,
        end=end,
        checks=checks,
        failure=main.failure,
        key_steps=_key_steps(live, fields, resume, start, end, main.failure),
        curves=tuple(curves),
        jump=jump,
        evaluated_steps=len(main.steps) + (main.failure is not None),
        notes=tuple(notes),
    )


def _run_checks(
    request: CosineState,
    resume: ResumePoint | None,
    live: Any,
    f: CosineState,
    curve: Curve,
    start: int,
    end: int,
    jump: Jump | None,
    max_jump: float,
) -> tuple[Check, ...]:
    # The curve may include the resume step itself (the LR the resumed run starts with).
    steps, lrs = curve.steps, curve.lrs
    in_range = steps >= start
    upto = f"up to step {curve.failure.step - 1}" if curve.failure else f"from step {start} to {end}"
    checks = [
        _check_nemo_runs(curve.failure, start, end),
        _check_finite(steps[in_range], lrs[in_range], upto),
        _check_min_lr(steps[in_range], lrs[in_range], f, upto),
        _check_jump(resume, jump, max_jump),
        _check_warmup(steps, lrs, f, upto),
        _check_decay(steps, lrs, f, upto),
        _check_end(curve, f, end),
        _check_ratios(request, resume, live, f, curve, start, upto),
        _check_negative_phase(f, resume, start, end),
        _check_spans(f, resume, end),
    ]
    return tuple(checks)


def _check_nemo_runs(failure: StepFailure | None, start: int, end: int, scheduler: str = "NeMo's CosineAnnealing") -> Check:
    if failure is None:
        return Check("nemo_runs", True, None, f"{scheduler} computes an LR at every step from {start} to {end}")
    who = "the plan" if failure.when == "apply" else scheduler
    return Check("nemo_runs", False, failure.step, f"{who} raises at step {failure.step}: {failure.error}")


def _check_finite(steps: np.ndarray, lrs: np.ndarray, upto: str) -> Check:
    bad = ~np.isfinite(lrs).all(axis=1)
    if bad.any():
        i = int(np.argmax(bad))
        return Check("finite", False, int(steps[i]), f"LR is {lrs[i].tolist()} at step {int(steps[i])}")
    return Check("finite", True, None, f"every LR is finite {upto}")


def _check_min_lr(steps: np.ndarray, lrs: np.ndarray, f: CosineState, upto: str) -> Check:
    after = steps > f.warmup_steps if f.warmup_steps > 0 else np.ones_like(steps, dtype=bool)
    floor = f.min_lr - FLOAT_SLACK * max(abs(f.min_lr), 1e-300)
    below = after[:, None] & (lrs < floor)
    if below.any():
        i, g = map(int, np.argwhere(below)[0])
        return Check(
            "at_or_above_min_lr", False, int(steps[i]),
            f"group {g} LR {lrs[i, g]:.6g} < min_lr {f.min_lr:.6g} at step {int(steps[i])}",
        )
    return Check("at_or_above_min_lr", True, None, f"every group at or above min_lr {f.min_lr:.6g} after warmup, {upto}")


def _check_jump(resume: ResumePoint | None, jump: Jump | None, max_jump: float) -> Check:
    if resume is None:
        return Check("no_jump_at_resume", True, None, "not a resume")
    if jump is None or jump.before is None:
        return Check("no_jump_at_resume", None, resume.step, f"no LR to compare at the resume step {resume.step}")
    pct = "inf" if jump.relative is None or math.isinf(jump.relative) else f"{100 * jump.relative:.4g}%"
    text = (
        f"LR at resume step {jump.step}: {_fmt(jump.before)} restored -> {_fmt(jump.after)} "
        f"{'planned' if resume.target else 'continuing'} ({pct} change, limit {100 * max_jump:g}%)"
    )
    ok = jump.relative is not None and jump.relative <= max_jump
    return Check("no_jump_at_resume", ok, None if ok else jump.step, text)


def _check_warmup(steps: np.ndarray, lrs: np.ndarray, f: CosineState, upto: str) -> Check:
    w = f.warmup_steps
    if w <= 0:
        return Check("warmup_rising", True, None, "no warmup")
    mask = steps <= w
    s, v = steps[mask], lrs[mask]
    if len(s) < 2:
        return Check("warmup_rising", True, None, "warmup is over before the checked range")
    bad = ~(v[1:] > v[:-1]).all(axis=1)
    if bad.any():
        i = int(np.argmax(bad)) + 1
        return Check(
            "warmup_rising", False, int(s[i]),
            f"warmup LR does not rise from step {int(s[i - 1])} ({_fmt(v[i - 1])}) to {int(s[i])} ({_fmt(v[i])})",
        )
    return Check("warmup_rising", True, None, f"warmup LR rises to step {min(w, int(s[-1]))}")


def _check_decay(steps: np.ndarray, lrs: np.ndarray, f: CosineState, upto: str) -> Check:
    mask = steps >= f.warmup_steps
    s, v = steps[mask], lrs[mask]
    if len(s) < 2:
        return Check("decay_non_increasing", True, None, "no decay in the checked range")
    bad = (v[1:] > v[:-1] * (1 + FLOAT_SLACK) + 1e-300).any(axis=1)
    if bad.any():
        i = int(np.argmax(bad)) + 1
        return Check(
            "decay_non_increasing", False, int(s[i]),
            f"LR rises after warmup, from {_fmt(v[i - 1])} at step {int(s[i - 1])} to {_fmt(v[i])} at step {int(s[i])}",
        )
    return Check("decay_non_increasing", True, None, f"LR never rises after warmup, {upto}")


def _check_end(curve: Curve, f: CosineState, end: int) -> Check:
    if curve.failure is not None and curve.failure.step <= end:
        return Check("ends_at_min_lr", None, end, f"step {end} is not reached: NeMo raises at step {curve.failure.step}")
    lrs = curve.lrs[curve.steps == end]
    last = lrs[0]
    off = [g for g, x in enumerate(last) if not math.isclose(x, f.min_lr, rel_tol=END_REL_TOL, abs_tol=0.0)]
    if off:
        return Check(
            "ends_at_min_lr", False, end,
            f"LR at max_steps ({end}) is {_fmt(last)}, not min_lr {f.min_lr:.6g} (group(s) {off})",
        )
    return Check("ends_at_min_lr", True, None, f"LR at max_steps ({end}) equals min_lr {f.min_lr:.6g}")


def _check_ratios(
    request: CosineState, resume: ResumePoint | None, live: Any, f: CosineState, curve: Curve, start: int, upto: str
) -> Check:
    """Each group's LR must be the one NeMo gives that group alone (catches the constant_steps collapse)."""
    n = len(request.base_lrs)
    if n == 1:
        return Check("group_ratios_kept", True, None, "one param group")
    want = [b / request.base_lrs[0] if request.base_lrs[0] else math.nan for b in request.base_lrs]
    have = [b / f.base_lrs[0] if f.base_lrs[0] else math.nan for b in f.base_lrs]
    if not all(math.isclose(a, b, rel_tol=RATIO_REL_TOL) for a, b in zip(want, have)):
        source = "the plan" if resume and resume.target else "the checkpoint"
        return Check(
            "group_ratios_kept", False, start,
            f"{source}'s base LRs {_fmt(f.base_lrs)} have ratios {_fmt(have)} to group 0; the request asks {_fmt(want)}",
        )
    mask = curve.steps >= start
    steps, lrs = curve.steps[mask], curve.lrs[mask]
    for g in range(1, n):
        alone = _alone(live, f, g)
        with _probing(alone) as lr_at_step:
            for i, s in enumerate(steps):
                try:
                    own = lr_at_step(int(s))[0]
                except _NEMO_ERRORS:
                    break
                got = lrs[i, g]
                if not math.isclose(got, own, rel_tol=RATIO_REL_TOL, abs_tol=1e-300):
                    why = (
                        ": NeMo's constant_steps > 0 path gives every group group 0's LR"
                        if f.constant_steps > 0 and math.isclose(got, lrs[i, 0], rel_tol=RATIO_REL_TOL)
                        else ""
                    )
                    return Check(
                        "group_ratios_kept", False, int(s),
                        f"group {g} gets {got:.6g} at step {int(s)}, its own schedule (base {f.base_lrs[g]:.6g}) "
                        f"gives {own:.6g}{why}",
                    )
    return Check("group_ratios_kept", True, None, f"every group follows its own base LR {_fmt(f.base_lrs)}, {upto}")


def _alone(live: Any, f: CosineState, group: int) -> Any:
    """NeMo's scheduler for one group alone, holding the live scheduler's fields."""
    from nemo.core.optim.lr_scheduler import CosineAnnealing
    import torch

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # Built with harmless values (its constructor computes step 0), then restored like a resume.
        sched = CosineAnnealing(opt, max_steps=2, warmup_steps=1, constant_steps=0, min_lr=0.0)
    sched.load_state_dict(
        {
            "base_lrs": [f.base_lrs[group]],
            "min_lr": f.min_lr,
            "max_steps": f.max_steps,
            "warmup_steps": f.warmup_steps,
            "constant_steps": f.constant_steps,
            "decay_steps": live.decay_steps,
        }
    )
    return sched


def _check_negative_phase(f: CosineState, resume: ResumePoint | None, start: int, end: int) -> Check:
    d = f.decay
    if d >= 0:
        return Check("no_negative_phase", True, None, f"warmup {f.warmup_steps}, decay {d}, constant {f.constant_steps} steps")
    step = max(start, min(f.warmup_steps + 1, end))
    if resume is None:
        what = (
            f"warmup_steps ({f.warmup_steps}) + constant_steps ({f.constant_steps}) > max_steps ({f.max_steps}): "
            f"decay_steps = {d}"
        )
    else:
        what = f"{'the plan' if resume.target else 'the checkpoint'}'s decay_steps is {d}"
    return Check(
        "no_negative_phase", False, step,
        f"{what}; the LR does not decay: it falls to min_lr right after warmup (step {f.warmup_steps + 1})",
    )


def _check_spans(f: CosineState, resume: ResumePoint | None, end: int) -> Check:
    if f.max_steps >= end:
        return Check("decay_spans_training", True, None, f"the schedule's max_steps ({f.max_steps}) covers training to {end}")
    source = "the plan" if resume and resume.target else "the checkpoint"
    return Check(
        "decay_spans_training", False, f.max_steps + 1,
        f"{source}'s scheduler max_steps is {f.max_steps} but training runs to {end}: the LR sits at min_lr "
        f"for the last {end - f.max_steps} steps (a new max_steps in the config does not reach a restored scheduler)",
    )


_COSINE_CHECKS: tuple[CheckName, ...] = (
    "finite", "at_or_above_min_lr", "no_jump_at_resume", "warmup_rising", "decay_non_increasing",
    "ends_at_min_lr", "group_ratios_kept", "no_negative_phase", "decay_spans_training",
)


def _failed_early(
    state: CosineState | ScheduleRequest,
    resume: ResumePoint | None,
    failure: StepFailure,
    start: int,
    end: int,
    notes: list[str],
    names: tuple[CheckName, ...] = _COSINE_CHECKS,
    scheduler: str = "NeMo's CosineAnnealing",
) -> CheckResult:
    """NeMo raised before any LR of the checked range existed: only that failure is known."""
    skipped = "not checked: " + ("the scheduler could not be built" if failure.when == "build" else "the plan fails")
    checks = (_check_nemo_runs(failure, start, end, scheduler),)
    checks += tuple(Check(n, None, None, skipped) for n in names)
    failed = Curve("schedule", np.zeros(0, np.int64), np.zeros((0, len(state.base_lrs))), failure)
    return CheckResult(
        request=state, resume=resume, schedule=None, start=start, end=end, checks=checks, failure=failure,
        key_steps=((failure.step, "NeMo raises", None),), curves=(failed,), notes=tuple(notes), scheduler=scheduler,
    )


def _key_steps(
    live: Any, f: CosineState, resume: ResumePoint | None, start: int, end: int, failure: StepFailure | None
) -> tuple[tuple[int, str, tuple[float, ...] | None], ...]:
    w, d, c = f.warmup_steps, f.decay, f.constant_steps
    labels: dict[int, list[str]] = {}

    def mark(step: int, label: str) -> None:
        labels.setdefault(step, []).append(label)

    mark(0, "start")
    if w > 0:
        mark(w, "end of warmup")
        mark(w + 1, "first step after warmup")
    if d > 0:
        mark(w + d // 2, "middle of decay")
    if c > 0:
        mark(w + max(d, 0) + 1, "start of constant")
    mark(end, "max_steps")
    if resume is not None:
        mark(resume.step, "resume step" + (" (planned LR)" if resume.target else ""))
        mark(resume.step + 1, "first step after resume")
    if failure is not None:
        mark(failure.step, "NeMo raises")
    low = start if resume is None else resume.step
    rows = []
    for step in sorted(s for s in labels if low <= s <= end):
        rows.append((step, ", ".join(labels[step]), _lr_or_none(live, step)))
    return tuple(rows)


def _mirror_note(f: CosineState, start: int, end: int, failure: StepFailure | None) -> list[str]:
    """Cross-check NeMo's first failure against nemo_resume.schedule's pure mirror."""
    mirror = first_failure(f, start, end)
    ours = mirror.step if mirror else None
    theirs = failure.step if failure else None
    if ours != theirs:
        return [f"nemo_resume.schedule predicts a failure at step {ours}, NeMo's class at {theirs}; NeMo's is reported"]
    return []


def _request_notes(state: CosineState) -> list[str]:
    """What ScheduleRequest (the validated path) would say about these values: it names the fix."""
    lr = state.base_lrs[0]
    mults = tuple(b / lr for b in state.base_lrs[1:]) if lr > 0 else ()
    try:
        ScheduleRequest(lr, state.min_lr, state.max_steps, state.warmup_steps, state.constant_steps, mults)
    except NemoResumeError as exc:
        return [f"ScheduleRequest refuses this config: {exc}"]
    return []


# --------------------------------------------------------------------------------------------
# Small helpers


def _fmt(lrs: Sequence[float] | np.ndarray | None) -> str:
    if lrs is None:
        return "-"
    return "[" + ", ".join(f"{float(x):.6g}" for x in lrs) + "]"


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_real(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


__all__ = [
    "Check",
    "CheckResult",
    "Curve",
    "Jump",
    "ResumePoint",
    "StepFailure",
    "check_schedule",
    "load_plan",
    "unchecked_request",
]
