"""Read a ``torch.save`` zip the way ``torch.load`` reads it, and refuse every file it could read otherwise.

``torch.load`` does not use Python's ``zipfile``: it reads with ``PyTorchStreamReader``
(``caffe2/serialize/inline_container.cc``) over the miniz 3.0.2 that torch bundles, built without CRC checks.
The two disagree on crafted files: with two ``data.pkl`` members ``zipfile`` reads the last one and miniz
whichever its binary search lands on; miniz finds names case-insensitively, ignores the local header's name
and sizes, and takes its entry counts from the zip64 record. So this module ports the rules torch's reader
applies, in its order, and reads ``data.pkl`` and each storage from exactly where torch would:

- the file starts with ``PK\\x03\\x04`` (``torch.serialization._is_zipfile``);
- the end-of-central-directory record, its zip64 locator and record, the counts, disks, sizes and offsets,
  and every central directory entry pass miniz's ``mz_zip_reader_read_central_dir``;
- every name starts with the first name's folder and is UTF-8 (``getAllRecords``, listed as Python
  strings), and none is ``constants.pkl`` (``torch.load`` would hand the file to ``torch.jit.load``);
- ``version`` (or ``.data/version``) parses as torch's ``std::stoull`` does and is a version it reads;
  ``.data/serialization_id``, ``.format_version``, ``byteorder`` and ``.storage_alignment`` read as in
  ``torch.serialization._load``;
- each record read passes ``mz_zip_reader_file_stat`` and ``mz_zip_reader_extract_to_mem`` (method, flags,
  local header signature, data inside the file), and each storage record holds exactly the bytes the
  pickle says (``getRecord``'s size check).

Where torch would read a file but another reader could read it differently, or torch's result depends on
uninitialised memory, the file is refused too: two members whose names differ only in case, a name with a
NUL byte, a record marked a directory or holding no bytes for a non-empty size, any compression on a record
torch reads (``torch.save`` never compresses; inflating is how a kilobyte becomes gigabytes), and a
``byteorder`` other than ``little`` (torch would byte-swap every tensor). CRCs are not checked, as torch
does not check them. Only the central directory, a few small records, local headers and ``data.pkl`` are
read, each within a limit from :mod:`nemo_resume.constants`; tensor bytes never are.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from nemo_resume.checkpoint.bounded_read import RegularFile, open_regular
from nemo_resume.constants import MAX_TORCH_RECORD_BYTES, MAX_ZIP_CENTRAL_DIR_BYTES

_LOCAL_SIG, _CDIR_SIG, _EOCD_SIG = 0x04034B50, 0x02014B50, 0x06054B50
_Z64_LOCATOR_SIG, _Z64_EOCD_SIG = 0x07064B50, 0x06064B50
_LOCAL_SIZE, _CDIR_SIZE, _EOCD_SIZE, _Z64_LOCATOR_SIZE, _Z64_EOCD_SIZE = 30, 46, 22, 20, 56
_U16, _U32 = 0xFFFF, 0xFFFFFFFF
_ZIP64_EXTRA_ID = 0x0001
_FLAG_ENCRYPTED, _FLAG_PATCH, _FLAG_STRONG_ENCRYPTION, _FLAG_MASKED = 0x1, 0x20, 0x40, 0x2000
_DOS_DIRECTORY = 0x10
_STORED, _DEFLATED = 0, 8
_EOCD_SEARCH = _U16 + _EOCD_SIZE  # miniz gives up this far from the end
_NAME_BUFFER = 512  # MZ_ZIP_MAX_ARCHIVE_FILENAME_SIZE: getAllRecords sees at most 511 bytes of a name
_VERSIONS = range(1, 11)  # caffe2/serialize/versions.h: kMinSupportedFileFormatVersion..kMaxSupportedFileFormatVersion
_ITEM_SIZE = {  # bytes per element of each storage dtype safe_pickle names
    "float64": 8, "float32": 4, "float16": 2, "bfloat16": 2, "int64": 8, "int32": 4, "int16": 2, "int8": 1,
    "uint8": 1, "bool": 1, "complex64": 8, "complex128": 16,
}  # fmt: skip


class TorchZipError(Exception):
    """torch's reader would refuse this file, or could read something other than what we read."""


def _u16(b: bytes, at: int) -> int:
    return int(struct.unpack_from("<H", b, at)[0])


