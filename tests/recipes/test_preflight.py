"""The recipe scripts run the doctor's cheap checks (docs/doctor.md) before a launch: a machine that cannot hold the
checkpoints the run keeps is refused before anything starts."""

from __future__ import annotations

import json

import pytest

from nemo_resume.cli.recipe_cmd import run_script

pytestmark = pytest.mark.nemo


def test_a_launch_whose_checkpoints_do_not_fit_the_disk_is_refused_before_it_starts(tmp_path, capsys):
    """Qwen2.5-72B keeps 10 checkpoints of about 1.1 TiB each (weights, fp32 master copy and Adam's moments)."""
    argv = ["--size", "72b", "--num-nodes", "4", "--tp", "8", "--pp", "4", "--dir", str(tmp_path / "res"), "--json"]
    assert run_script("pretrain", argv, prog="p") == 1
    out = capsys.readouterr()
    doc = json.loads(out.out)
    (disk,) = [f for f in doc["preflight"]["findings"] if f["check"] == "disk"]
    assert doc["preflight"]["ok"] is False and disk["level"] == "blocker"
    assert "p: refusing to launch: the machine is not ready" in out.err and "launch" not in doc
    assert not (tmp_path / "res").exists()  # nothing started, nothing written
