"""The peer for the inspector: read checkpoints the way NeMo's own API does, in a cold process.

    python benchmarks/nemo_way.py PATH [--limit N]

PATH is one checkpoint (a Megatron folder with ``weights/`` and ``context/``, or a Lightning ``.ckpt``), or a
run folder: every checkpoint under ``PATH/checkpoints`` is read, as the inspector does. For each one:

- ``torch.load(weights/common.pt, weights_only=False)`` (Megatron) or ``torch.load(X.ckpt, weights_only=False)``
  (Lightning): the trainer state (step, param groups, scheduler). ``weights_only=True`` refuses these files
  (they pickle a ``PosixPath``), so NeMo-side code runs the pickle;
- ``nemo.lightning.io.load_context(<checkpoint>/context)``: NeMo's reader of the saved config, which imports
  and builds every class ``io.json`` names.

It prints one JSON line per checkpoint (step, LR per group, scheduler min_lr / max_steps, the context's class), so
the driver can check it read what the inspector read. ``--limit N`` reads only the first N (by name).

    python benchmarks/nemo_way.py --naive-schedule HORIZON

is the cold peer of ``scripts/check_schedule.py``: it builds NeMo's ``CosineAnnealingScheduler`` for the schedule
the benchmark checks (lr 3e-4 and a second group at 2x, min_lr 3e-5, warmup 2000, ``max_steps = HORIZON``) on a
throw-away SGD optimizer and calls ``scheduler.step()`` HORIZON times, as a training loop would, stopping at the
first exception NeMo raises; it prints the step reached and the final LRs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _checkpoints(path: Path) -> list[tuple[Path, Path]]:
    """(state file, context dir) pairs."""
    if path.suffix == ".ckpt":
        return [(path, path.with_suffix("") / "context")]
    if (path / "weights").is_dir():
        return [(path / "weights" / "common.pt", path / "context")]
    ckpts = path / "checkpoints" if (path / "checkpoints").is_dir() else path
    out = []
    for p in sorted(ckpts.iterdir()):
        if p.suffix == ".ckpt":
            out.append((p, p.with_suffix("") / "context"))
        elif (p / "weights").is_dir():
            out.append((p / "weights" / "common.pt", p / "context"))
    return out


def naive_schedule(horizon: int) -> int:
    import warnings

    import torch
    from nemo.lightning.pytorch.optim.lr_scheduler import CosineAnnealingScheduler

    lrs = [3e-4, 6e-4]
    module = CosineAnnealingScheduler(max_steps=horizon, warmup_steps=2000, constant_steps=0, min_lr=3e-5)
    params = [torch.nn.Parameter(torch.zeros(1)) for _ in lrs]
    optimizer = torch.optim.SGD([{"params": [p], "lr": lr} for p, lr in zip(params, lrs)], lr=lrs[0])
    step, error = 0, None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sched = module.scheduler(model=None, optimizer=optimizer)["lr_scheduler"]["scheduler"]
        try:
            for step in range(1, horizon + 1):
                sched.step()
        except Exception as exc:  # noqa: BLE001  NeMo's ValueError / AssertionError: where a training loop would die
            error = f"{type(exc).__name__}: {exc}"
    print(json.dumps({"steps": step, "error": error, "lr": [g["lr"] for g in optimizer.param_groups]}))
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["--naive-schedule"]:
        return naive_schedule(int(argv[1]))
    path = Path(argv[0])
    limit = int(argv[argv.index("--limit") + 1]) if "--limit" in argv else None
    import torch
    from nemo.lightning.io import load_context

    pairs = _checkpoints(path)
    if limit is not None:
        pairs = pairs[:limit]
    for state_file, context in pairs:
        state = torch.load(state_file, map_location="cpu", weights_only=False)
        ctx = load_context(context)
        sched = (state.get("lr_schedulers") or [{}])[0]
        if state.get("optimizer_states"):
            groups = state["optimizer_states"][0]["param_groups"]
        elif state.get("optimizer"):
            groups = state["optimizer"][0].get("param_groups", [])
        else:
            groups = []
        name = state_file.parent.parent.name if state_file.name == "common.pt" else state_file.name
        print(json.dumps({
            "checkpoint": name,
            "step": state.get("global_step"),
            "lr": [g.get("lr") for g in groups],
            "min_lr": sched.get("min_lr"),
            "max_steps": sched.get("max_steps"),
            "context": type(ctx).__name__,
        }))
    print(f"read {len(pairs)} checkpoint(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
