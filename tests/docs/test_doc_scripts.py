"""The scripts that write documentation files: a real --help, and nothing tracked written by default."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *argv], cwd=cwd, capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL, check=False)


def test_plot_schedules_help_prints_usage_and_writes_nothing(tmp_path):
    p = _run([str(ROOT / "scripts" / "plot_schedules.py"), "--help"], tmp_path)
    assert p.returncode == 0, p.stderr
    assert "usage: scripts/plot_schedules.py" in p.stdout and "--out DIR" in p.stdout
    assert list(tmp_path.iterdir()) == []  # it once drew into a folder named `--help`


def test_plot_schedules_bad_flag_is_one_line_exit_2(tmp_path):
    p = _run([str(ROOT / "scripts" / "plot_schedules.py"), "--bogus"], tmp_path)
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == [
        "scripts/plot_schedules.py: error: unrecognized arguments: --bogus (--help lists the flags)"]
    assert list(tmp_path.iterdir()) == []


def test_benchmarks_write_an_untracked_report_unless_make_bench_asks_for_the_doc(tmp_path):
    p = _run([str(ROOT / "benchmarks" / "run.py"), "--help"], tmp_path)
    assert p.returncode == 0, p.stderr
    assert "(default benchmarks/out/benchmarks.md;" in " ".join(p.stdout.split())
    ignored = subprocess.run(["git", "check-ignore", "-q", "benchmarks/out/benchmarks.md"], cwd=ROOT, check=False)
    assert ignored.returncode == 0, "benchmarks/out/ must be git-ignored"
    make = subprocess.run(["make", "-n", "bench"], cwd=ROOT, capture_output=True, text=True,
                          check=False)
    assert "benchmarks/run.py --out docs/benchmarks.md" in make.stdout, make.stdout + make.stderr
