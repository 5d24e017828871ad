"""``nemo-resume export``: a NeMo 2 LoRA checkpoint's adapter in Hugging Face PEFT format, by NeMo's own exporter.

What is exported is decided from the checkpoint's files without running its code (the inspector's ``peft`` and
``peft_base``); NeMo's ``llm.peft.export_lora`` then runs in :mod:`nemo_resume.hf.export_child` (a child process:
the CPU stand-ins stay out of this one), into a temporary sibling of OUT that is renamed into place only when the
adapter is complete, so a failed export leaves nothing at OUT and nothing is ever written over.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nemo_resume.errors import NemoResumeError
from nemo_resume.hf.import_model import read_record
from nemo_resume.inspection import inspect_path
from nemo_resume.inspection.inspector import InspectedCheckpoint

#: The exporter loads the adapters only (the base is not read): minutes even for a 72B model's LoRA.
EXPORT_TIMEOUT_S = 1800.0
#: What ``peft.PeftModel.from_pretrained`` reads.
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
#: The PEFT class (``model.model_transform``) whose export is tested: NeMo's ``llm.peft.LoRA``.
EXPORTABLE = "lora"
MERGE_REFUSED = ("--merge is not supported: NeMo 2.7.3's llm.peft.merge_lora loads the base in bf16 on a CPU trainer "
                 "(nemo/collections/llm/peft/api.py:99-127) and its Hugging Face exporter fails on a model without "
                 "Transformer Engine; export the adapter (without --merge) and merge it with peft's merge_and_unload() "
                 "(docs/export.md)")
#: Where the base named in adapter_config.json came from; the last is a NeMo checkpoint, which peft cannot load.
BASE_SOURCES = ("--base", "the Hugging Face folder the base was imported from", "the NeMo base checkpoint")
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


class ExportFailed(Exception):
    """NeMo's exporter ran and failed: a problem found (exit 1), not bad input; ``step`` says where."""

    def __init__(self, step: str, reason: str) -> None:
        super().__init__(f"{step}: {reason}")
        self.step, self.reason = step, reason


@dataclass(frozen=True)
class ExportResult:
    """The adapter written at ``out``, as ``peft`` will read it."""

    checkpoint: Path
    out: Path
    base_model: str
    base_source: str  # BASE_SOURCES: where base_model came from
    rank: int
    alpha: float
    target_modules: tuple[str, ...]
    tensors: int
    device: str
    stand_ins: tuple[str, ...]
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return {"checkpoint": str(self.checkpoint), "out": str(self.out), "format": "hf-peft",
                "base_model_name_or_path": self.base_model, "base_source": self.base_source, "r": self.rank, "lora_alpha": self.alpha,
                "target_modules": list(self.target_modules), "tensors": self.tensors, "files": list(ADAPTER_FILES),
                "device": self.device, "stand_ins": list(self.stand_ins), "seconds": round(self.seconds, 1)}


def lora_checkpoint(path: Path) -> InspectedCheckpoint:
    """The complete LoRA checkpoint at ``path``: a checkpoint folder, or a run folder's newest resumable one (the
    one ``nemo-resume inspect`` marks).

    Raises:
        NemoResumeError: no checkpoint, none complete, incomplete, not PEFT, or a PEFT method other than LoRA.
    """
    inspected = inspect_path(path)
    found = [c for c in inspected.checkpoints if not c.is_companion]
    if not found:
        raise NemoResumeError(f"{path} holds no checkpoint with weights: give the LoRA checkpoint folder")
    ckpt = found[0] if len(found) == 1 else inspected.latest
    if ckpt is None:
        raise NemoResumeError(f"{path} holds {len(found)} checkpoints and none can be resumed from "
                              "(nemo-resume inspect says why): give the one to export")
    where, peft = ckpt.state.location.path, ckpt.state.run_layout.peft
    if not ckpt.state.complete:
        raise NemoResumeError(f"{where} is incomplete ({'; '.join(ckpt.state.incomplete_reasons)}): export a complete one")
    if peft is None:
        raise NemoResumeError(f"{where} is not a LoRA checkpoint (its context/io.json has no model.model_transform): "
                              "give the checkpoint a PEFT fine-tune (llm.finetune with peft=LoRA) wrote")
    if peft != EXPORTABLE:
        raise NemoResumeError(f"{where} holds a {peft} adapter; only LoRA (llm.peft.LoRA) is exported, "
                              "DoRA and CanonicalLoRA are not supported yet")
    return ckpt


