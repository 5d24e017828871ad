"""The peer for the inspector: read checkpoints the way NeMo's own API does, in a cold process.

    python benchmarks/nemo_way.py PATH [--limit N]

PATH is one checkpoint (a Megatron folder with ``weights/`` and ``context/``, or a Lightning ``.ckpt``), or a
run folder: every checkpoint under ``PATH/checkpoints`` is read, as the inspector does. For each one:

- ``torch.load(weights/common.pt, weights_only=False)`` (Megatron) or ``torch.load(X.ckpt, weights_only=False)``
  (Lightning): the trainer state (step, param groups, scheduler). ``weights_only=True`` refuses these files
  (they pickle a ``PosixPath``), so NeMo-side code runs the pickle;
- ``nemo.lightning.io.load_context(<checkpoint>/context)``: NeMo's reader of the saved config, which imports
  and builds every class ``io.json`` names.

It prints one line per checkpoint (step, LR per group, scheduler min_lr / max_steps, the context's class), so
the driver can check it read what the inspector read. ``--limit N`` reads only the first N (by name).
"""

from __future__ import annotations

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


def main(argv: list[str]) -> int:
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
        if "optimizer_states" in state and state["optimizer_states"]:
            groups = state["optimizer_states"][0]["param_groups"]
        elif state.get("optimizer"):
            groups = state["optimizer"][0].get("param_groups", [])
        else:
            groups = []
        lrs = [g.get("lr") for g in groups]
        print(state_file.parent.name if state_file.name == "common.pt" else state_file.name,
              state.get("global_step"), lrs, sched.get("min_lr"), sched.get("max_steps"), type(ctx).__name__,
              flush=False)
    print(f"read {len(pairs)} checkpoint(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
