"""The inspector's human report on real run folders: whole at 80 columns and through a pipe, and NeMo's
context-only ``-last`` folders reported as the companions they are, while a broken checkpoint stays an error.

Every run folder here is written by real NeMo CPU training (``nemo_resume.smoke.train``) or by
megatron-core through NeMo's checkpoint IO (``tests.support.megatron_ckpt``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.nemo, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
STAGES = "75:1e-3,50:1e-4"


def _inspect(*args: object) -> subprocess.CompletedProcess:
    """``python -m nemo_resume inspect ARGS`` at 80 columns with stdout a pipe, as ``... | less`` runs it."""
    env = {**os.environ, "COLUMNS": "80", "LINES": "24"}
    return subprocess.run([sys.executable, "-m", "nemo_resume", "inspect", *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


def _json(path: Path) -> dict:
    proc = _inspect(path, "--json")
    assert proc.returncode in (0, 1) and proc.stderr == "", proc.stderr
    return json.loads(proc.stdout)  # one strict JSON document, nothing else on stdout


def _staged(**changes):
    from nemo_resume.schedules.staged import StagedLRScheduler
    from nemo_resume.smoke import SmokeConfig

    return SmokeConfig(lr=1e-3, max_steps=125, checkpoint_every=50, lr_mults=(0.5,),
                       lr_scheduler=StagedLRScheduler(STAGES), name="staged").with_(**changes)


@pytest.fixture(scope="module")
def stage1(tmp_path_factory):
    """Stage 1 stopped at step 60: ``step=50.ckpt``, its context-only ``step=50-last`` and ``step=60-last.ckpt``."""
    from nemo_resume.smoke.train import train

    run = train(_staged(), tmp_path_factory.mktemp("stage1"), stop_after_step=60)
    assert run.ok, run.error
    return run


@pytest.fixture(scope="module")
def stage2(tmp_path_factory, stage1):
    """Seed 004's shape: resumed from 50 into stage 2, a checkpoint after each of the steps 75-124 and at the
    end, so NeMo leaves 49 context-only ``-last`` folders (steps 76-124) beside the ``.ckpt`` files."""
    from nemo_resume.smoke.train import train

    cfg = _staged(checkpoint_every=1, save_from_step=75, save_optim_on_train_end=True)
    run = train(cfg, tmp_path_factory.mktemp("stage2"), resume_from=stage1.checkpoint_at(50))
    assert run.ok, run.error
    return run


@pytest.fixture(scope="module")
def top_k_run(tmp_path_factory):
    """``save_top_k=1``: each new ``-last`` replaces the previous one, whose non-last twin is dropped too."""
    from nemo_resume.smoke import SmokeConfig
    from nemo_resume.smoke.train import train

    run = train(SmokeConfig(max_steps=4, warmup_steps=2, save_top_k=1, name="topk"), tmp_path_factory.mktemp("topk"))
    assert run.ok, run.error
    return run


def _lines(proc: subprocess.CompletedProcess) -> list[str]:
    return proc.stdout.splitlines()


@pytest.mark.parametrize("which", ["stage2", "megatron", "incident"])
def test_report_at_80_columns_through_a_pipe_holds_every_lr_and_name_whole(
    which, stage2, megatron_incident_ckpt, incident_run
):
    run = {"stage2": stage2.log_dir, "megatron": megatron_incident_ckpt.parent.parent,
           "incident": incident_run.log_dir}[which]
    human = _inspect(run)
    assert human.returncode in (0, 1) and human.stderr == "", human.stderr
    assert "…" not in human.stdout  # rich's mark for a cut cell
    lines, data = _lines(human), _json(run)
    shown = [c for c in data["checkpoints"] if not c.get("companion_of")]
    assert shown
    for c in shown:
        rel = str(Path(c["path"]).relative_to(run))
        mark = "> " if c["path"] == data["latest_complete"] else "  "
        at = lines.index(f"{mark}step {c['step']}  {rel}")  # each checkpoint's block starts with its whole name
        block = lines[at + 1 : at + 4]
        if c["lr"]:
            assert "    LR per group: " + ", ".join(repr(x) for x in c["lr"]) in block
        sched = c["scheduler"]
        if sched and sched["min_lr"] is not None:
            assert any(f"min_lr {sched['min_lr']!r}" in line for line in block)
    if which == "incident":  # the value the old table showed as "9.98e…"
        assert "    LR per group: 9.980039920159681e-06" in lines  # 1e-5 * 500 / 501, every digit


def test_a_healthy_run_with_context_only_last_folders_exits_0_without_error(stage2):
    human = _inspect(stage2.log_dir)
    assert human.returncode == 0, human.stdout[-3000:]
    assert "ERROR" not in human.stdout
    assert "note: 49 context-only -last folders (steps 76-124) not listed" in human.stdout
    companions = [c for c in _json(stage2.log_dir)["checkpoints"] if c["companion_of"]]
    assert sorted(c["step"] for c in companions) == list(range(76, 125))
    for c in companions:
        path = Path(c["path"])
        assert path.name.endswith("-last") and not (path / "weights").exists()
        assert c["companion_of"] == str(path.with_name(path.name.removesuffix("-last") + ".ckpt"))
        assert c["problems"] == [] and c["complete"] is False  # nothing to load, nothing wrong


def test_a_single_companion_is_named_with_its_checkpoint_and_is_not_an_error(stage1):
    last = stage1.checkpoint_dir / "staged--step=50-last"
    human = _inspect(last)
    assert human.returncode == 1  # nothing there to resume from, as before
    assert "ERROR" not in human.stdout
    assert "note: staged--step=50-last holds only context/" in human.stdout
    assert "companion of staged--step=50.ckpt" in human.stdout
    (c,) = _json(last)["checkpoints"]
    assert c["companion_of"] == str(stage1.checkpoint_at(50)) and c["problems"] == []
    whole = _inspect(stage1.log_dir)
    assert whole.returncode == 0 and "ERROR" not in whole.stdout


def test_a_last_replaced_by_a_newer_last_is_a_companion_a_dropped_non_last_stays_an_error(top_k_run):
    checkpoints = _json(top_k_run.log_dir)["checkpoints"]
    newest_last = str(top_k_run.checkpoint_at(4, last=True))
    by_name = {Path(c["path"]).name: c for c in checkpoints}
    for step in (1, 2, 3):
        assert by_name[f"topk--step={step}-last"]["companion_of"] == newest_last
        dropped = by_name[f"topk--step={step}"]  # top-k removed its .ckpt: no sibling holds that save
        assert dropped["companion_of"] is None and dropped["problems"][0]["code"] == "INCOMPLETE"


def test_save_last_link_companions_are_links_to_their_checkpoints_context(tmp_path):
    """``save_last="link"`` on Lightning's strategy links ``NAME-last`` to the context folder of ``NAME.ckpt``."""
    from nemo_resume.smoke import SmokeConfig
    from nemo_resume.smoke.train import train

    cfg = SmokeConfig(max_steps=4, warmup_steps=2, save_last="link", save_optim_on_train_end=True, name="lnk")
    run = train(cfg, tmp_path)
    assert run.ok, run.error
    human = _inspect(run.log_dir)
    assert human.returncode == 0 and "ERROR" not in human.stdout, human.stdout
    by_name = {Path(c["path"]).name: c for c in _json(run.log_dir)["checkpoints"]}
    for step in (1, 2, 3, 4):
        link = run.checkpoint_dir / f"lnk--step={step}-last"
        assert link.is_symlink() and by_name[link.name]["companion_of"] == str(run.checkpoint_at(step))


