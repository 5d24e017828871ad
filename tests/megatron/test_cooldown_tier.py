"""``--lr-policy cooldown`` on NeMo's real Megatron path (issue 19): a finished run's checkpoint at step 20
(distributed optimizer, one rank) annealed to a lower floor over 10 steps with the 1-sqrt shape; then that
cooldown run's own step-25 checkpoint resumed with the default policy, which continues the cooldown to step 30.

The runs are the recipe's own ``--smoke`` rehearsal; every LR asserted is read from the live megatron param
groups at the start of each step and compared with the LR the pre-launch check got from the scheduler the
run builds, restored from the checkpoint the way Lightning restores it.
"""

from __future__ import annotations

import pytest

from tests.support.rehearsals import checked_lrs, checkpoint_at, kept_checkpoints, off_plan, rehearse_recipe

pytestmark = [pytest.mark.nemo, pytest.mark.slow, pytest.mark.megatron]

RESUMED_AT, DECAY = 20, 10


@pytest.fixture(scope="module")
def cooldown(finished_rehearsal, tmp_path_factory):
    """(the finished run, the cooldown run of its step-20 checkpoint)."""
    source = finished_rehearsal(True, 1)
    assert source.result.error is None, source.why()
    ckpt = checkpoint_at(source.run_dir, RESUMED_AT)
    flags = ["--lr", "1e-3", "--min-lr", "1e-5", "--checkpoint-every", "5", "--lr-policy", "cooldown",
             "--decay-steps", str(DECAY), "--decay-type", "1-sqrt", "--resume", str(ckpt),
             "--dir", str(tmp_path_factory.mktemp("cooldown"))]
    return source, rehearse_recipe("pretrain", flags, devices=1, dist_opt=True)


def test_a_cooldown_continues_the_step_count_and_the_data_and_follows_the_plan(cooldown):
    from nemo_resume.schedules.cooldown import cooldown_lrs

    source, run = cooldown
    plan = run.prepared.plan
    assert run.prepared.refusal is None and plan.cooldown is not None, run.prepared.refusal
    assert run.result.error is None, run.why()
    # the step count continues, and the run ends at the resume step + D
    assert min(run.lrs) == RESUMED_AT and max(run.lrs) == RESUMED_AT + DECAY - 1
    assert run.result.final_step == RESUMED_AT + DECAY
    # every megatron param group, every step: the planned cooldown, from the checkpoint's own LR (no jump, no warmup)
    assert len(run.lrs[RESUMED_AT]) == 2  # megatron's weight-decay split
    assert run.lrs[RESUMED_AT] == source.lrs[RESUMED_AT]
    assert not off_plan(run.lrs, checked_lrs(run.prepared))
    assert all(run.lrs[t] == cooldown_lrs(plan.cooldown, t) for t in run.lrs)
    # the data continues: consumed samples = the checkpoint's + GBS x steps trained since
    old = {c.state.step: c.state.consumed_samples for c in kept_checkpoints(source.run_dir)}
    gbs = (old[20] - old[10]) / 10
    new = {c.state.step: c for c in kept_checkpoints(run.run_dir)}
    assert sorted(new) == [25, 30]
    for step, c in new.items():
        assert c.state.consumed_samples == old[RESUMED_AT] + gbs * (step - RESUMED_AT)
    # the cooldown run's checkpoints hold its own cooldown, which a later resume restores
    assert new[30].state.scheduler.extra.get("cooldown_steps") == DECAY


def test_an_interrupted_cooldown_resumed_with_the_default_policy_continues_it_to_its_end(cooldown, tmp_path):
    """The cooldown run's step-25 checkpoint, resumed as any run is (no --lr-policy): the plan is the cooldown it
    holds, the recipe builds that scheduler, Lightning restores the same state, the resume-LR check passes."""
    from nemo_resume.schedules.cooldown import cooldown_lrs

    _, first = cooldown
    started, interrupted = first.prepared.plan.cooldown, RESUMED_AT + 5
    flags = ["--lr", "1e-3", "--min-lr", "1e-5", "--warmup-steps", "5", "--max-steps", str(RESUMED_AT + DECAY),
             "--checkpoint-every", "5", "--resume", str(checkpoint_at(first.run_dir, interrupted)), "--dir", str(tmp_path)]
    run = rehearse_recipe("pretrain", flags, devices=1, dist_opt=True)
    plan = run.prepared.plan
    assert run.prepared.refusal is None and plan.cooldown == started, run.prepared.refusal
    assert run.result.error is None, run.why()
    assert min(run.lrs) == interrupted and run.result.final_step == RESUMED_AT + DECAY
    assert run.lrs[interrupted] == first.lrs[interrupted]  # no jump: the LR the cooldown run had at step 25
    assert all(run.lrs[t] == cooldown_lrs(started, t) for t in run.lrs)  # every group, every step
    assert not off_plan(run.lrs, checked_lrs(run.prepared))
