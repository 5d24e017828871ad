"""Read torch.save files and DCP metadata as plain data, without torch and without running code.

``torch.load(weights_only=False)`` (every Lightning and NeMo resume) and torch DCP's
``FileSystemReader.read_metadata`` (``pickle.load`` of ``weights/.metadata``) import and call whatever a
pickle names. This module never does: an opcode walk first finds every global the file names (``GLOBAL``,
``STACK_GLOBAL``, ``INST``, extension codes), called or not, and refuses the file with :class:`UnsafePickle`
unless each one is on :data:`ALLOWED_GLOBALS`, the exact set NeMo 2.7, Lightning, megatron-core 0.15 and
torch write (``tests/checkpoint/test_allow_list.py`` holds it to the globals found in real checkpoints). Then
a restricted unpickler rebuilds the data with stand-ins: tensors become :class:`TensorInfo` (shape and
dtype, the bytes are never read), DCP and megatron records inert :class:`Opaque` objects, and each
allow-listed builder checks that it is called the way torch calls it, so nothing can be smuggled through
its arguments. Nothing a file names is ever imported or run.
"""

from __future__ import annotations

import io
import pickle
import pickletools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nemo_resume.checkpoint.bounded_read import RegularFile, open_regular, read_bytes
from nemo_resume.checkpoint.torch_zip import TorchZipError, torch_zip_in
from nemo_resume.constants import (
    MAX_PICKLE_BYTES,
    MAX_PICKLE_CONTAINERS,
    MAX_PICKLE_MARKS,
    MAX_PICKLE_MEMO_AHEAD,
    MAX_PICKLE_NESTING,
    MAX_PICKLE_OPCODES,
    MAX_PICKLE_STACK,
    MAX_PICKLE_TUPLE_ELEMENTS,
    MAX_TORCH_PICKLE_BYTES,
)


@dataclass(frozen=True)
class TensorInfo:
    """A tensor as the pickle describes it; its storage bytes are never read."""

    shape: tuple[int, ...]
    dtype: str
    storage_key: str | None = None

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


class Opaque:
    """A record (a torch DCP or megatron-core dataclass) as the pickle describes it: its name and state, inert."""

    pickle_name = "?"
    state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def field(self, name: str, default: Any = None) -> Any:
        """An attribute from the pickled state: a ``__dict__`` or a ``(dict, slots)`` pair."""
        state = self.state
        if isinstance(state, tuple) and len(state) == 2:
            for part in state:
                if isinstance(part, dict) and name in part:
                    return part[name]
            return default
        if isinstance(state, dict):
            return state.get(name, default)
        return default

    def __repr__(self) -> str:
        return f"<{self.pickle_name}>"


class _Dict(dict):
    """A dict that also takes BUILD state (OrderedDict state_dicts carry ``_metadata``)."""


@dataclass(frozen=True)
class StorageRef:
    """A persistent-id storage reference: the zip entry holding a tensor's bytes."""

    key: str
    dtype: str
    numel: int


@dataclass
class Unpickled:
    """The plain-data result of a restricted unpickle."""

    value: Any
    # Every storage reference of the pickle's tensors, in order (torch zip format only).
    storages: list[StorageRef] = field(default_factory=list)
    # Every global it names, as (module, name): all on ALLOWED_GLOBALS.
    named: set[tuple[str, str]] = field(default_factory=set)

    def weights_only_refusals(self) -> list[tuple[str, str]]:
        """``(dotted name, when NeMo writes it)`` of each global it names that ``torch.load(weights_only=True)``
        refuses (:data:`WEIGHTS_ONLY_REFUSED`)."""
        return sorted((f"{m}.{n}", WEIGHTS_ONLY_REFUSED[(m, n)]) for m, n in self.named if (m, n) in WEIGHTS_ONLY_REFUSED)


class UnreadablePickle(Exception):
    """The bytes are not a pickle this reader can turn into data (truncated, corrupt, too big)."""


