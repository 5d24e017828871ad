"""Hostile and damaged ShardedObjects and tensor references in REAL distributed-optimizer checkpoints (issues 17, 18).

A resume loads every ShardedObject of ``weights/*.distcp`` with ``torch.load(weights_only=False)`` (torch DCP's
``DefaultLoadPlanner.load_bytes``), so the inspector walks each one with its allow-list, and takes the
distributed optimizer's param groups (each group's LR) from its object, never from the scheduler's ``_last_lr``.

Each case copies a run of the ``megatron_run`` fixture (NeMo's MegatronStrategy on CPU, distributed optimizer),
damages its newest checkpoint with torch DCP's own classes (``.metadata`` re-pickled as DCP writes it) and the
helpers of ``tests/support``, and holds inspect and plan to the contract of :mod:`tests.support.hostile`: the victim
is never chosen, one problem line names what is wrong, the good checkpoint beside it is chosen, nothing on disk
changes. Where a real loader would run the payload or fail, that is shown too.
"""

from __future__ import annotations

import dataclasses
import io
import os
import pickle
import pickletools
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from nemo_resume.checkpoint import distcp
from nemo_resume.inspection import inspect_path
from tests.support.fuzz import call_cli, replace_zip_member, tree_manifest
from tests.support.hostile import Pair, assert_contained
from tests.support.pickle_ops import call, data_pkl, global_, insert_before_stop, text
from tests.support.zip_parts import Zip

pytestmark = [pytest.mark.nemo, pytest.mark.megatron]

PAYLOAD = "nr_unsafe_payload"  # the attacker's module, importable by the real loader only
GROUPS = re.compile(r"(chained_\d+\.)?optimizer\.distributed\.dp_group_idx_0\.optimizer/shard_\d+_\d+")
EXTRA_STATE = re.compile(r".*\._extra_state/shard_\d+_\d+")

# torch DCP's own load of one ShardedObject by key, as a resume does it (the payload runs in torch.load)
_DCP_LOAD = """
import io, sys
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint import FileSystemReader
dcp.load({sys.argv[2]: io.BytesIO()}, storage_reader=FileSystemReader(sys.argv[1]), no_dist=True)
"""


# ------------------------------------------------------------------------------------------------ helpers


def _pair(megatron_run, tmp_path: Path) -> Pair:
    """A private copy of the distributed-optimizer run: a checkpoint at its newest step is the victim (its twins at
    that step, NeMo's -last copy, are removed from the copy) and the newest one at an earlier step the good one;
    found by nemo_resume's discovery, by step, never by name."""
    dst = tmp_path / "run"
    shutil.copytree(megatron_run(True, 1).run_dir, dst, symlinks=True)
    found = [c.state for c in inspect_path(dst).checkpoints if not c.is_companion and c.state.complete]
    newest = max(s.step for s in found)
    victim, *twins = [s.location.path for s in found if s.step == newest]
    for twin in twins:
        shutil.rmtree(twin) if twin.is_dir() and not twin.is_symlink() else twin.unlink()
    older = [s for s in found if s.step < newest]
    assert older, found
    good = max(older, key=lambda s: (s.step, not s.location.is_last_link, str(s.location.path)))  # as plan ranks them
    return Pair(dst, good.location.path, victim)


def _metadata(weights: Path) -> Any:
    from torch.distributed.checkpoint import FileSystemReader

    return FileSystemReader(str(weights)).read_metadata()


def _write_metadata(weights: Path, metadata: Any) -> None:
    with (weights / ".metadata").open("wb") as f:
        pickle.dump(metadata, f)  # as torch DCP's FileSystemWriter.finish writes it


def _key(weights: Path, pattern: re.Pattern[str]) -> str:
    return min(i.fqn for i in _metadata(weights).storage_data if pattern.fullmatch(i.fqn))


def _object_bytes(weights: Path, key: str) -> bytes:
    metadata = _metadata(weights)
    (info,) = [v for k, v in metadata.storage_data.items() if k.fqn == key]
    return (weights / info.relative_path).read_bytes()[info.offset : info.offset + info.length]


def _put_object(weights: Path, key: str, payload: bytes | None = None, **info: Any) -> None:
    """Point ``key``'s storage entry at ``payload`` (appended to its .distcp file) and/or change its fields."""
    metadata = _metadata(weights)
    (index,) = [k for k in metadata.storage_data if k.fqn == key]
    entry = metadata.storage_data[index]
    if payload is not None:
        shard = weights / entry.relative_path
        entry = dataclasses.replace(entry, offset=shard.stat().st_size, length=len(payload))
        with shard.open("ab") as f:
            f.write(payload)
    metadata.storage_data[index] = dataclasses.replace(entry, **info)
    _write_metadata(weights, metadata)


