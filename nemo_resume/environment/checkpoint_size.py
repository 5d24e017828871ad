"""How many bytes one checkpoint of a run takes, and how many the recipe keeps: the disk a run needs.

The formula (docs/doctor.md), for megatron-core's torch_dist checkpoints as NeMo 2.7.3 writes them:

    one checkpoint = saved parameters x (weight bytes + optimizer bytes)
    needed         = one checkpoint x (kept + the -last copy + one being written before an older one goes)

- saved parameters: the model's (:meth:`ModelShape.parameter_count`); with LoRA/DoRA only the adapters'
  (NeMo's ``WrappedAdapterIO`` saves the adapter state only);
- weight bytes: the parameter dtype (2 for the recipes' bf16-mixed, 4 for fp32);
- optimizer bytes: Adam's two moments in fp32 (8) plus the fp32 master copy (4), which the distributed
  optimizer always saves and a mixed-precision run keeps besides its bf16 weights;
- kept: every interval checkpoint (``save_top_k=-1``, as ``--save-from-step`` sets) or the newest
  ``save_top_k`` of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nemo_resume.errors import NemoResumeError

#: Adam's ``exp_avg`` and ``exp_avg_sq``, fp32 (megatron-core keeps them in fp32 whatever the weights).
ADAM_MOMENT_BYTES = 8
FP32_MASTER_BYTES = 4
#: The four linears of a Megatron GPT layer: NeMo's LoRA/DoRA ``target_modules`` names.
LINEARS = ("linear_qkv", "linear_proj", "linear_fc1", "linear_fc2")


@dataclass(frozen=True)
class ModelShape:
    """The fields of a Megatron GPT config that decide its parameter count (Qwen2's: GQA, QKV bias, RMSNorm,
    SwiGLU, RoPE, tied or untied embeddings)."""

    name: str
    num_layers: int
    hidden_size: int
    ffn_hidden_size: int
    num_attention_heads: int
    num_query_groups: int
    kv_channels: int
    vocab_size: int
    gated_linear_unit: bool
    add_qkv_bias: bool
    add_bias_linear: bool
    norm_params: int  # per normalised feature: 1 for RMSNorm, 2 for LayerNorm (weight and bias)
    qk_layernorm: bool
    tied_embeddings: bool

    @classmethod
    def from_config(cls, config: Any) -> ModelShape:
        """Read a built NeMo ``GPTConfig`` (``Qwen25Config500M()`` and kin).

        Raises:
            NemoResumeError: a config this count does not cover (MoE, learned positions, no preset vocabulary).
        """
        name = type(config).__name__
        if getattr(config, "num_moe_experts", None) or config.position_embedding_type not in ("rope", "none"):
            raise NemoResumeError(f"{name}: the checkpoint estimate covers dense RoPE GPT models only")
        if config.vocab_size is None:
            raise NemoResumeError(f"{name}: no vocab_size in the config; the estimate needs the model's vocabulary")
        heads = config.num_attention_heads
        return cls(
            name=name, num_layers=config.num_layers, hidden_size=config.hidden_size,
            ffn_hidden_size=config.ffn_hidden_size, num_attention_heads=heads,
            num_query_groups=config.num_query_groups or heads,
            kv_channels=config.kv_channels or config.hidden_size // heads,
            vocab_size=config.vocab_size,  # a preset vocab_size is used as is (GPTConfig.configure_model)
            gated_linear_unit=bool(config.gated_linear_unit), add_qkv_bias=bool(config.add_qkv_bias),
            add_bias_linear=bool(config.add_bias_linear),
            norm_params={"RMSNorm": 1, "LayerNorm": 2}[config.normalization],
            qk_layernorm=bool(config.qk_layernorm),
            tied_embeddings=bool(config.share_embeddings_and_output_weights),
        )

    def linears(self) -> dict[str, tuple[int, int]]:
        """(in, out) features of each linear of one layer."""
        h, kv = self.hidden_size, self.kv_channels
        qkv = (self.num_attention_heads + 2 * self.num_query_groups) * kv
        fc1 = self.ffn_hidden_size * (2 if self.gated_linear_unit else 1)
        return {"linear_qkv": (h, qkv), "linear_proj": (self.num_attention_heads * kv, h),
                "linear_fc1": (h, fc1), "linear_fc2": (self.ffn_hidden_size, h)}

    def parameter_count(self) -> int:
        """Every parameter megatron-core's GPTModel builds for this config."""
        shapes = self.linears()
        weights = sum(i * o for i, o in shapes.values())
        biases = shapes["linear_qkv"][1] if self.add_qkv_bias else 0
        if self.add_bias_linear:
            biases += sum(o for name, (_, o) in shapes.items() if name != "linear_qkv" or not self.add_qkv_bias)
        norms = 2 * self.hidden_size * self.norm_params  # before attention and before the MLP
        if self.qk_layernorm:
            norms += 2 * self.kv_channels * self.norm_params
        layer = weights + biases + norms
        embedding = self.vocab_size * self.hidden_size
        output = 0 if self.tied_embeddings else embedding
        return self.num_layers * layer + embedding + output + self.hidden_size * self.norm_params


