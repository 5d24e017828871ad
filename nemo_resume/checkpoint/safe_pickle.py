"""Read torch.save files and DCP metadata as plain data, without torch and without running code.

``torch.load(weights_only=False)`` executes whatever the pickle names; ``weights_only=True``
refuses NeMo's ``common.pt`` (it pickles a ``PosixPath``). This module takes the third way:
a restricted unpickler whose ``find_class`` never returns a real callable. Tensors become
:class:`TensorInfo` (shape and dtype, the bytes are never read), known containers become
plain Python containers, and every other global becomes an inert :class:`Opaque` stand-in.
A pickle that *calls* something outside the allow-list is recorded in ``Unpickled.calls``
so the caller can report it; nothing it names is ever imported or run.
"""

from __future__ import annotations

import io
import pickle
import pickletools
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nemo_resume.constants import MAX_COMPRESSED_PICKLE_BYTES, MAX_PICKLE_BYTES

# Top-level modules whose functions are the usual pickle gadgets (code execution, file and
# network access, import machinery). A call into one of them is reported as hostile; a call
# into any other unknown global is reported as unknown. Neither is ever executed.
_HOSTILE_MODULES = frozenset(
    {
        "os", "posix", "nt", "subprocess", "sys", "shutil", "importlib", "runpy", "socket",
        "pty", "code", "codeop", "ctypes", "pickle", "_pickle", "marshal", "types", "functools",
        "operator", "io", "_io", "webbrowser", "multiprocessing", "asyncio", "tempfile",
        "platform", "pdb", "timeit", "builtins", "__builtin__", "commands", "signal", "glob",
        "zipfile", "tarfile", "urllib", "http", "ftplib", "smtplib", "telnetlib", "inspect",
        "torch", "numpy", "dill", "cloudpickle", "yaml", "ruamel", "exec", "eval",
    }
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
    """An object of a class the reader does not rebuild: its name, arguments and state, inert."""

    pickle_name = "?"
    args: tuple[Any, ...]
    state: Any

    def __new__(cls, *args: Any, **kwargs: Any) -> "Opaque":
        obj = object.__new__(cls)
        obj.args = args
        obj.state = None
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        self.state = state

    # Some classes pickle their items with SETITEMS/APPENDS (dict and list subclasses).
    def __setitem__(self, key: Any, value: Any) -> None:
        self.__dict__.setdefault("items", {})[key] = value

    def append(self, value: Any) -> None:
        self.__dict__.setdefault("elements", []).append(value)

    def extend(self, values: Any) -> None:
        for v in values:
            self.append(v)

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
    # Globals the pickle called (REDUCE) that are not on the allow-list, in order, "module.name".
    calls: list[str] = field(default_factory=list)
    # Storage keys the pickle's tensors refer to (torch zip format only).
    storage_keys: set[str] = field(default_factory=set)

    @property
    def hostile_calls(self) -> list[str]:
        return [c for c in self.calls if c.split(".", 1)[0] in _HOSTILE_MODULES]


class UnreadablePickle(Exception):
    """The bytes are not a pickle this reader can turn into data (truncated, corrupt, too big)."""


_STORAGE_DTYPES = {
    "FloatStorage": "float32", "DoubleStorage": "float64", "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16", "LongStorage": "int64", "IntStorage": "int32",
    "ShortStorage": "int16", "CharStorage": "int8", "ByteStorage": "uint8", "BoolStorage": "bool",
    "ComplexFloatStorage": "complex64", "ComplexDoubleStorage": "complex128",
    "UntypedStorage": "uint8",
}


def _rebuild_tensor(storage: Any, _offset: Any, size: Any, *_rest: Any) -> TensorInfo:
    if isinstance(storage, StorageRef):
        return TensorInfo(tuple(size), storage.dtype, storage.key)
    return TensorInfo(tuple(size) if isinstance(size, (tuple, list)) else (), "?")


def _rebuild_from_type(func: Any, _type: Any, args: Any, _state: Any) -> Any:
    # torch._tensor._rebuild_from_type_v2(func, type, args, state): func is itself allow-listed.
    return func(*args) if callable(func) and not isinstance(func, type) else TensorInfo((), "?")


def _rebuild_parameter(data: Any, *_rest: Any) -> Any:
    return data


def _path(*parts: Any) -> str:
    # only strings: str() of a crafted, exponentially shared argument would never return
    return "/".join(p if isinstance(p, str) else "?" for p in parts).replace("//", "/")


def _reconstructor(cls: Any, _base: Any, _state: Any = None) -> Any:
    # copyreg._reconstructor(cls, object, None): protocol 0/1 object creation. Only our own
    # stand-in types reach here (find_class never returns a real class), so this is inert.
    return cls.__new__(cls) if isinstance(cls, type) and issubclass(cls, Opaque) else Opaque()


def _dtype_name(*args: Any) -> str:
    return args[0] if args and isinstance(args[0], str) else "?"


def _build_slice(*args: Any) -> slice:
    return slice(*args)


def _latin1_bytes(text: Any, encoding: str = "latin1") -> bytes:
    # Protocol-2 pickles spell bytes as _codecs.encode(str, "latin1").
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1", "utf-8", "utf8"):
        raise pickle.UnpicklingError("_codecs.encode with unexpected arguments")
    return text.encode(encoding)


def _ordered_dict(*args: Any) -> _Dict:
    return _Dict(*args)


def _bytearray(*args: Any) -> bytearray:
    # Protocols 2-4 pickle a bytearray as bytearray(bytes) or bytearray(str, "latin-1"); an integer
    # argument would allocate that many bytes from a ten-byte pickle.
    if not args:
        return bytearray()
    if isinstance(args[0], (bytes, bytearray)) and len(args) == 1:
        return bytearray(args[0])
    if isinstance(args[0], str) and len(args) == 2 and args[1] in ("latin1", "latin-1"):
        return bytearray(args[0], "latin-1")
    raise pickle.UnpicklingError("bytearray with unexpected arguments")


# (module, name) -> a safe builder. Nothing here imports or runs code named by the file.
_ALLOWED: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): _ordered_dict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "slice"): _build_slice,
    ("builtins", "complex"): complex,
    ("builtins", "bytearray"): _bytearray,
    ("__builtin__", "set"): set,
    ("copyreg", "_reconstructor"): _reconstructor,
    ("pathlib", "PosixPath"): _path,
    ("pathlib", "WindowsPath"): _path,
    ("pathlib", "PurePosixPath"): _path,
    ("pathlib", "PureWindowsPath"): _path,
    ("pathlib", "Path"): _path,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v3"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type,
    ("torch", "Size"): tuple,
    ("numpy", "dtype"): _dtype_name,
    ("torch", "device"): _dtype_name,
    ("torch.serialization", "_get_layout"): _dtype_name,
    ("_codecs", "encode"): _latin1_bytes,
}

