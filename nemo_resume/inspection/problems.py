"""Problems a checkpoint's state predicts, each with a stable code, before any GPU time is spent."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from nemo_resume.checkpoint.state import CheckpointState, SchedulerState
from nemo_resume.schedules.cosine import CosineState, first_failure
from nemo_resume.schedules.lr_stages import boundaries, describe, stage_index, total_steps

Severity = Literal["error", "warning", "info"]

# Stable codes: scripts match on these, so never rename one.
LR_BELOW_MIN_LR = "LR_BELOW_MIN_LR"
SCHEDULER_RAISES = "SCHEDULER_RAISES"
CONSTANT_STEPS_COLLAPSES_GROUPS = "CONSTANT_STEPS_COLLAPSES_GROUPS"
NEGATIVE_DECAY = "NEGATIVE_DECAY"
PAST_MAX_STEPS = "PAST_MAX_STEPS"
NO_OPTIMIZER_STATE = "NO_OPTIMIZER_STATE"
INCOMPLETE = "INCOMPLETE"
UNSAFE_PICKLE = "UNSAFE_PICKLE"
UNSUPPORTED_SCHEDULER = "UNSUPPORTED_SCHEDULER"
STAGED_SCHEDULE = "STAGED_SCHEDULE"
PAST_LAST_STAGE = "PAST_LAST_STAGE"
INVALID_LR = "INVALID_LR"
INVALID_MIN_LR = "INVALID_MIN_LR"
INVALID_STEPS = "INVALID_STEPS"
PARAM_GROUP_LR_MISMATCH = "PARAM_GROUP_LR_MISMATCH"
# What a resume with another layout breaks or silently changes (nemo_resume.planning.compat).
OPTIMIZER_NOT_RESHARDABLE = "OPTIMIZER_NOT_RESHARDABLE"
PARAM_GROUPS_CHANGED = "PARAM_GROUPS_CHANGED"
GLOBAL_BATCH_SIZE_CHANGED = "GLOBAL_BATCH_SIZE_CHANGED"
DATA_POSITION_LOST = "DATA_POSITION_LOST"
DATA_ORDER_CHANGED = "DATA_ORDER_CHANGED"
DATA_EXHAUSTED = "DATA_EXHAUSTED"
PEFT_BASE_MISSING = "PEFT_BASE_MISSING"
PEFT_BASE_CHANGED = "PEFT_BASE_CHANGED"
CHECKPOINT_FORMAT_TOO_OLD = "CHECKPOINT_FORMAT_TOO_OLD"
#: Saved values no run can train on (a NaN, infinite or negative LR, a negative step count): NeMo restores them
#: without a complaint, so a checkpoint with one of these is never resumed (InspectedCheckpoint.resumable).
INVALID_VALUE_CODES = (INVALID_LR, INVALID_MIN_LR, INVALID_STEPS)

_COSINE_MODULE = "CosineAnnealingScheduler"
_FIX = "resume with `nemo-resume plan RUN --lr-policy smooth` instead of editing the config"


@dataclass(frozen=True)
class Problem:
    code: str
    severity: Severity
    message: str
    step: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "severity": self.severity, "message": self.message, "step": self.step}


def cosine_state(s: SchedulerState) -> CosineState | None:
    """The saved scheduler as a :class:`CosineState`, or None if a field NeMo needs is missing."""
    if not s.base_lrs or s.min_lr is None or s.max_steps is None:
        return None
    return CosineState(
        base_lrs=s.base_lrs,
        min_lr=s.min_lr,
        max_steps=s.max_steps,
        warmup_steps=s.warmup_steps or 0,
        constant_steps=s.constant_steps or 0,
        decay_steps=s.decay_steps,
    )


def _resumed_at(sched: SchedulerState | None, step: int | None) -> int:
    """The step a resume trains first: the scheduler's saved ``last_epoch``, else the trainer's step."""
    if sched is not None and sched.last_epoch is not None:
        return sched.last_epoch
    return step or 0


def _bad_lr(x: float | None) -> bool:
    return x is not None and not (math.isfinite(x) and x >= 0)


_INVALID_WHY = {
    INVALID_LR: "a NaN or infinite LR turns the weights to NaN, a negative one climbs the loss",
    INVALID_MIN_LR: "NeMo's scheduler decays every LR towards it",
    INVALID_STEPS: "NeMo's scheduler computes every LR from them, and a step count is never negative",
}


def _invalid_values(state: CheckpointState) -> list[Problem]:
    """One error per kind of saved value no run can train on, at the first step it breaks.

    The optimizer's param groups hold the LR the resumed step trains with; the scheduler's fields decide the
    LR from its next step on. Lightning restores both as saved, whatever the new config says.
    """
    sched, at = state.scheduler, _resumed_at(state.scheduler, state.step)
    found: dict[str, list[tuple[str, int]]] = {}

    def flag(code: str, what: str, step: int) -> None:
        found.setdefault(code, []).append((what, step))

    for i, g in enumerate(state.param_groups):
        for name, x in (("lr", g.lr), ("initial_lr", g.initial_lr), ("max_lr", g.max_lr), ("min_lr", g.min_lr)):
            if _bad_lr(x):
                flag(INVALID_MIN_LR if name == "min_lr" else INVALID_LR, f"param group {i} {name} {x!r}", at)
    if sched is not None:
        if any(_bad_lr(x) for x in sched.base_lrs):
            flag(INVALID_LR, f"scheduler base_lrs {list(sched.base_lrs)!r}", at + 1)
        if _bad_lr(sched.min_lr):
            flag(INVALID_MIN_LR, f"scheduler min_lr {sched.min_lr!r}", at + 1)
        for name in ("max_steps", "warmup_steps", "constant_steps"):
            n = getattr(sched, name)
            if n is not None and n < 0:
                flag(INVALID_STEPS, f"scheduler {name} {n}", at + 1)
    out = []
    for code, fields in found.items():
        step = min(s for _, s in fields)
        what = ", ".join(w for w, _ in fields)
        out.append(Problem(code, "error", f"saved {what}: a resumed run uses {'them' if len(fields) > 1 else 'it'} "
                                          f"from step {step} ({_INVALID_WHY[code]}). The checkpoint's trainer state "
                                          "is damaged; resume from an older checkpoint", step))
    return out


_SOURCE_NAMES = {"ckpt": "the .ckpt", "common.pt": "weights/common.pt", "distcp": "the distributed optimizer's objects"}


def _lr_mismatch(state: CheckpointState) -> list[Problem]:
    """The param groups' LRs against the scheduler's ``_last_lr``: the scheduler writes both at each step, equal.

    A warning, not an error: the checkpoint loads and trains. The first resumed step uses the param groups' LR (the
    one reported), the scheduler computes every later one from its own fields; a difference means the state was
    changed after the scheduler's last step (by hand or a callback) or mixes two saves, so check which is meant.
    """
    sched = state.scheduler
    if sched is None or not sched.last_lrs or not state.param_groups or state.lrs == list(sched.last_lrs):
        return []
    where = _SOURCE_NAMES.get(state.param_groups_source or "", "the param groups")
    at = _resumed_at(sched, state.step)
    return [Problem(PARAM_GROUP_LR_MISMATCH, "warning",
                    f"the param groups' LRs {state.lrs} ({where}) differ from the scheduler's _last_lr "
                    f"{list(sched.last_lrs)}: step {at} trains with the first, the scheduler sets every later one; "
                    "the saved state was changed after the scheduler's last step or mixes two saves", at)]


def _schedule_problems(sched: SchedulerState, step: int | None) -> list[Problem]:
    cos = cosine_state(sched)
    if cos is None:
        return []
    out: list[Problem] = []
    start = _resumed_at(sched, step) + 1
    failure = first_failure(cos, start, max(cos.max_steps, start))
    if failure is not None:
        below = failure.kind in ("below_min_lr", "assert_max_lr_gt_min_lr")
        detail = (
            f"saved base_lrs {list(cos.base_lrs)} are not above saved min_lr {cos.min_lr}"
            if below
            else "the saved schedule has an impossible decay phase"
        )
        out.append(
            Problem(
                LR_BELOW_MIN_LR if below else SCHEDULER_RAISES,
                "error",
                f"{detail}: a resumed run dies at step {failure.step} with {failure.message}. "
                f"The checkpoint's scheduler state overrides a lowered min_lr in the config; {_FIX}.",
                failure.step,
            )
        )
    if cos.constant_steps > 0 and len(set(cos.base_lrs)) > 1:
        out.append(
            Problem(
                CONSTANT_STEPS_COLLAPSES_GROUPS,
                "warning",
                f"constant_steps={cos.constant_steps} makes NeMo's CosineAnnealing give every param group "
                f"group 0's LR ({cos.base_lrs[0]}), discarding per-group LRs {list(cos.base_lrs)}; "
                "set constant_steps=0 to keep them",
            )
        )
    if cos.warmup_steps + cos.constant_steps > cos.max_steps:
        out.append(
            Problem(
                NEGATIVE_DECAY,
                "warning",
                f"warmup_steps ({cos.warmup_steps}) + constant_steps ({cos.constant_steps}) > max_steps "
                f"({cos.max_steps}): the decay length is {cos.decay}, so the LR drops to min_lr right after warmup",
                cos.warmup_steps + 1,
            )
        )
    if step is not None and step >= cos.max_steps:
        out.append(
            Problem(
                PAST_MAX_STEPS,
                "warning",
                f"step {step} is at or past the saved max_steps ({cos.max_steps}): the LR stays at min_lr "
                f"({cos.min_lr}) from here, whatever trainer.max_steps says; {_FIX}",
                step,
            )
        )
    return out


def _stage_problems(sched: SchedulerState, step: int | None) -> list[Problem]:
    """The saved stages and where the checkpoint is in them (``--lr-stages``, nemo_resume's StagedLR)."""
    stages = sched.stages
    at = _resumed_at(sched, step)
    i, starts, end = stage_index(stages, at), boundaries(stages), total_steps(stages)
    s = stages[i]
    where = f"stage {i + 1} of {len(stages)} (LR {s.lr:g}, steps {starts[i]}-{starts[i] + s.steps - 1})"
    nxt = "" if at >= end else f"; the next step ({at}) trains in it" + (
        f", stage {i + 2} starts at step {starts[i + 1]} (LR {stages[i + 1].lr:g})" if i + 1 < len(stages) else ""
    )
    out = [Problem(STAGED_SCHEDULE, "info", f"staged LR {describe(stages)} ({end} steps), restored on resume; "
                                            f"checkpoint at step {at}: {where}{nxt}", at)]
    if at >= end:
        out.append(
            Problem(PAST_LAST_STAGE, "warning", f"step {at} is at or past the end of the saved stages ({end} steps): "
                                                f"the LR stays at the last stage's {stages[-1].lr:g}", at)
        )
    return out


def predict_problems(state: CheckpointState) -> list[Problem]:
    """Everything that will go wrong resuming from ``state``, most severe first."""
    out: list[Problem] = []
    if state.unsafe_globals:
        out.append(
            Problem(
                UNSAFE_PICKLE,
                "error",
                "; ".join(g.describe() for g in state.unsafe_globals) + ": resuming it (torch.load, torch DCP) "
                "would import or run what the file chose; nemo-resume did not. Never resume from it or load it",
            )
        )
    if state.incomplete_reasons:
        if state.location.companion_of is None:  # NeMo's context-only -last leftovers lost nothing
            out.append(Problem(INCOMPLETE, "error", "cannot resume from it: " + "; ".join(state.incomplete_reasons)))
        return out
    invalid = _invalid_values(state)
    if invalid:  # whatever the schedule predicts from them is noise
        return out + invalid
    if state.has_optimizer_state is False:
        out.append(
            Problem(
                NO_OPTIMIZER_STATE,
                "error",
                "weights-only checkpoint (saved at the end of training without optimizer state): "
                "resuming it to train further fails in Lightning with KeyError; resume from the newest full "
                "checkpoint, or restart from these weights with a fresh optimizer",
                state.step,
            )
        )
    out += _lr_mismatch(state)
    sched_class = state.config.scheduler_class if state.config else None
    if state.scheduler is not None and state.scheduler.stages:
        out += _stage_problems(state.scheduler, state.step)
    elif state.scheduler is not None:
        if sched_class and not sched_class.endswith(_COSINE_MODULE):
            out.append(
                Problem(
                    UNSUPPORTED_SCHEDULER,
                    "info",
                    f"scheduler {sched_class}: failure prediction covers NeMo's CosineAnnealingScheduler only",
                )
            )
        else:
            out += _schedule_problems(state.scheduler, state.step)
    order = {"error": 0, "warning": 1, "info": 2}
    return sorted(out, key=lambda p: order[p.severity])