_MAX_NAME_CHARS = 120  # a global's name is file-derived: one line of a report, never a megabyte


def quote(text: str) -> str:
    """``text`` (file-derived) quoted for a one-line message: escaped, control characters shown, bounded."""
    return ascii(text if len(text) <= _MAX_NAME_CHARS else text[:_MAX_NAME_CHARS] + "...")


@dataclass(frozen=True)
class UnsafeGlobal:
    """A global a pickle names that the real loader would import or call, and why it is refused.

    ``name`` is ``module.name`` as the file spells it (file-derived: :meth:`describe` quotes it).
    """

    name: str
    why: str
    file: str = ""  # the checkpoint file, relative to the checkpoint ("weights/.metadata"); set by its reader

    def describe(self) -> str:
        where = f"{self.file} " if self.file else ""
        return f"{where}names {quote(self.name)} ({self.why})"

    def to_json(self) -> dict[str, str]:
        return {"file": self.file, "global": self.name, "why": self.why}


class UnsafePickle(UnreadablePickle):
    """The pickle names a global, or calls an allowed one, in a way NeMo, Lightning, megatron-core and torch
    never write: loading it with torch would import or run something the file chose."""

    def __init__(self, found: tuple[UnsafeGlobal, ...]) -> None:
        super().__init__("; ".join(g.describe() for g in found))
        self.found = found


_NOT_ALLOWED = "not on the allow-list of what NeMo, Lightning, megatron-core and torch write"


def _misuse(name: str, how: str) -> UnsafePickle:
    return UnsafePickle((UnsafeGlobal(name, f"{how}; torch never writes that"),))


# ------------------------------------------------------------------------------------------ the allow-list
#
# Every global below was found in real checkpoints (tests/checkpoint/test_allow_list.py reads them from
# Lightning .ckpt files of smoke runs with cosine, staged, lr-mult and Hugging Face schedules, and from
# common.pt and .metadata of megatron-core checkpoints, weights-only included; the distributed optimizer's
# were read from a MegatronStrategy run on CPU) except where a comment says why a GPU run writes it too.
# Each is used in exactly one way, and that way is checked: a builder torch calls (REDUCE) with the
# arguments it writes, a record megatron-core and DCP rebuild from ``__new__`` and its state (NEWOBJ + BUILD),
# or a value that is only referenced (storage types and dtypes). Any other use is an UnsafePickle.


class _Value(str):
    """A global the files only reference (a dtype, a storage type), as its name; calling it is refused."""

    pickle_name: str

    def __new__(cls, text: str, pickle_name: str) -> "_Value":
        obj = super().__new__(cls, text)
        obj.pickle_name = pickle_name
        return obj

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise _misuse(self.pickle_name, "called, though it is only ever a value")


class _StorageType(_Value):
    """``torch.<X>Storage`` in a tensor's persistent id; its text is the dtype."""


def _is_ints(v: Any) -> bool:
    return isinstance(v, tuple) and all(type(i) is int for i in v)


def _ordered_dict(*args: Any) -> _Dict:
    # torch and Lightning pickle an OrderedDict as OrderedDict() followed by SETITEMS (and BUILD of _metadata)
    if args:
        raise _misuse("collections.OrderedDict", "called with arguments")
    return _Dict()


def _posix_path(*parts: Any) -> str:
    # PosixPath.__reduce__: (PosixPath, self.parts). Only strings: str() of a crafted, exponentially
    # shared argument would never return.
    if not all(isinstance(p, str) for p in parts):
        raise _misuse("pathlib.PosixPath", "called with something other than strings")
    return "/".join(parts).replace("//", "/")


