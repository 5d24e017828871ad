"""What a resume restores beyond the LR: the parallel layout, batch sizes, data position, optimizer format and
param-group identity, PEFT base and precision, as the checkpoint recorded them.

A pure reader of what :mod:`nemo_resume.checkpoint.state` already read (the ``context/io.json`` leaves, the
``weights/common.pt`` dict, the param groups, ``weights/adapter_metadata.json``): no file is read here, nothing is
imported or run, and every value is kept only when it has the type NeMo writes (else None: not recorded).

Where each value comes from (NeMo 2.7.3, megatron-core 0.15.3):

- parallel sizes: ``trainer.strategy.*_model_parallel_size`` (``MegatronStrategy``), else ``model.config``'s;
  expert parallel only in ``model.config``;
- devices and nodes: ``trainer.devices``/``trainer.num_nodes``;
- batch sizes: ``extra['datamodule']`` (written only when the datamodule is an ``IOMixin``: NeMo's
  ``TrainerContext.construct_extra``); else the global batch is derived as consumed samples / global step
  (an average if it changed during the run);
- the optimizer: ``model.optim.config`` (``OptimizerConfig``), its state's format in ``common.pt``
  (``content_metadata.distrib_optim_sharding_type``, the one the load requests, and
  ``optimizer[0].param_state_sharding_type``, the one saved);
- param groups: megatron-core's group identity (``lr_mult``, ``wd_mult``), NeMo stores them as
  ``pre_lr_mult``/``pre_wd_mult`` (``nemo/lightning/_strategy_lib.py:740-745``);
- versions: only Lightning's (``pytorch-lightning_version``); neither NeMo nor megatron-core records its version
  in a checkpoint (``io.json``'s ``version`` is fiddle's serialization format, ``metadata.json``'s the backend's).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from nemo_resume.checkpoint.context import SavedContext, find_leaf
from nemo_resume.constants import CONSUMED_SAMPLES_KEY, GLOBAL_STEP_KEY, INT64_MAX, OPTIMIZER_KEY

#: ``global_batch_size`` read from io.json, or derived from the data position.
GBS_FROM_IO_JSON = "io.json"
GBS_DERIVED = "derived from consumed_samples/global_step"

_STRATEGY, _MODEL = ".trainer.strategy.", ".model.config."
_DATA = ".extra['datamodule']."
_OPTIM = ".model.optim.config."
_PEFT = ".model.model_transform"
_LR_COND = ".model.optim.scale_lr_cond"
_MAX_PATTERNS = 1000  # a real --lr-mult has a handful


def _count(v: Any) -> int | None:
    """A saved size or count NeMo could have written: a whole number 0..int64 (a bool or a float is not one)."""
    return v if isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= INT64_MAX else None


def _str(v: Any) -> str | None:
    return v if isinstance(v, str) else None


@dataclass(frozen=True)
class RunLayout:
    """One checkpoint's run as a resume restores it; each field None when the checkpoint does not record it."""

    tp: int | None = None
    pp: int | None = None
    cp: int | None = None
    ep: int | None = None
    vpp: int | None = None
    devices: int | None = None  # per node
    num_nodes: int | None = None
    global_batch_size: int | None = None
    global_batch_size_source: str | None = None  # GBS_FROM_IO_JSON or GBS_DERIVED
    micro_batch_size: int | None = None
    seq_length: int | None = None
    consumed_samples: int | None = None
    global_step: int | None = None
    datamodule: str | None = None  # the class whose state holds the data position (common.pt's key)
    max_steps: int | None = None  # trainer.max_steps: with the global batch, the size of NeMo's pre-training dataset
    num_train_samples: int | None = None  # PreTrainingDataModule(num_train_samples=...): a larger size, when given
    optimizer: str | None = None  # OptimizerConfig.optimizer: "adam", "sgd"
    distributed_optimizer: bool | None = None
    optimizer_format: str | None = None  # what a load requests: content_metadata's, else the saved one
    saved_optimizer_format: str | None = None  # optimizer[0].param_state_sharding_type
    content_metadata: bool | None = None  # common.pt has megatron-core's content_metadata
    has_optimizer_state: bool | None = None
    lightning_version: str | None = None
    group_keys: tuple[tuple[float, float], ...] = ()  # each param group's (lr_mult, wd_mult), sorted, once each
    lr_mult: float | None = None  # MegatronOptimizerModule(lr_mult=...) as serialized
    scale_lr_cond: str | None = None  # the class of its scale_lr_cond
    lr_mult_patterns: tuple[str, ...] = ()  # nemo_resume's ParamNameMatch(patterns)
    lr_mult_rules: tuple[str, ...] = ()  # nemo_resume's LrMultOptimizerModule(lr_mults=["PATTERN=MULT", ...])
    layer_lr_decay: float | None = None  # LrMultOptimizerModule(layer_lr_decay=...)
    peft: str | None = None  # "lora", "dora": the model_transform's class
    peft_base: str | None = None  # adapter_metadata.json's model_ckpt_path
    precision: str | None = None

    @property
    def dp(self) -> int | None:
        """Data-parallel size: devices x nodes / (TP x PP x CP), when every one is recorded and it divides."""
        devices, nodes, tp, pp, cp = self.devices, self.num_nodes, self.tp, self.pp, self.cp
        if not (devices and nodes and tp and pp and cp):  # not recorded (or 0)
            return None
        world, model = devices * nodes, tp * pp * cp
        return world // model if world % model == 0 else None

    @property
    def lr_mults(self) -> frozenset[float]:
        """The ``lr_mult`` values the param groups carry (1.0 and the multipliers ``--lr-mult``/``--layer-lr-decay`` gave)."""
        return frozenset(lr for lr, _ in self.group_keys)

    def to_json(self) -> dict[str, Any]:
        return {
            "tp": self.tp, "pp": self.pp, "cp": self.cp, "ep": self.ep, "vpp": self.vpp, "dp": self.dp,
            "devices": self.devices, "num_nodes": self.num_nodes,
            "global_batch_size": self.global_batch_size, "global_batch_size_source": self.global_batch_size_source,
            "micro_batch_size": self.micro_batch_size, "seq_length": self.seq_length,
            "consumed_samples": self.consumed_samples, "global_step": self.global_step,
            "datamodule": self.datamodule, "max_steps": self.max_steps, "num_train_samples": self.num_train_samples,
            "optimizer": self.optimizer, "distributed_optimizer": self.distributed_optimizer,
            "optimizer_format": self.optimizer_format, "saved_optimizer_format": self.saved_optimizer_format,
            "content_metadata": self.content_metadata, "has_optimizer_state": self.has_optimizer_state,
            "lightning_version": self.lightning_version,
            "group_keys": [{"lr_mult": lr, "wd_mult": wd} for lr, wd in self.group_keys],
            "lr_mult": self.lr_mult, "scale_lr_cond": self.scale_lr_cond, "lr_mult_patterns": list(self.lr_mult_patterns),
            "lr_mult_rules": list(self.lr_mult_rules), "layer_lr_decay": self.layer_lr_decay,
            "peft": self.peft, "peft_base": self.peft_base, "precision": self.precision,
        }


