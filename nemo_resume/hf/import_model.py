"""``--model PATH``: a local Hugging Face Qwen2 folder imported once into a NeMo 2 checkpoint, reused after.

The import is NeMo's own (``HFQwen2Importer``, with the local-spec norm fix of :mod:`nemo_resume.hf.import_child`),
run in a child process, into ``<--dir>/models/<folder name>-<fingerprint>``, and recorded there in
:data:`RECORD` (the source and its fingerprint: config.json's bytes and every weight, tokenizer and config file's
size and modification time). So a changed source gets a new folder, an unchanged one reuses its import, and
nothing is ever written over: the import goes to a temporary sibling, renamed into place only when complete, and a
folder at the target that is not this source's complete import is refused, not replaced.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nemo_resume.checkpoint.bounded_read import read_json
from nemo_resume.errors import NemoResumeError

MODELS = "models"
RECORD = "nemo_resume_import.json"
_RECORD_LIMIT = 1 << 16
#: A 72B import reads and writes about 290 GB: hours on a slow file system.
IMPORT_TIMEOUT_S = 6 * 3600


@dataclass(frozen=True)
class ImportTarget:
    """Where ``source`` is (or will be) imported, and whether that import is there and complete."""

    source: Path
    fingerprint: str
    path: Path
    complete: bool


def import_target(source: Path, fingerprint: str, root: Path) -> ImportTarget:
    """The import folder of ``source`` under ``root`` (``--dir``): reads only.

    Raises:
        NemoResumeError: something is at the folder that is not this source's complete import (never replaced).
    """
    path = root / MODELS / f"{source.name}-{fingerprint[:12]}"
    if not path.exists():
        return ImportTarget(source, fingerprint, path, False)
    record = read_record(path) or {}
    whole = (path / "context" / "io.json").is_file() and (path / "weights" / "metadata.json").is_file()
    if not whole or record.get("fingerprint") != fingerprint:
        raise NemoResumeError(f"{path} exists but is not a complete import of {source} (no {RECORD} naming its "
                              "fingerprint, or no context/io.json and weights/metadata.json): move it away and launch again")
    return ImportTarget(source, fingerprint, path, True)


def read_record(folder: Path | str) -> dict[str, Any] | None:
    """The :data:`RECORD` of an import folder (``source``, ``fingerprint``), or None: absent, not a small regular
    file, or not a JSON object."""
    try:
        record = read_json(Path(folder) / RECORD, _RECORD_LIMIT)
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def import_model(target: ImportTarget, *, timeout_s: float = IMPORT_TIMEOUT_S, log_path: Path | None = None) -> Path:
    """Import ``target.source`` into ``target.path`` unless it is there already; return the folder.

    Raises:
        NemoResumeError: the importer failed or timed out (its output's tail and the log's path in the message).
    """
    if target.complete:
        return target.path
    target.path.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{target.path.name}.partial-", dir=target.path.parent))
    out = work / "model"
    log_path = log_path or work.parent / f"{target.path.name}.import.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    try:
        with open(log_path, "wb") as log:
            proc = subprocess.run([sys.executable, "-m", "nemo_resume.hf.import_child", str(target.source), str(out)],
                                  stdout=log, stderr=subprocess.STDOUT, env=env, timeout=timeout_s, check=False)
        if proc.returncode != 0 or not (out / "weights" / "metadata.json").is_file():
            tail = log_path.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
            raise NemoResumeError(f"importing {target.source} with NeMo's HFQwen2Importer failed (exit "
                                  f"{proc.returncode}): {tail[0][:300]}; the whole output is in {log_path}")
        (out / RECORD).write_text(json.dumps({"source": str(target.source), "fingerprint": target.fingerprint}))
        out.rename(target.path)
    except subprocess.TimeoutExpired:
        raise NemoResumeError(f"importing {target.source} took over {timeout_s:.0f} s and was stopped; the output "
                              f"is in {log_path}") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target.path