def _rebuild_tensor_v2(*args: Any) -> TensorInfo:
    # torch.Tensor._reduce_ex_internal: (storage, storage_offset, size, stride, requires_grad, backward_hooks),
    # plus a dict of bools when the conj or neg bit is set (torch._utils.get_tensor_metadata)
    if len(args) not in (6, 7):
        raise _misuse("torch._utils._rebuild_tensor_v2", f"called with {len(args)} arguments")
    storage, offset, size, stride, requires_grad, hooks, *metadata = args
    if not isinstance(storage, StorageRef):
        raise _misuse("torch._utils._rebuild_tensor_v2", "called on something other than a saved storage")
    if type(offset) is not int or not _is_ints(size) or not _is_ints(stride) or type(requires_grad) is not bool:
        raise _misuse("torch._utils._rebuild_tensor_v2", "called with an offset, size or stride that is not integers")
    _check_extent(offset, size, stride, storage)
    if type(hooks) is not _Dict or hooks:
        raise _misuse("torch._utils._rebuild_tensor_v2", "called with backward hooks")
    if metadata and not (
        type(metadata[0]) is dict and all(isinstance(k, str) and type(v) is bool for k, v in metadata[0].items())
    ):
        raise _misuse("torch._utils._rebuild_tensor_v2", "called with tensor metadata that is not flags")
    return TensorInfo(size, storage.dtype, storage.key)


def _check_extent(offset: int, size: tuple[int, ...], stride: tuple[int, ...], storage: StorageRef) -> None:
    """The tensor lies inside its storage, as ``Tensor.set_`` requires (``computeStorageNbytes``): torch never
    writes a view reaching past it, and such a file fails to load."""
    if offset < 0 or len(size) != len(stride) or any(d < 0 for d in size) or any(s < 0 for s in stride):
        raise _misuse("torch._utils._rebuild_tensor_v2", "called with a negative offset, size or stride, or one "
                                                         "stride per dimension missing")
    if all(size):  # a tensor of no elements needs no storage
        end = offset + 1 + sum((d - 1) * s for d, s in zip(size, stride))
        if end > storage.numel:
            raise _misuse("torch._utils._rebuild_tensor_v2",
                          f"called with a tensor reaching element {end} of a storage of {storage.numel}")


def _torch_size(*args: Any) -> tuple[int, ...]:
    # torch.Size.__reduce__: (torch.Size, (tuple(self),))
    if len(args) != 1 or not _is_ints(args[0]):
        raise _misuse("torch.Size", "called with something other than one tuple of integers")
    return args[0]


def _get_layout(*args: Any) -> str:
    # torch.layout.__reduce__: (torch.serialization._get_layout, ("torch.strided",))
    if len(args) != 1 or not isinstance(args[0], str):
        raise _misuse("torch.serialization._get_layout", "called with something other than a layout name")
    return args[0]


def _enum(name: str) -> Callable[..., int]:
    # Enum.__reduce_ex__: (EnumClass, (value,)); DCP's enums have integer values
    def build(*args: Any) -> int:
        if len(args) != 1 or type(args[0]) is not int:
            raise _misuse(name, "called with something other than one integer")
        return args[0]

    return build


_Record = type("_Record", (), {})  # marks the records in ALLOWED_GLOBALS; find_class gives each a stand-in type

_DCP = "torch.distributed.checkpoint."
_MCORE_TORCH = "megatron.core.dist_checkpointing.strategies.torch"
# Every dtype torch has a typed storage for: found are float32 (weights, Adam state) and int64 (Lightning's
# ModelCheckpoint scores with save_top_k > 1); a bf16 or fp16 GPU run (the Qwen2.5 recipes train in bf16)
# saves its tensors, and DCP records their dtype, the same way. A dtype is data, not code.
_DTYPES = {
    "Float": "float32", "Long": "int64", "BFloat16": "bfloat16", "Half": "float16", "Double": "float64",
    "Int": "int32", "Short": "int16", "Char": "int8", "Byte": "uint8", "Bool": "bool",
}  # fmt: skip

