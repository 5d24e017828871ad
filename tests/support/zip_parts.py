"""A ``torch.save`` zip cut into parts to rewrite, and the zip-level mutations the torch-zip tests apply.

Test tooling: :class:`Zip` parses a real ``torch.save`` file into its local headers and data, central
directory entries and end records, and :meth:`Zip.build` writes it back (byte for byte when unchanged),
recomputing counts, sizes and offsets unless a mutation pins them. :data:`MUTATIONS` are the targeted
changes (duplicate and case-folded names, folders, end-record counts, sizes, offsets, flags, compression,
the small records torch reads), :func:`byte_flips` a fixed sample of single-byte changes to the zip's
structure, :func:`write_mutation` applies one to a copy. Each :class:`Mutation` names in ``stricter`` the
rule of :mod:`nemo_resume.checkpoint.torch_zip` that refuses it although torch reads it.
"""

from __future__ import annotations

import bz2
import functools
import lzma
import random
import struct
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

# ----------------------------------------------------------------------------------------- a zip in parts


def u16(b: bytes | bytearray, at: int) -> int:
    return int(struct.unpack_from("<H", b, at)[0])


def u32(b: bytes | bytearray, at: int) -> int:
    return int(struct.unpack_from("<I", b, at)[0])


@dataclass
class Zip:
    """A torch.save zip cut into what a mutation edits; :meth:`build` recomputes counts and offsets."""

    body: bytearray  # local headers and data, up to the central directory
    entries: list[bytearray]  # central directory entries: fixed header, name, extra, comment
    zip64: bytearray | None  # the zip64 end record and locator torch.save writes
    locator: bytearray | None
    eocd: bytearray
    keep: set[str] = field(default_factory=set)  # end-record fields build() must not recompute

    @classmethod
    def parse(cls, raw: bytes) -> Zip:
        eocd_at = len(raw) - 22
        assert u32(raw, eocd_at) == 0x06054B50
        zip64 = locator = None
        cdir_ofs, count = u32(raw, eocd_at + 16), u16(raw, eocd_at + 10)
        if u32(raw, eocd_at - 20) == 0x07064B50:
            locator = bytearray(raw[eocd_at - 20 : eocd_at])
            z64_at = struct.unpack_from("<Q", locator, 8)[0]
            zip64 = bytearray(raw[z64_at : z64_at + 56])
            cdir_ofs, count = struct.unpack_from("<Q", zip64, 48)[0], struct.unpack_from("<Q", zip64, 32)[0]
        entries, p = [], cdir_ofs
        for _ in range(count):
            n = 46 + u16(raw, p + 28) + u16(raw, p + 30) + u16(raw, p + 32)
            entries.append(bytearray(raw[p : p + n]))
            p += n
        return cls(bytearray(raw[:cdir_ofs]), entries, zip64, locator, bytearray(raw[eocd_at:]))

    def build(self) -> bytes:
        cdir = b"".join(self.entries)
        cdir_ofs, n = len(self.body), len(self.entries)
        eocd = bytearray(self.eocd)
        if "counts" not in self.keep:
            struct.pack_into("<HH", eocd, 8, min(n, 0xFFFF), min(n, 0xFFFF))
        struct.pack_into("<II", eocd, 12, len(cdir), cdir_ofs)
        tail = b""
        if self.zip64 is not None and self.locator is not None:
            z64, loc = bytearray(self.zip64), bytearray(self.locator)
            if "counts" not in self.keep:
                struct.pack_into("<QQ", z64, 24, n, n)
            struct.pack_into("<QQ", z64, 40, len(cdir), cdir_ofs)
            struct.pack_into("<Q", loc, 8, cdir_ofs + len(cdir))
            tail = bytes(z64 + loc)
        return bytes(self.body) + cdir + tail + bytes(eocd)

    def index(self, record: str) -> int:
        names = [self.name(e) for e in self.entries]
        return next(i for i, n in enumerate(names) if n.endswith(b"/" + record.encode()))

    def entry(self, record: str) -> bytearray:
        return self.entries[self.index(record)]

    @staticmethod
    def name(entry: bytearray) -> bytes:
        return bytes(entry[46 : 46 + u16(entry, 28)])

    @staticmethod
    def rename(entry: bytearray, new: bytes) -> None:
        old_len = u16(entry, 28)
        entry[46 : 46 + old_len] = new
        struct.pack_into("<H", entry, 28, len(new))

    def local_at(self, record: str) -> int:
        return u32(self.entry(record), 42)

    def add(self, name: bytes, data: bytes, *, method: int = 0, stored: bytes | None = None) -> bytearray:
        """Append a member (``stored`` = its bytes on disk when they are not ``data``); returns its entry."""
        payload = data if stored is None else stored
        crc = zlib.crc32(data)
        lho = len(self.body)
        self.body += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, method, 0, 0, crc, len(payload), len(data), len(name), 0)
        self.body += name + payload
        entry = bytearray(
            struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, method, 0, 0, crc, len(payload), len(data),
                        len(name), 0, 0, 0, 0, 0, lho) + name
        )  # fmt: skip
        self.entries.append(entry)
        return entry

    def data_of(self, record: str) -> bytes:
        lho = self.local_at(record)
        start = lho + 30 + u16(self.body, lho + 26) + u16(self.body, lho + 28)
        return bytes(self.body[start : start + u32(self.entry(record), 24)])