def test_a_last_whose_removal_was_cut_short_stays_an_error(stage1, tmp_path):
    from nemo.lightning.pytorch.callbacks.model_checkpoint import ModelCheckpoint

    run = tmp_path / "run"
    shutil.copytree(stage1.log_dir, run, symlinks=True)
    last = run / "checkpoints" / "staged--step=50-last"
    ModelCheckpoint.set_checkpoint_unfinished_marker(str(last) + ".ckpt")  # NeMo's own marker, as before a removal
    human = _inspect(run)
    assert f"ERROR INCOMPLETE checkpoints/{last.name}: cannot resume from it: " in human.stdout
    (c,) = [c for c in _json(run)["checkpoints"] if c["path"] == str(last)]
    assert c["companion_of"] is None


def test_a_context_only_last_with_no_checkpoint_for_its_save_stays_an_error(stage1, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(stage1.log_dir, run, symlinks=True)
    (run / "checkpoints" / "staged--step=60-last.ckpt").unlink()  # the newest save is gone: only context/ is left
    human = _inspect(run)
    assert "ERROR INCOMPLETE checkpoints/staged--step=60-last: cannot resume from it: holds only context/" in human.stdout
    assert "ERROR INCOMPLETE checkpoints/staged--step=50-last" not in human.stdout  # still step 50's companion


@pytest.fixture()
def megatron_pair(megatron_incident_ckpt, tmp_path) -> tuple[Path, Path]:
    """A Megatron checkpoint and a full ``-last`` copy beside it, as ``save_last=True`` writes them."""
    folder = tmp_path / "run" / "checkpoints"
    ckpt = folder / megatron_incident_ckpt.name
    shutil.copytree(megatron_incident_ckpt, ckpt)
    last = shutil.copytree(megatron_incident_ckpt, folder / (ckpt.name + "-last"))
    return ckpt, Path(last)


def test_a_last_checkpoint_missing_a_weights_file_stays_an_error(megatron_pair):
    ckpt, last = megatron_pair
    (last / "weights" / "__0_0.distcp").unlink()  # a shard .metadata lists is gone, as after a kill mid-save
    human = _inspect(ckpt.parent.parent)
    assert human.returncode == 1
    assert (f"ERROR INCOMPLETE checkpoints/{last.name}: cannot resume from it: "
            "shard weights/__0_0.distcp listed in .metadata is missing") in human.stdout
    (c,) = [c for c in _json(ckpt.parent.parent)["checkpoints"] if c["path"] == str(last)]
    assert c["companion_of"] is None and c["complete"] is False


def test_a_megatron_last_without_weights_is_not_a_companion(megatron_pair):
    """MegatronStrategy removes whole folders and never leaves a context-only one: its absence of weights/
    is damage, even beside a complete twin."""
    ckpt, last = megatron_pair
    shutil.rmtree(last / "weights")
    human = _inspect(ckpt.parent.parent)
    assert f"ERROR INCOMPLETE checkpoints/{last.name}: cannot resume from it: holds only context/" in human.stdout
