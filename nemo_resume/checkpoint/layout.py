"""Find NeMo 2 checkpoints under a path, whatever level of the run folder the user points at.

AutoResume looks one level deep and picks by file time; users point at the experiment root,
a version folder, ``checkpoints/``, one checkpoint, its ``weights/`` or a Lightning ``.ckpt``.
This module turns any of those into a list of :class:`CheckpointLocation`, reading only
directory entries (never file contents), never following links out of the walk, and never recursing
(a folder chain deeper than Python's stack is just another folder, reported below ``MAX_FOLDER_DEPTH``).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from pathlib import Path

from nemo_resume.constants import (
    CKPT_EXTENSION,
    COMMON_PT,
    CONTEXT_DIR,
    DCP_METADATA,
    FORMAT_LIGHTNING,
    FORMAT_MEGATRON,
    INT64_MAX,
    LAST_SUFFIX,
    MAX_FOLDER_DEPTH,
    METADATA_JSON,
    STEP_IN_NAME_RE,
    UNFINISHED_SUFFIX,
    WEIGHTS_DIR,
)
from nemo_resume.errors import NemoResumeError

FORMAT_UNKNOWN = "unknown"

_STEP_RE = re.compile(STEP_IN_NAME_RE)
_CONSUMED_RE = re.compile(r"consumed_samples=(\d+(?:\.\d+)?)")


@dataclass(frozen=True)
class CheckpointLocation:
    """Where one checkpoint is and what the directory tree alone says about it.

    Attributes:
        path: the checkpoint folder or ``.ckpt`` file as found (a ``-last`` link stays a link).
        format: ``megatron-dist``, ``lightning-ckpt`` or ``unknown`` (nothing usable on disk).
        context_dir: the ``context/`` folder holding ``io.json``, if there is one.
        layout_reasons: why the tree alone makes it unusable (dangling link, context only, ...).
        companion_of: for a context-only ``-last`` folder NeMo normally leaves behind, the checkpoint
            that holds its save or replaced it (see :func:`_with_companions`); None otherwise.
    """

    path: Path
    format: str
    context_dir: Path | None = None
    layout_reasons: tuple[str, ...] = ()
    companion_of: Path | None = None

    @property
    def unfinished_marker(self) -> Path:
        """nl.ModelCheckpoint.format_checkpoint_unfinished_marker_path for this checkpoint."""
        return Path(str(self.path).removesuffix(CKPT_EXTENSION) + UNFINISHED_SUFFIX)

    @property
    def target_unfinished_marker(self) -> Path | None:
        """For a link (``save_last="link"``), its target's marker: nl.ModelCheckpoint removes an old
        checkpoint (top-k) under that marker before it moves the ``-last`` link, so a kill in between
        leaves the link on a half-deleted folder. None when the path is not a link or does not resolve."""
        if not self.path.is_symlink():
            return None
        try:
            target = self.path.resolve(strict=True)
        except (OSError, RuntimeError):
            return None
        return Path(str(target).removesuffix(CKPT_EXTENSION) + UNFINISHED_SUFFIX)

    @property
    def is_context_only(self) -> bool:
        """A folder with ``context/`` but neither ``weights/`` nor a ``.ckpt`` beside it: nothing to load."""
        return self.format == FORMAT_UNKNOWN and self.context_dir is not None

    @property
    def is_last_link(self) -> bool:
        return self.path.name.removesuffix(CKPT_EXTENSION).endswith(LAST_SUFFIX)

    @property
    def step_from_name(self) -> int | None:
        """The ``step=N`` in the name; None without one, or when no int64 holds it (NeMo could not have written it)."""
        m = _STEP_RE.search(self.path.name)
        step = int(m.group(1)) if m else None
        return step if step is not None and step <= INT64_MAX else None

    @property
    def consumed_samples_from_name(self) -> float | None:
        m = _CONSUMED_RE.search(self.path.name)
        return float(m.group(1)) if m else None


def _is_dir(p: Path) -> bool:
    try:
        return p.is_dir()
    except OSError:
        return False


def _link_problem(p: Path) -> str | None:
    """Why a symlink cannot be followed (dangling or looping), or None if it resolves."""
    if not p.is_symlink():
        return None
    try:
        target = os.readlink(p)
    except OSError as exc:
        return f"unreadable link ({exc.strerror})"
    try:
        p.resolve(strict=True)
    except RuntimeError:
        return f"link loops ({p.name} -> {target})"
    except OSError as exc:
        if "Too many levels" in str(exc) or getattr(exc, "errno", None) == 40:
            return f"link loops ({p.name} -> {target})"
        return f"dangling link ({p.name} -> {target}, which does not exist)"
    return None


def _classify_dir(d: Path) -> CheckpointLocation | None:
    """A folder that is itself a checkpoint, or None if it is just a folder to search."""
    weights = d / WEIGHTS_DIR
    context = d / CONTEXT_DIR
    ctx = context if _is_dir(context) else None
    if _is_dir(weights):
        return CheckpointLocation(d, FORMAT_MEGATRON, ctx)
    if ctx is not None:
        twin = Path(str(d) + CKPT_EXTENSION)
        if twin.exists() or twin.is_symlink():
            return None  # the context twin of a Lightning .ckpt; reported with the .ckpt
        return CheckpointLocation(
            d, FORMAT_UNKNOWN, ctx, ("holds only context/: no weights/ and no .ckpt beside it",)
        )
    return None


def _lightning(f: Path) -> CheckpointLocation:
    ctx = Path(str(f).removesuffix(CKPT_EXTENSION)) / CONTEXT_DIR
    return CheckpointLocation(f, FORMAT_LIGHTNING, ctx if _is_dir(ctx) else None)


def _locate_single(path: Path) -> CheckpointLocation | None:
    """``path`` itself as a checkpoint: a .ckpt, a checkpoint folder, or its weights/ folder."""
    problem = _link_problem(path)
    if problem:
        return CheckpointLocation(path, FORMAT_UNKNOWN, None, (problem,))
    if path.is_file():
        return _lightning(path) if path.name.endswith(CKPT_EXTENSION) else None
    if path.name == WEIGHTS_DIR and any((path / n).exists() for n in (METADATA_JSON, COMMON_PT, DCP_METADATA)):
        return _classify_dir(path.parent)
    return _classify_dir(path)


def _orphan_markers(folder: Path, names: list[str], found: set[str]) -> list[CheckpointLocation]:
    """``-unfinished`` markers whose checkpoint never appeared: a save killed before it wrote."""
    out = []
    for name in names:
        if not name.endswith(UNFINISHED_SUFFIX):
            continue
        stem = name.removesuffix(UNFINISHED_SUFFIX)
        if stem in found or stem + CKPT_EXTENSION in found:
            continue
        out.append(
            CheckpointLocation(
                folder / stem, FORMAT_UNKNOWN, None, ("save was interrupted: only its -unfinished marker exists",)
            )
        )
    return out


def _cut_short(loc: CheckpointLocation) -> bool:
    """An ``-unfinished`` marker says a save or removal of ``loc`` (or of its link target) never finished."""
    return any(m is not None and m.exists() for m in (loc.unfinished_marker, loc.target_unfinished_marker))


def _with_companions(here: list[CheckpointLocation]) -> list[CheckpointLocation]:
    """One folder's checkpoints, each context-only ``-last`` folder NeMo normally leaves there marked
    with the checkpoint it belongs to (``companion_of``).

    nl.ModelCheckpoint writes ``context/`` into ``ckpt_to_dir(path)`` for every save, ``-last`` ones
    included, and removes a replaced ``-last`` with ``trainer.strategy.remove_checkpoint``. MegatronStrategy
    deletes the whole folder; Lightning's strategies delete only the ``.ckpt`` file, so ``NAME-last/context``
    stays (and ``save_last="link"`` on them links ``NAME-last`` to the context folder of ``NAME.ckpt``).
    So a context-only ``NAME-last`` folder is such a companion, holding nothing to load and having lost
    nothing, exactly when: no ``-unfinished`` marker says a save or removal of it (or of its link target)
    was cut short, and this folder holds a Lightning ``.ckpt`` that is either its twin ``NAME.ckpt`` (the
    same save) or a ``-last`` at a later step (the one that replaced it). Anything else context-only,
    including one beside Megatron ``weights/`` checkpoints (which never leave one), stays incomplete.
    """
    ckpts = [loc for loc in here if loc.format == FORMAT_LIGHTNING]
    by_name = {loc.path.name.removesuffix(CKPT_EXTENSION): loc.path for loc in ckpts}
    lasts = sorted((loc.step_from_name, loc.path) for loc in ckpts if loc.is_last_link and loc.step_from_name is not None)
    out = []
    for loc in here:
        if loc.is_context_only and loc.is_last_link and not _cut_short(loc):
            step = loc.step_from_name
            replaced_by = next((p for s, p in lasts if step is not None and s > step), None)
            loc = replace(loc, companion_of=by_name.get(loc.path.name.removesuffix(LAST_SUFFIX)) or replaced_by)
        out.append(loc)
    return out


def _in_folder(folder: Path, dirnames: list[str], filenames: list[str]) -> tuple[list[CheckpointLocation], list[str]]:
    """The checkpoints among one folder's entries, and the subfolders still to search."""
    found: list[CheckpointLocation] = []
    keep, here = [], set()
    for name in sorted(dirnames):
        sub = folder / name
        if not os.access(sub, os.R_OK | os.X_OK):
            found.append(CheckpointLocation(sub, FORMAT_UNKNOWN, None, ("permission denied: cannot read this folder",)))
            here.add(name)
            continue
        loc = _classify_dir(sub)
        if loc is not None:
            found.append(loc)
            here.add(name)
        elif name not in (WEIGHTS_DIR, CONTEXT_DIR) and not sub.is_symlink():
            keep.append(name)  # a link to a checkpoint (save_last="link") is reported, never walked through
    for name in sorted(filenames):
        f = folder / name
        problem = _link_problem(f)
        if problem and (LAST_SUFFIX in name or name.endswith(CKPT_EXTENSION)):
            found.append(CheckpointLocation(f, FORMAT_UNKNOWN, None, (problem,)))
            here.add(name)
        elif name.endswith(CKPT_EXTENSION) and not problem:
            found.append(_lightning(f))
            here.add(name)
    found.extend(_orphan_markers(folder, sorted(filenames), here | set(dirnames)))
    return _with_companions(found), keep


