"""The one entry: a run folder's logs read, compared with its plans, and checked for health. Reads only."""

from __future__ import annotations

from pathlib import Path

from nemo_resume.audit.compare import PlanComparison, compare
from nemo_resume.audit.events import Attempt, read_run
from nemo_resume.audit.health import findings
from nemo_resume.audit.plans import PLANS_DIR, plan_for, saved_plans
from nemo_resume.audit.result import AuditResult
from nemo_resume.audit.resumes import final_timeline, spans
from nemo_resume.check.inputs import load_plan
from nemo_resume.planning import ResumePlan


def _final_lrs(attempts: list[Attempt]) -> dict[int, tuple[float, ...]]:
    """Step -> every group's LR as the attempt the run kept for that step trained it."""
    lrs = [a.lrs for a in attempts]
    return {s: lrs[i][s] for s, i in sorted(final_timeline(attempts).items()) if s in lrs[i]}


def audit_run(run: Path | str, plan_path: Path | str | None = None) -> AuditResult:
    """Audit the run folder ``run`` (the recipe's ``<dir>/<name>``).

    Args:
        run: the run folder; its event files are under ``<dir>/tb_logs/<name>/``.
        plan_path: a plan file (``nemo-resume plan -o``) to compare the run's final timeline with, from its resume
            step on; without it, each attempt is compared with the plan its launch saved (``<run>/plans/``).

    Raises:
        NemoResumeError: no run folder, no event file with a training step, or a plan file that is not one.
    """
    run = Path(run)
    plan = load_plan(plan_path) if plan_path is not None else None  # a bad --plan answers before the logs are read
    attempts = read_run(run)
    notes: list[str] = []
    if not all(a.every_group for a in attempts):
        notes.append("only param group 0's LR is logged (NeMo's `lr`) in some attempts: the recipes log every group "
                     "since they add Lightning's LearningRateMonitor")
    comparisons: list[PlanComparison] = []
    plans: list[ResumePlan | None] = []
    if plan is not None:
        comparisons.append(compare(_final_lrs(attempts), plan, str(plan_path), None))
    else:
        saved, stray = saved_plans(run)
        notes += stray
        for i, attempt in enumerate(attempts):
            paired = plan_for(attempt.started, saved)
            plans.append(paired.plan if paired else None)
            if paired is None:
                notes.append(f"attempt {i} (steps {attempt.first_step}-{attempt.last_step}): no plan saved in "
                             f"{run / PLANS_DIR} before it started; its LR is not compared (give --plan FILE)")
            else:
                comparisons.append(compare(attempt.lrs, paired.plan, str(paired.path), i))
    notes += [f"{c.plan}: {c.note}" for c in comparisons if c.note]
    found = [f for i, a in enumerate(attempts)
             for f in findings(i, a, _base_lr(plan or (plans[i] if plans else None)))]
    return AuditResult(run, tuple(attempts), tuple(spans(attempts)), tuple(comparisons), tuple(found),
                       plan or (plans[-1] if plans else None), tuple(notes))


def _base_lr(plan: ResumePlan | None) -> float | None:
    """The base LR the advice halves: the one the plan was made for."""
    return plan.request.lr if plan is not None else None