# Classes known to be plain data records (torch DCP and megatron-core checkpoint metadata):
# rebuilt as Opaque stand-ins like any other class, but calling them is not suspicious.
_INERT_PREFIXES = ("torch.distributed.checkpoint.", "megatron.core.dist_checkpointing.")


class _Unpickler(pickle.Unpickler):
    def __init__(self, data: bytes, result: Unpickled) -> None:
        super().__init__(io.BytesIO(data))
        self._result = result
        self._opaque_types: dict[str, type] = {}

    def find_class(self, module: str, name: str) -> Any:
        allowed = _ALLOWED.get((module, name))
        if allowed is not None:
            return allowed
        if module == "torch" and name in _STORAGE_DTYPES:
            return _STORAGE_DTYPES[name]
        if module == "torch" and name in {"float32", "float16", "bfloat16", "float64", "int64", "int32", "bool", "uint8", "int8"}:
            return name
        return self._opaque(f"{module}.{name}")

    def _opaque(self, full_name: str) -> type:
        """An inert stand-in type for ``full_name`` that records when the pickle calls it."""
        cached = self._opaque_types.get(full_name)
        if cached is not None:
            return cached
        calls = [] if full_name.startswith(_INERT_PREFIXES) else self._result.calls

        class _Stand_In(Opaque):
            pickle_name = full_name

            def __new__(cls, *args: Any, **kwargs: Any) -> _Stand_In:
                return Opaque.__new__(cls, *args)  # type: ignore[return-value]

            def __init__(self, *args: Any, **kwargs: Any) -> None:
                # REDUCE runs cls(*args) = __new__ + __init__; NEWOBJ runs only __new__.
                # So __init__ marks a call, the way `os.system("...")` would have been made.
                calls.append(full_name)

        self._opaque_types[full_name] = _Stand_In
        return _Stand_In

    def persistent_load(self, pid: Any) -> Any:
        # torch zip format: ("storage", storage_type, key, location, numel)
        if isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage":
            key = str(pid[2])
            self._result.storage_keys.add(key)
            dtype = pid[1] if isinstance(pid[1], str) else "?"
            numel = pid[4] if isinstance(pid[4], int) else -1
            return StorageRef(key, dtype, numel)
        raise pickle.UnpicklingError(f"unsupported persistent id (a {type(pid).__name__})")  # never repr() it


