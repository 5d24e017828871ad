"""Is a megatron-core ``weights/`` folder complete? Answered from metadata and file sizes alone.

A save killed midway, a half-finished copy or a full disk leaves shards missing or short.
torch DCP's ``.metadata`` lists, for every tensor, the shard file and the byte range holding
it, so comparing those ranges with the files' sizes finds both cases without reading a shard.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from nemo_resume.checkpoint.bounded_read import RefusedFile, read_json
from nemo_resume.checkpoint.safe_pickle import (
    Opaque,
    Unpickled,
    UnreadablePickle,
    UnsafeGlobal,
    UnsafePickle,
    read_pickle_file,
)
from nemo_resume.constants import (
    COMMON_PT,
    DCP_METADATA,
    KNOWN_SHARDED_BACKENDS,
    MAX_JSON_BYTES,
    METADATA_JSON,
    OPTIMIZER_KEY,
)


def _backend_problem(weights: Path) -> str | None:
    path = weights / METADATA_JSON
    if not path.exists():
        return f"weights/{METADATA_JSON} is missing (the save never finished)"
    try:
        meta = read_json(path, MAX_JSON_BYTES)
    except RefusedFile as exc:
        return f"weights/{METADATA_JSON} is unreadable ({exc})"
    except (OSError, ValueError, RecursionError) as exc:
        return f"weights/{METADATA_JSON} is unreadable ({type(exc).__name__})"
    backend = meta.get("sharded_backend") if isinstance(meta, dict) else None
    if backend not in KNOWN_SHARDED_BACKENDS:
        return f"weights/{METADATA_JSON} names unknown sharded_backend {backend!r} (expected torch_dist or zarr)"
    return None


@dataclass(frozen=True)
class WeightsReport:
    """What ``weights/`` says without reading a shard: its problems and the keys it stores."""

    problems: tuple[str, ...]
    keys: frozenset[str] = frozenset()
    # Globals .metadata names that torch DCP's read_metadata (a plain pickle.load) would import or call.
    unsafe_globals: tuple[UnsafeGlobal, ...] = ()
    # .metadata as read (None where it could not be): where the ShardedObjects are (checkpoint.distcp)
    metadata: Unpickled | None = None

    @property
    def has_optimizer_state(self) -> bool:
        # megatron-core saves optimizer state under "optimizer.*" keys (the distributed optimizer
        # also pickles its param_groups there, as a ShardedObject).
        return any(k.startswith(OPTIMIZER_KEY + ".") for k in self.keys)


def _storage_table(metadata: Unpickled) -> dict:
    root = metadata.value
    storage = root.field("storage_data", {}) if isinstance(root, Opaque) else None
    if not isinstance(storage, dict):
        raise UnreadablePickle("has no storage_data table; not a torch DCP .metadata file")
    return storage


def _stored_keys(metadata: Unpickled) -> frozenset[str]:
    root = metadata.value
    table = root.field("state_dict_metadata", {}) if isinstance(root, Opaque) else {}
    return frozenset(k for k in table if isinstance(k, str)) if isinstance(table, dict) else frozenset()


def shard_extents(metadata: Unpickled) -> dict[str, int]:
    """Shard file -> the number of bytes the metadata says it must hold at least."""
    storage = _storage_table(metadata)
    need: dict[str, int] = {}
    for info in storage.values():
        if not isinstance(info, Opaque):
            continue
        rel, offset, length = info.field("relative_path"), info.field("offset"), info.field("length")
        if not isinstance(rel, str) or not isinstance(offset, int) or not isinstance(length, int):
            continue
        need[rel] = max(need.get(rel, 0), offset + length)
    return need


def _shard_problems(weights: Path, extents: dict[str, int]) -> list[str]:
    problems = []
    for rel, size in sorted(extents.items()):
        shard = weights / rel
        try:
            actual = shard.stat().st_size
        except FileNotFoundError:
            problems.append(f"shard weights/{rel} listed in .metadata is missing")
            continue
        except OSError as exc:
            problems.append(f"shard weights/{rel} is unreadable ({exc.strerror})")
            continue
        if actual < size:
            problems.append(f"shard weights/{rel} is truncated ({actual} of {size} bytes)")
        elif not os.access(shard, os.R_OK):
            problems.append(f"shard weights/{rel} is not readable (permission denied)")
    return problems


def inspect_weights(weights: Path) -> WeightsReport:
    """Every reason the ``weights/`` folder cannot be loaded, and its stored keys; no shard is read."""
    if not os.access(weights, os.R_OK | os.X_OK):
        return WeightsReport(("weights/ is not readable (permission denied)",))
    problems: list[str] = []
    keys: frozenset[str] = frozenset()
    unsafe: tuple[UnsafeGlobal, ...] = ()
    read: Unpickled | None = None
    backend = _backend_problem(weights)
    if backend:
        problems.append(backend)
    if not (weights / COMMON_PT).exists():
        problems.append(f"weights/{COMMON_PT} is missing")
    meta_path = weights / DCP_METADATA
    if not meta_path.exists():
        problems.append(f"weights/{DCP_METADATA} is missing (torch DCP never wrote its index)")
        return WeightsReport(tuple(problems))
    try:
        metadata = read_pickle_file(meta_path)
        problems += _shard_problems(weights, shard_extents(metadata))
        keys = _stored_keys(metadata)
        read = metadata
    except OSError as exc:
        problems.append(f"weights/{DCP_METADATA} is unreadable ({exc.strerror})")
    except UnsafePickle as exc:
        unsafe = tuple(replace(g, file=f"weights/{DCP_METADATA}") for g in exc.found)
    except UnreadablePickle as exc:
        problems.append(f"weights/{DCP_METADATA} is corrupt: {exc}")
    return WeightsReport(tuple(problems), keys, unsafe, read)