def _u32(b: bytes, at: int) -> int:
    return int(struct.unpack_from("<I", b, at)[0])


def _u64(b: bytes, at: int) -> int:
    return int(struct.unpack_from("<Q", b, at)[0])


@dataclass(frozen=True)
class _Member:
    """One central directory entry as ``mz_zip_file_stat_internal`` reports it."""

    flags: int
    method: int
    comp_size: int
    size: int
    header_offset: int
    is_directory: bool


def _zip64_values(extra: bytes, sizes: list[int], *, strict: bool) -> bool:
    """Replace each of ``sizes`` (uncompressed, compressed, header offset) that is 0xFFFFFFFF with its
    value from the zip64 extra field, as miniz does; False if the extra data is malformed.

    ``strict`` is ``mz_zip_file_stat_internal`` (a missing value is an error); the central directory
    walk instead skips values the field is too short for, and reads them after the field's own header.
    """
    at, remaining = 0, len(extra)
    while remaining:
        if remaining < 4:
            return False
        field_id, field_size = _u16(extra, at), _u16(extra, at + 2)
        if field_size + 4 > remaining:
            return False
        if field_id == _ZIP64_EXTRA_ID:
            break
        at, remaining = at + 4 + field_size, remaining - 4 - field_size
    else:
        return True
    if strict:
        data, left = extra[at + 4 : at + 4 + field_size], field_size
    else:
        data, left = extra[at + 4 : at + remaining], remaining - 4
    pos = 0
    for i in range(3):
        if sizes[i] == _U32:
            if left < 8:
                if strict:
                    return False
                continue
            sizes[i], pos, left = _u64(data, pos), pos + 8, left - 8
    return True


def _broken(why: str) -> TorchZipError:
    """A zip torch's reader fails to open (its structure is damaged or was built to mislead)."""
    return TorchZipError(f"not a complete torch.save zip ({why})")


