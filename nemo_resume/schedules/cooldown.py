"""A cooldown from a checkpoint (``--lr-policy cooldown --decay-steps D --decay-type linear|cosine|1-sqrt``), as
one pure function of the step.

The WSD "cooldown" of a stable-phase or finished run: from each param group's own LR at the resume step ``N``
(so the groups' ratios stay) down to ``min_lr`` at step ``N + D``, the run's new end; ``min_lr`` after that.
With ``p = (t - N) / D`` clipped to ``[0, 1]`` and ``s`` the group's LR at ``N``, the LR at step ``t`` is
``min_lr + (s - min_lr) * f(p)``: ``f = 1 - p`` (linear), ``(1 + cos(pi p)) / 2`` (cosine), ``1 - sqrt(p)``
(1-sqrt, the form of Hagele et al. 2024, rescaled to end at ``min_lr``, not NeMo's clamp). ``f(0) = 1``: the
first LR is the checkpoint's, with no jump and no warmup.

Torch-free: the planner and the check call it, and so does the scheduler the run uses
(:mod:`nemo_resume.schedules.cooldown_scheduler`): one definition of the shape.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nemo_resume.errors import NemoResumeError
from nemo_resume.schedules.module_config import ModuleConfig
from nemo_resume.schedules.request import ScheduleRequest, is_real, is_whole

POLICY = "cooldown"
DECAY_TYPES = ("linear", "cosine", "1-sqrt")
TARGET = "nemo_resume.schedules.cooldown_scheduler.CooldownScheduler"
# The scheduler state_dict names of the cooldown's fields: none is a field of NeMo's schedulers, so Lightning's
# restore of a cosine checkpoint (``load_state_dict``, a ``__dict__.update``) leaves them as the plan built them.
STATE_FIELDS = ("cooldown_start_lrs", "cooldown_min_lr", "cooldown_start_step", "cooldown_steps", "cooldown_type")


@dataclass(frozen=True)
class CooldownState:
    """A cooldown: each group from ``start_lrs`` at ``start_step`` to ``min_lr`` at ``start_step + decay_steps``."""

    start_lrs: tuple[float, ...]
    min_lr: float
    start_step: int
    decay_steps: int
    decay_type: str

    @property
    def end_step(self) -> int:
        """The new run's last step (``trainer.max_steps``): the LR there is ``min_lr``."""
        return self.start_step + self.decay_steps

    def module_kwargs(self) -> dict[str, Any]:
        """The arguments of :data:`TARGET` (plain data: NeMo-Run and ``context/io.json`` hold them)."""
        return {"start_lrs": list(self.start_lrs), "min_lr": self.min_lr, "start_step": self.start_step,
                "decay_steps": self.decay_steps, "decay_type": self.decay_type}

    def to_json(self) -> dict[str, Any]:
        """The scheduler ``state_dict`` fields, by their saved names (:data:`STATE_FIELDS`)."""
        return dict(zip(STATE_FIELDS, (list(self.start_lrs), self.min_lr, self.start_step, self.decay_steps,
                                       self.decay_type)))


def holds_cooldown(fields: Mapping[str, Any]) -> bool:
    """A scheduler state (a checkpoint's, a plan file's ``restored``) that a cooldown run saved."""
    return any(name in fields for name in STATE_FIELDS)


def saved_cooldown(fields: Mapping[str, Any]) -> CooldownState:
    """The cooldown a cooldown run's checkpoint holds (its scheduler ``state_dict`` fields, :data:`STATE_FIELDS`):
    Lightning restores it over whatever the config builds, so it is the one a resume of that checkpoint runs.

    Raises:
        NemoResumeError: a field is missing or mistyped (naming it).
    """
    values: list[Any] = [fields.get(name) for name in STATE_FIELDS]
    starts, min_lr, start, steps, kind = values
    ok = (isinstance(starts, (list, tuple)) and len(starts) > 0 and all(is_real(x) for x in starts), is_real(min_lr),
          is_whole(start) and start >= 0, is_whole(steps) and steps >= 1, kind in DECAY_TYPES)
    bad = [f"{name}={fields.get(name)!r}" for name, good in zip(STATE_FIELDS, ok) if not good]
    if bad:
        raise NemoResumeError(f"the saved cooldown state is unreadable ({', '.join(bad)})")
    return CooldownState(tuple(float(x) for x in starts), float(min_lr), int(start), int(steps), str(kind))


