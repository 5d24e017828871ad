"""``--lr-mult PATTERN=MULT`` (repeatable, any MULTs) and ``--layer-lr-decay FACTOR``: each parameter's LR multiplier.

NeMo 2.7.3's ``MegatronOptimizerModule(scale_lr_cond=..., lr_mult=...)`` hands both to megatron-core's
``_get_param_groups`` (``megatron/core/optimizer/__init__.py:95-170``), which keys the param groups by
``(wd_mult, lr_mult, is_expert_parallel, is_decoupled_lr)`` with ``lr_mult`` either 1.0 or the one ``lr_mult``
given. NeMo's ``setup_megatron_optimizer`` then multiplies each group's ``lr`` by it before the scheduler is
built, so the scheduler's ``base_lrs`` are ``lr`` and ``lr * mult``.

So one multiplier is NeMo's own pair (:attr:`LrMultPlan.stock`: ``scale_lr_cond=ParamNameMatch(patterns)``).
Several multipliers, or a layer-wise decay, take :mod:`nemo_resume.schedules.param_groups`, which gives megatron-core
the multiplier :meth:`LrMultPlan.mult_for` says for each parameter, with the same group key and the same
cross-rank alignment. This module is the rule, in one place, for that module, the recipes' checks and the planner.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

from nemo_resume.errors import NemoResumeError

FLAG = "--lr-mult"
DECAY_FLAG = "--layer-lr-decay"


@dataclass(frozen=True)
class LrMultRule:
    """Parameters whose full name matches ``pattern`` (``fnmatch``, case-sensitive) train at ``lr * mult``."""

    pattern: str
    mult: float

    @property
    def spec(self) -> str:
        return f"{self.pattern}={self.mult:g}"


@dataclass(frozen=True)
class ParamPlace:
    """Where a parameter sits, as the multiplier rule needs it.

    Attributes:
        name: its full name as megatron-core's ``_get_param_groups`` sees it (``module.module.decoder.layers.3...``;
            with pipeline stages the layer index in the name is the stage's own).
        layer: the transformer layer holding it, 1-based across the whole model (megatron-core's
            ``TransformerLayer.layer_number``), None outside the layers.
        embedding: it belongs to the input embedding (``LanguageModelEmbedding``).
    """

    name: str
    layer: int | None = None
    embedding: bool = False


@dataclass(frozen=True)
class LrMultPlan:
    """Each parameter's LR multiplier: the first ``--lr-mult`` rule its name matches, in the order given; else the
    layer-wise decay (seed 001's ``base_lr * decay ** (L - 1 - i)`` for layer ``i`` of ``L``, the embedding one step
    below the first layer, the final norm and the output layer at 1.0); else 1.0."""

    rules: tuple[LrMultRule, ...] = ()
    layer_decay: float | None = None

    @property
    def stock(self) -> bool:
        """One multiplier and no decay: NeMo's own ``scale_lr_cond``/``lr_mult`` pair expresses it."""
        return self.layer_decay is None and len({r.mult for r in self.rules}) == 1

    @property
    def patterns(self) -> tuple[str, ...]:
        """Every pattern, once each, in the order given."""
        return tuple(dict.fromkeys(r.pattern for r in self.rules))

    @property
    def mult(self) -> float:
        """The stock pair's ``lr_mult`` (:attr:`stock` plans only)."""
        return self.rules[0].mult

    @property
    def specs(self) -> tuple[str, ...]:
        """The rules as ``PATTERN=MULT``, as the flags take them and the optimizer module serializes them."""
        return tuple(r.spec for r in self.rules)

    def mult_for(self, place: ParamPlace, num_layers: int) -> float:
        """The multiplier megatron-core keys this parameter's group by (and NeMo multiplies its LR with)."""
        for rule in self.rules:
            if fnmatchcase(place.name, rule.pattern):
                return rule.mult
        if self.layer_decay is None:
            return 1.0
        if place.layer is not None:
            return self.layer_decay ** (num_layers - place.layer)
        return self.layer_decay**num_layers if place.embedding else 1.0

    def mults(self, places: Iterable[ParamPlace], num_layers: int) -> tuple[float, ...]:
        """The distinct multipliers other than 1.0 these parameters get, largest first: the request's ``lr_mults``."""
        found = {self.mult_for(p, num_layers) for p in places}
        return tuple(sorted(found - {1.0}, reverse=True))


def parse_lr_mult(text: str, flag: str = FLAG) -> LrMultRule:
    """``"*lora*=0.5"`` -> ``LrMultRule("*lora*", 0.5)``.

    Raises:
        NemoResumeError: not ``PATTERN=MULT`` with a finite MULT > 0.
    """
    pattern, sep, mult = str(text).rpartition("=")
    try:
        value = float(mult)
    except ValueError:
        value = math.nan
    if not sep or not pattern or not math.isfinite(value) or value <= 0:
        raise NemoResumeError(
            f"{flag} {text}: write PATTERN=MULT with MULT a finite number > 0, e.g. {flag} '*adapter*=0.5'"
        )
    return LrMultRule(pattern, value)


def check_layer_decay(factor: float) -> float:
    """A layer-wise decay factor: 0 < FACTOR < 1 (1 changes nothing; above 1 the first layers would train fastest).

    Raises:
        NemoResumeError: naming the value.
    """
    if not math.isfinite(factor) or not 0 < factor < 1:
        raise NemoResumeError(f"{DECAY_FLAG} {factor:g}: give a factor between 0 and 1, e.g. {DECAY_FLAG} 0.9 "
                              "(layer i of L trains at lr x FACTOR^(L - 1 - i))")
    return factor


def lr_mult_plan(rules: Sequence[LrMultRule], layer_decay: float | None = None) -> LrMultPlan | None:
    """The plan for these rules (a repeated pattern kept once) and decay; None without either.

    Raises:
        NemoResumeError: one pattern given with two multipliers, or a decay factor not between 0 and 1.
    """
    if not rules and layer_decay is None:
        return None
    first: dict[str, LrMultRule] = {}
    for rule in rules:
        kept = first.setdefault(rule.pattern, rule)
        if kept.mult != rule.mult:
            raise NemoResumeError(f"{FLAG} '{kept.spec}' {FLAG} '{rule.spec}': one pattern with two multipliers; "
                                  "give each pattern one MULT (the first rule a name matches wins)")
    return LrMultPlan(tuple(first.values()), None if layer_decay is None else check_layer_decay(layer_decay))
