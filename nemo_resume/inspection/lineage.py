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

from nemo_resume.checkpoint.state import CheckpointState
from nemo_resume.inspection.problems import Problem

# Stable problem code (scripts match on it).
MIXED_RUNS = "MIXED_RUNS"
_SHOWN = 3  # checkpoint names listed per run in the message


# What tells runs apart: (saved folder, saved config, param-group count); None where unknown.
_Key = tuple


def _group_count(s: CheckpointState) -> int | None:
    if s.scheduler is not None and s.scheduler.base_lrs:
        return len(s.scheduler.base_lrs)
    return len(s.param_groups) or None


def _key(s: CheckpointState) -> _Key:
    return (s.saved_dirpath, s.config, _group_count(s))


def _differ(a: _Key, b: _Key) -> bool:
    """True when checkpoints with keys ``a`` and ``b`` cannot come from one run (module docstring)."""
    (folder_a, config_a, groups_a), (folder_b, config_b, groups_b) = a, b
    if groups_a is not None and groups_b is not None and groups_a != groups_b:
        return True
    folders = folder_a is not None and folder_b is not None and folder_a != folder_b
    configs = config_a is not None and config_b is not None and config_a != config_b
    return folders and configs


def _affinity(a: _Key, b: _Key) -> int:
    return int(a[1] is not None and a[1] == b[1]) + int(a[0] is not None and a[0] == b[0])


def _describe(key: _Key) -> str:
    folder, c, count = key
    parts = [f"saved into {folder}" if folder else "saved into an unknown folder"]
    if c is not None:
        parts.append(f"lr {c.lr}, min_lr {c.min_lr}, max_steps {c.max_steps}")
    if count is not None:
        parts.append(f"{count} param group(s)")
    return ", ".join(parts)


def _step(s: CheckpointState) -> int:
    return s.step if s.step is not None else -1


def _runs(by_key: dict[_Key, list[CheckpointState]]) -> list[tuple[_Key, list[CheckpointState]]]:
    """Group the keys into runs: each joins the compatible run it shares the most with (a weights-only
    end checkpoint, which has no folder, joins the run with its config). Newest run first."""
    runs: list[tuple[list[_Key], list[CheckpointState]]] = []
    for key in sorted(by_key, key=lambda k: (k[0] is None, -max(_step(s) for s in by_key[k]))):
        fits = [r for r in runs if not any(_differ(key, k) for k in r[0])]
        if fits:
            best = max(fits, key=lambda r: sum(_affinity(key, k) for k in r[0]))
            best[0].append(key)
            best[1].extend(by_key[key])
        else:
            runs.append(([key], list(by_key[key])))
    out = [(keys[0], sorted(members, key=lambda s: -_step(s))) for keys, members in runs]
    return sorted(out, key=lambda r: -_step(r[1][0]))


def mixed_runs(states: Sequence[CheckpointState]) -> Problem | None:
    """A ``MIXED_RUNS`` error when the complete checkpoints cannot all come from one run, else None.

    The message names each run (its folder and config) and its checkpoints, newest step first.
    """
    by_key: dict[_Key, list[CheckpointState]] = {}
    for s in states:
        if s.complete:
            by_key.setdefault(_key(s), []).append(s)
    keys = list(by_key)  # a handful: one per folder and config, not one per checkpoint
    if not any(_differ(a, b) for i, a in enumerate(keys) for b in keys[i + 1 :]):
        return None
    described = []
    for number, (key, members) in enumerate(_runs(by_key), 1):
        names = ", ".join(s.location.path.name for s in members[:_SHOWN])
        more = f" and {len(members) - _SHOWN} more" if len(members) > _SHOWN else ""
        described.append(f"run {number} ({_describe(key)}): {names}{more}")
    # no square brackets: the human report prints messages as rich markup
    return Problem(
        MIXED_RUNS,
        "error",
        "checkpoints that cannot all come from one run are mixed here; " + "; ".join(described)
        + ". --resume auto will not choose between runs: pass --resume PATH with the checkpoint to continue",
    )