# A trainer state nests a few levels deep and its tuples are small (shapes, strides, call arguments).
# A crafted pickle can instead build, from memo references, a tuple whose shared parts add up to
# 2**64 elements: building a dict keyed by it hashes every path (hours, and no signal interrupts it),
# and a million nested tuples crash the hash, which recurses in C without a guard.
MAX_TUPLE_ELEMENTS = 1_000_000  # counting shared parts once per reference
MAX_NESTING = 1_000
_CAP = MAX_TUPLE_ELEMENTS + 1
_MEMO_SLACK = 1024  # memo indices may run this far ahead of the opcodes read


class _Shape:
    """A value on the simulated stack: its element count (shared parts counted per use) and nesting."""

    __slots__ = ("size", "depth")

    def __init__(self, size: int = 1, depth: int = 0) -> None:
        self.size, self.depth = size, depth

    def grow(self, items: list) -> None:
        if items:
            self.size = min(_CAP, self.size + sum(i.size for i in items))
            self.depth = max(self.depth, 1 + max(i.depth for i in items))


_LEAF = _Shape()  # numbers, strings, globals: never grown (grow() is only called on containers)


def _container(items: list) -> _Shape:
    shape = _Shape(1, 1)
    shape.grow(items)
    return shape


def _bounded(shape: _Shape, what: str) -> _Shape:
    if shape.size > MAX_TUPLE_ELEMENTS:
        raise UnreadablePickle(
            f"builds {what} of more than {MAX_TUPLE_ELEMENTS} elements out of shared parts; "
            "not a trainer state (hashing it would not finish)"
        )
    if shape.depth > MAX_NESTING:
        raise UnreadablePickle(f"nests {what} more than {MAX_NESTING} levels deep; not a trainer state")
    return shape


_SPECIAL = {"MARK", "GET", "BINGET", "LONG_BINGET", "EMPTY_TUPLE", "EMPTY_LIST", "EMPTY_DICT", "EMPTY_SET"}
_PUSH_LEAF = frozenset(
    op.name for op in pickletools.opcodes if not op.stack_before and len(op.stack_after) == 1 and op.name not in _SPECIAL
)


def _check_shape(data: bytes) -> None:
    """Refuse a pickle whose tuples or call arguments would be exponentially large or deep, or whose
    memo indices would make the unpickler allocate far more than the pickle's size.

    Walks the opcodes (``pickletools.genops``) without building anything; each stack value carries
    the size it has when every memo reference is copied out. Costs a few ms per 100 KB.
    """
    stack: list = []
    metastack: list = []
    memo: dict = {}

    def pop_mark() -> list:
        nonlocal stack
        items, stack = stack, metastack.pop()
        return items

    def grow_top(items: list) -> None:
        if stack and stack[-1] is not _LEAF:
            stack[-1].grow(items)

    for count, (op, arg, _pos) in enumerate(pickletools.genops(data)):
        name = op.name
        if name in _PUSH_LEAF:  # the common case first: strings, numbers, None, globals
            stack.append(_LEAF)
        elif name in ("BINPUT", "LONG_BINPUT", "PUT"):
            if isinstance(arg, int) and arg > count + _MEMO_SLACK:
                # picklers number memo entries 0, 1, 2, ...; the C unpickler sizes its memo table by
                # the index, so one 5-byte opcode could make it allocate and zero gigabytes
                raise UnreadablePickle(f"stores memo entry {arg} after {count} opcodes; not a pickler's numbering")
            memo[arg] = stack[-1]
        elif name in ("BINGET", "LONG_BINGET", "GET"):
            stack.append(memo[arg])
        elif name == "MARK":
            metastack.append(stack)
            stack = []
        elif name == "STOP":
            return
        elif name == "MEMOIZE":
            memo[len(memo)] = stack[-1]
        elif name == "POP":
            if stack:
                stack.pop()
            else:
                pop_mark()
        elif name == "POP_MARK":
            pop_mark()
        elif name == "DUP":
            stack.append(stack[-1])
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            n = int(name[-1])
            items = stack[-n:]
            del stack[-n:]
            stack.append(_bounded(_container(items), "a tuple"))
        elif name in ("TUPLE", "FROZENSET"):
            shape = _bounded(_container(pop_mark()), "a tuple")  # pop_mark() rebinds stack: call it first
            stack.append(shape)
        elif name in ("EMPTY_TUPLE", "EMPTY_LIST", "EMPTY_DICT", "EMPTY_SET"):
            stack.append(_Shape(1, 1))
        elif name in ("LIST", "DICT"):
            shape = _container(pop_mark())
            stack.append(shape)
        elif name in ("APPENDS", "SETITEMS", "ADDITEMS"):
            grow_top(pop_mark())
        elif name == "APPEND":
            grow_top([stack.pop()])
        elif name == "SETITEM":
            value, key = stack.pop(), stack.pop()
            grow_top([key, value])
        elif name == "BUILD":
            grow_top([stack.pop()])
        elif name in ("REDUCE", "NEWOBJ"):
            args = stack.pop()
            stack[-1] = _Shape(_bounded(args, "call arguments").size, args.depth)
        elif name == "NEWOBJ_EX":
            kwargs, args = stack.pop(), stack.pop()
            both = _bounded(_container([args, kwargs]), "call arguments")
            stack[-1] = _Shape(both.size, both.depth)
        elif name in ("OBJ", "INST"):
            shape = _Shape(_bounded(_container(pop_mark()), "call arguments").size, 1)
            stack.append(shape)
        else:  # constants, globals, persistent ids, FRAME, PROTO: by their declared stack effect
            if pickletools.markobject in op.stack_before:
                pop_mark()
            elif op.stack_before:
                del stack[len(stack) - len(op.stack_before) :]
            stack.extend([_LEAF] * len(op.stack_after))


