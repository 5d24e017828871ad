"""Read what a checkpoint will restore: step, per-group LRs, scheduler state, saved config.

The values come from the trainer-state pickle (``weights/common.pt`` for the Megatron layout,
the ``.ckpt`` itself for Lightning) read by :mod:`nemo_resume.checkpoint.safe_pickle`, and, with megatron-core's
distributed optimizer, each param group from its ShardedObject in a ``.distcp`` file
(:mod:`nemo_resume.checkpoint.distcp`), so no code from the checkpoint runs and no tensor bytes are read.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from nemo_resume.checkpoint.bounded_read import RefusedFile, read_json
from nemo_resume.checkpoint.context import SavedConfig, SavedContext, read_context
from nemo_resume.checkpoint.distcp import DcpObject, DcpObjects, read_dcp_objects
from nemo_resume.checkpoint.integrity import WeightsReport, inspect_weights
from nemo_resume.checkpoint.layout import CheckpointLocation
from nemo_resume.checkpoint.run_layout import RunLayout, read_run_layout
from nemo_resume.checkpoint.safe_pickle import (
    Unpickled,
    UnreadablePickle,
    UnsafeGlobal,
    UnsafePickle,
    read_torch_file,
)
from nemo_resume.constants import (
    ADAPTER_METADATA_JSON,
    CALLBACKS_KEY,
    COMMON_PT,
    CONSUMED_SAMPLES_KEY,
    EPOCH_KEY,
    FORMAT_LIGHTNING,
    FORMAT_MEGATRON,
    GLOBAL_STEP_KEY,
    INT64_MAX,
    INT64_MIN,
    IO_JSON,
    LR_SCHEDULERS_KEY,
    MAX_JSON_BYTES,
    OPTIMIZER_KEY,
    OPTIMIZER_STATES_KEY,
    PARAM_GROUPS_KEY,
    WEIGHTS_DIR,
)
from nemo_resume.errors import NemoResumeError
from nemo_resume.schedules.lr_stages import Stage, stages_from_json
from nemo_resume.schedules.request import is_real, is_whole

# megatron-core's per-group multipliers (lr_mult, wd_mult) and NeMo's names for them once applied
# (nemo/lightning/_strategy_lib.py setup_megatron_optimizer: pre_lr_mult, pre_wd_mult, and the LR and weight
# decay before they were applied, pre_mult_lr, pre_mult_wd)
_MULT_KEYS = ("lr_mult", "wd_mult", "pre_lr_mult", "pre_wd_mult", "pre_mult_lr", "pre_mult_wd")
_LR_KEYS = ("lr", "initial_lr", "max_lr", "min_lr", "weight_decay")


@dataclass(frozen=True)
class ParamGroupLR:
    """One optimizer param group's learning-rate fields as saved (Megatron adds max/min_lr and the multipliers)."""

    lr: float | None
    initial_lr: float | None = None
    max_lr: float | None = None
    min_lr: float | None = None
    weight_decay: float | None = None
    mults: tuple[tuple[str, float], ...] = ()  # the _MULT_KEYS the group holds, in that order

    def to_json(self) -> dict[str, Any]:
        return {"lr": self.lr, "initial_lr": self.initial_lr, "max_lr": self.max_lr, "min_lr": self.min_lr,
                "weight_decay": self.weight_decay, "mults": dict(self.mults)}


#: Where the param groups were read: a Lightning .ckpt, weights/common.pt, or the distributed optimizer's
#: ShardedObject(s) in weights/*.distcp.
GroupsSource = Literal["ckpt", "common.pt", "distcp"]


