"""Several LR multipliers on NeMo's Megatron path: a ``MegatronOptimizerModule`` whose param groups follow an
:class:`~nemo_resume.schedules.lr_mult.LrMultPlan` (``--lr-mult PATTERN=MULT`` with different MULTs,
``--layer-lr-decay FACTOR``).

megatron-core 0.15.3 builds the groups inside ``get_megatron_optimizer``, in ``_get_param_groups``
(``megatron/core/optimizer/__init__.py:55-170``), from one ``scale_lr_cond`` returning a bool and one ``lr_mult``;
``get_megatron_optimizer`` has no hook for custom groups. So, for the one call NeMo's ``setup_megatron_optimizer``
makes, this module puts a wrapper in place of that function (looked up by name in
``_get_param_groups_and_buffers``), and restores it after:

- megatron-core's own ``_get_param_groups`` runs first without a condition: weight decay, expert and decoupled-LR
  splits, ``max_lr``/``min_lr`` exactly as it makes them;
- each of its groups is split by the plan's multiplier per parameter, into groups keyed as megatron-core keys them,
  ``(wd_mult, lr_mult, is_expert_parallel, is_decoupled_lr)`` (``optimizer.py:95``), so a checkpoint's groups pair
  with the run's on resume (``_filter_and_reorder_param_groups``, ``DistributedOptimizer.load_state_dict``) and a
  changed multiplier fails that pairing as megatron-core's own would;
- the keys are aligned across ranks as megatron-core aligns them (``all_gather_object``; pipeline stages hold
  different layers, so different multipliers), in one order on every rank.

NeMo then multiplies each group's ``lr`` by its ``lr_mult`` (``_strategy_lib.py:726-745``), so the scheduler's
``base_lrs`` are ``lr * mult`` per group and NeMo's scheduler drives each; ``max_lr``/``min_lr`` are megatron-core's
(its own scheduler applies ``lr_mult`` on top, NeMo's does not read them). The module's arguments are plain data
(``PATTERN=MULT`` strings and a float), so NeMo-Run's YAML and ``context/io.json`` hold them as they are.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from nemo.lightning.pytorch.optim import MegatronOptimizerModule

from nemo_resume.errors import NemoResumeError
from nemo_resume.schedules.lr_mult import LrMultPlan, ParamPlace, lr_mult_plan, parse_lr_mult

# The leading parameters of megatron-core 0.15.3's _get_param_groups, which the wrapper relies on.
_SIGNATURE = ("model_chunks", "no_weight_decay_cond", "scale_lr_cond", "lr_mult", "lr", "min_lr", "decoupled_lr",
              "decoupled_min_lr")
_KEY = ("wd_mult", "lr_mult", "is_expert_parallel", "is_decoupled_lr")


class LrMultOptimizerModule(MegatronOptimizerModule):
    """``MegatronOptimizerModule`` with one param group per (multiplier, weight decay) pair of the plan.

    Args:
        config: megatron-core's ``OptimizerConfig``.
        lr_scheduler: NeMo's scheduler module.
        no_weight_decay_cond: as ``MegatronOptimizerModule``'s.
        lr_mults: ``PATTERN=MULT`` rules; the first a parameter's name matches gives its multiplier.
        layer_lr_decay: seed 001's layer-wise decay factor for parameters no rule matches (None: 1.0).
    """

    def __init__(self, config: Any, lr_scheduler: Any = None, no_weight_decay_cond: Callable | None = None,
                 lr_mults: list[str] | None = None, layer_lr_decay: float | None = None) -> None:
        super().__init__(config, lr_scheduler=lr_scheduler, no_weight_decay_cond=no_weight_decay_cond)
        self.lr_mults = list(lr_mults or [])
        self.layer_lr_decay = layer_lr_decay
        # NeMo's IOMixin records the arguments of the first __init__ it wrapped: MegatronOptimizerModule's when that
        # class was built first (its marker is inherited), which would leave these two out of context/io.json.
        args = self.io_transform_args(_INIT, config, lr_scheduler, no_weight_decay_cond, self.lr_mults, layer_lr_decay)
        self.__io__ = self.io_init(**args)

    @property
    def plan(self) -> LrMultPlan:
        return lr_mult_plan([parse_lr_mult(s) for s in self.lr_mults], self.layer_lr_decay) or LrMultPlan()

    def optimizers(self, model: Any) -> list:
        with regrouped(self.plan):
            return super().optimizers(model)


_INIT = LrMultOptimizerModule.__init__  # unwrapped: NeMo wraps it at the first instance


def param_places(chunk: Any) -> dict[int, ParamPlace]:
    """Each parameter of one model chunk (by ``id``) with its name, global layer number and embedding flag."""
    from megatron.core.models.common.embeddings.language_model_embedding import LanguageModelEmbedding
    from megatron.core.transformer.transformer_layer import TransformerLayer

    layer_of: dict[int, int] = {}
    embedding: set[int] = set()
    for module in chunk.modules():
        if isinstance(module, TransformerLayer):
            layer_of.update((id(p), int(module.layer_number)) for p in module.parameters())
        elif isinstance(module, LanguageModelEmbedding):
            embedding.update(id(p) for p in module.parameters())
    return {id(p): ParamPlace(name, layer_of.get(id(p)), id(p) in embedding or bool(getattr(p, "shared_embedding", False)))
            for name, p in chunk.named_parameters()}


def split_groups(groups: list[dict], places: dict[int, ParamPlace], plan: LrMultPlan, num_layers: int) -> dict[tuple, list]:
    """megatron-core's groups (every ``lr_mult`` 1.0) split by the plan's multiplier: group key -> parameters, in order."""
    params_map: dict[tuple, list] = {}
    for group in groups:
        for p in group["params"]:
            key = (group["wd_mult"], plan.mult_for(places[id(p)], num_layers), group["is_expert_parallel"],
                   group["is_decoupled_lr"])
            params_map.setdefault(key, []).append(p)
    return params_map


def aligned_keys(local: list[tuple]) -> list[tuple]:
    """Every rank's group keys, in one order on every rank (rank 0's first): megatron-core needs the same groups on
    all ranks for its distributed checkpoint, even empty ones."""
    import torch.distributed as dist

    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, local)
    return list(dict.fromkeys(tuple(k) for keys in gathered for k in keys))


@contextmanager
def regrouped(plan: LrMultPlan) -> Iterator[None]:
    """megatron-core's ``_get_param_groups`` gives each parameter ``plan``'s multiplier while the block runs."""
    import megatron.core.optimizer as mcore_optimizer
    from megatron.core.utils import get_model_config

    original = mcore_optimizer._get_param_groups
    names = tuple(inspect.signature(original).parameters)[: len(_SIGNATURE)]
    if names != _SIGNATURE:
        raise NemoResumeError(f"megatron-core's _get_param_groups takes {names}, not {_SIGNATURE} as in 0.15.3: "
                              "nemo_resume cannot set several LR multipliers with this version; use one --lr-mult MULT")

    def _get_param_groups(model_chunks, no_weight_decay_cond, scale_lr_cond, lr_mult, lr, min_lr, decoupled_lr,
                          decoupled_min_lr, **kwargs):
        groups = original(model_chunks, no_weight_decay_cond, None, 1.0, lr, min_lr, decoupled_lr, decoupled_min_lr,
                          **kwargs)
        places = {key: place for chunk in model_chunks for key, place in param_places(chunk).items()}
        num_layers = int(get_model_config(model_chunks[0]).num_layers) if model_chunks else 0
        params_map = split_groups(groups, places, plan, num_layers)
        regrouped_groups = [{"params": params_map.get(key, []), **dict(zip(_KEY, key))}
                            for key in aligned_keys(list(params_map))]
        return mcore_optimizer._update_min_and_max_lr_in_param_groups(
            regrouped_groups, lr=lr, min_lr=min_lr, decoupled_lr=decoupled_lr, decoupled_min_lr=decoupled_min_lr)

    mcore_optimizer._get_param_groups = _get_param_groups
    try:
        yield
    finally:
        mcore_optimizer._get_param_groups = original
