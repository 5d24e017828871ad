"""Property: every plan a policy accepts runs clean through NeMo's real scheduler, applied for real."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from nemo_resume.errors import NemoResumeError
from nemo_resume.planning.policy import decide
from nemo_resume.schedules.cosine import CosineState, ScheduleFailure, lr_at
from nemo_resume.schedules.request import ScheduleRequest

pytestmark = pytest.mark.nemo

lrs = st.sampled_from([1e-6, 5e-6, 1e-5, 3e-5, 1e-4, 3e-4])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    saved_lrs=st.lists(lrs, min_size=1, max_size=2),
    saved_min=st.sampled_from([0.0, 1e-6, 1e-5, 3e-5]),
    saved_w=st.integers(0, 300),
    saved_m=st.integers(1, 800),
    step=st.integers(0, 900),
    req_min=st.sampled_from([0.0, 1e-7, 1e-6]),
    req_w=st.integers(0, 200),
    req_m=st.integers(1, 1200),
    policy=st.sampled_from(["auto", "smooth", "recompute", "keep"]),
)
def test_accepted_plans_never_raise_in_nemo_nor_go_below_min_lr(
    saved_lrs, saved_min, saved_w, saved_m, step, req_min, req_w, req_m, policy
):
    from nemo_resume.check import ResumePoint, check_schedule

    saved = CosineState(tuple(saved_lrs), saved_min, saved_m, saved_w)
    try:
        lr_at(saved, step)
    except ScheduleFailure:
        assume(False)  # no checkpoint holds a step its own scheduler could not compute
    mults = tuple(b / saved_lrs[0] for b in saved_lrs[1:])
    try:
        request = ScheduleRequest(saved_lrs[0], req_min, req_m, min(req_w, req_m), 0, mults)
    except NemoResumeError:
        assume(False)
    d = decide(saved, step, request, policy)
    assume(d.refused is None and step < req_m)
    restored = {**saved.to_json(), "last_epoch": step}
    result = check_schedule(request.cosine_state(), resume=ResumePoint(step, restored, d.target))
    verdict = {c.name: c for c in result.checks}
    for name in ("nemo_runs", "finite", "at_or_above_min_lr", "decay_non_increasing"):
        assert verdict[name].ok is not False, (name, verdict[name].reason)
    if d.policy == "smooth":
        assert verdict["no_jump_at_resume"].ok, verdict["no_jump_at_resume"].reason
