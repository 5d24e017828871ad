"""The pickle allow-list (nemo_resume.checkpoint.safe_pickle.ALLOWED_GLOBALS) against the globals real checkpoints hold.

Real checkpoints of every kind the project writes are walked here with a collector of its own (pickletools,
independent of the code under test): Lightning ``.ckpt`` files of smoke runs (cosine with warmup; the
finished run's weights-only save; staged LR with lr-mult groups and --save-from-step; Hugging Face "linear"
with three lr-mult groups, weight decay and top-k saving), and megatron-core ``common.pt`` + ``.metadata``
(full and weights-only, plain and lr-mult param groups) with the ShardedObjects inside their ``.distcp`` files
(found with torch DCP's own reader). The allow-list must hold every global found, and each
entry not found must be justified below: so it can neither refuse a real checkpoint nor silently grow.

Then the way each allowed global is used: a builder called with arguments torch never writes, a record class
called, a value called, a global spelled by STACK_GLOBAL, INST or an extension code, all refused with
``UnsafePickle``, planted in a real checkpoint's pickle; and the walk's limits, sized to the real files.
"""

from __future__ import annotations

import _compat_pickle
import io
import pickletools
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from nemo_resume.checkpoint import safe_pickle
from nemo_resume.checkpoint.distcp import read_dcp_objects
from nemo_resume.checkpoint.safe_pickle import (
    ALLOWED_GLOBALS,
    UnreadablePickle,
    UnsafePickle,
    read_pickle_file,
    read_torch_file,
    unpickle_bytes,
)
from nemo_resume.constants import MAX_PICKLE_MARKS, MAX_PICKLE_OPCODES, MAX_PICKLE_STACK
from tests.support.pickle_ops import call, data_pkl, global_, insert_before_stop, prefixed, stack_global, text

pytestmark = pytest.mark.nemo

ROOT = Path(__file__).resolve().parents[2]

# Allowed, not found in the CPU runs above, and why a real run writes them.
_DTYPE_WHY = (
    "a tensor's dtype is data, not code: a bf16 or fp16 GPU run (the Qwen2.5 recipes train in bf16) saves its "
    "tensors, and DCP records their dtypes, exactly as these CPU runs do for float32 and int64"
)
JUSTIFIED = {
    **{("torch", f"{k}Storage"): _DTYPE_WHY for k in ("BFloat16", "Half", "Double", "Short", "Char", "Byte", "Bool")},
    **{("torch", d): _DTYPE_WHY for d in ("bfloat16", "float16", "float64", "int64", "int32", "int16", "int8", "uint8",
                                           "bool")},
}

_DCP = "torch.distributed.checkpoint."
# Read from NeMo MegatronStrategy runs with megatron-core's DISTRIBUTED optimizer on CPU (first the reference
# ../shared/megatron-cpu/run.py, DP 1 and 2; now the recipe's own --smoke rehearsal): the optimizer's param_groups
# go into a .distcp shard, and common.pt, .metadata and the .distcp objects name exactly these.
# test_a_distributed_optimizer_checkpoint_names_only_allowed_globals reads them again from a rehearsal.
DIST_OPT_FOUND = {
    "common.pt": {("collections", "OrderedDict"), ("pathlib", "PosixPath"), ("torch", "FloatStorage"),
                  ("torch", "IntStorage"), ("torch._utils", "_rebuild_tensor_v2")},
    ".metadata": {("megatron.core.dist_checkpointing.strategies.torch", "MCoreMetadata"),
                  ("megatron.core.dist_checkpointing.strategies.torch", "MCoreSavePlan"), ("torch", "Size"),
                  ("torch", "float32"), (_DCP + "filesystem", "_StorageInfo"),
                  (_DCP + "metadata", "BytesStorageMetadata"), (_DCP + "metadata", "ChunkStorageMetadata"),
                  (_DCP + "metadata", "MetadataIndex"), (_DCP + "metadata", "StorageMeta"),
                  (_DCP + "metadata", "TensorProperties"), (_DCP + "metadata", "TensorStorageMetadata"),
                  (_DCP + "metadata", "_MEM_FORMAT_ENCODING"), (_DCP + "planner", "TensorWriteData"),
                  (_DCP + "planner", "WriteItem"), (_DCP + "planner", "WriteItemType"),
                  ("torch.serialization", "_get_layout")},
    # the ShardedObjects in the .distcp files: the param groups and each layer's _extra_state name none,
    # per_bucket_numel(_unpadded) is keyed by dtypes
    "distcp": {("torch", "float32")},
}  # fmt: skip


