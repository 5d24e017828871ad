"""Pickle opcodes an attacker writes, and where they go in a real checkpoint's pickle (issue 17's unsafe pickles).

The opcodes are spelled out (not produced by ``pickle.dumps``) because the point is what a loader does with
bytes no pickler of NeMo, Lightning or torch writes.
"""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path


def text(s: str) -> bytes:
    """BINUNICODE ``s``."""
    raw = s.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def global_(module: str, name: str) -> bytes:
    """GLOBAL ``module.name`` (protocols 0-3)."""
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def stack_global(module: str, name: str) -> bytes:
    """``module.name`` as protocol 4 names it: two memoized strings, then STACK_GLOBAL."""
    return text(module) + b"\x94" + text(name) + b"\x94\x93"  # MEMOIZE after each, STACK_GLOBAL


def call(func: bytes, *args: bytes) -> bytes:
    """``func(*args)``: MARK, the arguments, TUPLE, REDUCE."""
    return func + b"(" + b"".join(args) + b"tR"


def insert_before_stop(pickle_bytes: bytes, ops: bytes) -> bytes:
    """``ops`` (pushing one value) run after everything else in a ``torch.save`` pickle, then popped: deep in
    the file, not in its first bytes. torch.save writes protocol 2, which has no frames to keep consistent."""
    assert pickle_bytes.startswith(b"\x80\x02") and pickle_bytes.endswith(b"."), pickle_bytes[:2]
    return pickle_bytes[:-1] + ops + b"0."


def prefixed(pickle_bytes: bytes, ops: bytes) -> bytes:
    """``ops`` (pushing one value) before a protocol-4 pickle's first frame (torch DCP's ``.metadata``), popped."""
    return b"\x80\x04" + ops + b"0" + pickle_bytes


def data_pkl(path: Path) -> bytes:
    """The ``data.pkl`` of a ``torch.save`` zip (a ``.ckpt``, ``common.pt``)."""
    with zipfile.ZipFile(path) as zf:
        (name,) = [n for n in zf.namelist() if n.endswith("/data.pkl")]
        return zf.read(name)
