"""The schedule check agrees with NeMo's CosineAnnealing stepped naively, step by step and failure by failure."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nemo_resume.errors import NemoResumeError
from nemo_resume.schedules.cosine import CosineState
from nemo_resume.schedules.request import ScheduleRequest

torch = pytest.importorskip("torch")
pytest.importorskip("nemo.lightning.pytorch.optim.lr_scheduler")
from nemo.lightning.pytorch.optim.lr_scheduler import CosineAnnealingScheduler  # noqa: E402

from nemo_resume.check import ResumePoint, check_schedule, load_plan, unchecked_request  # noqa: E402
from nemo_resume.check.cosine import build  # noqa: E402
from nemo_resume.check.plot import phase_spans, plotted_series, write_plot  # noqa: E402
from nemo_resume.check.probe import probing  # noqa: E402
from nemo_resume.cli.check_cmd import main  # noqa: E402
from tests.support.naive_nemo import Naive  # noqa: E402

pytestmark = pytest.mark.nemo

INCIDENT = dict(lr=1e-5, min_lr=3e-5, max_steps=1000, warmup_steps=500)
INCIDENT_RESTORED = {
    "base_lrs": [1e-5],
    "min_lr": 3e-5,
    "max_steps": 1000,
    "warmup_steps": 500,
    "constant_steps": 0,
    "decay_steps": 500,
    "last_epoch": 499,
}
INCIDENT_TARGET = CosineState(base_lrs=(9.98e-6,), min_lr=1e-6, max_steps=1000, warmup_steps=499)


def _naive(request: CosineState, resume: ResumePoint | None = None) -> Naive:
    return Naive(request, resume).run_to(request.max_steps)


def _check(name: str, result):
    return next(c for c in result.checks if c.name == name)


def _assert_curve_is_naive_nemo(result, naive: Naive, label: str) -> None:
    curve = result.curve(label)
    assert curve is not None and len(curve.steps) > 0
    for step, row in zip(curve.steps.tolist(), curve.lrs.tolist()):
        assert row == pytest.approx(naive.lrs[step], rel=1e-12, abs=1e-20), step


# ---- known-bad configs: the check fails where NeMo fails ------------------------------------


def test_incident_config_fails_at_step_501_exactly_where_naive_nemo_stepping_raises():
    request = unchecked_request(**INCIDENT)
    result = check_schedule(request)
    naive = _naive(request)
    assert naive.failure_step == 501 and isinstance(naive.failure[1], ValueError)
    assert result.failure.step == naive.failure_step == 501
    assert "lower than the minimum learning rate" in result.failure.error
    assert "object at 0x" not in result.failure.error
    assert not result.ok and result.exit_code == 1
    assert result.first_problem.name == "nemo_runs" and result.first_problem.step == 501
    assert any("lower min_lr" in n for n in result.notes)  # ScheduleRequest's fix hint
    _assert_curve_is_naive_nemo(result, naive, "schedule")


def test_warmup_zero_with_lr_below_min_lr_fails_at_step_0_when_the_scheduler_is_built():
    request = unchecked_request(lr=1e-5, min_lr=3e-5, max_steps=1000, warmup_steps=0)
    result = check_schedule(request)
    assert _naive(request).failure_step == 0
    assert result.failure.step == 0 and result.failure.when == "build"
    assert _check("nemo_runs", result).ok is False
    assert all(c.ok is None for c in result.checks if c.name != "nemo_runs")


def test_constant_steps_with_lr_equal_to_min_lr_fails_at_step_0_on_nemos_bare_assert():
    request = unchecked_request(lr=3e-5, min_lr=3e-5, max_steps=100, warmup_steps=10, constant_steps=10)
    result = check_schedule(request)
    naive = _naive(request)
    assert naive.failure_step == 0 and isinstance(naive.failure[1], AssertionError) and str(naive.failure[1]) == ""
    assert result.failure.step == 0
    assert "assert max_lr > min_lr" in result.failure.error


def test_constant_steps_with_two_groups_fails_the_ratio_check_where_nemo_collapses_the_groups():
    request = unchecked_request(lr=1e-4, min_lr=1e-5, max_steps=100, warmup_steps=10, constant_steps=10, lr_mults=[2.0])
    result = check_schedule(request)
    naive = _naive(request)
    assert naive.failure is None and result.failure is None
    assert naive.lrs[0] == [0.0, 0.0]  # Megatron warmup starts at 0: no ratio to see yet
    assert naive.lrs[1][0] == naive.lrs[1][1]  # group 1 gets group 0's LR from step 1
    ratios = _check("group_ratios_kept", result)
    assert ratios.ok is False and ratios.step == 1 and "group 0's LR" in ratios.reason
    assert result.first_problem.name == "group_ratios_kept"
    _assert_curve_is_naive_nemo(result, naive, "schedule")


def test_class_defaults_decay_has_negative_length_and_the_lr_drops_to_min_lr_after_warmup():
    d = CosineAnnealingScheduler()
    request = unchecked_request(3e-4, d.min_lr, 1000, d.warmup_steps, d.constant_steps)
    result = check_schedule(request)
    naive = _naive(request)
    assert naive.failure is None and naive.lrs[751] == [d.min_lr]  # NeMo does not raise; it just skips decay
    neg = _check("no_negative_phase", result)
    assert neg.ok is False and neg.step == 751 and "decay_steps = -79750" in neg.reason
    assert result.exit_code == 1


def test_an_extra_group_whose_lr_mult_lands_below_min_lr_fails_after_warmup():
    request = unchecked_request(lr=1e-4, min_lr=3e-5, max_steps=100, warmup_steps=20, lr_mults=[0.1])
    result = check_schedule(request)
    assert _naive(request).failure_step == 21 == result.failure.step


# ---- resumes ------------------------------------------------------------------------------


def test_resuming_the_incident_checkpoint_without_a_plan_fails_again_at_501():
    request = unchecked_request(**INCIDENT)
    resume = ResumePoint(step=499, restored=INCIDENT_RESTORED)
    result = check_schedule(request, resume=resume)
    naive = Naive(request, resume).run_to(1000)
    assert naive.failure_step == 501 == result.failure.step
    assert result.start == 500
    assert _check("no_jump_at_resume", result).ok is True  # nothing changes at the resume: it just continues
    assert result.jump.relative == 0.0
    assert result.curve("planned") is None and result.curve("restored") is not None


def test_resuming_the_incident_checkpoint_with_the_planned_cosine_passes_without_a_jump():
    request = unchecked_request(**INCIDENT)
    resume = ResumePoint(step=499, restored=INCIDENT_RESTORED, target=INCIDENT_TARGET)
    result = check_schedule(request, resume=resume)
    naive = Naive(request, resume).run_to(1000)
    assert naive.failure is None and naive.lrs[1000] == pytest.approx([1e-6])
    assert result.ok, [c for c in result.checks if c.ok is False]
    assert result.jump.before == pytest.approx((1e-5 * 500 / 501,))
    assert result.jump.after == pytest.approx((9.98e-6,))
    assert result.jump.relative < 1e-5
    _assert_curve_is_naive_nemo(result, naive, "planned")
    restored = result.curve("restored")  # before the plan: the checkpoint's schedule, which dies at 501
    assert restored.failure.step == 501


def test_a_plan_that_halves_the_lr_at_the_resume_step_fails_the_jump_check():
    target = CosineState(base_lrs=(5e-6,), min_lr=1e-6, max_steps=1000, warmup_steps=499)
    resume = ResumePoint(step=499, restored=INCIDENT_RESTORED, target=target)
    result = check_schedule(unchecked_request(**INCIDENT), resume=resume, max_jump=0.01)
    jump = _check("no_jump_at_resume", result)
    assert jump.ok is False and jump.step == 499 and result.jump.relative == pytest.approx(0.499, rel=1e-3)
    assert check_schedule(unchecked_request(**INCIDENT), resume=resume, max_jump=0.6).ok


def test_a_config_that_cannot_build_fails_at_step_0_even_when_the_checkpoint_is_fine():
    request = unchecked_request(lr=1e-5, min_lr=3e-5, max_steps=1000, warmup_steps=0)
    good = {**INCIDENT_RESTORED, "min_lr": 1e-6}
    result = check_schedule(request, resume=ResumePoint(step=499, restored=good))
    assert result.failure.step == 0 and result.failure.when == "build"
    assert Naive(request, ResumePoint(499, good)).failure_step == 0


def test_a_checkpoint_with_a_shorter_max_steps_leaves_the_lr_flat_at_min_lr_for_the_extra_steps():
    restored = {"base_lrs": [3e-4], "min_lr": 3e-5, "max_steps": 1000, "warmup_steps": 50, "constant_steps": 0,
                "decay_steps": 950, "last_epoch": 800}
    request = unchecked_request(lr=3e-4, min_lr=3e-5, max_steps=2000, warmup_steps=50)
    result = check_schedule(request, resume=ResumePoint(step=800, restored=restored))
    spans = _check("decay_spans_training", result)
    assert spans.ok is False and spans.step == 1001 and "1000 steps" in spans.reason
    naive = Naive(request, ResumePoint(800, restored)).run_to(2000)
    assert naive.lrs[1500] == [3e-5]


def test_group_ratios_in_a_checkpoint_that_differ_from_the_request_are_said_and_the_checkpoints_win():
    """The checkpoint sets each group's base LR whatever the request's multipliers: a note, as the planner
    lists what the checkpoint overrides; each group still follows its own schedule, so the check passes."""
    restored = {"base_lrs": [1e-4, 1e-4], "min_lr": 0.0, "max_steps": 1000, "warmup_steps": 50, "constant_steps": 0,
                "decay_steps": 950, "last_epoch": 300}
    request = unchecked_request(lr=1e-4, min_lr=0.0, max_steps=1000, warmup_steps=50, lr_mults=[10.0])
    result = check_schedule(request, resume=ResumePoint(300, restored))
    assert _check("group_ratios_kept", result).ok is True
    assert any("not the requested multipliers' [1, 10]" in n and "follows the checkpoint's" in n for n in result.notes)


# ---- known-good configs -------------------------------------------------------------------

GOOD = [
    pytest.param(dict(lr=3e-4, min_lr=3e-5, max_steps=1000, warmup_steps=500), id="qwen25-pretrain-defaults"),
    pytest.param(dict(lr=1e-4, min_lr=0.0, max_steps=1000, warmup_steps=50, lr_mults=[10.0]), id="lora-two-groups"),
    pytest.param(dict(lr=5e-6, min_lr=0.0, max_steps=300, warmup_steps=50), id="full-finetune"),
    pytest.param(dict(lr=1e-4, min_lr=1e-5, max_steps=100, warmup_steps=10, constant_steps=20), id="megatron-constant"),
    pytest.param(dict(lr=1e-4, min_lr=1e-5, max_steps=50, warmup_steps=0), id="no-warmup"),
]


@pytest.mark.parametrize("config", GOOD)
def test_known_good_configs_pass_every_check_and_match_naive_nemo_at_every_step(config):
    request = unchecked_request(**config)
    result = check_schedule(request)
    assert result.ok and result.exit_code == 0, [c for c in result.checks if c.ok is not True]
    assert result.failure is None
    _assert_curve_is_naive_nemo(result, _naive(request), "schedule")
    assert result.evaluated_steps == request.max_steps + 1  # short horizons are probed at every step


def test_a_validated_schedule_request_is_accepted_as_is():
    result = check_schedule(ScheduleRequest(lr=3e-4, min_lr=3e-5, max_steps=1000, warmup_steps=500))
    assert result.ok and result.request.base_lrs == (3e-4,)


def test_a_million_step_horizon_is_checked_from_a_few_thousand_nemo_probes():
    request = unchecked_request(lr=3e-4, min_lr=3e-5, max_steps=1_000_000, warmup_steps=2000, lr_mults=[0.5])
    result = check_schedule(request)
    assert result.ok
    assert 4000 <= result.evaluated_steps < 5000
    steps = result.curve("schedule").steps
    assert {0, 1999, 2000, 2001, 2002, 501_000, 999_999, 1_000_000} <= set(steps.tolist())
    assert [s for s, _, _ in result.key_steps] == [0, 2000, 2001, 501_000, 1_000_000]
    assert result.key_steps[-1][2] == (3e-5, 3e-5)


def test_a_million_step_horizon_still_finds_the_exact_failure_step():
    request = unchecked_request(lr=1e-5, min_lr=3e-5, max_steps=1_000_000, warmup_steps=123_457)
    assert check_schedule(request).failure.step == 123_458


def test_probing_nemo_puts_the_schedulers_last_epoch_back():
    sched = build(unchecked_request(**INCIDENT))
    with probing(sched) as lr_at_step:
        assert lr_at_step(250) == pytest.approx([1e-5 * 251 / 501])
    assert sched.last_epoch == 0 and sched._get_lr_called_within_step is False


states = st.builds(
    lambda lrs, min_lr, w, c, m: (CosineState(tuple(lrs), min_lr, m, w, c)),
    st.lists(st.sampled_from([1e-5, 3e-5, 1e-4, 2e-4]), min_size=1, max_size=2),
    st.sampled_from([0.0, 1e-5, 3e-5]),
    st.integers(0, 25),
    st.sampled_from([0, 0, 5, 30]),
    st.integers(1, 50),
)


@settings(max_examples=40, deadline=None)
@given(states)
def test_the_check_fails_at_the_step_naive_nemo_stepping_fails_at(state):
    result = check_schedule(state)
    naive = _naive(state)
    assert (result.failure.step if result.failure else None) == naive.failure_step
    if naive.failure is None:
        _assert_curve_is_naive_nemo(result, naive, "schedule")


@settings(max_examples=30, deadline=None)
@given(states, st.integers(0, 49), st.sampled_from([None, "good"]))
def test_a_resume_fails_at_the_step_naive_nemo_stepping_fails_at(state, step, plan):
    if step >= state.max_steps:
        step = state.max_steps - 1
    restored = {
        "base_lrs": list(state.base_lrs), "min_lr": state.min_lr, "max_steps": state.max_steps,
        "warmup_steps": state.warmup_steps, "constant_steps": state.constant_steps, "decay_steps": state.decay,
    }
    target = None
    if plan:
        target = CosineState(tuple(2 * b + 1e-4 for b in state.base_lrs), state.min_lr, state.max_steps, step)
    config = CosineState(state.base_lrs, state.min_lr, state.max_steps, 1, 0)  # a config that builds
    resume = ResumePoint(step, restored, target)
    result = check_schedule(config, resume=resume)
    naive = Naive(config, resume).run_to(state.max_steps)
    assert (result.failure.step if result.failure else None) == naive.failure_step


# ---- inputs ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(lr=-1.0, min_lr=0.0, max_steps=10), "lr=-1.0"),
        (dict(lr=1e-4, min_lr=0.0, max_steps=0), "max_steps=0"),
        (dict(lr=1e-4, min_lr=0.0, max_steps=10, warmup_steps=-5), "warmup_steps=-5"),
        (dict(lr=1e-4, min_lr=float("nan"), max_steps=10), "min_lr=nan"),
        (dict(lr=1e-4, min_lr=0.0, max_steps=10, lr_mults=[0.0]), "multiplier 0.0"),
    ],
)
def test_unchecked_request_still_refuses_values_nemo_cannot_start_with(kwargs, message):
    with pytest.raises(NemoResumeError, match=message):
        unchecked_request(**kwargs)


@pytest.mark.parametrize(
    "resume, message",
    [
        (ResumePoint(1000, INCIDENT_RESTORED), "at or past max_steps"),
        (ResumePoint(400, INCIDENT_RESTORED), r"last_epoch \(499\) differs"),
        (ResumePoint(499, {**INCIDENT_RESTORED, "base_lrs": [1e-5, 1e-5]}), "2 entries"),
        (ResumePoint(499, {**INCIDENT_RESTORED, "min_lr": None}), "restored min_lr=None"),
        (ResumePoint(499, INCIDENT_RESTORED, CosineState((1e-5, 1e-5), 1e-6, 1000)), "2 param group"),
    ],
)
def test_inconsistent_resume_points_are_refused_with_the_value_named(resume, message):
    with pytest.raises(NemoResumeError, match=message):
        check_schedule(unchecked_request(**INCIDENT), resume=resume)


def _write_plan(tmp_path, target=INCIDENT_TARGET, **over):
    """The smallest hand-written plan file (docs/check.md): the incident resumed with smooth's target."""
    plan = {
        "format": "nemo-resume-plan",
        "version": 1,
        "mode": "resume",
        "policy": "smooth",
        "resume_step": 499,
        "restored": INCIDENT_RESTORED,
        "target": None if target is None else {"base_lrs": list(target.base_lrs), "min_lr": target.min_lr,
                                               "max_steps": target.max_steps, "warmup_steps": target.warmup_steps},
        "request": {**INCIDENT},
        **over,
    }
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan))
    return path


