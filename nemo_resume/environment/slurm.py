"""``--executor slurm`` from this machine: NeMo-Run submits with ``sbatch`` here, and the job's container image."""

from __future__ import annotations

import shutil
from pathlib import Path

from nemo_resume.environment.findings import Finding


def check_sbatch() -> Finding:
    """NeMo-Run's SlurmExecutor (with a LocalTunnel, as the recipes use it) runs ``sbatch`` on this machine."""
    where = shutil.which("sbatch")
    if where is None:
        return Finding("slurm", "sbatch", "blocker", "sbatch is not on PATH: NeMo-Run submits the job with it from "
                       "this machine; run the recipe on a Slurm login node", {"sbatch": None})
    return Finding("slurm", "sbatch", "ok", f"found at {where}", {"sbatch": where})


def check_container_image(image: str | None) -> Finding:
    """A squashfs file given by path must exist; a registry reference is pulled by the nodes (not checked here)."""
    if image is None:
        return Finding("slurm", "container image", "warning", "no --container-image: the job runs in the nodes' own "
                       "Python, which must hold the known-good stack (docs/install.md)", {"image": None})
    facts = {"image": image}
    if image.startswith(("/", "./", "../")) or image.endswith(".sqsh"):
        if not Path(image).is_file():
            return Finding("slurm", "container image", "blocker", f"{image} is not a file here; pass an existing "
                           "squashfs image or a registry reference (nvcr.io/nvidia/nemo:TAG)", facts)
        return Finding("slurm", "container image", "ok", f"{image} (a squashfs file)", facts)
    return Finding("slurm", "container image", "info", f"{image}: a registry reference, pulled by the nodes; "
                   "not checked from here", facts)