# ------------------------------------------------------------------------------------ the independent walk


@dataclass
class Facts:
    """What the real pickles hold: every global, and the largest counts the walk's limits bound."""

    globals: dict[str, set[tuple[str, str]]] = field(default_factory=dict)  # by kind: .ckpt, common.pt, .metadata
    opcodes: int = 0
    marks: int = 0
    stack: int = 0
    files: list[Path] = field(default_factory=list)


def _collect(data: bytes, kind: str, facts: Facts) -> None:
    found = facts.globals.setdefault(kind, set())
    stack: list = []
    marks: list[list] = []
    memo: dict = {}
    for n, (op, arg, _pos) in enumerate(pickletools.genops(data), 1):
        facts.opcodes = max(facts.opcodes, n)
        name, before = op.name, op.stack_before
        if name in ("GLOBAL", "INST"):
            found.add(tuple(arg.split(" ", 1)))
        if name == "STACK_GLOBAL":
            qual, module = stack.pop(), stack.pop()
            found.add((module, qual))
            stack.append(None)
        elif name in ("BINPUT", "LONG_BINPUT", "PUT", "MEMOIZE"):
            memo[arg if name != "MEMOIZE" else len(memo)] = stack[-1]
        elif name in ("BINGET", "LONG_BINGET", "GET"):
            stack.append(memo[arg])
        elif name == "MARK":
            marks.append(stack)
            stack = []
            facts.marks = max(facts.marks, len(marks))
        else:
            if pickletools.markobject in before:
                stack = marks.pop()
                below = before.index(pickletools.markobject)
                del stack[len(stack) - below :]
            else:
                del stack[len(stack) - len(before) :]
            is_text = "UNICODE" in name or "STRING" in name
            stack.extend([arg if is_text else None] * len(op.stack_after))
        facts.stack = max(facts.stack, len(stack) + sum(len(m) for m in marks))


def _sharded_object_pickles(weights: Path) -> list[bytes]:
    """The ``data.pkl`` of every ShardedObject in ``weights/*.distcp``, found by torch DCP's own metadata reader:
    each is what DefaultLoadPlanner.load_bytes hands to torch.load(weights_only=False) on resume."""
    from torch.distributed.checkpoint import FileSystemReader
    from torch.distributed.checkpoint.metadata import BytesStorageMetadata

    metadata = FileSystemReader(str(weights)).read_metadata()
    found = []
    for index, info in metadata.storage_data.items():
        if isinstance(metadata.state_dict_metadata[index.fqn], BytesStorageMetadata):
            raw = (weights / info.relative_path).read_bytes()[info.offset : info.offset + info.length]
            with zipfile.ZipFile(io.BytesIO(raw)) as zf:
                (name,) = [n for n in zf.namelist() if n.endswith("/data.pkl")]
                found.append(zf.read(name))
    return found


def _survey(roots: list[Path]) -> Facts:
    facts = Facts()
    for root in roots:
        for path in sorted(root.rglob("*")):
            if path.is_symlink() or not path.is_file():
                continue
            if path.suffix == ".ckpt" or path.name == "common.pt":
                _collect(data_pkl(path), ".ckpt" if path.suffix == ".ckpt" else "common.pt", facts)
            elif path.name == ".metadata":
                _collect(path.read_bytes(), ".metadata", facts)
                for data in _sharded_object_pickles(path.parent):
                    _collect(data, "distcp", facts)
            else:
                continue
            facts.files.append(path)
    return facts


def _read(path: Path) -> None:
    """Read ``path`` as inspect does: no refusal, and for a .metadata none of the ShardedObjects it lists either."""
    if path.name != ".metadata":
        read_torch_file(path)
        return
    objects = read_dcp_objects(path.parent, read_pickle_file(path))
    assert objects.problems == () and objects.unsafe_globals == (), (path, objects)


# ------------------------------------------------------------------------------------------ real checkpoints


