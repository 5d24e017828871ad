"""The plan file's schema without NeMo: every request field round-trips, an infinite jump stays strict JSON,
and a file that is not a current plan is refused naming the field. Real plans: tests/check/test_plan_file.py."""

from __future__ import annotations

import json
import math
import re

import pytest

from nemo_resume.errors import NemoResumeError
from nemo_resume.planning.choice import Choice
from nemo_resume.planning.plan_file import FIELDS, plan_from_json, plan_to_json
from nemo_resume.planning.resume_plan import MODE_RESUME, ResumePlan, plan_schedule
from nemo_resume.schedules.cosine import CosineState
from nemo_resume.schedules.lr_stages import parse_stages
from nemo_resume.schedules.request import ScheduleRequest

REQUESTS = [
    ScheduleRequest(1e-4, 1e-5, 1000, 50, 100),
    ScheduleRequest(1e-4, 1e-5, 1000, 50, lr_mults=(10.0, 0.5)),
    ScheduleRequest(1e-4, 0.0, 1000, 50, schedule="linear"),
    ScheduleRequest(1e-4, 1e-5, 200, 20, schedule="warmup_stable_decay", decay_steps=60, decay_type="linear"),
    ScheduleRequest(1e-3, 0.0, 125, lr_mults=(0.5,), schedule="staged", stages=parse_stages("75:1e-3:w5,50:1e-4")),
    ScheduleRequest(1e-5, 3e-5, 1000, 500, checked=False),  # the incident's config: NeMo fails on it, kept as given
]


@pytest.mark.parametrize("request_", REQUESTS, ids=lambda r: r.schedule)
def test_every_request_field_round_trips(request_):
    doc = json.loads(json.dumps(request_.to_json(), allow_nan=False))
    back = ScheduleRequest.from_json(doc, checked=False)
    assert back == request_ and back.to_json() == request_.to_json()


@pytest.mark.parametrize("obj, message", [
    ({"lr": 1e-4, "min_lr": 0}, "request: missing ['max_steps']"),
    ({"lr": 1e-4, "min_lr": 0, "max_steps": 10, "warmup": 1}, "request: unknown field(s) ['warmup']"),
    ({"lr": 1e-4, "min_lr": 0, "max_steps": 10, "lr_mults": 2}, "request.lr_mults=2 must be a list of numbers"),
    ({"lr": 1e-4, "min_lr": 0, "max_steps": 10, "decay_steps": 1.5}, "request.decay_steps=1.5 must be a whole number"),
    ({"lr": 1e-4, "min_lr": 0, "max_steps": 10, "stages": [{"lr": 1e-4}]}, "request.stages: a stage has no 'steps'"),
    ({"lr": 1e-4, "min_lr": 0, "max_steps": 10, "warmup_steps": True}, "request: warmup_steps=True must be a whole"),
])
def test_a_mistyped_request_is_refused_naming_the_field(obj, message):
    with pytest.raises(NemoResumeError, match=re.escape(message)):
        ScheduleRequest.from_json(obj, checked=False)


def _recompute_from_lr_0() -> ResumePlan:
    """A recompute from an LR of 0 (a cosine that ended at min_lr 0): an infinite jump, which recompute chose."""
    saved, request = CosineState((1e-4,), 0.0, 100, 10), ScheduleRequest(1e-4, 0.0, 200, 10)
    decision, problems = plan_schedule(saved, 100, request, "recompute")
    return ResumePlan(request, Choice(None, "a saved state"), MODE_RESUME, "ckpt", 100, saved, decision, problems)


def test_an_infinite_jump_is_written_as_null_and_read_back_as_infinity():
    plan = _recompute_from_lr_0()
    assert plan.decision.jump == math.inf
    doc = json.loads(json.dumps(plan_to_json(plan), allow_nan=False))  # strict: no Infinity
    assert doc["jump"] is None and set(doc) == set(FIELDS)
    back = plan_from_json(doc, "plan.json")
    assert back.decision.jump == math.inf and plan_to_json(back) == plan_to_json(plan)


@pytest.mark.parametrize("change, message", [
    ({"target": {**CosineState((1e-4,), 0.0, 200, 10).to_json(), "last_epoch": 7}}, "target: last_epoch=7 must be"),
    ({"policy": None}, "a target needs the policy that chose it"),
    ({"mode": "fresh"}, "restored and target belong to mode 'resume', not 'fresh'"),
    ({"problems": [{"code": "X", "severity": "fatal", "message": "m"}]}, "problems: {'code': 'X'"),
    ({"restored": {"base_lrs": [], "min_lr": 0.0, "max_steps": 100}}, "restored: base_lrs=[] must be a non-empty"),
    ({"max_jump": -1}, "max_jump=-1 must be a finite number >= 0"),
    ({"version": 2}, "plan file version 2 is not one this nemo-resume reads (1)"),
])
def test_a_plan_that_contradicts_itself_is_refused_naming_the_field(change, message):
    doc = {**plan_to_json(_recompute_from_lr_0()), **change}
    with pytest.raises(NemoResumeError) as exc:
        plan_from_json(doc, "--plan plan.json")
    assert str(exc.value).startswith("--plan plan.json: ") and message in str(exc.value)