#: (module, name) -> how the files use it: a checking builder, a record (``_Record``) or a value.
ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    # .ckpt and common.pt (torch.save, protocol 2)
    ("collections", "OrderedDict"): _ordered_dict,
    ("pathlib", "PosixPath"): _posix_path,  # ModelCheckpoint's dirpath, best_k_models, ...
    # a resumed LoRA/DoRA run's ModelCheckpoint.last_model_path: NeMo's AutoResume sets it to the adapter checkpoint
    # as an AdapterPath, a PosixPath subclass pickled the same way (nemo/lightning/resume.py:127-128, 362-371).
    # Safe to read as a string; NeMo's own load refuses it (WEIGHTS_ONLY_REFUSED)
    ("nemo.lightning.resume", "AdapterPath"): _posix_path,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    **{("torch", f"{k}Storage"): _StorageType(v, f"torch.{k}Storage") for k, v in _DTYPES.items()},
    # .metadata (torch DCP's pickle.dump of megatron-core's MCoreMetadata)
    ("torch", "Size"): _torch_size,
    ("torch.serialization", "_get_layout"): _get_layout,
    **{("torch", v): _Value(v, f"torch.{v}") for v in _DTYPES.values()},
    (_DCP + "metadata", "_MEM_FORMAT_ENCODING"): _enum(_DCP + "metadata._MEM_FORMAT_ENCODING"),
    (_DCP + "planner", "WriteItemType"): _enum(_DCP + "planner.WriteItemType"),
    (_MCORE_TORCH, "MCoreMetadata"): _Record,
    (_MCORE_TORCH, "MCoreSavePlan"): _Record,
    (_DCP + "filesystem", "_StorageInfo"): _Record,
    (_DCP + "metadata", "BytesStorageMetadata"): _Record,
    (_DCP + "metadata", "ChunkStorageMetadata"): _Record,
    (_DCP + "metadata", "MetadataIndex"): _Record,
    (_DCP + "metadata", "StorageMeta"): _Record,
    (_DCP + "metadata", "TensorProperties"): _Record,
    (_DCP + "metadata", "TensorStorageMetadata"): _Record,
    (_DCP + "planner", "TensorWriteData"): _Record,
    (_DCP + "planner", "WriteItem"): _Record,
}


#: Allowed globals (NeMo writes them, they are read here as data) that ``torch.load(weights_only=True)``, which NeMo's
#: checkpoint load uses for ``common.pt``, refuses: a checkpoint naming one cannot be resumed, whatever its content.
WEIGHTS_ONLY_REFUSED: dict[tuple[str, str], str] = {
    ("nemo.lightning.resume", "AdapterPath"): "the first checkpoint a resumed LoRA/DoRA run saves (NeMo's AutoResume "
    "leaves ModelCheckpoint.last_model_path an AdapterPath, nemo/lightning/resume.py:127-128)",
}


def _record_type(full_name: str) -> type:
    """An inert stand-in for a record class: rebuilt only the way DCP pickles dataclasses (``__new__`` with no
    arguments, then BUILD); calling it would run the real class's ``__init__`` with file-chosen arguments."""

    class _Stand_In(Opaque):
        pickle_name = full_name

        def __new__(cls, *args: Any, **kwargs: Any) -> _Stand_In:
            if args or kwargs:
                raise _misuse(full_name, "created with arguments")
            return object.__new__(cls)

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            # REDUCE runs cls(*args) = __new__ + __init__; NEWOBJ runs only __new__
            raise _misuse(full_name, "called")

    return _Stand_In


