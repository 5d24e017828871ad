"""Find NeMo 2 checkpoints under a path, whatever level of the run folder the user points at.

AutoResume looks one level deep and picks by file time; users point at the experiment root,
a version folder, ``checkpoints/``, one checkpoint, its ``weights/`` or a Lightning ``.ckpt``.
This module turns any of those into a list of :class:`CheckpointLocation`, reading only
directory entries (never file contents) and never following links out of the walk.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from nemo_resume.constants import (
    CKPT_EXTENSION,
    COMMON_PT,
    CONTEXT_DIR,
    DCP_METADATA,
    FORMAT_LIGHTNING,
    FORMAT_MEGATRON,
    LAST_SUFFIX,
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
    """

    path: Path
    format: str
    context_dir: Path | None = None
    layout_reasons: tuple[str, ...] = ()

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
    def is_last_link(self) -> bool:
        return self.path.name.removesuffix(CKPT_EXTENSION).endswith(LAST_SUFFIX)

    @property
    def step_from_name(self) -> int | None:
        m = _STEP_RE.search(self.path.name)
        return int(m.group(1)) if m else None

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


def _walk(root: Path) -> list[CheckpointLocation]:
    found: list[CheckpointLocation] = []
    errors: list[OSError] = []
    for dirpath, dirnames, filenames in os.walk(root, onerror=errors.append, followlinks=False):
        folder = Path(dirpath)
        keep, here = [], set()
        for name in sorted(dirnames):
            sub = folder / name
            if not os.access(sub, os.R_OK | os.X_OK):
                found.append(CheckpointLocation(sub, FORMAT_UNKNOWN, None, ("permission denied: cannot read this folder",)))
                here.add(name)
                continue
            if sub.is_symlink():
                # A link to a checkpoint (save_last="link"): report it, never walk through it.
                loc = _classify_dir(sub)
                if loc is not None:
                    found.append(loc)
                    here.add(name)
                continue
            loc = _classify_dir(sub)
            if loc is not None:
                found.append(loc)
                here.add(name)
            elif name not in (WEIGHTS_DIR, CONTEXT_DIR):
                keep.append(name)
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
        dirnames[:] = keep
    if errors and not found:
        exc = errors[0]
        raise NemoResumeError(f"cannot read {exc.filename}: {exc.strerror}; check its permissions")
    return found


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
        return [single]
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