class _Archive:
    """The central directory of an open torch zip, read by miniz's rules (``mz_zip_reader_init``)."""

    def __init__(self, f: RegularFile) -> None:
        self.f = f
        self.size = f.size
        eocd_at = self._find_eocd()
        eocd = f.read_at(eocd_at, _EOCD_SIZE)
        total, on_disk = _u16(eocd, 10), _u16(eocd, 8)
        this_disk, cdir_disk = _u16(eocd, 4), _u16(eocd, 6)
        cdir_size, cdir_ofs = _u32(eocd, 12), _u32(eocd, 16)
        z64 = self._zip64_record(eocd_at)
        if z64 is not None:
            record, disks = z64
            if _u64(record, 4) < _Z64_EOCD_SIZE - 12:
                raise _broken("its zip64 end record is shorter than the format allows")
            if disks != 1:
                raise _broken("its zip64 locator names more than one disk")
            total, on_disk, z64_cdir_size = _u64(record, 32), _u64(record, 24), _u64(record, 40)
            if total > _U32 or on_disk > _U32 or z64_cdir_size > _U32:
                raise _broken("its zip64 end record counts more entries or bytes than torch reads")
            cdir_size, this_disk, cdir_disk = z64_cdir_size, _u32(record, 16), _u32(record, 20)
            cdir_ofs = _u64(record, 48)
        if total != on_disk:
            raise _broken(f"its end record counts {total} entries in all but {on_disk} on this disk")
        if (this_disk | cdir_disk) != 0 and (this_disk != 1 or cdir_disk != 1):
            raise _broken("its end record says the zip spans several disks")
        if cdir_size < total * _CDIR_SIZE or cdir_ofs + cdir_size > self.size:
            raise _broken("its end record's central directory size or offset lies outside the file")
        if cdir_size > MAX_ZIP_CENTRAL_DIR_BYTES:
            raise TorchZipError(
                f"its central directory is {cdir_size} bytes, over the {MAX_ZIP_CENTRAL_DIR_BYTES}-byte limit"
            )
        self.entries: list[bytes] = []  # each entry's fixed header, name and extra field
        cdir = f.read_at(cdir_ofs, cdir_size) if total else b""
        self._walk(cdir, total, this_disk)

    def _find_eocd(self) -> int:
        """``mz_zip_reader_locate_header_sig``: the last end record signature with 22 bytes after it."""
        if self.size < _EOCD_SIZE:
            raise _broken(f"{self.size} bytes; truncated or not a checkpoint")
        block = 4096
        at = max(self.size - block, 0)
        while True:
            buf = self.f.read_at(at, min(block, self.size - at))
            for i in range(len(buf) - 4, -1, -1):
                if _u32(buf, i) == _EOCD_SIG and self.size - (at + i) >= _EOCD_SIZE:
                    return at + i
            if at == 0 or self.size - at >= _EOCD_SEARCH:
                raise _broken("no end-of-central-directory record; truncated or not a checkpoint")
            at = max(at - (block - 3), 0)

    def _zip64_record(self, eocd_at: int) -> tuple[bytes, int] | None:
        """The zip64 end record and the locator's disk count, if the locator and record are where miniz looks."""
        if eocd_at < _Z64_LOCATOR_SIZE + _Z64_EOCD_SIZE:
            return None
        locator = self.f.read_at(eocd_at - _Z64_LOCATOR_SIZE, _Z64_LOCATOR_SIZE)
        if _u32(locator, 0) != _Z64_LOCATOR_SIG:
            return None
        at = _u64(locator, 8)
        if at > self.size - _Z64_EOCD_SIZE:
            raise _broken("its zip64 locator points past the end of the file")
        record = self.f.read_at(at, _Z64_EOCD_SIZE)
        if len(record) < _Z64_EOCD_SIZE or _u32(record, 0) != _Z64_EOCD_SIG:
            return None
        return record, _u32(locator, 16)

    def _walk(self, cdir: bytes, total: int, this_disk: int) -> None:
        """``mz_zip_reader_read_central_dir``'s checks on each entry."""
        p = 0
        for _ in range(total):
            n = len(cdir) - p
            if n < _CDIR_SIZE or _u32(cdir, p) != _CDIR_SIG:
                raise _broken("a central directory entry is missing or corrupt")
            name_len, extra_len, comment_len = _u16(cdir, p + 28), _u16(cdir, p + 30), _u16(cdir, p + 32)
            sizes = [_u32(cdir, p + 24), _u32(cdir, p + 20), _u32(cdir, p + 42)]
            entry_len = _CDIR_SIZE + name_len + extra_len + comment_len
            if entry_len > n:  # miniz finds this after the checks below; refused either way
                raise _broken("a central directory entry runs past the directory")
            if extra_len and max(sizes) == _U32:
                start = p + _CDIR_SIZE + name_len
                if not _zip64_values(cdir[start : start + extra_len], sizes, strict=False):
                    raise _broken("a central directory entry has a malformed extra field")
            size, comp_size, header_offset = sizes
            if comp_size != _U32 and size != _U32:
                method_and_time = _u32(cdir, p + 10)  # miniz reads the method as 32 bits, the time included
                if (method_and_time == 0 and size != comp_size) or (size and not comp_size):
                    raise _broken("a stored entry's sizes disagree, or a non-empty one has no bytes")
            disk = _u16(cdir, p + 34)
            if disk == _U16 or (disk != this_disk and disk != 1):
                raise _broken("an entry says it lives on another disk")
            if comp_size != _U32 and (header_offset + _LOCAL_SIZE + comp_size) % 2**64 > self.size:  # miniz's u64 sum
                raise _broken("an entry's data runs past the end of the file")
            if _u16(cdir, p + 8) & _FLAG_MASKED:
                raise _broken("an entry has a masked (encrypted) local header")
            self.entries.append(cdir[p : p + _CDIR_SIZE + name_len + extra_len])
            p += entry_len


def _stat(entry: bytes) -> _Member | None:
    """``mz_zip_file_stat_internal`` on a central directory entry; None where it fails."""
    name_len, extra_len = _u16(entry, 28), _u16(entry, 30)
    sizes = [_u32(entry, 24), _u32(entry, 20), _u32(entry, 42)]
    if max(sizes) == _U32 and extra_len and not _zip64_values(entry[_CDIR_SIZE + name_len :], sizes, strict=True):
        return None
    is_dir = entry[_CDIR_SIZE : _CDIR_SIZE + name_len].endswith(b"/") or bool(_u32(entry, 38) & _DOS_DIRECTORY)
    return _Member(_u16(entry, 8), _u16(entry, 10), sizes[1], sizes[0], sizes[2], is_dir)