class _Unpickler(pickle.Unpickler):
    def __init__(self, data: bytes, result: Unpickled) -> None:
        super().__init__(io.BytesIO(data))
        self._result = result
        self._records: dict[str, type] = {}
        self._loaded: dict[str, StorageRef] = {}

    def find_class(self, module: str, name: str) -> Any:
        # The opcode walk has refused every other global already; this is the second lock on the same door.
        use = ALLOWED_GLOBALS.get((module, name))
        if use is None:
            raise UnsafePickle((UnsafeGlobal(f"{module}.{name}"[: 2 * _MAX_NAME_CHARS], _NOT_ALLOWED),))
        self._result.named.add((module, name))
        if use is _Record:
            full = f"{module}.{name}"
            return self._records.setdefault(full, _record_type(full))
        return use

    def persistent_load(self, pid: Any) -> Any:
        # torch zip format: ("storage", storage_type, key, location, numel), each string a plain str: a global
        # standing in the key (torch.float32 is a str here) names another record than torch's f"data/{key}"
        if type(pid) is not tuple or len(pid) != 5:
            fields = f"{len(pid)} fields" if type(pid) is tuple else "not a tuple"
            raise pickle.UnpicklingError(  # never repr() it: it is file-derived and can be huge
                f"a persistent id of {fields}; torch writes 5: ('storage', storage type, key, location, numel)"
            )
        if not (
            type(pid[0]) is str and pid[0] == "storage" and isinstance(pid[1], _StorageType)
            and type(pid[2]) is str and type(pid[3]) is str and type(pid[4]) is int
        ):
            raise pickle.UnpicklingError("a persistent id that is not a torch storage reference")
        ref = StorageRef(pid[2], str(pid[1]), pid[4])
        self._result.storages.append(ref)
        # torch.load reads a key's storage once and hands the first one to every later reference (an empty one
        # is not kept); a tensor is bounded by the storage it gets, not by what its own reference claims
        loaded = self._loaded.get(ref.key)
        if loaded is None and ref.numel > 0:
            self._loaded[ref.key] = ref
        return loaded if loaded is not None else ref


# --------------------------------------------------------------------------------------- the opcode walk
#
# Walks the opcodes (pickletools.genops) without building anything, simulating the stack: each value carries
# the size it has when every memo reference is copied out, and strings carry their text (STACK_GLOBAL takes
# its module and name from the stack). A crafted pickle could otherwise build, from memo references, a
# tuple of 2**64 elements (hashing it as a dict key never finishes, and no signal interrupts it), nest a
# million tuples (the hash recurses in C and crashes), or make the unpickler allocate by a memo index or a
# run of MARKs far more than the file's size.

_CAP = MAX_PICKLE_TUPLE_ELEMENTS + 1
_MAX_UNSAFE_NAMED = 5  # a refused file's report names at most this many of its globals


class _Shape:
    """A value on the simulated stack: its element count (shared parts counted per use) and nesting."""

    __slots__ = ("size", "depth")

    def __init__(self, size: int = 1, depth: int = 0) -> None:
        self.size, self.depth = size, depth

    def grow(self, items: list) -> None:
        if items:
            self.size = min(_CAP, self.size + sum(i.size for i in items))
            self.depth = max(self.depth, 1 + max(i.depth for i in items))


