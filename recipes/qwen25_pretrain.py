"""Continued pre-training of Qwen2.5 (0.5B-72B) with NeMo 2, resuming safely.

    python recipes/qwen25_pretrain.py --size 7b --lr 1e-5 --dry-run       # min_lr defaults to 0.1 x lr, said out loud
    python recipes/qwen25_pretrain.py --size 0.5b --data /data/my_text_document --max-steps 10000

The same five steps as recipes/qwen25_finetune.py: options, plan, check, recipe, launch.
"""

import sys

from nemo_resume.cli.recipe_cmd import run_script

if __name__ == "__main__":
    sys.exit(run_script("pretrain", sys.argv[1:], prog="recipes/qwen25_pretrain.py"))
