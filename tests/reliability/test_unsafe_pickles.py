"""Pickles that would run code when a resume loads them, planted in real checkpoints (issue 17).

Every case is a pair of real checkpoints (tests/support/hostile.py): a good step-400 copy and a step-499 victim
whose ``data.pkl`` (a Lightning ``.ckpt``, a Megatron ``weights/common.pt``) or ``weights/.metadata`` one attack
class rewrites. :func:`assert_contained` holds inspect and plan to the contract (the victim is refused and never
chosen, the good copy is, in bounded time and memory, nothing on disk changes); then the same file goes to the
loader a real resume uses, ``torch.load(weights_only=False)`` or torch DCP's ``FileSystemReader.read_metadata``,
in a fresh interpreter, and the marker its payload writes appears: the case would have run code.

The classes: a call to a function of an ordinary module; a reference to a global without a call (importing
its module runs the module); calls smuggled through the arguments of builders torch has
(``copyreg._reconstructor``, ``torch._tensor._rebuild_from_type_v2``, ``torch._utils._rebuild_tensor_v2``); a
call in ``weights/.metadata``; and a MARK bomb (8 MiB of MARK opcodes, 600 MiB to walk before the limit).
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from nemo_resume.checkpoint.safe_pickle import read_torch_file
from tests.support.fuzz import replace_zip_member
from tests.support.hostile import Pair, assert_contained, lightning_pair, megatron_pair
from tests.support.pickle_ops import call, data_pkl, global_, insert_before_stop, prefixed, text

pytestmark = [pytest.mark.nemo, pytest.mark.slow]

PAYLOAD = "nr_unsafe_payload"  # a module of the attacker's: any importable module works the same way
ON_IMPORT = "nr_unsafe_on_import"  # a module whose import alone writes the marker
LOADER_TIMEOUT = 180.0


@dataclass(frozen=True)
class Attack:
    """Opcodes that push one value (and run the payload when a real loader reads them)."""

    name: str
    ops: Callable[[str, tuple[str, int]], bytes]  # (marker path, a real storage (key, numel)) -> opcodes
    expect: str  # a global the report must name


def _touch(marker: str) -> bytes:
    return call(global_(PAYLOAD, "touch"), text(marker))


ATTACKS = [
    Attack("call", lambda m, s: _touch(m), f"{PAYLOAD}.touch"),
    Attack("reference", lambda m, s: global_(ON_IMPORT, "VALUE"), f"{ON_IMPORT}.VALUE"),
    # copyreg._reconstructor(cls, base, state) runs base.__init__(obj, state)
    Attack(
        "reconstructor",
        lambda m, s: call(global_("copyreg", "_reconstructor"), global_(PAYLOAD, "Touch"), global_(PAYLOAD, "Touch"), text(m)),
        f"{PAYLOAD}.Touch",
    ),
    # torch._tensor._rebuild_from_type_v2(func, new_type, args, state) runs func(*args)
    Attack(
        "rebuild-from-type",
        lambda m, s: call(global_("torch._tensor", "_rebuild_from_type_v2"), global_(PAYLOAD, "touch"),
                          global_(PAYLOAD, "Touch"), b"(" + text(m) + b"t", b"}"),
        f"{PAYLOAD}.touch",
    ),
    # a real tensor whose size tuple holds the call: it runs while torch builds the arguments
    Attack(
        "rebuild-tensor",
        lambda m, s: call(
            global_("torch._utils", "_rebuild_tensor_v2"),
            b"(" + text("storage") + global_("torch", "FloatStorage") + text(s[0]) + text("cpu")
            + b"J" + struct.pack("<i", s[1]) + b"tQ",  # the persistent id of a storage the zip holds
            b"K\x00",
            b"(" + _touch(m) + b"t",
            b"(K\x01t",
            b"\x89",
            call(global_("collections", "OrderedDict")),
        ),
        f"{PAYLOAD}.touch",
    ),
]


def _write_payload_modules(folder: Path, marker: Path) -> None:
    (folder / f"{PAYLOAD}.py").write_text(textwrap.dedent("""
        from pathlib import Path

        def touch(path):
            Path(path).write_text("ran")

        class Touch:
            def __init__(self, path):
                Path(path).write_text("ran")
    """))
    (folder / f"{ON_IMPORT}.py").write_text(f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\nVALUE = 1\n")


_LOADERS = {
    "torch.load": "import sys, torch\ntorch.load(sys.argv[1], map_location='cpu', weights_only=False)\n",
    "read_metadata": "import sys\nfrom torch.distributed.checkpoint import FileSystemReader\n"
                     "FileSystemReader(sys.argv[1]).read_metadata()\n",
}


def _real_loader_runs_it(loader: str, target: Path, payload_dir: Path, marker: Path) -> None:
    """The loader a resume uses reads ``target`` in a fresh interpreter, and the payload writes ``marker``."""
    env = {**os.environ, "PYTHONPATH": str(payload_dir), "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, "-c", _LOADERS[loader], str(target)], cwd=payload_dir, env=env,
                          capture_output=True, text=True, timeout=LOADER_TIMEOUT)
    assert marker.exists(), f"{loader} did not run the payload (exit {proc.returncode}): {proc.stderr[-2000:]}"


def _setup(tmp_path: Path) -> tuple[Path, Path]:
    payload_dir, marker = tmp_path / "attacker", tmp_path / "attacker" / "marker"
    payload_dir.mkdir()
    _write_payload_modules(payload_dir, marker)
    return payload_dir, marker


def _pair(kind: str, tmp_path: Path, request) -> tuple[Pair, Path]:
    """The pair of ``kind`` and the victim's trainer-state file (its data.pkl is what the attacks rewrite)."""
    if kind == "lightning":
        pair = lightning_pair(tmp_path, request.getfixturevalue("incident_ckpt"))
        return pair, pair.victim
    pair = megatron_pair(tmp_path, request.getfixturevalue("megatron_incident_ckpt"))
    return pair, pair.victim / "weights" / "common.pt"