@pytest.fixture(scope="module")
def more_runs(tmp_path_factory) -> Path:
    """The kinds the session fixtures lack: staged LR, lr-mult groups, Hugging Face schedules, top-k saving."""
    from nemo_resume.schedules.request import ScheduleRequest
    from nemo_resume.schedules.scheduler_module import scheduler_module
    from nemo_resume.schedules.staged import StagedLRScheduler
    from nemo_resume.smoke import SmokeConfig
    from nemo_resume.smoke.train import train
    from tests.support.megatron_ckpt import write_megatron_checkpoint

    root = tmp_path_factory.mktemp("allow_list")
    staged = train(SmokeConfig(lr=1e-3, max_steps=20, checkpoint_every=5, lr_mults=(0.5,), save_from_step=10,
                               lr_scheduler=StagedLRScheduler("10:1e-3,10:1e-4"), save_optim_on_train_end=True,
                               name="staged"), root / "staged")
    linear = train(SmokeConfig(lr=1e-3, max_steps=12, checkpoint_every=4, lr_mults=(1.0, 0.5), weight_decay=0.01,
                               save_top_k=2, save_last="link", name="linear",
                               lr_scheduler=scheduler_module(ScheduleRequest(1e-3, 0.0, 12, 2, schedule="linear")).build()),
                   root / "linear")
    assert staged.ok and linear.ok, (staged.error, linear.error)
    write_megatron_checkpoint(staged.checkpoint_at(15), root / "megatron" / "staged-15")
    return root


@pytest.fixture(scope="module")
def facts(more_runs, incident_ckpt, finished_run, megatron_incident_ckpt, megatron_plain_ckpt,
          megatron_finished_ckpt, model_run) -> Facts:
    # model_run: resumed LoRA runs, whose checkpoints name NeMo's AdapterPath
    return _survey([more_runs, incident_ckpt.parent, finished_run.checkpoint_dir, megatron_incident_ckpt,
                    megatron_plain_ckpt, megatron_finished_ckpt, model_run.dir])


def test_the_allow_list_is_what_real_checkpoints_name_plus_the_justified(facts):
    assert {".ckpt", "common.pt", ".metadata", "distcp"} <= set(facts.globals), facts.globals.keys()
    found = set().union(*facts.globals.values())
    allowed = set(ALLOWED_GLOBALS)
    assert found - allowed == set(), "a real checkpoint names a global the allow-list refuses"
    assert allowed - found == set(JUSTIFIED), "allowed but neither found nor justified (or justified but found)"


def test_every_real_file_reads_without_a_refusal(facts):
    # the argument checks accept every way the real files use the allowed globals
    for path in facts.files:
        _read(path)
    assert len(facts.files) >= 15  # the .ckpt files and three megatron checkpoints


def test_the_walks_limits_leave_room_above_the_real_files(facts):
    assert facts.marks * 10 <= MAX_PICKLE_MARKS and facts.stack * 100 <= MAX_PICKLE_STACK
    assert facts.opcodes * 1000 <= MAX_PICKLE_OPCODES  # the 72B-model estimate in nemo_resume/constants.py


def test_the_distributed_optimizers_globals_are_allowed():
    assert set().union(*DIST_OPT_FOUND.values()) <= set(ALLOWED_GLOBALS)


def test_python_maps_no_allowed_global_to_another_one():
    # The unpickler rewrites Python 2 names (fix_imports, protocols < 3): an allowed name must mean itself.
    for module, name in ALLOWED_GLOBALS:
        assert (module, name) not in _compat_pickle.NAME_MAPPING and module not in _compat_pickle.IMPORT_MAPPING


@pytest.mark.slow
@pytest.mark.megatron
def test_a_distributed_optimizer_checkpoint_names_only_allowed_globals(megatron_run):
    found = _survey([megatron_run(True, 1).run_dir])
    assert {k: v for k, v in found.globals.items()} == DIST_OPT_FOUND
    for path in found.files:
        _read(path)


# --------------------------------------------------------------------------------------- how each is used

_REBUILD = global_("torch._utils", "_rebuild_tensor_v2")
_HOOKS = call(global_("collections", "OrderedDict"))


def _storage(key: str = "0", numel: int = 1) -> bytes:
    return b"(" + text("storage") + global_("torch", "FloatStorage") + text(key) + text("cpu") + b"K" + bytes([numel]) + b"tQ"


