"""From recipe options to a running job: plan, check, build, then dry-run, smoke run or launch.

The recipe scripts in ``recipes/`` call :func:`run_recipe`; each step is a function of its own
so a copied script can reorder or replace one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from nemo_resume.check.prelaunch import plan_and_check
from nemo_resume.check.result import CheckResult
from nemo_resume.environment import Launch, launch_from_recipe
from nemo_resume.planning import MODE_RESUME, MODE_WEIGHTS, ResumePlan
from nemo_resume.planning.new_run import NewRun
from nemo_resume.recipes.data import datamodule_name, train_tokens
from nemo_resume.recipes.options import RecipeOptions
from nemo_resume.recipes.save_steps import checkpoint_steps
from nemo_resume.recipes.slurm import experiment_base_dir, slurm_executor

if TYPE_CHECKING:
    from nemo_resume.smoke.train import SmokeResult


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

    @property
    def headline(self) -> str:
        """The plan's choice in one line: what the launch will start from, and why."""
        plan = self.plan
        if plan.mode == MODE_RESUME:
            policy = f", --lr-policy {plan.decision.policy}" if plan.decision else ""
            return f"resuming {plan.checkpoint} at step {plan.resume_step}{policy} ({plan.choice.why})"
        if plan.mode == MODE_WEIGHTS:
            return f"starting from the weights of {plan.checkpoint} with a fresh optimizer and schedule"
        return f"starting from step 0: {plan.choice.why}"


def new_run(opts: RecipeOptions, smoke_devices: int | None = None) -> NewRun:
    """The layout the run will have: the options', or the CPU rehearsal's with ``smoke_devices`` ranks
    (:mod:`nemo_resume.smoke.rehearsal`: the options' TP and a small global batch where they fit, PP = CP = 1, one
    node, the tiny micro batch and sequence). A pre-training run on ``--data`` has its training tokens per epoch measured from the data."""
    common = NewRun(lr_mults=opts.group_mults, peft_base=str(opts.model_import.path) if opts.model_import else None,
                    datamodule=datamodule_name(opts.task, opts.data),
                    train_tokens=train_tokens(opts.data) if opts.task == "pretrain" and opts.data else None)
    if smoke_devices is not None:
        from nemo_resume.smoke.rehearsal import TINY, rehearsal_gbs, rehearsal_tp

        tp = rehearsal_tp(opts.tp, smoke_devices)
        return replace(common, tp=tp, pp=1, cp=1, devices=smoke_devices, num_nodes=1,
                       global_batch_size=rehearsal_gbs(opts.global_batch_size, smoke_devices // tp),
                       micro_batch_size=TINY.micro_batch_size, max_steps=opts.max_steps, seq_length=TINY.seq_length)
    return replace(common, tp=opts.tp, pp=opts.pp, cp=opts.cp, devices=opts.gpus_per_node, num_nodes=opts.num_nodes,
                   global_batch_size=opts.global_batch_size, micro_batch_size=opts.micro_batch_size,
                   max_steps=opts.max_steps, seq_length=opts.seq_length)


def prepare(opts: RecipeOptions, smoke_devices: int | None = None) -> Prepared:
    """Plan the resume for ``opts`` and check it with NeMo's real scheduler (see plan_and_check), with what the
    run's layout (:func:`new_run`) breaks or changes in the checkpoint's (``--smoke``: ``smoke_devices`` ranks)."""
    plan, check, error = plan_and_check(opts.run_dir, opts.request(checked=False), resume=opts.resume,
                                        policy=opts.lr_policy, max_jump=opts.max_jump, new_run=new_run(opts, smoke_devices))
    return Prepared(opts, plan, check, error)


def launch_for(opts: RecipeOptions, recipe: Any, smoke: bool) -> Launch:
    """The :class:`Launch` of the recipe a script would run (``smoke``: its CPU rehearsal, which runs here)."""
    if smoke:
        from nemo_resume.smoke.rehearsal import cpu_rehearsal

        recipe = cpu_rehearsal(recipe, devices=opts.smoke_devices)
    ckpt = recipe.log.ckpt
    saves = checkpoint_steps(int(recipe.trainer.max_steps), int(ckpt.every_n_train_steps),
                             ckpt.__arguments__.get("save_from_step"))
    return launch_from_recipe(recipe, interval_saves=len(saves), executor="local" if smoke else opts.executor,
                              container_image=opts.slurm.container_image)


def executor(opts: RecipeOptions) -> Any:
    """NeMo-Run's LocalExecutor (torchrun, one process per GPU) or SlurmExecutor (nemo_resume.recipes.slurm:
    nemo_resume packaged into the job, the job folder under ``--dir``)."""
    import nemo_run as run

    if opts.executor == "local":
        return run.LocalExecutor(ntasks_per_node=opts.gpus_per_node, launcher="torchrun")
    return slurm_executor(opts.slurm, dir=opts.dir, nodes=opts.num_nodes, gpus_per_node=opts.gpus_per_node)


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


@dataclass(frozen=True)
class LaunchOutcome:
    """What NeMo-Run reports once the launched jobs end: the experiment, and each job that did not succeed."""

    experiment_id: str
    failed: tuple[str, ...] = ()  # "name: STATE"
    home: str | None = None  # the Experiment's base_dir when not NeMo-Run's home (a Slurm launch)

    @property
    def logs_command(self) -> str:
        """The command that shows the first job's log (NeMo-Run finds a Slurm run's experiment under ``home``)."""
        env = f"NEMORUN_HOME={self.home} " if self.home else ""
        return f"{env}nemo experiment logs {self.experiment_id} 0"


def launch(recipe: Any, opts: RecipeOptions, *, dryrun: bool) -> LaunchOutcome:
    """Hand the recipe to NeMo-Run and wait for it, as ``run.run`` does, but keep the outcome.

    ``run.run`` returns nothing and NeMo-Run only logs a failed job as FAILED, so a script built on it
    exits 0 after a crash. With ``dryrun`` it prints the launch command and runs nothing.
    """
    import nemo_run as run
    from torchx.specs.api import AppState

    ex = executor(opts)
    home = experiment_base_dir(ex, dryrun=dryrun)
    with run.Experiment(opts.name, executor=ex, base_dir=home) as exp:
        exp.add(recipe, name=opts.name, tail_logs=True)
        if dryrun:
            exp.dryrun()
            return LaunchOutcome(exp._id, home=home)
        exp.run(detach=False)
    # Experiment.__exit__ waited for every job and recorded its final state (NeMo-Run has no public id getter).
    failed = tuple(f"{job.id}: {job.state.name}" for job in exp.jobs if job.state != AppState.SUCCEEDED)
    return LaunchOutcome(exp._id, failed, home)


def smoke(recipe: Any, opts: RecipeOptions, on_step: Callable[[int], None] | None = None) -> SmokeResult:
    """Rehearse ``recipe`` (built by ``qwen25_recipe``) on CPU: NeMo's Megatron path with this recipe's
    optimizer, scheduler, checkpointing, logger and resume plan and a tiny model of the same family
    (:mod:`nemo_resume.smoke.rehearsal`).

    ``on_step`` is called with each step as it starts (a progress bar). The rehearsal's own output goes
    to ``<dir>/<name>/rehearsal.log``.
    """
    from nemo_resume.smoke.megatron_run import rehearse

    opts.run_dir.mkdir(parents=True, exist_ok=True)
    return rehearse(recipe, devices=opts.smoke_devices, on_step=on_step, log_path=opts.run_dir / "rehearsal.log")
