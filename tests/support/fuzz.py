"""Damage real checkpoints the way crashes, bad copies and attackers do, and run the CLIs on them.

Test tooling (no NeMo needed to import it). Three kinds of pieces:

- running the CLIs: :func:`call_cli` (in this process, output captured), :func:`run_cli_measured` (in a
  fresh interpreter, with a timeout and the peak memory), :func:`tree_manifest` (what is on disk);
- hostile files: :func:`replace_zip_member` rewrites one entry of a ``torch.save`` zip (``data.pkl``),
  :func:`lie_about_size` patches its declared size, and :func:`shared_dag`, :func:`state_with` and the
  ``*_pickle`` builders write small pickles that would take exponential time, deep recursion or gigabytes
  to load naively;
- :class:`Mutation`: one random change to a copy of a real checkpoint (bytes flipped, truncated, emptied,
  removed, a JSON field changed), drawn by :func:`mutations` (a hypothesis strategy) and applied by
  :meth:`Mutation.apply`.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import stat
import struct
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "CliCall",
    "Mutation",
    "call_cli",
    "call_pickle",
    "deep_tuple_key_pickle",
    "lie_about_size",
    "mutations",
    "replace_zip_member",
    "run_cli_measured",
    "shared_dag",
    "shared_tuple_key_pickle",
    "state_with",
    "tree_manifest",
]


# ----------------------------------------------------------------------------------------- CLIs and disk


def tree_manifest(root: Path | str) -> dict[str, tuple]:
    """Every entry under ``root``: ``("file", size, mode, sha256)``, ``("link", target)``, ``("dir", mode)``
    or ``("special", mode)`` (a FIFO, socket or device, never opened).

    Links are recorded, never followed, so a dangling or looping link is fine.
    """
    root = Path(root)
    out: dict[str, tuple] = {}
    if not root.exists() and not root.is_symlink():
        return out
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            st = p.lstat()
            if p.is_symlink():
                out[rel] = ("link", os.readlink(p))
            elif p.is_dir():
                out[rel] = ("dir", st.st_mode)
            elif not stat.S_ISREG(st.st_mode):  # a FIFO or device: reading it would block or never end
                out[rel] = ("special", st.st_mode)
            else:
                try:
                    digest = hashlib.sha256(p.read_bytes()).hexdigest()
                except PermissionError:
                    digest = None
                out[rel] = ("file", st.st_size, st.st_mode, digest)
    return out


@dataclass(frozen=True)
class CliCall:
    """One CLI run: exit code, what it printed, how long it took and (in a subprocess) its peak memory."""

    code: int
    out: str
    err: str
    seconds: float = 0.0
    max_rss_mb: float = 0.0

    @property
    def json(self) -> Any:
        return json.loads(self.out)

    def one_line_error(self, prog: str) -> str:
        """The exit-2 contract: one line on stderr, ``PROG: error: ...``, no traceback. Returns the line."""
        lines = self.err.splitlines()
        assert self.code == 2, (self.code, self.err)
        assert len(lines) == 1 and lines[0].startswith(f"{prog}: error: "), self.err
        assert "Traceback" not in self.err
        return lines[0]


def call_cli(which: str, argv: list[str]) -> CliCall:
    """``nemo-resume inspect|plan ARGV`` in this process, output captured."""
    if which == "inspect":
        from nemo_resume.cli.inspect_cmd import main
    elif which == "plan":
        from nemo_resume.cli.plan_cmd import main
    else:
        raise ValueError(which)
    out, err = io.StringIO(), io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return CliCall(code, out.getvalue(), err.getvalue(), time.perf_counter() - start)


# Peak memory from VmHWM: getrusage's ru_maxrss keeps the parent's high-water mark across exec.
_MEASURED = """
import os, sys
from nemo_resume.cli.{module}_cmd import main
code = main(sys.argv[1:])
with open("/proc/self/status") as status, open(os.environ["NEMO_RESUME_RSS_OUT"], "w") as fh:
    fh.write(next(line.split()[1] for line in status if line.startswith("VmHWM:")))
