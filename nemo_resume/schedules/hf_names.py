"""Hugging Face scheduler names (``--schedule NAME``) mapped to the NeMo module that gives that shape.

Every name of ``transformers.SchedulerType`` is here: either mapped to a NeMo 2.7.3
``LRSchedulerModule`` (``nemo/lightning/pytorch/optim/lr_scheduler.py``) that reproduces it,
or refused with the reason, never approximated silently. docs/schedules.md has the table,
the formulas and plots; tests/schedules/test_hf_names.py holds each mapping equal, step by step, to
``transformers.get_scheduler`` wherever the shapes are meant to match.

Differences every mapped name shares (said in docs/schedules.md, asserted in the tests):

- warmup: NeMo's LR at step ``t <= W`` is ``lr * (t + 1) / (W + 1)``; HF's at ``t < W`` is
  ``lr * t / W`` (0 at step 0). Both reach ``lr`` at step ``W``; after warmup they agree.
- after ``max_steps`` NeMo gives ``min_lr``; HF keeps evaluating its formula. Training ends at
  ``max_steps``, so no step runs there.
- a floor: HF scales ``min_lr``/``lr_end`` with each group's LR (``min_lr * mult``); NeMo's
  ``min_lr`` is one absolute floor for every group. Equal with one group or ``min_lr == 0``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from nemo_resume.errors import NemoResumeError
from nemo_resume.schedules.module_config import ModuleConfig, ScheduleFields

_OPTIM = "nemo.lightning.pytorch.optim.lr_scheduler."

# transformers.SchedulerType values (transformers 4.57), in its order.
HF_NAMES: tuple[str, ...] = (
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
    "constant",
    "constant_with_warmup",
    "inverse_sqrt",
    "reduce_lr_on_plateau",
    "cosine_with_min_lr",
    "cosine_warmup_with_min_lr",
    "warmup_stable_decay",
)

# Names no NeMo module reproduces, and why (one line each, shown as the error).
REFUSED: dict[str, str] = {
    "cosine_with_restarts": (
        "NeMo 2.7.3 has no cosine-with-restarts scheduler (PolynomialDecayAnnealingScheduler(cycle=True) restarts "
        "a polynomial, not a cosine); with HF's default num_cycles=1 it is plain cosine: use --schedule cosine"
    ),
    "inverse_sqrt": (
        "NeMo's InverseSquareRootAnnealingScheduler takes no warmup_steps, and without warmup it decays as "
        "lr / sqrt(step + 1) where HF uses lr / sqrt(1 + step / 10000); no NeMo module gives HF's shape"
    ),
    "reduce_lr_on_plateau": (
        "it lowers the LR when a validation metric stalls, so its LRs depend on the run; NeMo 2.7.3 has no such "
        "LRSchedulerModule and nothing could be checked before launch"
    ),
    "cosine_warmup_with_min_lr": (
        "HF warms up to lr * (step + 1) / W and decays from (step - W + 1) / (T - W): one step ahead of NeMo's "
        "CosineAnnealing in both phases; use --schedule cosine_with_min_lr (HF's step-aligned variant)"
    ),
}

# HF names that decay to a floor; the notes say where NeMo's absolute min_lr differs.
_WITH_FLOOR = ("linear", "cosine", "cosine_with_min_lr", "polynomial", "warmup_stable_decay")
DECAY_TYPES = ("linear", "1-sqrt", "cosine")


def exact_ratio(steps: int, total: int) -> float | None:
    """The smallest float ``r`` with ``int(r * total) == steps`` (None for 0 steps).

    ``WarmupHoldAnnealScheduler`` takes warmup and hold as ratios of ``max_steps`` and
    truncates; ``steps / total`` can land one step short (``int((1/49) * 49) == 0``).
    """
    if steps == 0:
        return None
    r = steps / total
    while int(r * total) < steps:
        r = math.nextafter(r, math.inf)
    if int(r * total) != steps:  # cannot happen for 0 < steps <= total
        raise AssertionError(f"no ratio gives {steps} of {total} steps")
    return r


def _fail(name: str, why: str) -> NemoResumeError:
    return NemoResumeError(f"--schedule {name}: {why}")


def _floor_notes(name: str, req: ScheduleFields) -> tuple[str, ...]:
    notes = []
    if name in ("linear", "cosine") and req.min_lr > 0:
        twin = "HF's cosine_with_min_lr" if name == "cosine" else f"a linear decay to {req.min_lr:g} instead"
        notes.append(f"--schedule {name} with --min-lr {req.min_lr:g}: HF's {name} decays to 0; this is {twin}")
    if name in _WITH_FLOOR and req.min_lr > 0 and len(set(req.lr_mults) - {1.0}) > 0:
        notes.append(
            f"HF scales the floor with each group's LR (min_lr x mult); NeMo's min_lr {req.min_lr:g} is one "
            "absolute floor for every group"
        )
    return tuple(notes)


def _no_constant(name: str, req: ScheduleFields) -> None:
    if req.constant_steps:
        raise _fail(
            name,
            f"--constant-steps {req.constant_steps} applies to --schedule cosine only (NeMo's "
            "CosineAnnealingScheduler); drop it",
        )


def constant_steps_note(max_steps: int, warmup_steps: int, constant_steps: int) -> str | None:
    """What ``--constant-steps C > 0`` makes NeMo's CosineAnnealing run: not Hugging Face's cosine, said always."""
    if constant_steps <= 0:
        return None
    w, c, t = warmup_steps, constant_steps, max_steps
    return (
        f"--constant-steps {c}: NeMo's CosineAnnealing takes its Megatron path, not HF's cosine: warmup lr*t/{w} "
        f"(0 at step 0), a cosine from lr to min_lr over {t - w - c} steps (to step {t - c}), then min_lr for the "
        f"last {c} steps; every param group gets group 0's LR (docs/schedules.md)"
    )


def _cosine(name: str, req: ScheduleFields) -> ModuleConfig:
    note = constant_steps_note(req.max_steps, req.warmup_steps, req.constant_steps)
    return ModuleConfig(
        _OPTIM + "CosineAnnealingScheduler",
        dict(
            max_steps=req.max_steps, warmup_steps=req.warmup_steps, constant_steps=req.constant_steps, min_lr=req.min_lr
        ),
        notes=(note,) if note else (),
    )


def _warmup_hold_anneal(req: ScheduleFields, hold_steps: int, decay_schedule: str) -> ModuleConfig:
    """WarmupHoldAnnealScheduler with warmup and hold as exact ratios (it only takes ratios)."""
    return ModuleConfig(
        _OPTIM + "WarmupHoldAnnealScheduler",
        dict(
            warmup_ratio=exact_ratio(req.warmup_steps, req.max_steps),
            # 0.0, not None: None makes NeMo's hold_steps 0, so the decay would start at step 0, not after warmup
            hold_ratio=exact_ratio(hold_steps, req.max_steps) or 0.0,
            max_steps=req.max_steps,
            decay_schedule=decay_schedule,
            min_lr=req.min_lr,
        ),
    )


def _linear(name: str, req: ScheduleFields) -> ModuleConfig:
    # Not WarmupAnnealingScheduler: its _get_lr gives every param group group 0's LR.
    if req.warmup_steps >= req.max_steps:
        raise _fail(name, f"--warmup-steps {req.warmup_steps} must be below --max-steps {req.max_steps}")
    return _warmup_hold_anneal(req, 0, "linear")


def _polynomial(name: str, req: ScheduleFields) -> ModuleConfig:
    if req.warmup_steps:
        raise _fail(
            name,
            f"--warmup-steps {req.warmup_steps}: NeMo's PolynomialDecayAnnealingScheduler takes no "
            "warmup_steps (it passes none to PolynomialDecayAnnealing); use --warmup-steps 0",
        )
    return ModuleConfig(
        _OPTIM + "PolynomialDecayAnnealingScheduler",
        dict(max_steps=req.max_steps, min_lr=req.min_lr, power=1.0, cycle=False),
        notes=("power 1.0 (HF's default); --min-lr is HF's lr_end",),
    )


def _constant(name: str, req: ScheduleFields) -> ModuleConfig:
    if name == "constant" and req.warmup_steps:
        raise _fail(
            name, f"--warmup-steps {req.warmup_steps}: HF's constant has no warmup; use --schedule constant_with_warmup"
        )
    return ModuleConfig(
        _OPTIM + "WarmupPolicyScheduler",
        # warmup_steps explicit: the class default is 750
        dict(warmup_steps=req.warmup_steps, warmup_ratio=None, max_steps=req.max_steps, min_lr=req.min_lr),
    )


def _wsd(name: str, req: ScheduleFields) -> ModuleConfig:
    d, kind = req.decay_steps, req.decay_type
    if d is None:
        raise _fail(name, "needs --decay-steps D (HF's num_decay_steps); the stable phase is the rest")
    if kind is None or kind == "cosine":
        raise _fail(
            name,
            "HF's default decay_type is cosine, and NeMo has no warmup-stable-cosine module "
            "(CosineAnnealing's constant phase comes after the decay); pass --decay-type linear or 1-sqrt",
        )
    if kind not in DECAY_TYPES:
        raise _fail(name, f"--decay-type {kind} is not one of linear, 1-sqrt")
    if not 0 < d <= req.max_steps - req.warmup_steps:
        raise _fail(
            name, f"--decay-steps {d} must be from 1 to max_steps - warmup_steps ({req.max_steps - req.warmup_steps})"
        )
    if kind == "1-sqrt" and req.min_lr > 0:
        raise _fail(
            name,
            "NeMo's 1-sqrt decay clamps at min_lr (max(min_lr, lr * (1 - sqrt(p)))) where HF "
            "rescales (min_lr + (lr - min_lr) * (1 - sqrt(p))); use --min-lr 0 or --decay-type linear",
        )
    stable = req.max_steps - req.warmup_steps - d
    return _warmup_hold_anneal(req, stable, "linear" if kind == "linear" else "one_minus_square_root")


_BUILDERS: dict[str, Callable[[str, Any], ModuleConfig]] = {
    "linear": _linear,
    "cosine": _cosine,
    "cosine_with_min_lr": _cosine,
    "polynomial": _polynomial,
    "constant": _constant,
    "constant_with_warmup": _constant,
    "warmup_stable_decay": _wsd,
}


def hf_module(req: ScheduleFields) -> ModuleConfig:
    """The NeMo module for ``req.schedule`` (a Hugging Face name), or a one-line refusal.

    Args:
        req: a :class:`~nemo_resume.schedules.request.ScheduleRequest` (``schedule``, ``lr``, ``min_lr``,
            ``max_steps``, ``warmup_steps``, ``constant_steps``, ``lr_mults``, ``decay_steps``,
            ``decay_type``).

    Raises:
        NemoResumeError: the name is unknown, has no faithful NeMo equivalent, or a flag it
            cannot honour is set; the message names the flag, the value and the fix.
    """
    name = req.schedule
    if name in REFUSED:
        raise _fail(name, REFUSED[name])
    if name not in _BUILDERS:
        raise _fail(
            name, f"unknown; choose one of {', '.join(n for n in HF_NAMES if n not in REFUSED)} or staged (--lr-stages)"
        )
    if name not in ("cosine", "cosine_with_min_lr"):
        _no_constant(name, req)
    # On the cosine they are --lr-policy cooldown's (nemo_resume.schedules.cooldown checks them with the policy).
    cooldown_ok = name in ("cosine", "cosine_with_min_lr")
    if name != "warmup_stable_decay" and not cooldown_ok and (req.decay_steps is not None or req.decay_type is not None):
        raise _fail(name, "--decay-steps/--decay-type apply to --schedule warmup_stable_decay only; drop them")
    module = _BUILDERS[name](name, req)
    return ModuleConfig(module.target, module.kwargs, module.notes + _floor_notes(name, req))
