"""The installed stack against the known-good set, read from package metadata and files, never by importing it.

The known-good set is the ``[nemo]`` extra's own requirements (read from nemo-resume's installed metadata, so
``pyproject.toml`` stays their one definition) plus the ranges ``constraints.txt`` adds for ``numpy``,
``datasets`` and ``pyarrow``. A version off that set is a warning; a breakage found in the installed files
(the API NeMo 2.7.3 calls is gone) or a package missing is a blocker.
"""

from __future__ import annotations

import importlib.metadata as md
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from nemo_resume.environment.findings import Finding

if TYPE_CHECKING:  # packaging comes with the NeMo stack, not with the light install
    from packaging.requirements import Requirement

#: The distribution whose ``[nemo]`` extra pins the stack.
SELF, EXTRA = "nemo-resume", "nemo"
INSTALL_HINT = "pip install -c constraints.txt -e '.[nemo]' (docs/install.md)"

#: What goes wrong off each pin (docs/install.md's table), keyed by the canonical distribution name.
WHY: dict[str, str] = {
    "nemo-toolkit": "2.7.x is the last NeMo line with nemo.collections.llm and the Qwen2.5 recipes",
    "megatron-core": "0.16.x breaks NeMo 2.7.3 (get_megatron_optimizer lost no_weight_decay_cond; the tensorstore "
                     "dist-checkpoint strategy module is gone)",
    "leptonai": "leptonai 0.47 has no leptonai.api.v1, so `import nemo_run` fails",
    "torch": "the build the suite ran against; on a GPU machine the CUDA build of the same version",
    "numpy": "NeMo's llm extra and megatron-core require numpy < 2",
    "datasets": "datasets 4 needs pyarrow >= 21, which needs numpy 2",
    "pyarrow": "pyarrow 21 needs numpy 2, which NeMo's llm extra refuses",
}
#: The ranges constraints.txt holds beyond the extra (tests/environment checks they agree with it).
RANGES = ("numpy<2", "datasets<4", "pyarrow<21")


@dataclass(frozen=True)
class Breakage:
    """A known break, seen in the installed files: ``path`` of ``dist`` (holding ``needle``, when given) is what
    NeMo 2.7.3 needs; without it, ``what`` happens."""

    dist: str
    path: str
    needle: str | None
    what: str


BREAKAGES = (
    Breakage("nemo_toolkit", "nemo/collections/llm/__init__.py", None,
             "no nemo.collections.llm (NeMo 3.x dropped it): no Qwen2.5 recipes, no llm.pretrain/finetune"),
    Breakage("megatron-core", "megatron/core/optimizer/__init__.py", "no_weight_decay_cond",
             "get_megatron_optimizer() takes no no_weight_decay_cond (megatron-core 0.16+), which NeMo 2.7.3 passes "
             "(nemo/lightning/pytorch/optim/megatron.py): the optimizer setup fails"),
    Breakage("megatron-core", "megatron/core/dist_checkpointing/strategies/tensorstore.py", None,
             "no tensorstore dist-checkpoint strategy (megatron-core 0.16+), which NeMo 2.7.3 imports "
             "(nemo/utils/callbacks/dist_ckpt_io.py)"),
    Breakage("leptonai", "leptonai/api/v1/__init__.py", None,
             "no leptonai.api.v1 (leptonai 0.47+): `import nemo_run` fails"),
)


def installed_version(dist: str) -> str | None:
    """The installed version of ``dist`` from its metadata, or None when it is not installed."""
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


def installed_text(dist: str, path: str) -> str | None:
    """The text of ``path`` inside installed ``dist`` (as its RECORD places it), or None when it has no such file."""
    try:
        located = Path(str(md.distribution(dist).locate_file(path)))
        return located.read_text(encoding="utf-8", errors="replace")
    except (md.PackageNotFoundError, OSError):
        return None


def known_good() -> tuple[Requirement, ...] | None:
    """The ``[nemo]`` extra's requirements (nemo-resume's metadata) and :data:`RANGES`; None when nemo-resume is
    not installed, so its pins cannot be read."""
    from packaging.requirements import Requirement

    try:
        declared = md.requires(SELF) or []
    except md.PackageNotFoundError:
        return None
    extra = [r for r in map(Requirement, declared) if r.marker is not None and r.marker.evaluate({"extra": EXTRA})]
    return (*extra, *map(Requirement, RANGES))


def _version_finding(req: Requirement) -> Finding:
    from packaging.utils import canonicalize_name

    name = canonicalize_name(req.name)
    version = installed_version(req.name)
    facts = {"installed": version, "wanted": str(req.specifier)}
    if version is None:
        return Finding("stack", req.name, "blocker", f"not installed; {INSTALL_HINT}", facts)
    if req.specifier.contains(version, prereleases=True):
        return Finding("stack", req.name, "ok", f"{version} ({req.specifier})", facts)
    why = f": {WHY[name]}" if name in WHY else ""
    return Finding("stack", req.name, "warning", f"{version} is not the known-good {req.specifier}{why}", facts)


def _breakage_finding(b: Breakage) -> Finding | None:
    """A blocker when ``b`` is seen in the installed files; None when fine or ``b.dist`` is absent (said already)."""
    if installed_version(b.dist) is None:
        return None
    text = installed_text(b.dist, b.path)
    if text is not None and (b.needle is None or b.needle in text):
        return None
    return Finding("stack", b.dist, "blocker", f"{b.what}; install the known-good set: {INSTALL_HINT}",
                   {"file": b.path, "needs": b.needle})


def check_stack() -> list[Finding]:
    """Each known-good requirement against the installed version, then the known breakages in the installed files."""
    wanted = known_good()
    if wanted is None:
        return [Finding("stack", SELF, "warning", f"nemo-resume is not installed, so its [nemo] pins are unknown; "
                        f"{INSTALL_HINT}")]
    found = [_version_finding(r) for r in wanted]
    found += [f for f in map(_breakage_finding, BREAKAGES) if f is not None]
    return found