class _Text(_Shape):
    """A string on the simulated stack (a module or a name for STACK_GLOBAL)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text


_LEAF = _Shape()  # numbers, None, globals: never grown (only containers are)


def _container(items: list) -> _Shape:
    shape = _Shape(1, 1)
    shape.grow(items)
    return shape


def _bounded(shape: _Shape, what: str) -> _Shape:
    if shape.size > MAX_PICKLE_TUPLE_ELEMENTS:
        raise UnreadablePickle(
            f"builds {what} of more than {MAX_PICKLE_TUPLE_ELEMENTS} elements out of shared parts; "
            "not a trainer state (hashing it would not finish)"
        )
    if shape.depth > MAX_PICKLE_NESTING:
        raise UnreadablePickle(f"nests {what} more than {MAX_PICKLE_NESTING} levels deep; not a trainer state")
    return shape


_TEXT = frozenset(
    {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "STRING", "BINSTRING", "SHORT_BINSTRING"}
)
_GLOBALS = frozenset({"GLOBAL", "STACK_GLOBAL", "INST"})
_PUTS = frozenset({"BINPUT", "LONG_BINPUT", "PUT"})
# copyreg's extension registry: a global named by a number the loading process registered
_EXTENSIONS = frozenset({"EXT1", "EXT2", "EXT4"})
_SPECIAL = {"MARK", "GET", "BINGET", "LONG_BINGET", "EMPTY_TUPLE", "EMPTY_LIST", "EMPTY_DICT", "EMPTY_SET"}
_PUSH_LEAF = frozenset(
    op.name
    for op in pickletools.opcodes
    if not op.stack_before and len(op.stack_after) == 1 and op.name not in _SPECIAL | _TEXT | _GLOBALS | _EXTENSIONS
)


class _Walk:
    """The simulated stack, marks and memo of one opcode walk, and the globals it found."""

    def __init__(self) -> None:
        self.stack: list[_Shape] = []
        self.marks: list[list[_Shape]] = []
        self.held = 0  # values under the open MARKs
        self.memo: list[_Shape | None] = []
        self.unsafe: dict[str, UnsafeGlobal] = {}

    def mark(self) -> None:
        if len(self.marks) >= MAX_PICKLE_MARKS:
            raise UnreadablePickle(f"opens more than {MAX_PICKLE_MARKS} MARKs at once; real checkpoints open 6")
        self.held += len(self.stack)
        self.marks.append(self.stack)
        self.stack = []

    def pop_mark(self) -> list[_Shape]:
        items, self.stack = self.stack, self.marks.pop()
        self.held -= len(self.stack)
        return items

    def put(self, index: int, count: int) -> None:
        if index > count + MAX_PICKLE_MEMO_AHEAD:
            # picklers number memo entries 0, 1, 2, ...; the C unpickler sizes its memo table by the index,
            # so one 5-byte opcode could make it allocate and zero gigabytes
            raise UnreadablePickle(f"stores memo entry {index} after {count} opcodes; not a pickler's numbering")
        if index >= len(self.memo):
            self.memo.extend([None] * (index + 1 - len(self.memo)))
        self.memo[index] = self.stack[-1]

    def get(self, index: int) -> _Shape:
        value = self.memo[index] if 0 <= index < len(self.memo) else None
        if value is None:
            raise UnreadablePickle(f"reads memo entry {index}, which it never stored")
        return value

    def global_(self, module: str, name: str) -> None:
        if (module, name) not in ALLOWED_GLOBALS:
            self.refuse(f"{module}.{name}", _NOT_ALLOWED)

    def refuse(self, name: str, why: str) -> None:
        name = name[: 2 * _MAX_NAME_CHARS]
        self.unsafe.setdefault(name, UnsafeGlobal(name, why))

    def grow_top(self, items: list[_Shape]) -> None:
        top = self.stack[-1] if self.stack else _LEAF
        if top is not _LEAF and type(top) is _Shape:
            top.grow(items)


def _walk_opcode(w: _Walk, op: pickletools.OpcodeInfo, arg: Any, count: int) -> None:  # noqa: C901
    """One opcode's effect on the simulated stack (one branch per opcode family)."""
    stack, name = w.stack, op.name
    if name in _TEXT:
        stack.append(_Text(arg if isinstance(arg, str) else ""))
    elif name in ("BINGET", "LONG_BINGET", "GET"):
        stack.append(w.get(arg))
    elif name == "MARK":
        w.mark()
    elif name == "MEMOIZE":
        w.put(len(w.memo), count)
    elif name in _GLOBALS:
        if name == "STACK_GLOBAL":
            qual, module = stack.pop(), stack.pop()
            if not isinstance(qual, _Text) or not isinstance(module, _Text):
                raise UnreadablePickle("STACK_GLOBAL of something other than two strings")
            w.global_(module.text, qual.text)
        else:  # "module name": a module has no space, so the first space separates them
            module_name, _, qual_name = str(arg).partition(" ")
            w.global_(module_name, qual_name)
            if name == "INST":  # INST also calls the class with the values since the last MARK
                _bounded(_container(w.pop_mark()), "call arguments")
        w.stack.append(_LEAF)
    elif name in _EXTENSIONS:
        w.refuse(f"copyreg extension code {arg}", "a global named by number from the loading process's registry")
        stack.append(_LEAF)
    elif name == "POP":
        if stack:
            stack.pop()
        else:
            w.pop_mark()
    elif name == "POP_MARK":
        w.pop_mark()
    elif name == "DUP":
        stack.append(stack[-1])
    elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
        n = int(name[-1])
        if len(stack) < n:
            raise UnreadablePickle(f"{name} on a stack of {len(stack)}")
        items = stack[-n:]
        del stack[-n:]
        stack.append(_bounded(_container(items), "a tuple"))
    elif name in ("TUPLE", "FROZENSET"):
        shape = _bounded(_container(w.pop_mark()), "a tuple")  # pop_mark() rebinds the stack: call it first
        w.stack.append(shape)
    elif name in ("EMPTY_TUPLE", "EMPTY_LIST", "EMPTY_DICT", "EMPTY_SET"):
        stack.append(_Shape(1, 1))
    elif name in ("LIST", "DICT"):
        shape = _container(w.pop_mark())
        w.stack.append(shape)
    elif name in ("APPENDS", "SETITEMS", "ADDITEMS"):
        w.grow_top(w.pop_mark())
    elif name == "APPEND":
        w.grow_top([stack.pop()])
    elif name == "SETITEM":
        value, key = stack.pop(), stack.pop()
        w.grow_top([key, value])
    elif name == "BUILD":
        w.grow_top([stack.pop()])
    elif name in ("REDUCE", "NEWOBJ"):
        args = stack.pop()
        stack[-1] = _Shape(_bounded(args, "call arguments").size, args.depth)
    elif name == "NEWOBJ_EX":
        kwargs, args = stack.pop(), stack.pop()
        both = _bounded(_container([args, kwargs]), "call arguments")
        stack[-1] = _Shape(both.size, both.depth)
    elif name == "OBJ":
        shape = _Shape(_bounded(_container(w.pop_mark()), "call arguments").size, 1)
        w.stack.append(shape)
    else:  # persistent ids, FRAME, PROTO, buffers: by their declared stack effect
        if op.stack_before:
            if len(stack) < len(op.stack_before):
                raise UnreadablePickle(f"{name} on a stack of {len(stack)}")
            del stack[len(stack) - len(op.stack_before) :]
        stack.extend([_LEAF] * len(op.stack_after))


