"""The planner's predictions beyond the LR, against NeMo's real Megatron path on CPU (``--smoke`` rehearsals).

- an ``--lr-mult`` added on resume of a distributed-optimizer checkpoint: the plan refuses it with
  PARAM_GROUPS_CHANGED, and the resume launched anyway (as ``--launch-anyway`` does) fails in megatron-core's
  ``DistributedOptimizer.load_state_dict`` at the line the plan names, before any step;
- a DP 1 -> 2 resume of the same dp_reshardable checkpoint: the plan predicts no error (the resume itself is run,
  and followed step by step, by ``test_resume_tier.py::test_a_planned_resume_follows_the_plan_at_every_step[auto-dp1-to-dp2]``).

- a TP 2 -> 1 resume of a dp_reshardable checkpoint written by a TP=2 rehearsal on two CPU ranks: the plan
  refuses it with OPTIMIZER_NOT_RESHARDABLE, and the resume launched anyway fails in megatron-core's checkpoint
  load with a global shape mismatch of the distributed optimizer's buffer, before any step; the same checkpoint
  resumed at TP=2 on two ranks is planned with no error.
"""

from __future__ import annotations

import pytest

from tests.support.megatron_runs import INCIDENT, INCIDENT_SAVED
from tests.support.rehearsals import checkpoint_at, rehearse_recipe

pytestmark = [pytest.mark.nemo, pytest.mark.slow, pytest.mark.megatron]

RESUME = [*INCIDENT, "--min-lr", "1e-6", "--lr-policy", "smooth"]
#: The shortest TP=2 run with a checkpoint to resume: saved at step 2 of 4.
TP2 = ["--lr", "1e-3", "--min-lr", "1e-4", "--warmup-steps", "2", "--max-steps", "4", "--checkpoint-every", "2"]
TP2_SAVED = 2


def test_an_lr_mult_change_fails_at_the_optimizer_load_the_plan_names(incident, tmp_path):
    source = checkpoint_at(incident(True, 1).run_dir, INCIDENT_SAVED)
    flags = [*RESUME, "--lr-mult", "*linear_fc2*=0.5", "--resume", str(source), "--dir", str(tmp_path)]
    run = rehearse_recipe("pretrain", flags, devices=1, dist_opt=True)
    (predicted,) = [p for p in run.prepared.plan.problems if p.code == "PARAM_GROUPS_CHANGED"]
    assert predicted.severity == "error" and run.prepared.refusal is not None
    assert "distrib_optimizer.py:733-760" in predicted.message
    assert run.result.error is not None and run.lrs == {}, run.why()  # not one step trained
    out = run.why()
    assert "KeyError: (1.0, 0.5, False, False)" in out  # (wd_mult, lr_mult, is_expert_parallel, is_decoupled_lr)
    assert "distrib_optimizer.py\", line 759, in load_state_dict" in out


def test_a_dp_1_to_2_resume_of_dp_reshardable_predicts_no_error(incident, tmp_path):
    from nemo_resume.recipes.launch import prepare
    from nemo_resume.recipes.options import build_parser, options_from_args

    source = checkpoint_at(incident(True, 1).run_dir, INCIDENT_SAVED)
    argv = [*RESUME, "--resume", str(source), "--dir", str(tmp_path)]
    prepared = prepare(options_from_args("pretrain", build_parser("pretrain", "t").parse_args(argv)), smoke_devices=2)
    assert prepared.plan.choice.checkpoint.state.run_layout.dp == 1
    assert prepared.plan.problems == () and prepared.refusal is None


def test_a_tp_2_to_1_resume_fails_at_the_checkpoint_load_the_plan_predicts(tmp_path):
    from nemo_resume.recipes.launch import prepare
    from nemo_resume.recipes.options import build_parser, options_from_args

    saved = rehearse_recipe("pretrain", [*TP2, "--tp", "2", "--dir", str(tmp_path / "tp2")], devices=2, dist_opt=True)
    assert saved.result.error is None, saved.why()
    source = checkpoint_at(saved.run_dir, TP2_SAVED)

    run = rehearse_recipe("pretrain", [*TP2, "--resume", str(source), "--dir", str(tmp_path / "tp1")],
                          devices=1, dist_opt=True)
    layout = run.prepared.plan.choice.checkpoint.state.run_layout
    assert (layout.tp, layout.optimizer_format) == (2, "dp_reshardable")
    (predicted,) = [p for p in run.prepared.plan.problems if p.code == "OPTIMIZER_NOT_RESHARDABLE"]
    assert predicted.severity == "error" and run.prepared.refusal is not None
    assert "--tp 2 -> 1" in predicted.message
    assert run.result.error is not None and run.lrs == {}, run.why()  # not one step trained
    out = run.why()
    assert ("Global shape mismatch for loaded (torch.Size([45504])) and expected ((90688,)) tensor for key "
            "optimizer.distributed.dp_group_idx_0.gbuf_idx_0.dtype_(torch.float32, torch.float32).bucket_idx_0.param"
            in out)  # one TP rank's half of the buffer, where TP=1 expects the whole
    assert "strategies/torch.py\", line 618, in _validate_global_shapes" in out
    assert "re-save the checkpoint with `ckpt_optim_fully_reshardable=True` flag" in out

    argv = [*TP2, "--tp", "2", "--resume", str(source), "--dir", str(tmp_path / "tp2-again")]
    same = prepare(options_from_args("pretrain", build_parser("pretrain", "t").parse_args(argv)), smoke_devices=2)
    assert [p for p in same.plan.problems if p.severity == "error"] == [] and same.refusal is None
