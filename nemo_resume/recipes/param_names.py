"""The trainable parameter names a NeMo Qwen2.5 recipe run hands ``scale_lr_cond``, so ``--lr-mult`` can be judged.

megatron-core's ``_get_param_groups`` calls ``scale_lr_cond(name, param)`` for every parameter with
``requires_grad``, ``name`` as the model chunk NeMo 2.7.3 hands it names it: megatron's DDP
(``module.``) around the ``Float16Module`` that the recipes' ``bf16-mixed`` plugin wraps the model in
(``module.``), so ``module.module.decoder.layers.3.mlp.linear_fc2.weight``. A glob matching none of
them changes nothing, silently (``*lora*``: NeMo's adapters are ``...linear_qkv.adapter.linear_in.weight``).

Where a name depends on something this module does not see, it keeps every form, so a pattern is
only refused when no run of that ``--size``/``--peft`` could have it: the GPU runs use the Transformer
Engine layer spec, whose layer norms are fused into ``linear_qkv``/``linear_fc1``
(``layer_norm_weight``), the local spec has ``input_layernorm``/``pre_mlp_layernorm``; layer indices
run over every layer (with pipeline stages each stage numbers its own from 0). Sources:
``nemo/collections/llm/gpt/model/qwen2.py`` (layers, tied embeddings), ``nemo/collections/llm/peft/lora.py``
and ``dora.py`` (default targets, ``ParallelLinearAdapter``'s ``linear_in``/``linear_out``, DoRA's
``weight_magnitude``), ``nemo/lightning/pytorch/callbacks/peft.py`` (``AdapterWrapper.adapter``; ``PEFT``
freezes the whole model first); ``tests/recipes/test_param_names.py`` holds the table to NeMo's classes.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import TYPE_CHECKING

from nemo_resume.errors import NemoResumeError
from nemo_resume.recipes.hf_model import ARCHITECTURES
from nemo_resume.schedules.lr_mult import DECAY_FLAG, FLAG, LrMultPlan, ParamPlace

if TYPE_CHECKING:  # hf_model reads the size table here
    from nemo_resume.recipes.hf_model import HfModel

PREFIX = "module.module."  # megatron DDP around Float16Module (bf16-mixed), as _get_param_groups sees them

# --size -> num_layers of the Qwen25Config* the recipe builds (hf_model.ARCHITECTURES, the one size table).
NUM_LAYERS: dict[str, int] = {size: arch.num_layers for size, arch in ARCHITECTURES.items()}
# share_embeddings_and_output_weights: the output layer has no weight of its own where one stage holds both.
TIED_EMBEDDINGS = frozenset(size for size, arch in ARCHITECTURES.items() if arch.tied)

# LoRA()/DoRA() default target_modules, and the parameters each wrapped linear gains (the base is frozen).
PEFT_TARGETS = ("linear_qkv", "linear_proj", "linear_fc1", "linear_fc2")
ADAPTER_PARAMS: dict[str, tuple[str, ...]] = {
    "lora": ("adapter.linear_in.weight", "adapter.linear_out.weight"),
    "dora": ("adapter.linear_in.weight", "adapter.linear_out.weight", "adapter.weight_magnitude"),
}
_TARGET_PATHS = {"linear_qkv": "self_attention.linear_qkv", "linear_proj": "self_attention.linear_proj",
                 "linear_fc1": "mlp.linear_fc1", "linear_fc2": "mlp.linear_fc2"}

# One transformer layer's parameters (Qwen2: RMSNorm, QKV bias, no other bias), both layer specs.
LAYER_PARAMS = (
    "input_layernorm.weight",  # local spec
    "self_attention.linear_qkv.layer_norm_weight",  # Transformer Engine spec
    "self_attention.linear_qkv.weight",
    "self_attention.linear_qkv.bias",
    "self_attention.linear_proj.weight",
    "pre_mlp_layernorm.weight",  # local spec
    "mlp.linear_fc1.layer_norm_weight",  # Transformer Engine spec
    "mlp.linear_fc1.weight",
    "mlp.linear_fc2.weight",
)
# What each --peft trains, as a pattern to suggest and the word for it.
_SUGGEST = {"lora": ("*adapter*", "LoRA adapters"), "dora": ("*adapter*", "DoRA adapters"),
            "none": ("*linear_fc2*", "model's weights")}


def trainable_places(size: str, peft: str, pp: int = 1, model: HfModel | None = None) -> tuple[ParamPlace, ...]:
    """Every parameter ``_get_param_groups`` sees in a run of ``size`` (or of ``--model``'s architecture) with ``peft``
    (``none``: all weights): its name as its pipeline stage has it (layers numbered from 0 in each stage), its global
    layer number, its embedding flag. NeMo's importer writes ``--model`` untied, with an output layer of its own."""
    num_layers = model.num_layers if model is not None else NUM_LAYERS[size]
    tied = model is None and size in TIED_EMBEDDINGS
    per_stage = num_layers // pp if pp > 1 and num_layers % pp == 0 else num_layers
    places: list[ParamPlace] = []
    if peft == "none":
        places += [ParamPlace(f"{PREFIX}embedding.word_embeddings.weight", embedding=True),
                   ParamPlace(f"{PREFIX}decoder.final_layernorm.weight")]
        if not tied or pp > 1:  # with stages, the last one holds its own (tied) copy
            places.append(ParamPlace(f"{PREFIX}output_layer.weight", embedding=tied))
    params = LAYER_PARAMS if peft == "none" else tuple(f"{_TARGET_PATHS[t]}.{p}" for t in PEFT_TARGETS
                                                        for p in ADAPTER_PARAMS[peft])
    for layer in range(1, num_layers + 1):
        local = (layer - 1) % per_stage
        places += [ParamPlace(f"{PREFIX}decoder.layers.{local}.{p}", layer) for p in params]
    return tuple(places)


def trainable_names(size: str, peft: str, pp: int = 1, model: HfModel | None = None) -> tuple[str, ...]:
    """Every name ``scale_lr_cond`` may be called with in a run of ``size`` with ``peft``, once each."""
    return tuple(dict.fromkeys(p.name for p in trainable_places(size, peft, pp, model)))


def group_mults(plan: LrMultPlan, size: str, peft: str, pp: int = 1, model: HfModel | None = None) -> tuple[float, ...]:
    """The multipliers other than 1.0 the run's param groups get (the schedule request's ``lr_mults``)."""
    return plan.mults(trainable_places(size, peft, pp, model), model.num_layers if model else NUM_LAYERS[size])


def check_lr_mult_patterns(plan: LrMultPlan, task: str, size: str, peft: str, pp: int,
                           model: HfModel | None = None) -> None:
    """Refuse a ``--lr-mult`` rule that would scale nothing: no trainable parameter of this run matches it, or every
    one it matches is taken by an earlier rule (the first a name matches wins); and a ``--layer-lr-decay`` that the
    rules leave no parameter to.

    Raises:
        NemoResumeError: naming the pattern, a real name and a pattern that matches (or the rule that shadows it).
    """
    names = trainable_names(size, peft, pp, model)
    run = f"--size {size} --peft {peft}" if task == "finetune" else f"--size {size} pre-training"
    for k, rule in enumerate(plan.rules):
        matched = [n for n in names if fnmatchcase(n, rule.pattern)]
        if matched:
            earlier = plan.rules[:k]
            if all(any(fnmatchcase(n, e.pattern) for e in earlier) for n in matched):
                first = next(e for e in earlier if fnmatchcase(matched[0], e.pattern))
                raise NemoResumeError(
                    f"{FLAG} '{rule.spec}': every parameter it matches ({matched[0]}, ...) is matched by the earlier "
                    f"{FLAG} '{first.spec}', and the first rule a name matches wins; put the narrower pattern first"
                )
            continue
        suggest, what = _SUGGEST[peft]
        anchored = "*" + rule.pattern.lstrip("*")  # e.g. module.decoder.* written without megatron's wrappers
        if any(fnmatchcase(n, anchored) for n in names):
            suggest = anchored
        example = next(n for n in names if fnmatchcase(n, suggest))
        raise NemoResumeError(
            f"{FLAG} '{rule.spec}': matches no parameter a {run} run trains, so it would change nothing (the "
            f"{what} are named like {example}); use e.g. {FLAG} '{suggest}={rule.mult:g}'"
        )
    if plan.layer_decay is not None and all(any(fnmatchcase(n, r.pattern) for r in plan.rules) for n in names):
        raise NemoResumeError(f"{DECAY_FLAG} {plan.layer_decay:g}: every parameter a {run} run trains is matched by an "
                              f"{FLAG} rule, which wins over the decay, so it would change nothing; narrow the rules")