def _with_pickle(payload: bytes, pickle_bytes: bytes) -> bytes:
    """A ``torch.save`` zip (a ShardedObject's bytes) with its data.pkl replaced."""
    z = Zip.parse(payload)
    i = z.index("data.pkl")
    z.add(Zip.name(z.entries[i]), pickle_bytes)
    z.entries[i] = z.entries.pop()
    return z.build()


def _data_pkl_of(payload: bytes) -> bytes:
    z = Zip.parse(payload)
    return z.data_of("data.pkl")


def _torch_save(value: Any) -> bytes:
    import torch

    buf = io.BytesIO()
    torch.save(value, buf)
    return buf.getvalue()


def _torch_load(payload: bytes) -> Any:
    import torch

    return torch.load(io.BytesIO(payload), weights_only=False)  # the trusted copy, before any damage


def _victim(runs_or_json: Any, pair: Pair) -> dict[str, Any]:
    data = runs_or_json.inspect_json.json if hasattr(runs_or_json, "inspect_json") else runs_or_json
    (victim,) = [c for c in data["checkpoints"] if c["path"] == str(pair.victim)]
    return victim


def _one_line_naming(runs: Any, pair: Pair, code: str, *words: str) -> None:
    """The victim's ``code`` problem is one line of the human report, naming ``words``."""
    head = f"ERROR {code} {pair.victim.relative_to(pair.run)}: "
    (line,) = [ln.strip() for ln in runs.inspect_human.out.splitlines() if ln.strip().startswith(head)]
    assert all(w in line for w in words), (line, words)


def _attacker(tmp_path: Path) -> tuple[Path, Path]:
    folder, marker = tmp_path / "attacker", tmp_path / "attacker" / "marker"
    folder.mkdir()
    (folder / f"{PAYLOAD}.py").write_text(textwrap.dedent("""
        from pathlib import Path

        def touch(path):
            Path(path).write_text("ran")
    """))
    return folder, marker


# ---------------------------------------------------------------------- unsafe pickles in ShardedObjects


@pytest.mark.parametrize("which", ["param groups", "_extra_state"])
def test_a_call_in_a_sharded_object_is_unsafe_and_torch_dcp_would_run_it(megatron_run, tmp_path, which):
    pair = _pair(megatron_run, tmp_path)
    weights = pair.victim / "weights"
    key = _key(weights, GROUPS if which == "param groups" else EXTRA_STATE)
    folder, marker = _attacker(tmp_path)
    real = _object_bytes(weights, key)
    _put_object(weights, key, _with_pickle(real, insert_before_stop(
        _data_pkl_of(real), call(global_(PAYLOAD, "touch"), text(str(marker))))))

    runs = assert_contained(pair, expect=f"{PAYLOAD}.touch")
    victim = _victim(runs, pair)
    assert "UNSAFE_PICKLE" in {p["code"] for p in victim["problems"]}
    (unsafe,) = victim["unsafe_pickle_globals"]
    assert unsafe["global"] == f"{PAYLOAD}.touch" and key in unsafe["file"] and unsafe["file"].startswith("weights/")
    _one_line_naming(runs, pair, "UNSAFE_PICKLE", f"{PAYLOAD}.touch", key)
    assert not marker.exists()  # inspect and plan never ran it ...

    env = {**os.environ, "PYTHONPATH": str(folder), "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, "-c", _DCP_LOAD, str(weights), key], env=env, capture_output=True,
                          text=True, timeout=300)
    assert marker.exists(), proc.stderr[-2000:]  # ... torch DCP's load, as a resume runs it, would have


# ----------------------------------------------------------- tensor references torch would read otherwise


def _storage_ops(pickle_bytes: bytes) -> list[tuple[str, Any, int]]:
    return [(op.name, arg, pos) for op, arg, pos in pickletools.genops(pickle_bytes)]


def _after_storage_key(pickle_bytes: bytes) -> tuple[int, int, int]:
    """Positions in the first tensor reference of a torch.save pickle: its key string, the TUPLE closing its
    persistent id, and its storage offset (the BININT1 after BINPERSID)."""
    ops = _storage_ops(pickle_bytes)
    at = next(i for i, (name, arg, _) in enumerate(ops) if name == "BINUNICODE" and arg == "storage")
    key = next(pos for name, arg, pos in ops[at + 2 :] if name == "BINUNICODE")
    close = next(pos for name, _, pos in ops[at:] if name == "TUPLE")
    persid = next(i for i, (name, _, _) in enumerate(ops) if name == "BINPERSID" and i > at)
    assert ops[persid + 1][0] == "BININT1", ops[persid : persid + 3]
    return key, close, ops[persid + 1][2]


def _rewrite_common(pair: Pair, edit) -> Path:
    common = pair.victim / "weights" / "common.pt"
    replace_zip_member(common, "data.pkl", edit(data_pkl(common)))
    return common