def _entries(folder: Path) -> tuple[list[str], list[str]]:
    """A folder's subfolder names and other names, as ``os.walk`` splits them (a link to a folder is a folder).

    Raises:
        OSError: the folder cannot be listed.
    """
    dirs: list[str] = []
    files: list[str] = []
    with os.scandir(folder) as entries:
        for entry in entries:
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            (dirs if is_dir else files).append(entry.name)
    return dirs, files


def _too_deep(folder: Path) -> CheckpointLocation:
    return CheckpointLocation(
        folder,
        FORMAT_UNKNOWN,
        None,
        (f"folders nest deeper than {MAX_FOLDER_DEPTH} levels below the path given: not searched; "
         "point nemo-resume at a folder nearer the checkpoints",),
    )


def _walk(root: Path) -> list[CheckpointLocation]:
    """Every checkpoint under ``root``, folder by folder from a stack (no recursion), down to ``MAX_FOLDER_DEPTH``."""
    found: list[CheckpointLocation] = []
    errors: list[OSError] = []
    stack = [(root, 0)]
    while stack:
        folder, depth = stack.pop()
        try:
            dirnames, filenames = _entries(folder)
        except OSError as exc:
            errors.append(exc)
            continue
        here, keep = _in_folder(folder, dirnames, filenames)
        found.extend(here)
        if depth < MAX_FOLDER_DEPTH:
            stack.extend((folder / name, depth + 1) for name in reversed(keep))
        else:
            found.extend(_too_deep(folder / name) for name in keep)
    if errors and not found:
        first = errors[0]
        raise NemoResumeError(f"cannot read {first.filename}: {first.strerror}; check its permissions")
    return found


