"""The child process of :func:`nemo_resume.hf.import_model.import_model`: NeMo's Qwen2 importer on one folder.

    python -m nemo_resume.hf.import_child HF_DIR OUT_DIR

Separate from the caller because NeMo's importer sets up a Megatron process group and, without a GPU, needs the
project's CPU stand-ins (:mod:`nemo_resume.smoke.cpu_standins`), which must not touch the caller's torch; and
because megatron-core's checkpoint save starts a spawn-context ``multiprocessing.Manager``, which re-imports
``__main__`` (this guarded module).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any


def local_spec_importer() -> Any:
    """NeMo's ``HFQwen2Importer``, also copying the RMSNorm weights where the model has megatron's local layer spec.

    NeMo 2.7.3 maps Hugging Face's ``input_layernorm``/``post_attention_layernorm`` only to Transformer Engine's
    fused names (``linear_qkv.layer_norm_weight``, ``linear_fc1.layer_norm_weight``, ``qwen2.py:242-250``); on the
    local spec (no Transformer Engine: CPU, and any machine without it) they match nothing, NeMo only warns, and the
    norms stay at their init of 1.0. Measured on a tiny model with random norms: logits 0.39 off Hugging Face's with
    NeMo's importer, 1.8e-7 with this one.
    """
    import torch
    from nemo.collections.llm.gpt.model.qwen2 import HFQwen2Importer

    class LocalSpecQwen2Importer(HFQwen2Importer):
        def convert_state(self, source: Any, target: Any) -> Any:
            out = super().convert_state(source, target)
            params = dict(target.named_parameters())
            for i, layer in enumerate(source.model.layers):
                for hf_name, local_name in (("input_layernorm", "input_layernorm"),
                                            ("post_attention_layernorm", "pre_mlp_layernorm")):
                    key = next((k for k in params if k.endswith(f"decoder.layers.{i}.{local_name}.weight")), None)
                    if key is not None:  # None: Transformer Engine's spec, which NeMo's mapping fills
                        with torch.no_grad():
                            params[key].copy_(getattr(layer, hf_name).weight)
            return out

        def save_hf_tokenizer_assets(self, tokenizer_name_or_path: Any, save_path: Any = None) -> str:
            """NeMo's, without remote code (it passes ``trust_remote_code=True``) and in a folder of this process's own
            (NeMo's default, ``/tmp/nemo_tokenizer``, is shared by every import on the machine)."""
            from transformers import AutoTokenizer

            save_path = save_path or tempfile.mkdtemp(prefix="nemo-resume-tokenizer-")
            AutoTokenizer.from_pretrained(tokenizer_name_or_path, trust_remote_code=False).save_pretrained(save_path)
            return str(save_path)

    return LocalSpecQwen2Importer


def main(hf_dir: str, out_dir: str) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local folder: never the hub
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch

    if not torch.cuda.is_available():
        from nemo_resume.smoke import cpu_standins

        cpu_standins.install()
    local_spec_importer()(str(Path(hf_dir).resolve()))(output_path=Path(out_dir), overwrite=False,
                                                        trust_remote_code=False)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