@dataclass(frozen=True)
class SchedulerState:
    """The saved ``state_dict`` of a NeMo WarmupAnnealHoldPolicy scheduler (CosineAnnealing).

    On resume Lightning applies it with ``__dict__.update``, so every field here overrides
    the new config.
    """

    base_lrs: tuple[float, ...]
    min_lr: float | None
    max_steps: int | None
    warmup_steps: int | None
    constant_steps: int | None
    decay_steps: int | None
    last_epoch: int | None
    last_lrs: tuple[float, ...] = ()  # _last_lr: each group's LR at last_epoch
    stages: tuple[Stage, ...] = ()  # nemo_resume's StagedLR (--lr-stages)
    # Other plain public fields of the state dict (hold_steps, power, ...): other NeMo classes restore them too.
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "base_lrs": list(self.base_lrs),
            "min_lr": self.min_lr,
            "max_steps": self.max_steps,
            "warmup_steps": self.warmup_steps,
            "constant_steps": self.constant_steps,
            "decay_steps": self.decay_steps,
            "last_epoch": self.last_epoch,
            "last_lr": list(self.last_lrs),
            "stages": [st.to_json() for st in self.stages],
            "extra": dict(self.extra),
        }


@dataclass(frozen=True)
class CheckpointState:
    """Everything the inspector knows about one checkpoint."""

    location: CheckpointLocation
    incomplete_reasons: tuple[str, ...] = ()
    step: int | None = None
    epoch: int | None = None
    consumed_samples: float | None = None
    param_groups: tuple[ParamGroupLR, ...] = ()
    has_optimizer_state: bool | None = None
    scheduler: SchedulerState | None = None
    config: SavedConfig | None = None
    # Globals its pickles name that the real loader would import or call (safe_pickle's allow-list): never load it.
    unsafe_globals: tuple[UnsafeGlobal, ...] = ()
    notes: tuple[str, ...] = field(default=())
    # The folder nl.ModelCheckpoint was saving into when it wrote this one (its callback state's
    # dirpath): tells two runs' checkpoints apart when they are copied into one folder.
    saved_dirpath: str | None = None
    param_groups_source: GroupsSource | None = None
    # the distributed optimizer's objects the param groups were read from (param_groups_source "distcp")
    param_groups_objects: tuple[DcpObject, ...] = ()
    # megatron-core's content_metadata in common.pt (distrib_optim_sharding_type, ...): how the state was sharded
    content_metadata: dict[str, Any] | None = None
    # what a resume restores beyond the LR (parallel layout, batch sizes, optimizer format, PEFT base, ...)
    run_layout: RunLayout = field(default_factory=RunLayout)

    @property
    def complete(self) -> bool:
        return not self.incomplete_reasons

    @property
    def lrs(self) -> list[float | None]:
        return [g.lr for g in self.param_groups]


class OutOfRange(ValueError):
    """A saved integer no int64 holds: NeMo could not have written it, and no step can be computed from it."""


def _int(v: Any, name: str) -> int | None:
    """``v`` if it is an integer (None if it is not one).

    Raises:
        OutOfRange: it is outside int64 (a pickle holds any integer: 10**5000 once broke the whole command).
    """
    if not is_whole(v):
        return None
    if not INT64_MIN <= v <= INT64_MAX:
        raise OutOfRange(f"{name} is a {v.bit_length()}-bit integer; NeMo keeps it in an int64 (the state is damaged)")
    return v


def _num(v: Any, name: str) -> float | None:
    """``v`` as a float if it is a number (NaN and infinity kept: the inspector reports them); integers as :func:`_int`."""
    if is_whole(v):
        _int(v, name)  # raises outside int64
    return float(v) if is_real(v) else None


def _floats(v: Any, name: str) -> tuple[float, ...]:
    if not isinstance(v, (list, tuple)):
        return ()
    return tuple(x for x in (_num(b, name) for b in v) if x is not None)


_MAX_VISITS = 100_000  # containers looked at; a real optimizer state holds param_groups within a few


def _find_param_groups(node: Any) -> list[dict] | None:
    """The first ``param_groups`` list in an optimizer state (Lightning or megatron-core).

    Depth-first, at most 5 levels, each container visited once and at most ``_MAX_VISITS`` of them:
    a crafted pickle can share one list a thousand times at every level.
    """
    stack: list[tuple[Any, int]] = [(node, 0)]
    seen: set[int] = set()
    while stack and len(seen) < _MAX_VISITS:
        node, depth = stack.pop()
        if id(node) in seen or depth > 4:
            continue
        if isinstance(node, dict):
            seen.add(id(node))
            groups = node.get(PARAM_GROUPS_KEY)
            if isinstance(groups, list) and all(isinstance(g, dict) for g in groups):
                return groups
            children = list(node.values())
        elif isinstance(node, (list, tuple)):
            seen.add(id(node))
            children = list(node)
        else:
            continue
        stack.extend((child, depth + 1) for child in reversed(children))
    return None