# ----------------------------------------------------------------------------------------- the mutations


@dataclass(frozen=True)
class Mutation:
    """One change to a real torch.save zip; ``stricter`` is a word of the reason our reader gives where it
    refuses a file torch reads (tests/checkpoint/test_torch_zip.py's ``STRICTER``)."""

    name: str
    apply: Callable[[Zip], bytes | None]  # edits the parts, or returns the file's bytes itself
    stricter: str = ""


def _set(record: str, offset: int, fmt: str, value: int) -> Callable[[Zip], None]:
    return lambda z: struct.pack_into(fmt, z.entry(record), offset, value)


def _set_local(record: str, offset: int, fmt: str, value: int) -> Callable[[Zip], None]:
    return lambda z: struct.pack_into(fmt, z.body, z.local_at(record) + offset, value)


def _rename(record: str, new: bytes) -> Callable[[Zip], None]:
    return lambda z: Zip.rename(z.entry(record), new)


def _replace_record(record: str, data: bytes) -> Callable[[Zip], None]:
    """Point ``record`` at a new copy of ``data`` appended to the body."""

    def apply(z: Zip) -> None:
        i = z.index(record)
        entry = z.add(Zip.name(z.entries[i]), data)
        z.entries[i] = z.entries.pop()
        assert entry is z.entries[i]

    return apply


def _duplicate(record: str, data: bytes | None = None, *, first: bool = False, case: bool = False) -> Callable[[Zip], None]:
    """A second member named like ``record`` (holding ``data``, or a copy), last or first in the directory;
    with ``case``, its name in capitals after the folder."""

    def apply(z: Zip) -> None:
        name = Zip.name(z.entry(record))
        if case:
            name = name[: -len(record)] + record.upper().encode()
        z.add(name, z.data_of(record) if data is None else data)
        if first:
            z.entries.insert(0, z.entries.pop())

    return apply


def _compress(record: str, method: int) -> Callable[[Zip], None]:
    """``record`` compressed with ``method`` (8 deflate, 12 bzip2, 14 lzma) under its own name."""

    def apply(z: Zip) -> None:
        data = z.data_of(record)
        packed = {
            8: lambda d: zlib.compress(d, 9)[2:-4],
            12: bz2.compress,
            14: lambda d: lzma.compress(d, format=lzma.FORMAT_RAW, filters=[{"id": lzma.FILTER_LZMA1}]),
        }[method](data)
        i = z.index(record)
        z.add(Zip.name(z.entries[i]), data, method=method, stored=packed)
        z.entries[i] = z.entries.pop()

    return apply


