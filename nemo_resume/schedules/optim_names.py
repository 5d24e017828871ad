"""Hugging Face optimizer names (``--optim NAME``) mapped to what NeMo 2.7.3's Megatron path runs, or refused.

Every value of ``transformers.training_args.OptimizerNames`` (transformers 4.57) is here, once: either
mapped to megatron-core 0.15.3's ``OptimizerConfig`` (``optimizer`` is ``adam`` or ``sgd``, nothing else:
``megatron/core/optimizer/__init__.py:352-414``) with the differences said, or refused with the reason and
the nearest name that runs. docs/optimizers.md has the table and the resume behaviour of each;
tests/schedules/test_optim_names.py holds the table to the real enum. Torch-free: the check and the
planner import it; the recipes apply :attr:`OptimName.config_fields` to NeMo-Run's ``OptimizerConfig``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nemo_resume.errors import NemoResumeError

FLAG = "--optim"
DOC = "docs/optimizers.md"

# What megatron-core's Adam runs for every adam-mapped name (docs/optimizers.md, "Differences").
ADAM_DIFFERENCES: tuple[str, ...] = (
    "megatron-core runs Transformer Engine's FusedAdam (adam_w_mode), Apex's FusedAdam without TE, torch.optim.AdamW "
    "only when neither is installed (the CPU rehearsal): the AdamW update, to float rounding; no foreach/fused switch",
    "betas, eps and weight decay are the recipe's --adam-beta1/--adam-beta2/--adam-eps/--weight-decay (NeMo's 0.9, "
    "0.95 pretrain / 0.98 finetune, 1e-5, 0.1), not TrainingArguments' (0.9, 0.999, 1e-8, 0.0): pass those to match",
    "no --optim_args: no amsgrad, maximize, capturable; weight decay skips biases and every 1-D parameter (norms), "
    "as HF's bias/norm name patterns do",
    "the recipe's distributed optimizer shards exp_avg, exp_avg_sq and the fp32 main params over data-parallel ranks",
)
SGD_DIFFERENCES: tuple[str, ...] = (
    "megatron-core runs TE's or Apex's FusedSGD, torch.optim.SGD without them; momentum 0 and coupled (L2) weight "
    "decay as HF's torch.optim.SGD with its defaults (megatron-core's own sgd_momentum default, 0.9, is not used)",
    "the distributed optimizer is turned off: megatron-core's DistributedOptimizer takes Adam only "
    "(distrib_optimizer.py:511-516), so the fp32 main params are replicated on every data-parallel rank",
)


@dataclass(frozen=True)
class OptimName:
    """One Hugging Face optimizer name: what it runs as on the Megatron path, or why it is refused.

    ``optimizer`` is megatron-core's (``adam``/``sgd``), None when refused; ``refused`` is the reason and
    ``nearest`` the supported name to use instead.
    """

    name: str
    optimizer: str | None = None
    extra: tuple[str, ...] = ()
    refused: str | None = None
    nearest: str | None = None

    @property
    def config_fields(self) -> dict[str, Any]:
        """The ``OptimizerConfig`` fields this name sets (empty when refused)."""
        if self.optimizer == "adam":
            return {"optimizer": "adam", "decoupled_weight_decay": True}
        if self.optimizer == "sgd":
            return {"optimizer": "sgd", "sgd_momentum": 0.0, "use_distributed_optimizer": False}
        return {}

    @property
    def differences(self) -> tuple[str, ...]:
        """What is not the same as Hugging Face's optimizer of this name."""
        shared = ADAM_DIFFERENCES if self.optimizer == "adam" else SGD_DIFFERENCES if self.optimizer == "sgd" else ()
        return (*self.extra, *shared)

    @property
    def note(self) -> str:
        """The one line a recipe prints: what the name runs as, and where the differences are said."""
        fields = ", ".join(f"{k}={v!r}" for k, v in self.config_fields.items())
        return f"{FLAG} {self.name}: megatron-core OptimizerConfig({fields}); what differs from HF's: {DOC}"


def _adam(name: str, *extra: str) -> OptimName:
    return OptimName(name, "adam", extra)


def _no(name: str, reason: str, nearest: str = "adamw_torch") -> OptimName:
    return OptimName(name, refused=reason, nearest=nearest)


_LOW_BITS = ("megatron-core's only low-precision states are its precision-aware optimizer (TE FusedAdam, "
             "bf16/fp16/fp8 states, no block-wise 8-bit or 4-bit)")
_BNB_8BIT = "bitsandbytes keeps the states block-wise quantized to 8 bits; " + _LOW_BITS
_NO_CLASS = "megatron-core 0.15.3 builds only Adam and SGD (optimizer/__init__.py:352-414); it has no {}"
_LAYERWISE = "HF steps it per layer from backward hooks; megatron-core steps one optimizer over its grad buffers"

