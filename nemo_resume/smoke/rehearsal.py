"""A recipe's CPU rehearsal: the same NeMo-Run recipe, shrunk to a tiny model on CPU ranks.

What a rehearsal keeps from the recipe it is given is everything that decides the learning rate and
the resume: ``MegatronOptimizerModule`` with the recipe's ``OptimizerConfig`` (the distributed optimizer
as the recipe has it, ``scale_lr_cond``/``lr_mult``), the recipe's scheduler module, ``nl.ModelCheckpoint``
(or its subclass), ``NeMoLogger`` (TensorBoard included), ``AutoResume`` and the trainer callbacks (the
resume plan's callback among them), and the ``MegatronStrategy`` with its checkpoint options
(``torch_dist``, async and parallel save, parallel load).

What it changes, and only here (docs/smoke.md has the table):

- the model: the recipe's own Qwen2 config class (so the family's architecture: GQA, QKV bias, RMSNorm,
  SwiGLU, RoPE, tied or untied embeddings as the size has them) with tiny dimensions, fp32 (the recipe's layer
  count is kept with ``--layer-lr-decay``, whose param groups follow it);
- precision: fp32 (no ``MegatronMixedPrecision`` plugin; bf16 kernels are a GPU matter);
- the trainer: ``accelerator="cpu"``, ``devices`` CPU ranks on gloo, one node; the recipe's TP where it fits
  (:func:`rehearsal_tp`), PP = CP = 1;
- the data: ``llm.MockDataModule`` with the rehearsal's batch sizes and a tiny vocabulary, or, for a recipe on
  a Megatron dataset (``PreTrainingDataModule``), that dataset with the rehearsal's batch and sequence sizes, and
  a vocabulary that embeds its ids (:func:`data_vocab`);
- validation: one batch at the recipe's interval (capped at ``max_steps``), so ``val_loss`` exists for
  the checkpoint file name and ``save_top_k`` as it does on the cluster;
- fine-tuning: the base weights are a tiny model trained one step (:func:`base_weights_recipe`), not
  Qwen2.5's, unless the recipe restores a checkpoint on disk (``--model``'s import): then that model, whole;
  PEFT (LoRA/DoRA) is the recipe's.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from typing import Any

__all__ = ["Tiny", "TINY", "base_weights_recipe", "cpu_rehearsal", "data_vocab", "is_pretraining_data",
           "needs_base_weights", "rehearsal_gbs", "rehearsal_tp"]


@dataclass(frozen=True)
class Tiny:
    """The rehearsal's sizes: small enough for about 0.2 s per step on one CPU core."""

    num_layers: int = 2
    hidden_size: int = 64
    ffn_hidden_size: int = 128
    num_attention_heads: int = 4
    num_query_groups: int = 2
    seq_length: int = 32
    #: NullTokenizer(vocab_size=127) plus its end-of-document token: 128 ids.
    vocab_size: int = 128
    micro_batch_size: int = 1
    global_batch_size: int = 2

    def splits(self, tp: int) -> bool:
        """Whether megatron-core can shard this model ``tp`` ways (heads, query groups, FFN and vocabulary)."""
        return all(n % tp == 0 for n in (self.num_attention_heads, self.num_query_groups, self.ffn_hidden_size,
                                          self.vocab_size))


TINY = Tiny()


def rehearsal_tp(tp: int, devices: int, tiny: Tiny = TINY) -> int:
    """The rehearsal's tensor-parallel size: the recipe's ``tp`` when the ``devices`` ranks form whole TP groups
    and the tiny model shards that many ways, else 1. Keeping it lets a rehearsal save (and resume) the
    distributed optimizer in the TP layout the cluster run has, which decides whether a resume loads."""
    return tp if tp >= 1 and devices % tp == 0 and tiny.splits(tp) else 1


#: The largest global batch a rehearsal keeps from its recipe (a step stays well under a second).
MAX_REHEARSAL_GBS = 8


def rehearsal_gbs(gbs: int, dp: int, tiny: Tiny = TINY) -> int:
    """The rehearsal's global batch: the recipe's when it is at most :data:`MAX_REHEARSAL_GBS` and ``dp`` ranks of
    the tiny micro batch divide it (so a batch change can be rehearsed, data position and all), else tiny's."""
    return gbs if gbs <= MAX_REHEARSAL_GBS and gbs % (dp * tiny.micro_batch_size) == 0 else tiny.global_batch_size


