"""GPUs, CUDA and NCCL as torch sees them, asked without creating a CUDA context or touching a device."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

from nemo_resume.environment.findings import Finding
from nemo_resume.environment.launch import Launch


@dataclass(frozen=True)
class Accelerators:
    """What torch reports: its version and CUDA build, the visible GPUs, the NCCL it was built with."""

    torch: str
    cuda_build: str | None  # torch.version.cuda; None for a CPU build
    gpus: int  # visible devices (0 when CUDA is unavailable)
    nccl: str | None  # the NCCL version torch was built with; None without NCCL
    cuda_visible_devices: str | None  # the variable as set, which narrows what is visible

    @property
    def what(self) -> str:
        build = f"CUDA {self.cuda_build}" if self.cuda_build else "a CPU build"
        nccl = f", NCCL {self.nccl}" if self.nccl else ", no NCCL"
        return f"torch {self.torch} ({build}{nccl}): {self.gpus} GPU{'s' if self.gpus != 1 else ''} visible"


def probe() -> Accelerators:
    """torch's answers. ``cuda.device_count`` asks NVML first (no CUDA context is created, no device touched);
    a CPU build answers 0."""
    import torch

    gpus = torch.cuda.device_count()
    nccl = None
    if torch.distributed.is_available() and torch.distributed.is_nccl_available():
        nccl = ".".join(map(str, torch.cuda.nccl.version()))
    return Accelerators(torch.__version__, torch.version.cuda, gpus, nccl, os.environ.get("CUDA_VISIBLE_DEVICES"))


def check_accelerators(found: Accelerators, launch: Launch) -> Finding:
    """A blocker when a local GPU launch would not find its GPUs or NCCL; the rehearsal and Slurm jobs need none here."""
    facts = {**asdict(found), "needed_gpus": launch.devices if launch.accelerator == "gpu" else 0}
    if launch.accelerator == "cpu":
        return Finding("gpu", "GPUs", "ok", f"{found.what}; the --smoke rehearsal runs on CPU and needs none", facts)
    if launch.executor == "slurm":
        return Finding("gpu", "GPUs", "info", f"{found.what} here; the job asks Slurm for {launch.devices} GPUs on "
                       f"each of {launch.num_nodes} node(s), so this machine's do not matter", facts)
    if found.gpus < launch.devices:
        return Finding("gpu", "GPUs", "blocker", f"{found.what}, and the launch asks for {launch.devices} "
                       "(--gpus-per-node): run it on a GPU machine, lower --gpus-per-node, or rehearse it on CPU "
                       "with --smoke", facts)
    if found.nccl is None:
        return Finding("gpu", "NCCL", "blocker", f"{found.what}, but torch has no NCCL, which MegatronStrategy's "
                       "process groups use on GPUs; install torch's CUDA build", facts)
    return Finding("gpu", "GPUs", "ok", f"{found.what} (--gpus-per-node {launch.devices})", facts)