# transformers.training_args.OptimizerNames (transformers 4.57), in its order.
OPTIM_NAMES: tuple[OptimName, ...] = (
    _adam("adamw_torch"),
    _adam("adamw_torch_fused", "HF's fused=True torch kernel; megatron-core's FusedAdam is its own fused kernel"),
    _no("adamw_torch_xla", "torch_xla's syncfree AdamW runs on XLA devices (TPU); NeMo's Megatron path runs on CUDA"),
    _no("adamw_torch_npu_fused", "torch_npu's NpuFusedAdamW runs on Ascend NPUs; NeMo's Megatron path runs on CUDA"),
    _adam("adamw_apex_fused", "Apex's FusedAdam is what megatron-core runs when Transformer Engine is absent"),
    _no("adafactor", _NO_CLASS.format("Adafactor (factored second moment, relative step)")),
    _no("adamw_anyprecision", "torchdistx's AnyPrecisionAdamW updates the weights in place in their dtype, with Kahan "
        "summation and state dtypes from --optim_args; megatron-core keeps fp32 main params"),
    _no("adamw_torch_4bit", "torchao keeps the states quantized to 4 bits; " + _LOW_BITS),
    _no("adamw_torch_8bit", "torchao keeps the states quantized to 8 bits; " + _LOW_BITS),
    _no("ademamix", _NO_CLASS.format("AdEMAMix (a second, slow momentum)")),
    OptimName("sgd", "sgd"),
    _no("adagrad", _NO_CLASS.format("Adagrad"), "sgd"),
    _no("adamw_bnb_8bit", _BNB_8BIT),
    _no("adamw_8bit", _BNB_8BIT),
    _no("ademamix_8bit", _NO_CLASS.format("AdEMAMix") + "; " + _BNB_8BIT),
    _no("lion_8bit", _NO_CLASS.format("Lion") + "; " + _BNB_8BIT),
    _no("lion_32bit", _NO_CLASS.format("Lion (sign update, one momentum)")),
    _adam("paged_adamw_32bit", "no paging: bitsandbytes pages its fp32 states to CPU under memory pressure; here "
          "they stay in GPU memory (sharded by the distributed optimizer)"),
    _no("paged_adamw_8bit", _BNB_8BIT),
    _no("paged_ademamix_32bit", _NO_CLASS.format("AdEMAMix")),
    _no("paged_ademamix_8bit", _NO_CLASS.format("AdEMAMix") + "; " + _BNB_8BIT),
    _no("paged_lion_32bit", _NO_CLASS.format("Lion")),
    _no("paged_lion_8bit", _NO_CLASS.format("Lion") + "; " + _BNB_8BIT),
    _no("rmsprop", _NO_CLASS.format("RMSprop"), "sgd"),
    _no("rmsprop_bnb", _NO_CLASS.format("RMSprop"), "sgd"),
    _no("rmsprop_bnb_8bit", _NO_CLASS.format("RMSprop") + "; " + _BNB_8BIT, "sgd"),
    _no("rmsprop_bnb_32bit", _NO_CLASS.format("RMSprop"), "sgd"),
    _no("galore_adamw", _NO_CLASS.format("GaLore (gradients projected to low rank)")),
    _no("galore_adamw_8bit", _NO_CLASS.format("GaLore") + "; " + _BNB_8BIT),
    _no("galore_adafactor", _NO_CLASS.format("GaLore or Adafactor")),
    _no("galore_adamw_layerwise", _NO_CLASS.format("GaLore") + "; " + _LAYERWISE),
    _no("galore_adamw_8bit_layerwise", _NO_CLASS.format("GaLore") + "; " + _LAYERWISE),
    _no("galore_adafactor_layerwise", _NO_CLASS.format("GaLore or Adafactor") + "; " + _LAYERWISE),
    _no("lomo", "LOMO updates each weight inside backward and keeps no optimizer; megatron-core reduces "
        "gradients into buffers first, and NeMo's MegatronOptimizerModule needs a megatron optimizer"),
    _no("adalomo", "AdaLOMO updates each weight inside backward; megatron-core reduces gradients into buffers "
        "first, and NeMo's MegatronOptimizerModule needs a megatron optimizer"),
    _no("grokadamw", _NO_CLASS.format("GrokAdamW (gradient filtering)")),
    _no("schedule_free_radam", _NO_CLASS.format("schedule-free optimizer") + ", and a schedule-free optimizer "
        "replaces the LR schedule NeMo's scheduler drives"),
    _no("schedule_free_adamw", _NO_CLASS.format("schedule-free optimizer") + ", and a schedule-free optimizer "
        "replaces the LR schedule NeMo's scheduler drives"),
    _no("schedule_free_sgd", _NO_CLASS.format("schedule-free optimizer") + ", and a schedule-free optimizer "
        "replaces the LR schedule NeMo's scheduler drives", "sgd"),
    _no("apollo_adamw", _NO_CLASS.format("APOLLO (low-rank scaled updates)")),
    _no("apollo_adamw_layerwise", _NO_CLASS.format("APOLLO") + "; " + _LAYERWISE),
    _no("stable_adamw", _NO_CLASS.format("StableAdamW (per-tensor update clipping, torch-optimi)")),
)
BY_NAME: dict[str, OptimName] = {o.name: o for o in OPTIM_NAMES}


def optim_name(text: str) -> OptimName:
    """The argparse type of ``--optim``: the mapping for a Hugging Face name, or a one-line refusal.

    Raises:
        NemoResumeError: the name is unknown or has no faithful megatron-core optimizer; the message names
            the nearest supported name (raised through argparse as bad input: one line, exit 2).
    """
    found = BY_NAME.get(text)
    if found is None:
        supported = ", ".join(o.name for o in OPTIM_NAMES if o.refused is None)
        raise NemoResumeError(f"{FLAG} {text}: not a Hugging Face optimizer name; choose one of {supported} ({DOC})")
    if found.refused is not None:
        raise NemoResumeError(f"{FLAG} {text}: {found.refused}; use {FLAG} {found.nearest} ({DOC})")
    return found
