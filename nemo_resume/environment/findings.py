"""What the doctor reports: one finding per thing checked, and the verdict they add up to.

Plain data with ``to_json()`` (``--json`` and ``--report``); :mod:`nemo_resume.cli.doctor_report` renders it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

#: ``blocker``: a launch here would fail (exit 1); ``warning``: it may, said and let through (exit 0);
#: ``ok``: checked and fine; ``info``: a fact the launch does not depend on here.
Level = Literal["blocker", "warning", "ok", "info"]


@dataclass(frozen=True)
class Finding:
    """One thing checked: which check, about what, the level, why in one sentence, and the figures behind it."""

    check: str  # stack, gpu, disk, permission, memory, slurm
    subject: str  # a package, a path, "GPUs", ...
    level: Level
    message: str
    facts: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"check": self.check, "subject": self.subject, "level": self.level, "message": self.message,
                "facts": dict(self.facts)}


@dataclass(frozen=True)
class Report:
    """Every finding of one doctor (or preflight) run, in the order checked."""

    findings: tuple[Finding, ...]

    def at(self, level: Level) -> list[Finding]:
        return [f for f in self.findings if f.level == level]

    @property
    def ok(self) -> bool:
        """No blocker: the launch may go ahead (warnings are shown, not refused)."""
        return not self.at("blocker")

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "blockers": len(self.at("blocker")), "warnings": len(self.at("warning")),
                "findings": [f.to_json() for f in self.findings]}
