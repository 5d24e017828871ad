"""Every Hugging Face scheduler name: NeMo's module, value by value, against ``transformers.get_scheduler``.

Where the shapes are meant to match they agree to float noise; where they differ (NeMo's warmup
convention, the floor with several groups, WSD's warmup start) the documented difference is
asserted; names no NeMo module reproduces are refused with a one-line reason.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nemo_resume.errors import NemoResumeError
from nemo_resume.schedules.hf_names import HF_NAMES, REFUSED, exact_ratio
from nemo_resume.schedules.request import ScheduleRequest
from nemo_resume.schedules.scheduler_module import scheduler_module

pytestmark = pytest.mark.nemo
pytest.importorskip("transformers")
from transformers import SchedulerType  # noqa: E402

from tests.support.hf_reference import hf_lrs, nemo_lrs  # noqa: E402

LR, T, W = 1e-4, 200, 20
STEPS = list(range(T + 1))
REL = 1e-12

# Each mapped name with the settings compared; one group and two (the second at lr * 0.5).
MAPPED = {
    "linear": dict(warmup_steps=W),
    "cosine": dict(warmup_steps=W),
    "cosine_with_min_lr": dict(warmup_steps=W, min_lr=1e-5),
    "polynomial": dict(min_lr=1e-6),
    "constant": {},
    "constant_with_warmup": dict(warmup_steps=W),
    "warmup_stable_decay": dict(warmup_steps=W, decay_steps=60, decay_type="linear", min_lr=1e-5),
}


def _request(name: str, mults: tuple[float, ...] = (), **overrides) -> ScheduleRequest:
    kw = {"min_lr": 0.0, **MAPPED.get(name, {}), **overrides}
    return ScheduleRequest(LR, kw.pop("min_lr"), T, lr_mults=mults, schedule=name, checked=False, **kw)


def _close(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.all(np.abs(a - b) <= REL * np.maximum(np.abs(b), 1e-300)))


def test_every_hf_scheduler_name_is_mapped_or_refused():
    assert set(HF_NAMES) == {t.value for t in SchedulerType}
    assert set(MAPPED) | set(REFUSED) == set(HF_NAMES)


@pytest.mark.parametrize("name", list(MAPPED))
def test_nemo_module_equals_hf_after_warmup_step_by_step(name):
    req = _request(name)
    nemo, hf = nemo_lrs(req, STEPS), hf_lrs(req, STEPS)
    w = req.warmup_steps
    assert _close(nemo[w:], hf[w:]), np.max(np.abs(nemo[w:] - hf[w:]))


@pytest.mark.parametrize("name", [n for n in MAPPED if MAPPED[n].get("warmup_steps")])
def test_warmup_differs_exactly_as_documented(name):
    req = _request(name)
    nemo, hf = nemo_lrs(req, STEPS)[:, 0], hf_lrs(req, STEPS)[:, 0]
    t = np.arange(W)
    assert np.allclose(nemo[:W], LR * (t + 1) / (W + 1), rtol=REL)  # NeMo: lr * (t + 1) / (W + 1)
    hf_start = req.min_lr / LR if name == "warmup_stable_decay" else 0.0  # HF's WSD starts at min_lr_ratio
    assert np.allclose(hf[:W], LR * (hf_start + (1 - hf_start) * t / W), rtol=REL)  # HF: lr * t / W
    assert nemo[W] == pytest.approx(LR, rel=REL) and hf[W] == pytest.approx(LR, rel=REL)


@pytest.mark.parametrize("name", list(MAPPED))
def test_each_group_follows_its_own_lr_like_hf_when_the_floor_is_zero(name):
    req = _request(name, mults=(0.5,), min_lr=0.0)
    nemo, hf = nemo_lrs(req, STEPS), hf_lrs(req, STEPS)
    w = req.warmup_steps
    assert _close(nemo[w:], hf[w:])
    assert np.allclose(nemo[:, 1], 0.5 * nemo[:, 0], rtol=REL)


@pytest.mark.parametrize("name", ["cosine_with_min_lr", "polynomial", "warmup_stable_decay", "linear"])
def test_with_several_groups_nemos_floor_is_absolute_where_hf_scales_it(name):
    req = _request(name, mults=(0.5,), min_lr=1e-5)
    nemo, hf = nemo_lrs(req, [T])[0], hf_lrs(req, [T])[0]
    assert nemo == pytest.approx([1e-5, 1e-5], rel=REL)  # one absolute min_lr for every group
    # HF: min_lr x mult (its linear has no floor: it ends at 0)
    assert hf == pytest.approx([0.0, 0.0] if name == "linear" else [1e-5, 0.5e-5], rel=REL)
    assert any("one absolute floor" in n for n in scheduler_module(req).notes)


def test_one_minus_sqrt_decay_matches_hf_with_a_zero_floor():
    req = _request("warmup_stable_decay", decay_type="1-sqrt", min_lr=0.0)
    nemo, hf = nemo_lrs(req, STEPS), hf_lrs(req, STEPS)
    assert _close(nemo[W:], hf[W:])


def test_linear_is_not_warmupannealing_because_it_gives_every_group_group_0s_lr():
    from nemo_resume.check.probe import evaluate, scheduler_on_groups
    from nemo_resume.schedules.module_config import ModuleConfig

    module = ModuleConfig(
        "nemo.lightning.pytorch.optim.lr_scheduler.WarmupAnnealingScheduler",
        dict(warmup_steps=W, max_steps=T, min_lr=0.0),
    )
    lrs = evaluate(scheduler_on_groups(module.build(), (LR, LR / 2)), [W + 1], "schedule").lrs[0]
    assert lrs[1] == pytest.approx(lrs[0])  # group 1 should be half
    assert scheduler_module(_request("linear")).name == "WarmupHoldAnnealScheduler"


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_names_without_a_faithful_nemo_module_are_refused_in_one_line(name):
    with pytest.raises(NemoResumeError) as err:
        scheduler_module(_request(name))
    text = str(err.value)
    assert text == f"--schedule {name}: {REFUSED[name]}" and "\n" not in text


def test_why_inverse_sqrt_is_refused_nemos_decay_is_not_hfs():
    from nemo_resume.check.probe import evaluate, scheduler_on_groups
    from nemo_resume.schedules.module_config import ModuleConfig

    module = ModuleConfig(
        "nemo.lightning.pytorch.optim.lr_scheduler.InverseSquareRootAnnealingScheduler", dict(max_steps=T, min_lr=0.0)
    )
    nemo = evaluate(scheduler_on_groups(module.build(), (LR,)), [100], "schedule").lrs[0, 0]
    hf = hf_lrs(_request("cosine"), [100], "inverse_sqrt")[0, 0]  # warmup 20 -> timescale 20
    hf_no_warmup = hf_lrs(_request("cosine", warmup_steps=0), [100], "inverse_sqrt")[0, 0]
    assert nemo == pytest.approx(LR / math.sqrt(101))
    assert hf == pytest.approx(LR * math.sqrt(20 / 100)) and hf_no_warmup == pytest.approx(
        LR / math.sqrt(1 + 100 / 10000)
    )


def test_why_cosine_with_restarts_is_refused_with_one_cycle_it_is_cosine():
    req = _request("cosine")
    assert _close(hf_lrs(req, STEPS, "cosine_with_restarts")[:T], hf_lrs(req, STEPS, "cosine")[:T])


def test_why_cosine_warmup_with_min_lr_is_refused_it_runs_one_step_ahead():
    req = _request("cosine_with_min_lr")
    import torch
    from transformers import get_scheduler

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=LR)
    sched = get_scheduler(
        "cosine_warmup_with_min_lr",
        opt,
        num_warmup_steps=W,
        num_training_steps=T,
        scheduler_specific_kwargs={"min_lr": req.min_lr},
    )
    ahead = [LR * sched.lr_lambdas[0](t) for t in range(W + 1, T)]
    assert np.allclose(ahead, nemo_lrs(req, range(W + 2, T + 1))[:, 0], rtol=1e-9)


@pytest.mark.parametrize(
    "name, overrides, message",
    [
        (
            "polynomial",
            dict(warmup_steps=5),
            "--warmup-steps 5: NeMo's PolynomialDecayAnnealingScheduler takes no warmup_steps",
        ),
        ("constant", dict(warmup_steps=5), "use --schedule constant_with_warmup"),
        ("warmup_stable_decay", dict(decay_type=None), "HF's default decay_type is cosine"),
        ("warmup_stable_decay", dict(decay_type="cosine"), "pass --decay-type linear or 1-sqrt"),
        ("warmup_stable_decay", dict(decay_steps=None), "needs --decay-steps D"),
        (
            "warmup_stable_decay",
            dict(decay_steps=190),
            "--decay-steps 190 must be from 1 to max_steps - warmup_steps (180)",
        ),
        ("warmup_stable_decay", dict(decay_type="1-sqrt"), "NeMo's 1-sqrt decay clamps at min_lr"),
        ("linear", dict(constant_steps=10), "--constant-steps 10 applies to --schedule cosine only"),
        ("linear", dict(decay_steps=10), "--decay-steps/--decay-type apply to --schedule warmup_stable_decay only"),
        ("cosine_annealing", {}, "unknown; choose one of linear, cosine, polynomial"),
    ],
)
def test_flags_a_mapping_cannot_honour_are_refused(name, overrides, message):
    with pytest.raises(NemoResumeError) as err:
        scheduler_module(_request(name, **overrides))
    assert str(err.value).startswith(f"--schedule {name}: ") and message in str(err.value)


@settings(max_examples=200, deadline=None)
@given(total=st.integers(1, 10**7), data=st.data())
def test_exact_ratio_gives_back_the_step_count_nemo_truncates_to(total, data):
    steps = data.draw(st.integers(0, total))
    r = exact_ratio(steps, total)
    assert (0 if r is None else int(r * total)) == steps


def test_constant_steps_with_cosine_is_said_with_the_formula_nemo_runs():
    """issue 22: `--constant-steps C > 0` selects NeMo's Megatron cosine path, which is not HF's cosine."""
    from nemo_resume.check import check_schedule, unchecked_request
    from nemo_resume.recipes.options import build_parser, options_from_args

    argv = ["--lr", "1e-3", "--min-lr", "0", "--warmup-steps", "10", "--constant-steps", "100", "--max-steps", "500"]
    opts = options_from_args("pretrain", build_parser("pretrain", "test").parse_args(argv))
    (note,) = [n for n in opts.notes if n.startswith("--constant-steps")]
    assert "over 390 steps (to step 400)" in note and "last 100 steps" in note
    result = check_schedule(unchecked_request(1e-3, 0.0, 500, 10, 100))
    assert note in result.notes
    lr = nemo_lrs(ScheduleRequest(1e-3, 0.0, 500, 10, 100, checked=False), [0, 250, 450])
    # the documented formula: warmup lr*t/W (0 at step 0), cosine over T-W-C steps, then min_lr
    assert lr[0, 0] == 0.0
    assert lr[1, 0] == pytest.approx(1e-3 * 0.5 * (1 + math.cos(math.pi * (250 - 10) / 390)), rel=1e-12)
    assert lr[1, 0] == pytest.approx(3.23e-4, rel=1e-3)  # HF's cosine gives 5.16e-4 there
    assert lr[2, 0] == 0.0
