"""``nemo-resume audit`` on real runs: NeMo's Megatron path on CPU (the recipes' ``--smoke`` rehearsal), its own
TensorBoard logs read back with TensorBoard's reader.

Two rehearsals: the finished run (a session fixture) resumed through the recipe script with a stock config change,
and a fresh run with a NaN loss and a loss/grad-norm spike injected (``tests.support.faults``).
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import pytest

from tests.support.rehearsals import checkpoint_at, kept_checkpoints, rehearse_recipe

pytestmark = [pytest.mark.nemo, pytest.mark.slow, pytest.mark.megatron]

ROOT = Path(__file__).resolve().parents[2]
RESUME_STEP = 20
# The stock config change: a lower LR and floor, resumed with --lr-policy keep (no callback: NeMo restores the
# checkpoint's scheduler, as any stock resume does). `asked.json` is what the same flags plan with the default policy.
CHANGED = ["--lr", "5e-4", "--min-lr", "1e-5", "--warmup-steps", "5", "--max-steps", "30"]
NAN_AT, SPIKE_AT = 8, 14
FAULTY = ["--lr", "1e-3", "--min-lr", "1e-4", "--warmup-steps", "2", "--max-steps", "20", "--checkpoint-every", "100"]


def _audit(capsys, *argv: str) -> tuple[int, str, str]:
    from nemo_resume.cli import main

    code = main(["audit", *map(str, argv)])
    out = capsys.readouterr()
    return code, out.out, out.err


def _strict(text: str) -> dict:
    def refuse(name: str) -> None:
        raise AssertionError(f"{name} in --json output")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module")
def stock_resume(finished_rehearsal, tmp_path_factory):
    """The finished 30-step run copied, then resumed from step 20 by ``recipes/qwen25_pretrain.py --smoke`` with
    ``CHANGED --lr-policy keep``; before it, ``nemo-resume plan`` wrote what ``CHANGED`` asks (``asked.json``)."""
    from nemo_resume.cli import main
    from nemo_resume.cli.recipe_cmd import run_script

    source = finished_rehearsal(True, 1)
    assert source.result.error is None, source.why()
    root = tmp_path_factory.mktemp("stock_resume")
    shutil.copytree(source.run_dir.parent, root, dirs_exist_ok=True)
    run_dir = root / source.run_dir.name
    resume = ["--resume", str(checkpoint_at(run_dir, RESUME_STEP))]
    assert main(["plan", str(run_dir), *CHANGED, *resume, "-o", str(root / "asked.json")]) == 0
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NEMORUN_HOME", str(root / "nemorun"))
        code = run_script("pretrain", [*CHANGED, *resume, "--lr-policy", "keep", "--checkpoint-every", "10", "--smoke",
                                       "--dir", str(root)], prog="recipes/qwen25_pretrain.py")
    assert code == 0
    return source, run_dir, root / "asked.json"


def test_a_stock_resume_that_ignores_the_asked_schedule_is_caught_at_the_first_step_off_it(stock_resume, capsys):
    """``auto`` plans a smooth change (the LR at the resume step kept, the new decay from the next one); NeMo kept
    the checkpoint's decay. The audit names step 21, with the LR the run trained at (the finished run's own at 21)
    and the plan's. Regression: Lightning's LearningRateMonitor logs a resumed run one step behind NeMo's tags;
    unaligned, the audit reported the resume step and an LR jump that never happened."""
    from nemo_resume.audit import audit_run
    from nemo_resume.audit.compare import LR_REL_TOL
    from nemo_resume.check import load_plan

    source, run_dir, asked = stock_resume
    plan = load_plan(asked)
    assert plan.decision.policy == "smooth" and plan.resume_step == RESUME_STEP
    result = audit_run(run_dir, asked)
    assert [(p.code, p.step) for p in result.problems] == [("LR_OFF_PLAN", RESUME_STEP + 1)]
    (comparison,) = result.comparisons
    d = comparison.first
    assert comparison.compared == tuple(range(RESUME_STEP, 30))
    assert len(source.lrs[d.step]) == 2 and d.group == 0  # megatron's weight-decay split: two groups, both off
    assert d.actual == pytest.approx(source.lrs[d.step][0], rel=1e-6)  # float32 in TensorBoard
    assert d.planned == pytest.approx(plan.planned_lrs(d.step)[0], rel=1e-12)
    assert d.relative > 100 * LR_REL_TOL

    code, out, err = _audit(capsys, run_dir, "--plan", asked, "--json")
    doc = _strict(out)
    assert code == 1 and doc["problems"][0]["step"] == RESUME_STEP + 1 and not err.strip()


def test_each_attempt_is_compared_with_the_plan_its_launch_saved(stock_resume):
    """The recipe script saved the keep plan beside its launch: the resumed attempt followed it; the first attempt
    (a rehearsal launched without the script) has no plan and is said so. Steps 20-29 were trained twice, at the same
    LR on both sides of the seam."""
    from nemo_resume.audit import audit_run

    source, run_dir, _ = stock_resume
    result = audit_run(run_dir)
    assert result.problems == []
    assert [(s.first_step, s.last_step) for s in result.spans] == [(0, 29), (RESUME_STEP, 29)]
    resumed = result.spans[1]
    assert resumed.repeated == tuple(range(RESUME_STEP, 30)) and resumed.skipped == ()
    assert resumed.seam.same_step and resumed.seam.relative < 1e-6 and not resumed.jump
    (comparison,) = result.comparisons
    assert comparison.attempt == 1 and comparison.first is None and comparison.compared == tuple(range(RESUME_STEP, 30))
    assert Path(comparison.plan).parent == run_dir / "plans"
    assert any("attempt 0" in n and "no plan saved" in n for n in result.notes)
    assert result.every_group and all(len(v) == 2 for v in result.attempts[1].lrs.values())


def test_the_recipe_script_writes_the_training_report_when_the_run_ends(stock_resume):
    source, run_dir, _ = stock_resume
    report = _strict((run_dir / "training_report.json").read_text())
    assert report["steps"] == {"first": 0, "last": 29, "trained": 30, "max_steps": 30}
    assert [(a["first_step"], a["repeated_steps"]) for a in report["attempts"]] == [(0, 0), (RESUME_STEP, 10)]
    kept = kept_checkpoints(run_dir)
    assert report["checkpoints"] == {"count": len(kept), "first_step": 10, "last_step": 30}
    # the keep plan's cosine: warmup to step 5, decay from step 6 (the run's own, as the first attempt trained it)
    (switch,) = report["stage_switches"]
    assert switch["step"] == 6 and switch["after"] == pytest.approx(source.lrs[6], rel=1e-6)
    assert switch["after"] == pytest.approx(switch["planned"], rel=1e-6)
    assert report["final_loss"]["step"] == 29 and math.isfinite(report["final_loss"]["value"])
    assert 0 < report["seconds_per_step"] < 10 and report["problems"] == []


def test_the_plot_draws_every_group_logged_and_planned_with_the_resume_marked(stock_resume, tmp_path, capsys):
    from nemo_resume.audit import audit_run
    from nemo_resume.audit.plot import plotted_series

    source, run_dir, asked = stock_resume
    code, out, _ = _audit(capsys, run_dir, "--plan", asked, "--plot", tmp_path / "audit.png")
    assert code == 1 and "FAIL at step 21" in out and (tmp_path / "audit.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    lines = {(s.panel, s.label): s for s in plotted_series(audit_run(run_dir, asked))}
    assert {label for panel, label in lines if panel == "lr"} == {
        "attempt 0 group 0", "attempt 0 group 1", "attempt 1 group 0", "attempt 1 group 1",
        "planned group 0 (asked.json)", "planned group 1 (asked.json)"}
    assert lines[("loss", "attempt 1")].x == tuple(range(RESUME_STEP, 30))


@pytest.fixture(scope="module")
def faulty_run(tmp_path_factory):
    """A fresh 20-step run whose loss is NaN at step 8 (empty loss mask) and 1000x at step 14 (grad norm too)."""
    import nemo_run as run

    from nemo_resume.planning.plan_file import plan_to_json
    from tests.support.faults import LossFaults

    def inject(recipe) -> None:
        recipe.trainer.callbacks.append(run.Config(LossFaults, nan_at=NAN_AT, spike_at=SPIKE_AT))

    root = tmp_path_factory.mktemp("faulty")
    with pytest.MonkeyPatch.context() as mp:  # the rehearsal's process builds LossFaults from tests.support.faults
        mp.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
        rehearsal = rehearse_recipe("pretrain", [*FAULTY, "--dir", str(root)], edit=inject)
    assert rehearsal.result.error is None and rehearsal.result.final_step == 20, rehearsal.why()
    plan = root / "plan.json"
    plan.write_text(json.dumps(plan_to_json(rehearsal.prepared.plan)))
    return rehearsal, plan


def test_a_nan_loss_and_a_grad_norm_spike_are_flagged_at_their_steps_with_the_seeds_advice(faulty_run, capsys):
    from nemo_resume.audit.health import GRAD_NORM_MAX

    rehearsal, plan = faulty_run
    assert math.isnan(rehearsal.result.losses[NAN_AT])  # what the run itself saw
    code, out, _ = _audit(capsys, rehearsal.run_dir, "--plan", plan, "--json")
    doc = _strict(out)
    assert code == 1
    found = {(p["code"], p["step"]): p for p in doc["problems"]}
    assert set(found) == {("NAN_LOSS", NAN_AT), ("LOSS_SPIKE", SPIKE_AT), ("GRAD_NORM_HIGH", SPIKE_AT)}
    # the run followed its plan: every megatron group's LR is the plan's at every step (no false alarm)
    (comparison,) = doc["lr"]["comparisons"]
    assert comparison["divergence"] is None and comparison["steps_compared"] == 20
    nan = found[("NAN_LOSS", NAN_AT)]
    assert "--lr 0.0005 (half of 0.001" in nan["advice"] and "--clip-grad 0.5" in nan["advice"]
    grad = [h for h in doc["health"] if h["code"] == "GRAD_NORM_HIGH"][0]
    assert grad["value"] > GRAD_NORM_MAX and grad["steps"] == 1 and "--clip-grad" in grad["advice"]
    assert [h["value"] for h in doc["health"] if h["code"] == "NAN_LOSS"] == [None]  # strict JSON: NaN is null


def test_audit_writes_nothing_unless_asked(faulty_run, capsys):
    rehearsal, plan = faulty_run
    before = sorted(p for p in rehearsal.run_dir.parent.rglob("*"))
    code, out, _ = _audit(capsys, rehearsal.run_dir, "--plan", plan)
    assert code == 1 and f"FAIL at step {NAN_AT}" in out and "NAN_LOSS" in out
    assert sorted(p for p in rehearsal.run_dir.parent.rglob("*")) == before
