"""The process a CPU rehearsal runs in: stand-ins installed, then the recipe built and called as NeMo-Run would.

``python -m nemo_resume.smoke.megatron_child SPEC.json``. The spec (written by
:mod:`nemo_resume.smoke.megatron_run`) holds the rehearsal recipe serialized with NeMo-Run's own
``ZlibJSONSerializer`` (what NeMo-Run ships to a remote job), where to write the per-step LR log and the
result, and an optional graceful stop. With ``devices > 1`` Lightning's launcher starts the other ranks
by running this same command again. Only this process and its ranks see the stand-ins.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any

import lightning.pytorch as pl

__all__ = ["LiveLRLog", "main"]


def _write(path: Path, row: dict[str, Any]) -> None:
    with open(path, "a") as fh:
        fh.write(json.dumps(row) + "\n")


class LiveLRLog(pl.Callback):
    """Rank 0 appends, per step, the LR of every live megatron param group and the loss.

    The LR is read at the start of the step from ``trainer.optimizers[0].param_groups`` (NeMo's
    ``McoreOpt`` over megatron-core's optimizer): the LR the optimizer step at that ``global_step`` uses.
    (With PEFT, NeMo builds the optimizer only in ``on_train_epoch_start``: nothing is read earlier.)
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        if trainer.global_rank == 0:
            _write(self.path, {"step": int(trainer.global_step),
                               "lrs": [float(g["lr"]) for g in trainer.optimizers[0].param_groups]})

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if trainer.global_rank == 0 and loss is not None:
            _write(self.path, {"step": int(trainer.global_step) - 1, "loss": float(loss.detach().float().mean())})


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[0]).read_text())
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

    from nemo_resume.smoke import cpu_standins

    applied = cpu_standins.install()

    import fiddle as fdl
    import torch
    from nemo.collections.common.tokenizers.null_tokenizer import NullTokenizer
    from nemo.lightning import io
    from nemo.utils.app_state import AppState
    from nemo_run.core.serialization.zlib_json import ZlibJSONSerializer

    from nemo_resume.smoke.train import StopAfterStep

    torch.set_num_threads(1)
    io.track_io(NullTokenizer)  # so context/io.json can hold the rehearsal's tokenizer
    call = fdl.build(ZlibJSONSerializer().deserialize(spec["recipe"]))
    trainer = call.keywords["trainer"]
    # instrumentation joins after the build, so it stays out of context/io.json
    trainer.callbacks.append(LiveLRLog(Path(spec["lr_log"])))
    if spec.get("stop_after_step") is not None:
        trainer.callbacks.append(StopAfterStep(spec["stop_after_step"]))
    error = None
    try:
        call()
    except Exception as e:  # the run's failure is the rehearsal's result
        error = f"{type(e).__name__}: {e}"
        traceback.print_exc()
    if trainer.global_rank == 0:
        ckpt, log_dir = trainer.checkpoint_callback, AppState().log_dir  # trainer.log_dir is a collective
        Path(spec["result"]).write_text(json.dumps({
            "error": error,
            "final_step": int(trainer.global_step),
            "checkpoint_dir": str(ckpt.dirpath) if ckpt is not None and ckpt.dirpath else None,
            "log_dir": str(log_dir) if log_dir else None,
            "resumed_from": str(trainer.ckpt_path) if trainer.ckpt_path else None,
            "stand_ins": applied,
        }))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
