"""Qwen2.5 NeMo-Run recipes: NeMo's own ``llm.qwen25_*`` recipes, every schedule value explicit,
resumed from exactly the checkpoint the plan chose.

A variant is made the torchtitan way: call :func:`qwen25_recipe` and edit the returned
``run.Partial`` by attribute (``recipe.trainer.val_check_interval = 100``).
"""

# No `from __future__ import annotations`: NeMo-Run's CLI parses the factories' arguments
# by their real annotation objects (a string annotation fails: "Unsupported type: str").
import sys
from typing import Any, Optional

import fiddle as fdl
import nemo_run as run
from lightning.pytorch.callbacks import LearningRateMonitor
from nemo import lightning as nl
from nemo.collections import llm

from nemo_resume.callback import PlannedLRCheck, ResumeScheduleCallback
from nemo_resume.constants import MAX_LR_JUMP
from nemo_resume.errors import NemoResumeError
from nemo_resume.peft_base import PeftResumePaths
from nemo_resume.planning import MODE_RESUME, MODE_WEIGHTS, ResumePlan
from nemo_resume.recipes.data import dataset_root
from nemo_resume.recipes.launch import prepare
from nemo_resume.recipes.lr_find import sweep_recipe
from nemo_resume.recipes.options import (
    SIZES,
    RecipeOptions,
    Task,
    build_parser,
    options_from_args,
)
from nemo_resume.save_from_checkpoint import SaveFromStepCheckpoint
from nemo_resume.schedules.cooldown import cooldown_module
from nemo_resume.schedules.optim_names import OptimName
from nemo_resume.schedules.param_groups import LrMultOptimizerModule
from nemo_resume.schedules.param_match import ParamNameMatch
from nemo_resume.schedules.scheduler_module import scheduler_module

#: The name `nemo llm finetune|pretrain --factory` knows the factories by.
FACTORY = "nemo_resume_qwen25"


def _stock_recipe(opts: RecipeOptions) -> run.Partial:
    """NeMo's recipe for the size and task, before our edits."""
    module_name, _ = SIZES[opts.size]
    # NeMo 2.7 ships the Qwen2.5-3B model config but no qwen25_3b recipe module: use the 1.5B
    # recipe (same family, same trainer/optimizer defaults) with the 3B model.
    module = getattr(llm, "qwen25_1p5b" if opts.size == "3b" else module_name)
    common = dict(dir=str(opts.dir), name=opts.name, num_nodes=opts.num_nodes, num_gpus_per_node=opts.gpus_per_node)
    if opts.task == "finetune":
        if opts.size == "72b" and opts.peft == "none" and opts.num_nodes < 4:
            # qwen25_72b.finetune_recipe's bare `assert num_nodes >= 4`, said as a fix.
            raise NemoResumeError(f"--size 72b --peft none needs --num-nodes 4 or more (got {opts.num_nodes})")
        recipe = module.finetune_recipe(**common, peft_scheme=opts.peft)
    else:
        recipe = module.pretrain_recipe(**common)
    if opts.size == "3b":
        from nemo.collections.llm.recipes.qwen2 import qwen2_model

        recipe.model = qwen2_model(version="qwen25_3b")
        if opts.task == "finetune":
            recipe.resume.restore_config.path = f"nemo://{SIZES['3b'][1]}"
    if opts.model is not None and opts.model_import is not None:
        # --model: its import is the base, and the model has its config.json's architecture (as NeMo's importer
        # builds it: untied, the output layer its own copy of lm_head)
        for key, value in opts.model.model_config_fields().items():
            setattr(recipe.model.config, key, value)
        recipe.resume.restore_config.path = str(opts.model_import.path)
    return recipe


def _data(opts: RecipeOptions, plan: ResumePlan):
    """The data module for ``--data``; a resumed pre-training run keeps its checkpoint's data (``plan.train_samples``)."""
    sizes = dict(seq_length=opts.seq_length, global_batch_size=opts.global_batch_size, micro_batch_size=opts.micro_batch_size)
    if opts.data is None:
        return run.Config(llm.MockDataModule, **sizes)
    if opts.task == "finetune":
        root = dataset_root(opts.data, opts.run_dir)
        return run.Config(llm.FineTuningDataModule, dataset_root=str(root), **sizes)
    data = run.Config(llm.PreTrainingDataModule, paths=[str(opts.data)], **sizes)
    if plan.train_samples is not None:
        data.num_train_samples = plan.train_samples
    return data


