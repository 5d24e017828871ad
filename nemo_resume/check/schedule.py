""":func:`check_schedule`: one entry for every scheduler; NeMo's cosine or any other module."""

from __future__ import annotations

from nemo_resume.check.cosine import check_cosine
from nemo_resume.check.other_schedulers import check_module_schedule
from nemo_resume.check.result import CheckResult, ResumePoint
from nemo_resume.constants import MAX_LR_JUMP
from nemo_resume.errors import NemoResumeError
from nemo_resume.schedules.cooldown import validate_cooldown_request
from nemo_resume.schedules.cosine import CosineState
from nemo_resume.schedules.request import ScheduleRequest, is_real


def check_schedule(
    request: ScheduleRequest | CosineState,
    *,
    resume: ResumePoint | None = None,
    max_jump: float = MAX_LR_JUMP,
) -> CheckResult:
    """Run the schedule through NeMo's real scheduler over the whole horizon and check it.

    Args:
        request: the config's schedule. A :class:`ScheduleRequest` other than cosine is checked with
            its own NeMo module; pass an unchecked request (``checked=False``) or a :class:`CosineState`
            (e.g. from :func:`~nemo_resume.check.inputs.unchecked_request`) to check values that a
            checked request refuses, such as ``lr < min_lr`` (its ``decay_steps`` must be None).
        resume: a resume point; None checks a fresh run from step 0.
        max_jump: the largest relative LR change allowed at the resume step.

    Returns:
        The checks, NeMo's first failure, key steps and the probed curves.

    Raises:
        NemoResumeError: inconsistent input (group counts, a resume step past ``max_steps``,
            a restored field that is not a number).
    """
    if not is_real(max_jump) or not max_jump >= 0:
        raise NemoResumeError(f"--max-jump {max_jump} must be a number >= 0")
    if isinstance(request, ScheduleRequest):
        validate_cooldown_request(request, policy="")  # no resume here: cooldown flags would be ignored
    if isinstance(request, ScheduleRequest) and not request.is_cosine:
        return check_module_schedule(request, resume, max_jump)
    state = request.cosine_state() if isinstance(request, ScheduleRequest) else request
    return check_cosine(state, resume, max_jump)