def _stoull(text: bytes) -> int | None:
    """C++ ``std::stoull``: leading space, an optional sign, base-10 digits; None where it throws."""
    s = text.lstrip(b" \t\n\v\f\r")
    negative = s[:1] == b"-"
    if s[:1] in (b"+", b"-"):
        s = s[1:]
    digits = len(s) - len(s.lstrip(b"0123456789"))
    if not digits:
        return None  # std::invalid_argument
    significant = s[:digits].lstrip(b"0")
    if len(significant) > 20 or int(significant or b"0") >= 2**64:
        return None  # std::out_of_range
    value = int(significant or b"0")
    return (2**64 - value) % 2**64 if negative else value


class TorchZip:
    """An open torch zip that passed torch's reader's rules: read its pickle, check its storages."""

    def __init__(self, archive: _Archive) -> None:
        self._archive = archive
        names = [e[_CDIR_SIZE : _CDIR_SIZE + _u16(e, 28)] for e in archive.entries]
        if not names:
            raise TorchZipError("the zip has no entries; not a torch.save file")
        if any(b"\0" in name for name in names):
            raise TorchZipError("an entry's name holds a NUL byte; readers disagree on where it ends")
        first = names[0]
        if b"/" not in first:
            raise TorchZipError(f"its first entry {first[:80]!r} is not in a folder, as torch.save writes")
        self.folder = first[: first.index(b"/") + 1]
        self._by_name: dict[bytes, bytes] = {}
        for name, entry in zip(names, archive.entries):  # miniz finds names case-insensitively
            if self._by_name.setdefault(name.lower(), entry) is not entry:
                raise TorchZipError(f"two entries are named {name[:80]!r}; readers disagree on which one is meant")
            seen = name[: _NAME_BUFFER - 1]
            if not seen.startswith(self.folder):
                raise TorchZipError(f"entry {name[:80]!r} is outside the zip's folder {self.folder[:80]!r}")
            try:  # torch.load lists the records as Python strings
                seen[len(self.folder) :].decode()
            except UnicodeDecodeError as exc:
                raise TorchZipError(f"entry {name[:80]!r} is not UTF-8; torch.load fails listing it") from exc
            if seen[len(self.folder) :] == b"constants.pkl":
                raise TorchZipError("it holds constants.pkl: torch.load would read it as TorchScript, not data.pkl")
        self._check_records()

    def _extent(self, record: str) -> tuple[int, int] | None:
        """(offset, size) of ``record``'s bytes where torch's ``getRecord`` reads them; None if absent.

        Raises:
            TorchZipError: torch fails to read it, or would read it differently (compressed, or marked a
                directory or empty: torch then returns uninitialised memory).
        """
        entry = self._entry(record)
        if entry is None:
            return None
        member = _stat(entry)
        if member is None:
            raise TorchZipError(f"record {record} has a malformed zip64 extra field")
        if member.flags & (_FLAG_ENCRYPTED | _FLAG_STRONG_ENCRYPTION | _FLAG_PATCH):
            raise TorchZipError(f"record {record} is encrypted or a patch; torch cannot read it")
        if member.method != _STORED:
            kind = "compressed" if member.method == _DEFLATED else f"compressed with method {member.method}"
            raise TorchZipError(f"record {record} is {kind}; torch.save never compresses, refusing it")
        if member.is_directory or not member.comp_size:
            if member.size:
                raise TorchZipError(f"record {record} is marked a directory or empty; torch would read garbage")
            return member.header_offset, 0  # miniz returns before reading anything
        header = self._archive.f.read_at(member.header_offset, _LOCAL_SIZE)
        if len(header) != _LOCAL_SIZE or _u32(header, 0) != _LOCAL_SIG:
            raise TorchZipError(f"record {record} has no local header where the central directory says")
        start = member.header_offset + _LOCAL_SIZE + _u16(header, 26) + _u16(header, 28)
        if start + max(member.comp_size, member.size) > self._archive.size:
            raise TorchZipError(f"record {record} runs past the end of the file")
        return start, member.size

    def _read(self, record: str, limit: int) -> bytes:
        """The bytes torch's ``getRecord`` returns for ``record``, refused past ``limit``."""
        extent = self._extent(record)
        if extent is None:
            raise TorchZipError(f"record {record} is missing")
        start, size = extent
        if size > limit:
            raise TorchZipError(f"record {record} is {size} bytes; refusing more than {limit} bytes")
        return self._archive.f.read_at(start, size)

    def _entry(self, record: str) -> bytes | None:
        """The central directory entry miniz finds for ``record`` (names compare case-insensitively)."""
        try:
            name = self.folder + record.encode()
        except UnicodeEncodeError as exc:  # a lone surrogate from the pickle: torch fails to pass it to C++
            raise TorchZipError(f"record name {record[:40]!r} is not UTF-8; torch cannot look it up") from exc
        return self._by_name.get(name.lower())

    def _has(self, record: str) -> bool:
        return self._entry(record) is not None

    def _check_records(self) -> None:
        """The small records ``PyTorchStreamReader::init`` and ``torch.serialization._load`` read."""
        if self._has(".data/serialization_id"):
            self._read(".data/serialization_id", MAX_TORCH_RECORD_BYTES)
        version = _stoull(
            self._read(".data/version" if self._has(".data/version") else "version", MAX_TORCH_RECORD_BYTES)
        )
        if version not in _VERSIONS:
            raise TorchZipError(f"its format version is not one torch reads ({_VERSIONS.start}..{_VERSIONS.stop - 1})")
        if self._has(".format_version"):
            self._read(".format_version", MAX_TORCH_RECORD_BYTES)
        if self._has("byteorder") and self._read("byteorder", MAX_TORCH_RECORD_BYTES) != b"little":
            raise TorchZipError("its byteorder is not little; torch would byte-swap or refuse every tensor")
        if self._has(".storage_alignment"):
            try:
                int(self._read(".storage_alignment", MAX_TORCH_RECORD_BYTES))
            except ValueError as exc:
                raise TorchZipError("its .storage_alignment is not a number; torch.load fails on it") from exc

    def read_pickle(self, limit: int) -> bytes:
        """``data.pkl`` as torch reads it, refused past ``limit`` bytes."""
        return self._read("data.pkl", limit)

    def storage_extent(self, key: str) -> tuple[int, int] | None:
        """(offset, size) of storage ``key``'s bytes in the file, where torch reads them; None if absent."""
        return self._extent(f"data/{key}")

    def check_storages(self, refs: Iterable[tuple[str, str, int]]) -> None:
        """Each storage the pickle names, as (key, dtype, element count) in pickle order, holds exactly the
        bytes torch's ``get_storage_from_record`` needs for the first reference that reads it."""
        loaded: set[str] = set()
        for key, dtype, numel in refs:
            if key in loaded:
                continue  # torch.load reuses the storage it read first
            item = _ITEM_SIZE.get(dtype)
            if item is None or numel < 0:
                raise TorchZipError(f"storage {key[:40]!r} has an unknown type or size; not one torch.save writes")
            nbytes = numel * item
            if not nbytes:
                continue  # never read, and not kept: a later reference reads it again
            extent = self.storage_extent(key)
            if extent is None:
                raise TorchZipError(f"tensor storage {key[:40]} is missing from the zip")
            if extent[1] != nbytes:
                raise TorchZipError(f"tensor storage {key[:40]} holds {extent[1]} bytes but its tensor needs {nbytes}")
            loaded.add(key)


def torch_zip_in(f: RegularFile) -> TorchZip:
    """``f`` (a whole file, or the window of a ``.distcp`` file torch DCP hands ``torch.load``) checked as
    torch's reader would open it, for :meth:`TorchZip.read_pickle`.

    Raises:
        TorchZipError: torch would refuse it, or could read it differently.
    """
    if f.read_at(0, 4) != b"PK\x03\x04":  # torch.load would try its legacy format (another pickle) instead
        raise _broken("File is not a zip file")
    return TorchZip(_Archive(f))


@contextmanager
def open_torch_zip(path: Path) -> Iterator[TorchZip]:
    """``path`` opened and checked as torch's reader would open it (:func:`torch_zip_in`).

    Raises:
        TorchZipError: torch would refuse it, or could read it differently.
        RefusedFile: not a regular file (see :mod:`nemo_resume.checkpoint.bounded_read`).
        OSError: it cannot be opened.
    """
    with open_regular(path) as f:
        yield torch_zip_in(f)
