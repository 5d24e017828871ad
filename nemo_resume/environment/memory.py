"""Host memory: total and available, against what an asynchronous checkpoint save stages in it."""

from __future__ import annotations

import os
from pathlib import Path

from nemo_resume.environment.findings import Finding
from nemo_resume.environment.launch import Launch
from nemo_resume.environment.storage import size_text

MEMINFO = Path("/proc/meminfo")


def host_memory() -> tuple[int, int]:
    """(total, available) bytes: /proc/meminfo's MemTotal and MemAvailable (what can be allocated without
    swapping), or, where there is no /proc, os.sysconf's physical and free pages."""
    if MEMINFO.is_file():
        fields = dict(line.split(":", 1) for line in MEMINFO.read_text().splitlines() if ":" in line)
        kib = {k: int(v.split()[0]) * 1024 for k, v in fields.items() if k in ("MemTotal", "MemAvailable")}
        return kib["MemTotal"], kib["MemAvailable"]
    page = os.sysconf("SC_PAGE_SIZE")
    return os.sysconf("SC_PHYS_PAGES") * page, os.sysconf("SC_AVPHYS_PAGES") * page


def check_memory(launch: Launch) -> Finding:
    """A warning when an asynchronous save's host copy of this node's checkpoint shards would not fit.

    With ``ckpt_async_save`` (the Qwen2.5 recipes' default) every rank copies its shard of the checkpoint to
    host memory and writes it in the background: a node holds its share, the checkpoint / the nodes.
    """
    total, available = host_memory()
    staged = launch.checkpoints.checkpoint_bytes // launch.num_nodes if launch.async_save else 0
    facts = {"total_bytes": total, "available_bytes": available, "async_save_staging_bytes": staged}
    said = f"{size_text(available)} available of {size_text(total)}"
    if launch.executor == "slurm":
        return Finding("memory", "host", "info", f"{said} here; the job runs on the Slurm nodes, whose memory "
                       "this machine cannot see", facts)
    if not launch.async_save:
        return Finding("memory", "host", "ok", f"{said} (no asynchronous save staging in host memory)", facts)
    need = f"an asynchronous save stages {size_text(staged)} per node"
    if available < staged:
        return Finding("memory", "host", "warning", f"{said}, but {need}: the save may swap or be killed; "
                       "free memory or set the strategy's ckpt_async_save=False", facts)
    return Finding("memory", "host", "ok", f"{said}; {need}", facts)