# opcodes that build a container or call something: each is memory once the pickle is loaded
_BUILDS = frozenset({"EMPTY_TUPLE", "EMPTY_LIST", "EMPTY_DICT", "EMPTY_SET", "TUPLE1", "TUPLE2", "TUPLE3", "TUPLE",
                     "FROZENSET", "LIST", "DICT", "REDUCE", "NEWOBJ", "NEWOBJ_EX", "OBJ", "INST"})


def _walk(data: bytes) -> None:
    """Refuse a pickle that names a global off the allow-list (:class:`UnsafePickle`), or whose opcodes,
    MARKs, stack, tuples or memo would cost far more than a trainer state's (:class:`UnreadablePickle`).

    Every limit is from :mod:`nemo_resume.constants`; the walk costs about 1 us per opcode.
    """
    w = _Walk()
    built = 0
    try:
        for count, (op, arg, _pos) in enumerate(pickletools.genops(data)):
            name = op.name
            if name in _PUSH_LEAF:  # the common cases first: numbers, None, bools, memo stores
                w.stack.append(_LEAF)
            elif name in _PUTS:
                w.put(arg, count)  # type: ignore[arg-type]  # genops gives PUT opcodes an int
            elif name == "STOP":
                break
            else:
                _walk_opcode(w, op, arg, count)
                if len(w.unsafe) >= _MAX_UNSAFE_NAMED:
                    break
                built += name in _BUILDS
                if built > MAX_PICKLE_CONTAINERS:
                    raise UnreadablePickle(f"builds more than {MAX_PICKLE_CONTAINERS} containers; not a checkpoint's pickle")
            if count >= MAX_PICKLE_OPCODES:
                raise UnreadablePickle(f"holds more than {MAX_PICKLE_OPCODES} opcodes; not a checkpoint's pickle")
            if w.held + len(w.stack) > MAX_PICKLE_STACK:
                raise UnreadablePickle(f"keeps more than {MAX_PICKLE_STACK} values on its stack; not a checkpoint's pickle")
    except UnreadablePickle:
        if not w.unsafe:
            raise
    except Exception as exc:  # noqa: BLE001 - a pickle the walk cannot follow is never loaded
        if not w.unsafe:
            raise UnreadablePickle(f"not a readable pickle ({type(exc).__name__}: {exc})") from exc
    if w.unsafe:
        raise UnsafePickle(tuple(w.unsafe.values()))


