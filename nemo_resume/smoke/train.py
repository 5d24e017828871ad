"""Real NeMo 2 training runs on CPU, small enough for tests.

:func:`train` runs a real ``nl.Trainer(accelerator="cpu", devices=1)`` on :class:`SmokeModel` with NeMo's
own ``PytorchOptimizerModule`` (Adam), ``CosineAnnealingScheduler``, ``nl.ModelCheckpoint``,
``nl.NeMoLogger`` and (when resuming) ``nl.AutoResume``, wired the way ``nemo.collections.llm.api._setup``
wires them. It produces real checkpoints and NeMo's real failure modes.

Where things land (``log_dir`` is the argument of :func:`train`, ``name`` is ``SmokeConfig.name``)::

    <log_dir>/<name>/                   SmokeResult.log_dir (NeMo's app_state.log_dir; no version folder:
                                        NeMoLogger(log_dir=..., name=..., use_datetime_version=False))
        nemo_log_globalrank-0_localrank-0.txt, nemo_error_log.txt, lightning_logs.txt, cmd-args.log
        checkpoints/                    SmokeResult.checkpoint_dir
            <name>--step=499.ckpt               Lightning checkpoint (torch.save zip)
            <name>--step=499/context/           io.json + model.yaml (+ cloudpickled trainer callbacks)
            <name>--step=499-last.ckpt          save_last=True: a second full save ...
            <name>--step=499-last/context/
            <name>--step=499-last -> <name>--step=499   ... save_last="link": a symlink to the
                                                context-only folder (nl.ModelCheckpoint links ckpt_to_dir())
            <name>--step=499-unfinished         marker file, only while a save (or removal) is in progress

Plain-Lightning quirks these runs show as they are: when Lightning replaces the previous ``-last.ckpt`` or
drops a checkpoint outside ``save_top_k``, only the ``.ckpt`` file goes, the ``<name>--step=N[-last]/context``
folders stay behind; the checkpoint written at ``global_step == max_steps`` (and its ``-last`` twin) is
weights-only unless ``save_optim_on_train_end=True``.

The file name is ``SmokeConfig.filename`` (default ``"{name}--{step}"``, which Lightning formats into
``<name>--step=499``).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional, Sequence, Union

import lightning.pytorch as pl

from nemo_resume.constants import STEP_IN_NAME_RE

__all__ = [
    "LRRecorder",
    "SmokeConfig",
    "SmokeResult",
    "StopAfterStep",
    "build_trainer_parts",
    "checkpoint_step",
    "train",
]


@dataclass(frozen=True)
class SmokeConfig:
    """One smoke run. Field names follow the NeMo recipe knobs they feed.

    lr            -> ``optimizer_fn`` ``lr`` (``<root>.model.optim.optimizer_fn.lr`` in context/io.json)
    min_lr, warmup_steps, constant_steps
                  -> ``CosineAnnealingScheduler`` (``<root>.model.optim.lr_scheduler.*``)
    max_steps     -> ``nl.Trainer(max_steps=...)`` *and* ``CosineAnnealingScheduler(max_steps=...)``
    checkpoint_every, save_top_k, save_last, save_optim_on_train_end
                  -> ``nl.ModelCheckpoint(every_n_train_steps=..., ...)``
    lr_mults      -> extra param groups with ``lr = lr * mult`` (see ``nemo_resume.smoke.model``)
    lr_scheduler  -> another NeMo ``LRSchedulerModule`` instead of the cosine built from the fields above
                     (``min_lr``, ``warmup_steps``, ``constant_steps`` are then unused)
    save_from_step -> ``nemo_resume.save_from_checkpoint.SaveFromStepCheckpoint(save_from_step=...)``: no interval
                     checkpoint until more than this many steps are done
    """

    lr: float = 1e-3
    min_lr: float = 1e-5
    warmup_steps: int = 10
    max_steps: int = 100
    constant_steps: int = 0
    checkpoint_every: int = 1
    save_top_k: int = -1
    save_last: Union[bool, Literal["link"]] = True
    save_optim_on_train_end: bool = False
    lr_mults: tuple[float, ...] = ()
    name: str = "smoke"
    seed: int = 1234
    weight_decay: float = 0.0
    hidden: int = 16
    batch_size: int = 8
    num_samples: int = 512
    #: ``nl.ModelCheckpoint(filename=...)``; ``None`` means ``f"{name}--{{step}}"``. Avoid ``{epoch}``: the
    #: epoch counter has moved on by ``on_train_end``, so the end-of-training ``-last`` save gets a new name.
    filename: Optional[str] = None
    lr_scheduler: Optional[Any] = None
    save_from_step: Optional[int] = None

    def with_(self, **changes) -> "SmokeConfig":
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    @property
    def checkpoint_filename(self) -> str:
        return self.filename if self.filename is not None else f"{self.name}--{{step}}"


@dataclass
class SmokeResult:
    """What :func:`train` reports.

    ``lrs[step]`` is the LR of every optimizer param group (in group order) used by the optimizer step
    taken at ``trainer.global_step == step`` (read in ``on_before_optimizer_step``), so with warmup ``W``
    and no constant steps ``lrs[s][0] == lr * (s + 1) / (W + 1)`` for ``s < W``. The LR stored in a
    checkpoint saved at global step ``s`` equals ``lrs[s]`` (the LR of the next step to take).
    """

    log_dir: Path
    checkpoint_dir: Path
    lrs: dict[int, list[float]] = field(default_factory=dict)
    error: Optional[str] = None
    final_step: int = 0
    exception: Optional[BaseException] = field(default=None, repr=False, compare=False)
    resumed_from: Optional[Path] = None
    #: Megatron rehearsals only (nemo_resume.smoke.megatron_run): loss per step, stand-ins used, the output.
    losses: dict[int, float] = field(default_factory=dict)
    stand_ins: tuple[str, ...] = ()
    output: Optional[Path] = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def checkpoints(self, pattern: str = "*.ckpt") -> list[Path]:
        """Checkpoint files (default: the Lightning ``.ckpt`` files) in ``checkpoint_dir``, sorted by name."""
        return sorted(self.checkpoint_dir.glob(pattern))

    def checkpoint_at(self, step: int, *, last: bool = False) -> Path:
        """The ``.ckpt`` saved at ``step`` (its ``-last`` twin with ``last=True``); raises if absent."""
        hits = [
            p
            for p in self.checkpoint_dir.glob("*.ckpt")
            if checkpoint_step(p) == step and p.name.removesuffix(".ckpt").endswith("-last") == last
        ]
        if len(hits) != 1:
            raise FileNotFoundError(
                f"expected one checkpoint at step {step} (last={last}) in {self.checkpoint_dir}, got {hits}"
            )
        return hits[0]


def checkpoint_step(path: Union[str, Path]) -> Optional[int]:
    """The ``step=N`` in a checkpoint's name (``None`` without one)."""
    m = re.search(STEP_IN_NAME_RE, Path(path).name)
    return int(m.group(1)) if m else None


