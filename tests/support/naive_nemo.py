"""NeMo's CosineAnnealing stepped one step at a time, the way a training loop drives it: the ground truth
the check and the planner are compared with."""

from __future__ import annotations

import warnings

import torch
from nemo.lightning.pytorch.optim.lr_scheduler import CosineAnnealingScheduler

from nemo_resume.apply import apply_schedule
from nemo_resume.check import ResumePoint
from nemo_resume.schedules.cosine import CosineState

NEMO_ERRORS = (ValueError, AssertionError, ZeroDivisionError)


class Naive:
    """Built as a recipe builds it; restored and planned as a resume is; then ``run_to`` steps it."""

    def __init__(self, request: CosineState, resume: ResumePoint | None = None) -> None:
        self.failure: tuple[int, BaseException] | None = None
        self.lrs: dict[int, list[float]] = {}
        params = [torch.nn.Parameter(torch.zeros(1)) for _ in request.base_lrs]
        self.opt = torch.optim.SGD([{"params": [p], "lr": lr} for p, lr in zip(params, request.base_lrs)], lr=1.0)
        module = CosineAnnealingScheduler(
            max_steps=request.max_steps,
            warmup_steps=request.warmup_steps,
            constant_steps=request.constant_steps,
            min_lr=request.min_lr,
        )
        try:
            self.sched = module.scheduler(model=None, optimizer=self.opt)["lr_scheduler"]["scheduler"]
        except NEMO_ERRORS as exc:
            self.failure = (0, exc)
            return
        if resume is not None:
            self.sched.load_state_dict({**resume.restored, "last_epoch": resume.step})
            if resume.target is not None:
                apply_schedule(self.sched, resume.target, resume.step)
        self._record()

    def _record(self) -> None:
        self.lrs[self.sched.last_epoch] = [g["lr"] for g in self.opt.param_groups]

    def run_to(self, end: int) -> Naive:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            while self.failure is None and self.sched.last_epoch < end:
                self.opt.step()
                try:
                    self.sched.step()
                except NEMO_ERRORS as exc:  # last_epoch was already advanced to the failing step
                    self.failure = (self.sched.last_epoch, exc)
                    return self
                self._record()
        return self

    @property
    def failure_step(self) -> int | None:
        return self.failure[0] if self.failure else None