def _group_keys(groups: tuple[tuple[tuple[str, float], ...], ...]) -> tuple[tuple[float, float], ...]:
    """megatron-core's key of each group (``lr_mult`` or NeMo's ``pre_lr_mult``, the same for ``wd_mult``)."""
    keys = set()
    for mults in groups:
        m = dict(mults)
        lr, wd = m.get("lr_mult", m.get("pre_lr_mult")), m.get("wd_mult", m.get("pre_wd_mult"))
        if lr is not None and wd is not None:
            keys.add((lr, wd))
    return tuple(sorted(keys))


def _data_position(trainer: dict[str, Any]) -> tuple[int | None, int | None, str | None]:
    """(consumed samples, global step, the datamodule's class name) of the datamodule's state (Lightning keys it by
    the class name; NeMo's data modules store ``consumed_samples``, the rehearsal's MockDataModule its
    ``global_step`` too)."""
    step = _count(trainer.get(GLOBAL_STEP_KEY))
    for key, value in trainer.items():
        if isinstance(key, str) and isinstance(value, dict) and CONSUMED_SAMPLES_KEY in value:
            own = _count(value.get(GLOBAL_STEP_KEY))
            return _count(value.get(CONSUMED_SAMPLES_KEY)), own if own is not None else step, key
    return None, step, None


def _optimizer_formats(trainer: dict[str, Any]) -> tuple[str | None, str | None, bool]:
    """(requested on load, saved, content_metadata present): ``MegatronStrategy.load_checkpoint`` builds the
    optimizer's sharded state dict from the checkpoint's ``content_metadata``; without it megatron-core requests
    ``fully_sharded_model_space`` (``distrib_optimizer.py:1208``)."""
    meta = trainer.get("content_metadata")
    optim = trainer.get(OPTIMIZER_KEY)
    first = optim[0] if isinstance(optim, list) and optim and isinstance(optim[0], dict) else {}
    saved = _str(first.get("param_state_sharding_type"))
    if isinstance(meta, dict):
        return _str(meta.get("distrib_optim_sharding_type")) or saved, saved, True
    return saved, saved, False


