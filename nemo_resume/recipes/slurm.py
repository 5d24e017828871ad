"""``--executor slurm``: NeMo-Run's SlurmExecutor, with this nemo_resume shipped inside the job.

The job runs in a stock NeMo container where nemo_resume is not installed, yet its config names
nemo_resume classes (the resume callback, SaveFromStepCheckpoint, ParamNameMatch, LrMultOptimizerModule, the staged
scheduler). NeMo-Run's PatternPackager copies the package this process imports (an editable
install or a wheel alike) into the job folder's ``code/``; srun mounts the job folder at
``/nemo_run`` and starts the job in ``/nemo_run/code``, which ``python -m
nemo_run.core.runners.fdl_runner`` puts first on ``sys.path``.

Every path the job's config names (``--dir``, ``--data``, ``--resume PATH``) is made absolute
(the job runs in ``/nemo_run/code``, not here) and must be visible inside the container at the
same path, through a ``--mount`` whose source and destination are equal; otherwise checkpoints
would land on the container's own disk and vanish with the job.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nemo_resume
from nemo_resume.errors import NemoResumeError
from nemo_resume.planning.choice import RESUME_KEYWORDS
from nemo_resume.recipes.data import is_instruction_jsonl

DEFAULT_TIME = "04:00:00"
# Under --dir. Not named "nemo_run": without a container NeMo-Run replaces every "/nemo_run" in the
# sbatch script with the job folder, which would mangle a path that holds it.
JOBS_FOLDER = "slurm_jobs"
# NeMo-Run's Experiment writes under <base_dir>/experiments/<title>/<id>; a LocalTunnel with this
# job_dir submits <job_dir>/<title>/<id>/..., so the two meet when base_dir is its parent.
_EXPERIMENTS = "experiments"
CONTAINER_CODE = "/nemo_run/code"  # NeMo-Run's --container-workdir: the job folder's code/, mounted


@dataclass(frozen=True)
class SlurmOptions:
    """The ``--executor slurm`` flags as given (``mounts``: each ``--mount``, ``SRC:DST[:FLAGS]``)."""

    account: str | None = None
    partition: str | None = None
    time: str | None = None
    container_image: str | None = None
    mounts: tuple[str, ...] = ()


@dataclass(frozen=True)
class Mount:
    """One container mount: host ``src`` seen at ``dst`` inside the container."""

    src: Path
    dst: Path
    read_only: bool

    @classmethod
    def parse(cls, text: str) -> Mount:
        """``SRC:DST`` or ``SRC:DST:FLAGS`` (pyxis' ``--container-mounts`` syntax), absolute paths only."""
        parts = text.split(":")
        if len(parts) not in (2, 3) or not all(parts[:2]):
            raise NemoResumeError(f"--mount {text}: expected SRC:DST or SRC:DST:FLAGS (e.g. --mount /lustre:/lustre)")
        src, dst = Path(parts[0]), Path(parts[1])
        if not (src.is_absolute() and dst.is_absolute()):
            raise NemoResumeError(f"--mount {text}: SRC and DST must be absolute paths (e.g. --mount /lustre:/lustre)")
        flags = parts[2] if len(parts) == 3 else ""
        return cls(Path(os.path.normpath(src)), Path(os.path.normpath(dst)), "ro" in re.split(r"\W+", flags))


@dataclass(frozen=True)
class JobPaths:
    """The paths the job's config names, as the job must see them, and the notes saying what changed."""

    dir: Path
    data: Path | None
    resume: str
    notes: tuple[str, ...]


def mount_specs(s: SlurmOptions) -> list[str]:
    """Every ``--mount`` spec (one flag may hold several, comma-separated, as pyxis takes them)."""
    return [m for given in s.mounts for m in given.split(",") if m]


def _deepest(path: Path, given: tuple[Mount, ...], side: str) -> Mount | None:
    """The mount whose ``side`` (``src`` or ``dst``) holds ``path`` most closely, or None."""
    holding = [m for m in given if path == getattr(m, side) or getattr(m, side) in path.parents]
    return max(holding, key=lambda m: len(getattr(m, side).parts)) if holding else None


def _check_reachable(flag: str, path: Path, given: tuple[Mount, ...], *, written: bool) -> None:
    """Refuse ``path`` unless the container shows this machine's ``path`` at ``path``.

    Inside the container ``path`` is served by the mount with the deepest destination holding it;
    that is this machine's ``path`` only when the mount's source and destination are equal.

    Raises:
        NemoResumeError: naming the path and the ``--mount`` to add or change.
    """
    serving = _deepest(path, given, "dst")
    if serving is not None and serving.src == serving.dst:
        if written and serving.read_only:
            raise NemoResumeError(f"{flag} {path}: --mount {serving.src}:{serving.dst} is read-only and the job "
                                  "writes checkpoints there; mount it read-write")
        return
    holder = _deepest(path, given, "src")
    same = holder.src if holder else Path(*path.parts[:2])  # the folder to mount at its own path
    shown = holder or serving
    if shown is None:
        raise NemoResumeError(
            f"{flag} {path}: not under any --mount, so inside the container it would be the container's own disk "
            f"(lost when the job ends); add --mount SRC:SRC for a folder holding it, e.g. --mount {same}:{same}")
    raise NemoResumeError(
        f"{flag} {path}: --mount {shown.src}:{shown.dst} mounts a different path inside the container, but the "
        f"job's config names {path} as this machine sees it; mount it at the same path (--mount {same}:{same})")


def _absolute(flag: str, path: Path, notes: list[str]) -> Path:
    """``path`` made absolute (``..`` folded, links kept as given), with a note when it was relative."""
    absolute = Path(os.path.abspath(path))
    if not path.is_absolute():
        notes.append(f"{flag} {path} is relative and the Slurm job runs in {CONTAINER_CODE}: it gets {absolute}")
    return absolute


def job_paths(s: SlurmOptions, *, dir: Path, data: Path | None, resume: str) -> JobPaths:
    """Check the Slurm flags and give the job absolute paths it can reach (see the module docstring).

    Raises:
        NemoResumeError: a missing flag, a malformed ``--mount``, or a path the job could not reach.
    """
    missing = [f"--{k}" for k in ("account", "partition") if not getattr(s, k)]
    if missing:
        raise NemoResumeError(f"--executor slurm needs {' and '.join(missing)}")
    given = tuple(Mount.parse(m) for m in mount_specs(s))
    notes: list[str] = []
    log_dir = _absolute("--dir", dir, notes)
    job_data = None if data is None else _absolute("--data", data, notes)
    checkpoint = resume if resume in RESUME_KEYWORDS else str(_absolute("--resume", Path(resume), notes))
    # (flag, path the job opens, whether it writes there); an instruction JSONL is converted under --dir here
    opened = [("--dir", log_dir, True)]
    if job_data is not None and not is_instruction_jsonl(job_data):
        opened.append(("--data", job_data, False))
    if checkpoint not in RESUME_KEYWORDS:
        opened.append(("--resume", Path(checkpoint), False))
    if s.container_image:
        for flag, path, written in opened:
            _check_reachable(flag, path, given, written=written)
    elif given:
        raise NemoResumeError(f"--mount {s.mounts[0]} without --container-image: without a container the job sees "
                              "this machine's files as they are; drop --mount or pass --container-image")
    elif "/nemo_run" in str(log_dir):
        raise NemoResumeError(f"--dir {log_dir}: without a container NeMo-Run rewrites every '/nemo_run' in the "
                              "sbatch script; pick a --dir without it, or pass --container-image")
    return JobPaths(log_dir, job_data, checkpoint, tuple(notes))


def package_dir() -> Path:
    """The nemo_resume this process imports (the job gets this copy): a work tree or site-packages."""
    return Path(nemo_resume.__file__).resolve().parent


def jobs_dir(dir: Path) -> Path:
    """Where NeMo-Run keeps the Slurm jobs of runs under ``dir``: sbatch scripts, code, configs, logs."""
    return dir / JOBS_FOLDER / _EXPERIMENTS


def packaging_note(dir: Path, name: str) -> str:
    """How nemo_resume gets into the job, in one line (printed with the recipe's notes)."""
    return (f"--executor slurm: the job imports nemo_resume {nemo_resume.__version__} from "
            f"{jobs_dir(dir) / name}/{name}_<id>/{name}/code, where NeMo-Run's PatternPackager copies "
            f"{package_dir()}; srun mounts that job folder at /nemo_run and starts in {CONTAINER_CODE}, "
            "first on the job's sys.path")


def code_packager() -> Any:
    """NeMo-Run's PatternPackager for the whole nemo_resume package (tar -C its parent, so paths start
    at ``nemo_resume/``). Replaces the SlurmExecutor default, a git archive of the current directory's
    repository, which fails outside a repository and never holds an installed package."""
    import nemo_run as run

    pkg = package_dir()
    return run.PatternPackager(include_pattern=str(pkg), relative_path=str(pkg.parent))


def slurm_executor(s: SlurmOptions, *, dir: Path, nodes: int, gpus_per_node: int) -> Any:
    """NeMo-Run's SlurmExecutor, submitting from this machine (a login node) with a LocalTunnel.

    ``dir`` is absolute (``job_paths``); the job folder lies under it, on storage the nodes share.
    """
    import nemo_run as run

    return run.SlurmExecutor(
        account=s.account,
        partition=s.partition,
        time=s.time or DEFAULT_TIME,
        nodes=nodes,
        ntasks_per_node=gpus_per_node,
        gpus_per_node=gpus_per_node,
        container_image=s.container_image,
        container_mounts=mount_specs(s),
        tunnel=run.LocalTunnel(job_dir=str(jobs_dir(dir))),
        packager=code_packager(),
    )


def experiment_base_dir(executor: Any, *, dryrun: bool) -> str | None:
    """``run.Experiment(base_dir=...)`` for ``executor``: None (NeMo-Run's home) unless a Slurm launch.

    NeMo-Run writes the sbatch script, the packaged code and the configs under the Experiment's
    folder, but a LocalTunnel submits and mounts them from its own ``job_dir``; with the default
    base_dir those differ and sbatch finds no script. A dry run keeps NeMo-Run's home (it deletes
    what it wrote), so it writes nothing under ``--dir``.
    """
    import nemo_run as run

    if dryrun or not isinstance(executor, run.SlurmExecutor):
        return None
    return str(Path(executor.tunnel.job_dir).parent)
