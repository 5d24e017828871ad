"""``--lr-policy`` for schedules other than NeMo's cosine: the checkpoint's state continues, or a refusal says why."""

from __future__ import annotations

import pytest

from nemo_resume.planning.policy import decide_restored
from nemo_resume.schedules.lr_stages import parse_stages
from nemo_resume.schedules.request import ScheduleRequest

CONSTANT = ScheduleRequest(1e-4, 0.0, 1000, schedule="constant")
SAVED_CONSTANT = {"base_lrs": [1e-4], "min_lr": 0.0, "max_steps": 1000, "warmup_steps": 0, "last_epoch": 400}
STAGED = ScheduleRequest(1e-4, 0.0, 125, schedule="staged", stages=parse_stages("75:1e-4,50:1e-5"))
SAVED_STAGED = {"base_lrs": [1e-4], "stages": [s.to_json() for s in STAGED.stages], "max_steps": 125, "last_epoch": 50}


@pytest.mark.parametrize("policy", ["keep", "auto", "strict"])
def test_an_unchanged_request_keeps_the_saved_schedule(policy):
    d = decide_restored(SAVED_CONSTANT, 400, CONSTANT, policy)
    assert d.refused is None and d.policy == "keep" and d.target is None


def test_a_changed_request_is_refused_under_auto_and_strict_and_ignored_under_keep():
    lower = ScheduleRequest(5e-5, 0.0, 1000, schedule="constant")
    for policy in ("auto", "strict"):
        d = decide_restored(SAVED_CONSTANT, 400, lower, policy)
        assert d.refused.startswith(
            "the request differs from the checkpoint (lr per group: checkpoint [0.0001], requested [5e-05])"
        )
    keep = decide_restored(SAVED_CONSTANT, 400, lower, "keep")
    assert keep.refused is None and keep.notes[-1].startswith("ignored (the checkpoint wins): lr per group")


def test_extending_a_constant_run_is_refused_because_the_saved_max_steps_drops_lr_to_min_lr():
    d = decide_restored(SAVED_CONSTANT, 400, ScheduleRequest(1e-4, 0.0, 2000, schedule="constant"), "keep")
    assert d.refused_step == 1000 and "ends at step 1000 but training runs to 2000" in d.refused


@pytest.mark.parametrize("policy", ["smooth", "recompute"])
def test_smooth_and_recompute_are_refused_with_the_reason(policy):
    d = decide_restored(SAVED_STAGED, 50, STAGED, policy)
    assert d.refused == (
        "--schedule staged is not NeMo's CosineAnnealing, the only scheduler a plan rewrites; its stages "
        "are restored from the checkpoint: use --lr-policy keep (or strict to require the same settings)"
    )


def test_staged_and_unstaged_states_do_not_mix_and_group_counts_must_match():
    assert "has no saved stages" in decide_restored(SAVED_CONSTANT, 50, STAGED, "keep").refused
    assert "is a staged run" in decide_restored(SAVED_STAGED, 50, CONSTANT, "keep").refused
    two = ScheduleRequest(1e-4, 0.0, 1000, lr_mults=(0.5,), schedule="constant")
    assert (
        "param group LRs [0.0001] do not fit the request's multipliers [1.0, 0.5]"
        in decide_restored(SAVED_CONSTANT, 400, two, "keep").refused
    )
