"""Leave out one CPU stand-in at a time and record what breaks: the evidence that each is needed.

    python -m tests.support.ablate_standins OUT_DIR [ID ...]   # all of them: about 8 minutes on 2 cores

Every run is a recipe rehearsal (``tests.support.rehearsals``) with ``NEMO_RESUME_STANDINS_SKIP=<id>``:
a 12-step distributed-optimizer run (fine-tuning with LoRA for S16), or a resume of its step-6 checkpoint
(on two ranks for S5, the fully parallel load). A stand-in that breaks nothing loudly is judged by the resumed run's losses
against the uninterrupted run's (S15: the shared Adam step; H1: the data replayed from sample 0).
Prints a Markdown table (docs/smoke.md keeps the last one).
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from nemo_resume.smoke.cpu_standins import SKIP_ENV, STAND_INS
from tests.support.rehearsals import checkpoint_at, rehearse_recipe

FLAGS = ["--lr", "1e-3", "--min-lr", "1e-4", "--warmup-steps", "2", "--max-steps", "12", "--checkpoint-every", "6"]
#: the stand-ins only a resume reaches (and on how many ranks)
RESUME = {"S5": 2, "S10": 1, "S13": 1, "S14": 1, "S15": 1, "H1": 1}
#: the stand-ins only fine-tuning with the recipe's LoRA reaches
FINETUNE = {"S16"}


def _first_error(result) -> str:
    if result.error is None:
        return ""
    text = Path(result.output).read_text(errors="replace") if result.output else ""
    frames = [f for f in re.findall(r'File "[^"]*site-packages/((?:nemo|megatron)/[^"]+)", line (\d+)', text)
              if f[0] != "nemo/utils/import_utils.py"]  # the lazy-import shim, not the caller
    where = f" at {frames[-1][0]}:{frames[-1][1]}" if frames else ""
    return f"{result.error.splitlines()[0][:160]}{where}"


def main(out: Path, only: tuple[str, ...] = ()) -> int:
    base = rehearse_recipe("pretrain", [*FLAGS, "--dir", str(out / "base")], dist_opt=True)
    assert base.result.error is None, base.why()
    ckpt = checkpoint_at(base.run_dir, 6)
    rows = ["| id | run | without it |", "|---|---|---|"]
    for stand_in in (s for s in STAND_INS if not only or s.id in only):
        os.environ[SKIP_ENV] = stand_in.id
        devices = RESUME.get(stand_in.id)
        argv = [*FLAGS, "--dir", str(out / stand_in.id)] + (["--resume", str(ckpt)] if devices else [])
        task = "finetune" if stand_in.id in FINETUNE else "pretrain"
        run = rehearse_recipe(task, argv, devices=devices or 1, dist_opt=True)
        what = f"resume on {devices} rank(s)" if devices else f"train ({task})"
        if run.result.error is not None:
            seen = f"fails: {_first_error(run.result)}"
        else:
            differ = [s for s, loss in run.result.losses.items() if base.result.losses.get(s) != loss]
            seen = (f"runs, but the losses differ from the uninterrupted run's from step {min(differ)} on"
                    if differ else "runs, nothing differs (not needed?)")
        rows.append(f"| {stand_in.id} | {what} | {seen.replace('|', '/')} |")
        print(rows[-1], flush=True)
    os.environ.pop(SKIP_ENV, None)
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]).resolve(), tuple(sys.argv[2:])))