sys.exit(code)
"""


def run_cli_measured(
    which: str, argv: list[str], *, timeout: float = 60.0, prefix: tuple[str, ...] = (), extra_path: str = ""
) -> CliCall:
    """Run ``nemo-resume <which> ARGV`` in a fresh interpreter: a hang becomes
    ``subprocess.TimeoutExpired``, a crash a negative code, and ``max_rss_mb`` its peak memory.

    Args:
        prefix: a command to run the interpreter under (``setpriv ...``).
        extra_path: a folder to add to ``PYTHONPATH``.
    """
    with tempfile.NamedTemporaryFile(suffix=".rss") as rss:
        env = {k: v for k, v in os.environ.items() if k != "NEMO_RESUME_DEBUG"}
        env["NEMO_RESUME_RSS_OUT"] = rss.name
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, extra_path, env.get("PYTHONPATH", "")) if p)
        cmd = [*prefix, sys.executable, "-c", _MEASURED.format(module=which), *argv]
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
        seconds = time.perf_counter() - start
        text = Path(rss.name).read_text().strip()
    return CliCall(proc.returncode, proc.stdout, proc.stderr, seconds, int(text) / 1024 if text else 0.0)


# ----------------------------------------------------------------------------------------- hostile files


def replace_zip_member(path: Path, suffix: str, payload: bytes | None = None, *, deflate_zeros: int = 0) -> str:
    """Rewrite the ``torch.save`` zip at ``path`` with its member ending in ``suffix`` replaced.

    The new member holds ``payload`` (stored, like torch writes it) or, with ``deflate_zeros=N``, N zero
    bytes compressed with deflate (a zip bomb: kilobytes on disk, N bytes when inflated), streamed so
    building it costs no memory. Returns the member's name.
    """
    with zipfile.ZipFile(path) as zf:
        members = [(i, zf.read(i)) for i in zf.infolist()]
    (name,) = [i.filename for i, _ in members if i.filename.endswith(suffix)]
    tmp = path.with_name(path.name + ".rewrite")
    with zipfile.ZipFile(tmp, "w") as out:
        for info, data in members:
            if info.filename != name:
                out.writestr(info, data)
            elif deflate_zeros:
                bomb = zipfile.ZipInfo(name)
                bomb.compress_type = zipfile.ZIP_DEFLATED
                chunk = bytes(1 << 20)
                with out.open(bomb, "w") as fh:
                    for start in range(0, deflate_zeros, len(chunk)):
                        fh.write(chunk[: min(len(chunk), deflate_zeros - start)])
            else:
                out.writestr(zipfile.ZipInfo(name), payload or b"")
    os.replace(tmp, path)
    return name


def lie_about_size(path: Path, member: str, declared: int) -> None:
    """Patch the uncompressed size a zip declares for ``member`` (local header and central directory)."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        offset = zf.getinfo(member).header_offset
    assert data[offset : offset + 4] == b"PK\x03\x04"
    struct.pack_into("<I", data, offset + 22, declared)
    central = data.find(b"PK\x01\x02")
    while central != -1:
        name_len = struct.unpack_from("<H", data, central + 28)[0]
        if data[central + 46 : central + 46 + name_len].decode() == member:
            struct.pack_into("<I", data, central + 24, declared)
            break
        central = data.find(b"PK\x01\x02", central + 4)
    path.write_bytes(bytes(data))


def _memo_put(i: int) -> bytes:
    return b"r" + struct.pack("<I", i)  # LONG_BINPUT


def _memo_get(i: int) -> bytes:
    return b"j" + struct.pack("<I", i)  # LONG_BINGET


def shared_dag(levels: int, *, tuples: bool = True, width: int = 2) -> bytes:
    """Pickle opcodes pushing one object: ``x0 = ()``, ``x{i+1} = (x_i,) * width`` (or a list), built
    from memo references, so it takes ``levels * width`` opcodes but has ``width ** levels`` leaves."""
    out = bytearray(b")" + _memo_put(0) + b"0")  # EMPTY_TUPLE, PUT 0, POP
    for i in range(levels):
        if tuples:
            out += b"(" + _memo_get(i) * width + b"t"  # MARK, GET i ..., TUPLE
        else:
            out += b"]" + b"(" + _memo_get(i) * width + b"e"  # EMPTY_LIST, MARK, GET i ..., APPENDS
        out += _memo_put(i + 1) + b"0"
    return bytes(out + _memo_get(levels))


def shared_tuple_key_pickle(levels: int = 64) -> bytes:
    """``{x: 1}`` for a tuple ``x`` with 2**levels leaves: building the dict hashes ``x`` (each level
    hashes its children again, so a plain unpickler never finishes)."""
    return b"\x80\x02}" + shared_dag(levels) + b"K\x01s."


def deep_tuple_key_pickle(depth: int = 1_000_000) -> bytes:
    """``{((((...)))): 1}``, ``depth`` tuples deep: hashing it recurses in C (a plain unpickler crashes)."""
    return b"\x80\x02}" + b")" + b"\x85" * depth + b"K\x01s."


def state_with(key: str, value_ops: bytes, *, step: int = 499) -> bytes:
    """A trainer-state-shaped pickle ``{"global_step": step, key: <value_ops>}``."""
    out = b"\x80\x02}(" + b"X\x0b\x00\x00\x00global_step" + b"J" + struct.pack("<i", step)
    enc = key.encode()
    return out + b"X" + struct.pack("<I", len(enc)) + enc + value_ops + b"u."


def call_pickle(module: str, name: str, args_ops: bytes) -> bytes:
    """Opcodes calling ``module.name(*args)`` (GLOBAL, args tuple, REDUCE)."""
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n" + args_ops + b"R"


# ----------------------------------------------------------------------------------------- mutations


