"""One validator for a schedule's values: the checked request, the unchecked one and the check's input agree."""

from __future__ import annotations

import math

import pytest

from nemo_resume.check.inputs import unchecked_request
from nemo_resume.errors import NemoResumeError
from nemo_resume.schedules.request import ScheduleRequest

GOOD = dict(lr=1e-4, min_lr=1e-5, max_steps=100, warmup_steps=10, constant_steps=0, lr_mults=(0.5,))
BAD = [
    ("max_steps", True, "max_steps=True must be a whole number >= 0"),  # a bool is not a step count
    ("warmup_steps", False, "warmup_steps=False must be a whole number >= 0"),
    ("max_steps", 10.0, "max_steps=10.0 must be a whole number >= 0"),
    ("constant_steps", -1, "constant_steps=-1 must be a whole number >= 0"),
    ("max_steps", 0, "max_steps=0 must be at least 1"),
    ("lr", True, "lr=True must be a finite number >= 0"),
    ("lr", math.nan, "lr=nan must be a finite number >= 0"),
    ("min_lr", -1e-6, "min_lr=-1e-06 must be a finite number >= 0"),
    ("lr_mults", (0.0,), "lr multiplier 0.0 must be a finite number > 0"),
    ("lr_mults", (True,), "lr multiplier True must be a finite number > 0"),
]


@pytest.mark.parametrize(("field", "value", "message"), BAD, ids=[f"{f}={v!r}" for f, v, _ in BAD])
@pytest.mark.parametrize("how", ["checked", "unchecked", "check input"])
def test_values_no_schedule_survives_are_refused_the_same_way_everywhere(field, value, message, how):
    values = {**GOOD, field: value}
    with pytest.raises(NemoResumeError) as err:
        if how == "check input":
            unchecked_request(**values)
        else:
            ScheduleRequest(**values, checked=how == "checked")
    assert str(err.value) == message


def test_the_issue_example_a_boolean_max_steps_is_refused():
    with pytest.raises(NemoResumeError, match="max_steps=True"):
        ScheduleRequest(1e-4, 0.0, True)


def test_unchecked_keeps_what_nemo_would_fail_on_for_the_check_to_find():
    # lr below min_lr: a checked request names the fix, an unchecked one lets the check find step 501
    with pytest.raises(NemoResumeError, match="must be above min_lr"):
        ScheduleRequest(1e-5, 3e-5, 1000, 500)
    state = unchecked_request(1e-5, 3e-5, 1000, 500)
    assert state.base_lrs == (1e-5,) and state.min_lr == 3e-5
    assert ScheduleRequest(1e-5, 3e-5, 1000, 500, checked=False).cosine_state() == state
