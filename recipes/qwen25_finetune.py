"""Fine-tune Qwen2.5 (0.5B-72B; LoRA, DoRA or full) with NeMo 2, resuming safely.

    python recipes/qwen25_finetune.py --size 0.5b --peft lora --resume auto --dir results --dry-run
    python recipes/qwen25_finetune.py --size 7b --data my.jsonl --lr 1e-4 --min-lr 1e-5 --max-steps 2000
    python recipes/qwen25_finetune.py --executor slurm --account A --partition P --num-nodes 2 ...

Every run goes through the same steps, in order; copy this file and change any of them:
  1. options   every schedule value explicit (defaults and their sources: docs/recipes.md)
  2. plan      which checkpoint to resume from, and the LR schedule that cannot fail on resume
  3. check     the plan stepped through NeMo's real CosineAnnealing; a failure refuses to launch
  4. recipe    NeMo's own llm.qwen25_* recipe, edited: schedule, checkpointing, exact resume path
  5. launch    NeMo-Run (torchrun locally, or Slurm), a --dry-run, or a --smoke run on CPU
"""

import sys

from nemo_resume.cli.recipe_cmd import run_script

if __name__ == "__main__":
    sys.exit(run_script("finetune", sys.argv[1:], prog="recipes/qwen25_finetune.py"))
