"""Files that never end, never answer, or lie about their size, planted in real checkpoints (issue 17).

Every case is a pair of real checkpoints (tests/support/hostile.py): a good step-400 copy and a step-499
victim that one attack class damages. :func:`assert_contained` then holds inspect and plan to the contract:
they finish (a FIFO that blocked them would run into the timeout), in bounded time and memory, the victim is
refused with a reason naming the class, the good copy is still chosen, and nothing on disk changes.

The classes: a FIFO or ``/dev/zero`` in place of a file the readers open; a ``data.pkl`` compressed with
bzip2 or lzma, declared at 1000 bytes and inflating to a gigabyte; a 33 MiB JSON document of ``{}``; a
15 MiB ``.metadata`` pickle of empty dicts (within its byte limit, 613 MiB once built); and the
zip-level mutations torch's own reader refuses or reads differently (tests/support/zip_parts.py).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from nemo_resume.constants import MAX_JSON_BYTES, MAX_PICKLE_CONTAINERS
from tests.support.hostile import Pair, assert_contained, lightning_pair, megatron_pair
from tests.support.zip_parts import MUTATIONS, Mutation, pickle_bomb, write_mutation

pytestmark = pytest.mark.nemo


def _files(pair: Pair, kind: str) -> dict[str, Path]:
    """The files of the victim the readers open, by the name the attack targets."""
    if kind == "megatron":
        weights = pair.victim / "weights"
        return {
            "common.pt": weights / "common.pt",
            "metadata.json": weights / "metadata.json",
            ".metadata": weights / ".metadata",
            "io.json": pair.victim / "context" / "io.json",
        }
    stem = pair.victim.with_name(pair.victim.name.removesuffix(".ckpt"))
    return {"ckpt": pair.victim, "io.json": stem / "context" / "io.json"}


def _fifo(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)


def _dev_zero(path: Path) -> None:
    path.unlink()
    path.symlink_to("/dev/zero")


def _json_of_empty_objects(path: Path) -> None:
    """A 33 MiB JSON array of ``{}``: 11 million dicts, 900 MB once parsed."""
    n = (33 << 20) // 3
    path.write_bytes(b"[" + b"{}," * (n - 1) + b"{}]")


def _pickle_of_empty_dicts(path: Path) -> None:
    """A 15 MiB pickle of 8 million empty dicts: 613 MiB and 20 s once built (before the container limit)."""
    path.write_bytes(b"\x80\x02]" + b"}a" * 8_000_000 + b".")


def _mutated(mutation: Mutation) -> Callable[[Path], None]:
    def apply(path: Path) -> None:
        write_mutation(path, mutation, path)

    return apply


_BY_NAME = {m.name: m for m in MUTATIONS}
#: One zip mutation of each class the issue names (torch refuses it or could read it differently), and a
#: word of the victim's reason.
ZIP_CLASSES = {
    "data.pkl twice, the second different": "two entries",
    "data.pkl and DATA.PKL": "two entries",
    "a storage under another folder": "outside the zip's folder",
    "zip64 total one short, on-disk right": "not a complete torch.save zip",
    "a storage's entry last, counts one short": "missing",
    "a storage's sizes halved": "its tensor needs",
    "a storage shorter than its tensor": "its tensor needs",
    "data.pkl deflated": "compressed",
    "a storage deflated": "compressed",
    "constants.pkl added": "TorchScript",
}

#: (attack, what it does to the file, the file, a word of the victim's reason)
ATTACKS: list[tuple[str, Callable[[Path], None], str, str]] = [
    ("fifo", _fifo, "common.pt", "not a regular file"),
    ("fifo", _fifo, "ckpt", "not a regular file"),
    ("fifo", _fifo, "metadata.json", "not a regular file"),
    ("fifo", _fifo, ".metadata", "not a regular file"),
    ("fifo", _fifo, "io.json", "not a regular file"),
    ("/dev/zero", _dev_zero, "common.pt", "not a regular file"),
    ("/dev/zero", _dev_zero, "ckpt", "not a regular file"),
    ("/dev/zero", _dev_zero, "metadata.json", "not a regular file"),
    ("/dev/zero", _dev_zero, "io.json", "not a regular file"),
    ("33 MiB of {}", _json_of_empty_objects, "io.json", f"{MAX_JSON_BYTES}-byte limit"),
    ("33 MiB of {}", _json_of_empty_objects, "metadata.json", f"{MAX_JSON_BYTES}-byte limit"),
    ("15 MiB pickle of {}", _pickle_of_empty_dicts, ".metadata", f"more than {MAX_PICKLE_CONTAINERS} containers"),
    ("bzip2 bomb", _mutated(pickle_bomb(12, 1 << 30)), "common.pt", "compressed"),
    ("bzip2 bomb", _mutated(pickle_bomb(12, 1 << 30)), "ckpt", "compressed"),
    ("lzma bomb", _mutated(pickle_bomb(14, 1 << 30)), "common.pt", "compressed"),
    ("lzma bomb", _mutated(pickle_bomb(14, 1 << 30)), "ckpt", "compressed"),
] + [
    (f"zip: {name}", _mutated(_BY_NAME[name]), target, expect)
    for name, expect in ZIP_CLASSES.items()
    for target in ("common.pt", "ckpt")
]


def _kinds(target: str) -> list[str]:
    if target in ("common.pt", "metadata.json", ".metadata"):
        return ["megatron"]
    return ["lightning"] if target == "ckpt" else ["megatron", "lightning"]


CASES = [
    (kind, damage, target, expect, f"{kind}-{attack}-{target}")
    for attack, damage, target, expect in ATTACKS
    for kind in _kinds(target)
]


@pytest.mark.parametrize("kind, damage, target, expect", [c[:4] for c in CASES], ids=[c[4] for c in CASES])
def test_a_planted_file_is_one_problem_on_its_checkpoint(
    tmp_path, incident_ckpt, megatron_incident_ckpt, kind, damage, target, expect
):
    if kind == "megatron":
        pair = megatron_pair(tmp_path, megatron_incident_ckpt)
    else:
        pair = lightning_pair(tmp_path, incident_ckpt)
    damage(_files(pair, kind)[target])
    assert_contained(pair, expect)