def _param_group(g: dict) -> ParamGroupLR:
    lr, initial_lr, max_lr, min_lr, weight_decay = (_num(g.get(key), f"param group {key}") for key in _LR_KEYS)
    mults = tuple((k, x) for k in _MULT_KEYS if (x := _num(g.get(k), f"param group {k}")) is not None)
    return ParamGroupLR(lr, initial_lr, max_lr, min_lr, weight_decay, mults)


_MAX_CONTENT_METADATA = 64  # entries; megatron-core writes 3 or 4


def _content_metadata(state: dict) -> dict[str, Any] | None:
    """``content_metadata`` (megatron-core's ``dist_checkpointing.save``): its plain entries."""
    meta = state.get("content_metadata")
    if not isinstance(meta, dict):
        return None
    plain = (str, float, bool, type(None))
    return {
        k: _int(v, f"content_metadata {k}") if is_whole(v) else v
        for k, v in list(meta.items())[:_MAX_CONTENT_METADATA]
        if isinstance(k, str) and (isinstance(v, plain) or is_whole(v))
    }


def _optimizer_part(state: dict) -> Any:
    for key in (OPTIMIZER_STATES_KEY, OPTIMIZER_KEY):
        part = state.get(key)
        if part:
            return part
    return None


# State-dict keys SchedulerState models by name ("stages" too); every other plain public one goes to extra.
_MODELED = {"base_lrs", "min_lr", "max_steps", "warmup_steps", "constant_steps", "decay_steps", "last_epoch", "stages"}


_MAX_STAGES = 10_000  # a real --lr-stages run has a handful; a crafted pickle can repeat one dict millions of times


def _stages(v: Any) -> tuple[Stage, ...]:
    if v is None or (isinstance(v, (list, tuple)) and len(v) > _MAX_STAGES):
        return ()
    for stage in v if isinstance(v, (list, tuple)) else ():
        for key in ("steps", "lr", "warmup_steps") if isinstance(stage, dict) else ():
            _num(stage.get(key), f"stages {key}")  # raises for an integer no int64 holds, before any arithmetic
    try:
        return stages_from_json(v)
    except NemoResumeError:
        return ()  # not nemo_resume's stages: reported as a plain scheduler


def _extra(s: dict) -> dict[str, Any]:
    plain = (int, float, str, bool, type(None))
    out: dict[str, Any] = {}
    for k, v in s.items():
        if not isinstance(k, str) or k.startswith("_") or k in _MODELED:
            continue
        if isinstance(v, plain):
            out[k] = _int(v, k) if is_whole(v) else v
        elif isinstance(v, list) and v and all(is_real(x) for x in v):  # per-group values (cooldown_start_lrs)
            out[k] = list(_floats(v, k))
    return out


def _scheduler(state: dict) -> SchedulerState | None:
    scheds = state.get(LR_SCHEDULERS_KEY)
    if not isinstance(scheds, list) or not scheds or not isinstance(scheds[0], dict):
        return None
    s = scheds[0]
    return SchedulerState(
        base_lrs=_floats(s.get("base_lrs"), "base_lrs"),
        min_lr=_num(s.get("min_lr"), "min_lr"),
        max_steps=_int(s.get("max_steps"), "max_steps"),
        warmup_steps=_int(s.get("warmup_steps"), "warmup_steps"),
        constant_steps=_int(s.get("constant_steps"), "constant_steps"),
        decay_steps=_int(s.get("decay_steps"), "decay_steps"),
        last_epoch=_int(s.get("last_epoch"), "last_epoch"),
        last_lrs=_floats(s.get("_last_lr"), "_last_lr"),
        stages=_stages(s.get("stages")),
        extra=_extra(s),
    )