@dataclass(frozen=True)
class Adapters:
    """LoRA or DoRA as the recipe configures it: rank ``dim`` on the ``targets`` of every layer."""

    kind: str  # "LoRA" or "DoRA"
    dim: int
    targets: tuple[str, ...]

    def parameter_count(self, shape: ModelShape) -> int:
        """``dim x (in + out)`` per adapted linear, plus DoRA's magnitude vector (``out``).

        Raises:
            NemoResumeError: a target that is not one of the four linear names (a wildcard, a module path).
        """
        unknown = [t for t in self.targets if t not in LINEARS]
        if unknown:
            raise NemoResumeError(f"{self.kind} target_modules {unknown}: the checkpoint estimate knows "
                                  f"{', '.join(LINEARS)} only")
        shapes = shape.linears()
        per_layer = sum(self.dim * (shapes[t][0] + shapes[t][1]) + (shapes[t][1] if self.kind == "DoRA" else 0)
                        for t in self.targets)
        return shape.num_layers * per_layer


@dataclass(frozen=True)
class CheckpointEstimate:
    """One checkpoint's size and the copies of it the run keeps on disk at once."""

    shape: ModelShape
    adapters: Adapters | None
    weight_bytes: int  # per saved parameter
    optimizer_bytes: int  # per saved parameter
    interval_saves: int  # interval checkpoints the run writes
    save_top_k: int  # -1: all kept
    save_last: bool

    @property
    def saved_params(self) -> int:
        return self.adapters.parameter_count(self.shape) if self.adapters else self.shape.parameter_count()

    @property
    def checkpoint_bytes(self) -> int:
        return self.saved_params * (self.weight_bytes + self.optimizer_bytes)

    @property
    def kept(self) -> int:
        """Interval checkpoints on disk at the end of the run."""
        return self.interval_saves if self.save_top_k < 0 else min(self.save_top_k, self.interval_saves)

    @property
    def copies(self) -> int:
        """Checkpoints on disk at the fullest moment: the kept ones, the -last copy, and a new one written
        before an older one is deleted (Lightning saves first, then removes)."""
        replaces = self.save_last or 0 <= self.save_top_k < self.interval_saves
        return self.kept + int(self.save_last) + int(replaces)

    @property
    def needed_bytes(self) -> int:
        return self.copies * self.checkpoint_bytes

    def to_json(self) -> dict[str, object]:
        return {"model_config": self.shape.name, "parameters": self.shape.parameter_count(),
                "adapters": None if self.adapters is None else {"kind": self.adapters.kind, "dim": self.adapters.dim,
                                                                "targets": list(self.adapters.targets)},
                "saved_parameters": self.saved_params, "weight_bytes": self.weight_bytes,
                "optimizer_bytes": self.optimizer_bytes, "checkpoint_bytes": self.checkpoint_bytes,
                "interval_saves": self.interval_saves, "save_top_k": self.save_top_k, "save_last": self.save_last,
                "kept": self.kept, "copies_at_peak": self.copies, "needed_bytes": self.needed_bytes}


def optimizer_bytes(optimizer: str, weight_bytes: int, distributed: bool) -> int:
    """Bytes of optimizer state saved per trainable parameter (see the module docstring).

    Raises:
        NemoResumeError: an optimizer other than Adam (the recipes' only one).
    """
    if optimizer != "adam":
        raise NemoResumeError(f"optimizer {optimizer!r}: the checkpoint estimate knows megatron-core's adam only")
    master = distributed or weight_bytes < FP32_MASTER_BYTES
    return ADAM_MOMENT_BYTES + (FP32_MASTER_BYTES if master else 0)
