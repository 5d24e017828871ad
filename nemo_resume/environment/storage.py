"""Write permission and free disk under ``--dir``, checked without creating anything.

``--dir`` often does not exist yet (NeMoLogger creates it): both checks then ask its nearest existing parent,
the folder the run's first ``mkdir`` would write into.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from nemo_resume.environment.checkpoint_size import CheckpointEstimate
from nemo_resume.environment.findings import Finding


def size_text(n: int) -> str:
    """Bytes in binary units, as ``df -h`` shows them: 8.2 GiB, 1.4 MiB."""
    units = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
    value, i = float(n), 0
    while value >= 1024 and i < len(units) - 1:
        value, i = value / 1024, i + 1
    return f"{n} B" if i == 0 else f"{value:.1f} {units[i]}"


def nearest_existing(path: Path) -> Path:
    """``path`` itself when it exists, else its closest existing parent (absolute)."""
    here = Path(os.path.abspath(path))
    while not here.exists():
        here = here.parent
    return here


def check_permission(dir: Path) -> Finding:
    """Whether this user can create the run's folders in ``dir`` (or in the parent that would hold it)."""
    where = nearest_existing(dir)
    facts = {"dir": str(dir), "checked": str(where), "exists": where == Path(os.path.abspath(dir))}
    if not where.is_dir():
        return Finding("permission", str(dir), "blocker", f"{where} is not a folder, so {dir} cannot be created "
                       "under it; pass another --dir", facts)
    if not os.access(where, os.W_OK | os.X_OK):
        missing = "" if facts["exists"] else f" (it does not exist; {where} would hold it)"
        return Finding("permission", str(dir), "blocker", f"{where} is not writable by this user{missing}: the run "
                       "cannot save checkpoints; pass a writable --dir or fix its permissions", facts)
    made = "writable" if facts["exists"] else f"can be created (in {where}, writable)"
    return Finding("permission", str(dir), "ok", made, facts)


def check_disk(dir: Path, estimate: CheckpointEstimate) -> Finding:
    """Free space on ``dir``'s file system against the checkpoints the run keeps (a blocker when they do not fit)."""
    where = nearest_existing(dir)
    usage = shutil.disk_usage(where)
    need = estimate.needed_bytes
    facts = {"checked": str(where), "free_bytes": usage.free, "total_bytes": usage.total, "needed_bytes": need,
             "checkpoint_bytes": estimate.checkpoint_bytes, "copies_at_peak": estimate.copies}
    sizes = (f"{size_text(usage.free)} free on {where}; the run holds up to {estimate.copies} checkpoints of "
             f"{size_text(estimate.checkpoint_bytes)} at once = {size_text(need)}")
    if usage.free < need:
        return Finding("disk", str(dir), "blocker", f"{sizes}: short by {size_text(need - usage.free)}; free space, pass "
                       "another --dir, or keep fewer checkpoints", facts)
    return Finding("disk", str(dir), "ok", sizes, facts)
