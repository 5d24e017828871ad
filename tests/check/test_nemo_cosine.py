"""NeMo's CosineAnnealing loaded light (nemo_resume.check.nemo_cosine) is NeMo's class, behaving the same."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.nemo

LIGHT_PROCESS = """
import json, sys
from nemo_resume.check.nemo_cosine import cosine_annealing_class
cls = cosine_annealing_class()
heavy = sorted(m for m in sys.modules if m == "lightning" or m.startswith(("nemo.core", "nemo.utils", "lightning.", "torchmetrics")))
light = {"file": sys.modules[cls.__module__].__file__ if cls.__module__ in sys.modules else None,
         "module": cls.__module__, "heavy": heavy, "registered": "nemo.core.optim.lr_scheduler" in sys.modules}
from nemo.core.optim.lr_scheduler import CosineAnnealing, __file__ as real_file
light["real_file"] = real_file
light["same_class"] = CosineAnnealing is cls
print(json.dumps(light))
"""


def test_a_cold_process_gets_nemos_class_without_importing_nemo_core_or_lightning_and_can_still_import_them():
    proc = subprocess.run([sys.executable, "-c", LIGHT_PROCESS], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["heavy"] == [], got["heavy"]
    assert got["registered"] is False  # sys.modules untouched: the real import below is a normal one
    assert got["module"] == "nemo.core.optim.lr_scheduler"
    assert got["same_class"] is False and got["real_file"].endswith("nemo/core/optim/lr_scheduler.py")


def _classes():
    from nemo.core.optim.lr_scheduler import CosineAnnealing

    from nemo_resume.check.nemo_cosine import _load_light

    return _load_light().CosineAnnealing, CosineAnnealing


def _text(exc: BaseException) -> str:
    return re.sub(r" object at 0x[0-9a-fA-F]+", "", str(exc))  # the repr's address differs per object


def _run(cls, base_lrs, kwargs, steps):
    """What a check sees: construction, get_lr at each step (or the error), the state_dict."""
    import torch

    params = [torch.nn.Parameter(torch.zeros(1)) for _ in base_lrs]
    opt = torch.optim.SGD([{"params": [p], "lr": lr} for p, lr in zip(params, base_lrs)], lr=base_lrs[0])
    out: list = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            sched = cls(opt, **kwargs)
        except (ValueError, AssertionError, ArithmeticError) as exc:
            return [("build", type(exc).__name__, _text(exc))]
        for step in steps:
            sched.last_epoch = step
            sched._get_lr_called_within_step = True
            try:
                out.append([float(x) for x in sched.get_lr()])
            except (ValueError, AssertionError, ArithmeticError) as exc:
                out.append((type(exc).__name__, _text(exc)))
    state = {k: v for k, v in sched.state_dict().items() if k != "_get_lr_called_within_step"}
    return [out, state]


def test_the_light_class_is_defined_in_nemos_own_file():
    light, real = _classes()
    assert light is not real and light.__qualname__ == real.__qualname__
    assert light._get_lr.__code__.co_filename == real._get_lr.__code__.co_filename
    assert light._get_lr.__code__.co_code == real._get_lr.__code__.co_code


@settings(max_examples=150, deadline=None)
@given(
    lr=st.floats(1e-7, 1e-2),
    min_lr=st.floats(0, 1e-2),
    mults=st.lists(st.floats(0.1, 10), max_size=2),
    warmup=st.integers(0, 60),
    constant=st.integers(0, 40),
    max_steps=st.integers(1, 200),
)
def test_light_and_real_class_agree_on_every_lr_error_and_state(lr, min_lr, mults, warmup, constant, max_steps):
    light, real = _classes()
    base_lrs = [lr, *(lr * m for m in mults)]
    kwargs = dict(max_steps=max_steps, warmup_steps=warmup, constant_steps=constant, min_lr=min_lr)
    steps = sorted({0, 1, warmup, warmup + 1, max_steps - 1, max_steps, max_steps + 1, max_steps // 2})
    assert _run(light, base_lrs, kwargs, steps) == _run(real, base_lrs, kwargs, steps)


def test_the_check_builds_what_cosine_annealing_scheduler_builds():
    """The recipe's module (CosineAnnealingScheduler.scheduler) and the check's build give the same scheduler."""
    from nemo.lightning.pytorch.optim.lr_scheduler import CosineAnnealingScheduler

    from nemo_resume.check.cosine import build
    from nemo_resume.check.probe import scheduler_on_groups
    from nemo_resume.schedules.cosine import CosineState

    state = CosineState((3e-4, 6e-4), 3e-5, 1000, 100, 0)
    module = CosineAnnealingScheduler(max_steps=1000, warmup_steps=100, constant_steps=0, min_lr=3e-5)
    ours, recipe = build(state), scheduler_on_groups(module, state.base_lrs)
    assert type(ours).__name__ == type(recipe).__name__ == "CosineAnnealing"
    drop = ("_get_lr_called_within_step",)
    assert {k: v for k, v in ours.state_dict().items() if k not in drop} == {
        k: v for k, v in recipe.state_dict().items() if k not in drop
    }
