"""nemo_resume.schedules.cosine mirrors NeMo's CosineAnnealing: values and failures, step by step."""

from __future__ import annotations

import math
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nemo_resume.schedules.cosine import CosineState, ScheduleFailure, first_failure, lr_at

torch = pytest.importorskip("torch")
from nemo.core.optim.lr_scheduler import CosineAnnealing  # noqa: E402

pytestmark = pytest.mark.nemo


def _nemo_scheduler(s: CosineState) -> CosineAnnealing:
    """NeMo's real scheduler holding exactly ``s`` (built safely, then restored like a resume)."""
    params = [torch.nn.Parameter(torch.zeros(1)) for _ in s.base_lrs]
    opt = torch.optim.SGD([{"params": [p], "lr": lr} for p, lr in zip(params, s.base_lrs)], lr=1.0)
    sched = CosineAnnealing(opt, max_steps=10, warmup_steps=1, constant_steps=0, min_lr=0.0)
    sched.load_state_dict(s.to_json())
    return sched


def _nemo_lr(sched: CosineAnnealing, step: int) -> list[float]:
    sched.last_epoch = step
    sched._get_lr_called_within_step = True
    return list(sched.get_lr())


def _nemo_failure(s: CosineState, start: int, end: int):
    """Step NeMo's scheduler naively from start to end; the first step that raises, and the error."""
    sched = _nemo_scheduler(s)
    for step in range(start, end + 1):
        try:
            _nemo_lr(sched, step)
        except (ValueError, AssertionError, ZeroDivisionError) as exc:
            return step, exc
    return None, None


states = st.builds(
    lambda lrs, min_lr, w, c, m: CosineState(tuple(lrs), min_lr, m, w, c),
    st.lists(st.sampled_from([1e-5, 3e-5, 1e-4, 5e-6, 2e-4]), min_size=1, max_size=3),
    st.sampled_from([0.0, 1e-6, 1e-5, 3e-5, 6e-5]),
    st.integers(0, 30),
    st.sampled_from([0, 0, 5, 20]),
    st.integers(1, 60),
)


@settings(max_examples=300, deadline=None)
@given(states, st.integers(0, 70))
def test_lr_at_equals_nemo_cosine_annealing_at_every_step(s, step):
    sched = _nemo_scheduler(s)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            expected = _nemo_lr(sched, step)
        except (ValueError, AssertionError, ZeroDivisionError) as exc:
            with pytest.raises(ScheduleFailure) as ours:
                lr_at(s, step)
            kind = ours.value.failure.kind
            assert (kind == "below_min_lr") == isinstance(exc, ValueError)
            return
    got = lr_at(s, step)
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        assert math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-18)


@settings(max_examples=200, deadline=None)
@given(states, st.integers(0, 40))
def test_first_failure_is_the_step_naive_stepping_of_nemo_raises_at(s, start):
    end = max(s.max_steps + 2, start)
    step, _ = _nemo_failure(s, start, end)
    got = first_failure(s, start, end)
    assert (got.step if got else None) == step


def test_incident_fails_at_step_501_after_warmup_of_500():
    s = CosineState(base_lrs=(1e-5,), min_lr=3e-5, max_steps=1000, warmup_steps=500)
    assert lr_at(s, 499) == pytest.approx([1e-5 * 500 / 501])
    assert lr_at(s, 500) == pytest.approx([1e-5])
    assert first_failure(s, 500, 1000).step == 501
    assert first_failure(s, 500, 1000).kind == "below_min_lr"
    assert _nemo_failure(s, 500, 1000)[0] == 501


def test_constant_steps_collapse_every_group_to_group_zero():
    s = CosineState(base_lrs=(1e-4, 5e-4), min_lr=1e-6, max_steps=100, warmup_steps=10, constant_steps=20)
    assert lr_at(s, 40)[0] == lr_at(s, 40)[1]
    assert _nemo_lr(_nemo_scheduler(s), 40) == pytest.approx(lr_at(s, 40))


def test_lr_equal_to_min_lr_with_constant_steps_trips_nemo_bare_assert():
    s = CosineState(base_lrs=(1e-5,), min_lr=1e-5, max_steps=100, warmup_steps=10, constant_steps=5)
    failure = first_failure(s, 0, 100)
    assert failure is not None and failure.step == 0 and failure.kind == "assert_max_lr_gt_min_lr"
    step, exc = _nemo_failure(s, 0, 100)
    assert step == 0 and isinstance(exc, AssertionError) and str(exc) == ""


def test_warmup_zero_fails_at_the_first_step():
    s = CosineState(base_lrs=(1e-5,), min_lr=3e-5, max_steps=100, warmup_steps=0)
    assert first_failure(s, 0, 100).step == 0
