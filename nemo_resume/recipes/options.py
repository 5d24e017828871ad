"""Every knob of the Qwen2.5 recipe scripts, with the defaults and where each comes from.

The stock ``llm.qwen25_*`` recipes hide traps in defaults (facts file, section 4): the pretrain
recipe keeps ``min_lr=3e-5`` when you lower ``lr``, and ``CosineAnnealingScheduler``'s class
defaults are ``min_lr=6e-5, constant_steps=80000``. Here every schedule value is explicit.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from nemo_resume.constants import MAX_LR_JUMP
from nemo_resume.errors import NemoResumeError, OneLineParser
from nemo_resume.hf.import_model import ImportTarget, import_target
from nemo_resume.planning.flags import add_max_jump_arg, add_resume_args
from nemo_resume.recipes.data import check_data
from nemo_resume.recipes.hf_model import HfModel, read_hf_model, resolve_size
from nemo_resume.recipes.param_names import check_lr_mult_patterns, group_mults
from nemo_resume.recipes.save_steps import checkpoint_steps
from nemo_resume.recipes.slurm import SlurmOptions, job_paths, packaging_note
from nemo_resume.schedules.cooldown import POLICY as COOLDOWN
from nemo_resume.schedules.flags import add_schedule_args, given_flags, non_negative, positive_int
from nemo_resume.schedules.hf_names import constant_steps_note
from nemo_resume.schedules.lr_mult import DECAY_FLAG, LrMultPlan, LrMultRule, lr_mult_plan, parse_lr_mult
from nemo_resume.schedules.lr_stages import Stage, parse_stages, total_steps
from nemo_resume.schedules.lr_sweep import DEFAULT_MAX_LR, DEFAULT_MIN_LR, DEFAULT_STEPS, LrSweep
from nemo_resume.schedules.optim_names import OptimName
from nemo_resume.schedules.request import STAGED, ScheduleRequest
from nemo_resume.schedules.scheduler_module import scheduler_module

Task = Literal["finetune", "pretrain"]

# --size -> (NeMo recipe module under nemo.collections.llm, Hugging Face id of the base weights).
# NeMo 2.7 has no qwen25_3b recipe module; the 3B model config exists (Qwen25Config3B), so 3B
# is built from the 1.5B recipe with its model swapped (see qwen25.py).
SIZES: dict[str, tuple[str, str]] = {
    "0.5b": ("qwen25_500m", "Qwen/Qwen2.5-0.5B"),
    "1.5b": ("qwen25_1p5b", "Qwen/Qwen2.5-1.5B"),
    "3b": ("qwen25_3b", "Qwen/Qwen2.5-3B"),
    "7b": ("qwen25_7b", "Qwen/Qwen2.5-7B"),
    "14b": ("qwen25_14b", "Qwen/Qwen2.5-14B"),
    "32b": ("qwen25_32b", "Qwen/Qwen2.5-32B"),
    "72b": ("qwen25_72b", "Qwen/Qwen2.5-72B"),
}

# Defaults per task, each from the NeMo 2.7.3 source named beside it (docs/recipes.md).
DEFAULTS: dict[str, dict[str, Any]] = {
    "finetune": {
        "lr": None,  # 1e-4 with LoRA/DoRA, 5e-6 full (qwen25_*.finetune_recipe)
        "min_lr": 0.0,  # default_finetune_recipe: distributed_fused_adam_with_cosine_annealing(min_lr=0)
        "warmup_steps": 50,  # default_finetune_recipe
        "constant_steps": 0,
        "max_steps": 1000,  # default_finetune_trainer
        "global_batch_size": 128,  # default_finetune_recipe's SquadDataModule
        "micro_batch_size": 1,
        "seq_length": 2048,
        "adam_beta2": 0.98,  # default_finetune_recipe
        "checkpoint_every": 50,
    },
    "pretrain": {
        "lr": 3e-4,  # qwen25_*.pretrain_recipe max_lr
        "min_lr": None,  # 0.1 * lr: the stock 3e-5 at the stock lr, and never above a lowered lr
        "warmup_steps": 500,  # pretrain_recipe
        "constant_steps": 0,
        "max_steps": 300_000,  # pretrain_recipe
        "global_batch_size": 32,
        "micro_batch_size": 2,
        "seq_length": 4096,
        "adam_beta2": 0.95,  # distributed_fused_adam_with_cosine_annealing
        "checkpoint_every": 500,
    },
}
SHARED_DEFAULTS: dict[str, Any] = {
    "weight_decay": 0.1,  # distributed_fused_adam_with_cosine_annealing
    "adam_beta1": 0.9,
    "adam_eps": 1e-5,
    "clip_grad": 1.0,
}
PEFT_LR = {"lora": 1e-4, "dora": 1e-4, "none": 5e-6}  # qwen25_*.finetune_recipe


@dataclass(frozen=True)
class RecipeOptions:
    """One recipe invocation. Schedule values are raw: validation is the pre-launch check's job,
    so ``--launch-anyway`` can still reproduce a known-bad schedule on purpose (the demo does)."""

    task: Task
    size: str
    peft: str
    lr: float
    min_lr: float
    warmup_steps: int
    constant_steps: int
    max_steps: int
    dir: Path
    name: str
    data: Path | None = None
    seq_length: int = 2048
    global_batch_size: int = 128
    micro_batch_size: int = 1
    tp: int = 1
    pp: int = 1
    cp: int = 1
    num_nodes: int = 1
    gpus_per_node: int = 8
    checkpoint_every: int = 50
    weight_decay: float = 0.1
    adam_beta1: float = 0.9
    adam_beta2: float = 0.95
    adam_eps: float = 1e-5
    clip_grad: float = 1.0
    resume: str = "auto"
    lr_policy: str = "auto"
    executor: str = "local"
    slurm: SlurmOptions = field(default_factory=SlurmOptions)
    notes: tuple[str, ...] = ()
    schedule: str = "cosine"
    stages: tuple[Stage, ...] = ()
    decay_steps: int | None = None
    decay_type: str | None = None
    lr_mult_rules: tuple[LrMultRule, ...] = ()
    model: HfModel | None = None  # --model: the Hugging Face folder, read
    model_import: ImportTarget | None = None  # where --model is (or will be) imported
    layer_lr_decay: float | None = None
    save_from_step: int | None = None
    max_jump: float = MAX_LR_JUMP
    smoke_devices: int = 1
    optim: OptimName | None = None  # --optim: a Hugging Face name's megatron-core optimizer (None: the recipe's adam)
    lr_find: LrSweep | None = None  # --lr-find: the sweep (nemo_resume.recipes.lr_find)

    @property
    def run_dir(self) -> Path:
        """Where NeMoLogger writes this run (``<dir>/<name>``, checkpoints in ``checkpoints/``)."""
        return self.dir / self.name

    @property
    def lr_mult(self) -> LrMultPlan | None:
        """Each parameter's LR multiplier, from ``--lr-mult`` and ``--layer-lr-decay`` (None: neither given)."""
        return lr_mult_plan(self.lr_mult_rules, self.layer_lr_decay)

    @property
    def group_mults(self) -> tuple[float, ...]:
        """The multipliers other than 1.0 the run's param groups get, as megatron-core will group them."""
        plan = self.lr_mult
        return group_mults(plan, self.size, self.peft, self.pp, model=self.model) if plan else ()

    def request(self, checked: bool = True) -> ScheduleRequest:
        """The schedule; validated unless ``checked=False`` (then only the pre-launch check judges it).

        Raises:
            NemoResumeError: naming the value to change.
        """
        return ScheduleRequest(
            self.lr, self.min_lr, self.max_steps, self.warmup_steps, self.constant_steps, self.group_mults,
            checked=checked, schedule=self.schedule, stages=self.stages,
            decay_steps=self.decay_steps, decay_type=self.decay_type,
        )