def _other_pickle(z: Zip) -> bytes:
    """A different, valid pickle of the same shape: the real one with its step changed."""
    data = z.data_of("data.pkl")
    at = data.index(b"global_step") + len(b"global_step")
    return data[:at] + _bump_first_int(data[at:])


def _bump_first_int(tail: bytes) -> bytes:
    """The pickle after ``global_step``'s key with its value (BININT1/BININT2/BININT) changed."""
    for i, op in enumerate(tail[:16]):
        if op in b"KMJ":
            width = {ord("K"): 1, ord("M"): 2, ord("J"): 4}[op]
            value = int.from_bytes(tail[i + 1 : i + 1 + width], "little") ^ 1
            return tail[: i + 1] + value.to_bytes(width, "little") + tail[i + 1 + width :]
    raise AssertionError("no int after global_step")


def _with_other_pickle(fn: Callable[[Zip, bytes], None]) -> Callable[[Zip], None]:
    return lambda z: fn(z, _other_pickle(z))


def _counts(total: int = 0, on_disk: int = 0, *, classic: bool = False, zero: bool = False) -> Callable[[Zip], None]:
    """The end record's entry counts moved ``total`` and ``on_disk`` away from the directory's (or set to
    zero): the zip64 record's when there is one, else (or with ``classic``) the classic record's."""

    def apply(z: Zip) -> None:
        z.keep.add("counts")
        n = 0 if zero else len(z.entries)
        if classic or z.zip64 is None:
            struct.pack_into("<HH", z.eocd, 8, n + on_disk, n + total)
        if not classic and z.zip64 is not None:
            struct.pack_into("<QQ", z.zip64, 24, n + on_disk, n + total)

    return apply


def _drop_zip64(z: Zip) -> None:
    z.zip64 = z.locator = None


def _move_last(record: str) -> Callable[[Zip], None]:
    def apply(z: Zip) -> None:
        z.entries.append(z.entries.pop(z.index(record)))

    return apply


def _two_end_records(z: Zip) -> None:
    """A second directory and end record appended after the whole real zip, naming another data.pkl."""
    other = _other_pickle(z)
    z.body = bytearray(z.build())
    i = z.index("data.pkl")
    z.add(Zip.name(z.entries[i]), other)
    z.entries[i] = z.entries.pop()


def _all_folders(new: bytes) -> Callable[[Zip], None]:
    def apply(z: Zip) -> None:
        for e in z.entries:
            name = Zip.name(e)
            Zip.rename(e, new + name[name.index(b"/") :])

    return apply


def _zip64_extra(record: str, fields: str, *, values: str | None = None, before: bytes = b"") -> Callable[[Zip], None]:
    """``record``'s central sizes and offset named in ``fields`` (``u`` uncompressed, ``c`` compressed, ``o``
    header offset) set to 0xFFFFFFFF, their values moved to a zip64 extra field holding those in ``values``
    (default: the same), after the extra fields ``before``."""

    def apply(z: Zip) -> None:
        e = z.entry(record)
        real = {"u": u32(e, 24), "c": u32(e, 20), "o": u32(e, 42)}
        for f, at in (("u", 24), ("c", 20), ("o", 42)):
            if f in fields:
                struct.pack_into("<I", e, at, 0xFFFFFFFF)
        payload = b"".join(struct.pack("<Q", real[f]) for f in "uco" if f in (fields if values is None else values))
        extra = before + struct.pack("<HH", 1, len(payload)) + payload
        name_end = 46 + u16(e, 28)
        e[name_end:name_end] = extra
        struct.pack_into("<H", e, 30, u16(e, 30) + len(extra))

    return apply


def _truncate_to(fraction: float) -> Callable[[Zip], bytes]:
    def apply(z: Zip) -> bytes:
        raw = z.build()
        return raw[: int(len(raw) * fraction)]

    return apply


