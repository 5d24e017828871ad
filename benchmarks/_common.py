"""Measuring helpers for the benchmarks: cold subprocesses, interleaved rounds, robust summaries.

Every command is a fresh process (``subprocess.Popen``); its wall time runs from just before the fork to the
``os.wait4`` that reaps it, and ``os.wait4`` also gives that one child's peak resident set size (``ru_maxrss``),
so no process's memory leaks into another's figure. The two sides of a comparison run in alternating order,
round after round (A B, B A, A B, ...), so a burst of load from the other jobs on this shared machine lands on
both sides; each round gives one paired ratio. Figures are medians with the min and max beside them.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Sample:
    wall_s: float
    maxrss_mb: float  # peak resident set size of the child, MiB (ru_maxrss is KiB on Linux)
    rc: int
    stdout: str
    stderr: str


def run_cold(cmd: Sequence[str], *, cwd: Path = ROOT, env: dict | None = None, timeout: float = 600.0) -> Sample:
    """Run ``cmd`` once in a fresh process; wall time and that child's peak RSS."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(list(cmd), cwd=cwd, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        killer = threading.Timer(timeout, proc.kill)  # blocking wait4 below: no polling jitter
        killer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            killer.cancel()
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        out.seek(0)
        err.seek(0)
        return Sample(wall, usage.ru_maxrss / 1024.0, proc.returncode, out.read(), err.read())


def child_env(**extra: str) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env.setdefault("CUDA_VISIBLE_DEVICES", "")
    env.update(extra)
    return env


@dataclass
class Series:
    """The samples of one side of a comparison."""

    label: str
    samples: list[Sample] = field(default_factory=list)

    @property
    def walls(self) -> list[float]:
        return [s.wall_s for s in self.samples]

    @property
    def rss(self) -> list[float]:
        return [s.maxrss_mb for s in self.samples]


def interleaved(rounds: int, sides: Sequence[tuple[str, Callable[[int], Sample]]], *, log=print) -> list[Series]:
    """Run each side once per round, alternating the order every round; return one Series per side."""
    series = [Series(label) for label, _ in sides]
    for r in range(rounds):
        order = list(range(len(sides)))
        if r % 2:
            order.reverse()
        for i in order:
            label, fn = sides[i]
            s = fn(r)
            series[i].samples.append(s)
            log(f"    round {r + 1}/{rounds}  {label:<34} {fmt_s(s.wall_s):>9}  {s.maxrss_mb:7.0f} MiB  rc={s.rc}")
    return series


def summary(xs: Sequence[float]) -> dict:
    xs = list(xs)
    med = statistics.median(xs)
    return {
        "median": med,
        "min": min(xs),
        "max": max(xs),
        "spread": (max(xs) - min(xs)) / med if med else 0.0,
        "n": len(xs),
        "values": xs,
    }


def paired_ratios(num: Series, den: Series) -> list[float]:
    """Per-round num/den (the rounds were run back to back, so each ratio saw the same machine load)."""
    return [a.wall_s / b.wall_s for a, b in zip(num.samples, den.samples)]


def fmt_s(x: float) -> str:
    if x < 1e-3:
        return f"{x * 1e6:.0f} µs"
    if x < 1.0:
        return f"{x * 1e3:.0f} ms" if x >= 0.1 else f"{x * 1e3:.1f} ms"
    return f"{x:.2f} s" if x < 100 else f"{x:.0f} s"


def fmt_stat_s(st: dict) -> str:
    return f"{fmt_s(st['median'])} ({fmt_s(st['min'])} – {fmt_s(st['max'])})"


def fmt_ratio(x: float) -> str:
    return f"{x:.0f}x" if x >= 20 else f"{x:.1f}x" if x >= 1.95 else f"{x:.2f}x"


# ---------------------------------------------------------------------------------------------- the machine


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_total_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return None


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=False).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


PACKAGES = ("nemo_toolkit", "nemo_run", "lightning", "megatron-core", "torch", "fiddle", "rich", "nemo-resume")


def machine() -> dict:
    rev = _git("rev-parse", "--short", "HEAD")
    dirty = bool(_git("status", "--porcelain", "--untracked-files=no"))
    return {
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_gib": _mem_total_gib(),
        "os": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()} ({sys.executable})",
        "packages": {p: _version(p) for p in PACKAGES},
        "git": f"{rev}{' + uncommitted changes' if dirty else ''}" if rev else "unknown",
        "loadavg_start": os.getloadavg(),
    }
