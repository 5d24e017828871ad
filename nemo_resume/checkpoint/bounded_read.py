"""Open only regular files, and read every one within a byte limit.

A checkpoint folder is data someone else wrote. A FIFO named ``common.pt`` blocks a plain ``open`` forever,
``/dev/zero`` linked as ``io.json`` reads until memory runs out, and a path checked with ``stat`` can be
swapped before it is opened. So every reader here opens with ``O_NONBLOCK`` (opening a FIFO returns at once),
then asks ``fstat`` on the open descriptor, which nothing can swap, whether it is a regular file; and reads
no more than the caller's limit from it. Either refusal is a :class:`RefusedFile`, one problem on the
checkpoint that holds the file.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


class RefusedFile(OSError):
    """A file the readers will not read: not a regular file, or larger than its limit.

    An ``OSError`` (``strerror`` says why), so every caller that already turns an unreadable file into a
    problem on its checkpoint handles this one too.
    """

    def __init__(self, path: Path, why: str) -> None:
        super().__init__(why)
        self.why = self.strerror = why
        self.filename = str(path)

    def __str__(self) -> str:
        return self.why


@dataclass(frozen=True)
class RegularFile:
    """An open regular file, or a window of one (:meth:`window`): its descriptor and its size when it was opened."""

    fd: int
    size: int
    path: Path
    start: int = 0  # where a window begins in the file; offsets given to read_at count from here
    is_window: bool = False  # reads stop at the window's end (a whole file is read to its real end)

    def window(self, offset: int, length: int) -> RegularFile:
        """Bytes ``offset`` to ``offset + length`` of this file as a file of their own, the way torch DCP hands one
        item of a ``.distcp`` file to ``torch.load`` (``_create_file_view``): nothing outside them can be read.

        Raises:
            ValueError: the window is not inside the file as opened.
        """
        if offset < 0 or length < 0 or offset + length > self.size:
            raise ValueError(f"bytes {offset}..{offset + length} are not inside the file's {self.size} bytes")
        return RegularFile(self.fd, length, self.path, self.start + offset, True)

    def read_at(self, offset: int, n: int) -> bytes:
        """Up to ``n`` bytes from ``offset`` (fewer only at the end of the file or window); never more than ``n``."""
        if self.is_window:
            n = max(0, min(n, self.size - offset))
        offset += self.start
        chunks, want = [], n
        while want > 0:
            chunk = os.pread(self.fd, want, offset)
            if not chunk:
                break
            chunks.append(chunk)
            offset += len(chunk)
            want -= len(chunk)
        return b"".join(chunks)

    def read_all(self, limit: int) -> bytes:
        """The whole file, refused unread if it holds more than ``limit`` bytes (or grows past it while read)."""
        if self.size > limit:
            raise RefusedFile(self.path, f"{self.size} bytes, over the {limit}-byte limit for this file")
        data = self.read_at(0, limit + 1)
        if len(data) > limit:
            raise RefusedFile(self.path, f"grew past the {limit}-byte limit for this file while it was read")
        return data


def _kind(mode: int) -> str:
    for test, kind in (
        (stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"),
    ):  # fmt: skip
        if test(mode):
            return kind
    return "a special file"


@contextmanager
def open_regular(path: Path) -> Iterator[RegularFile]:
    """Open ``path`` for reading if, once open, it is a regular file; raise :class:`RefusedFile` if not.

    Raises:
        RefusedFile: a FIFO, device, socket, directory or anything else that is not a regular file.
        OSError: it cannot be opened (missing, permission denied, ...).
    """
    fd = os.open(path, _OPEN_FLAGS)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise RefusedFile(path, f"{_kind(st.st_mode)}, not a regular file")
        yield RegularFile(fd, st.st_size, path)
    finally:
        os.close(fd)


def read_bytes(path: Path, limit: int) -> bytes:
    """All of ``path``, a regular file of at most ``limit`` bytes."""
    with open_regular(path) as f:
        return f.read_all(limit)


def read_json(path: Path, limit: int) -> Any:
    """``path`` parsed as JSON, read only if it is a regular file of at most ``limit`` bytes.

    The byte limit bounds the memory too: the costliest JSON per byte (``[{},{},...]``) takes about
    25 bytes of Python objects per byte of text; nesting is bounded by the interpreter's recursion limit.

    Raises:
        RefusedFile: see :func:`open_regular`, or over ``limit``.
        ValueError: not JSON (``json.JSONDecodeError``, ``UnicodeDecodeError``).
        RecursionError: nested deeper than the recursion limit.
    """
    return json.loads(read_bytes(path, limit))
