"""The run folders the docs name, made with the fast Lightning stand-in (``nemo_resume.smoke.train``).

The docs treat ``results/qwen25_pretrain`` (the incident) and ``results/run`` (a finished 300-step run)
as folders a cluster run left behind; they only inspect, plan and check them. The sandbox of
``tests.support.doc_commands`` makes them in seconds with NeMo's real scheduler, ``ModelCheckpoint``,
``NeMoLogger`` and Lightning's restore on a 2-layer model, named as the recipe names its runs.
(``recipes/... --smoke`` rehearses on NeMo's Megatron path: see docs/smoke.md.)

    python -m tests.support.lightning_runs incident|finished DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

#: name -> (SmokeConfig fields, the error the run must end with or None)
RUNS = {
    # lr 1e-5 under the pretrain recipe's min_lr 3e-5: saves at step 499, NeMo raises at step 501
    "incident": (dict(name="qwen25_pretrain", lr=1e-5, min_lr=3e-5, warmup_steps=500, max_steps=1000,
                      checkpoint_every=499, save_optim_on_train_end=True), "ValueError"),
    # finished at its min_lr 1e-4 (docs/plan.md's "extend a finished run")
    "finished": (dict(name="run", lr=1e-3, min_lr=1e-4, warmup_steps=50, max_steps=300, checkpoint_every=100,
                      save_optim_on_train_end=True), None),
}


def main(argv: list[str]) -> int:
    from nemo_resume.smoke.train import SmokeConfig, train

    fields, error = RUNS[argv[0]]
    result = train(SmokeConfig(**fields), Path(argv[1]))
    got = result.error.split(":")[0] if result.error else None
    if got != error:
        print(f"{argv[0]}: expected {error}, got {result.error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
