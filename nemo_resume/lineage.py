"""Do the checkpoints under one folder come from one run?

Two runs' checkpoints copied into one ``checkpoints/`` folder look like one run to AutoResume and to a
newest-by-step choice: ``--resume auto`` would continue the wrong run whenever its step is higher.
Nothing on disk names a run, so this is inferred, conservatively, from what a legitimate resume does
not change:

- the number of optimizer param groups: a resume cannot load a different one;
- the folder ``nl.ModelCheckpoint`` was saving into (``dirpath`` in its callback state) *and* the run's
  saved config (``context/io.json``: LR, min LR, max steps, warmup, scheduler): a run continued in its
  own folder keeps the folder even when its schedule changes, and a run moved elsewhere and continued
  unchanged keeps its config. Checkpoints that differ in both came from different runs.

Known limits: a run moved to another folder *and* continued with a new schedule looks like two runs
(the plan then asks for ``--resume PATH``); two runs with the same config saved into the same folder
path look like one. Checkpoints that are incomplete or lack a value are not compared on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from nemo_resume.problems import Problem

if TYPE_CHECKING:
    from nemo_resume.checkpoint.state import CheckpointState
    from nemo_resume.inspection import InspectedCheckpoint

# Stable problem code (scripts match on it).
MIXED_RUNS = "MIXED_RUNS"
_SHOWN = 3  # checkpoint names listed per run in the message


def _group_count(s: CheckpointState) -> int | None:
    if s.scheduler is not None and s.scheduler.base_lrs:
        return len(s.scheduler.base_lrs)
    return len(s.param_groups) or None


def _differ(a: CheckpointState, b: CheckpointState) -> bool:
    """True when ``a`` and ``b`` cannot be checkpoints of one run (see the module docstring)."""
    ga, gb = _group_count(a), _group_count(b)
    if ga is not None and gb is not None and ga != gb:
        return True
    folders = a.saved_dirpath is not None and b.saved_dirpath is not None and a.saved_dirpath != b.saved_dirpath
    configs = a.config is not None and b.config is not None and a.config != b.config
    return folders and configs


def _describe(s: CheckpointState) -> str:
    c = s.config
    parts = [f"saved into {s.saved_dirpath}" if s.saved_dirpath else "saved into an unknown folder"]
    if c is not None:
        parts.append(f"lr {c.lr}, min_lr {c.min_lr}, max_steps {c.max_steps}")
    count = _group_count(s)
    if count is not None:
        parts.append(f"{count} param group(s)")
    return ", ".join(parts)


def mixed_runs(checkpoints: Sequence[InspectedCheckpoint]) -> Problem | None:
    """A ``MIXED_RUNS`` error when the complete checkpoints cannot all come from one run, else None.

    The message names each run (its folder and config) and its checkpoints, newest step first.
    """
    complete = [c.state for c in checkpoints if c.state.complete]
    if not any(_differ(a, b) for i, a in enumerate(complete) for b in complete[i + 1 :]):
        return None
    runs: dict[tuple, list[CheckpointState]] = {}
    for s in complete:
        runs.setdefault((s.saved_dirpath, s.config, _group_count(s)), []).append(s)
    described = []
    for members in sorted(runs.values(), key=lambda m: -max(s.step if s.step is not None else -1 for s in m)):
        members.sort(key=lambda s: -(s.step if s.step is not None else -1))
        names = ", ".join(s.location.path.name for s in members[:_SHOWN])
        more = f" and {len(members) - _SHOWN} more" if len(members) > _SHOWN else ""
        described.append(f"[{_describe(members[0])}: {names}{more}]")
    return Problem(
        MIXED_RUNS,
        "error",
        "checkpoints that cannot all come from one run are mixed here: " + " ".join(described)
        + "; --resume auto will not choose between runs: pass --resume PATH with the checkpoint to continue",
    )
