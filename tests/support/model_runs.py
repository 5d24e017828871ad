"""The shared ``--model`` run: a tiny Hugging Face Qwen2 fine-tuned with LoRA by the recipe script, resumed twice.

- the script itself (``recipes/qwen25_finetune.py --model HF_DIR --smoke``: options, plan, check, NeMo's importer
  into ``<--dir>/models/``, the CPU rehearsal of NeMo's Megatron path restoring that import), to step 8;
- a planned resume of its step-8 checkpoint to the horizon of 20 (``--lr-policy recompute``), stopped at step 14
  (NeMo's PEFT callback builds the optimizer and restores the adapter checkpoint's optimizer and scheduler in
  ``on_train_epoch_start``, after ``on_train_start``: the plan has to be applied later than that);
- a resume of that run's step-12 checkpoint to the end: the second resume of a PEFT run, which loads the base the
  adapter checkpoint names (:mod:`nemo_resume.peft_base`);
- the same first resume as NeMo runs it (the recipe's ``PeftResumePaths`` callback taken out), to its step-12
  checkpoint: what NeMo itself writes there.

About 13 s for the import and 20-25 s per run on one CPU core.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tests.support.rehearsals import Rehearsal, checkpoint_at, rehearse_recipe

__all__ = ["MODEL_FLAGS", "ModelRun", "model_run"]

#: LoRA (the recipe's default PEFT) with seed 004's adapters at half the LR: every trainable parameter is an adapter,
#: so megatron has only the 0.5x group.
MODEL_FLAGS = ["--lr", "1e-3", "--min-lr", "1e-5", "--warmup-steps", "2", "--checkpoint-every", "4",
               "--lr-mult", "*adapter*=0.5"]
FIRST_STEPS, STOP, END = 8, 14, 20


@dataclass(frozen=True)
class ModelRun:
    hf_dir: Path
    dir: Path  # --dir: the runs and models/
    first_code: int  # the script's exit status
    resumed: Rehearsal  # 8 -> 14
    resumed_again: Rehearsal  # 12 -> 20
    stock_resumed: Rehearsal  # 8 -> 12, without the recipe's PeftResumePaths

    def flags(self, name: str, *extra: str) -> list[str]:
        """The recipe flags of a run named ``name`` on this model and folder."""
        return model_flags(self.hf_dir, self.dir, name, *extra)

    @property
    def imported(self) -> Path:
        """The one import of the model under ``--dir`` (every run reuses it)."""
        (found,) = [p for p in (self.dir / "models").iterdir() if p.is_dir()]
        return found

    @property
    def final(self) -> Path:
        """The end checkpoint of the second resume (step 20)."""
        return checkpoint_at(self.resumed_again.run_dir, END)


def model_flags(hf_dir: Path, runs: Path, name: str, *extra: str) -> list[str]:
    return ["--model", str(hf_dir), *MODEL_FLAGS, "--dir", str(runs), "--name", name, *extra]


def model_run(root: Path) -> ModelRun:
    from nemo_resume.cli.recipe_cmd import run_script
    from tests.support.tiny_qwen2 import write_tiny_qwen2

    hf_dir, runs = write_tiny_qwen2(root / "tiny-qwen2"), root / "runs"
    code = run_script("finetune", [*model_flags(hf_dir, runs, "first", "--max-steps", str(FIRST_STEPS)), "--smoke"],
                      prog="tier")
    first = checkpoint_at(runs / "first", FIRST_STEPS)
    resumed = rehearse_recipe("finetune", model_flags(hf_dir, runs, "resumed", "--max-steps", str(END), "--lr-policy",
                                                      "recompute", "--resume", str(first)), stop_after_step=STOP)
    again = rehearse_recipe("finetune", model_flags(hf_dir, runs, "again", "--max-steps", str(END), "--lr-policy", "keep",
                                                    "--resume", str(checkpoint_at(resumed.run_dir, 12))))
    stock = rehearse_recipe("finetune", model_flags(hf_dir, runs, "stock", "--max-steps", str(END), "--lr-policy",
                                                    "recompute", "--resume", str(first)),
                            stop_after_step=12, edit=_without_resume_paths)
    return ModelRun(hf_dir, runs, code, resumed, again, stock)


def _without_resume_paths(recipe) -> None:
    from nemo_resume.peft_base import PeftResumePaths

    recipe.trainer.callbacks = [c for c in recipe.trainer.callbacks if c.__fn_or_cls__ is not PeftResumePaths]
