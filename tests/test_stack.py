"""The pinned stack imports and builds NeMo's stock recipe on a CPU machine; the light install works."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.nemo
def test_nemo_llm_and_nemo_run_import_and_build_the_stock_qwen25_recipe(tmp_path, monkeypatch):
    monkeypatch.setenv("NEMORUN_HOME", str(tmp_path))
    import megatron.core
    import nemo_run as run
    import torch
    from nemo.collections import llm

    assert torch.__version__.startswith("2.13.0") and megatron.core.__version__ == "0.15.3"
    recipe = llm.qwen25_500m.finetune_recipe(dir=str(tmp_path), name="smoke", num_nodes=1, num_gpus_per_node=1)
    assert isinstance(recipe, run.Partial) and recipe.__fn_or_cls__ is llm.finetune
    assert recipe.optim.lr_scheduler.min_lr == 0 and recipe.optim.config.lr == 1e-4


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("python3") is None, reason="needs python3 to make a venv")
def test_the_inspector_installs_and_runs_without_torch_or_nemo(tmp_path, finished_run):
    """A login node: `pip install .` pulls only rich; the inspector reads a real checkpoint."""
    venv = tmp_path / "light"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, str(ROOT)], check=True, capture_output=True, text=True)
    frozen = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "freeze"], capture_output=True, text=True).stdout
    names = {line.split("==")[0].split(" @ ")[0].lower().replace("_", "-") for line in frozen.splitlines()}
    assert "nemo-resume" in names and "rich" in names
    assert not names & {"torch", "nemo-toolkit", "nemo-run", "lightning", "megatron-core", "numpy"}, names
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([str(venv / "bin" / "nemo-resume"), "inspect", str(finished_run.log_dir), "--json"],
                          capture_output=True, text=True, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert '"latest_complete"' in proc.stdout and "step=200" in proc.stdout
