"""The inspector on real checkpoints: every number equals torch.load's, every problem code is real."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from nemo_resume.cli.inspect_cmd import main as inspect_main
from nemo_resume.inspection import inspect_path

pytestmark = pytest.mark.nemo


def _torch_state(path: Path) -> dict:
    import torch

    return torch.load(path, map_location="cpu", weights_only=False)


def _codes(checkpoint) -> set[str]:
    return {p.code for p in checkpoint.problems}


def _one(path: Path):
    result = inspect_path(path)
    assert len(result.checkpoints) == 1
    return result.checkpoints[0]


def _assert_matches_torch_load(c, raw: dict) -> None:
    s = c.state
    assert s.step == raw["global_step"]
    assert s.epoch == raw["epoch"]
    sched = raw["lr_schedulers"][0]
    assert list(s.scheduler.base_lrs) == sched["base_lrs"]
    for field in ("min_lr", "max_steps", "warmup_steps", "constant_steps", "decay_steps", "last_epoch"):
        assert getattr(s.scheduler, field) == sched[field], field
    if s.param_groups_source == "distcp":  # megatron-core's distributed optimizer: tests/megatron/test_inspect_dist_opt.py
        return
    # Lightning keeps optimizer_states; NeMo's MegatronStrategy leaves it {} and uses "optimizer".
    opt = raw["optimizer_states"][0] if raw.get("optimizer_states") else raw["optimizer"][0]
    groups = opt["param_groups"]
    assert s.lrs == [g["lr"] for g in groups]
    assert [g.initial_lr for g in s.param_groups] == [g["initial_lr"] for g in groups]


def test_lightning_incident_checkpoint_reports_what_torch_load_reads(incident_ckpt, incident_run):
    c = _one(incident_ckpt)
    _assert_matches_torch_load(c, _torch_state(incident_ckpt))
    assert c.state.location.format == "lightning-ckpt" and c.state.complete and c.state.has_optimizer_state
    assert c.state.lrs == pytest.approx([1e-5 * 500 / 501])
    assert c.state.config.lr == 1e-5 and c.state.config.min_lr == 3e-5 and c.state.config.max_steps == 1000
    assert c.state.config.scheduler_class.endswith("CosineAnnealingScheduler")


def test_lr_below_min_lr_predicts_the_step_the_real_run_died_at(incident_ckpt, incident_run):
    c = _one(incident_ckpt)
    (problem,) = [p for p in c.problems if p.code == "LR_BELOW_MIN_LR"]
    assert problem.severity == "error"
    # The real run's last optimizer step was 500; scheduler.step() to 501 raised NeMo's ValueError.
    assert problem.step == max(incident_run.lrs) + 1 == 501


def test_megatron_checkpoint_reports_what_torch_load_of_common_pt_reads(megatron_incident_ckpt):
    c = _one(megatron_incident_ckpt)
    assert c.state.location.format == "megatron-dist" and c.state.complete, c.state.incomplete_reasons
    _assert_matches_torch_load(c, _torch_state(megatron_incident_ckpt / "weights" / "common.pt"))
    assert c.state.param_groups_source == "distcp" and c.state.lrs == [1e-5 * 21 / 31] * 2  # warmup, step 20 of 30
    assert c.state.consumed_samples == 40.0
    assert ("LR_BELOW_MIN_LR", 31) in {(p.code, p.step) for p in c.problems}


def test_inspecting_the_weights_folder_finds_its_checkpoint(megatron_incident_ckpt):
    assert _one(megatron_incident_ckpt / "weights").state.location.path == megatron_incident_ckpt


def test_finished_run_resumes_from_newest_full_checkpoint_not_weights_only_end(finished_run):
    result = inspect_path(finished_run.log_dir)
    assert result.latest.state.step == 200
    end = [c for c in result.checkpoints if c.state.step == 300]
    assert end and all("NO_OPTIMIZER_STATE" in _codes(c) for c in end)
    assert all(c.state.has_optimizer_state is False for c in end)
    # NeMo leaves context-only folders behind for superseded -last checkpoints.
    orphans = [c for c in result.checkpoints if c.state.location.path.name.endswith("-last") and not c.state.complete]
    assert orphans and all("holds only context/" in c.state.incomplete_reasons[0] for c in orphans)


def test_megatron_weights_only_checkpoint_has_no_optimizer_state(megatron_finished_ckpt):
    c = _one(megatron_finished_ckpt)
    assert c.state.complete and c.state.has_optimizer_state is False
    assert "NO_OPTIMIZER_STATE" in _codes(c)


def test_latest_is_chosen_by_step_not_by_file_time(finished_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished_run.log_dir, run, symlinks=True)
    old = next(run.rglob("smoke--step=100.ckpt"))
    os.utime(old, (2_000_000_000, 2_000_000_000))  # the oldest checkpoint now looks newest
    assert inspect_path(run).latest.state.step == 200


@pytest.fixture(scope="module")
def saved_optim_end_run(tmp_path_factory, finished_config):
    from nemo_resume.smoke.train import train

    return train(finished_config.with_(save_optim_on_train_end=True), tmp_path_factory.mktemp("optim_end"))


def test_past_max_steps_is_reported_for_a_full_checkpoint_at_the_end(saved_optim_end_run):
    c = _one(saved_optim_end_run.checkpoint_at(300))
    assert c.state.has_optimizer_state
    (p,) = [p for p in c.problems if p.code == "PAST_MAX_STEPS"]
    assert p.step == 300 and p.severity == "warning"


def test_constant_steps_with_per_group_lrs_is_reported(tmp_path, finished_config):
    from nemo_resume.smoke.train import train

    run = train(
        finished_config.with_(lr_mults=(0.5,), warmup_steps=5, constant_steps=10, max_steps=30, checkpoint_every=10),
        tmp_path,
    )
    c = _one(run.checkpoint_at(10))
    assert len(c.state.param_groups) == 2
    assert "CONSTANT_STEPS_COLLAPSES_GROUPS" in _codes(c)
    # and NeMo really did collapse them: both groups trained at group 0's LR after warmup
    assert run.lrs[20][0] == run.lrs[20][1]


def test_negative_decay_is_reported_where_nemo_drops_to_min_lr(tmp_path, finished_config):
    from nemo_resume.smoke.train import train

    run = train(finished_config.with_(warmup_steps=20, constant_steps=20, max_steps=30, checkpoint_every=10), tmp_path)
    assert run.error is None
    c = _one(run.checkpoint_at(10))
    (p,) = [p for p in c.problems if p.code == "NEGATIVE_DECAY"]
    assert p.step == 21
    assert run.lrs[21][0] == pytest.approx(finished_config.min_lr)  # NeMo really dropped to min_lr


# ----------------------------------------------------------------------------------- CLI


def test_cli_json_and_exit_codes(incident_ckpt, finished_run, capsys):
    assert inspect_main([str(incident_ckpt), "--json"]) == 1  # the checkpoint a resume would use will fail
    out = json.loads(capsys.readouterr().out)
    assert out["latest_complete"] == str(incident_ckpt)
    (ck,) = out["checkpoints"]
    assert ck["problems"][0]["code"] == "LR_BELOW_MIN_LR" and ck["problems"][0]["step"] == 501
    assert set(ck) >= {"path", "format", "complete", "incomplete_reasons", "step", "epoch", "consumed_samples",
                       "lr", "has_optimizer_state", "scheduler", "config", "problems"}
    assert inspect_main([str(finished_run.log_dir), "--json"]) == 0


def test_cli_bad_path_is_one_line_exit_2(tmp_path, capsys):
    assert inspect_main([str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no such file or directory" in err
    (tmp_path / "empty").mkdir()
    assert inspect_main([str(tmp_path / "empty")]) == 2
    assert "no NeMo checkpoint found" in capsys.readouterr().err


def test_inspector_imports_neither_torch_nor_nemo(megatron_incident_ckpt, incident_ckpt):
    for path in (megatron_incident_ckpt, incident_ckpt):
        proc = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "nemo_resume.inspect", str(path), "--json"],
            capture_output=True, text=True, check=False,
        )
        assert proc.returncode == 1, proc.stderr[-2000:]
        imported = {line.split("|")[-1].strip().split(".")[0] for line in proc.stderr.splitlines() if "|" in line}
        assert not imported & {"torch", "nemo", "nemo_run", "megatron", "lightning", "numpy"}, imported