class LRRecorder(pl.Callback):
    """Records ``[g["lr"] for g in optimizer.param_groups]`` before every optimizer step."""

    def __init__(self) -> None:
        self.lrs: dict[int, list[float]] = {}

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        self.lrs[int(trainer.global_step)] = [float(g["lr"]) for g in optimizer.param_groups]


class StopAfterStep(pl.Callback):
    """Asks the trainer to stop (``trainer.should_stop = True``) once ``global_step >= step``.

    This is a *graceful* stop, like NeMo's time-limit / preemption callbacks: Lightning ends the fit loop
    and ``nl.ModelCheckpoint.on_train_end`` still saves the ``-last`` checkpoint (with optimizer state,
    since ``global_step != max_steps``).
    """

    def __init__(self, step: int) -> None:
        self.step = int(step)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step >= self.step:
            trainer.should_stop = True


def build_trainer_parts(cfg: SmokeConfig, log_dir: Path, *, callbacks: Sequence = ()):
    """Build ``(model, trainer, logger, checkpoint_callback, lr_recorder)`` without running anything.

    Useful to dump a context (``TrainerContext.from_trainer(trainer).io_dump(...)``) without fitting.
    """
    from nemo import lightning as nl
    from nemo.lightning.pytorch.optim import CosineAnnealingScheduler, PytorchOptimizerModule

    from nemo_resume.smoke.model import SmokeModel, make_optimizer_fn

    pl.seed_everything(cfg.seed, verbose=False)

    optim = PytorchOptimizerModule(
        optimizer_fn=make_optimizer_fn(cfg.lr, weight_decay=cfg.weight_decay),
        lr_scheduler=cfg.lr_scheduler
        if cfg.lr_scheduler is not None
        else CosineAnnealingScheduler(
            max_steps=cfg.max_steps,
            warmup_steps=cfg.warmup_steps,
            constant_steps=cfg.constant_steps,
            min_lr=cfg.min_lr,
        ),
        # one incoming group; adam_with_lr_mults splits it by the lr_mult tags
        no_weight_decay_cond=None,
    )
    model = SmokeModel(
        hidden=cfg.hidden,
        lr_mults=tuple(cfg.lr_mults),
        optim=optim,
        batch_size=cfg.batch_size,
        num_samples=cfg.num_samples,
        data_seed=cfg.seed,
    )

    # monitor=None only allows save_top_k in (-1, 0, 1); for larger k keep the k newest by step.
    monitor_kwargs: dict = {"monitor": None}
    if cfg.save_top_k not in (-1, 0, 1):
        monitor_kwargs = {"monitor": "step", "mode": "max"}
    checkpoint_cls, window = nl.ModelCheckpoint, {}
    if cfg.save_from_step is not None:
        from nemo_resume.save_from_checkpoint import SaveFromStepCheckpoint

        checkpoint_cls, window = SaveFromStepCheckpoint, {"save_from_step": cfg.save_from_step}
    checkpoint = checkpoint_cls(
        filename=cfg.checkpoint_filename,
        every_n_train_steps=cfg.checkpoint_every,
        save_top_k=cfg.save_top_k,
        save_last=cfg.save_last,
        save_optim_on_train_end=cfg.save_optim_on_train_end,
        verbose=False,
        **monitor_kwargs,
        **window,
    )
    recorder = LRRecorder()
    trainer = nl.Trainer(
        accelerator="cpu",
        devices=1,
        max_steps=cfg.max_steps,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        log_every_n_steps=10**9,
        # the checkpoint callback comes in through NeMoLogger(ckpt=...), as in the recipes; the caller's
        # callbacks are constructor arguments (so they are part of context/io.json, as in a recipe)
        callbacks=list(callbacks),
    )
    # harness instrumentation is added after construction, so it stays out of the trainer's io config
    trainer.callbacks.append(recorder)
    logger = nl.NeMoLogger(
        name=cfg.name,
        log_dir=str(log_dir),
        use_datetime_version=False,
        update_logger_directory=False,
        ckpt=checkpoint,
    )
    return model, trainer, logger, checkpoint, recorder


