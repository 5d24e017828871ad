"""The resume plan: which checkpoint, which schedule, and the proof that it will not fail.

Data flows one way: checkpoint state (inspection) -> choice -> policy decision -> plan.
The plan is plain data; :mod:`nemo_resume.callback` applies it inside the run and
:mod:`nemo_resume.check` verifies it against NeMo's real scheduler.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from nemo_resume.checkpoint.state import SchedulerState
from nemo_resume.constants import MAX_LR_JUMP
from nemo_resume.errors import NemoResumeError
from nemo_resume.inspection.problems import Problem, Severity, cosine_state
from nemo_resume.planning.choice import Choice, choose_checkpoint
from nemo_resume.planning.compat import compat_problems, planned_train_samples
from nemo_resume.planning.data_order import PRETRAINING_DATAMODULE
from nemo_resume.planning.new_run import NewRun
from nemo_resume.planning.policy import Decision, continue_cooldown, decide, decide_restored, unsafe_reason
from nemo_resume.schedules.cooldown import POLICY as COOLDOWN
from nemo_resume.schedules.cooldown import TARGET as COOLDOWN_TARGET
from nemo_resume.schedules.cooldown import (
    CooldownState,
    cooldown_end,
    cooldown_lrs,
    holds_cooldown,
    saved_cooldown,
    validate_cooldown_request,
)
from nemo_resume.schedules.cosine import CosineState, ScheduleFailure, lr_at
from nemo_resume.schedules.lr_stages import Stage, boundaries, staged_lrs, stages_from_json
from nemo_resume.schedules.request import ScheduleRequest
from nemo_resume.schedules.scheduler_module import scheduler_module

# Plan problem codes (stable).
NO_USABLE_CHECKPOINT = "NO_USABLE_CHECKPOINT"
POLICY_REFUSED = "POLICY_REFUSED"
NO_SCHEDULER_STATE = "NO_SCHEDULER_STATE"
LR_JUMP = "LR_JUMP"
SCHEDULE_FAILS = "SCHEDULE_FAILS"
SCHEDULER_MISMATCH = "SCHEDULER_MISMATCH"

MODE_FRESH, MODE_RESUME, MODE_WEIGHTS = "fresh", "resume", "restore-weights"


@dataclass(frozen=True)
class ResumePlan:
    """Everything a launch needs to resume safely, and everything a user needs to see why.

    Attributes:
        mode: ``fresh`` (step 0), ``resume`` (full restore), ``restore-weights`` (weights only,
            new optimizer and schedule from step 0: NeMo's RestoreConfig).
        checkpoint: the checkpoint path, or None for a fresh start.
        resume_step: the checkpoint's step (0 for fresh and restore-weights).
        saved: the schedule the checkpoint would restore, if any (NeMo's CosineAnnealing).
        decision: the LR policy's outcome (resume mode only).
        restored: where :func:`keeps_saved_state` (any scheduler but NeMo's cosine, a staged checkpoint, or a
            cooldown run's checkpoint), the checkpoint's scheduler ``state_dict`` fields a resume restores
            (``stages`` for a staged run, the ``cooldown_*`` fields for a cooldown).
        max_jump: the largest relative LR change at the resume step the plan was allowed (``--max-jump``).
        train_samples: the ``PreTrainingDataModule(num_train_samples=...)`` the launch passes so the resumed run
            keeps the checkpoint's data (:func:`~nemo_resume.planning.compat.planned_train_samples`); None: NeMo's.
    """

    request: ScheduleRequest
    choice: Choice
    mode: str
    checkpoint: str | None
    resume_step: int
    saved: CosineState | None
    decision: Decision | None
    problems: tuple[Problem, ...]
    restored: dict[str, Any] | None = None
    max_jump: float = MAX_LR_JUMP
    train_samples: int | None = None

    @property
    def ok(self) -> bool:
        return not any(p.severity == "error" for p in self.problems)

    @property
    def schedule(self) -> CosineState:
        """The schedule the run follows from ``resume_step`` on."""
        if self.mode == MODE_RESUME and self.saved is not None and self.decision is not None:
            return self.decision.effective(self.saved)
        return self.request.cosine_state()

    def config_state(self) -> CosineState:
        """The requested schedule as NeMo builds it for this run's optimizer, before any restore.

        On a resume it has one base LR per param group of the checkpoint (megatron-core splits
        groups by weight decay too), so the check builds a scheduler shaped like the real one. Where the request's
        groups do not pair with the checkpoint's (a plan refused with the groups changed: megatron-core's optimizer
        load fails), it has the checkpoint's base LRs, which the scheduler's restore writes over the built ones anyway.
        """
        state = self.request.cosine_state()
        groups = self.saved.base_lrs if self.saved is not None else (self.restored or {}).get("base_lrs")
        if not groups:
            return state
        group_lrs = self.request.group_lrs_for(groups)
        if group_lrs is None and len(groups) != len(state.base_lrs):
            group_lrs = tuple(groups)
        return replace(state, base_lrs=group_lrs) if group_lrs is not None else state

    @property
    def target(self) -> CosineState | None:
        """Scheduler state the callback writes after the restore (None: leave it as restored)."""
        return self.decision.target if self.mode == MODE_RESUME and self.decision else None

    @property
    def cooldown(self) -> CooldownState | None:
        """The cooldown the run follows, by its own scheduler module: ``--lr-policy cooldown``'s, or the one a cooldown
        run's checkpoint holds and the resume continues (None otherwise)."""
        return self.decision.cooldown if self.mode == MODE_RESUME and self.decision else None

    @property
    def restored_state(self) -> dict[str, Any] | None:
        """The scheduler ``state_dict`` fields the resume restores (Lightning's ``load_state_dict``), for any
        scheduler: the saved cosine with its ``last_epoch``, or ``restored``; None when nothing is restored."""
        if self.restored is not None:
            return dict(self.restored)
        return {**self.saved.to_json(), "last_epoch": self.resume_step} if self.saved is not None else None

    def key_steps(self) -> list[int]:
        s, start, end = self.schedule, self.resume_step, self.request.max_steps
        steps = {start, start + 1, (start + end) // 2, end}
        if s.warmup_steps > start and self.cooldown is None:
            steps |= {s.warmup_steps, s.warmup_steps + 1}
        return sorted(x for x in steps if start <= x <= end)

    def schedule_points(self) -> list[tuple[int, list[float]]]:
        if not self.ok:
            return []
        if not self.request.is_cosine:
            if self.request.stages == ():
                return []  # other schedules: the check shows them
            stages, _ = self._stages_and_bases()
            steps = {self.resume_step, self.request.max_steps, *(b + k for b in boundaries(stages)[1:] for k in (-1, 0))}
        else:
            steps = set(self.key_steps())
        inside = (t for t in sorted(steps) if self.resume_step <= t <= self.request.max_steps)
        return [(t, lrs) for t in inside if (lrs := self.planned_lrs(t)) is not None]

    def planned_lrs(self, step: int) -> list[float] | None:
        """Each param group's LR at ``step`` as planned: on a resume, one per checkpoint group. None for the
        schedules only NeMo's own class steps (``--schedule NAME`` but cosine): the check shows those."""
        if not self.request.is_cosine:
            if self.request.stages == ():
                return None
            stages, bases = self._stages_and_bases()
            return staged_lrs(stages, bases, step)
        if self.cooldown is not None:
            return cooldown_lrs(self.cooldown, step)
        return lr_at(self.schedule, step)

    @property
    def stage_switches(self) -> list[int]:
        """The steps a staged run switches LR stage at (none for other schedules)."""
        return boundaries(self._stages_and_bases()[0])[1:] if self.request.stages else []

    def _stages_and_bases(self) -> tuple[tuple[Stage, ...], list[float]]:
        """A staged run's stages and base LRs: the checkpoint's where it restores them, else the request's."""
        src = self.restored or {}
        stages = stages_from_json(src["stages"]) if src.get("stages") else self.request.stages
        return stages, list(src.get("base_lrs") or self.request.base_lrs)


def _fresh(request: ScheduleRequest, choice: Choice, mode: str = MODE_FRESH) -> ResumePlan:
    problems = []
    if choice.error:
        problems.append(Problem(choice.error_code or NO_USABLE_CHECKPOINT, "error", choice.error))
    # The check's rules on the pure mirror: an unchecked request (--launch-anyway) may fail them. Other
    # schedules than NeMo's cosine have no pure mirror: the pre-launch check runs NeMo's class.
    unsafe = unsafe_reason(request.cosine_state(), -1, request.max_steps) if request.is_cosine else None
    if unsafe:
        problems.append(Problem(SCHEDULE_FAILS, "error", f"the requested schedule: {unsafe[0]}", unsafe[1]))
    ckpt = str(choice.weights_only.state.location.path) if mode == MODE_WEIGHTS and choice.weights_only else None
    return ResumePlan(request, choice, mode, ckpt, 0, None, None, tuple(problems))


def plan_resume(
    run_dir: Path | str,
    request: ScheduleRequest,
    *,
    resume: str = "auto",
    policy: str = "auto",
    restart_from_weights: bool = False,
    max_jump: float = MAX_LR_JUMP,
    validate: bool = True,
) -> ResumePlan:
    """Choose the checkpoint and the schedule for ``request``; never silently start over.

    Args:
        run_dir: the run folder (searched recursively) or a checkpoint.
        request: the validated schedule asked for.
        resume: ``auto``, ``never`` or a checkpoint path.
        policy: an LR policy from :data:`nemo_resume.planning.policy.POLICIES`.
        restart_from_weights: take the newest weights-only checkpoint (a finished run) as
            initial weights with a fresh optimizer and schedule, instead of a full resume.
        max_jump: the largest relative LR change at the resume step a policy may make unasked
            (``--max-jump``; the check applies the same limit).
        validate: refuse (NemoResumeError) an unchecked request wherever its values are used, i.e.
            everywhere but a ``keep`` resume, whose schedule the checkpoint gives. False plans a
            known-bad request as NeMo would run it (``--launch-anyway``).

    Raises:
        NemoResumeError: ``resume`` names something that is not a checkpoint.
    """
    plan = _plan(run_dir, request, resume, policy, restart_from_weights, max_jump, validate)
    return replace(plan, max_jump=max_jump)


def _plan(
    run_dir: Path | str, request: ScheduleRequest, resume: str, policy: str, restart_from_weights: bool,
    max_jump: float, validate: bool,
) -> ResumePlan:
    """:func:`plan_resume`'s plan, before it records ``max_jump``."""
    validate_cooldown_request(request, policy)
    choice = choose_checkpoint(run_dir, resume)
    if policy == COOLDOWN and (restart_from_weights or (choice.checkpoint is None and not choice.error)):
        why = "--restart-from-weights starts a fresh schedule" if restart_from_weights else choice.why
        raise NemoResumeError(f"--lr-policy cooldown anneals a checkpoint's LR, and this run starts fresh ({why}); "
                              "give --resume PATH of a checkpoint with its optimizer state, or another --lr-policy")
    keep_resume = policy == "keep" and not restart_from_weights and choice.checkpoint is not None
    if validate and not request.checked and not keep_resume:
        request = replace(request, checked=True)  # raises NemoResumeError naming the value to change
    if restart_from_weights:
        if choice.weights_only is None:
            err = f"--restart-from-weights: no weights-only checkpoint newer than the resumable ones under {run_dir}"
            return ResumePlan(request, choice, MODE_WEIGHTS, None, 0, None, None, (Problem(NO_USABLE_CHECKPOINT, "error", err),))
        return _fresh(request, choice, MODE_WEIGHTS)
    chosen = choice.checkpoint
    if chosen is None:
        return _fresh(request, choice)
    state = chosen.state
    step = state.scheduler.last_epoch if state.scheduler and state.scheduler.last_epoch is not None else state.step
    assert step is not None  # a resumable checkpoint has a step (InspectedCheckpoint.resumable)
    path = str(state.location.path)
    saved_class = state.config.scheduler_class if state.config else None
    restored = restored_fields(state.scheduler) if state.scheduler is not None else None
    if restored is not None and (holds_cooldown(restored) or saved_class == COOLDOWN_TARGET):  # a cooldown run's
        return _resume_cooldown(request, choice, path, step, restored, policy)
    if policy == COOLDOWN:  # the run ends at the resume step + --decay-steps
        request = replace(request, max_steps=cooldown_end(request, step))
    mismatch = _scheduler_mismatch(saved_class, request, path)
    if mismatch:
        return ResumePlan(request, choice, MODE_RESUME, path, step, None, None, (mismatch,))
    if restored is not None and keeps_saved_state(request, restored):
        return _resume_restored(request, choice, path, step, restored, policy)
    saved = cosine_state(state.scheduler) if state.scheduler else None
    if saved is None:
        problem = Problem(NO_SCHEDULER_STATE, "error", f"{path} holds no readable scheduler state; cannot plan the LR")
        return ResumePlan(request, choice, MODE_RESUME, path, step, None, None, (problem,))
    decision, problems = plan_schedule(saved, step, request, policy, max_jump)
    return ResumePlan(request, choice, MODE_RESUME, path, step, saved, decision, problems)


def with_compat(plan: ResumePlan, new_run: NewRun) -> ResumePlan:
    """``plan`` and what resuming its checkpoint as ``new_run`` breaks or silently changes (:mod:`.compat`).

    A launch known to run NeMo's pre-training data module (``new_run.datamodule``) is given the dataset size that
    keeps the checkpoint's data (``train_samples``), and is judged with it.
    """
    chosen = plan.choice.checkpoint
    if plan.mode != MODE_RESUME or chosen is None:
        return plan
    layout = chosen.state.run_layout
    samples = planned_train_samples(layout, new_run) if new_run.datamodule == PRETRAINING_DATAMODULE else None
    if samples is not None:
        new_run = replace(new_run, num_train_samples=samples)
    return replace(plan, problems=(*plan.problems, *compat_problems(layout, new_run)), train_samples=samples)


def keeps_saved_state(request: ScheduleRequest, restored: Mapping[str, Any]) -> bool:
    """The checkpoint's scheduler state (``restored``, its ``state_dict`` fields) continues as saved
    (``ResumePlan.restored``, no cosine plan): any scheduler but NeMo's CosineAnnealing, and a staged or a cooldown
    run's checkpoint whatever the request."""
    return not request.is_cosine or bool(restored.get("stages")) or holds_cooldown(restored)


def plan_schedule(
    saved: CosineState, step: int, request: ScheduleRequest, policy: str, max_jump: float = MAX_LR_JUMP
) -> tuple[Decision | None, tuple[Problem, ...]]:
    """The LR half of a cosine resume plan: ``policy``'s decision for the checkpoint's ``saved`` schedule at
    ``step``, and the problems that make the plan unsafe (pure: no files).

    A jump at the resume step above ``max_jump`` is an error, as in the check, unless the policy chose it
    (``recompute``): then it is reported as a warning, and the check reports it too.
    """
    try:
        decision = decide(saved, step, request, policy)
    except ScheduleFailure as exc:  # the saved schedule cannot even give the LR at the resume step
        message = f"--lr-policy {policy}: the checkpoint's saved schedule fails at its own step: {exc}"
        return None, (Problem(POLICY_REFUSED, "error", message, exc.failure.step),)
    if decision.refused:
        return decision, (
            Problem(POLICY_REFUSED, "error", f"--lr-policy {decision.policy}: {decision.refused}", decision.refused_step),
        )
    # a cooldown is safe by its form (from above min_lr, never rising, min_lr at max_steps); the check runs its class
    unsafe = unsafe_reason(decision.effective(saved), step, request.max_steps) if decision.cooldown is None else None
    if unsafe:  # a policy produced an unsafe schedule: a bug here, never passed on to a run
        return decision, (Problem(POLICY_REFUSED, "error", f"--lr-policy {decision.policy}: {unsafe[0]}", unsafe[1]),)
    if decision.jump > max_jump:
        chosen = jump_chosen_by(decision)
        severity: Severity = "warning" if chosen else "error"
        why = f" (chosen by {chosen})" if chosen else f", above --max-jump {max_jump:g}"
        return decision, (
            Problem(LR_JUMP, severity, f"the LR changes by {decision.jump:.1%} at the resume step {step}{why}", step),
        )
    return decision, ()


def jump_chosen_by(decision: Decision | None) -> str | None:
    """The flag that chose a jump at the resume step: ``recompute`` restarts the schedule on purpose."""
    return "--lr-policy recompute" if decision is not None and decision.policy == "recompute" else None


def _scheduler_mismatch(saved_class: str | None, request: ScheduleRequest, path: str) -> Problem | None:
    """The checkpoint's run used another scheduler module than the request builds (from its context/io.json)."""
    saved, wanted = (saved_class or "").rsplit(".", 1)[-1], scheduler_module(request).name
    if not saved or saved == wanted:
        return None
    return Problem(SCHEDULER_MISMATCH, "error", f"{path} was saved by {saved}, but --schedule {request.schedule} builds "
                   f"{wanted}: Lightning would load one scheduler's state into the other; resume with the schedule the "
                   "run was started with, or --restart-from-weights")


def restored_fields(sched: SchedulerState) -> dict[str, Any]:
    """The scheduler ``state_dict`` fields a resume restores, as Lightning's ``load_state_dict`` takes them."""
    fields = {
        "base_lrs": list(sched.base_lrs),
        "min_lr": sched.min_lr,
        "max_steps": sched.max_steps,
        "warmup_steps": sched.warmup_steps,
        "constant_steps": sched.constant_steps,
        "decay_steps": sched.decay_steps,
        "last_epoch": sched.last_epoch,
        "stages": [st.to_json() for st in sched.stages],
        **sched.extra,
    }
    return {k: v for k, v in fields.items() if v is not None and v != []}


def _resume_restored(
    request: ScheduleRequest, choice: Choice, path: str, step: int, restored: dict[str, Any], policy: str
) -> ResumePlan:
    """A resume of a schedule other than NeMo's cosine: the checkpoint's scheduler state continues."""
    decision = decide_restored(restored, step, request, policy)
    problems: tuple[Problem, ...] = ()
    if decision.refused:
        message = f"--lr-policy {decision.policy}: {decision.refused}"
        problems = (Problem(POLICY_REFUSED, "error", message, decision.refused_step),)
    return ResumePlan(request, choice, MODE_RESUME, path, step, None, decision, problems, restored)


def _resume_cooldown(
    request: ScheduleRequest, choice: Choice, path: str, step: int, restored: dict[str, Any], policy: str
) -> ResumePlan:
    """A resume of a cooldown run's checkpoint: its cooldown continues to its end (:func:`continue_cooldown`);
    the run ends there, and the recipe builds the cooldown's module with its values."""
    try:
        held = saved_cooldown(restored)
    except NemoResumeError as exc:
        problem = Problem(NO_SCHEDULER_STATE, "error", f"{path} was saved by a cooldown run, but {exc}; cannot plan the LR")
        return ResumePlan(request, choice, MODE_RESUME, path, step, None, None, (problem,), restored)
    decision = continue_cooldown(held, restored.get("base_lrs") or held.start_lrs, step, request, policy)
    if decision.refused:
        problem = Problem(POLICY_REFUSED, "error", f"--lr-policy {policy}: {decision.refused}", decision.refused_step)
        return ResumePlan(request, choice, MODE_RESUME, path, step, None, decision, (problem,), restored)
    if policy == COOLDOWN:
        cooldown_end(request, held.start_step)  # a --max-steps that says otherwise is refused (exit 2)
    request = replace(request, max_steps=held.end_step)
    return ResumePlan(request, choice, MODE_RESUME, path, step, None, decision, (), restored)
