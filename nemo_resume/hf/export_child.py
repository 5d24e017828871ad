"""The child process of :func:`nemo_resume.hf.export.export_adapter`: NeMo's ``llm.peft.export_lora`` on one checkpoint.

    python -m nemo_resume.hf.export_child LORA_CKPT OUT_DIR RESULT.json

Separate from the caller because NeMo's exporter loads torch_dist weights through megatron-core, which without a GPU
needs the project's CPU stand-ins (:mod:`nemo_resume.smoke.cpu_standins`); they must not touch the caller's torch.
And megatron-core's checkpoint code starts a spawn-context ``multiprocessing.Manager``, which re-imports ``__main__``
(this guarded module). RESULT.json gets ``{"step", "error", "stand_ins", "device"}``: the step that failed and why.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any


def register_qwen2_peft_exporter() -> None:
    """Register an ``"hf-peft"`` exporter for NeMo's ``Qwen2Model``, which NeMo 2.7.3 lacks.

    ``llm.peft.export_lora`` looks the exporter up by model class; NeMo registers one for Llama only and raises
    ``No connector found for extension 'hf-peft' for Qwen2Model``. Qwen2's block is Llama's with a bias on q/k/v (the
    LoRA adapters carry no bias), so Llama's PEFT exporter's ``apply`` (adapters only), ``convert_state`` (the fused
    qkv and fc1 adapters split into q/k/v and gate/up) and ``peft_config`` (NeMo's target names in Hugging Face's)
    apply unchanged on top of Qwen2's own exporter (its Hugging Face config). Llama's ``init`` is not reused: it calls
    ``super()`` of Llama's class. The base the adapter names is written by :mod:`nemo_resume.hf.export`.
    """
    import torch
    from nemo.collections.llm.gpt.model.llama import HFLlamaPEFTExporter
    from nemo.collections.llm.gpt.model.qwen2 import HFQwen2Exporter, Qwen2Model
    from nemo.lightning import io

    @io.model_exporter(Qwen2Model, "hf-peft")
    class HFQwen2PEFTExporter(HFQwen2Exporter):
        trust_remote_code = False  # Qwen2 is in transformers: no remote code runs

        def init(self, dtype: Any = torch.bfloat16) -> Any:
            """Qwen2's Hugging Face model (no weights read) wrapped by ``peft`` with this checkpoint's LoRA config."""
            from peft import get_peft_model

            return get_peft_model(HFQwen2Exporter.init(self, dtype=dtype), self.peft_config, autocast_adapter_dtype=False)

        apply = HFLlamaPEFTExporter.apply
        convert_state = HFLlamaPEFTExporter.convert_state
        peft_config = HFLlamaPEFTExporter.peft_config

    del HFQwen2PEFTExporter  # registered by the decorator: what export_lora finds


def main(ckpt: str, out: str, result_path: str) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the export reads local files only: never the hub
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    result: dict[str, Any] = {"step": "preparing the device", "error": None, "stand_ins": [], "device": "cpu"}
    try:
        import torch

        if torch.cuda.is_available():
            result["device"] = "cuda"
        else:
            from nemo_resume.smoke import cpu_standins

            result["stand_ins"] = cpu_standins.install()
        result["step"] = "registering the Qwen2 hf-peft exporter"
        register_qwen2_peft_exporter()
        result["step"] = "exporting the adapter (llm.peft.export_lora)"
        from nemo.collections import llm

        llm.peft.export_lora(lora_checkpoint_path=ckpt, output_path=out)
        result["step"] = "done"
    except Exception as exc:  # noqa: BLE001 - the export's failure is this process's result, with its step
        result["error"] = f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
    Path(result_path).write_text(json.dumps(result))
    return 0 if result["error"] is None else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