MISUSES = {
    "OrderedDict with items as arguments": (call(global_("collections", "OrderedDict"), b"]"), "collections.OrderedDict"),
    "PosixPath of a number": (call(global_("pathlib", "PosixPath"), b"K\x01"), "pathlib.PosixPath"),
    "a tensor on a path, not a storage": (
        call(_REBUILD, call(global_("pathlib", "PosixPath"), text("x")), b"K\x00", b"(K\x01t", b"(K\x01t", b"\x89", _HOOKS),
        "torch._utils._rebuild_tensor_v2",
    ),
    "a tensor with backward hooks": (
        call(_REBUILD, _storage(), b"K\x00", b"(K\x01t", b"(K\x01t", b"\x89",
             _HOOKS + text("hook") + call(global_("torch", "Size"), b"(t") + b"s"),
        "torch._utils._rebuild_tensor_v2",
    ),
    "a tensor of three arguments": (call(_REBUILD, _storage(), b"K\x00", b"(K\x01t"), "torch._utils._rebuild_tensor_v2"),
    "torch.Size of strings": (call(global_("torch", "Size"), b"(" + text("a") + b"t"), "torch.Size"),
    "a layout of a number": (call(global_("torch.serialization", "_get_layout"), b"K\x01"), "torch.serialization._get_layout"),
    "an enum of a string": (call(global_(_DCP + "planner", "WriteItemType"), text("x")), _DCP + "planner.WriteItemType"),
    "a record called": (call(global_(_DCP + "metadata", "MetadataIndex")), _DCP + "metadata.MetadataIndex"),
    "a record created with arguments": (
        global_(_DCP + "metadata", "MetadataIndex") + b"(" + text("x") + b"t\x81",  # NEWOBJ
        _DCP + "metadata.MetadataIndex",
    ),
    "a storage type called (torch would allocate it)": (call(global_("torch", "FloatStorage"), b"J\x00\x00\x00\x40"), "torch.FloatStorage"),
    "a dtype called": (call(global_("torch", "float32"), text("x")), "torch.float32"),
}  # fmt: skip


@pytest.mark.parametrize("ops, name", MISUSES.values(), ids=MISUSES.keys())
def test_an_allowed_global_used_the_way_torch_never_does_is_unsafe(incident_ckpt, ops, name):
    with pytest.raises(UnsafePickle) as err:
        unpickle_bytes(insert_before_stop(data_pkl(incident_ckpt), ops))
    assert [g.name for g in err.value.found] == [name]
    assert "torch never writes that" in str(err.value)


WALK = {
    # a reference is refused as a call is: importing the module is enough to run it
    "STACK_GLOBAL of memoized strings": (stack_global("nr_module", "f"), "nr_module.f"),
    "INST": (b"(" + text("x") + b"inr_module\nf\n", "nr_module.f"),
    "EXT1": (b"\x82\x01", "copyreg extension code 1"),
    "a dotted name": (stack_global("pathlib", "Path.touch"), "pathlib.Path.touch"),
    "an allowed name with a control character": (stack_global("collections", "OrderedDict\x1b[2J"), "collections.OrderedDict\x1b[2J"),
}  # fmt: skip


@pytest.mark.parametrize("ops, name", WALK.values(), ids=WALK.keys())
def test_every_global_the_walk_finds_must_be_allowed(megatron_incident_ckpt, ops, name):
    with pytest.raises(UnsafePickle) as err:
        unpickle_bytes(prefixed((megatron_incident_ckpt / "weights" / ".metadata").read_bytes(), ops))
    assert [g.name for g in err.value.found] == [name]
    assert "\x1b" not in str(err.value) and "\n" not in str(err.value)  # file-derived text is quoted


def test_the_walk_names_the_unsafe_globals_even_when_the_pickle_breaks_after_them(incident_ckpt):
    ops = global_("nr_module", "f") + b"0" + b"(" * (MAX_PICKLE_MARKS + 1)
    with pytest.raises(UnsafePickle, match="nr_module.f"):
        unpickle_bytes(insert_before_stop(data_pkl(incident_ckpt), ops))


def test_opcodes_marks_and_stack_over_their_limits_are_refused(incident_ckpt, monkeypatch):
    real = data_pkl(incident_ckpt)
    with pytest.raises(UnreadablePickle, match=f"more than {MAX_PICKLE_MARKS} MARKs at once"):
        unpickle_bytes(insert_before_stop(real, b"(" * (MAX_PICKLE_MARKS + 1) + b"N" + b"1" * (MAX_PICKLE_MARKS + 1)))
    with pytest.raises(UnreadablePickle, match=f"more than {MAX_PICKLE_STACK} values"):
        unpickle_bytes(insert_before_stop(real, b"N" * MAX_PICKLE_STACK + b"0" * (MAX_PICKLE_STACK - 1)))
    monkeypatch.setattr(safe_pickle, "MAX_PICKLE_OPCODES", 1000)
    with pytest.raises(UnreadablePickle, match="more than 1000 opcodes"):
        unpickle_bytes(real)