def test_load_plan_reads_request_restored_and_target(tmp_path):
    plan = load_plan(_write_plan(tmp_path))
    assert plan.request.base_lrs == (1e-5,) and plan.request.min_lr == 3e-5
    assert plan.resume_step == 499 and plan.target == INCIDENT_TARGET and plan.restored_state == INCIDENT_RESTORED


@pytest.mark.parametrize(
    "content, message",
    [("{", "not strict JSON"), ("[]", "expected a JSON object"), ('{"resume_step": 1, "restored": {}}', "not a nemo-resume plan file")],
)
def test_load_plan_refuses_broken_files_in_one_line(tmp_path, content, message):
    path = tmp_path / "plan.json"
    path.write_text(content)
    with pytest.raises(NemoResumeError, match=message):
        load_plan(path)


# ---- plot ---------------------------------------------------------------------------------


def test_the_plot_is_a_valid_png_and_draws_exactly_nemos_values(tmp_path):
    from matplotlib.image import imread

    request = unchecked_request(**INCIDENT)
    resume = ResumePoint(step=499, restored=INCIDENT_RESTORED, target=INCIDENT_TARGET)
    result = check_schedule(request, resume=resume)
    out = write_plot(result, tmp_path / "lr.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert imread(out).shape[:2] == (500, 1000)
    series = {s.curve: s for s in plotted_series(result)}
    assert set(series) == {"restored", "planned"}
    planned = Naive(request, resume).run_to(1000)
    for x, y in zip(series["planned"].x.tolist(), series["planned"].y.tolist()):
        assert y == pytest.approx(planned.lrs[x][0], rel=1e-12)
    history = Naive(request).run_to(1000)  # the checkpoint's schedule from step 0, dying at 501
    assert series["restored"].x[-1] == 500
    for x, y in zip(series["restored"].x.tolist(), series["restored"].y.tolist()):
        assert y == pytest.approx(history.lrs[x][0], rel=1e-12)
    assert phase_spans(result) == [("warmup", 0, 499), ("decay", 499, 1000)]


def test_the_plot_of_a_scheduler_that_cannot_be_built_is_still_written(tmp_path):
    result = check_schedule(unchecked_request(lr=1e-5, min_lr=3e-5, max_steps=100))
    assert plotted_series(result) == []
    assert write_plot(result, tmp_path / "lr.png").stat().st_size > 0


# ---- CLI ----------------------------------------------------------------------------------

GOOD_ARGV = ["--lr", "3e-4", "--min-lr", "3e-5", "--warmup-steps", "500", "--max-steps", "1000"]


def test_cli_exits_0_when_every_check_passes(capsys):
    assert main(GOOD_ARGV) == 0
    assert "every check passes" in capsys.readouterr().out


def test_cli_exits_1_with_the_failing_step_and_reason(capsys):
    assert main(["--lr", "1e-5", "--min-lr", "3e-5", "--warmup-steps", "500", "--max-steps", "1000"]) == 1
    out = capsys.readouterr().out
    assert "FAIL at step 501" in out and "lower than the minimum learning rate" in out


def test_cli_json_is_one_object_with_checks_key_steps_and_failure(capsys):
    argv = ["--lr", "1e-4", "--min-lr", "1e-5", "--warmup-steps", "10", "--constant-steps", "10",
            "--max-steps", "100", "--lr-mult", "2", "--json"]
    assert main(argv) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is False and data["failure"] is None
    assert {c["name"] for c in data["checks"] if c["ok"] is False} == {"group_ratios_kept"}
    assert data["key_steps"][0] == [0, [0.0, 0.0]]
    assert all(set(c) == {"name", "ok", "step", "reason"} for c in data["checks"])


def test_cli_checks_a_plan_file_and_writes_the_plot(tmp_path, capsys):
    plot = tmp_path / "lr.png"
    assert main(["--plan", str(_write_plan(tmp_path)), "--json", "--plot", str(plot)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] and data["jump"]["step"] == 499 and data["horizon"] == {"start": 500, "end": 1000}
    assert plot.read_bytes()[:4] == b"\x89PNG"
    assert main(["--plan", str(_write_plan(tmp_path, target=None)), "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["failure"]["step"] == 501


@pytest.mark.parametrize(
    "argv, message",
    [
        ([*GOOD_ARGV, "--schedule", "inverse_sqrt"], "--schedule inverse_sqrt: NeMo's InverseSquareRootAnnealingScheduler"),
        (["--lr", "1e-4", "--max-steps", "10"], "--min-lr required"),
        ([*GOOD_ARGV[:-1], "-10"], "max_steps=-10"),
        ([*GOOD_ARGV, "--max-steps", "ten"], "invalid int value"),
        (["--plan", "/nonexistent/plan.json"], "cannot read"),
        (["--plan", "x.json", "--lr", "1e-4"], "drop --lr"),
        ([*GOOD_ARGV, "--max-jump", "-1"], "--max-jump -1"),
    ],
)
def test_cli_exits_2_on_bad_input_with_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_a_warmup_that_stalls_between_the_probes_fails_and_the_planner_says_so_too():
    """issue 22: on a long horizon the probes are a grid; a denormal LR stalls between them."""
    from nemo_resume.planning.policy import unsafe_reason

    request = unchecked_request(4.4e-320, 0.0, 20_000, 10_000)
    result = check_schedule(request)
    warm = _check("warmup_rising", result)
    naive = Naive(request).run_to(20)  # NeMo stepped for real: the LR repeats within the first steps
    steps = sorted(naive.lrs)
    first_repeat = next(s for a, s in zip(steps, steps[1:]) if not naive.lrs[s][0] > naive.lrs[a][0])
    assert warm.ok is False and warm.step == first_repeat
    assert unsafe_reason(request, -1, 20_000) == (
        f"its warmup LR does not rise at step {first_repeat} (a zero or denormal LR)", first_repeat
    )
    assert _check("warmup_rising", check_schedule(unchecked_request(3e-4, 3e-5, 1_000_000, 2000))).ok
