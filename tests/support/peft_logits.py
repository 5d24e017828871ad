"""NeMo's own logits of a LoRA checkpoint (its base plus its adapters), made in a child process.

Child processes because NeMo's Megatron path needs the CPU stand-ins (:mod:`nemo_resume.smoke.cpu_standins`), which
must never touch the test process, and because megatron-core's checkpoint save starts a spawn-context Manager that
re-imports ``__main__`` (this guarded module).

    python -m tests.support.peft_logits logits LORA_CKPT IDS.json RESULT.json
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

TIMEOUT_S = 300


def _child(*args: str, log: Path) -> dict[str, Any]:
    """Run this module with ``args`` (the last is the result file) and return what it wrote."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": "",
           "NEMO_HOME": str(log.parent / "nemo_home")}
    with open(log, "ab") as out:
        proc = subprocess.run([sys.executable, "-m", "tests.support.peft_logits", *args], stdout=out,
                              stderr=subprocess.STDOUT, env=env, timeout=TIMEOUT_S, check=False)
    result = Path(args[-1])
    if proc.returncode != 0 or not result.exists():
        raise RuntimeError(f"{args[0]} child exited {proc.returncode}; output in {log}")
    return json.loads(result.read_text())


def nemo_logits(ckpt: Path, ids: list[list[int]], work: Path) -> list[Any]:
    """NeMo's logits (batch x seq x vocab) of the base named in ``ckpt``'s adapter metadata plus ``ckpt``'s LoRA."""
    (work / "ids.json").write_text(json.dumps(ids))
    return _child("logits", str(ckpt), str(work / "ids.json"), str(work / "logits.json"),
                  log=work / "children.log")["logits"]


def _logits(ckpt: str, ids_file: str) -> dict[str, Any]:
    """NeMo's merge_lora loaders (``nemo/collections/llm/peft/api.py``: base restored from the adapter metadata's
    ``model_ckpt_path``, then the adapters), kept in fp32; a causal mask given explicitly (the CPU attention needs
    one, /tmp/issue23/q4_logits.py)."""
    import torch
    from nemo.collections.llm.peft import api as peft_api
    from nemo.lightning import MegatronStrategy, Trainer

    model, lora = peft_api._load_base_model_and_lora(Path(ckpt))
    model.config.bf16, model.config.params_dtype = False, torch.float32  # NeMo forces bf16 here
    trainer = Trainer(devices=1, accelerator="cpu", strategy=MegatronStrategy(ddp="pytorch", setup_optimizers=False))
    peft_api._setup_trainer_and_restore_model_and_adapter(Path(ckpt), trainer, model, lora)
    model.eval()
    ids = torch.tensor(json.loads(Path(ids_file).read_text()))
    n = ids.shape[1]
    pos = torch.arange(n).unsqueeze(0).expand(ids.shape[0], -1)
    mask = torch.triu(torch.ones(1, 1, n, n, dtype=torch.bool), diagonal=1)  # True: masked
    with torch.no_grad():
        return {"logits": model(ids, pos, attention_mask=mask).float().tolist()}


def main(argv: list[str]) -> None:
    import torch

    from nemo_resume.smoke import cpu_standins

    cpu_standins.install()
    torch.set_num_threads(1)
    what, *args, result = argv
    assert what == "logits", what
    Path(result).write_text(json.dumps(_logits(*args)))


if __name__ == "__main__":
    main(sys.argv[1:])