def _resume(opts: RecipeOptions, plan: ResumePlan, stock: run.Config) -> run.Config:
    """AutoResume pointed at exactly the planned checkpoint: no search, no silent fresh start."""
    base_weights = stock.restore_config if opts.task == "finetune" else None  # the HF base model
    if plan.mode == MODE_RESUME:
        return run.Config(nl.AutoResume, resume_from_path=plan.checkpoint, resume_if_exists=False,
                          restore_config=base_weights)
    if plan.mode == MODE_WEIGHTS:
        return run.Config(
            nl.AutoResume,
            restore_config=run.Config(nl.RestoreConfig, path=plan.checkpoint, load_model_state=True, load_optim_state=False),
        )
    return run.Config(nl.AutoResume, resume_if_exists=False, restore_config=base_weights)


def qwen25_recipe(opts: RecipeOptions, plan: ResumePlan) -> run.Partial:
    """``run.Partial(llm.finetune | llm.pretrain, ...)`` for ``opts``, resuming as ``plan`` says.

    Args:
        opts: the recipe options (schedule values as given; the pre-launch check validates them).
        plan: the resume plan for ``opts.run_dir``; its target, if any, becomes a callback.
    """
    recipe = _stock_recipe(opts)
    recipe.data = _data(opts, plan)

    t = recipe.trainer
    t.max_steps = plan.request.max_steps if plan.cooldown else opts.max_steps  # a cooldown's end is the planner's
    t.num_nodes = opts.num_nodes
    t.devices = opts.gpus_per_node
    t.strategy.tensor_model_parallel_size = opts.tp
    t.strategy.pipeline_model_parallel_size = opts.pp
    t.strategy.context_parallel_size = opts.cp

    c = recipe.optim.config
    c.lr = opts.lr
    c.weight_decay = opts.weight_decay
    c.adam_beta1, c.adam_beta2, c.adam_eps = opts.adam_beta1, opts.adam_beta2, opts.adam_eps
    c.clip_grad = opts.clip_grad
    if opts.optim is not None:
        apply_optim(c, opts.optim)
    # Every field explicit: the class defaults (min_lr=6e-5, warmup 750, constant 80000,
    # max_steps=10) are the traps in facts section 4. --schedule NAME / --lr-stages pick the module.
    # --lr-policy cooldown: its own module, from the plan (nemo_resume.schedules.cooldown).
    module = cooldown_module(plan.cooldown) if plan.cooldown else scheduler_module(opts.request(checked=False))
    recipe.optim.lr_scheduler = module.run_config()
    mult = opts.lr_mult
    if mult is not None and mult.stock:
        # One multiplier: MegatronOptimizerModule's own scale_lr_cond/lr_mult pair (nemo_resume.schedules.lr_mult).
        recipe.optim.scale_lr_cond = run.Config(ParamNameMatch, patterns=list(mult.patterns))
        recipe.optim.lr_mult = mult.mult
    elif mult is not None:
        # Several, or a layer-wise decay: the module that groups by each parameter's multiplier.
        fdl.update_callable(recipe.optim, LrMultOptimizerModule)
        recipe.optim.lr_mults, recipe.optim.layer_lr_decay = list(mult.specs), mult.layer_decay

    ckpt = recipe.log.ckpt
    if opts.save_from_step is not None:
        fdl.update_callable(ckpt, SaveFromStepCheckpoint)
        ckpt.save_from_step = opts.save_from_step
        ckpt.save_top_k = -1  # every checkpoint from S on is kept (seed 004: the last 50 steps)
    ckpt.every_n_train_steps = opts.checkpoint_every
    ckpt.train_time_interval = None
    # The stock callback ranks by val_loss, which exists only once validation has run: an interval save
    # before that is dropped ("'val_loss' was not in top k") and only the -last one survives. Keep the
    # newest save_top_k by step instead, whatever the validation interval.
    ckpt.monitor, ckpt.mode = "step", "max"
    ckpt.save_last = True
    # The final checkpoint keeps its optimizer state, so the run can be extended later
    # (facts section 3: without it, resuming the end checkpoint fails with KeyError).
    ckpt.save_optim_on_train_end = True
    if opts.lr_find is not None:  # --lr-find: the sweep's scheduler and LR, nothing saved
        sweep_recipe(recipe, opts.lr_find)

    # NeMo logs group 0's LR only (`lr`); Lightning's monitor logs every param group's at every step, into the
    # same TensorBoard file, so `nemo-resume audit` compares each group with the plan.
    t.callbacks = [*(t.callbacks or []), run.Config(LearningRateMonitor, logging_interval="step")]
    recipe.resume = _resume(opts, plan, recipe.resume)
    if opts.task == "finetune" and opts.peft != "none":  # every save of a resumed PEFT run resumable
        base = str(opts.model_import.path) if opts.model_import is not None else None
        t.callbacks = [*(t.callbacks or []), run.Config(PeftResumePaths, base=base, plain_last_model_path=True)]
    if plan.target is not None:
        t.callbacks = [*(t.callbacks or []), run.Config(
            ResumeScheduleCallback,
            resume_step=plan.resume_step,
            base_lrs=list(plan.target.base_lrs),
            min_lr=plan.target.min_lr,
            max_steps=plan.target.max_steps,
            warmup_steps=plan.target.warmup_steps,
            constant_steps=plan.target.constant_steps,
        )]
    check = _planned_lr_check(plan)
    if check is not None:
        t.callbacks = [*(t.callbacks or []), check]  # after ResumeScheduleCallback: it reads what that wrote
    return recipe