def train(
    cfg: SmokeConfig,
    log_dir: Path,
    *,
    resume_from: Optional[Path] = None,
    callbacks: Sequence = (),
    stop_after_step: Optional[int] = None,
) -> SmokeResult:
    """Run one real NeMo 2 CPU training run; return what happened.

    Args:
        cfg: the run's knobs.
        log_dir: ``NeMoLogger(log_dir=...)``; the run folder is ``log_dir / cfg.name`` (no version folder),
            checkpoints land in ``log_dir / cfg.name / "checkpoints"``.
        resume_from: a checkpoint to resume from, handed to ``nl.AutoResume(resume_from_path=...)`` (for a
            Lightning checkpoint, the ``.ckpt`` file).
        callbacks: extra Lightning callbacks (e.g. the project's resume guard).
        stop_after_step: stop gracefully once ``global_step`` reaches it (see :class:`StopAfterStep`).

    Only exceptions raised by ``trainer.fit`` are caught; they end up in ``SmokeResult.error`` as
    ``f"{type(e).__name__}: {e}"`` (and the object in ``SmokeResult.exception``). Anything failing while
    building the parts raises.
    """
    from nemo import lightning as nl
    from nemo.lightning.pytorch.trainer import configure_no_restart_validation_training_loop

    log_dir = Path(log_dir)
    model, trainer, logger, checkpoint, recorder = build_trainer_parts(cfg, log_dir, callbacks=callbacks)
    if stop_after_step is not None:
        trainer.callbacks.append(StopAfterStep(stop_after_step))  # instrumentation: not in the io config

    # the same order as nemo.collections.llm.api._setup
    configure_no_restart_validation_training_loop(trainer)
    resume = nl.AutoResume(resume_from_path=str(resume_from)) if resume_from is not None else None
    app_state = logger.setup(trainer, resume_if_exists=False)
    if resume is not None:
        resume.setup(trainer, model)
    # model.optim is already connected (SmokeModel.__init__), as for NeMo's GPTModel.

    run_dir = Path(app_state.log_dir)
    result = SmokeResult(
        log_dir=run_dir,
        checkpoint_dir=Path(checkpoint.dirpath),
        resumed_from=Path(trainer.ckpt_path) if trainer.ckpt_path else None,
    )
    try:
        trainer.fit(model)  # like llm.train: the resume path comes from trainer.ckpt_path
    except Exception as e:  # a training-time failure is a result, not a crash of the harness
        result.error = f"{type(e).__name__}: {e}"
        result.exception = e
    result.lrs = dict(recorder.lrs)
    result.final_step = int(trainer.global_step)
    return result
