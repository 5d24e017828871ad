"""Time the schedule check on a 1,000,000-step horizon against stepping NeMo's scheduler naively.

    .venv/bin/python benchmarks/bench_check.py            # 7 rounds each, about 20 s with the imports
    .venv/bin/python benchmarks/bench_check.py --json

The naive baseline builds NeMo's ``CosineAnnealing`` exactly as the check does and calls
``scheduler.step()`` once per step, the way a training loop drives it (no optimizer step).
Stepping the whole million would take minutes of repeated rounds, so it is timed over
``--naive-steps`` steps (20,000 by default) and extrapolated linearly to 1,000,000; the LR
formula costs the same at every step, so the extrapolation is fair. Imports (torch and NeMo,
about 10 s here) are timed once and kept out of both.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

HORIZON = 1_000_000


def _stats(xs: list[float]) -> dict[str, float]:
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--naive-steps", type=int, default=20_000)
    p.add_argument("--groups", type=int, default=2, help="param groups (group i at lr * (i + 1))")
    p.add_argument("--naive-full", action="store_true", help="also step the whole horizon once (about 3 s) to test the extrapolation")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()

    t0 = time.perf_counter()
    import nemo.lightning.pytorch.optim.lr_scheduler  # noqa: F401  (the check imports it lazily)
    import torch  # noqa: F401

    from nemo_resume.check import check_schedule, unchecked_request
    from nemo_resume.check.cosine import build

    import_s = time.perf_counter() - t0
    mults = [float(i + 1) for i in range(1, args.groups)]
    request = unchecked_request(3e-4, 3e-5, HORIZON, 2000, 0, mults)

    check_s = []
    for _ in range(args.rounds):
        t = time.perf_counter()
        result = check_schedule(request)
        check_s.append(time.perf_counter() - t)
    assert result.ok, [c for c in result.checks if c.ok is False]

    naive_us = []
    for _ in range(args.rounds):
        sched = build(request)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t = time.perf_counter()
            for _ in range(args.naive_steps):
                sched.step()
            naive_us.append((time.perf_counter() - t) / args.naive_steps * 1e6)
    naive_s = [us * HORIZON / 1e6 for us in naive_us]
    full_s = None
    if args.naive_full:
        sched = build(request)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t = time.perf_counter()
            for _ in range(HORIZON):
                sched.step()
            full_s = time.perf_counter() - t

    out = {
        "horizon_steps": HORIZON,
        "param_groups": args.groups,
        "rounds": args.rounds,
        "import_s": import_s,
        "check_s": _stats(check_s),
        "check_probes": result.evaluated_steps,
        "naive_us_per_step": _stats(naive_us),
        "naive_measured_steps": args.naive_steps,
        "naive_extrapolated_s": _stats(naive_s),
        "naive_full_s": full_s,
        "speedup_median": statistics.median(naive_s) / statistics.median(check_s),
    }
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    c, n = out["check_s"], out["naive_extrapolated_s"]
    print(f"horizon {HORIZON:,} steps, {args.groups} param group(s), {args.rounds} rounds; imports {import_s:.1f} s (not counted)")
    print(f"check_schedule:        median {c['median'] * 1e3:8.1f} ms  (min {c['min'] * 1e3:.1f}, max {c['max'] * 1e3:.1f}); "
          f"{result.evaluated_steps} NeMo get_lr probes")
    print(f"naive scheduler.step(): median {n['median']:8.2f} s   (min {n['min']:.2f}, max {n['max']:.2f}); "
          f"{out['naive_us_per_step']['median']:.2f} us/step measured over {args.naive_steps:,} steps, extrapolated")
    if full_s is not None:
        print(f"naive, whole horizon stepped once: {full_s:.2f} s")
    print(f"speed-up (median / median): {out['speedup_median']:.0f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
