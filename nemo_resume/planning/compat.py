"""What a resume with another layout would break or silently change, predicted from the checkpoint alone.

:func:`compat_problems` compares the checkpoint's :class:`~nemo_resume.checkpoint.run_layout.RunLayout` with the
new run's (:class:`NewRun`) by the rules of NeMo 2.7.3 and megatron-core 0.15.3, each named where it is coded,
and returns one :class:`~nemo_resume.inspection.problems.Problem` per trap, with a stable code. Pure but for
one ``os.path.exists`` (a PEFT checkpoint's base model).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from nemo_resume.checkpoint.run_layout import GBS_FROM_IO_JSON, RunLayout
from nemo_resume.inspection.problems import (
    CHECKPOINT_FORMAT_TOO_OLD,
    DATA_ORDER_CHANGED,
    DATA_POSITION_LOST,
    GLOBAL_BATCH_SIZE_CHANGED,
    OPTIMIZER_NOT_RESHARDABLE,
    PARAM_GROUPS_CHANGED,
    PEFT_BASE_MISSING,
    Problem,
)

_DO = "megatron/core/optimizer/distrib_optimizer.py"
#: Distributed-optimizer formats whose state is keyed by the model-parallel (TP x PP) rank and laid out in that
#: rank's buffers: ``ShardedObject('optimizer.distributed.dp_group_idx_<mp rank>...')`` (distrib_optimizer.py:1229-1244,
#: every format outside ``checkpoint_fully_reshardable_formats``, :101-105). They reshard in the data-parallel
#: dimension only, which for the distributed optimizer is DP x CP (``dp_cp_group``, optimizer/__init__.py:525-534).
DP_ONLY_FORMATS = ("dp_reshardable", "dp_zero_gather_scatter")
#: Formats megatron-core 0.15.3 still loads but has deprecated (distrib_optimizer.py:1189-1199):
#: ``fully_sharded_model_space`` stores ``flattened_range`` tensors, megatron-core's layout before 0.14, loaded by
#: dist_checkpointing/strategies/torch.py:343-366; megatron-core after 0.15 drops it (Megatron-LM PR #2126).
DEPRECATED_FORMATS = ("fully_sharded_model_space", "dp_zero_gather_scatter")
#: What megatron-core requests when a checkpoint has no content_metadata (distrib_optimizer.py:1208).
MCORE_DEFAULT_FORMAT = "fully_sharded_model_space"


@dataclass(frozen=True)
class NewRun:
    """The resumed run's layout; None where it is the checkpoint's (today's commands give none of it).

    ``devices`` is per node. ``lr_mults``: the multipliers the run gives param groups (NeMo's one
    ``lr_mult``; () none), None when unknown. ``max_steps``: the new horizon.
    """

    tp: int | None = None
    pp: int | None = None
    cp: int | None = None
    devices: int | None = None
    num_nodes: int | None = None
    global_batch_size: int | None = None
    micro_batch_size: int | None = None
    max_steps: int | None = None
    lr_mults: tuple[float, ...] | None = None


def _changed(old: int | None, new: int | None) -> bool:
    return old is not None and new is not None and old != new


def _reshard(ck: RunLayout, new: NewRun) -> list[Problem]:
    fmt = ck.optimizer_format
    if not ck.has_optimizer_state or fmt not in DP_ONLY_FORMATS:
        return []
    moved = [f"{flag} {old} -> {to}" for flag, old, to in (("--tp", ck.tp, new.tp), ("--pp", ck.pp, new.pp))
             if _changed(old, to)]
    if not moved:
        return []
    keep = " ".join(f"{flag} {old}" for flag, old in (("--tp", ck.tp), ("--pp", ck.pp)))
    return [Problem(OPTIMIZER_NOT_RESHARDABLE, "error",
                    f"{', '.join(moved)}: the distributed optimizer's state is saved as {fmt} (common.pt content_metadata), "
                    f"keyed by the TP x PP rank and laid out in that rank's buffers ({_DO}:1229-1244, 1251), so it loads "
                    "with another data-parallel (or context-parallel) size only; the load fails in NeMo's "
                    "MegatronStrategy.load_checkpoint. Resume with " + keep + ", then, to change them, let that run save "
                    "with MegatronStrategy(ckpt_optim_fully_reshardable=True) and resume from its checkpoint, or "
                    "--restart-from-weights (a fresh optimizer)")]


def _groups(ck: RunLayout, new: NewRun) -> list[Problem]:
    if new.lr_mults is None or not ck.group_keys or not ck.has_optimizer_state:
        return []
    saved = sorted(m for m in ck.lr_mults if m != 1.0)
    wanted = sorted({m for m in new.lr_mults if m != 1.0})
    if saved == wanted:
        return []
    where = (f"{_DO}:733-760 (DistributedOptimizer.load_state_dict: param_groups_map[needed_groups], a KeyError)"
             if ck.distributed_optimizer else
             "megatron/core/optimizer/optimizer.py:395-424 (_filter_and_reorder_param_groups, a ValueError)")
    keys = ", ".join(f"({lr:g}, {wd:g})" for lr, wd in ck.group_keys)
    said = ", ".join(f"{m:g}" for m in wanted) or "none"
    flag = " ".join(f"--lr-mult 'PATTERN={m:g}'" for m in saved) or "no --lr-mult"
    return [Problem(PARAM_GROUPS_CHANGED, "error",
                    f"the checkpoint's param groups are keyed (lr_mult, wd_mult) {keys}; this run's lr multiplier is {said}, "
                    "so its groups have other keys. megatron-core pairs saved and current groups by that key "
                    f"(optimizer.py:95 param_group_identifier_keys), and the optimizer load fails at {where}. "
                    f"Resume with {flag} (the checkpoint's), or --restart-from-weights (a fresh optimizer)")]


def _batch(ck: RunLayout, new: NewRun) -> list[Problem]:
    """The data position is restored as a sample count, the LR schedule by steps: both shift with the batch."""
    old, gbs = ck.global_batch_size, new.global_batch_size
    if old is None or gbs is None or old == gbs:
        return []
    derived = "" if ck.global_batch_size_source == GBS_FROM_IO_JSON else " (derived from consumed_samples/global_step)"
    said = [f"--global-batch-size {old}{derived} -> {gbs}: the data continues from the consumed samples saved"]
    if ck.consumed_samples is not None and ck.global_step is not None:
        said[0] += f" ({ck.consumed_samples} at step {ck.global_step}), {gbs} per step from there"
        if new.max_steps is not None and new.max_steps > ck.global_step:
            left = new.max_steps - ck.global_step
            said.append(f"the {left} steps left to max_steps {new.max_steps} consume {left * gbs} samples, not "
                        f"{left * old} (ending at sample {ck.consumed_samples + left * gbs})")
    if ck.seq_length is not None:
        said.append(f"each step trains {gbs * ck.seq_length} tokens, not {old * ck.seq_length} (seq_length "
                    f"{ck.seq_length}), so the step-based LR schedule spans another number of tokens")
    said.append("NeMo's sampler reads on from the consumed samples in the dataset's order whatever the batch "
                "(nemo/lightning/data.py:183-194), so the data continues without a repeat as long as the dataset "
                f"keeps its order (see {DATA_ORDER_CHANGED}); keep --global-batch-size at the checkpoint's to keep "
                "the tokens per step and what the schedule spans")
    return [Problem(GLOBAL_BATCH_SIZE_CHANGED, "warning", "; ".join(said))]


#: The data module whose dataset NeMo sizes from the run (pre_training.py:284-293); fine-tuning and mock data
#: modules are sized otherwise.
PRETRAINING_DATAMODULE = "PreTrainingDataModule"


def _data_order(ck: RunLayout, new: NewRun) -> list[Problem]:
    """NeMo builds the pre-training dataset to max_steps x global batch samples; megatron-core's GPTDataset draws
    its whole order from its epoch count and final-epoch split, which that size sets. Another size can reshuffle
    every sample, and the resumed run reads the new order on from the consumed samples: trained samples repeat."""
    if ck.datamodule != PRETRAINING_DATAMODULE or ck.max_steps is None or ck.global_batch_size is None:
        return []
    old = ck.max_steps * ck.global_batch_size
    steps, gbs = new.max_steps or ck.max_steps, new.global_batch_size or ck.global_batch_size
    if steps * gbs == old:
        return []
    keep = (f"pass PreTrainingDataModule(num_train_samples={old}) to build the run's own dataset again"
            if old >= steps * gbs else
            f"keep max_steps x global batch at {old} (NeMo's num_train_samples only raises the size, "
            "pre_training.py:288-293), or accept the reshuffle")
    return [Problem(DATA_ORDER_CHANGED, "warning",
                    f"NeMo builds the pre-training dataset to max_steps x global batch = {steps} x {gbs} = {steps * gbs} "
                    f"samples (nemo/collections/llm/gpt/data/pre_training.py:284-286), the run's was {ck.max_steps} x "
                    f"{ck.global_batch_size} = {old}. megatron-core's GPTDataset shuffles by its epoch count and its "
                    "final-epoch split (megatron/core/datasets/gpt_dataset.py:369-393, 410-456); when the new size "
                    "changes either, the whole order is another permutation, read on from the consumed samples: "
                    "samples already trained repeat and others are skipped, without an error (measured on a 286-sample "
                    "dataset: max_steps 71 -> 72 at global batch 4, resumed at step 30, reshuffled every sample). To keep the data, "
                    f"{keep}")]


def _data_position(ck: RunLayout) -> list[Problem]:
    if ck.consumed_samples is not None or not ck.has_optimizer_state:
        return []
    return [Problem(DATA_POSITION_LOST, "warning",
                    "the checkpoint holds no datamodule state (no consumed_samples in weights/common.pt): NeMo's data "
                    "sampler restarts at sample 0 and trains again on the samples already seen. Resume with the data "
                    "module the run used (NeMo's PreTrainingDataModule and FineTuningDataModule save consumed_samples)")]


def _peft_base(ck: RunLayout, exists: Callable[[str], bool]) -> list[Problem]:
    if ck.peft_base is None or exists(ck.peft_base):
        return []
    return [Problem(PEFT_BASE_MISSING, "error",
                    f"this {ck.peft or 'PEFT'} checkpoint's adapters train on the base model at {ck.peft_base} "
                    "(weights/adapter_metadata.json), which does not exist: NeMo's PEFT callback loads the base from "
                    "there on resume (nemo/lightning/pytorch/callbacks/peft.py:644-648) and fails. Put the base "
                    "checkpoint back at that path (or link it there)")]


def _format(ck: RunLayout) -> list[Problem]:
    saved, requested = ck.saved_optimizer_format, ck.optimizer_format
    if not ck.has_optimizer_state or saved is None:
        return []
    if not ck.content_metadata and saved != MCORE_DEFAULT_FORMAT:
        return [Problem(CHECKPOINT_FORMAT_TOO_OLD, "error",
                        f"the distributed optimizer's state was saved as {saved}, but the checkpoint has no "
                        "content_metadata (written before megatron-core recorded it), so megatron-core 0.15.3 requests "
                        f"{MCORE_DEFAULT_FORMAT} ({_DO}:1208) and the optimizer load fails. Resume with the NeMo and "
                        "megatron-core that wrote it, or --restart-from-weights (a fresh optimizer)")]
    if requested in DEPRECATED_FORMATS:
        return [Problem(CHECKPOINT_FORMAT_TOO_OLD, "warning",
                        f"the distributed optimizer's state is saved as {requested}, a format megatron-core deprecated "
                        f"({_DO}:1189-1199): 0.15.3 still loads it, a later megatron-core does not. Let the resumed run "
                        "save a checkpoint before upgrading")]
    return []


def compat_problems(ck: RunLayout, new: NewRun, exists: Callable[[str], bool] = os.path.exists) -> list[Problem]:
    """Every trap resuming the checkpoint of ``ck`` as ``new`` runs, errors first."""
    found = [*_format(ck), *_reshard(ck, new), *_groups(ck, new), *_peft_base(ck, exists), *_batch(ck, new),
             *_data_order(ck, new), *_data_position(ck)]
    return sorted(found, key=lambda p: p.severity != "error")
