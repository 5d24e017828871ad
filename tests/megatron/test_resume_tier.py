"""The project's promises on NeMo's real Megatron path (issue 18): MegatronStrategy, megatron-core's
distributed and non-distributed optimizers, torch_dist checkpoints, one and two data-parallel ranks.

Every run is the recipe's own ``--smoke`` rehearsal (``tests.support.rehearsals``); every LR asserted is
read from the live megatron param groups at the start of each step, and compared bit for bit with the
LR the pre-launch check got from NeMo's scheduler for the same step.
"""

from __future__ import annotations

import pytest

from tests.support.megatron_runs import FINISHED, INCIDENT, INCIDENT_DIES, INCIDENT_SAVED
from tests.support.rehearsals import checked_lrs, checkpoint_at, off_plan, rehearse_recipe

pytestmark = [pytest.mark.nemo, pytest.mark.slow, pytest.mark.megatron]


def _newest(run_dir):
    from nemo_resume.inspection import inspect_path

    found = inspect_path(run_dir)
    assert found.latest is not None, [(c.state.location.path, c.problems) for c in found.checkpoints]
    return found.latest


def _ckpt_flag(run_dir) -> list[str]:
    return ["--resume", str(_newest(run_dir).state.location.path)]


@pytest.mark.parametrize(("dist_opt", "devices"), [(True, 1), (False, 2)], ids=["dist-opt-dp1", "plain-dp2"])
def test_the_incident_dies_where_the_inspector_predicts_with_nemos_error(incident, dist_opt, devices):
    from nemo_resume.constants import NEMO_BELOW_MIN_LR_TEXT

    run = incident(dist_opt, devices)
    assert run.prepared.check.first_problem.step == INCIDENT_DIES  # refused before launch, launched anyway
    assert run.result.error is not None and NEMO_BELOW_MIN_LR_TEXT in run.result.error, run.why()
    assert max(run.lrs) == INCIDENT_DIES - 1  # the last step NeMo computed an LR for
    assert not off_plan(run.lrs, checked_lrs(run.prepared))  # warmup exactly as the check stepped it
    latest = _newest(run.run_dir)
    assert latest.state.step == INCIDENT_SAVED
    assert ("LR_BELOW_MIN_LR", INCIDENT_DIES) in {(p.code, p.step) for p in latest.problems}


def test_the_stock_fix_dies_again_after_resume_on_another_dp_size(incident, tmp_path):
    """min_lr lowered in the config, resumed through stock NeMo (--lr-policy keep): the checkpoint's
    scheduler state wins; the DP=2 checkpoint resumes on one rank and dies at the same step."""
    from nemo_resume.constants import NEMO_BELOW_MIN_LR_TEXT

    source = incident(False, 2)
    flags = [*INCIDENT, "--min-lr", "1e-6", "--lr-policy", "keep", *_ckpt_flag(source.run_dir), "--dir", str(tmp_path)]
    run = rehearse_recipe("pretrain", flags, devices=1, dist_opt=False)
    assert run.prepared.refusal is not None  # the plan refuses keep; the stock resume runs anyway
    assert run.result.error is not None and NEMO_BELOW_MIN_LR_TEXT in run.result.error, run.why()
    assert sorted(run.lrs) == list(range(INCIDENT_SAVED, INCIDENT_DIES))


@pytest.mark.parametrize(("policy", "devices"), [("smooth", 1), ("recompute", 1), ("auto", 2)],
                         ids=["smooth-dp1", "recompute-dp1", "auto-dp1-to-dp2"])
def test_a_planned_resume_follows_the_plan_at_every_step(incident, tmp_path, policy, devices):
    """From the distributed-optimizer incident checkpoint (DP=1), with min_lr lowered: the live LR of
    every megatron param group equals the plan at every step to max_steps; ``auto`` is smooth here,
    and resumes on two ranks (DP 1 -> 2)."""
    source = incident(True, 1)
    flags = [*INCIDENT, "--min-lr", "1e-6", "--lr-policy", policy, *_ckpt_flag(source.run_dir), "--dir", str(tmp_path)]
    run = rehearse_recipe("pretrain", flags, devices=devices, dist_opt=True)
    plan = run.prepared.plan
    assert run.prepared.refusal is None and plan.target is not None
    assert plan.decision.policy == ("smooth" if policy == "auto" else policy)
    assert run.result.error is None, run.why()
    assert min(run.lrs) == INCIDENT_SAVED and run.result.final_step == 60
    assert len(run.lrs[INCIDENT_SAVED]) == 2  # megatron's weight-decay split: two groups
    assert not off_plan(run.lrs, checked_lrs(run.prepared))