def _consumed_samples(state: dict) -> float | None:
    direct = _num(state.get(CONSUMED_SAMPLES_KEY), CONSUMED_SAMPLES_KEY)
    if direct is not None:
        return direct
    # Lightning keeps each datamodule's state_dict under its class name; NeMo's data modules
    # store {"consumed_samples": N} there.
    for value in state.values():
        if isinstance(value, dict):
            found = _num(value.get(CONSUMED_SAMPLES_KEY), CONSUMED_SAMPLES_KEY)
            if found is not None:
                return found
    return None


def _saved_dirpath(state: dict) -> str | None:
    """``dirpath`` from the ModelCheckpoint callback's state (Lightning keys callbacks by class name)."""
    callbacks = state.get(CALLBACKS_KEY)
    if not isinstance(callbacks, dict):
        return None
    for key, value in callbacks.items():
        if isinstance(key, str) and key.startswith("ModelCheckpoint") and isinstance(value, dict):
            dirpath = value.get("dirpath")
            if isinstance(dirpath, str):
                return dirpath
    return None


def _from_trainer_state(loc: CheckpointLocation, pickled: Unpickled, reasons: list[str]) -> dict[str, Any]:
    state = pickled.value
    if not isinstance(state, dict):
        reasons.append("trainer state is not a dict; not a Lightning/NeMo checkpoint")
        return {}
    optim = _optimizer_part(state)
    groups = _find_param_groups(optim) or []
    return {
        "step": _int(state.get(GLOBAL_STEP_KEY), GLOBAL_STEP_KEY),
        "epoch": _int(state.get(EPOCH_KEY), EPOCH_KEY),
        "consumed_samples": _consumed_samples(state),
        "param_groups": tuple(_param_group(g) for g in groups),
        "param_groups_source": (COMMON_PT if loc.format == FORMAT_MEGATRON else "ckpt") if groups else None,
        "has_optimizer_state": optim is not None,
        "scheduler": _scheduler(state),
        "saved_dirpath": _saved_dirpath(state),
        "content_metadata": _content_metadata(state),
    }


def _groups_from_objects(objects: DcpObjects) -> tuple[tuple[ParamGroupLR, ...], tuple[DcpObject, ...]]:
    """Rank 0's param groups from the distributed optimizer's objects (:meth:`DcpObjects.param_groups_of_rank_0`).

    Raises:
        LookupError: an object is missing or unreadable, or holds no param groups; says which.
        OutOfRange: a saved integer no int64 holds.
    """
    groups: list[ParamGroupLR] = []
    used = objects.param_groups_of_rank_0()
    for obj, value in used:
        if value is None:
            raise LookupError(f"{obj.where} could not be read")
        found = _find_param_groups(value)
        if found is None:
            raise LookupError(f"{obj.where} holds no param_groups")
        groups += [_param_group(g) for g in found]
    return tuple(groups), tuple(obj for obj, _ in used)


def _state_file(loc: CheckpointLocation) -> Path:
    return loc.path / WEIGHTS_DIR / COMMON_PT if loc.format == FORMAT_MEGATRON else loc.path