@dataclass(frozen=True)
class Mutation:
    """One change to a file of a checkpoint, relative to the checkpoint's root.

    Attributes:
        file: the file's path relative to the root.
        kind: ``flip`` (XOR ``value`` into the byte at ``where``), ``truncate`` (keep ``where`` of the
            bytes, as a fraction), ``empty``, ``remove``, ``json`` (set key ``key`` to ``value``, or
            replace the document when ``key`` is None), ``append`` (add ``value`` bytes at the end),
            ``pickle-flip`` / ``pickle-truncate`` (the same, to the ``data.pkl`` inside a torch.save
            zip, which is then rewritten as a valid zip: the damage reaches the unpickler, not the CRC).
    """

    file: str
    kind: str
    where: float = 0.0
    value: Any = None
    key: str | None = None

    def apply(self, root: Path) -> bool:
        """Change the file; True when this removed bytes from it (or from its pickle), or removed it."""
        path = root / self.file
        if not path.exists():
            return False
        if self.kind == "remove":
            path.unlink()
            return True
        if self.kind.startswith("pickle-"):
            return self._damage_data_pkl(path)
        data = path.read_bytes()
        cut = False
        if self.kind == "empty":
            data, cut = b"", bool(data)
        elif self.kind == "truncate":
            data, cut = data[: int(len(data) * self.where)], self.where < 1 and bool(data)
        elif self.kind == "flip" and data:
            i = min(int(len(data) * self.where), len(data) - 1)
            data = data[:i] + bytes([data[i] ^ (self.value or 1)]) + data[i + 1 :]
        elif self.kind == "append":
            data = data + bytes(self.value)
        elif self.kind == "json":
            try:
                doc = json.loads(data)
            except ValueError:
                doc = None
            if self.key is None or not isinstance(doc, dict):
                doc = self.value
            else:
                _set_json(doc, self.key, self.value)
            data = json.dumps(doc).encode()
        path.write_bytes(data)
        return cut

    def _damage_data_pkl(self, path: Path) -> bool:
        try:
            with zipfile.ZipFile(path) as zf:
                (name,) = [n for n in zf.namelist() if n.endswith("data.pkl")]
                data = zf.read(name)
            cut = False
            if self.kind == "pickle-truncate":
                data, cut = data[: int(len(data) * self.where)], self.where < 1
            elif data:
                i = min(int(len(data) * self.where), len(data) - 1)
                data = data[:i] + bytes([data[i] ^ (self.value if isinstance(self.value, int) else 1)]) + data[i + 1 :]
            replace_zip_member(path, "data.pkl", data)
        except Exception:  # noqa: BLE001 - BadZipFile, EOFError, CRC errors...: not a readable zip (any more)
            return False
        return cut


def _set_json(doc: dict, key: str, value: Any) -> None:
    """Set ``key`` wherever it occurs in ``doc`` (fiddle's leaves sit deep in ``objects``)."""
    stack = [doc]
    hit = False
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if key in node:
                node[key] = value
                hit = True
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    if not hit:
        doc[key] = value


def mutations(files: list[str], json_files: list[str], zip_files: list[str] = ()):
    """A hypothesis strategy: a list of 1-4 :class:`Mutation` of ``files`` (JSON edits for ``json_files``,
    damage inside the pickle for ``zip_files``)."""
    from hypothesis import strategies as st

    json_values = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**63), 2**63),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=12),
        st.lists(st.integers(), max_size=3),
        st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
    )
    json_keys = st.sampled_from(
        ["sharded_backend", "value", "paths", "objects", "type", "items", "key", "module", "name", "root", "metadata"]
    )
    byte_edit = st.builds(
        Mutation,
        file=st.sampled_from(files),
        kind=st.sampled_from(["flip", "flip", "flip", "truncate", "empty", "remove", "append"]),
        where=st.floats(0, 1),
        value=st.one_of(st.integers(1, 255), st.binary(min_size=1, max_size=64)),
    ).map(_fit_value)
    edits = [byte_edit]
    if zip_files:
        edits.append(
            st.builds(
                Mutation,
                file=st.sampled_from(list(zip_files)),
                kind=st.sampled_from(["pickle-flip", "pickle-flip", "pickle-truncate"]),
                where=st.floats(0, 1),
                value=st.integers(1, 255),
            )
        )
    if json_files:
        edits.append(
            st.builds(
                Mutation,
                file=st.sampled_from(json_files),
                kind=st.just("json"),
                key=st.one_of(st.none(), json_keys),
                value=json_values,
            )
        )
    return st.lists(st.one_of(*edits), min_size=1, max_size=4)


def _fit_value(m: Mutation) -> Mutation:
    # flip takes an int mask, append takes bytes
    if m.kind == "flip" and not isinstance(m.value, int):
        return Mutation(m.file, m.kind, m.where, (m.value[0] or 1), m.key)
    if m.kind == "append" and isinstance(m.value, int):
        return Mutation(m.file, m.kind, m.where, bytes([m.value]), m.key)
    return m
