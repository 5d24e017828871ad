"""What a resume with another layout would break or silently change, predicted from the checkpoint alone.

:func:`compat_problems` compares the checkpoint's :class:`~nemo_resume.checkpoint.run_layout.RunLayout` with the
new run's (:class:`NewRun`) by the rules of NeMo 2.7.3 and megatron-core 0.15.3, each named where it is coded,
and returns one :class:`~nemo_resume.inspection.problems.Problem` per trap, with a stable code. Pure but for
one ``os.path.exists`` (a PEFT checkpoint's base model).
"""

from __future__ import annotations

import os
from collections.abc import Callable

from nemo_resume.checkpoint.run_layout import GBS_FROM_IO_JSON, RunLayout
from nemo_resume.inspection.problems import (
    CHECKPOINT_FORMAT_TOO_OLD,
    DATA_EXHAUSTED,
    DATA_ORDER_CHANGED,
    DATA_POSITION_LOST,
    GLOBAL_BATCH_SIZE_CHANGED,
    OPTIMIZER_NOT_RESHARDABLE,
    PARAM_GROUPS_CHANGED,
    PEFT_BASE_CHANGED,
    PEFT_BASE_MISSING,
    Problem,
)
from nemo_resume.planning.data_order import PRETRAINING_DATAMODULE, DataResume, gpt_epochs, kept_size
from nemo_resume.planning.new_run import NewRun
from nemo_resume.schedules.lr_mult import DECAY_FLAG, FLAG

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
    flag = _saved_mult_flags(ck) or " ".join(f"--lr-mult 'PATTERN={m:g}'" for m in saved) or "no --lr-mult"
    return [Problem(PARAM_GROUPS_CHANGED, "error",
                    f"the checkpoint's param groups are keyed (lr_mult, wd_mult) {keys}; this run's lr multiplier is {said}, "
                    "so its groups have other keys. megatron-core pairs saved and current groups by that key "
                    f"(optimizer.py:95 param_group_identifier_keys), and the optimizer load fails at {where}. "
                    f"Resume with {flag} (the checkpoint's), or --restart-from-weights (a fresh optimizer)")]


def _saved_mult_flags(ck: RunLayout) -> str:
    """The ``--lr-mult``/``--layer-lr-decay`` flags that rebuild the checkpoint's groups, where its io.json names them."""
    rules = ck.lr_mult_rules or tuple(f"{p}={ck.lr_mult:g}" for p in ck.lr_mult_patterns if ck.lr_mult is not None)
    decay = (f"{DECAY_FLAG} {ck.layer_lr_decay:g}",) if ck.layer_lr_decay is not None else ()
    return " ".join((*(f"{FLAG} '{r}'" for r in rules), *decay))


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


def data_resume(ck: RunLayout, new: NewRun) -> DataResume | None:
    """The training-set sizes of the checkpoint's run and of ``new`` (None: not NeMo's pre-training data on both
    sides, or a size the checkpoint does not record)."""
    if ck.datamodule != PRETRAINING_DATAMODULE or new.datamodule not in (None, PRETRAINING_DATAMODULE):
        return None
    if ck.max_steps is None or ck.global_batch_size is None:
        return None
    old = max(ck.max_steps * ck.global_batch_size, ck.num_train_samples or 0)
    steps, gbs = new.max_steps or ck.max_steps, new.global_batch_size or ck.global_batch_size
    natural = steps * gbs
    needed = None
    if ck.consumed_samples is not None and ck.global_step is not None and steps > ck.global_step:
        needed = ck.consumed_samples + (steps - ck.global_step) * gbs
    return DataResume(old, natural, max(natural, new.num_train_samples or 0), needed, gbs)


def planned_train_samples(ck: RunLayout, new: NewRun) -> int | None:
    """The ``PreTrainingDataModule(num_train_samples=...)`` that keeps the checkpoint's data on this resume (None:
    NeMo's own size does as well): the old run's dataset, or as many samples as the resume reads."""
    d = data_resume(ck, new)
    return kept_size(d.old, d.natural, d.needed) if d is not None else None


def _num_train_samples(size: int) -> str:
    return f"PreTrainingDataModule(num_train_samples={size})"