def read_checkpoint(loc: CheckpointLocation) -> CheckpointState:
    """Read one checkpoint's state and every reason it cannot be resumed from.

    Never raises for a broken checkpoint: what cannot be read becomes an incomplete reason,
    so one bad folder does not hide the good ones beside it.
    """
    reasons = list(loc.layout_reasons)
    if loc.unfinished_marker.exists():
        reasons.append(f"save was interrupted: {loc.unfinished_marker.name} marker is present")
    elif loc.target_unfinished_marker is not None and loc.target_unfinished_marker.exists():
        reasons.append(
            f"its target's save or removal was interrupted: {loc.target_unfinished_marker.name} marker is present"
        )
    fields: dict[str, Any] = {}
    trainer: dict[str, Any] | None = None
    adapter_metadata: Any = None
    notes: list[str] = []
    weights: WeightsReport | None = None
    objects = DcpObjects()
    unsafe: list[UnsafeGlobal] = []
    if loc.format == FORMAT_MEGATRON:
        weights = inspect_weights(loc.path / WEIGHTS_DIR)
        reasons += weights.problems
        unsafe += weights.unsafe_globals
        if weights.metadata is not None:
            objects = read_dcp_objects(loc.path / WEIGHTS_DIR, weights.metadata)
            reasons += objects.problems
            unsafe += objects.unsafe_globals
    if loc.format in (FORMAT_MEGATRON, FORMAT_LIGHTNING):
        state_file = _state_file(loc)
        rel = state_file.name if loc.format == FORMAT_LIGHTNING else f"{WEIGHTS_DIR}/{COMMON_PT}"
        try:
            pickled = read_torch_file(state_file)
            trainer = pickled.value if isinstance(pickled.value, dict) else None
            fields = _from_trainer_state(loc, pickled, reasons)
            reasons += [f"{rel} names {name}, which torch.load(weights_only=True) in NeMo's checkpoint load refuses "
                        f"(UnpicklingError before any step); NeMo writes it in {when}: resume from the run's next "
                        "checkpoint (the recipes' runs do not write it)" for name, when in pickled.weights_only_refusals()]
        except FileNotFoundError:
            pass  # inspect_weights already said common.pt is missing
        except PermissionError:
            reasons.append(f"{rel} is not readable (permission denied)")
        except OSError as exc:  # RefusedFile included: a FIFO, a device, a directory
            reasons.append(f"{rel} is unreadable ({exc.strerror or exc})")
        except UnsafePickle as exc:
            unsafe += [replace(g, file=rel) for g in exc.found]
        except (UnreadablePickle, OutOfRange) as exc:
            reasons.append(f"{rel}: {exc}")
    if weights is not None and fields and not fields["has_optimizer_state"]:
        fields["has_optimizer_state"] = weights.has_optimizer_state
    if weights is not None and fields and fields["has_optimizer_state"] and not fields["param_groups"]:
        # megatron-core's distributed optimizer keeps its param groups (each group's LR) in ShardedObjects in the
        # .distcp files, not in common.pt; a resume that cannot load them fails, so neither can this
        try:
            fields["param_groups"], fields["param_groups_objects"] = _groups_from_objects(objects)
            fields["param_groups_source"] = "distcp"
        except (LookupError, OutOfRange) as exc:
            reasons.append(f"the optimizer's param groups are in neither {WEIGHTS_DIR}/{COMMON_PT} nor a readable "
                           f"distributed-optimizer object: {exc}")
    reasons += [g.describe() + "; refusing to load it" for g in unsafe]  # so it is never complete, nor offered
    if fields.get("step") is None and loc.step_from_name is not None:
        fields["step"] = loc.step_from_name
        notes.append("step taken from the folder name; the trainer state could not be read")
    if fields.get("consumed_samples") is None and loc.consumed_samples_from_name is not None:
        fields["consumed_samples"] = loc.consumed_samples_from_name
    context: SavedContext | None = None
    if loc.context_dir is not None:
        try:
            context = read_context(loc.context_dir)
        except RefusedFile as exc:  # planted (a FIFO, /dev/zero, megabytes), not merely damaged
            reasons.append(f"context/{IO_JSON} is unreadable ({exc.strerror})")
        except (OSError, ValueError) as exc:
            notes.append(f"context/io.json not read: {exc}")
    if loc.format == FORMAT_MEGATRON:
        adapter_metadata = _adapter_metadata(loc, notes)
    layout = read_run_layout(context, trainer, tuple(g.mults for g in fields.get("param_groups", ())),
                             fields.get("has_optimizer_state"), adapter_metadata)
    return CheckpointState(
        location=loc, incomplete_reasons=tuple(reasons), config=context.config if context else None,
        notes=tuple(notes), unsafe_globals=tuple(unsafe), run_layout=layout, **fields,
    )


def _adapter_metadata(loc: CheckpointLocation, notes: list[str]) -> Any:
    """``weights/adapter_metadata.json``: NeMo's PEFT callback names the base model checkpoint there
    (``nemo/lightning/pytorch/callbacks/peft.py:523``); None when there is none."""
    path = loc.path / WEIGHTS_DIR / ADAPTER_METADATA_JSON
    if not path.exists():
        return None
    try:
        return read_json(path, MAX_JSON_BYTES)
    except (OSError, ValueError, RecursionError) as exc:  # RefusedFile included
        notes.append(f"{WEIGHTS_DIR}/{ADAPTER_METADATA_JSON} not read: {exc}")
        return None
