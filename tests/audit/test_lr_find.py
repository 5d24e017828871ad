"""The LR range test's analysis on synthetic curves (pure functions) and ``nemo-resume lr-find`` on event files that
TensorBoard's own writer (torch's ``SummaryWriter``) writes while the test runs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from nemo_resume.audit.events import LOSS_TAG, LR_TAG
from nemo_resume.audit.lr_find import DIVERGE, analyse, smooth
from nemo_resume.cli import main
from nemo_resume.errors import NemoResumeError
from nemo_resume.schedules.lr_sweep import MIN_STEPS, LrSweep

SWEEP = LrSweep(1e-7, 1.0, 71)  # log10(LR) from -7 to 0 in steps of 0.1


def _curve(x: float) -> float:
    """Loss against x = log10(LR): falls fastest at x = -5 (LR 1e-5), flat from -3, rises from -2: lowest at 1e-2."""
    return 5 - 2 * math.tanh(2 * (x + 5)) + 2 * max(0.0, x + 2) ** 2  # at most 11 < 4 x 3: no divergence


def _sweep(curve=_curve, sweep: LrSweep = SWEEP) -> tuple[list[int], list[float], list[float]]:
    steps = list(range(sweep.steps))
    lrs = [sweep.lr(s) for s in steps]
    return steps, lrs, [curve(math.log10(lr)) for lr in lrs]


def test_smoothing_is_the_bias_corrected_moving_average():
    """A constant loss stays itself from the first step (the bias correction); otherwise fastai's recurrence."""
    assert smooth([3.0] * 5) == pytest.approx([3.0] * 5)
    avg, expected = 0.0, []
    for i, x in enumerate([4.0, 2.0, 7.0]):
        avg = 0.9 * avg + 0.1 * x
        expected.append(avg / (1 - 0.9 ** (i + 1)))
    assert smooth([4.0, 2.0, 7.0], beta=0.9) == pytest.approx(expected)


def test_unsmoothed_the_known_steepest_point_and_minimum_are_found():
    result = analyse(*_sweep(), beta=0.0)
    assert result.steepest.lr == pytest.approx(1e-5)
    assert result.minimum.lr == pytest.approx(1e-2)
    assert result.min_loss_lr == pytest.approx(1e-3)
    assert result.diverged_at is None


def test_smoothed_the_recommendations_lag_a_little_and_stay_in_the_range():
    result = analyse(*_sweep())
    assert 1e-5 <= result.steepest.lr <= 1e-4  # the moving average lags behind the raw curve
    assert 1e-2 <= result.minimum.lr <= 1e-1
    assert SWEEP.min_lr <= result.min_loss_lr <= SWEEP.max_lr


def test_a_diverged_sweep_is_read_only_before_the_divergence():
    """From LR 0.1 the loss explodes: the first step past 4x the best is the divergence, the minimum stays 1e-2."""
    result = analyse(*_sweep(lambda x: _curve(x) if x < -1.05 else 1e4), beta=0.0)
    assert result.diverged_at == 60  # LR 0.1
    assert result.smoothed[60] > DIVERGE * min(result.smoothed[:60])
    assert result.minimum.lr == pytest.approx(1e-2) and result.steepest.lr == pytest.approx(1e-5)
    nan = analyse(*_sweep(lambda x: _curve(x) if x < -1.05 else math.nan))
    assert nan.diverged_at == 60 and nan.minimum.step < 60


def test_too_few_steps_an_lr_that_does_not_rise_or_an_immediate_divergence_are_refused():
    steps, lrs, losses = _sweep()
    with pytest.raises(NemoResumeError, match=f"needs at least {MIN_STEPS}"):
        analyse(steps[:MIN_STEPS - 1], lrs[:MIN_STEPS - 1], losses[:MIN_STEPS - 1])
    with pytest.raises(NemoResumeError, match="not an LR sweep"):
        analyse(steps, [1e-4] * len(steps), losses)
    with pytest.raises(NemoResumeError, match="diverged at step 2"):
        analyse(steps, lrs, [1.0, 1.0] + [100.0] * (len(steps) - 2), beta=0.0)
    with pytest.raises(NemoResumeError, match="--lr-find-steps 5: a sweep needs at least"):
        LrSweep(steps=5)
    with pytest.raises(NemoResumeError, match="0 < min < max"):
        LrSweep(1.0, 1e-3)


def _write_logs(folder: Path, steps: list[int], lrs: list[float], losses: list[float]) -> None:
    """The two tags NeMo logs, at NeMo's step axis, with TensorBoard's writer as NeMoLogger uses it."""
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(folder))
    for s, lr, loss in zip(steps, lrs, losses):
        writer.add_scalar(LR_TAG, lr, s)
        writer.add_scalar(LOSS_TAG, loss, s)
    writer.close()


def test_the_command_reads_a_run_folder_or_its_logs_folder(tmp_path, capsys):
    steps, lrs, losses = _sweep()
    _write_logs(tmp_path / "tb_logs" / "q-lr-find" / "v0", steps, lrs, losses)
    (tmp_path / "q-lr-find").mkdir()
    png = tmp_path / "lr.png"
    assert main(["lr-find", str(tmp_path / "q-lr-find"), "--json", "--plot", str(png)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["recommended"]["steepest"] == pytest.approx(analyse(steps, lrs, losses).steepest.lr, rel=1e-6)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["lr-find", str(tmp_path / "tb_logs" / "q-lr-find")]) == 0
    assert "min-loss LR / 10" in capsys.readouterr().out


@pytest.mark.parametrize("case, expected", [
    ("few", f"1 step(s) logged; an LR sweep needs at least {MIN_STEPS}"),
    ("flat", "not an LR sweep"),
    ("empty", "no TensorBoard event files"),
    ("missing", "no such run folder"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, case, expected):
    steps, lrs, losses = _sweep()
    logs = tmp_path / "tb_logs" / "q-lr-find" / "v0"
    if case == "few":
        _write_logs(logs, steps[:1], lrs[:1], losses[:1])
    elif case == "flat":
        _write_logs(logs, steps, [3e-4] * len(steps), losses)
    if case != "missing":
        (tmp_path / "q-lr-find").mkdir()
    assert main(["lr-find", str(tmp_path / "q-lr-find")]) == 2
    err = capsys.readouterr().err
    assert expected in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize("flags, says", [
    (["--lr-find-min", "2", "--lr-find-max", "1"], "--lr-find-min 2 --lr-find-max 1: need 0 < min < max"),
    (["--lr-find-steps", "5"], "--lr-find-steps 5: a sweep needs at least 10 steps"),
])
def test_the_recipes_refuse_a_bad_sweep_in_one_line_before_anything_runs(tmp_path, capsys, flags, says):
    from nemo_resume.cli.recipe_cmd import run_script

    code = run_script("pretrain", ["--lr-find", *flags, "--smoke", "--dir", str(tmp_path)], prog="recipes/qwen25_pretrain.py")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and says in err[0], err
    assert list(tmp_path.iterdir()) == []