def cpu_rehearsal(recipe: Any, *, devices: int = 1, dist_opt: bool | None = None, tiny: Tiny = TINY) -> Any:
    """A copy of ``recipe`` (a ``run.Partial`` of ``llm.pretrain``/``llm.finetune``) that runs on CPU.

    Args:
        recipe: the recipe exactly as it would be launched.
        devices: CPU ranks (TP x DP); the global batch (:func:`rehearsal_gbs`) does not follow them, so a
            rehearsal can resume with another DP size as a cluster run would. The recipe's tensor-parallel size is kept when
            it fits (:func:`rehearsal_tp`), else 1; PP and CP are always 1.
        dist_opt: ``None`` keeps the recipe's ``use_distributed_optimizer``; ``True``/``False`` overrides it
            (optimizer and DDP config together, as megatron-core requires).
        tiny: the model and batch sizes.
    """
    import nemo_run as run
    import torch
    from megatron.core.distributed import DistributedDataParallelConfig
    from nemo.collections import llm
    from nemo.collections.common.tokenizers.null_tokenizer import NullTokenizer

    r = copy.deepcopy(recipe)
    tp = rehearsal_tp(int(r.trainer.strategy.tensor_model_parallel_size or 1), devices, tiny)
    use_dist_opt = r.optim.config.use_distributed_optimizer if dist_opt is None else dist_opt

    m = r.model.config
    real_data = is_pretraining_data(r.data)
    vocab = data_vocab(r.data.paths, int(m.vocab_size), tiny) if real_data else tiny.vocab_size
    # Weights restored from disk (--model's import) fix the model's shape: it is kept. A layer-wise LR decay gives
    # every layer its own LR: the rehearsal keeps the recipe's layers to have its groups.
    keep_model = restores_local_weights(r)
    keep_layers = keep_model or getattr(r.optim, "layer_lr_decay", None) is not None
    for key in ("num_layers", "hidden_size", "ffn_hidden_size", "num_attention_heads", "num_query_groups",
                "seq_length"):
        if not (keep_model or key == "num_layers" and keep_layers):
            setattr(m, key, getattr(tiny, key))
    m.vocab_size = int(m.vocab_size) if keep_model else vocab
    m.make_vocab_size_divisible_by = tiny.vocab_size // tp  # NeMo pads to this x TP: the vocabulary stays as set
    m.bf16, m.fp16, m.params_dtype = False, False, torch.float32
    m.use_cpu_initialization = True

    tokenizer = run.Config(NullTokenizer, vocab_size=vocab - 1)
    gbs = rehearsal_gbs(int(r.data.global_batch_size), devices // tp, tiny)
    sizes = dict(seq_length=tiny.seq_length, micro_batch_size=tiny.micro_batch_size, global_batch_size=gbs,
                 num_workers=0, pin_memory=False)
    if real_data:
        # The user's Megatron dataset, as NeMo builds it (split, seed, num_train_samples, the index cache kept):
        # its order and the data position are what a rehearsal of a data change must show.
        for key, value in sizes.items():
            setattr(r.data, key, value)
        r.data.tokenizer = tokenizer
    else:
        samples = r.trainer.max_steps * gbs
        # MockDataModule's loaders carry no train/validation mode, so NeMo's sampler starts validation at the
        # restored consumed-samples count too: the validation set is as long as the training set.
        r.data = run.Config(llm.MockDataModule, tokenizer=tokenizer, num_train_samples=samples,
                            num_val_samples=samples, **sizes)

    c = r.optim.config
    c.bf16, c.fp16, c.params_dtype = False, False, torch.float32
    c.use_distributed_optimizer = use_dist_opt

    t = r.trainer
    t.accelerator, t.devices, t.num_nodes = "cpu", devices, 1
    t.plugins = None
    t.num_sanity_val_steps = 0
    t.limit_val_batches = 1
    t.limit_test_batches = 0
    t.val_check_interval = min(int(t.val_check_interval or t.max_steps), t.max_steps)
    t.log_every_n_steps = 1
    t.enable_progress_bar = False

    s = t.strategy
    s.tensor_model_parallel_size = tp
    s.pipeline_model_parallel_size = s.context_parallel_size = 1
    s.sequence_parallel = False
    s.pipeline_dtype = None
    s.process_group_backend = "gloo"
    s.ddp = run.Config(
        DistributedDataParallelConfig, overlap_grad_reduce=False, overlap_param_gather=False,
        use_distributed_optimizer=use_dist_opt, grad_reduce_in_fp32=False,
    )

    if needs_base_weights(r):
        r.tokenizer = "data"
        r.resume.restore_config = None  # the caller points it at the tiny base (base_weights_recipe)
    return r


def is_pretraining_data(data: Any) -> bool:
    """``data`` configures NeMo's ``PreTrainingDataModule`` (a Megatron dataset on disk)."""
    from nemo.collections import llm

    return getattr(data, "__fn_or_cls__", None) is llm.PreTrainingDataModule


#: The largest ``.bin`` files :func:`data_vocab` scans for their largest token id (a few seconds at most).
SCAN_BIN_BYTES = 1 << 30


def data_vocab(paths: Any, recipe_vocab: int, tiny: Tiny = TINY) -> int:
    """The rehearsal's vocabulary on a real dataset: ids up to its largest, rounded up to the tiny vocabulary's
    multiple, so a small dataset keeps the model tiny; the recipe's own when a ``.bin`` is too large to scan.

    ``paths`` is ``PreTrainingDataModule(paths=...)``: prefixes, optionally weighted, or a dict of splits.
    """
    import numpy as np
    from megatron.core.datasets.indexed_dataset import IndexedDataset
    from megatron.core.datasets.utils import get_blend_from_list

    lists = list(paths.values()) if isinstance(paths, dict) else [paths]
    prefixes = {p for group in lists for p in get_blend_from_list(list(group))[0]}
    largest = 0
    for prefix in prefixes:
        bin_path = prefix + ".bin"
        if os.path.getsize(bin_path) > SCAN_BIN_BYTES:
            return recipe_vocab
        dtype = IndexedDataset(prefix, mmap=False).index.dtype
        tokens = np.memmap(bin_path, dtype=dtype, mode="r")
        largest = max(largest, int(tokens.max()) if tokens.size else 0)
    return -(-(largest + 1) // tiny.vocab_size) * tiny.vocab_size


def restores_local_weights(rehearsal: Any) -> bool:
    """A recipe restoring base weights from a checkpoint on disk (``--model``'s import), not NeMo's ``nemo://``."""
    config = rehearsal.resume.restore_config if rehearsal.resume is not None else None
    path = str(getattr(config, "path", None) or "")
    return bool(path) and not path.startswith("nemo://")


def needs_base_weights(rehearsal: Any) -> bool:
    """A PEFT recipe whose base is NeMo's ``nemo://`` import: the rehearsal trains a tiny base to restore instead."""
    return (rehearsal.__arguments__.get("peft") is not None and rehearsal.resume is not None
            and not restores_local_weights(rehearsal))


def base_weights_recipe(rehearsal: Any, log_dir: Any) -> Any:
    """``llm.pretrain`` of the rehearsal's tiny model for one step, saved under ``log_dir``: the base a PEFT
    rehearsal restores, as a real fine-tuning run restores the imported Qwen2.5 checkpoint."""
    import nemo_run as run
    from nemo import lightning as nl
    from nemo.collections import llm

    trainer = copy.deepcopy(rehearsal.trainer)
    trainer.max_steps, trainer.devices, trainer.callbacks = 1, 1, []
    trainer.limit_val_batches, trainer.val_check_interval = 0, None
    log = run.Config(nl.NeMoLogger, log_dir=str(log_dir), name="base",
                     ckpt=run.Config(nl.ModelCheckpoint, save_last=True, save_top_k=1, monitor="step", mode="max",
                                     every_n_train_steps=1))
    return run.Partial(llm.pretrain, model=copy.deepcopy(rehearsal.model), data=copy.deepcopy(rehearsal.data),
                       trainer=trainer, log=log, optim=copy.deepcopy(rehearsal.optim))
