"""``training_report.json``'s checkpoint count on a real run of seed 004's schedule."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.nemo, pytest.mark.slow]


def test_seed_004s_schedule_keeps_50_checkpoints_steps_75_to_124(tmp_path):
    """``--lr-stages 75:1e-4,50:1e-5 --save-from-step 75 --checkpoint-every 1``, 125 steps, on NeMo's trainer and
    checkpointing (the Lightning stand-in): one checkpoint after each of the steps 75-124, which Lightning names by the
    steps done (76-125). NeMo also leaves a ``-last`` twin and context-only ``-last`` folders: not checkpoints."""
    from nemo_resume.audit.checkpoints import kept_checkpoints
    from nemo_resume.schedules.staged import StagedLRScheduler
    from nemo_resume.smoke import SmokeConfig
    from nemo_resume.smoke.train import train

    cfg = SmokeConfig(lr=1e-4, max_steps=125, checkpoint_every=1, save_from_step=75, save_optim_on_train_end=True,
                      lr_scheduler=StagedLRScheduler("75:1e-4,50:1e-5"), name="seed004")
    run = train(cfg, tmp_path)
    assert run.ok, run.error
    kept = kept_checkpoints(tmp_path / "seed004")
    assert kept.count == 50 and kept.steps == tuple(range(76, 126))
    assert kept.to_json() == {"count": 50, "first_step": 76, "last_step": 125}
