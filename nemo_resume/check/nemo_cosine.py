"""NeMo's own ``CosineAnnealing`` class, without importing all of NeMo (the check's cold start).

The class lives in ``nemo/core/optim/lr_scheduler.py``. Importing that module the usual way runs
``nemo/core/__init__.py`` and ``nemo.utils`` (Lightning, torchmetrics, hydra plugins: about 8 s here)
for three names the file imports at the top and uses only in its config helpers
(``prepare_lr_scheduler``, ``register_scheduler``, ``compute_max_steps``):
``SchedulerParams``/``get_scheduler_config``/``register_scheduler_params``, ``logging`` and
``maybe_update_config_version``. No scheduler class touches them.

So :func:`cosine_annealing_class` compiles and runs NeMo's installed file itself (found with
``importlib.util.find_spec``, which runs no ``__init__``), as a module object of its own: every class
and helper (``CosineAnnealing``, ``WarmupAnnealHoldPolicy``, ``_cosine_annealing``,
``_linear_warmup_with_cosine_annealing``) is NeMo's code, from NeMo's file, with its line numbers in
tracebacks. Only the three names above are stand-ins that refuse to be used, given to that one
module through its own ``__import__``; ``sys.modules`` is never touched, so a later real import of
NeMo in the same process is unaffected. torch, hydra and omegaconf are the real ones.

Where NeMo's module is already imported (a training process, the test suite), that one is used.
``tests/check/test_nemo_cosine.py`` holds the two equal, failures included.
"""

from __future__ import annotations

import builtins
import functools
import importlib.util
import sys
import types
from pathlib import Path
from typing import Any

NEMO_MODULE = "nemo.core.optim.lr_scheduler"
# What the file imports for its config helpers, and the names it takes from each.
_HELPER_IMPORTS = {
    "nemo.core.config.schedulers": ("SchedulerParams", "get_scheduler_config", "register_scheduler_params"),
    "nemo.utils": ("logging",),
    "nemo.utils.model_utils": ("maybe_update_config_version",),
}


class _Unused:
    """A name NeMo's config helpers use: any use means a scheduler needed it after all, so say so."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        raise RuntimeError(f"{self._name}.{attr}: not loaded by nemo_resume's light import of {NEMO_MODULE}")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"{self._name}(): not loaded by nemo_resume's light import of {NEMO_MODULE}")


def _helper_module(name: str) -> types.ModuleType:
    module = types.ModuleType(name)
    for attr in _HELPER_IMPORTS[name]:
        setattr(module, attr, _Unused(f"{name}.{attr}"))
    return module


def _load_light() -> types.ModuleType:
    """NeMo's ``lr_scheduler.py`` run as its own module object (see the module docstring)."""
    spec = importlib.util.find_spec("nemo")  # a top-level spec: runs nothing
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("nemo is not installed")
    path = Path(next(iter(spec.submodule_search_locations)), "core", "optim", "lr_scheduler.py")
    helpers = {name: _helper_module(name) for name in _HELPER_IMPORTS}
    real_import = builtins.__import__

    def scoped_import(name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0) -> Any:
        if level == 0 and name in helpers:
            return helpers[name]
        return real_import(name, globals, locals, fromlist, level)

    module = types.ModuleType(NEMO_MODULE)  # its real name: reprs and error texts read as NeMo's own
    module.__file__ = str(path)
    module.__dict__["__builtins__"] = {**builtins.__dict__, "__import__": scoped_import}
    exec(compile(path.read_bytes(), str(path), "exec"), module.__dict__)
    return module


@functools.cache
def cosine_annealing_class() -> type:
    """NeMo's ``CosineAnnealing``: the imported module's when NeMo is loaded, else from NeMo's file, lightly."""
    loaded = sys.modules.get(NEMO_MODULE)
    if loaded is not None:
        return loaded.CosineAnnealing
    try:
        return _load_light().CosineAnnealing
    except Exception:  # noqa: BLE001 - a NeMo whose file differs: the plain import is always right, only slower
        from nemo.core.optim.lr_scheduler import CosineAnnealing

        return CosineAnnealing
