"""A PNG of what the schedule check computed: every group's LR over the horizon, phases shaded.

The drawn data come from :func:`plotted_series` (NeMo's own LRs at the probed steps), so
tests compare numbers, not pixels. Uses matplotlib's Agg canvas directly: no pyplot, no
global backend switch, no display needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nemo_resume.check.result import CheckResult
from nemo_resume.errors import NemoResumeError

# Line style per curve: the checkpoint's schedule dashed, the plan solid.
_STYLE = {"schedule": "-", "restored": "--", "planned": "-"}
_PHASE_COLOURS = {"warmup": "#fde2b3", "decay": "#d6eaf8", "constant": "#e8daef", "after max_steps": "#e5e5e5"}


@dataclass(frozen=True)
class PlotSeries:
    """One drawn line: ``curve`` (schedule, restored, planned) for param group ``group``."""

    curve: str
    group: int
    x: np.ndarray
    y: np.ndarray

    @property
    def label(self) -> str:
        what = {"schedule": "", "restored": " restored (before the plan)", "planned": " planned"}[self.curve]
        return f"group {self.group}{what}"


def plotted_series(result: CheckResult) -> list[PlotSeries]:
    """Exactly the x/y arrays :func:`write_plot` draws, one per curve and param group."""
    return [
        PlotSeries(c.label, g, c.steps.copy(), c.lrs[:, g].copy())
        for c in result.curves
        for g in range(c.lrs.shape[1])
        if len(c.steps)
    ]


def phase_spans(result: CheckResult) -> list[tuple[str, int, int]]:
    """``(phase, first step, last step)`` of the schedule that runs, clipped to ``[0, end]``."""
    s = result.schedule
    if s is None:
        return []
    w, d, m, end = s.warmup_steps, max(s.decay, 0), s.max_steps, result.end
    spans = [("warmup", 0, w), ("decay", w, w + d), ("constant", w + d, m), ("after max_steps", m, end)]
    return [(name, lo, min(hi, end)) for name, lo, hi in spans if min(hi, end) > lo]


def write_plot(result: CheckResult, path: str | Path) -> Path:
    """Write the PNG: LR per group, phases shaded, min_lr, the resume step and any failure marked.

    Raises:
        NemoResumeError: the file cannot be written.
    """
    fig = new_figure(10, 5)
    ax = fig.add_subplot()
    for name, lo, hi in phase_spans(result):
        ax.axvspan(lo, hi, color=_PHASE_COLOURS[name], alpha=0.6, lw=0, label=name)
    colours = [f"C{i}" for i in range(10)]
    for series in plotted_series(result):
        ax.plot(series.x, series.y, _STYLE[series.curve], color=colours[series.group % 10], lw=1.4, label=series.label)
    min_lr = result.schedule.min_lr if result.schedule else result.request.min_lr
    ax.axhline(min_lr, color="black", ls=":", lw=1, label=f"min_lr {min_lr:.3g}")
    restored_min = result.resume.restored.get("min_lr") if result.resume else None
    if isinstance(restored_min, (int, float)) and restored_min != min_lr:
        ax.axhline(restored_min, color="grey", ls=":", lw=1, label=f"restored min_lr {restored_min:.3g}")
    if result.resume is not None:
        ax.axvline(result.resume.step, color="green", lw=1.2, label=f"resume step {result.resume.step}")
    if result.failure is not None:
        ax.axvline(result.failure.step, color="red", ls="--", lw=1.2, label=f"NeMo raises at step {result.failure.step}")
    ax.set_xlim(0, max(result.end, 1))
    ax.set_xlabel("step")
    ax.set_ylabel("learning rate")
    problem = result.first_problem
    verdict = "all checks pass" if problem is None else f"FAILS: {problem.name} at step {problem.step}"
    ax.set_title(f"LR schedule ({result.scheduler}): {verdict}", fontsize=11)
    ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    ax.legend(fontsize=8, loc="upper right")
    return save_png(fig, path)


def new_figure(width: float, height: float) -> Any:
    """A matplotlib figure on its own Agg canvas: no display, no global backend, safe in any process."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def save_png(fig: Any, path: str | Path) -> Path:
    """``fig`` laid out and written to ``path`` as PNG (every plot the commands write: ``--plot``).

    Raises:
        NemoResumeError: the file cannot be written.
    """
    fig.tight_layout()
    out = Path(path)
    try:
        fig.savefig(out, format="png")
    except OSError as exc:
        raise NemoResumeError(f"--plot {out}: cannot write ({exc.strerror or exc})") from None
    return out
