"""The ``scale_lr_cond`` for ``--lr-mult PATTERN=MULT``: parameter-name globs, as a serializable callable."""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any

from nemo.lightning import io


class ParamNameMatch(io.IOMixin):
    """``scale_lr_cond(name, param)``: True when ``name`` matches any of ``patterns`` (fnmatch, case-sensitive).

    megatron-core passes each trainable parameter's full name as its model chunk names it, e.g.
    ``module.module.decoder.layers.3.self_attention.linear_qkv.adapter.linear_in.weight`` for a NeMo
    LoRA adapter in a bf16 recipe (NeMo's Float16Module adds the second ``module.``; no ``lora`` in
    it); start patterns with ``*`` (nemo_resume.recipes.param_names lists the names). As an IOMixin with a list of
    strings for its argument, NeMo-Run and ``context/io.json`` hold it as plain data (a lambda
    would be cloudpickled, which ``load_context`` refuses).

    Args:
        patterns: globs; a parameter matching any of them gets the optimizer module's ``lr_mult``.
    """

    def __init__(self, patterns: list[str]) -> None:
        self.patterns = list(patterns)

    def __call__(self, name: str, param: Any = None) -> bool:
        return any(fnmatchcase(name, p) for p in self.patterns)

    def __repr__(self) -> str:
        return f"ParamNameMatch({self.patterns!r})"
