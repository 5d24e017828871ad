"""The LR range test's PNG: loss against LR (log scale), raw and smoothed, both recommendations marked."""

from __future__ import annotations

from pathlib import Path

from nemo_resume.audit.lr_find import LrFindResult
from nemo_resume.check.plot import new_figure, save_png


def write_lr_find_plot(result: LrFindResult, path: str | Path) -> Path:
    """Write the PNG (matplotlib's Agg canvas: no display, no global backend).

    Raises:
        NemoResumeError: the file cannot be written.
    """
    fig = new_figure(8, 5)
    ax = fig.subplots()
    ax.plot(result.lrs, result.losses, color="C0", alpha=0.35, lw=1.0, label="loss")
    ax.plot(result.lrs, result.smoothed, color="C0", lw=1.8, label="smoothed loss")
    ax.axvline(result.steepest.lr, color="C1", ls="--", label=f"steepest descent: {result.steepest.lr:.3g}")
    ax.axvline(result.min_loss_lr, color="C2", ls="--", label=f"min-loss LR / 10: {result.min_loss_lr:.3g}")
    if result.diverged_at is not None:
        ax.axvline(result.lrs[result.steps.index(result.diverged_at)], color="C3", ls=":",
                   label=f"diverged (step {result.diverged_at})")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate (param group 0)")
    ax.set_ylabel("training loss")
    ax.set_title("LR range test")
    ax.legend(loc="best", fontsize="small")
    return save_png(fig, path)
