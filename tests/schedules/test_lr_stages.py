"""The staged schedule as a pure function: parsing, the LR table step by step, and the refusals."""

from __future__ import annotations

import pytest

from nemo_resume.errors import NemoResumeError
from nemo_resume.schedules.lr_stages import (
    Stage,
    boundaries,
    describe,
    parse_stages,
    stage_index,
    staged_lrs,
    stages_from_json,
    total_steps,
)

SEED_004 = "75:1e-4,50:1e-5"


def test_seed_004_two_stages_switch_lr_at_step_75():
    stages = parse_stages(SEED_004)
    assert stages == (Stage(75, 1e-4), Stage(50, 1e-5))
    assert total_steps(stages) == 125 and boundaries(stages) == [0, 75]
    table = {step: staged_lrs(stages, [1e-4], step)[0] for step in (0, 74, 75, 124, 125, 500)}
    assert table == {
        0: 1e-4,
        74: 1e-4,
        75: pytest.approx(1e-5),
        124: pytest.approx(1e-5),
        125: pytest.approx(1e-5),
        500: pytest.approx(1e-5),
    }


def test_warmup_inside_a_stage_ramps_from_the_previous_lr_with_nemos_convention():
    stages = parse_stages("2:1e-3:w1,3:1e-4:w2")
    lrs = [staged_lrs(stages, [1e-3], t)[0] for t in range(6)]
    # stage 1 warms up from 0: lr * (i + 1) / (w + 1); stage 2 from 1e-3 down to 1e-4 over 2 steps
    assert lrs == pytest.approx([1e-3 / 2, 1e-3, 1e-3 + (1e-4 - 1e-3) / 3, 1e-3 + (1e-4 - 1e-3) * 2 / 3, 1e-4, 1e-4])


def test_every_group_keeps_its_ratio_to_the_first_stage_lr_in_every_stage():
    stages = parse_stages(SEED_004)
    assert staged_lrs(stages, [1e-4, 5e-5, 5e-4], 100) == pytest.approx([1e-5, 5e-6, 5e-5])


def test_stage_index_is_the_stage_the_step_trains_in_and_the_last_after_the_end():
    stages = parse_stages(SEED_004)
    assert [stage_index(stages, t) for t in (0, 74, 75, 124, 125)] == [0, 0, 1, 1, 1]


def test_describe_round_trips_exactly():
    stages = parse_stages("75:1.2345678901e-4,50:1e-5:w10")
    assert parse_stages(describe(stages)) == stages
    assert stages_from_json([s.to_json() for s in stages]) == stages


@pytest.mark.parametrize(
    "text, message",
    [
        ("75", "stage 1 is '75'; write STEPS:LR or STEPS:LR:wWARMUP"),
        ("75:1e-4,x:1e-5", "stage 2 is 'x:1e-5'"),
        ("75:1e-4:10", "stage 1 is '75:1e-4:10'"),
        ("0:1e-4", "stage 1 has 0 steps"),
        ("75:0", "stage 1 LR 0.0 must be a finite number > 0"),
        ("75:nan", "stage 1 LR nan must be a finite number > 0"),
        ("10:1e-4:w10", "stage 1 warmup w10 must be a whole number from 0 to 9"),
    ],
)
def test_malformed_stages_are_one_line_errors_naming_the_flag_and_the_stage(text, message):
    with pytest.raises(NemoResumeError) as err:
        parse_stages(text)
    assert (
        str(err.value).startswith(f"--lr-stages {text}: ") and message in str(err.value) and "\n" not in str(err.value)
    )


def test_stages_from_a_state_dict_must_be_plain_stage_objects():
    with pytest.raises(NemoResumeError, match="a stage has no 'lr'"):
        stages_from_json([{"steps": 3}])
    with pytest.raises(NemoResumeError, match="must be a list"):
        stages_from_json("75:1e-4")
