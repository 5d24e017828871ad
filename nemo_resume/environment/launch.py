"""What a launch asks of the machine, read from the NeMo-Run recipe that will run (never re-derived).

The recipe is a ``run.Partial`` of ``llm.pretrain``/``llm.finetune`` as ``qwen25_recipe`` builds it (or its
``--smoke`` rehearsal): the model config class, precision plugin, optimizer config, PEFT and
``ModelCheckpoint`` settings are NeMo's own objects, built here with fiddle and read field by field.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nemo_resume.environment.checkpoint_size import Adapters, CheckpointEstimate, ModelShape, optimizer_bytes


@dataclass(frozen=True)
class Launch:
    """The machine-facing side of one launch: where it writes, what it runs on, what it keeps."""

    dir: Path  # NeMoLogger's log_dir (--dir)
    executor: str  # "local" or "slurm"
    accelerator: str  # the trainer's: "gpu" (a real launch) or "cpu" (the --smoke rehearsal)
    devices: int  # per node
    num_nodes: int
    async_save: bool  # MegatronStrategy's ckpt_async_save: each rank stages its shard in host memory
    container_image: str | None
    checkpoints: CheckpointEstimate

    def to_json(self) -> dict[str, Any]:
        return {"dir": str(self.dir), "executor": self.executor, "accelerator": self.accelerator,
                "devices": self.devices, "num_nodes": self.num_nodes, "async_save": self.async_save,
                "container_image": self.container_image, "checkpoints": self.checkpoints.to_json()}


def _adapters(recipe: Any) -> Adapters | None:
    peft = recipe.__arguments__.get("peft")
    if peft is None:
        return None
    import fiddle as fdl

    built = fdl.build(peft)
    return Adapters(type(built).__name__, int(built.dim), tuple(built.target_modules))


def launch_from_recipe(recipe: Any, *, interval_saves: int, executor: str, container_image: str | None) -> Launch:
    """The :class:`Launch` of ``recipe``.

    Args:
        recipe: the recipe as it will run (``qwen25_recipe(...)``, or ``cpu_rehearsal`` of it for ``--smoke``).
        interval_saves: how many interval checkpoints the run writes (``nemo_resume.recipes.save_steps``).
        executor: ``local`` or ``slurm``; ``container_image``: the Slurm job's image, if any.
    """
    import fiddle as fdl

    config = fdl.build(recipe.model.config)
    plugin = recipe.trainer.plugins  # MegatronMixedPrecision (its params_dtype) or None (the config's dtype)
    dtype = getattr(plugin, "params_dtype", None) or config.params_dtype
    weight = int(dtype.itemsize)  # torch.bfloat16: 2, torch.float32: 4
    optim = recipe.optim.config
    ckpt = recipe.log.ckpt
    estimate = CheckpointEstimate(
        shape=ModelShape.from_config(config), adapters=_adapters(recipe), weight_bytes=weight,
        optimizer_bytes=optimizer_bytes(optim.optimizer, weight, bool(optim.use_distributed_optimizer)),
        interval_saves=interval_saves, save_top_k=int(ckpt.save_top_k), save_last=bool(ckpt.save_last),
    )
    t = recipe.trainer
    return Launch(dir=Path(recipe.log.log_dir), executor=executor, accelerator=str(t.accelerator),
                  devices=int(t.devices), num_nodes=int(t.num_nodes),
                  async_save=bool(getattr(t.strategy, "ckpt_async_save", False)),
                  container_image=container_image, checkpoints=estimate)
