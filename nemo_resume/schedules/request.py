"""The LR schedule a user asks for, validated before anything is built or launched."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import MISSING, dataclass, field, fields, replace
from typing import Any

from nemo_resume.constants import NEMO_BELOW_MIN_LR_TEXT
from nemo_resume.errors import NemoResumeError
from nemo_resume.schedules.cosine import CosineState
from nemo_resume.schedules.lr_stages import Stage, stages_from_json
from nemo_resume.schedules.scheduler_module import scheduler_module

# --schedule names NeMo's CosineAnnealing runs: the planner's policies and the resume callback
# rewrite its state; every other schedule resumes as the checkpoint saved it (--lr-policy keep).
COSINE_SCHEDULES = ("cosine", "cosine_with_min_lr")
STAGED = "staged"


def is_whole(v: Any) -> bool:
    """An int that is not a bool (``True`` is an int to Python, never a step count to us)."""
    return isinstance(v, int) and not isinstance(v, bool)


def is_real(v: Any) -> bool:
    """An int or float that is not a bool."""
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# The JSON shape of the request fields the constructor does not validate itself (from_json checks them).
_JSON_SHAPES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "lr_mults": (lambda v: isinstance(v, list), "a list of numbers"),
    "schedule": (lambda v: isinstance(v, str), "a string"),
    "decay_steps": (lambda v: v is None or is_whole(v), "a whole number or null"),
    "decay_type": (lambda v: v is None or isinstance(v, str), "a string or null"),
}


def validate_values(
    lr: Any, min_lr: Any, max_steps: Any, warmup_steps: Any, constant_steps: Any, lr_mults: Sequence[Any]
) -> None:
    """The refusals no schedule survives, checked or not: NeMo could not even build it from these.

    Raises:
        NemoResumeError: a negative, non-integer or boolean step count, an LR that is not a finite
            number >= 0, a multiplier that is not a finite number > 0.
    """
    for name, v in (("lr", lr), ("min_lr", min_lr)):
        if not is_real(v) or not math.isfinite(v) or v < 0:
            raise NemoResumeError(f"{name}={v} must be a finite number >= 0")
    for name, v in (("max_steps", max_steps), ("warmup_steps", warmup_steps), ("constant_steps", constant_steps)):
        if not is_whole(v) or v < 0:
            raise NemoResumeError(f"{name}={v} must be a whole number >= 0")
    if max_steps < 1:
        raise NemoResumeError(f"max_steps={max_steps} must be at least 1")
    for mult in lr_mults:
        if not is_real(mult) or not math.isfinite(mult) or mult <= 0:
            raise NemoResumeError(f"lr multiplier {mult} must be a finite number > 0")


@dataclass(frozen=True)
class ScheduleRequest:
    """An LR schedule with every field explicit: NeMo's ``CosineAnnealingScheduler`` by default,
    another Hugging Face name (:mod:`nemo_resume.schedules.hf_names`) or ``staged`` stages.

    Attributes:
        lr: the peak LR of the base param group (``optim.config.lr``).
        min_lr: the floor the cosine decays to; 0 stays 0 (unlike ``pytorch_adam_with_cosine_annealing``).
        max_steps: the step the decay ends at (``trainer.max_steps``; NeMo copies it into the scheduler).
        warmup_steps: linear warmup length; NeMo's warmup LR is ``lr * (step + 1) / (warmup_steps + 1)``.
        constant_steps: steps held at ``min_lr`` after the decay (NeMo's name; its class default is 80000).
        lr_mults: one multiplier per extra param group (``lr_mult``), each group's LR is ``lr * mult``.
        schedule: ``cosine`` (default), another Hugging Face scheduler name, or ``staged``.
        stages: the ``staged`` schedule's stages (``lr`` is the first stage's LR, ``max_steps`` their sum).
        decay_steps, decay_type: ``warmup_stable_decay`` only (HF's ``num_decay_steps``, ``decay_type``).
        checked: False skips the refusals of schedules NeMo would fail on (:func:`validate_values` still
            runs): only for reproducing a known-bad schedule on purpose (``--launch-anyway``) or for the
            check, which reports the step it fails at.

    Raises:
        NemoResumeError: from ``__post_init__``, naming the value to change.
    """

    lr: float
    min_lr: float
    max_steps: int
    warmup_steps: int = 0
    constant_steps: int = 0
    lr_mults: tuple[float, ...] = ()
    checked: bool = field(default=True, compare=False, repr=False)
    schedule: str = "cosine"
    stages: tuple[Stage, ...] = ()
    decay_steps: int | None = None
    decay_type: str | None = None

    @property
    def is_cosine(self) -> bool:
        """NeMo's CosineAnnealing runs it: the pure mirror, the policies and the callback apply."""
        return self.schedule in COSINE_SCHEDULES

    def __post_init__(self) -> None:
        validate_values(self.lr, self.min_lr, self.max_steps, self.warmup_steps, self.constant_steps, self.lr_mults)
        if not self.checked:
            return
        scheduler_module(self)  # refuses names with no faithful NeMo module, and flags the schedule cannot honour
        if not self.is_cosine:
            self._check_floor()
            return
        for i, group_lr in enumerate(self.base_lrs):
            if not group_lr > self.min_lr:
                what = "lr" if i == 0 else f"lr * lr_mult[{i - 1}] = {group_lr:g}"
                raise NemoResumeError(
                    f"{what} ({group_lr:g}) must be above min_lr ({self.min_lr:g}): NeMo's CosineAnnealing raises "
                    f"'{NEMO_BELOW_MIN_LR_TEXT[:-1]}' "
                    f"after warmup; lower min_lr (e.g. --min-lr {group_lr / 10:g}) or raise the LR"
                )
        if self.warmup_steps + self.constant_steps > self.max_steps:
            raise NemoResumeError(
                f"warmup_steps ({self.warmup_steps}) + constant_steps ({self.constant_steps}) > max_steps "
                f"({self.max_steps}); lower warmup_steps or constant_steps"
            )
        if self.constant_steps > 0 and len(set(self.base_lrs)) > 1:
            raise NemoResumeError(
                f"constant_steps={self.constant_steps} with per-group LRs {list(self.base_lrs)}: NeMo's CosineAnnealing "
                "then gives every group group 0's LR; use constant_steps=0"
            )

    def _check_floor(self) -> None:
        """Every group's LR above min_lr in every stage: the floor the check verifies step by step."""
        peaks = [(f"stage {k} LR {s.lr:g}", s.lr) for k, s in enumerate(self.stages, start=1)] or [(f"lr {self.lr:g}", self.lr)]
        for what, peak in peaks:
            for i, mult in enumerate((1.0, *self.lr_mults)):
                if not peak * mult > self.min_lr:
                    times = f" x lr_mult[{i - 1}] {mult:g}" if i else ""
                    raise NemoResumeError(
                        f"{what}{times} = {peak * mult:g} must be above min_lr ({self.min_lr:g}), the floor every "
                        f"group must stay above; lower --min-lr (e.g. --min-lr {peak * mult / 10:g}) or raise the LR"
                    )

    @property
    def base_lrs(self) -> tuple[float, ...]:
        return (self.lr, *(self.lr * m for m in self.lr_mults))

    def group_lrs_for(self, saved_lrs: Sequence[float]) -> tuple[float, ...] | None:
        """This request's base LR for each of a checkpoint's param groups, or None if they do not fit.

        megatron-core splits param groups by weight decay as well as by ``lr_mult``, so a
        checkpoint usually has more groups than the request has multipliers. A saved group maps
        to the request multiplier equal to its LR ratio to the checkpoint's unscaled group, or to
        this request's ``lr`` when the checkpoint has no unscaled group (PEFT with a pattern that
        matches every adapter: megatron-core makes no group for the frozen rest). Every saved group
        must map and every ``--lr-mult`` must be used (a group the checkpoint lacks would fail the
        optimizer restore).
        """
        mults = (1.0, *self.lr_mults)
        for ref in dict.fromkeys([*saved_lrs, self.lr]):
            if not ref > 0:
                continue
            picked = [next((m for m in mults if math.isclose(lr / ref, m, rel_tol=1e-6)), None) for lr in saved_lrs]
            found = [m for m in picked if m is not None]
            if found and len(found) == len(picked) and set(found) >= set(self.lr_mults):
                return tuple(self.lr * m for m in found)
        return None

    def for_groups(self, saved_lrs: Sequence[float]) -> ScheduleRequest:
        """This request with one param group per checkpoint group (see :meth:`group_lrs_for`).

        Unchanged when they do not fit, or when the checkpoint's group 0 is a scaled one
        (``lr_mults`` always leaves group 0 at ``lr``).
        """
        group_lrs = self.group_lrs_for(saved_lrs)
        if group_lrs is None or not math.isclose(group_lrs[0], self.lr, rel_tol=1e-9):
            return self
        return replace(self, lr_mults=tuple(g / self.lr for g in group_lrs[1:]), checked=False)

    def cosine_state(self) -> CosineState:
        """What NeMo's scheduler holds right after construction from this request (cosine schedules only)."""
        if not self.is_cosine:
            raise ValueError(f"--schedule {self.schedule} is not NeMo's CosineAnnealing; it has no CosineState")
        return CosineState(
            base_lrs=tuple(float(b) for b in self.base_lrs),
            min_lr=float(self.min_lr),
            max_steps=self.max_steps,
            warmup_steps=self.warmup_steps,
            constant_steps=self.constant_steps,
        )

    def to_json(self) -> dict[str, Any]:
        """Every field but ``checked`` (:meth:`from_json` reads it back); the optional ones only when set."""
        return {
            "lr": self.lr,
            "min_lr": self.min_lr,
            "max_steps": self.max_steps,
            "warmup_steps": self.warmup_steps,
            "constant_steps": self.constant_steps,
            "lr_mults": list(self.lr_mults),
            "schedule": self.schedule,
            **({"stages": [st.to_json() for st in self.stages]} if self.stages else {}),
            **({"decay_steps": self.decay_steps} if self.decay_steps is not None else {}),
            **({"decay_type": self.decay_type} if self.decay_type is not None else {}),
        }

    @classmethod
    def from_json(cls, obj: Any, *, where: str = "request", checked: bool = True) -> ScheduleRequest:
        """The request :meth:`to_json` wrote: ``lr``, ``min_lr`` and ``max_steps`` required, the other fields
        defaulting as in the constructor, every value validated as the constructor does (``checked=False``:
        the check's "as given", a schedule NeMo would fail on included).

        Raises:
            NemoResumeError: not an object, a missing, unknown or mistyped field, or a refused value; the
                message starts with ``where``.
        """
        names = {f.name: f for f in fields(cls) if f.name != "checked"}
        if not isinstance(obj, dict):
            raise NemoResumeError(f"{where} must be an object with the fields {sorted(names)}")
        missing = [n for n, f in names.items() if f.default is MISSING and n not in obj]
        unknown = sorted(set(obj) - set(names))
        if missing or unknown:
            what = f"missing {missing}" if missing else f"unknown field(s) {unknown}"
            raise NemoResumeError(f"{where}: {what}; the fields are {sorted(names)}")
        for name, (fits, shape) in _JSON_SHAPES.items():
            if name in obj and not fits(obj[name]):
                raise NemoResumeError(f"{where}.{name}={obj[name]!r} must be {shape}")
        given = {**obj, "lr_mults": tuple(obj.get("lr_mults", ()))}
        if "stages" in obj:
            given["stages"] = stages_from_json(obj["stages"], f"{where}.stages")
        try:
            return cls(**given, checked=checked)
        except NemoResumeError as exc:
            raise NemoResumeError(f"{where}: {exc}") from None
