"""The run's saved configuration, read from ``context/io.json`` as plain JSON.

``nemo.lightning.io.load_context`` imports every class the file names and fails where one is
not importable; the JSON itself is fiddle's serialization, in which every explicitly passed
argument is a leaf carrying the dotted ``paths`` it was set at
(``<root>.model.optim.config.lr``). Reading those leaves needs no import at all.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nemo_resume.checkpoint.bounded_read import read_json
from nemo_resume.constants import IO_JSON, MAX_JSON_BYTES

# Path suffixes (after "<root>") for each value, most specific first. Megatron's
# OptimizerConfig holds lr under optim.config; PytorchOptimizerModule under optimizer_fn.
_LR_PATHS = (".optim.config.lr", ".optim.optimizer_fn.lr", ".optim.lr")
_SCHED = ".optim.lr_scheduler"
_MAX_NODES = 1_000_000  # a real io.json has thousands of nodes; stop walking a hostile one


@dataclass(frozen=True)
class SavedConfig:
    """Values the run was configured with; None where the file does not set them explicitly.

    On resume these are *not* what the scheduler uses: the checkpoint's saved scheduler state
    wins (facts file, section 3). They matter for seeing what the user asked for.
    """

    lr: float | None = None
    min_lr: float | None = None
    max_steps: int | None = None  # trainer.max_steps: how long the loop runs
    scheduler_max_steps: int | None = None
    warmup_steps: int | None = None
    constant_steps: int | None = None
    scheduler_class: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "lr": self.lr,
            "min_lr": self.min_lr,
            "max_steps": self.max_steps,
            "scheduler_max_steps": self.scheduler_max_steps,
            "warmup_steps": self.warmup_steps,
            "constant_steps": self.constant_steps,
            "scheduler_class": self.scheduler_class,
        }


def _pyref(node: Any) -> str | None:
    if isinstance(node, dict) and node.get("type") == "pyref":
        module, name = node.get("module"), node.get("name")
        if isinstance(module, str) and isinstance(name, str):
            return f"{module}.{name}"
    return None


def _built_class(obj: dict, objects: dict) -> str | None:
    """The class a fiddle Config builds: its metadata's ``fn_or_cls`` pyref."""
    meta = obj.get("metadata")
    if isinstance(meta, dict) and meta.get("type") == "ref":
        key = meta.get("key")
        meta = objects.get(key) if isinstance(key, str) else None  # a list or dict key is not hashable
    items = meta.get("items") if isinstance(meta, dict) else None
    for item in items if isinstance(items, list) else []:
        if isinstance(item, list) and len(item) == 2 and item[0] == "Attr(name='fn_or_cls')":
            return _pyref(item[1])
    return None


def _collect(objects: dict) -> tuple[dict[str, Any], dict[str, str]]:
    """Leaf values by path, and the class each Config at a path builds, from fiddle JSON."""
    leaves: dict[str, Any] = {}
    classes: dict[str, str] = {}
    for obj in objects.values():
        if isinstance(obj, dict) and isinstance(obj.get("paths"), list):
            cls = _built_class(obj, objects)
            for p in obj["paths"]:
                if cls and isinstance(p, str):
                    classes[p] = cls
    stack, seen = list(objects.values()), 0
    while stack and seen < _MAX_NODES:
        node = stack.pop()
        seen += 1
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            if node.get("type") == "leaf" and isinstance(node.get("paths"), list):
                for p in node["paths"]:
                    if isinstance(p, str):
                        leaves[p] = node.get("value")
            stack.extend(v for v in node.values() if isinstance(v, (dict, list)))
    return leaves, classes


def find_leaf(table: dict[str, Any], suffixes: tuple[str, ...], kind: type | tuple[type, ...]) -> Any:
    """The first value of type ``kind`` at a path ending in one of ``suffixes`` (tried in order), else None.

    A bool is an int to Python; it is only found where ``kind`` is ``bool``.
    """
    for suffix in suffixes:
        for path, value in table.items():
            if path.endswith(suffix) and isinstance(value, kind) and (kind is bool or not isinstance(value, bool)):
                return value
    return None


@dataclass(frozen=True)
class SavedContext:
    """``context/io.json`` as plain data: each explicit leaf value and the class each Config builds, by path.

    The leaves are what :class:`SavedConfig` and :mod:`nemo_resume.checkpoint.run_layout` are read from, so the
    file is read once.
    """

    leaves: dict[str, Any]
    classes: dict[str, str]

    @property
    def config(self) -> SavedConfig:
        """The explicit optimizer, scheduler and trainer values."""
        leaves, classes, number = self.leaves, self.classes, (int, float)
        return SavedConfig(
            lr=find_leaf(leaves, _LR_PATHS, number),
            min_lr=find_leaf(leaves, (_SCHED + ".min_lr",), number),
            max_steps=find_leaf(leaves, (".trainer.max_steps",), int),
            scheduler_max_steps=find_leaf(leaves, (_SCHED + ".max_steps",), int),
            warmup_steps=find_leaf(leaves, (_SCHED + ".warmup_steps",), int),
            constant_steps=find_leaf(leaves, (_SCHED + ".constant_steps",), int),
            scheduler_class=find_leaf(classes, (_SCHED,), str),
        )


def read_context(context_dir: Path) -> SavedContext | None:
    """Every leaf of ``context/io.json`` by path, without importing anything; None when there is no io.json.

    Raises:
        RefusedFile: not a regular file, or over ``MAX_JSON_BYTES`` (:mod:`nemo_resume.checkpoint.bounded_read`).
        ValueError: it is not fiddle JSON.
    """
    path = context_dir / IO_JSON
    if not path.exists():
        return None
    try:
        doc = read_json(path, MAX_JSON_BYTES)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"context/{IO_JSON} is not valid JSON ({exc})") from exc
    except RecursionError as exc:
        raise ValueError(f"context/{IO_JSON} nests too deeply to be a fiddle serialization") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("objects"), dict):
        raise ValueError(f"context/{IO_JSON} is not a fiddle serialization (no 'objects')")
    return SavedContext(*_collect(doc["objects"]))


def read_saved_config(context_dir: Path) -> SavedConfig | None:
    """The explicit optimizer, scheduler and trainer values in ``context/io.json`` (:func:`read_context`)."""
    ctx = read_context(context_dir)
    return ctx.config if ctx is not None else None