def unpickle_bytes(data: bytes) -> Unpickled:
    """Unpickle ``data`` into plain data; raise :class:`UnreadablePickle` if it cannot be read."""
    result = Unpickled(value=None)
    try:
        _check_shape(data)
    except UnreadablePickle:
        raise
    except Exception as exc:  # noqa: BLE001 - a pickle the opcode walk cannot follow is not loaded
        raise UnreadablePickle(f"not a readable pickle ({type(exc).__name__}: {exc})") from exc
    try:
        result.value = _Unpickler(data, result).load()
    except RecursionError as exc:
        raise UnreadablePickle("pickle nests too deeply to read") from exc
    except MemoryError as exc:
        raise UnreadablePickle("pickle needs more memory than a trainer state could") from exc
    except Exception as exc:  # noqa: BLE001 - any failure inside the pickle means "unreadable"
        raise UnreadablePickle(f"not a readable pickle ({type(exc).__name__}: {exc})") from exc
    return result


def read_pickle_file(path: Path, limit: int = MAX_PICKLE_BYTES) -> Unpickled:
    """Unpickle a plain pickle file (torch DCP's ``.metadata``) as data."""
    with open(path, "rb") as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise UnreadablePickle(f"larger than {limit // (1024 * 1024)} MiB; not a checkpoint metadata file")
    return unpickle_bytes(data)


def read_torch_file(path: Path, limit: int = MAX_PICKLE_BYTES) -> Unpickled:
    """Read a ``torch.save`` zip file's pickle as data, checking every storage it names exists.

    Only ``data.pkl`` is read: a multi-GB ``.ckpt`` costs the same as a small one.

    Raises:
        UnreadablePickle: the file is not a complete torch zip, its pickle is corrupt or
            oversized, or a tensor's storage entry is missing.
    """
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            pkl = [i for i in infos if i.filename.endswith("/data.pkl") or i.filename == "data.pkl"]
            if not pkl:
                raise UnreadablePickle("zip has no data.pkl; not a torch.save file")
            info = pkl[0]
            if info.file_size > limit:
                raise UnreadablePickle(
                    f"data.pkl is {info.file_size} bytes uncompressed; refusing more than {limit} bytes"
                )
            if info.compress_type != zipfile.ZIP_STORED and info.file_size > MAX_COMPRESSED_PICKLE_BYTES:
                # torch.save stores data.pkl uncompressed: inflating a large compressed one is how a
                # zip bomb turns kilobytes on disk into gigabytes of memory.
                raise UnreadablePickle(
                    f"data.pkl is compressed ({info.compress_size} bytes inflating to {info.file_size}); "
                    f"torch.save never compresses it, refusing more than {MAX_COMPRESSED_PICKLE_BYTES} bytes"
                )
            with zf.open(info) as fh:
                data = fh.read(min(limit, info.file_size) + 1)  # zipfile also stops at the stated size
            if len(data) > limit:
                raise UnreadablePickle(f"data.pkl inflates past {limit} bytes; refusing it")
            prefix = info.filename[: -len("data.pkl")]
            names = {i.filename for i in infos}
    except zipfile.BadZipFile as exc:
        raise UnreadablePickle(f"not a complete torch.save zip ({exc}); truncated or not a checkpoint") from exc
    except (zipfile.LargeZipFile, NotImplementedError, EOFError, ValueError) as exc:
        raise UnreadablePickle(f"unreadable zip ({exc})") from exc
    result = unpickle_bytes(data)
    missing = sorted(k for k in result.storage_keys if f"{prefix}data/{k}" not in names)
    if missing:
        raise UnreadablePickle(f"tensor storage {', '.join(missing[:3])} missing from the zip")
    return result