def _exhausted(d: DataResume, ck: RunLayout, new: NewRun) -> list[Problem]:
    """A resume that reads more samples than NeMo builds: a smaller global batch after the checkpoint's."""
    if not d.runs_out or ck.consumed_samples is None or ck.global_step is None:
        return []
    fix = (f"Pass {_num_train_samples(d.needed or 0)} (the recipes do), or keep --global-batch-size at the "
           "checkpoint's")
    head = (f"the resume reads samples {ck.consumed_samples} to {d.needed} but NeMo builds {d.built} "
            f"(max_steps x global batch, pre_training.py:284-293)")
    if ck.consumed_samples >= d.built:
        return [Problem(DATA_EXHAUSTED, "error", f"{head}: NeMo's sampler fails before the first step with "
                        "'RuntimeError: no samples left to consume' (nemo/lightning/data.py:339-340). " + fix)]
    step = ck.global_step + (d.built - ck.consumed_samples) // d.gbs
    return [Problem(DATA_EXHAUSTED, "error", f"{head}: the data runs out at step {step}, Lightning starts another "
                    f"epoch on the same sampler, which reads again from sample {ck.consumed_samples} "
                    "(nemo/lightning/data.py:349-352): those samples repeat without an error. " + fix, step)]


def _data_order(d: DataResume, ck: RunLayout, new: NewRun) -> list[Problem]:
    """NeMo rebuilds the pre-training dataset to the resume's size; megatron-core's GPTDataset draws its whole
    order from the epochs that size tiles (:func:`~nemo_resume.planning.data_order.gpt_epochs`). Another count
    reshuffles every sample, and the resumed run reads the new order on from the consumed samples."""
    if not d.resized:
        return []
    seq = new.seq_length or ck.seq_length
    if new.train_tokens and seq:
        before, after = gpt_epochs(d.old, new.train_tokens, seq), gpt_epochs(d.built, new.train_tokens, seq)
        if before == after:
            return []
        why = (f"over the dataset's {new.train_tokens} training tokens per epoch that is {before} before and {after} "
               "now, so megatron-core's GPTDataset shuffles every sample to another index")
    else:
        why = ("megatron-core's GPTDataset shuffles by the epochs that size tiles and whether the last one stands "
               "apart; if either changes (the recipes measure it from --data), every sample moves to another index")
    keep = kept_size(d.old, d.natural, d.needed)
    fix = (f"To keep the data, pass {_num_train_samples(d.old)} (the old run's dataset; the recipes do)"
           if keep == d.old else
           f"The resume reads {max(d.natural, d.needed or 0)} samples, more than the old run's dataset, so its order "
           "cannot be kept (NeMo's num_train_samples only raises the size, pre_training.py:288-291): keep "
           f"max_steps x global batch at {d.old} or below, or accept the reshuffle")
    return [Problem(DATA_ORDER_CHANGED, "warning",
                    f"NeMo builds the pre-training dataset to {d.built} samples (nemo/collections/llm/gpt/data/"
                    f"pre_training.py:284-293), the checkpoint's run to {d.old}; {why} (gpt_dataset.py:368-456). "
                    "The resumed run reads that new order on from the consumed samples: samples already trained "
                    "repeat and others are skipped, without an error (measured on the CPU Megatron tier, "
                    f"tests/megatron/test_data_tier.py). {fix}")]


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


def _peft_base_changed(ck: RunLayout, new: NewRun) -> list[Problem]:
    if ck.peft_base is None or new.peft_base is None or os.path.realpath(ck.peft_base) == os.path.realpath(new.peft_base):
        return []
    return [Problem(PEFT_BASE_CHANGED, "error",
                    f"this {ck.peft or 'PEFT'} checkpoint's adapters were trained on the base at {ck.peft_base} "
                    f"(weights/adapter_metadata.json), and this run's base is {new.peft_base}: NeMo's PEFT callback "
                    "loads the checkpoint's own base on resume (nemo/lightning/pytorch/callbacks/peft.py:644-648), "
                    "whatever the run restores, so the adapters would go on training on the old base. Resume with the "
                    "--model that base was imported from, or start another run (--name) on the new one")]


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
    d = data_resume(ck, new)
    data = [*_exhausted(d, ck, new), *_data_order(d, ck, new)] if d is not None else []
    found = [*_format(ck), *_reshard(ck, new), *_groups(ck, new), *_peft_base(ck, exists), *_peft_base_changed(ck, new), *_batch(ck, new),
             *data, *_data_position(ck)]
    return sorted(found, key=lambda p: p.severity != "error")
