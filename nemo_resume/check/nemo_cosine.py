"""NeMo's ``CosineAnnealing`` class (placeholder: the plain import; the fast loader replaces it)."""

from __future__ import annotations

import functools


@functools.cache
def cosine_annealing_class() -> type:
    from nemo.core.optim.lr_scheduler import CosineAnnealing

    return CosineAnnealing