def unpickle_bytes(data: bytes) -> Unpickled:
    """Unpickle ``data`` into plain data.

    Raises:
        UnsafePickle: it names a global off the allow-list, or calls an allowed one in a way torch never does.
        UnreadablePickle: anything else that stops it being read as a checkpoint's data.
    """
    result = Unpickled(value=None)
    _walk(data)
    try:
        result.value = _Unpickler(data, result).load()
    except UnsafePickle:
        raise
    except RecursionError as exc:
        raise UnreadablePickle("pickle nests too deeply to read") from exc
    except MemoryError as exc:
        raise UnreadablePickle("pickle needs more memory than a trainer state could") from exc
    except Exception as exc:  # noqa: BLE001 - any failure inside the pickle means "unreadable"
        raise UnreadablePickle(f"not a readable pickle ({type(exc).__name__}: {exc})") from exc
    return result


def read_pickle_file(path: Path, limit: int = MAX_PICKLE_BYTES) -> Unpickled:
    """Unpickle a plain pickle file (torch DCP's ``.metadata``) as data.

    Raises:
        RefusedFile: not a regular file, or over ``limit`` bytes (:mod:`nemo_resume.checkpoint.bounded_read`).
        UnreadablePickle: not a pickle this reader can turn into data.
    """
    return unpickle_bytes(read_bytes(path, limit))


def read_torch_payload(f: RegularFile, limit: int = MAX_TORCH_PICKLE_BYTES) -> Unpickled:
    """Read a ``torch.save`` zip's pickle as data, from where ``torch.load`` reads it, checking every storage it
    names holds the bytes its tensors need (:mod:`nemo_resume.checkpoint.torch_zip`). ``f`` is a whole file or
    a window of one (an object inside a ``.distcp`` file).

    Only ``data.pkl`` is read: a multi-GB ``.ckpt`` costs the same as a small one.

    Raises:
        UnreadablePickle: torch would refuse the zip or could read it differently, or its pickle is
            corrupt or over ``limit`` bytes, or a tensor's storage is missing or the wrong size.
    """
    try:
        archive = torch_zip_in(f)
        result = unpickle_bytes(archive.read_pickle(limit))
        archive.check_storages((ref.key, ref.dtype, ref.numel) for ref in result.storages)
    except TorchZipError as exc:
        raise UnreadablePickle(str(exc)) from exc
    return result


def read_torch_file(path: Path, limit: int = MAX_TORCH_PICKLE_BYTES) -> Unpickled:
    """:func:`read_torch_payload` of the file at ``path``.

    Raises:
        RefusedFile: not a regular file.
        UnreadablePickle: see :func:`read_torch_payload`.
    """
    with open_regular(path) as f:
        return read_torch_payload(f, limit)
