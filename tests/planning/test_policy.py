"""LR policies on resume: each produces a schedule NeMo will not reject, or refuses with the reason."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from nemo_resume.errors import NemoResumeError
from nemo_resume.planning.policy import decide
from nemo_resume.schedules.cosine import CosineState, first_failure, lr_at
from nemo_resume.schedules.request import ScheduleRequest

INCIDENT = CosineState(base_lrs=(1e-5,), min_lr=3e-5, max_steps=1000, warmup_steps=500)
FIXED = ScheduleRequest(lr=1e-5, min_lr=1e-6, max_steps=1000, warmup_steps=500)


def test_keep_is_refused_for_the_incident_with_the_failing_step():
    d = decide(INCIDENT, 499, FIXED, "keep")
    assert d.refused and "step 501" in d.refused


def test_strict_names_every_value_that_differs():
    d = decide(INCIDENT, 499, FIXED, "strict")
    assert d.refused and "min_lr: checkpoint 3e-05, requested 1e-06" in d.refused
    assert "max_steps" not in d.refused


def test_smooth_starts_at_the_checkpoint_lr_and_ends_at_the_new_min_lr():
    d = decide(INCIDENT, 499, FIXED, "smooth")
    assert d.refused is None and d.jump < 1e-12
    t = d.target
    assert lr_at(t, 499) == pytest.approx([1e-5 * 500 / 501])
    assert lr_at(t, 1000) == pytest.approx([1e-6])
    assert first_failure(t, 500, 1000) is None
    lrs = [lr_at(t, s)[0] for s in range(499, 1001)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))


def test_auto_resolves_to_smooth_when_the_request_differs():
    d = decide(INCIDENT, 499, FIXED, "auto")
    assert d.policy == "smooth" and d.refused is None and d.notes[0].startswith("auto: the request differs")


def test_auto_keeps_an_identical_safe_schedule():
    saved = CosineState(base_lrs=(1e-4,), min_lr=1e-6, max_steps=1000, warmup_steps=500)
    request = ScheduleRequest(lr=1e-4, min_lr=1e-6, max_steps=1000, warmup_steps=500)
    d = decide(saved, 700, request, "auto")
    assert d.policy == "keep" and d.target is None and d.refused is None


def test_recompute_reports_the_jump_at_the_resume_step():
    saved = CosineState(base_lrs=(1e-4,), min_lr=1e-6, max_steps=1000, warmup_steps=100)
    request = ScheduleRequest(lr=2e-4, min_lr=1e-6, max_steps=1000, warmup_steps=100)
    d = decide(saved, 500, request, "recompute")
    assert d.target == request.cosine_state()
    expected = lr_at(request.cosine_state(), 500)[0] / lr_at(saved, 500)[0] - 1
    assert d.jump == pytest.approx(expected)


def test_extending_a_finished_run_keep_refused_smooth_decays_to_the_new_min_lr():
    saved = CosineState(base_lrs=(1e-3,), min_lr=1e-5, max_steps=300, warmup_steps=10)
    request = ScheduleRequest(lr=1e-3, min_lr=1e-6, max_steps=600, warmup_steps=10)
    keep = decide(saved, 300, request, "keep")
    assert keep.refused and "flat at min_lr" in keep.refused and "600" in keep.refused
    smooth = decide(saved, 300, request, "smooth")
    assert smooth.refused is None
    assert lr_at(smooth.target, 300) == pytest.approx([1e-5])
    assert lr_at(smooth.target, 600) == pytest.approx([1e-6])


def test_smooth_refuses_when_the_current_lr_is_not_above_the_new_min_lr():
    saved = CosineState(base_lrs=(1e-3,), min_lr=1e-5, max_steps=300, warmup_steps=10)
    request = ScheduleRequest(lr=1e-3, min_lr=1e-5, max_steps=600, warmup_steps=10)
    d = decide(saved, 300, request, "smooth")
    assert d.refused and "min_lr" in d.refused


def test_group_count_mismatch_is_refused_when_ratios_do_not_fit():
    d = decide(INCIDENT, 499, ScheduleRequest(lr=1e-5, min_lr=1e-6, max_steps=1000, lr_mults=(0.5,)), "auto")
    assert d.refused and "param group" in d.refused


def test_request_with_lr_not_above_min_lr_is_rejected_naming_the_fix():
    with pytest.raises(NemoResumeError, match=r"lr \(1e-05\) must be above min_lr \(3e-05\)"):
        ScheduleRequest(lr=1e-5, min_lr=3e-5, max_steps=1000, warmup_steps=500)
    with pytest.raises(NemoResumeError, match=r"warmup_steps \(500\) \+ constant_steps \(0\) > max_steps \(300\)"):
        ScheduleRequest(lr=1e-4, min_lr=1e-6, max_steps=300, warmup_steps=500)
    with pytest.raises(NemoResumeError, match=r"lr_mult\[0\]"):
        ScheduleRequest(lr=1e-4, min_lr=1e-6, max_steps=300, lr_mults=(0.001,))


lrs = st.sampled_from([1e-6, 5e-6, 1e-5, 3e-5, 1e-4, 3e-4])


@settings(max_examples=400, deadline=None)
@given(
    saved_lrs=st.lists(lrs, min_size=1, max_size=3),
    saved_min=st.sampled_from([0.0, 1e-6, 1e-5, 3e-5, 6e-5]),
    saved_w=st.integers(0, 200),
    saved_c=st.sampled_from([0, 0, 50]),
    saved_m=st.integers(1, 600),
    step=st.integers(0, 700),
    req_lr=lrs,
    req_min=st.sampled_from([0.0, 1e-7, 1e-6, 5e-6]),
    req_w=st.integers(0, 100),
    req_m=st.integers(1, 900),
    policy=st.sampled_from(["auto", "smooth", "recompute", "keep", "strict"]),
)
def test_no_policy_ever_yields_a_schedule_nemo_rejects_or_below_min_lr(
    saved_lrs, saved_min, saved_w, saved_c, saved_m, step, req_lr, req_min, req_w, req_m, policy
):
    saved = CosineState(tuple(saved_lrs), saved_min, saved_m, saved_w, saved_c)
    try:
        saved_at_step = lr_at(saved, step)
    except Exception:
        assume(False)  # a checkpoint cannot hold a step its own scheduler could not compute
    mults = tuple(b / saved_lrs[0] for b in saved_lrs[1:])
    try:
        request = ScheduleRequest(req_lr, req_min, req_m, min(req_w, req_m), 0, mults)
    except NemoResumeError:
        assume(False)
    d = decide(saved, step, request, policy)
    if d.refused:
        return
    effective = d.effective(saved)
    assert first_failure(effective, step + 1, max(step + 1, req_m)) is None
    for s in range(step + 1, req_m + 1, max(1, (req_m - step) // 50)):
        got = lr_at(effective, s)
        if s > effective.warmup_steps:
            assert all(x >= effective.min_lr * (1 - 1e-12) for x in got)
    if d.policy == "smooth":
        assert d.jump < 1e-12
        assert lr_at(effective, step) == pytest.approx(saved_at_step)


# Megatron splits param groups by weight decay as well as by lr_mult: a checkpoint has more
# groups than the request has multipliers (regression: every such resume used to be refused).
SPLIT = CosineState(base_lrs=(1e-5, 1e-5), min_lr=3e-5, max_steps=1000, warmup_steps=500)


@pytest.mark.parametrize("policy", ["smooth", "recompute", "auto"])
def test_weight_decay_split_groups_map_onto_a_single_group_request(policy):
    d = decide(SPLIT, 499, FIXED, policy)
    assert d.refused is None, d.refused
    assert len(d.target.base_lrs) == 2 and d.target.base_lrs[0] == d.target.base_lrs[1]
    assert first_failure(d.target, 500, 1000) is None


def test_identical_request_keeps_a_split_group_checkpoint():
    saved = CosineState(base_lrs=(1e-4, 1e-4, 5e-5), min_lr=1e-6, max_steps=1000, warmup_steps=500)
    request = ScheduleRequest(lr=1e-4, min_lr=1e-6, max_steps=1000, warmup_steps=500, lr_mults=(0.5,))
    assert decide(saved, 700, request, "auto").policy == "keep"
    assert decide(saved, 700, request, "strict").refused is None
    d = decide(saved, 700, ScheduleRequest(lr=2e-4, min_lr=1e-6, max_steps=1000, warmup_steps=500, lr_mults=(0.5,)),
               "recompute")
    assert d.target.base_lrs == (2e-4, 2e-4, 1e-4)


def test_group_ratios_the_request_cannot_explain_are_refused_for_recompute():
    saved = CosineState(base_lrs=(1e-4, 3e-5), min_lr=1e-6, max_steps=1000, warmup_steps=10)
    d = decide(saved, 500, ScheduleRequest(lr=1e-4, min_lr=1e-6, max_steps=1000, warmup_steps=10, lr_mults=(0.5,)), "recompute")
    assert d.refused and "--lr-mult" in d.refused
    assert decide(saved, 500, ScheduleRequest(lr=1e-4, min_lr=1e-6, max_steps=1000, warmup_steps=10), "keep").refused is None