# ------------------------------------------------------------------------------------------------- cases


@pytest.mark.parametrize("kind", ["lightning", "megatron"])
@pytest.mark.parametrize("attack", ATTACKS, ids=[a.name for a in ATTACKS])
def test_a_global_off_the_allow_list_in_the_trainer_state_is_refused_and_would_run(tmp_path, request, kind, attack):
    pair, target = _pair(kind, tmp_path, request)
    payload_dir, marker = _setup(tmp_path)
    storage = next(s for s in read_torch_file(target).storages if s.dtype == "float32")
    replace_zip_member(target, "data.pkl", insert_before_stop(data_pkl(target), attack.ops(str(marker), (storage.key, storage.numel))))

    runs = assert_contained(pair, expect=attack.expect)
    (victim,) = [c for c in runs.inspect_json.json["checkpoints"] if c["path"] == str(pair.victim)]
    assert "UNSAFE_PICKLE" in {p["code"] for p in victim["problems"]}
    assert attack.expect in {g["global"] for g in victim["unsafe_pickle_globals"]}
    assert attack.expect in " ".join(s["reason"] for s in runs.plan_json.json["skipped"])
    assert not marker.exists()  # inspect and plan never ran it ...

    _real_loader_runs_it("torch.load", target, payload_dir, marker)  # ... the resume would have


def test_a_call_in_dcp_metadata_is_refused_and_would_run(tmp_path, megatron_incident_ckpt):
    pair = megatron_pair(tmp_path, megatron_incident_ckpt)
    payload_dir, marker = _setup(tmp_path)
    metadata = pair.victim / "weights" / ".metadata"
    metadata.write_bytes(prefixed(metadata.read_bytes(), _touch(str(marker))))

    runs = assert_contained(pair, expect=f"{PAYLOAD}.touch")
    (victim,) = [c for c in runs.inspect_json.json["checkpoints"] if c["path"] == str(pair.victim)]
    assert {"file": "weights/.metadata", "global": f"{PAYLOAD}.touch"}.items() <= victim["unsafe_pickle_globals"][0].items()
    assert not marker.exists()

    _real_loader_runs_it("read_metadata", pair.victim / "weights", payload_dir, marker)


MARK_BOMB = b"\x80\x02" + b"(" * (8 << 20) + b"."  # 8 MiB of MARKs: 600 MiB for a walk that keeps a list per MARK


@pytest.mark.parametrize("where", ["lightning .ckpt", "megatron common.pt", "megatron .metadata"])
def test_a_mark_bomb_is_refused_within_the_memory_bound(tmp_path, request, where):
    pair, target = _pair(where.split()[0], tmp_path, request)
    if where.endswith(".metadata"):
        (pair.victim / "weights" / ".metadata").write_bytes(MARK_BOMB)
    else:
        replace_zip_member(target, "data.pkl", MARK_BOMB)
    assert_contained(pair, expect="MARKs at once")