def _precision(leaves: dict[str, Any]) -> str | None:
    """The trainer's precision plugin (``MegatronMixedPrecision(precision="bf16-mixed")``), else the optimizer's dtype."""
    plugin = find_leaf(leaves, (".trainer.plugins.precision", ".trainer.precision"), (str, int))
    if plugin is not None:
        return str(plugin)
    bf16, fp16 = (find_leaf(leaves, (_OPTIM + k, _MODEL + k), bool) for k in ("bf16", "fp16"))
    if bf16 is None and fp16 is None:
        return None
    return "bf16" if bf16 else "fp16" if fp16 else "fp32"


def _strings(leaves: dict[str, Any], suffix: str) -> tuple[str, ...]:
    """A saved list of strings (paths ending ``SUFFIX[0]``, ``SUFFIX[1]``, ...) in its own order, at most
    :data:`_MAX_PATTERNS`."""
    item = re.compile(re.escape(suffix) + r"\[(\d{1,9})\]$")
    found = sorted((int(m.group(1)), v) for p, v in leaves.items() if (m := item.search(p)) and isinstance(v, str))
    return tuple(v for _, v in found[:_MAX_PATTERNS])


def read_run_layout(
    context: SavedContext | None,
    trainer: dict[str, Any] | None,
    group_mults: tuple[tuple[tuple[str, float], ...], ...],
    has_optimizer_state: bool | None,
    adapter_metadata: Any = None,
) -> RunLayout:
    """The :class:`RunLayout` of one checkpoint.

    Args:
        context: ``context/io.json`` read once (None: not there or unreadable).
        trainer: the ``weights/common.pt`` (or ``.ckpt``) dict (None: unreadable).
        group_mults: each param group's multipliers (``ParamGroupLR.mults``).
        has_optimizer_state: as the state reader decided it.
        adapter_metadata: ``weights/adapter_metadata.json`` parsed (NeMo's PEFT callback writes it).
    """
    leaves = context.leaves if context else {}
    classes = context.classes if context else {}
    trainer = trainer or {}

    def size(name: str, *where: str) -> int | None:
        return _count(find_leaf(leaves, tuple(w + name for w in where), int))

    consumed, step, datamodule = _data_position(trainer)
    gbs, source = size("global_batch_size", _DATA), GBS_FROM_IO_JSON
    if gbs is None and consumed and step and consumed % step == 0:
        gbs, source = consumed // step, GBS_DERIVED
    requested, saved, has_meta = _optimizer_formats(trainer)
    peft_class = find_leaf(classes, (_PEFT,), str)
    base = adapter_metadata.get("model_ckpt_path") if isinstance(adapter_metadata, dict) else None
    lr_mult = find_leaf(leaves, (".model.optim.lr_mult",), (int, float))
    decay = find_leaf(leaves, (".model.optim.layer_lr_decay",), (int, float))
    return RunLayout(
        tp=size("tensor_model_parallel_size", _STRATEGY, _MODEL),
        pp=size("pipeline_model_parallel_size", _STRATEGY, _MODEL),
        cp=size("context_parallel_size", _STRATEGY, _MODEL),
        ep=size("expert_model_parallel_size", _STRATEGY, _MODEL),
        vpp=size("virtual_pipeline_model_parallel_size", _STRATEGY, _MODEL),
        devices=size("devices", ".trainer."),
        num_nodes=size("num_nodes", ".trainer."),
        global_batch_size=gbs,
        global_batch_size_source=source if gbs is not None else None,
        micro_batch_size=size("micro_batch_size", _DATA),
        seq_length=size("seq_length", _DATA, _MODEL),
        consumed_samples=consumed,
        global_step=step,
        datamodule=datamodule,
        max_steps=size("max_steps", ".trainer."),
        num_train_samples=size("num_train_samples", _DATA),
        optimizer=_str(find_leaf(leaves, (_OPTIM + "optimizer",), str)),
        distributed_optimizer=find_leaf(leaves, (_OPTIM + "use_distributed_optimizer",), bool),
        optimizer_format=requested,
        saved_optimizer_format=saved,
        content_metadata=has_meta if trainer else None,
        has_optimizer_state=has_optimizer_state,
        lightning_version=_str(trainer.get("pytorch-lightning_version")),
        group_keys=_group_keys(group_mults),
        lr_mult=float(lr_mult) if lr_mult is not None else None,
        scale_lr_cond=find_leaf(classes, (_LR_COND,), str),
        lr_mult_patterns=_strings(leaves, _LR_COND + ".patterns"),
        lr_mult_rules=_strings(leaves, ".model.optim.lr_mults"),
        layer_lr_decay=float(decay) if decay is not None else None,
        peft=peft_class.rsplit(".", 1)[-1].lower() if peft_class else None,
        peft_base=_str(base),
        precision=_precision(leaves),
    )
