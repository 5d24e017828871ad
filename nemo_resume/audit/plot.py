"""A PNG of what the run did: every group's LR against the plan, the loss and the grad norm, resumes marked.

The drawn data come from :func:`plotted_series`, so tests compare numbers, not pixels. matplotlib's Agg canvas
directly: no pyplot, no global backend switch, no display needed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from nemo_resume.audit.events import GRAD_NORM_TAG, LOSS_TAG
from nemo_resume.audit.health import GRAD_NORM_MAX
from nemo_resume.audit.result import AuditResult
from nemo_resume.check.plot import new_figure, save_png

Panel = Literal["lr", "loss", "grad_norm"]


@dataclass(frozen=True)
class PlotSeries:
    """One drawn line on ``panel``: an attempt's (``attempt`` set) or a plan's, of param group ``group`` (LR only)."""

    panel: Panel
    label: str
    attempt: int | None
    group: int
    x: tuple[int, ...]
    y: tuple[float, ...]

    @property
    def colour(self) -> str:
        """Each group its colour on the LR panel (a plan in black), each attempt its own on the others."""
        if self.attempt is None:
            return "black"
        return f"C{(self.group if self.panel == 'lr' else self.attempt) % 10}"


def plotted_series(result: AuditResult) -> list[PlotSeries]:
    """Exactly the lines :func:`write_plot` draws: logged LRs, planned LRs, loss and grad norm per attempt."""
    out = []
    for i, attempt in enumerate(result.attempts):
        lrs = attempt.lrs
        steps = tuple(sorted(lrs))
        for g in range(len(lrs[steps[0]]) if steps else 0):
            out.append(PlotSeries("lr", f"attempt {i} group {g}", i, g, steps, tuple(lrs[s][g] for s in steps)))
        panels: tuple[tuple[Panel, str], ...] = (("loss", LOSS_TAG), ("grad_norm", GRAD_NORM_TAG))
        for panel, tag in panels:
            series = attempt.series(tag)
            if series:
                xs = tuple(sorted(series))
                out.append(PlotSeries(panel, f"attempt {i}", i, 0, xs, tuple(series[s] for s in xs)))
    for c in result.comparisons:
        steps = tuple(sorted(c.planned))
        for g in range(len(c.planned[steps[0]]) if steps else 0):
            out.append(PlotSeries("lr", f"planned group {g} ({Path(c.plan).name})", None, g, steps,
                                  tuple(c.planned[s][g] for s in steps)))
    return out


def write_plot(result: AuditResult, path: str | Path) -> Path:
    """Write the PNG: three panels over the steps, each attempt's start and each problem marked.

    Raises:
        NemoResumeError: the file cannot be written.
    """
    fig = new_figure(10, 9)
    axes = dict(zip(("lr", "loss", "grad_norm"), fig.subplots(3, 1, sharex=True)))
    drawn = plotted_series(result)
    for series in drawn:
        planned = series.attempt is None
        axes[series.panel].plot(series.x, series.y, label=series.label, color=series.colour, lw=1.0 if planned else 1.4,
                                ls="--" if planned else "-", alpha=0.7 if planned else 1.0)
    for span in result.spans[1:]:
        for ax in axes.values():
            ax.axvline(span.first_step, color="green", lw=1.0, ls=":")
        axes["lr"].annotate(f"resume {span.index}", (span.first_step, 1.0), xycoords=("data", "axes fraction"),
                            fontsize=8, color="green", va="top")
    codes: dict[int, list[str]] = {}
    for p in result.problems:
        codes.setdefault(p.step, []).append(p.code)
    for step, names in codes.items():
        for ax in axes.values():
            ax.axvline(step, color="red", lw=0.8, ls="--", alpha=0.6)
        axes["lr"].annotate(" ".join(dict.fromkeys(names)), (step, 0.0), xycoords=("data", "axes fraction"),
                            fontsize=7, color="red", rotation=90, va="bottom")
    axes["grad_norm"].axhline(GRAD_NORM_MAX, color="red", lw=0.8, ls=":", label=f"{GRAD_NORM_MAX:g} (clip above)")
    axes["grad_norm"].set_yscale("log")
    if all(v > 0 for s in drawn if s.panel == "loss" for v in s.y if math.isfinite(v)):
        axes["loss"].set_yscale("log")  # a spike of 1000x leaves the rest of the curve readable
    axes["lr"].set_ylabel("learning rate")
    axes["lr"].ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    axes["loss"].set_ylabel("reduced_train_loss")
    axes["grad_norm"].set_ylabel("grad_norm")
    axes["grad_norm"].set_xlabel("step")
    verdict = "no problem found" if not result.problems else f"{len(result.problems)} problem(s), first at step " \
                                                               f"{result.problems[0].step}"
    axes["lr"].set_title(f"{result.run.name}: {len(result.attempts)} attempt(s), {verdict}", fontsize=11)
    for ax in axes.values():
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="upper right")
    return save_png(fig, path)