def test_a_persistent_id_with_a_sixth_field_is_refused(megatron_run, tmp_path):
    pair = _pair(megatron_run, tmp_path)

    def sixth(pkl: bytes) -> bytes:
        _, close, _ = _after_storage_key(pkl)
        return pkl[:close] + b"K\x00" + pkl[close:]  # ("storage", type, key, location, numel, 0)

    common = _rewrite_common(pair, sixth)
    runs = assert_contained(pair, expect="persistent id of 6 fields")
    _one_line_naming(runs, pair, "INCOMPLETE", "weights/common.pt", "persistent id of 6 fields")
    import torch

    with pytest.raises(ValueError):  # torch: storage_type, key, location, numel = data
        torch.load(common, weights_only=False)


def test_a_persistent_id_keyed_by_a_global_is_refused_though_a_record_of_its_name_exists(megatron_run, tmp_path):
    """The key a global (torch.float32): torch reads record data/torch.float32, not data/float32; so a zip holding
    data/float32 passed every storage check while torch.load fails (it vouched for a file torch cannot load)."""
    pair = _pair(megatron_run, tmp_path)
    common = pair.victim / "weights" / "common.pt"
    z = Zip.parse(common.read_bytes())
    pkl = z.data_of("data.pkl")
    key_at, _, _ = _after_storage_key(pkl)
    ops = {pos: (name, arg) for name, arg, pos in _storage_ops(pkl)}
    old_key = ops[key_at][1]
    folder = Zip.name(z.entry("data.pkl")).rsplit(b"/", 1)[0]
    z.add(folder + b"/data/float32", z.data_of(f"data/{old_key}"))  # a record named after the global's text
    new = pkl[:key_at] + global_("torch", "float32") + pkl[key_at + 5 + len(old_key.encode()) :]
    i = z.index("data.pkl")
    z.add(Zip.name(z.entries[i]), new)
    z.entries[i] = z.entries.pop()
    common.write_bytes(z.build())

    runs = assert_contained(pair, expect="not a torch storage reference")
    _one_line_naming(runs, pair, "INCOMPLETE", "weights/common.pt", "persistent id")
    import torch

    with pytest.raises(RuntimeError):  # torch looks for data/torch.float32
        torch.load(common, weights_only=False)


def test_a_tensor_reaching_past_its_storage_is_refused(megatron_run, tmp_path):
    pair = _pair(megatron_run, tmp_path)

    def past(pkl: bytes) -> bytes:
        _, _, offset_at = _after_storage_key(pkl)
        return pkl[: offset_at + 1] + b"\x01" + pkl[offset_at + 2 :]  # storage offset 0 -> 1 of a 1-element storage

    common = _rewrite_common(pair, past)
    runs = assert_contained(pair, expect="reaching element 2 of a storage of 1")
    _one_line_naming(runs, pair, "UNSAFE_PICKLE", "torch._utils._rebuild_tensor_v2", "weights/common.pt")
    import torch

    with pytest.raises(RuntimeError):  # Tensor.set_ refuses it: the file cannot load
        torch.load(common, weights_only=False)


# ------------------------------------------------------------ ShardedObjects that cannot be located or read


def _no_groups_object(weights: Path) -> None:
    metadata = _metadata(weights)
    key = _key(weights, GROUPS)
    del metadata.state_dict_metadata[key]
    metadata.storage_data = {k: v for k, v in metadata.storage_data.items() if k.fqn != key}
    _write_metadata(weights, metadata)


DAMAGE = {
    # (how, a word of the reason)
    "outside weights/": (lambda w, k: _put_object(w, k, relative_path="../../stolen.distcp"),
                         "not a file name in weights/"),
    "negative offset": (lambda w, k: _put_object(w, k, offset=-1), "not a non-negative integer"),
    "transformed": (lambda w, k: _put_object(w, k, transform_descriptors=["zstd"]), "stored through transforms"),
    "not a zip": (lambda w, k: _put_object(w, k, b"\x80\x02]q\x00."), "File is not a zip file"),
    "no param_groups": (lambda w, k: _put_object(w, k, _torch_save([{"state": {}}])), "holds no param_groups"),
    "missing": (lambda w, k: _no_groups_object(w), "no readable ShardedObject"),
}  # fmt: skip


@pytest.mark.parametrize("damage", DAMAGE, ids=list(DAMAGE))
def test_a_param_group_object_that_cannot_be_read_is_a_problem_not_a_fallback(megatron_run, tmp_path, damage):
    pair = _pair(megatron_run, tmp_path)
    weights = pair.victim / "weights"
    how, why = DAMAGE[damage]
    how(weights, _key(weights, GROUPS))

    runs = assert_contained(pair, expect=why)
    victim = _victim(runs, pair)
    assert victim["param_groups_source"] is None and victim["lr"] == []  # the scheduler's _last_lr is no stand-in
    _one_line_naming(runs, pair, "INCOMPLETE", why)


