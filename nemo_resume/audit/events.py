"""What a run logged, read from NeMoLogger's TensorBoard event files with TensorBoard's own reader.

NeMo's recipes log through ``tensorboard_logger(name)`` (``save_dir="tb_logs"``), which ``NeMoLogger`` moves under
its ``log_dir`` (the recipes' ``--dir``): ``<dir>/tb_logs/<name>/<version>/events.out.tfevents.*``, one version
folder, so one event file, per launch. Each file is one attempt of the run. The tags NeMo 2.7 writes on the
Megatron path (measured on a ``--smoke`` rehearsal): ``lr`` (param group 0, at the start of each step),
``reduced_train_loss``, ``grad_norm`` (megatron-core's, before clipping), ``consumed_samples``,
``train_step_timing in s``, ``global_step``, ``global_batch_size``, ``val_loss``; the recipes add Lightning's
``LearningRateMonitor``: ``lr-<optimizer>`` (one group) or ``lr-<optimizer>/pg1`` ... (one per param group).
Every value is logged at the step index (``trainer.global_step``) of the step it belongs to.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from nemo_resume.errors import NemoResumeError

#: tensorboard_logger's save_dir (nemo/collections/llm/recipes/log/default.py), under NeMoLogger's log_dir.
TB_DIR = "tb_logs"
#: The file name TensorBoard's SummaryWriter gives an event file.
EVENT_GLOB = "events.out.tfevents.*"

# NeMo's own tags (nemo/lightning/pytorch/optim/base.py, strategies/megatron_strategy.py,
# plugins/data_sampler.py, callbacks' TimingCallback).
LR_TAG = "lr"
LOSS_TAG = "reduced_train_loss"
GRAD_NORM_TAG = "grad_norm"
CONSUMED_TAG = "consumed_samples"
STEP_TIME_TAG = "train_step_timing in s"
# Lightning's LearningRateMonitor: "lr-<optimizer class>[-<i>]" and, with several param groups, "/pg<N>" (1-based);
# "-momentum" / "-weight_decay" tags only with options the recipes leave off.
_GROUP_LR = re.compile(r"^lr-(?P<opt>[^/]+?)(?:/pg(?P<pg>\d+))?$")


@dataclass(frozen=True)
class Attempt:
    """One launch of the run, as its event file holds it.

    Attributes:
        path: the event file.
        started: the wall time of its first event (seconds since the epoch).
        scalars: tag -> step -> value (a step logged twice keeps the later value), every tag on NeMo's step axis.
    """

    path: Path
    started: float
    scalars: Mapping[str, Mapping[int, float]]

    def series(self, tag: str) -> dict[int, float]:
        return dict(self.scalars.get(tag, {}))

    @cached_property
    def group_tags(self) -> tuple[str, ...]:
        """The LearningRateMonitor tags, in param-group order (empty when the run did not log every group)."""
        return _group_tags(self.scalars)

    @property
    def every_group(self) -> bool:
        """Every param group's LR was logged, not only group 0's (NeMo's ``lr``)."""
        return bool(self.group_tags)

    @cached_property
    def lrs(self) -> dict[int, tuple[float, ...]]:
        """Step -> the LR of every logged group at its start (group 0 only without the monitor)."""
        tags = self.group_tags or (LR_TAG,)
        columns = [self.scalars.get(t, {}) for t in tags]
        steps = set.intersection(*(set(c) for c in columns))
        return {s: tuple(c[s] for c in columns) for s in sorted(steps)}

    @cached_property
    def steps(self) -> list[int]:
        """Every step that trained: those with a loss or an LR logged."""
        return sorted(set(self.scalars.get(LOSS_TAG, {})) | set(self.lrs))

    @property
    def first_step(self) -> int:
        return self.steps[0]

    @property
    def last_step(self) -> int:
        return self.steps[-1]


def _group_tags(scalars: Mapping[str, object]) -> tuple[str, ...]:
    found = [(m.group("opt"), int(m.group("pg") or 0), t) for t in scalars if (m := _GROUP_LR.match(t))]
    return tuple(t for _, _, t in sorted(found))


def _aligned(scalars: dict[str, dict[int, float]]) -> dict[str, dict[int, float]]:
    """``scalars`` with the LearningRateMonitor's tags moved onto NeMo's step axis.

    The monitor logs at Lightning's loop counter (``_batches_that_stepped``), which a resumed run restores one
    behind ``global_step`` (measured: a rehearsal resumed at step 5 logs the monitor from 4, NeMo's tags from 5);
    NeMo logs at ``global_step``. The first group's tag and NeMo's ``lr`` both read ``param_groups[0]['lr']``, so
    the shift is the one that makes them equal. Where none does, the group tags are left out (group 0 only).
    """
    tags, nemo = _group_tags(scalars), scalars.get(LR_TAG, {})
    if not tags or not nemo or not scalars[tags[0]]:
        return scalars
    first = scalars[tags[0]]
    shift = min(nemo) - min(first)
    both = [(nemo[s + shift], v) for s, v in first.items() if s + shift in nemo]
    if not both or not all(math.isclose(a, b, rel_tol=1e-6) for a, b in both):
        return {t: v for t, v in scalars.items() if t not in tags}
    return {**scalars, **{t: {s + shift: v for s, v in scalars[t].items()} for t in tags}}


def tb_root(run: Path) -> Path:
    """Where the TensorBoard logger of the run ``<dir>/<name>`` writes: ``<dir>/tb_logs/<name>`` (the run folder
    itself holds other logs: a fine-tune rehearsal's base-weights run, Lightning's own, which are not the run's)."""
    return run.parent / TB_DIR / run.name


def event_files(run: Path) -> list[Path]:
    """The event files of ``run``: one per version folder under :func:`tb_root`."""
    root = tb_root(run)
    return sorted(p for p in root.rglob(EVENT_GLOB) if p.is_file()) if root.is_dir() else []


def read_attempt(path: Path) -> Attempt | None:
    """The scalars of one event file, or None when it holds no training step (a launch that died starting).

    Raises:
        NemoResumeError: TensorBoard cannot read the file.
    """
    from tensorboard.backend.event_processing import event_accumulator as ea

    acc = ea.EventAccumulator(str(path), size_guidance={ea.SCALARS: 0})  # 0: keep every value, not a sample
    try:
        acc.Reload()
    except Exception as exc:  # noqa: BLE001 - TensorBoard raises its own DataLossError, ValueError, ...
        raise NemoResumeError(f"{path}: TensorBoard cannot read this event file ({type(exc).__name__}: {exc}); "
                              "move it out of the run folder to audit the rest") from None
    scalars: dict[str, dict[int, float]] = {}
    walls: list[float] = []
    for tag in acc.Tags().get(ea.SCALARS, []):
        events = acc.Scalars(tag)
        scalars[tag] = {int(e.step): float(e.value) for e in events}
        walls += [e.wall_time for e in events]
    attempt = Attempt(path, min(walls, default=math.inf), _aligned(scalars))
    return attempt if walls and attempt.steps else None


def read_run(run: Path) -> list[Attempt]:
    """Every attempt of ``run`` that trained at least one step, in the order they started.

    Raises:
        NemoResumeError: ``run`` is not a folder, holds no event file, or none with a training step.
    """
    if not run.is_dir():
        raise NemoResumeError(f"{run}: no such run folder; give the recipe's <--dir>/<--name> (e.g. results/qwen25_pretrain)")
    files = event_files(run)
    if not files:
        raise NemoResumeError(
            f"{run}: no TensorBoard event files under {tb_root(run)}, where NeMoLogger writes them for a recipe with a "
            "TensorBoard logger (the Qwen2.5 recipes have one); give the run folder <--dir>/<--name>"
        )
    attempts = [a for a in map(read_attempt, files) if a is not None]
    if not attempts:
        raise NemoResumeError(f"{run}: its {len(files)} event file(s) hold no training step TensorBoard can read; "
                              "nothing to audit yet")
    return sorted(attempts, key=lambda a: (a.started, str(a.path)))