MUTATIONS: list[Mutation] = [
    Mutation("unchanged", lambda z: None),
    # duplicate member names: zipfile reads the last, miniz whichever its binary search meets
    Mutation("data.pkl twice, the second different", _with_other_pickle(lambda z, p: _duplicate("data.pkl", p)(z)), "two entries"),
    Mutation("data.pkl twice, the different one first", _with_other_pickle(lambda z, p: _duplicate("data.pkl", p, first=True)(z)), "two entries"),
    Mutation("data.pkl twice, identical", _duplicate("data.pkl"), "two entries"),
    Mutation("data.pkl and DATA.PKL", _with_other_pickle(lambda z, p: _duplicate("data.pkl", p, case=True)(z)), "two entries"),
    Mutation("a storage twice", _duplicate("data/0", b"\0" * 4), "two entries"),
    Mutation("version twice", _duplicate("version", b"99\n"), "two entries"),
    # names as miniz finds them: case-insensitively, and folders as getAllRecords checks them
    Mutation("data.pkl spelled Data.PKL", _rename("data.pkl", b"archive/Data.PKL")),
    Mutation("a storage in capitals", _rename("data/0", b"archive/DATA/0")),
    Mutation("every member in another folder", _all_folders(b"renamed")),
    Mutation("a storage under another folder", _rename("data/0", b"other/data/0")),
    Mutation("serialization_id under another folder", _rename(".data/serialization_id", b"other/.data/serialization_id")),
    Mutation("the folder differs only in case", _rename("data/0", b"ARCHIVE/data/0")),
    Mutation("a stray member outside the folder", lambda z: z.add(b"elsewhere/notes.txt", b"hi") and None),
    Mutation("first member not in a folder", _rename("data.pkl", b"data.pkl")),
    Mutation("an empty folder name", _all_folders(b"")),
    Mutation("constants.pkl added", lambda z: z.add(b"archive/constants.pkl", b"\x80\x02].") and None),
    Mutation("a name with a NUL byte", lambda z: z.add(b"archive/x\0y", b"") and None, "NUL"),
    Mutation("a 600-byte member name", lambda z: z.add(b"archive/" + b"x" * 600, b"") and None),
    # end-of-central-directory counts, sizes and offsets
    Mutation("zip64 counts one short", _counts(-1, -1)),
    Mutation("zip64 total one short, on-disk right", _counts(total=-1)),
    Mutation("zip64 counts one too many", _counts(1, 1)),
    Mutation("zip64 counts zero", _counts(zero=True)),
    Mutation("classic counts wrong under zip64", _counts(-3, -3, classic=True)),
    Mutation("classic counts differ under zip64", _counts(-3, -5, classic=True)),
    Mutation("no zip64 records, classic counts right", _drop_zip64),
    Mutation("no zip64 records, classic counts one short", lambda z: (_drop_zip64(z), _counts(-1, -1)(z)) and None),
    Mutation("no zip64 records, classic counts differ", lambda z: (_drop_zip64(z), _counts(0, -1)(z)) and None),
    Mutation("serialization_id's entry last, counts one short", lambda z: (_move_last(".data/serialization_id")(z), _counts(-1, -1)(z)) and None),
    Mutation("a storage's entry last, counts one short", lambda z: (_move_last("data/0")(z), _counts(-1, -1)(z)) and None),
    Mutation("version's entry last, counts one short", lambda z: (_move_last("version")(z), _counts(-1, -1)(z)) and None),
    Mutation("zip64 record claims two disks", lambda z: struct.pack_into("<I", z.locator, 16, 2)),
    Mutation("zip64 record too short", lambda z: struct.pack_into("<Q", z.zip64, 4, 10)),
    Mutation("zip64 this-disk 1", lambda z: struct.pack_into("<II", z.zip64, 16, 1, 1)),
    Mutation("zip64 this-disk 1, cdir disk 0", lambda z: struct.pack_into("<II", z.zip64, 16, 1, 0)),
    Mutation("a second end record with another data.pkl appended", _two_end_records),
    Mutation("trailing junk after the end record", lambda z: z.build() + b"junk" * 10),
    Mutation("70 KB of trailing junk", lambda z: z.build() + b"\0" * 70_000),
    Mutation("end record comment length without a comment", lambda z: struct.pack_into("<H", z.eocd, 20, 40)),
    Mutation("truncated to 90%", _truncate_to(0.9)),
    Mutation("truncated to 50%", _truncate_to(0.5)),
    Mutation("cut before the end record", _truncate_to(0.999)),
    # storage-size lies and other central-directory fields
    Mutation("a storage's sizes halved", lambda z: struct.pack_into("<II", z.entry("data/0"), 20, u32(z.entry("data/0"), 20) // 2, u32(z.entry("data/0"), 24) // 2)),
    Mutation("a storage's sizes 4 bytes longer", lambda z: struct.pack_into("<II", z.entry("data/0"), 20, u32(z.entry("data/0"), 20) + 4, u32(z.entry("data/0"), 24) + 4)),
    Mutation("a storage shorter than its tensor", lambda z: _replace_record("data/0", z.data_of("data/0")[:-2])(z)),
    Mutation("a storage longer than its tensor", lambda z: _replace_record("data/0", z.data_of("data/0") + b"\0" * 8)(z)),
    Mutation("a storage's local sizes lie", lambda z: struct.pack_into("<II", z.body, z.local_at("data/0") + 18, 1, 1)),
    Mutation("a storage missing", lambda z: z.entries.pop(z.index("data/0")) and None),
    Mutation("a storage's compressed size lies (stored)", lambda z: struct.pack_into("<I", z.entry("data/0"), 20, 3)),
    Mutation("same, with a file time set", lambda z: (struct.pack_into("<I", z.entry("data/0"), 20, 3), struct.pack_into("<H", z.entry("data/0"), 12, 1)) and None),
    Mutation("data.pkl 1 byte short", lambda z: struct.pack_into("<II", z.entry("data.pkl"), 20, u32(z.entry("data.pkl"), 20) - 1, u32(z.entry("data.pkl"), 24) - 1)),
    Mutation("data.pkl's stored size 1 short of its compressed size, with a time", lambda z: (_set("data.pkl", 12, "<H", 1)(z), _set("data.pkl", 24, "<I", u32(z.entry("data.pkl"), 24) - 1)(z)) and None),
    Mutation("data.pkl's local header moved by its name length", _set_local("data.pkl", 26, "<H", 40)),
    Mutation("data.pkl's local extra length grown", lambda z: struct.pack_into("<H", z.body, z.local_at("data.pkl") + 28, u16(z.body, z.local_at("data.pkl") + 28) + 1)),
    Mutation("data.pkl's local signature broken", _set_local("data.pkl", 0, "<I", 0x04034B51)),
    Mutation("data.pkl's local name differs", lambda z: z.body.__setitem__(slice(z.local_at("data.pkl") + 30, z.local_at("data.pkl") + 33), b"XYZ")),
    Mutation("a storage's local signature broken", _set_local("data/0", 0, "<I", 0)),
    Mutation("an unread member's local signature broken", lambda z: (z.add(b"archive/extra", b"x"), _set_local("extra", 0, "<I", 0)(z)) and None),
    Mutation("data.pkl's header offset past the end", _set("data.pkl", 42, "<I", 0x7FFFFFF0)),
    Mutation("data.pkl's header offset points at another member", lambda z: _set("data.pkl", 42, "<I", z.local_at("version"))(z)),
    Mutation("data.pkl on disk 1", _set("data.pkl", 34, "<H", 1)),
    Mutation("data.pkl on disk 2", _set("data.pkl", 34, "<H", 2)),
    Mutation("data.pkl encrypted", lambda z: struct.pack_into("<H", z.entry("data.pkl"), 8, u16(z.entry("data.pkl"), 8) | 1)),
    Mutation("data.pkl strongly encrypted", lambda z: struct.pack_into("<H", z.entry("data.pkl"), 8, u16(z.entry("data.pkl"), 8) | 0x40)),
    Mutation("data.pkl a patch", lambda z: struct.pack_into("<H", z.entry("data.pkl"), 8, u16(z.entry("data.pkl"), 8) | 0x20)),
    Mutation("data.pkl header masked", lambda z: struct.pack_into("<H", z.entry("data.pkl"), 8, u16(z.entry("data.pkl"), 8) | 0x2000)),
    Mutation("an unread member encrypted", lambda z: z.add(b"archive/extra", b"x") and _set("extra", 8, "<H", 1)(z)),
    Mutation("data.pkl marked a directory", _set("data.pkl", 38, "<I", 0x10), "directory or empty"),
    Mutation("a storage marked a directory", _set("data/0", 38, "<I", 0x10), "directory or empty"),
    Mutation("an unread member marked a directory", lambda z: z.add(b"archive/extra", b"x") and _set("extra", 38, "<I", 0x10)(z)),
    Mutation("zip64 sizes on data.pkl without an extra field", lambda z: struct.pack_into("<II", z.entry("data.pkl"), 20, 0xFFFFFFFF, 0xFFFFFFFF)),
    Mutation("data.pkl's sizes in a zip64 extra field", _zip64_extra("data.pkl", "uc")),
    Mutation("data.pkl's sizes and offset in a zip64 extra field", _zip64_extra("data.pkl", "uco")),
    Mutation("a storage's sizes in a zip64 extra field after another field", _zip64_extra("data/0", "uc", before=b"\x55\x54\x01\x00\x00")),
    Mutation("data.pkl's zip64 extra field missing its compressed size", _zip64_extra("data.pkl", "uc", values="u")),
    Mutation("data.pkl's zip64 extra field missing its offset", _zip64_extra("data.pkl", "uco", values="uc")),
    Mutation("an unread member's zip64 extra field malformed", lambda z: (z.add(b"archive/extra", b"x"), _zip64_extra("extra", "uc", values="u")(z)) and None),
    Mutation("a central entry's comment runs past the directory", lambda z: struct.pack_into("<H", z.entries[-1], 32, 500)),
    Mutation("a central entry's signature broken", lambda z: struct.pack_into("<I", z.entries[-1], 0, 0)),
    # compression: torch.save never compresses; miniz reads only stored and deflate
    Mutation("data.pkl deflated", _compress("data.pkl", 8), "compressed"),
    Mutation("data.pkl bzip2", _compress("data.pkl", 12), "compressed"),
    Mutation("data.pkl lzma", _compress("data.pkl", 14), "compressed"),
    Mutation("a storage deflated", _compress("data/0", 8), "compressed"),
    Mutation("a storage bzip2", _compress("data/0", 12), "compressed"),
    Mutation("version deflated", _compress("version", 8), "compressed"),
    Mutation("an unread member bzip2", lambda z: (z.add(b"archive/extra", b"x" * 100), _compress("extra", 12)(z)) and None),
    Mutation("data.pkl declared deflated, stored", _set("data.pkl", 10, "<H", 8), "compressed"),
    # the small records torch reads
    Mutation("version 99", _replace_record("version", b"99\n")),
    Mutation("version 0", _replace_record("version", b"0\n")),
    Mutation("version 10", _replace_record("version", b"10")),
    Mutation("version with spaces and a sign", _replace_record("version", b" \t+3 trailing")),
    Mutation("version negative", _replace_record("version", b"-3")),
    Mutation("version not a number", _replace_record("version", b"three")),
    Mutation("version empty", _replace_record("version", b"")),
    Mutation("version huge", _replace_record("version", b"99999999999999999999999")),
    Mutation("version with 30 leading zeros", _replace_record("version", b"0" * 30 + b"3")),
    Mutation("version missing", lambda z: z.entries.pop(z.index("version")) and None),
    Mutation(".data/version 4 beside version", lambda z: z.add(b"archive/.data/version", b"4") and None),
    Mutation(".data/version 99 beside version", lambda z: z.add(b"archive/.data/version", b"99") and None),
    Mutation("byteorder big", _replace_record("byteorder", b"big"), "byteorder"),
    Mutation("byteorder middle", _replace_record("byteorder", b"middle"), "byteorder"),
    Mutation("byteorder missing", lambda z: z.entries.pop(z.index("byteorder")) and None),
    Mutation(".storage_alignment not a number", _replace_record(".storage_alignment", b"sixty-four")),
    Mutation(".storage_alignment padded", _replace_record(".storage_alignment", b" 6_4\n")),
    Mutation(".format_version missing", lambda z: z.entries.pop(z.index(".format_version")) and None),
    Mutation(".format_version 2", _replace_record(".format_version", b"2")),
    Mutation("serialization_id missing", lambda z: z.entries.pop(z.index(".data/serialization_id")) and None),
    Mutation("serialization_id's local header broken", _set_local(".data/serialization_id", 0, "<I", 0)),
    Mutation("data.pkl missing", lambda z: z.entries.pop(z.index("data.pkl")) and None),
    Mutation("a storage key with a lone surrogate", lambda z: _replace_record("data.pkl", z.data_of("data.pkl").replace(b"X\x01\x00\x00\x000q", b"X\x03\x00\x00\x00\xed\xa0\x80q", 1))(z)),
    Mutation("data.pkl replaced by another pickle", _with_other_pickle(lambda z, p: _replace_record("data.pkl", p)(z))),
    Mutation("data.pkl empty", _replace_record("data.pkl", b"")),
]


@functools.cache
def _zeros_compressed(method: int, inflated: int) -> bytes:
    """``inflated`` zero bytes as a zip member's bzip2 (12) or lzma (14) stream, built in 1 MiB steps."""
    packer = bz2.BZ2Compressor(9) if method == 12 else zipfile.LZMACompressor()
    chunk = bytes(1 << 20)
    out = [packer.compress(chunk[: min(len(chunk), inflated - at)]) for at in range(0, inflated, len(chunk))]
    return b"".join(out) + packer.flush()


def pickle_bomb(method: int, inflated: int) -> Mutation:
    """``data.pkl`` declared at 1000 bytes but compressed (12 bzip2, 14 lzma) from ``inflated`` zero bytes:
    kilobytes on disk that a reader trusting the stream would inflate to ``inflated``."""
    kind = {12: "bzip2", 14: "lzma"}[method]

    def apply(z: Zip) -> None:
        i = z.index("data.pkl")
        z.add(Zip.name(z.entries[i]), bytes(1000), method=method, stored=_zeros_compressed(method, inflated))
        z.entries[i] = z.entries.pop()

    return Mutation(f"data.pkl a {kind} bomb of {inflated >> 20} MiB declared at 1000 bytes", apply, "compressed")


def byte_flips(raw: bytes, count: int, seed: int) -> list[Mutation]:
    """``count`` single-byte changes to the zip's structure (local headers, central directory, end records;
    not the members' bytes, which are the pickle's and the tensors'), from a fixed seed."""
    z = Zip.parse(raw)
    offsets = list(range(len(z.body), len(raw)))
    for e in z.entries:
        lho = u32(e, 42)
        offsets += range(lho, lho + 30 + u16(raw, lho + 26) + u16(raw, lho + 28))
    rng = random.Random(seed)
    flips = []
    for _ in range(count):
        at = rng.choice(offsets)
        value = rng.choice([0x00, 0xFF, 0x01, 0x80, rng.randrange(256)])

        def apply(z: Zip, at: int = at, value: int = value) -> bytes:
            out = bytearray(z.build())
            out[at] = value
            return bytes(out)

        flips.append(Mutation(f"byte {at} set to {value:#04x}", apply))
    return flips


def write_mutation(src: Path, mutation: Mutation, dst: Path) -> Path:
    """``src`` with ``mutation`` applied, written to ``dst``."""
    z = Zip.parse(src.read_bytes())
    out = mutation.apply(z)
    dst.write_bytes(z.build() if out is None else out)
    return dst