def base_model_name(ckpt: InspectedCheckpoint, base: str | None) -> tuple[str, str]:
    """What ``adapter_config.json`` names as the base: ``--base`` (a local folder made absolute, or a hub id), else
    the Hugging Face folder the NeMo base was imported from (recorded by ``--model``), else the NeMo base itself;
    with where it came from (one of :data:`BASE_SOURCES`).

    Raises:
        NemoResumeError: ``--base`` is neither a Hugging Face model folder nor a hub id, or no base is known.
    """
    if base is not None:
        local = Path(base).expanduser()
        if (local / "config.json").is_file():
            return str(local.resolve()), BASE_SOURCES[0]
        if local.exists() or not _HUB_ID.fullmatch(base):
            raise NemoResumeError(f"--base {base}: not a Hugging Face model folder (no config.json) nor a hub id "
                                  "like Qwen/Qwen2.5-7B; give the model the LoRA was trained on")
        return base, BASE_SOURCES[0]
    nemo_base = ckpt.state.run_layout.peft_base
    if nemo_base is None:
        raise NemoResumeError(f"{ckpt.state.location.path}: weights/adapter_metadata.json names no base model "
                              "(model_ckpt_path); give --base HF_DIR")
    source = (read_record(nemo_base) or {}).get("source")
    return (source, BASE_SOURCES[1]) if isinstance(source, str) else (nemo_base, BASE_SOURCES[2])


def check_out(out: Path) -> None:
    """OUT must be new, in a folder that exists: an export never writes over anything."""
    if out.exists() or out.is_symlink():
        raise NemoResumeError(f"--to {out} exists; export never writes over it: give a new path")
    if not out.parent.is_dir():
        raise NemoResumeError(f"--to {out}: its folder {out.parent} does not exist; create it first")


def export_adapter(checkpoint: Path, out: Path, *, base: str | None = None,
                   timeout_s: float = EXPORT_TIMEOUT_S) -> ExportResult:
    """Export ``checkpoint``'s LoRA adapter to ``out`` in Hugging Face PEFT format.

    Raises:
        NemoResumeError: bad input (see :func:`lora_checkpoint`, :func:`base_model_name`, :func:`check_out`).
        ExportFailed: NeMo's exporter failed or timed out, or wrote no adapter.
    """
    check_out(out)
    ckpt = lora_checkpoint(checkpoint)
    base_name, base_source = base_model_name(ckpt, base)
    start = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    logs = Path(tempfile.mkdtemp(prefix="nemo-resume-export-"))
    try:
        done = _run_child(ckpt.state.location.path, work / "adapter", logs, timeout_s)
        config = _finish_config(work / "adapter", base_name)
        tensors = _tensor_count(work / "adapter" / ADAPTER_FILES[1])
        check_out(out)  # nothing appeared there meanwhile
        (work / "adapter").rename(out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(logs, ignore_errors=True)  # kept, and named, when the export failed
    return ExportResult(ckpt.state.location.path, out, base_name, base_source, int(config["r"]), float(config["lora_alpha"]),
                        tuple(sorted(config["target_modules"])), tensors, done["device"], tuple(done["stand_ins"]),
                        time.monotonic() - start)


def _run_child(ckpt: Path, adapter: Path, logs: Path, timeout_s: float) -> dict[str, Any]:
    """NeMo's exporter in :mod:`nemo_resume.hf.export_child`, killed with its process group at the deadline."""
    result, log_path = logs / "result.json", logs / "export.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "nemo_resume.hf.export_child", str(ckpt), str(adapter),
                                 str(result)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise ExportFailed("exporting", f"stopped after {timeout_s:.0f} s (output: {log_path})") from None
    done = json.loads(result.read_text()) if result.exists() else {}
    if done.get("error") or proc.returncode != 0:
        step = done.get("step", "starting the export process")
        reason = done.get("error") or f"the process exited with {proc.returncode}"
        raise ExportFailed(step, f"{reason} (output: {log_path})")
    missing = [f for f in ADAPTER_FILES if not (adapter / f).is_file()]
    if missing:
        raise ExportFailed("checking the exported adapter", f"NeMo wrote no {', '.join(missing)} (output: {log_path})")
    return done


def _finish_config(adapter: Path, base: str) -> dict[str, Any]:
    """Name the real base and the task in ``adapter_config.json``: NeMo's exporter writes a base derived from the NeMo
    checkpoint path and no task type, so ``PeftModel.from_pretrained`` would build a plain ``PeftModel`` (no
    ``generate`` wiring) and ``AutoPeftModelForCausalLM`` would look for a base that does not exist."""
    path = adapter / ADAPTER_FILES[0]
    config: dict[str, Any] = json.loads(path.read_text())
    config["base_model_name_or_path"] = base
    config["task_type"] = "CAUSAL_LM"
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    return config


def _tensor_count(safetensors: Path) -> int:
    """The tensors in a safetensors file, from its header (8-byte little-endian length, then JSON)."""
    with open(safetensors, "rb") as fh:
        (size,) = struct.unpack("<Q", fh.read(8))
        header = json.loads(fh.read(size))
    return len([k for k in header if k != "__metadata__"])
