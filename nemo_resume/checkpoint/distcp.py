"""Read the objects torch DCP keeps inside ``weights/*.distcp`` as data, the way a resume loads them, never running them.

megatron-core saves each ShardedObject of a checkpoint (the distributed optimizer's param groups and bucket sizes,
each layer's ``_extra_state``) as a ``torch.save`` payload inside a ``.distcp`` file; ``weights/.metadata`` lists it
as a ``BytesStorageMetadata`` item with a ``_StorageInfo(relative_path, offset, length)``. On resume torch DCP reads
those bytes and hands them to ``torch.load(weights_only=False)`` (``DefaultLoadPlanner.load_bytes``): a pickle that
imports and runs whatever it names. So every such object is read here, within the limits of
:mod:`nemo_resume.constants`, and walked with the allow-list of :mod:`nemo_resume.checkpoint.safe_pickle`, whatever
its key. The distributed optimizer's param-group objects are kept too: with it, each group's LR is in them, not in
``common.pt``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from nemo_resume.checkpoint.bounded_read import open_regular
from nemo_resume.checkpoint.safe_pickle import (
    Opaque,
    Unpickled,
    UnreadablePickle,
    UnsafeGlobal,
    UnsafePickle,
    quote,
    read_torch_payload,
)
from nemo_resume.constants import MAX_DCP_OBJECT_BYTES, MAX_DCP_OBJECTS, MAX_DCP_OBJECTS_BYTES, WEIGHTS_DIR

# torch DCP's record of an item stored as bytes (a ShardedObject), loaded with torch.load(weights_only=False)
_BYTES_ITEM = "torch.distributed.checkpoint.metadata.BytesStorageMetadata"
# The file names torch DCP's FileSystemWriter gives (``__0_0.distcp``): a plain name in weights/, nothing else
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_.-]{1,255}")
# DistributedOptimizer.sharded_state_dict (megatron-core 0.15, optimizer/distrib_optimizer.py) in its
# dp_reshardable format: one ShardedObject of global shape (1,) per model-parallel rank (its data_parallel_group_idx)
# holding {"param_groups": [...]}, saved by DP rank 0 only; ChainedOptimizer prefixes "chained_<i>." when it chains
# several (optimizer/optimizer.py).
_PARAM_GROUPS_OBJECT = re.compile(r"(?:chained_(\d+)\.)?optimizer\.distributed\.dp_group_idx_(\d+)\.optimizer/shard_0_1")


@dataclass(frozen=True)
class DcpObject:
    """One ShardedObject as ``.metadata`` places it: its key, its ``.distcp`` file (in weights/) and byte range."""

    key: str
    file: str
    offset: int
    length: int

    @property
    def where(self) -> str:
        """The object for a message: its file, and its key (file-derived: quoted, bounded)."""
        return f"{WEIGHTS_DIR}/{self.file} object {quote(self.key)}"

    def to_json(self) -> dict[str, Any]:
        return {"file": f"{WEIGHTS_DIR}/{self.file}", "key": self.key, "offset": self.offset, "length": self.length}


@dataclass(frozen=True)
class DcpObjects:
    """What the ShardedObjects of one ``weights/`` folder hold: problems, unsafe globals, and the param-group objects."""

    problems: tuple[str, ...] = ()
    unsafe_globals: tuple[UnsafeGlobal, ...] = ()
    # Every distributed-optimizer param-group object .metadata lists, and its value where it was read (else None).
    param_group_objects: tuple[tuple[DcpObject, Any], ...] = ()

    def param_groups_of_rank_0(self) -> list[tuple[DcpObject, Any]]:
        """The param-group objects global rank 0 restores (model-parallel rank 0: ``dp_group_idx_0``), in the order
        ``ChainedOptimizer`` concatenates them; the groups NeMo's scheduler (saved in ``common.pt``) steps.

        Other model-parallel ranks hold their own parameters' groups (their number can differ): walked, not compared.

        Raises:
            LookupError: there is none, or their ``chained_`` prefixes are not the 0, 1, ... one optimizer writes.
        """
        mine: dict[int | None, tuple[DcpObject, Any]] = {}
        for obj, value in self.param_group_objects:
            match = _PARAM_GROUPS_OBJECT.fullmatch(obj.key)
            if match and int(match[2]) == 0:
                mine[None if match[1] is None else int(match[1])] = (obj, value)
        if not mine:
            raise LookupError(
                "no readable ShardedObject 'optimizer.distributed.dp_group_idx_0.optimizer/shard_0_1' in "
                "weights/.metadata"
                + (f" (it lists {len(self.param_group_objects)} of other ranks)" if self.param_group_objects else "")
            )
        if list(mine) != [None] and sorted(k for k in mine if k is not None) != list(range(len(mine))):
            raise LookupError("the distributed optimizer's param-group objects are not one optimizer's chain "
                              "(prefixes chained_0, chained_1, ... or none)")
        return [mine[k] for k in sorted(mine, key=lambda k: -1 if k is None else k)]


def _field(record: Any, name: str) -> Any:
    return record.field(name) if isinstance(record, Opaque) else None


def _listed(metadata: Unpickled) -> tuple[list[DcpObject], list[str]]:
    """Every ShardedObject ``.metadata`` lists, and a problem for each entry torch DCP could not read as listed."""
    root = metadata.value
    items = _field(root, "state_dict_metadata")
    storage = _field(root, "storage_data")
    if not isinstance(items, dict) or not isinstance(storage, dict):
        return [], ["weights/.metadata has no state_dict_metadata or storage_data table; not torch DCP's"]
    keys = {k for k, v in items.items() if isinstance(k, str) and getattr(v, "pickle_name", None) == _BYTES_ITEM}
    if len(keys) > MAX_DCP_OBJECTS:
        return [], [f"weights/.metadata lists {len(keys)} ShardedObjects, over the limit of {MAX_DCP_OBJECTS}; not read"]
    infos: dict[str, list[Any]] = {}
    for index, info in storage.items():
        key = _field(index, "fqn")
        # DCP looks a bytes item up by MetadataIndex(fqn) (offset None); an entry with an offset is never read
        if key in keys and _field(index, "offset") is None:
            infos.setdefault(key, []).append(info)
    found, problems = [], []
    for key in sorted(keys):
        entries = infos.get(key, [])
        where = f"weights/.metadata object {quote(key)}"
        if len(entries) != 1:
            problems.append(f"{where} has {len(entries)} storage entries; torch DCP reads exactly one")
            continue
        obj, why = _placed(key, entries[0])
        if obj is None:
            problems.append(f"{where} {why}")
        else:
            found.append(obj)
    return found, problems


def _placed(key: str, info: Any) -> tuple[DcpObject | None, str]:
    """The object where its ``_StorageInfo`` puts it, or why torch DCP would not read it from there as a whole."""
    rel, offset, length = _field(info, "relative_path"), _field(info, "offset"), _field(info, "length")
    if not isinstance(rel, str) or not _PLAIN_NAME.fullmatch(rel) or rel in (".", ".."):
        return None, f"names {quote(str(rel))} as its file, not a file name in {WEIGHTS_DIR}/"
    if type(offset) is not int or type(length) is not int or offset < 0 or length < 0:
        return None, "has a byte offset or length that is not a non-negative integer"
    if length > MAX_DCP_OBJECT_BYTES:
        return None, f"is {length} bytes, over the {MAX_DCP_OBJECT_BYTES}-byte limit for one object"
    if _field(info, "transform_descriptors"):  # torch would decode them (compression) before torch.load
        return None, "is stored through transforms; megatron-core never writes them, refusing to guess the bytes"
    return DcpObject(key, rel, offset, length), ""


def _by_file(objects: Iterable[DcpObject]) -> dict[str, list[DcpObject]]:
    grouped: dict[str, list[DcpObject]] = {}
    for obj in sorted(objects, key=lambda o: (o.file, o.offset)):
        grouped.setdefault(obj.file, []).append(obj)
    return grouped


def read_dcp_objects(weights: Path, metadata: Unpickled) -> DcpObjects:
    """Read and walk every ShardedObject ``metadata`` (the folder's ``.metadata``) lists; never raises.

    A file that is missing or shorter than an object's range is left to :mod:`nemo_resume.checkpoint.integrity`,
    which reports it for every item; every other failure is a problem here, naming the object.
    """
    listed, problems = _listed(metadata)
    total = sum(o.length for o in listed)
    if total > MAX_DCP_OBJECTS_BYTES:
        problems.append(f"weights/.metadata lists ShardedObjects of {total} bytes in all, over the "
                        f"{MAX_DCP_OBJECTS_BYTES}-byte limit; not read")
        return DcpObjects(tuple(problems))
    unsafe: list[UnsafeGlobal] = []
    values: dict[DcpObject, Any] = {}
    for name, objects in _by_file(listed).items():
        try:
            with open_regular(weights / name) as f:
                for obj in objects:
                    if obj.offset + obj.length > f.size:
                        continue  # integrity: "shard ... is truncated"
                    try:
                        values[obj] = read_torch_payload(f.window(obj.offset, obj.length)).value
                    except UnsafePickle as exc:
                        unsafe += [replace(g, file=obj.where) for g in exc.found]
                    except UnreadablePickle as exc:
                        problems.append(f"{obj.where} is not what torch.load reads: {exc}")
        except FileNotFoundError:
            continue  # integrity: "shard ... listed in .metadata is missing"
        except OSError as exc:  # RefusedFile included: a FIFO or a device named like a shard
            problems.append(f"{WEIGHTS_DIR}/{name} is unreadable ({exc.strerror or exc})")
    groups = tuple((o, values.get(o)) for o in listed if _PARAM_GROUPS_OBJECT.fullmatch(o.key))
    return DcpObjects(tuple(problems), tuple(unsafe), groups)
