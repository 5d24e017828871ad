"""Fixtures for the reliability tests: private copies of the real checkpoints, to damage."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture()
def mg(tmp_path, megatron_incident_ckpt) -> Path:
    """A private copy of the Megatron fixture (step 499) at ``tmp_path/run/checkpoints/<name>``."""
    dst = tmp_path / "run" / "checkpoints" / megatron_incident_ckpt.name
    shutil.copytree(megatron_incident_ckpt, dst)
    return dst


@pytest.fixture()
def lt(tmp_path, incident_ckpt) -> Path:
    """A private copy of the Lightning fixture (step 499) and its context/, at ``tmp_path/lightning/checkpoints/``."""
    dst = tmp_path / "lightning" / "checkpoints" / incident_ckpt.name
    dst.parent.mkdir(parents=True)
    shutil.copy2(incident_ckpt, dst)
    context = incident_ckpt.with_name(incident_ckpt.name.removesuffix(".ckpt")) / "context"
    shutil.copytree(context, dst.with_name(dst.name.removesuffix(".ckpt")) / "context")
    return dst