def _as_in_its_folder(loc: CheckpointLocation) -> CheckpointLocation:
    """A single context-only ``-last`` folder judged with its siblings, as a walk of its folder judges it."""
    if not (loc.is_context_only and loc.is_last_link):
        return loc
    folder = loc.path.parent
    try:
        dirs, files = _entries(folder)
    except OSError:
        return loc
    here, _ = _in_folder(folder, dirs, files)
    twin = next((sib for sib in here if sib.path.name == loc.path.name), loc)
    return replace(loc, companion_of=twin.companion_of)


def find_checkpoints(path: Path | str) -> list[CheckpointLocation]:
    """Every checkpoint at or under ``path``, sorted by path.

    Args:
        path: a ``.ckpt`` file, a checkpoint folder, its ``weights/``, a ``checkpoints/``
            folder or any folder above them (searched recursively, links not followed).

    Raises:
        NemoResumeError: the path does not exist or nothing under it looks like a checkpoint.
    """
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        raise NemoResumeError(f"{path}: no such file or directory; pass a checkpoint or run folder")
    single = _locate_single(path)
    if single is not None:
        return [_as_in_its_folder(single)]
    if path.is_file():
        raise NemoResumeError(
            f"{path}: not a checkpoint (expected a .ckpt file, a checkpoint folder with weights/, or a run folder)"
        )
    if not os.access(path, os.R_OK | os.X_OK):
        raise NemoResumeError(f"{path}: permission denied; make the folder readable")
    found = _walk(path)
    if not found:
        raise NemoResumeError(
            f"{path}: no NeMo checkpoint found under it (looked for */weights/, *.ckpt, -last links)"
        )
    return sorted(found, key=lambda loc: str(loc.path))
