"""The smoke harness reproduces the incident with the real NeMo stack, and the fixtures look like NeMo's."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

pytestmark = [pytest.mark.nemo, pytest.mark.slow]

from nemo_resume.constants import NEMO_BELOW_MIN_LR_TEXT as NEMO_MIN_LR_ERROR  # noqa: E402

LR_AT_499 = 1e-5 * 500 / 501  # warmup LR = base * (step + 1) / (W + 1)


def _torch_load(path):
    import torch

    return torch.load(path, map_location="cpu", weights_only=False)  # our own fixture files


def _io_leaves(io_json: Path) -> dict[str, object]:
    """``{"<root>.model.optim.lr_scheduler.min_lr": 3e-05, ...}`` from a fiddle io.json, read as plain JSON."""
    leaves: dict[str, object] = {}
    for obj in json.loads(io_json.read_text())["objects"].values():
        for _, item in obj.get("items", []):
            if isinstance(item, dict) and item.get("type") == "leaf":
                for path in item.get("paths", []):
                    leaves[path] = item["value"]
    return leaves


def test_incident_dies_with_nemos_error_at_step_501(incident_run):
    assert incident_run.error is not None
    assert incident_run.error.startswith("ValueError: <nemo.core.optim.lr_scheduler.CosineAnnealing object at ")
    assert incident_run.error.endswith(NEMO_MIN_LR_ERROR)
    assert isinstance(incident_run.exception, ValueError)
    # optimizer steps at global_step 0..500 were taken; scheduler.step() after the last one raised
    assert incident_run.final_step == 501
    assert sorted(incident_run.lrs) == list(range(501))
    assert incident_run.lrs[0] == [pytest.approx(1e-5 / 501)]
    assert incident_run.lrs[499] == [pytest.approx(LR_AT_499)]
    assert incident_run.lrs[500] == [pytest.approx(1e-5)]


def test_incident_checkpoint_at_499_holds_the_warmup_lr(incident_run, incident_ckpt):
    names = sorted(p.name for p in incident_run.checkpoint_dir.iterdir())
    assert names == ["smoke--step=499", "smoke--step=499-last", "smoke--step=499-last.ckpt", "smoke--step=499.ckpt"]
    assert incident_ckpt.name == "smoke--step=499.ckpt"
    ckpt = _torch_load(incident_ckpt)
    assert ckpt["global_step"] == 499
    (group,) = ckpt["optimizer_states"][0]["param_groups"]
    assert group["lr"] == pytest.approx(LR_AT_499)
    assert math.isclose(group["lr"], 9.98e-6, rel_tol=1e-3)
    assert group["initial_lr"] == 1e-5
    (sched,) = ckpt["lr_schedulers"]
    assert sched["base_lrs"] == [1e-5]
    assert sched["min_lr"] == 3e-5
    assert (sched["warmup_steps"], sched["max_steps"], sched["constant_steps"]) == (500, 1000, 0)
    assert sched["last_epoch"] == 499


def test_incident_context_io_json_has_the_config(incident_ckpt):
    context = incident_ckpt.with_name("smoke--step=499") / "context"
    assert (context / "model.yaml").is_file()
    leaves = _io_leaves(context / "io.json")
    assert leaves["<root>.model.optim.optimizer_fn.lr"] == 1e-5
    assert leaves["<root>.model.optim.lr_scheduler.min_lr"] == 3e-5
    assert leaves["<root>.model.optim.lr_scheduler.warmup_steps"] == 500
    assert leaves["<root>.model.optim.lr_scheduler.max_steps"] == 1000
    assert leaves["<root>.model.optim.lr_scheduler.constant_steps"] == 0
    assert leaves["<root>.trainer.max_steps"] == 1000


def test_stock_resume_with_lower_min_lr_dies_again(incident_resume_run, incident_ckpt):
    run = incident_resume_run
    assert run.resumed_from == incident_ckpt
    assert run.error is not None and run.error.endswith(NEMO_MIN_LR_ERROR)
    assert run.final_step == 501
    # the checkpoint's schedule won: the first step after the resume used the saved warmup LR
    assert sorted(run.lrs) == [499, 500]
    assert run.lrs[499] == [pytest.approx(LR_AT_499)]


def test_finished_run_ends_with_weights_only_checkpoint(finished_run):
    assert finished_run.error is None
    assert finished_run.final_step == 300
    final = _torch_load(finished_run.checkpoint_at(300))
    assert final["global_step"] == 300
    assert "optimizer_states" not in final and "lr_schedulers" not in final
    middle = _torch_load(finished_run.checkpoint_at(200))
    assert middle["optimizer_states"] and middle["lr_schedulers"]


def test_lr_mults_make_param_groups(tmp_path):
    from nemo_resume.smoke.train import SmokeConfig, train

    cfg = SmokeConfig(lr=1e-3, min_lr=1e-5, warmup_steps=4, max_steps=6, checkpoint_every=3, lr_mults=(0.5, 2.0))
    run = train(cfg, tmp_path)
    assert run.error is None
    for step in range(4):
        base = 1e-3 * (step + 1) / 5
        assert run.lrs[step] == [pytest.approx(base), pytest.approx(0.5 * base), pytest.approx(2.0 * base)]
    groups = _torch_load(run.checkpoint_at(3))["optimizer_states"][0]["param_groups"]
    assert [g["initial_lr"] for g in groups] == [pytest.approx(1e-3), pytest.approx(5e-4), pytest.approx(2e-3)]
    assert [g["lr_mult"] for g in groups] == [1.0, 0.5, 2.0]