def decay_factor(decay_type: str, progress: float) -> float:
    """``f(p)``: 1 at the start of the cooldown, 0 at its end, never rising."""
    p = min(max(progress, 0.0), 1.0)
    if decay_type == "linear":
        return 1.0 - p
    if decay_type == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * p))
    if decay_type == "1-sqrt":
        return 1.0 - math.sqrt(p)
    raise ValueError(f"unknown decay type {decay_type!r}")


def cooldown_lrs(state: CooldownState, step: int) -> list[float]:
    """Every group's LR at ``last_epoch == step`` (the LR optimizer step ``step`` uses)."""
    f = decay_factor(state.decay_type, (step - state.start_step) / state.decay_steps)
    return [state.min_lr + (s - state.min_lr) * f for s in state.start_lrs]


def validate_cooldown_request(request: ScheduleRequest, policy: str) -> None:
    """The cooldown's flags, refused in one line where they cannot mean anything (exit 2).

    ``--decay-steps``/``--decay-type`` on NeMo's cosine are the cooldown's, so without ``--lr-policy cooldown``
    they would be silently ignored; a cooldown needs ``--decay-steps D >= 1``, one of :data:`DECAY_TYPES`, the
    checkpoint's cosine schedule, and never re-runs warmup.

    Raises:
        NemoResumeError: naming the flag and what to do.
    """
    if policy != POLICY:
        given = [f for f, v in (("--decay-steps", request.decay_steps), ("--decay-type", request.decay_type))
                 if v is not None]
        if given and request.is_cosine:
            raise NemoResumeError(f"{'/'.join(given)} with --schedule {request.schedule} apply to --lr-policy cooldown "
                                  "(a resume that anneals to --min-lr) or --schedule warmup_stable_decay; add one, or drop them")
        return
    if not request.is_cosine:
        raise NemoResumeError(f"--lr-policy cooldown with --schedule {request.schedule}: a cooldown anneals a run of "
                              "NeMo's cosine (the default --schedule); drop --schedule")
    d = request.decay_steps
    if d is None:
        raise NemoResumeError("--lr-policy cooldown needs --decay-steps D: the cooldown's length (the run ends at the "
                              "resume step + D)")
    if not is_whole(d) or d < 1:
        raise NemoResumeError(f"--decay-steps {d} must be a whole number >= 1")
    if request.decay_type not in (None, *DECAY_TYPES):
        raise NemoResumeError(f"--decay-type {request.decay_type} is not one of {', '.join(DECAY_TYPES)}")
    for flag, value in (("--warmup-steps", request.warmup_steps), ("--constant-steps", request.constant_steps)):
        if value:
            raise NemoResumeError(f"{flag} {value} with --lr-policy cooldown: a cooldown starts at the checkpoint's LR "
                                  f"and never re-runs warmup or holds; drop {flag}")


def cooldown_end(request: ScheduleRequest, start_step: int) -> int:
    """The run's new ``max_steps``: the cooldown's start (the resume step, or the start of the cooldown a cooldown
    run's checkpoint continues) + ``--decay-steps``.

    Raises:
        NemoResumeError: a ``--max-steps`` that says otherwise (until planned, a request without ``--max-steps``
            holds ``decay_steps`` there: :func:`nemo_resume.schedules.flags.request_from_args`).
    """
    assert request.decay_steps is not None  # validate_cooldown_request
    end = start_step + request.decay_steps
    if request.max_steps not in (request.decay_steps, end):
        raise NemoResumeError(f"--max-steps {request.max_steps} with --lr-policy cooldown --decay-steps "
                              f"{request.decay_steps}: the cooldown ends at step {end} (it starts at step {start_step} "
                              f"+ {request.decay_steps}); drop --max-steps or give {end}")
    return end


def plan_cooldown(start_lrs: Sequence[float], resume_step: int, request: ScheduleRequest) -> CooldownState:
    """The cooldown ``request`` asks for from a checkpoint whose groups are at ``start_lrs`` at ``resume_step``."""
    assert request.decay_steps is not None  # validate_cooldown_request
    return CooldownState(tuple(float(x) for x in start_lrs), float(request.min_lr), resume_step,
                         request.decay_steps, request.decay_type or "linear")


def cooldown_flags(state: CooldownState) -> str:
    """The flags that plan ``state`` again (``--lr-policy cooldown`` given with a cooldown checkpoint's own values)."""
    return (f"--lr-policy cooldown --decay-steps {state.decay_steps} --decay-type {state.decay_type} "
            f"--min-lr {state.min_lr!r}")


def cooldown_module(state: CooldownState) -> ModuleConfig:
    """The NeMo ``LRSchedulerModule`` a cooldown run is built with (the recipe and the check build the same)."""
    return ModuleConfig(TARGET, state.module_kwargs())
