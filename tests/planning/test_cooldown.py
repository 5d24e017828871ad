"""``--lr-policy cooldown``: the pure shape and the planner's decision (no files)."""

from __future__ import annotations

import math

import pytest

from nemo_resume.errors import NemoResumeError
from nemo_resume.planning.policy import continue_cooldown, decide
from nemo_resume.planning.resume_plan import plan_schedule
from nemo_resume.schedules.cooldown import CooldownState, cooldown_lrs, saved_cooldown, validate_cooldown_request
from nemo_resume.schedules.cosine import CosineState, lr_at
from nemo_resume.schedules.request import ScheduleRequest

# A finished-looking cosine with two groups (lr and lr x 0.5), saved at step 200 of 300, and the incident's
# checkpoint (min_lr 3e-5 above its LR 9.98e-6, at step 499).
SAVED = CosineState(base_lrs=(1e-3, 5e-4), min_lr=1e-4, max_steps=300, warmup_steps=50)
INCIDENT = CosineState(base_lrs=(1e-5,), min_lr=3e-5, max_steps=1000, warmup_steps=500)


def _request(decay_type: str | None = "linear", d: int = 40, **kw) -> ScheduleRequest:
    return ScheduleRequest(**{"lr": 1e-3, "min_lr": 1e-6, "max_steps": 240, "lr_mults": (0.5,), "decay_steps": d,
                              "decay_type": decay_type, **kw})


@pytest.mark.parametrize(("decay_type", "halfway"), [("linear", 0.5), ("cosine", 0.5), ("1-sqrt", 1 - math.sqrt(0.5))])
def test_the_shape_starts_at_the_start_lr_ends_at_min_lr_and_holds_it(decay_type, halfway):
    s = CooldownState((1e-3, 5e-4), 0.0, 200, 40, decay_type)
    assert cooldown_lrs(s, 200) == [1e-3, 5e-4]  # f(0) = 1: no jump, no warmup
    assert cooldown_lrs(s, 220) == pytest.approx([1e-3 * halfway, 5e-4 * halfway], rel=1e-12)
    assert cooldown_lrs(s, 240) == [0.0, 0.0] and cooldown_lrs(s, 300) == [0.0, 0.0]
    lrs = [cooldown_lrs(s, t) for t in range(200, 241)]
    assert all(a[0] >= b[0] for a, b in zip(lrs, lrs[1:]))  # never rises
    assert all(row[1] / row[0] == pytest.approx(0.5, rel=1e-12) for row in lrs[:-1])  # min_lr 0: the ratio holds


def test_the_floor_is_absolute_and_reached_exactly_at_the_end():
    s = CooldownState((1e-3, 5e-4), 1e-4, 10, 7, "1-sqrt")
    assert cooldown_lrs(s, 17) == [1e-4, 1e-4] and cooldown_lrs(s, 16)[1] > 1e-4


@pytest.mark.parametrize("decay_type", ["linear", "cosine", "1-sqrt", None])
def test_the_planned_cooldown_continues_from_each_groups_lr_at_the_resume_step(decay_type):
    decision, problems = plan_schedule(SAVED, 200, _request(decay_type), "cooldown")
    assert problems == () and decision.target is None
    cd = decision.cooldown
    assert cd.start_lrs == tuple(lr_at(SAVED, 200))  # each group's own LR: the checkpoint's ratios stay
    assert (cd.start_step, cd.end_step, cd.min_lr, cd.decay_type) == (200, 240, 1e-6, decay_type or "linear")
    assert cooldown_lrs(cd, 200) == lr_at(SAVED, 200) and decision.jump == 0.0  # first LR = the checkpoint's


def test_a_checkpoint_min_lr_above_the_requested_one_is_no_error():
    """The incident's checkpoint (its min_lr 3e-5) cooled down to 1e-6: the cooldown's min_lr is the request's."""
    request = ScheduleRequest(lr=1e-5, min_lr=1e-6, max_steps=100, decay_steps=100)
    decision, problems = plan_schedule(INCIDENT, 499, request, "cooldown")
    assert problems == () and decision.cooldown.min_lr == 1e-6
    assert decision.cooldown.start_lrs == pytest.approx((1e-5 * 500 / 501,), rel=1e-12)


def test_a_min_lr_not_below_a_groups_lr_is_refused_with_the_group():
    decision = decide(SAVED, 200, _request(min_lr=3e-4), "cooldown")  # group 1 is at ~2.4e-4
    assert decision.refused and "group 1" in decision.refused and "--min-lr" in decision.refused


@pytest.mark.parametrize(("kw", "policy", "text"), [
    (dict(decay_steps=None), "cooldown", "needs --decay-steps"),
    (dict(decay_steps=0), "cooldown", "--decay-steps 0 must be a whole number >= 1"),
    (dict(decay_type="exp"), "cooldown", "--decay-type exp is not one of linear, cosine, 1-sqrt"),
    (dict(warmup_steps=5), "cooldown", "never re-runs warmup"),
    (dict(decay_steps=None, decay_type="linear"), "smooth", "--decay-type with --schedule cosine apply to --lr-policy cooldown"),
    (dict(), "auto", "--decay-steps/--decay-type with --schedule cosine"),
])
def test_cooldown_flags_that_cannot_mean_anything_are_refused(kw, policy, text):
    with pytest.raises(NemoResumeError, match=text.replace("(", r"\(").replace("+", r"\+")):
        validate_cooldown_request(_request(**kw), policy)


HELD = CooldownState((1e-3, 5e-4), 1e-6, 200, 40, "1-sqrt")  # what a cooldown run's checkpoint holds


def test_a_saved_cooldown_reads_back_exactly_and_a_damaged_one_names_its_fields():
    assert saved_cooldown({**HELD.to_json(), "base_lrs": [1e-3, 5e-4], "last_epoch": 220}) == HELD
    with pytest.raises(NemoResumeError, match=r"cooldown_steps=0, cooldown_type='exp'"):
        saved_cooldown({**HELD.to_json(), "cooldown_steps": 0, "cooldown_type": "exp"})


@pytest.mark.parametrize(("step", "policy", "text"), [
    (240, "auto", "is at the end of the 1-sqrt cooldown started at step 200 (to min_lr 1e-06 at step 240)"),
    (220, "auto", None),
    (220, "smooth", "--lr-policy smooth cannot replace it"),
])
def test_a_cooldown_checkpoint_continues_its_cooldown_until_its_end(step, policy, text):
    decision = continue_cooldown(HELD, (1e-3, 5e-4), step, _request(decay_steps=None, decay_type=None), policy)
    assert decision.refused == text or (text is not None and text in decision.refused)
    assert (decision.cooldown, decision.policy) == ((None, policy) if text else (HELD, "cooldown"))