def test_strict_refuses_the_changed_schedule_without_a_run(incident, tmp_path):
    from nemo_resume.recipes.launch import prepare
    from nemo_resume.recipes.options import build_parser, options_from_args

    source = incident(True, 1)
    argv = [*INCIDENT, "--min-lr", "1e-6", "--lr-policy", "strict", *_ckpt_flag(source.run_dir), "--dir", str(tmp_path)]
    prepared = prepare(options_from_args("pretrain", build_parser("pretrain", "t").parse_args(argv)))
    assert prepared.refusal is not None and "min_lr" in prepared.refusal


def test_extending_a_finished_two_rank_run_follows_the_plan(finished_rehearsal, tmp_path):
    """The finished run ends at min_lr 1e-4; extended to 45 steps with min_lr 1e-5 (auto: smooth), on two ranks."""
    source = finished_rehearsal(True, 2)
    assert source.result.error is None, source.why()
    flags = [*FINISHED, "--max-steps", "45", "--min-lr", "1e-5", *_ckpt_flag(source.run_dir), "--dir", str(tmp_path)]
    run = rehearse_recipe("pretrain", flags, devices=2, dist_opt=True)
    assert run.prepared.refusal is None and run.prepared.plan.target is not None
    assert run.result.error is None, run.why()
    assert min(run.lrs) == 30 and run.result.final_step == 45
    assert not off_plan(run.lrs, checked_lrs(run.prepared))


def test_a_resume_off_the_plan_is_stopped_before_its_first_off_plan_step_trains(finished_rehearsal, tmp_path):
    """A cooldown is planned, then the recipe is edited back to NeMo's own cosine (as a YAML override of
    ``optim.lr_scheduler`` would). Lightning restores the checkpoint's cosine, whose LR at the resume step is the
    cooldown's start: step 20 passes. Step 21 would train at the old decay's LR, not the cooldown's: the run
    stops before it, with the one line (regression: it trained to the end off the plan, silently)."""
    import nemo_run as run
    from nemo.lightning.pytorch.optim import CosineAnnealingScheduler

    source = finished_rehearsal(True, 1)
    flags = ["--lr", "1e-3", "--min-lr", "1e-5", "--lr-policy", "cooldown", "--decay-steps", "10",
             "--resume", str(checkpoint_at(source.run_dir, 20)), "--dir", str(tmp_path)]

    def stock_cosine(recipe) -> None:
        recipe.optim.lr_scheduler = run.Config(CosineAnnealingScheduler, max_steps=30, warmup_steps=5, constant_steps=0,
                                               min_lr=1e-4)

    off = rehearse_recipe("pretrain", flags, dist_opt=True, edit=stock_cosine)
    assert off.prepared.refusal is None
    assert sorted(off.lrs) == [20], off.why()  # step 21 never trained
    assert off.result.error is not None and "nemo-resume: step 21: param group 0 trains at LR" in off.result.error
    assert "the plan says" in off.result.error and "\n" not in off.result.error.split("nemo-resume: step 21")[1].split(
        "Re-run the plan")[0]


def test_lr_stages_resume_keeps_the_staged_schedule(tmp_path):
    """--lr-stages (NeMo-serializable StagedLR): stopped at step 14, resumed; every step's live LR is
    the staged schedule the check stepped, across the stage switch at step 10."""
    flags = ["--lr-stages", "10:1e-3,10:1e-4", "--min-lr", "0", "--checkpoint-every", "7", "--dir", str(tmp_path)]
    first = rehearse_recipe("pretrain", flags, stop_after_step=14)
    assert first.result.error is None and first.result.final_step == 14, first.why()
    assert not off_plan(first.lrs, checked_lrs(first.prepared))
    run = rehearse_recipe("pretrain", [*flags, "--resume", "auto"])
    assert run.result.error is None, run.why()
    assert min(run.lrs) == 14 and run.result.final_step == 20
    assert not off_plan(run.lrs, checked_lrs(run.prepared))
    assert {lrs[0] for s, lrs in run.lrs.items() if s >= 10} == {1e-4}


def test_the_stand_ins_stay_inside_the_rehearsal_processes(incident):
    """Every stand-in was installed in the rehearsal; none leaked into this (the caller's) process."""
    import torch
    from megatron.core.optimizer import distrib_optimizer

    from nemo_resume.smoke.cpu_standins import STAND_INS

    run = incident(True, 1)
    assert run.result.stand_ins == tuple(s.id for s in STAND_INS)
    here = "nemo_resume.smoke.cpu_standins"
    patched = [torch.cuda.current_device, torch.cuda.synchronize, torch.Tensor.cuda, torch.Tensor.to,
               distrib_optimizer.DistributedOptimizer.load_state_dict]
    assert [f for f in patched if getattr(f, "__module__", None) == here] == []