def test_param_group_lrs_are_the_objects_and_a_scheduler_that_disagrees_is_a_warning(megatron_run, tmp_path):
    """The LR reported is the object's (what the first resumed step trains with), not the scheduler's _last_lr;
    the two disagreeing is a warning, and the checkpoint stays the one to resume from."""
    pair = _pair(megatron_run, tmp_path)
    weights = pair.victim / "weights"
    key = _key(weights, GROUPS)
    (state,) = _torch_load(_object_bytes(weights, key))
    saved = [g["lr"] for g in state["param_groups"]]
    for g in state["param_groups"]:
        g["lr"] = g["lr"] * 0.5
    _put_object(weights, key, _torch_save([state]))
    before = tree_manifest(pair.run)

    data = call_cli("inspect", [str(pair.run), "--json"]).json
    victim = _victim(data, pair)
    assert victim["lr"] == [x * 0.5 for x in saved] and victim["scheduler"]["last_lr"] == saved
    assert victim["param_groups_source"] == "distcp"
    (warning,) = [p for p in victim["problems"] if p["code"] == "PARAM_GROUP_LR_MISMATCH"]
    assert warning["severity"] == "warning" and warning["step"] == victim["step"]
    assert data["latest_complete"] == str(pair.victim)
    assert tree_manifest(pair.run) == before


# ------------------------------------------------------------------------------------- the named limits


def _extra_object(weights: Path) -> None:
    """One more ShardedObject listed in .metadata (a copy of a real _extra_state one), with DCP's own records."""
    from torch.distributed.checkpoint.metadata import BytesStorageMetadata, MetadataIndex

    metadata = _metadata(weights)
    key = _key(weights, EXTRA_STATE)
    (entry,) = [v for k, v in metadata.storage_data.items() if k.fqn == key]
    metadata.state_dict_metadata["nr.extra/shard_0_1"] = BytesStorageMetadata()
    metadata.storage_data[MetadataIndex("nr.extra/shard_0_1")] = entry
    _write_metadata(weights, metadata)


def _padded_groups(weights: Path) -> None:
    """The param-group object with 4 KiB more in its zip (a record torch never reads): bigger, still loadable."""
    key = _key(weights, GROUPS)
    z = Zip.parse(_object_bytes(weights, key))
    z.add(Zip.name(z.entry("data.pkl")).rsplit(b"/", 1)[0] + b"/padding", bytes(4096))
    _put_object(weights, key, z.build())


def _listed(weights: Path) -> list[Any]:
    """The storage entries of every ShardedObject .metadata lists (torch DCP's BytesStorageMetadata items)."""
    from torch.distributed.checkpoint.metadata import BytesStorageMetadata

    metadata = _metadata(weights)
    return [v for k, v in metadata.storage_data.items()
            if isinstance(metadata.state_dict_metadata[k.fqn], BytesStorageMetadata)]


LIMITS = {
    # (constant, its value from the good checkpoint's weights/, the damage, a word of the reason)
    "objects": ("MAX_DCP_OBJECTS", lambda w: len(_listed(w)), _extra_object, "ShardedObjects, over the limit of"),
    "one object's bytes": ("MAX_DCP_OBJECT_BYTES", lambda w: max(e.length for e in _listed(w)), _padded_groups,
                           "-byte limit for one object"),
    "all objects' bytes": ("MAX_DCP_OBJECTS_BYTES", lambda w: sum(e.length for e in _listed(w)), _padded_groups,
                           "bytes in all, over the"),
}  # fmt: skip


@pytest.mark.parametrize("limit", LIMITS, ids=list(LIMITS))
def test_sharded_objects_over_a_named_limit_are_a_problem_on_their_checkpoint(megatron_run, tmp_path, monkeypatch,
                                                                              limit):
    pair = _pair(megatron_run, tmp_path)
    constant, real, damage, why = LIMITS[limit]
    monkeypatch.setattr(distcp, constant, real(pair.good / "weights"))  # the good checkpoint is exactly at it
    damage(pair.victim / "weights")
    before = tree_manifest(pair.run)

    ins, human = call_cli("inspect", [str(pair.run), "--json"]), call_cli("inspect", [str(pair.run)])
    assert tree_manifest(pair.run) == before
    victim = _victim(ins.json, pair)
    assert not victim["complete"] and any(why in r for r in victim["incomplete_reasons"]), victim["incomplete_reasons"]
    assert ins.json["latest_complete"] == str(pair.good)
    name = str(pair.victim.relative_to(pair.run))
    (line,) = [ln for ln in human.out.splitlines() if ln.lstrip().startswith("ERROR") and name in ln]
    assert why in line