def _beta(text: str) -> float:
    """Adam's betas: 0 <= beta < 1 (torch.optim.Adam refuses anything else at the first step)."""
    value = non_negative(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"{text} must be below 1")
    return value


def check_layout(opts: RecipeOptions) -> None:
    """The parallel layout and batch sizes megatron-core accepts, checked before anything is built.

    Raises:
        NemoResumeError: the GPUs do not split into tensor x pipeline x context parallel groups, or the global
            batch is not a whole number of micro-batches per data-parallel rank.
    """
    world, model = opts.num_nodes * opts.gpus_per_node, opts.tp * opts.pp * opts.cp
    if world % model:
        raise NemoResumeError(f"--tp {opts.tp} x --pp {opts.pp} x --cp {opts.cp} = {model} does not divide the "
                              f"{world} GPUs (--num-nodes {opts.num_nodes} x --gpus-per-node {opts.gpus_per_node})")
    dp = world // model
    if opts.global_batch_size % (opts.micro_batch_size * dp):
        raise NemoResumeError(f"--global-batch-size {opts.global_batch_size} is not a multiple of --micro-batch-size "
                              f"{opts.micro_batch_size} x {dp} data-parallel ranks; megatron-core refuses it at start-up")


def build_parser(task: Task, prog: str) -> OneLineParser:
    """The recipe scripts' flags (and the NeMo-Run factories'), with this task's defaults."""
    d = {**SHARED_DEFAULTS, **DEFAULTS[task]}
    p = OneLineParser(prog=prog, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("model and data")
    g.add_argument("--size", choices=list(SIZES), help="default: 0.5b, or the one --model's config.json describes")
    if task == "finetune":  # pre-training trains every weight: no --peft (a given one is a usage error)
        g.add_argument("--peft", choices=["lora", "dora", "none"], default="lora")
        g.add_argument("--model", type=Path, metavar="HF_DIR", help="a local Hugging Face Qwen2 folder to fine-tune: "
                       "imported once with NeMo's importer into <--dir>/models/ and restored from there "
                       "(default: NeMo's nemo://Qwen/Qwen2.5-<size>)")
    g.add_argument("--data", type=Path, help="finetune: a FineTuningDataModule folder or a JSONL of "
                   "instruction/input/output records; pretrain: a Megatron dataset prefix. Default: NeMo's mock data")
    for flag in ("seq_length", "global_batch_size", "micro_batch_size"):
        g.add_argument("--" + flag.replace("_", "-"), type=positive_int, default=d[flag])
    # None where the default depends on other flags (options_from_args resolves it and says so).
    g = add_schedule_args(
        p,
        defaults={"min_lr": d["min_lr"], "warmup_steps": None, "constant_steps": d["constant_steps"]},
        hints={
            "lr": "default: 1e-4 LoRA/DoRA, 5e-6 full (finetune), 3e-4 (pretrain)",
            "min_lr": "default: 0 (finetune), 0.1 x lr (pretrain)",
            "max_steps": f"default: {d['max_steps']}; with --lr-stages, their sum",
            "warmup_steps": f"without it: {d['warmup_steps']}",
            "lr_mult": "the recipes take PATTERN=MULT only",
        },
    )
    g.add_argument(DECAY_FLAG, type=float, metavar="FACTOR", help="layer-wise LR decay (seed 001): layer i of L "
                   "trains at lr x FACTOR^(L - 1 - i), the embedding at lr x FACTOR^L, the output layer at lr; "
                   "a parameter an --lr-mult rule matches takes the rule's MULT")
    g.add_argument("--warmup-ratio", type=float, help="warmup as a fraction of --max-steps (instead of --warmup-steps)")
    for flag in ("weight_decay", "adam_beta1", "adam_beta2", "adam_eps", "clip_grad"):
        g.add_argument("--" + flag.replace("_", "-"), type=_beta if flag.startswith("adam_beta") else non_negative,
                       default=d[flag])
    g = p.add_argument_group("parallelism and launch")
    for flag in ("tp", "pp", "cp", "num_nodes"):
        g.add_argument("--" + flag.replace("_", "-"), type=positive_int, default=1)
    g.add_argument("--gpus-per-node", type=positive_int, default=8)
    g.add_argument("--executor", choices=["local", "slurm"], default="local")
    for flag in ("account", "partition", "time", "container_image"):
        g.add_argument("--" + flag.replace("_", "-"), help="slurm executor")
    g.add_argument("--mount", action="append", default=[], help="slurm container mount SRC:DST (repeat)")
    g = p.add_argument_group("run folder, checkpoints and resume")
    g.add_argument("--dir", type=Path, default=Path("results"), help="log dir (default: %(default)s)")
    g.add_argument("--name", default=f"qwen25_{task}")
    g.add_argument("--checkpoint-every", type=positive_int, default=d["checkpoint_every"], help="save every N steps")
    g.add_argument("--save-from-step", type=int, metavar="S", help="no checkpoint while the first S steps train "
                   "(then every --checkpoint-every; the end of training is always saved)")
    add_resume_args(g)
    add_max_jump_arg(g)
    g = p.add_argument_group("actions")
    g.add_argument("--dry-run", action="store_true", help="print config, plan, check and launch command; run nothing")
    g.add_argument("--to-yaml", type=Path, help="write the NeMo-Run config as YAML")
    g.add_argument("--smoke", action="store_true", help="rehearse this recipe, schedule and resume plan on CPU: "
                   "NeMo's Megatron path with a tiny model of the same family (docs/smoke.md)")
    g.add_argument("--smoke-devices", type=positive_int, default=1, metavar="N",
                   help="CPU ranks (data-parallel size) of the --smoke rehearsal (default: %(default)s)")
    g.add_argument("--lr-find", action="store_true", help="instead of training, an LR range test: a fresh short run "
                   "<--name>-lr-find sweeping the LR exponentially, no checkpoint saved; recommends an LR (docs/lr-find.md)")
    g.add_argument("--lr-find-min", type=non_negative, default=DEFAULT_MIN_LR, help="the sweep's first LR (default: %(default)g)")
    g.add_argument("--lr-find-max", type=non_negative, default=DEFAULT_MAX_LR, help="the sweep's last LR (default: %(default)g)")
    g.add_argument("--lr-find-steps", type=positive_int, default=DEFAULT_STEPS, help="the sweep's steps (default: %(default)s)")
    g.add_argument("--launch-anyway", action="store_true", help="launch even if the schedule check fails")
    g.add_argument("--json", action="store_true", help="print one JSON document (options, plan, check, outcome) on "
                   "stdout; everything else goes to stderr")
    g.add_argument("--verbose", action="store_true", help="show the third-party start-up messages nemo-resume hides")
    return p


def _staged(args: argparse.Namespace, notes: list[str]) -> tuple[Stage, ...]:
    """``--lr-stages``: the stages set the LR and the length; the other schedule flags do not apply."""
    stages = parse_stages(args.lr_stages)
    given = given_flags(args, ("lr", "warmup_steps", "warmup_ratio", "decay_steps", "decay_type"), values=True)
    if given:
        raise NemoResumeError(f"{' '.join(given)} with --lr-stages {args.lr_stages}: the stages set the LR "
                              "(warm up inside a stage: 75:1e-4:w10); drop them")
    if args.schedule not in ("cosine", STAGED):
        raise NemoResumeError(f"--lr-stages with --schedule {args.schedule}: stages are their own schedule; drop --schedule")
    notes.append(f"--lr-stages {args.lr_stages}: {len(stages)} stages, {total_steps(stages)} steps, lr {stages[0].lr:g} "
                 "(the first stage's)")
    return stages


def options_from_args(task: Task, args: argparse.Namespace) -> RecipeOptions:
    """Resolve defaults that depend on other flags, and say so in ``notes``.

    Raises:
        NemoResumeError: flags that contradict each other, a --schedule NeMo cannot run
            faithfully, or --lr-mult patterns with different multipliers or matching no trainable parameter.
    """
    d = DEFAULTS[task]
    notes: list[str] = []
    if args.data is not None:
        check_data(task, args.data)
    if args.dir.exists() and not args.dir.is_dir():
        raise NemoResumeError(f"--dir {args.dir}: not a folder; pass the log folder that holds (or will hold) --name")
    peft = args.peft if task == "finetune" else "none"
    model = read_hf_model(args.model) if getattr(args, "model", None) is not None else None
    size = args.size or "0.5b"
    if model is not None:
        size = resolve_size(model, args.size) or size
        if model.size is None:
            notes.append(f"--model {args.model}: an architecture no --size has ({model.num_layers} layers, hidden "
                         f"{model.hidden_size}): the model is built from its config.json on the --size {size} recipe")
    stages = _staged(args, notes) if args.lr_stages else ()
    lr = stages[0].lr if stages else args.lr if args.lr is not None else d["lr"] or PEFT_LR[peft]
    max_steps = args.max_steps if args.max_steps is not None else total_steps(stages) if stages else d["max_steps"]
    cooldown = args.lr_policy == COOLDOWN
    if cooldown and args.max_steps is None and args.decay_steps is not None:
        max_steps = args.decay_steps  # the planner's: the resume step + D (nemo_resume.schedules.cooldown.cooldown_end)
    min_lr = args.min_lr
    if min_lr is None and stages:
        min_lr = 0.0
        notes.append("--min-lr not given: 0 (a staged schedule has no floor; the check verifies every LR stays above it)")
    elif min_lr is None:
        min_lr = float(f"{0.1 * lr:.6g}")  # 1e-06, not 1.0000000000000002e-06, in configs
        notes.append(f"--min-lr not given: using 0.1 x lr = {min_lr:g} (the stock recipe keeps 3e-05 whatever lr is)")
    warmup = args.warmup_steps
    if args.warmup_ratio is not None:
        warmup = int(args.warmup_ratio * max_steps)
        notes.append(f"--warmup-ratio {args.warmup_ratio} of {max_steps} steps = {warmup} warmup steps")
    elif warmup is None:
        # staged (warmups inside stages), constant and polynomial (no warmup in HF / NeMo's module): 0
        # --lr-policy cooldown: never re-runs warmup
        warmup = 0 if stages or cooldown or args.schedule in ("constant", "polynomial") else d["warmup_steps"]
    slurm = SlurmOptions(args.account, args.partition, args.time, args.container_image, tuple(args.mount))
    log_dir, data, resume = args.dir, args.data, args.resume
    if args.executor == "slurm":  # the job runs elsewhere: absolute paths it can reach, or a refusal
        job = job_paths(slurm, dir=args.dir, data=args.data, resume=args.resume)
        log_dir, data, resume = job.dir, job.data, job.resume
        notes.extend((*job.notes, packaging_note(log_dir, args.name)))
    target = import_target(model.path, model.fingerprint(), log_dir) if model is not None else None
    if target is not None:
        notes.append(f"--model {args.model}: " + (f"its import {target.path} is reused (the folder is unchanged)"
                     if target.complete else f"imported with NeMo's Qwen2 importer into {target.path} at launch"))
    rules = tuple(parse_lr_mult(v) for v in args.lr_mult)
    mult_plan = lr_mult_plan(rules, args.layer_lr_decay)
    if mult_plan:  # a rule scaling nothing: refused
        check_lr_mult_patterns(mult_plan, task, size, peft, args.pp, model=model)
    if args.save_from_step is not None:
        if args.save_from_step < 0:
            raise NemoResumeError(f"--save-from-step {args.save_from_step} must be a whole number >= 0")
        steps = checkpoint_steps(max_steps, args.checkpoint_every, args.save_from_step)
        notes.append(f"--save-from-step {args.save_from_step} --checkpoint-every {args.checkpoint_every}: {len(steps)} "
                     f"checkpoints" + (f", step={steps[0]} ... step={steps[-1]}" if steps else " (and the one at the end)"))
    opts = RecipeOptions(
        task=task, size=size, peft=peft, lr=lr, min_lr=min_lr, warmup_steps=warmup,
        constant_steps=args.constant_steps, max_steps=max_steps, dir=log_dir, name=args.name,
        data=data, seq_length=args.seq_length, global_batch_size=args.global_batch_size,
        micro_batch_size=args.micro_batch_size, tp=args.tp, pp=args.pp, cp=args.cp, num_nodes=args.num_nodes,
        gpus_per_node=args.gpus_per_node, checkpoint_every=args.checkpoint_every,
        weight_decay=args.weight_decay, adam_beta1=args.adam_beta1, adam_beta2=args.adam_beta2,
        adam_eps=args.adam_eps, clip_grad=args.clip_grad, resume=resume, lr_policy=args.lr_policy,
        executor=args.executor, slurm=slurm, notes=tuple(notes),
        schedule=STAGED if stages else args.schedule, stages=stages, decay_steps=args.decay_steps,
        decay_type=args.decay_type, lr_mult_rules=mult_plan.rules if mult_plan else (),
        layer_lr_decay=args.layer_lr_decay, save_from_step=args.save_from_step, max_jump=args.max_jump,
        smoke_devices=args.smoke_devices, optim=args.optim, model=model, model_import=target,
    )
    check_layout(opts)
    module = scheduler_module(opts.request(checked=False))  # no faithful NeMo module: refused here, exit 2
    # The default cosine's notes on HF's shape (it decays to 0) are for those who asked for an HF name; what
    # --constant-steps makes NeMo run is said to everyone.
    constant = constant_steps_note(max_steps, warmup, args.constant_steps)
    extra = module.notes if args.schedule != "cosine" else (constant,) if constant else ()
    extra += (args.optim.note,) if args.optim else ()
    return dataclasses.replace(opts, notes=opts.notes + extra)
