"""Several LR multipliers and a layer-wise decay on NeMo's real Megatron path (issue 21), with the distributed optimizer.

- Seed 003's two multipliers, a randomly initialised head at 5x and the feed-forward input layers at 0.5x
  (``--lr-mult '*output_layer*=5' --lr-mult '*linear_fc1*=0.5'``), over seed 001's layer-wise decay of the recipe's
  24 layers (``--layer-lr-decay 0.8``: every other parameter), on two data-parallel ranks: stopped at step 14,
  resumed; every step's live LR of every megatron param group is the LR the pre-launch check got from NeMo's
  scheduler, and the groups are aligned across the ranks.
- The same checkpoint resumed with the head at 4x: the plan refuses it (PARAM_GROUPS_CHANGED, naming the
  checkpoint's flags), and the resume launched anyway fails in megatron-core's optimizer load, before any step.

Every LR asserted is read from the live megatron param groups at the start of each step (``tests.support.rehearsals``).
"""

from __future__ import annotations

import pytest

from tests.support.rehearsals import checked_lrs, checkpoint_at, kept_checkpoints, off_plan, rehearse_recipe

pytestmark = [pytest.mark.nemo, pytest.mark.slow, pytest.mark.megatron]

SCHEDULE = ["--lr", "1e-3", "--min-lr", "1e-6", "--warmup-steps", "5", "--max-steps", "20", "--checkpoint-every", "7"]
RULES = ["--lr-mult", "*output_layer*=5", "--lr-mult", "*linear_fc1*=0.5", "--layer-lr-decay", "0.8"]
STOP = 14


def _group_keys(run_dir):
    (last,) = [c for c in kept_checkpoints(run_dir) if c.state.step == STOP]
    layout = last.state.run_layout
    return set(layout.group_keys), layout


@pytest.fixture(scope="module")
def groups_run(tmp_path_factory):
    """The multipliers and the decay, two ranks, stopped at step 14 (checkpoints at 7 and 14)."""
    run_dir = tmp_path_factory.mktemp("lr_mults")
    first = rehearse_recipe("pretrain", [*SCHEDULE, *RULES, "--dir", str(run_dir)], devices=2, dist_opt=True,
                            stop_after_step=STOP)
    assert first.result.error is None and first.result.final_step == STOP, first.why()
    return first, run_dir


def test_multipliers_and_a_decay_train_and_resume_with_every_groups_lr_on_the_plan(groups_run):
    first, run_dir = groups_run
    assert not off_plan(first.lrs, checked_lrs(first.prepared))
    keys, layout = _group_keys(run_dir)
    # layer i of 24 at 0.8^(23 - i), the embedding at 0.8^24, the output layer at 5, fc1 at 0.5, the final norm at 1
    assert {lr for lr, _ in keys} == {*(0.8**k for k in range(25)), 5.0, 0.5}
    assert (5.0, 1.0) in keys and (0.5, 1.0) in keys and (0.8, 0.0) in keys  # megatron's weight-decay split kept
    assert layout.lr_mult_rules == ("*output_layer*=5", "*linear_fc1*=0.5") and layout.layer_lr_decay == 0.8
    assert layout.dp == 2

    run = rehearse_recipe("pretrain", [*SCHEDULE, *RULES, "--dir", str(run_dir), "--resume", "auto"], devices=2,
                          dist_opt=True)
    assert run.prepared.refusal is None, run.prepared.refusal
    assert run.result.error is None, run.why()
    assert min(run.lrs) == STOP and run.result.final_step == 20
    assert len(run.lrs[STOP]) == len(keys) and not off_plan(run.lrs, checked_lrs(run.prepared))


def test_a_changed_multiplier_is_refused_and_fails_at_the_optimizer_load(groups_run, tmp_path):
    _, run_dir = groups_run
    source = checkpoint_at(run_dir, STOP)
    flags = [*SCHEDULE, "--lr-mult", "*output_layer*=4", *RULES[2:], "--resume", str(source), "--dir", str(tmp_path)]
    run = rehearse_recipe("pretrain", flags, devices=1, dist_opt=True)  # DP 2 -> 1 alone loads (dp_reshardable)
    (predicted,) = [p for p in run.prepared.plan.problems if p.code == "PARAM_GROUPS_CHANGED"]
    assert predicted.severity == "error" and run.prepared.refusal is not None
    assert ("Resume with --lr-mult '*output_layer*=5' --lr-mult '*linear_fc1*=0.5' --layer-lr-decay 0.8"
            in predicted.message)
    assert run.result.error is not None and run.lrs == {}, run.why()  # not one step trained
    assert "KeyError: (1.0, 4.0, False, False)" in run.why()  # (wd_mult, lr_mult, is_expert_parallel, is_decoupled_lr)
