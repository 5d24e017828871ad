"""The two entry points: :func:`doctor` (every check) and :func:`preflight` (the cheap ones a recipe runs
before it launches: versions, write permission, free disk)."""

from __future__ import annotations

from nemo_resume.environment.accelerators import check_accelerators, probe
from nemo_resume.environment.findings import Finding, Report
from nemo_resume.environment.launch import Launch
from nemo_resume.environment.memory import check_memory
from nemo_resume.environment.slurm import check_container_image, check_sbatch
from nemo_resume.environment.stack import check_stack
from nemo_resume.environment.storage import check_disk, check_permission


def _storage(launch: Launch) -> list[Finding]:
    return [check_permission(launch.dir), check_disk(launch.dir, launch.checkpoints)]


def preflight(launch: Launch) -> Report:
    """The stack's versions and known breakages, write permission and free disk under ``launch.dir``: no torch
    device query, nothing created. A recipe calls it with the recipe it is about to launch."""
    return Report(tuple(check_stack() + _storage(launch)))


def doctor(launch: Launch) -> Report:
    """:func:`preflight`, plus the GPUs, CUDA and NCCL, host memory and, for a Slurm job, sbatch and the image."""
    found = [*check_stack(), check_accelerators(probe(), launch), *_storage(launch), check_memory(launch)]
    if launch.executor == "slurm":
        found += [check_sbatch(), check_container_image(launch.container_image)]
    return Report(tuple(found))