def apply_optim(config: run.Config, optim: OptimName) -> None:
    """Set ``--optim``'s megatron-core ``OptimizerConfig`` fields on NeMo-Run's config (``recipe.optim.config``).

    NeMo's MegatronStrategy sets the DDP config's ``use_distributed_optimizer`` from the optimizer config's
    (megatron_strategy.py:501-503), so ``sgd`` turning it off is enough.
    """
    for key, value in optim.config_fields.items():
        setattr(config, key, value)


def _planned_lr_check(plan: ResumePlan) -> run.Config | None:
    """The check of the first two steps after a resume (None for fresh runs, refused plans, and schedules only
    NeMo's class steps: ``--launch-anyway`` on a refused plan is a deliberate off-plan run)."""
    if plan.mode != MODE_RESUME or not plan.ok:
        return None
    steps = [s for s in (plan.resume_step, plan.resume_step + 1) if s < plan.request.max_steps]
    lrs = [plan.planned_lrs(s) for s in steps]
    if not steps or any(x is None for x in lrs):
        return None
    return run.Config(PlannedLRCheck, steps=steps, lrs=lrs)


def _options(task: Task, **flags: Any) -> RecipeOptions:
    """RecipeOptions from keyword flags, through the scripts' own parser and defaults."""
    argv = [f"--{k.replace('_', '-')}={v}" for k, v in flags.items() if v is not None]
    return options_from_args(task, build_parser(task, f"{FACTORY} ({task})").parse_args(argv))


def _factory_recipe(task: Task, **flags: Any) -> run.Partial:
    """The scripts' plan and check, then their recipe; refused exactly where a script would refuse to launch.

    NeMo's CLI has no ``--launch-anyway``: a factory never builds a run the planner would not vouch for
    (no usable checkpoint, a refused policy, a schedule NeMo fails on), and says what it starts from.

    Raises:
        NemoResumeError: the one-line reason, as ``recipes/qwen25_*.py`` prints it.
    """
    prepared = prepare(_options(task, **flags))
    if prepared.refusal:
        raise NemoResumeError(f"{FACTORY}: refusing to build the {task} recipe: {prepared.refusal}")
    print(f"{FACTORY}: {prepared.headline}", file=sys.stderr)
    return qwen25_recipe(prepared.opts, prepared.plan)


@run.cli.factory(target=llm.finetune, name=FACTORY)
def nemo_resume_qwen25_finetune(
    size: str = "0.5b", dir: str = "results", name: str = "qwen25_finetune", peft: str = "lora",
    lr: Optional[float] = None, min_lr: float = 0.0, warmup_steps: Optional[int] = None, max_steps: Optional[int] = None,
    max_jump: float = MAX_LR_JUMP, lr_policy: str = "auto", decay_steps: Optional[int] = None,
    decay_type: Optional[str] = None,
) -> run.Partial:
    """``nemo llm finetune --factory nemo_resume_qwen25``: the fine-tuning recipe, planned with --resume auto
    (warmup 50 and 1000 steps unless given, as the script; ``lr_policy=cooldown decay_steps=D``: a cooldown)."""
    return _factory_recipe("finetune", size=size, dir=dir, name=name, peft=peft, lr=lr, min_lr=min_lr,
                           warmup_steps=warmup_steps, max_steps=max_steps, max_jump=max_jump, lr_policy=lr_policy,
                           decay_steps=decay_steps, decay_type=decay_type)


@run.cli.factory(target=llm.pretrain, name=FACTORY)
def nemo_resume_qwen25_pretrain(
    size: str = "0.5b", dir: str = "results", name: str = "qwen25_pretrain",
    lr: float = 3e-4, min_lr: Optional[float] = None, warmup_steps: Optional[int] = None,
    max_steps: Optional[int] = None, max_jump: float = MAX_LR_JUMP, lr_policy: str = "auto",
    decay_steps: Optional[int] = None, decay_type: Optional[str] = None,
) -> run.Partial:
    """``nemo llm pretrain --factory nemo_resume_qwen25``: continued pre-training, planned with --resume auto
    (warmup 500 and 300000 steps unless given, as the script; ``lr_policy=cooldown decay_steps=D``: a cooldown)."""
    return _factory_recipe("pretrain", size=size, dir=dir, name=name, lr=lr, min_lr=min_lr,
                           warmup_steps=warmup_steps, max_steps=max_steps, max_jump=max_jump, lr_policy=lr_policy,
                           decay_steps=decay_steps, decay_type=decay_type)
