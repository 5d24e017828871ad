"""From recipe options to a running job: plan, check, build, then dry-run, smoke run or launch.

The recipe scripts in ``recipes/`` call :func:`run_recipe`; each step is a function of its own
so a copied script can reorder or replace one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nemo_resume.check.prelaunch import plan_and_check
from nemo_resume.check.result import CheckResult
from nemo_resume.errors import NemoResumeError
from nemo_resume.planning import MODE_RESUME, ResumePlan
from nemo_resume.recipes.options import RecipeOptions


@dataclass(frozen=True)
class Prepared:
    """What is known before anything runs: the plan, the check, and any refusal."""

    opts: RecipeOptions
    plan: ResumePlan
    check: CheckResult
    request_error: str | None

    @property
    def refusal(self) -> str | None:
        """Why launching would be wrong, or None; ``--launch-anyway`` overrides it."""
        if self.request_error:
            return self.request_error
        if not self.plan.ok:
            return "; ".join(p.message for p in self.plan.problems if p.severity == "error")
        f = self.check.first_problem
        if f is not None:
            return f"the schedule check fails at step {f.step} ({f.name}): {f.reason}"
        return None


def prepare(opts: RecipeOptions) -> Prepared:
    """Plan the resume for ``opts`` and check it with NeMo's real scheduler (see plan_and_check)."""
    plan, check, error = plan_and_check(
        opts.run_dir, opts.request(checked=False), resume=opts.resume, policy=opts.lr_policy, max_jump=opts.max_jump
    )
    return Prepared(opts, plan, check, error)


def executor(opts: RecipeOptions) -> Any:
    """NeMo-Run's LocalExecutor (torchrun, one process per GPU) or SlurmExecutor."""
    import nemo_run as run

    if opts.executor == "local":
        return run.LocalExecutor(ntasks_per_node=opts.gpus_per_node, launcher="torchrun")
    s = opts.slurm
    missing = [f"--{k}" for k in ("account", "partition") if not s.get(k)]
    if missing:
        raise NemoResumeError(f"--executor slurm needs {' and '.join(missing)}")
    return run.SlurmExecutor(
        account=s["account"],
        partition=s["partition"],
        time=s.get("time") or "04:00:00",
        nodes=opts.num_nodes,
        ntasks_per_node=opts.gpus_per_node,
        gpus_per_node=opts.gpus_per_node,
        container_image=s.get("container_image"),
        container_mounts=list(s.get("mounts") or []),
        tunnel=run.LocalTunnel(job_dir=str((opts.dir / "nemo_run").resolve())),
    )


def to_yaml(recipe: Any) -> str:
    """NeMo-Run's YAML of ``recipe``.

    NeMo's ``io_dump`` (run by every ModelCheckpoint save) re-registers representers for the
    same classes on the global ``yaml.SafeDumper``, after which NeMo-Run's serializer emits
    ``_target_: nemo_run.config.Partial`` and nothing else. Reloading NeMo-Run's module puts its
    own representers back first.
    """
    import importlib

    import nemo_run.core.serialization.yaml as nemo_run_yaml

    return importlib.reload(nemo_run_yaml).YamlSerializer().serialize(recipe)


def launch(recipe: Any, opts: RecipeOptions, *, dryrun: bool) -> None:
    """Hand the recipe to NeMo-Run; with ``dryrun`` it prints the launch command and runs nothing."""
    import nemo_run as run

    run.run(recipe, executor=executor(opts), name=opts.name, dryrun=dryrun, direct=False)


def smoke(opts: RecipeOptions, plan: ResumePlan):
    """The same schedule, checkpointing and resume plan on a tiny CPU model (nemo_resume.smoke).

    NeMo's scheduler, optimizer module, ModelCheckpoint, NeMoLogger and AutoResume are the real
    ones; the model and the strategy are not Megatron's (docs/smoke.md says what differs).
    """
    from nemo_resume.callback import ResumeScheduleCallback
    from nemo_resume.schedules.scheduler_module import scheduler_module
    from nemo_resume.smoke.train import SmokeConfig, train

    mult = opts.lr_mult
    cfg = SmokeConfig(
        lr=opts.lr, min_lr=opts.min_lr, warmup_steps=opts.warmup_steps, max_steps=opts.max_steps,
        constant_steps=opts.constant_steps, checkpoint_every=opts.checkpoint_every,
        save_optim_on_train_end=True, name=opts.name,
        # the recipe's own scheduler module; one extra head stands in for the --lr-mult parameters
        lr_scheduler=scheduler_module(opts.request(checked=False)).build(),
        lr_mults=(mult.mult,) if mult else (), save_from_step=opts.save_from_step,
    )
    callbacks = [ResumeScheduleCallback.from_state(plan.target, plan.resume_step)] if plan.target else []
    resume_from = Path(plan.checkpoint) if plan.mode == MODE_RESUME and plan.checkpoint else None
    return train(cfg, opts.dir, resume_from=resume_from, callbacks=callbacks)
