"""Benchmarks of nemo-resume against the NeMo way of doing the same thing; writes a Markdown report.

    make bench     # = .venv/bin/python benchmarks/run.py --out docs/benchmarks.md (about 7 minutes)
    .venv/bin/python benchmarks/run.py         # the report in benchmarks/out/benchmarks.md (not tracked)
    .venv/bin/python benchmarks/run.py --rounds 3 --only 1,5 --fixtures /tmp/nr-bench --no-write

1. inspect one Megatron checkpoint, cold process: ``python -m nemo_resume.inspect CKPT --json`` against a cold
   process doing ``torch.load(common.pt, weights_only=False)`` + ``nemo.lightning.io.load_context(CKPT/context)``
2. inspect a run folder of 101 Megatron checkpoints (100 steps + the -last twin), cold, against the NeMo way
   over the same 101; and the inspector alone on the Lightning-format run folder they were made from
3. the schedule check of a 1,000,000-step horizon against stepping NeMo's CosineAnnealing naively
   (``benchmarks/bench_check.py``), and the cold ``scripts/check_schedule.py`` command on that horizon
4. ``recipes/qwen25_finetune.py ... --dry-run`` against ``nemo llm finetune --factory qwen25_500m --to-yaml``
5. peak RSS and wall time of the inspector on a checkpoint with ~0.6 MB shards and one with ~235 MB shards

Each benchmark runs ``--rounds`` rounds (default 5) with the two sides interleaved (A B, B A, ...); it reports
the median, min and max, and the ratio of the two sides per round (median and range). Benchmarks never fail:
a goal that is missed is reported as missed (exit code 0); exit code 1 only when a command could not run.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import fixtures as fx_mod
from _common import (
    ROOT,
    Sample,
    child_env,
    fmt_ratio,
    fmt_s,
    fmt_stat_s,
    interleaved,
    machine,
    paired_ratios,
    run_cold,
    summary,
)

from nemo_resume.cli.common import parse_args, parser, run_cli
from nemo_resume.errors import NemoResumeError

PY = sys.executable
RECIPE = ROOT / "recipes" / "qwen25_finetune.py"
NEMO_CLI = Path(sys.executable).with_name("nemo")
HORIZON = 1_000_000
#: Where the report goes unless --out says otherwise: not a tracked file (`make bench` passes docs/benchmarks.md).
DEFAULT_OUT = ROOT / "benchmarks" / "out" / "benchmarks.md"


def log(msg: str) -> None:
    print(msg, flush=True)


class BenchError(RuntimeError):
    pass


def _rel(p: Path, base: Path) -> str:
    try:
        return str(Path(p).relative_to(base))
    except ValueError:
        return str(p)


def _require(sample: Sample, what: str, ok_codes=(0,)) -> None:
    if sample.rc not in ok_codes:
        raise BenchError(f"{what} exited {sample.rc}:\n{(sample.stdout[-1500:] + sample.stderr[-3000:]).strip()}")


# ---------------------------------------------------------------------------------------------- commands


def inspector_cmd(path: Path) -> list[str]:
    return [PY, "-m", "nemo_resume.inspect", str(path), "--json"]


def nemo_way_cmd(path: Path) -> list[str]:
    return [PY, str(ROOT / "benchmarks" / "nemo_way.py"), str(path)]


def _inspector_lrs(sample: Sample) -> dict[str, list]:
    _require(sample, "the inspector", ok_codes=(0, 1))  # 1: the newest resumable checkpoint has an error
    data = json.loads(sample.stdout)
    return {Path(c["path"]).name: [round(x, 15) for x in c["lr"]] for c in data["checkpoints"]}


def _peer_lrs(sample: Sample) -> dict[str, list]:
    _require(sample, "the NeMo way")
    out = {}
    for line in sample.stdout.splitlines():
        if line.startswith("{"):
            d = json.loads(line)
            out[d["checkpoint"]] = [round(x, 15) for x in d["lr"]]
    return out


def _agreement(ours: dict, peer: dict) -> str:
    """Do both sides report the same checkpoints with the same LR per group?"""
    common = set(ours) & set(peer)
    bad = sorted(k for k in common if ours[k] != peer[k])
    missing = sorted(set(peer) - set(ours))
    if not bad and not missing:
        return f"both report the same LR per param group for all {len(common)} checkpoint(s)"
    return (f"**they disagree**: {len(bad)} LR mismatch(es) {bad[:3]}, "
            f"{len(missing)} checkpoint(s) the inspector did not list {missing[:3]}")


def _comparison(name: str, ours: list, peer: list, *, ours_label: str, peer_label: str) -> dict:
    ratios = paired_ratios(peer, ours)
    return {
        "name": name,
        "ours_label": ours_label,
        "peer_label": peer_label,
        "ours": summary(ours.walls),
        "peer": summary(peer.walls),
        "ours_rss_mb": summary(ours.rss),
        "peer_rss_mb": summary(peer.rss),
        "ratio": summary(ratios),  # peer / ours, per round
    }


# ---------------------------------------------------------------------------------------------- benchmarks


def bench_one(fx: fx_mod.Fixtures, rounds: int) -> dict:
    ckpt = fx.megatron_one
    log(f"[1] one Megatron checkpoint: {ckpt.name}")
    ours, peer = interleaved(
        rounds,
        [
            ("nemo_resume.inspect --json", lambda r: run_cold(inspector_cmd(ckpt), env=child_env())),
            ("torch.load + load_context", lambda r: run_cold(nemo_way_cmd(ckpt), env=child_env())),
        ],
        log=log,
    )
    res = _comparison("one", ours, peer, ours_label="inspector", peer_label="NeMo way")
    res["agree"] = _agreement(_inspector_lrs(ours.samples[-1]), _peer_lrs(peer.samples[-1]))
    res["goal"] = "under 1 s and at least 20x faster"
    res["met"] = res["ours"]["median"] < 1.0 and res["ratio"]["median"] >= 20
    res["checkpoint"] = str(ckpt)
    return res


def bench_run_folder(fx: fx_mod.Fixtures, rounds: int) -> dict:
    run = fx.megatron_run
    log(f"[2] run folder with {fx.n_checkpoints} Megatron checkpoints: {run}")
    ours, peer = interleaved(
        rounds,
        [
            ("nemo_resume.inspect --json", lambda r: run_cold(inspector_cmd(run), env=child_env())),
            ("torch.load + load_context x101", lambda r: run_cold(nemo_way_cmd(run), env=child_env())),
        ],
        log=log,
    )
    res = _comparison("run", ours, peer, ours_label="inspector", peer_label="NeMo way")
    ours_lrs, peer_lrs = _inspector_lrs(ours.samples[-1]), _peer_lrs(peer.samples[-1])
    if len(peer_lrs) != fx.n_checkpoints:
        raise BenchError(f"the NeMo way read {len(peer_lrs)} checkpoints, expected {fx.n_checkpoints}")
    res["agree"] = _agreement(ours_lrs, peer_lrs)
    res["n_checkpoints"] = fx.n_checkpoints
    res["goal"] = "under 3 s"
    res["met"] = res["ours"]["median"] < 3.0

    lrun = fx.lightning_run
    log(f"[2b] the Lightning-format run folder they were made from (inspector only): {lrun}")
    (lightning,) = interleaved(
        rounds, [("nemo_resume.inspect --json", lambda r: run_cold(inspector_cmd(lrun), env=child_env()))], log=log
    )
    data = json.loads(lightning.samples[-1].stdout)
    res["lightning"] = {
        "ours": summary(lightning.walls),
        "ours_rss_mb": summary(lightning.rss),
        "entries": len(data["checkpoints"]),
        "ckpt_files": sum(1 for c in data["checkpoints"] if c["format"] == "lightning-ckpt"),
    }
    return res


def bench_schedule(rounds: int) -> dict:
    log(f"[3] schedule check, {HORIZON:,}-step horizon (benchmarks/bench_check.py --rounds {rounds} --naive-full)")
    s = run_cold([PY, str(ROOT / "benchmarks" / "bench_check.py"), "--json", "--rounds", str(rounds), "--naive-full"], env=child_env())
    _require(s, "benchmarks/bench_check.py")
    inproc = json.loads(s.stdout)
    log(f"    check_schedule median {fmt_s(inproc['check_s']['median'])}, naive {fmt_s(inproc['naive_extrapolated_s']['median'])} "
        f"(extrapolated), whole horizon once {fmt_s(inproc['naive_full_s'] or 0)}")
    cli = [PY, str(ROOT / "scripts" / "check_schedule.py"), "--lr", "3e-4", "--min-lr", "3e-5", "--warmup-steps", "2000",
           "--max-steps", str(HORIZON), "--lr-mult", "2", "--json"]
    naive = [PY, str(ROOT / "benchmarks" / "nemo_way.py"), "--naive-schedule", str(HORIZON)]
    log("[3b] the same check as a cold command: scripts/check_schedule.py ... --json vs a cold naive stepping")
    cold, peer = interleaved(
        rounds,
        [
            ("scripts/check_schedule.py", lambda r: run_cold(cli, env=child_env())),
            ("naive step() x1,000,000, cold", lambda r: run_cold(naive, env=child_env())),
        ],
        log=log,
    )
    _require(cold.samples[-1], "scripts/check_schedule.py")
    _require(peer.samples[-1], "benchmarks/nemo_way.py --naive-schedule")
    ok = json.loads(cold.samples[-1].stdout).get("ok")
    naive_out = json.loads(peer.samples[-1].stdout.strip().splitlines()[-1])
    return {
        "name": "schedule",
        "in_process": inproc,
        "cold": _comparison("schedule-cold", cold, peer, ours_label="check_schedule.py", peer_label="naive, cold"),
        "cold_cmd": cli,
        "cold_ok": ok,
        "naive_steps": naive_out["steps"],
        "goal": "under 2 s",
        "cold_goal_s": 2.5,
        "met": inproc["check_s"]["median"] < 2.0,
    }


def bench_recipe(rounds: int, tmp: Path) -> dict:
    log("[4] recipe export: recipes/qwen25_finetune.py --dry-run vs nemo llm finetune --to-yaml")
    nemo_cmd_shown = "nemo llm finetune --factory qwen25_500m --to-yaml OUT/out.yaml --yes"

    def nemo_cli(r: int) -> Sample:
        d = Path(tempfile.mkdtemp(prefix=f"nemo-cli-{r}-", dir=tmp))
        s = run_cold([str(NEMO_CLI), "llm", "finetune", "--factory", "qwen25_500m", "--to-yaml", str(d / "out.yaml"), "--yes"],
                     cwd=d, env=child_env(NEMORUN_HOME=str(d / "nemorun")))
        _require(s, "nemo llm finetune --to-yaml")
        if not (d / "out.yaml").is_file():
            raise BenchError("nemo llm finetune --to-yaml wrote no out.yaml")
        return s

    def recipe(r: int) -> Sample:
        d = Path(tempfile.mkdtemp(prefix=f"recipe-{r}-", dir=tmp))
        s = run_cold([PY, str(RECIPE), "--size", "0.5b", "--peft", "lora", "--resume", "never", "--dir", str(d / "run"), "--dry-run"],
                     cwd=d, env=child_env(NEMORUN_HOME=str(d / "nemorun")))
        _require(s, "recipes/qwen25_finetune.py --dry-run")
        return s

    res = {"name": "recipe", "goal": "no slower than NeMo's CLI", "nemo_cmd": nemo_cmd_shown,
           "ours_cmd": "python recipes/qwen25_finetune.py --size 0.5b --peft lora --resume never --dir TMP --dry-run"}
    if not RECIPE.is_file():
        log(f"    SKIPPED our side: {_rel(RECIPE, ROOT)} does not exist yet; measuring NeMo's CLI alone")
        (peer,) = interleaved(rounds, [("nemo llm finetune --to-yaml", nemo_cli)], log=log)
        res.update(skipped=f"`{_rel(RECIPE, ROOT)}` does not exist yet", peer=summary(peer.walls),
                   peer_rss_mb=summary(peer.rss), met=None)
        return res
    ours, peer = interleaved(rounds, [("qwen25_finetune.py --dry-run", recipe), ("nemo llm finetune --to-yaml", nemo_cli)], log=log)
    res.update(_comparison("recipe", ours, peer, ours_label="recipe --dry-run", peer_label="nemo CLI"))
    res["goal"] = "no slower than NeMo's CLI (median within 5 %)"
    res["met"] = res["ours"]["median"] <= res["peer"]["median"] * 1.05  # within 5 %: noise on this machine
    return res


def bench_memory(fx: fx_mod.Fixtures, rounds: int) -> dict:
    small, large = fx.megatron_one, fx.megatron_large
    sizes = {k: fx_mod.shard_sizes(p) for k, p in (("small", small), ("large", large))}
    log(f"[5] inspector peak RSS: shards {[f'{b / 1e6:.1f} MB' for b in sizes['small']]} vs {[f'{b / 1e6:.0f} MB' for b in sizes['large']]}")
    s_ser, l_ser = interleaved(
        rounds,
        [
            ("inspect small (~0.6 MB shards)", lambda r: run_cold(inspector_cmd(small), env=child_env())),
            ("inspect large (~235 MB shards)", lambda r: run_cold(inspector_cmd(large), env=child_env())),
        ],
        log=log,
    )
    for ser in (s_ser, l_ser):
        c = json.loads(ser.samples[-1].stdout)["checkpoints"][0]
        if not (c["complete"] and c["has_optimizer_state"]):
            raise BenchError(f"the inspector did not read {c['path']} as complete with optimizer state")
    rss_s, rss_l = summary(s_ser.rss), summary(l_ser.rss)
    return {
        "name": "memory",
        "shard_bytes": sizes,
        "checkpoint_bytes": {k: sum(f.stat().st_size for f in (p / "weights").rglob("*") if f.is_file()) for k, p in (("small", small), ("large", large))},
        "small": {"wall": summary(s_ser.walls), "rss_mb": rss_s},
        "large": {"wall": summary(l_ser.walls), "rss_mb": rss_l},
        "rss_ratio": rss_l["median"] / rss_s["median"],
        "wall_ratio": summary(paired_ratios(l_ser, s_ser)),
        "goal": "peak RSS does not grow with shard size",
        "met": rss_l["median"] <= rss_s["median"] * 1.05,
    }


# ---------------------------------------------------------------------------------------------- the report


def _met(x) -> str:
    return {True: "yes", False: "**no**", None: "n/a"}[x]


def _range(st: dict) -> str:
    return f"{fmt_ratio(st['min'])} – {fmt_ratio(st['max'])}"


def write_report(path: Path, results: dict, mach: dict, fx: fx_mod.Fixtures, args, cmdline: str, total_s: float) -> str:
    R = results
    rounds = args.rounds
    L: list[str] = []
    add = L.append
    add("# Benchmarks")
    add("")
    add("Generated by `benchmarks/run.py` (`make bench`); do not edit by hand, run it again.")
    add("")
    add("```bash")
    add(cmdline)
    add("```")
    add("")
    add(f"Run {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}, {rounds} rounds per benchmark, "
        f"total {total_s / 60:.1f} min including building the fixtures ({sum(fx.build_s.values()):.0f} s"
        f"{', reused from a cache' if args.fixtures_reused else ''}). Times are wall-clock seconds of a **fresh process** per run "
        f"(interpreter start and imports included), median (min – max) over the rounds; a ratio is NeMo-way time / "
        f"nemo-resume time, computed per round (the two sides run back to back, alternating order) and summarised as "
        f"median (min – max).")
    add("")
    add("## Results")
    add("")
    add("| # | benchmark | nemo-resume | NeMo way | ratio | goal | met |")
    add("| --- | --- | --- | --- | --- | --- | --- |")
    if "one" in R:
        r = R["one"]
        add(f"| 1 | inspect one Megatron checkpoint (cold process) | {fmt_stat_s(r['ours'])} | {fmt_stat_s(r['peer'])} | "
            f"**{fmt_ratio(r['ratio']['median'])}** ({_range(r['ratio'])}) | {r['goal']} | {_met(r['met'])} |")
    if "run" in R:
        r = R["run"]
        add(f"| 2 | inspect a run folder of {r['n_checkpoints']} Megatron checkpoints (cold) | {fmt_stat_s(r['ours'])} | "
            f"{fmt_stat_s(r['peer'])} | **{fmt_ratio(r['ratio']['median'])}** ({_range(r['ratio'])}) | {r['goal']} | {_met(r['met'])} |")
        lr = r["lightning"]
        add(f"| 2b | inspect the Lightning-format run folder ({lr['ckpt_files']} `.ckpt`, {lr['entries']} entries) | "
            f"{fmt_stat_s(lr['ours'])} | not run | – | under 3 s | {_met(lr['ours']['median'] < 3.0)} |")
    if "schedule" in R:
        r = R["schedule"]
        ip = r["in_process"]
        add(f"| 3 | schedule check, {HORIZON:,}-step horizon (in process, imports excluded) | {fmt_stat_s(ip['check_s'])} | "
            f"{fmt_stat_s(ip['naive_extrapolated_s'])} naive `step()` | **{fmt_ratio(ip['speedup_median'])}** | "
            f"{r['goal']} | {_met(r['met'])} |")
        c = r["cold"]
        add(f"| 3b | the same as a cold command (`scripts/check_schedule.py`), imports included | {fmt_stat_s(c['ours'])} | "
            f"{fmt_stat_s(c['peer'])} naive, cold | **{fmt_ratio(c['ratio']['median'])}** ({_range(c['ratio'])}) | "
            f"under {r['cold_goal_s']:g} s | {_met(c['ours']['median'] < r['cold_goal_s'])} |")
    if "recipe" in R:
        r = R["recipe"]
        if r.get("skipped"):
            add(f"| 4 | recipe `--dry-run` vs `nemo llm finetune --to-yaml` | skipped: {r['skipped']} | "
                f"{fmt_stat_s(r['peer'])} | – | {r['goal']} | {_met(None)} |")
        else:
            add(f"| 4 | recipe `--dry-run` vs `nemo llm finetune --to-yaml` | {fmt_stat_s(r['ours'])} | {fmt_stat_s(r['peer'])} | "
                f"**{fmt_ratio(r['ratio']['median'])}** ({_range(r['ratio'])}) | {r['goal']} | {_met(r['met'])} |")
    if "memory" in R:
        r = R["memory"]
        add(f"| 5 | inspector peak RSS, ~0.6 MB vs ~{r['shard_bytes']['large'][-1] / 1e6:.0f} MB shards | "
            f"{r['small']['rss_mb']['median']:.0f} MiB vs {r['large']['rss_mb']['median']:.0f} MiB "
            f"({fmt_s(r['small']['wall']['median'])} vs {fmt_s(r['large']['wall']['median'])}) | – | "
            f"RSS x{r['rss_ratio']:.2f} for x{r['checkpoint_bytes']['large'] / r['checkpoint_bytes']['small']:.0f} the bytes | "
            f"{r['goal']} | {_met(r['met'])} |")
    for name, err in R.get("errors", {}).items():
        add(f"| – | {name} | **could not run**: {err.splitlines()[0][:200]} | | | | |")
    add("")
    notes = []
    if "schedule" in R:
        notes.append("Row 3's ratio is median over median (`bench_check.py` runs its two sides one after the other, "
                     "not interleaved).")
    if "memory" in R:
        notes.append("Row 5 compares the inspector with itself on two checkpoints that differ only in model size.")
    if notes:
        add(" ".join(notes))
        add("")

    # ---------------------------------------------------------------- details
    add("## What each benchmark runs")
    add("")
    add("Fixtures are built once per run by `benchmarks/fixtures.py`, with the real libraries (see its docstring): a real "
        "`nl.Trainer` CPU run of `nemo_resume.smoke` (100 steps, `nl.ModelCheckpoint` every step, `save_top_k=-1`, "
        "`save_last=True`), and the same 101 checkpoints written in NeMo's Megatron layout (`weights/` by megatron-core's "
        "`dist_checkpointing` through NeMo's `MegatronCheckpointIO`, `context/` by NeMo's `io_dump`) with "
        "`tests.support.megatron_ckpt` "
        f"(built in {fx.build_s.get('lightning_run_s', 0):.0f} s + {fx.build_s.get('megatron_s', 0):.0f} s"
        f"{', reused from a cache' if args.fixtures_reused else ''}).")
    add("")
    if "one" in R:
        r = R["one"]
        add("**1. One checkpoint.** "
            f"`python -m nemo_resume.inspect {_rel(Path(r['checkpoint']), fx.root)} --json` against "
            f"`python benchmarks/nemo_way.py {_rel(Path(r['checkpoint']), fx.root)}`: a cold process that does "
            "`torch.load(weights/common.pt, weights_only=False)` and `nemo.lightning.io.load_context(context/)` (it works "
            "on this checkpoint: it rebuilds the `TrainerContext`) and prints step, LR per group, `min_lr`, `max_steps`. "
            f"Checked: {r['agree']}. Peak RSS: inspector {r['ours_rss_mb']['median']:.0f} MiB, "
            f"NeMo way {r['peer_rss_mb']['median']:.0f} MiB.")
        add("")
    if "run" in R:
        r = R["run"]
        add(f"**2. A run folder.** The same two programs on `megatron/smoke` (its `checkpoints/` holds {r['n_checkpoints']} "
            "checkpoints: steps 1-100 and the `-last` twin); the NeMo way reads all of them, no subset, no extrapolation. "
            f"Checked: {r['agree']}. Peak RSS: inspector {r['ours_rss_mb']['median']:.0f} MiB, NeMo way "
            f"{r['peer_rss_mb']['median']:.0f} MiB. Row 2b is the Lightning-format run the Megatron checkpoints were made "
            "from, as NeMo's `ModelCheckpoint` leaves it on a plain Lightning strategy (the `.ckpt` files plus context-only "
            f"folders, {r['lightning']['entries']} entries the inspector reports); only the inspector was timed on it.")
        add("")
    if "schedule" in R:
        r = R["schedule"]
        ip = r["in_process"]
        add(f"**3. Schedule check** (`benchmarks/bench_check.py --json --rounds {rounds} --naive-full`, its own measurement; "
            "the method is in docs/check.md). `check_schedule` builds NeMo's real `CosineAnnealingScheduler` and probes "
            f"`get_lr` at {ip['check_probes']:,} steps; the peer calls `scheduler.step()` once per step, timed over "
            f"{ip['naive_measured_steps']:,} steps ({ip['naive_us_per_step']['median']:.2f} µs/step) and extrapolated to "
            f"{HORIZON:,}; stepping the whole horizon once took {fmt_s(ip['naive_full_s'] or 0)}, which checks the "
            f"extrapolation. {ip['param_groups']} param groups. The imports (torch and NeMo's scheduler, "
            f"{fmt_s(ip['import_s'])} once) are outside both figures, so row 3 is the goal's figure; row 3b is what a user "
            f"waits for the command `{' '.join(['scripts/check_schedule.py'] + [shlex.quote(a) for a in r['cold_cmd'][2:]])}` "
            f"(it answered ok={r['cold_ok']}) against `benchmarks/nemo_way.py --naive-schedule {HORIZON}`: a cold process "
            f"that builds the same NeMo scheduler the usual way and steps it {r['naive_steps']:,} times. Most of the "
            "command's time is importing torch (about 1.5 s, plus 0.7 s for `torch._dynamo`, which torch imports on an "
            "optimizer's first `add_param_group`): it builds NeMo's `CosineAnnealing` from NeMo's own file without "
            "importing `nemo.core` (`nemo_resume/check/nemo_cosine.py`; before that it took 9.7 s), while the naive peer "
            "pays for the full NeMo import and the stepping.")
        add("")
    if "recipe" in R:
        r = R["recipe"]
        add(f"**4. Recipe export.** NeMo's side: `{r['nemo_cmd']}` with `NEMORUN_HOME` in a fresh temporary folder "
            "each round (it must write `out.yaml`). Our side: "
            + (f"`{r['ours_cmd']}`, which does more than the export: it plans the resume, runs the schedule check "
               "through NeMo's real scheduler (the tables it prints), builds and edits NeMo's own `llm.qwen25_500m` "
               "finetune recipe and prints NeMo-Run's dry-run launch (`run.run(..., dryrun=True)`). Both import "
               "`nemo.collections.llm` and `nemo_run`, which is most of either figure." if not r.get("skipped") else
               f"`{r['ours_cmd']}` was **not run**: {r['skipped']}; run `make bench` again once it exists."))
        add("")
    if "memory" in R:
        r = R["memory"]
        sb = r["shard_bytes"]
        add(f"**5. Memory.** `python -m nemo_resume.inspect CKPT --json` on the step-50 checkpoint with the tiny GPT "
            f"(shards {', '.join(f'{b / 1e6:.2f} MB' for b in sb['small'])}; weights/ {r['checkpoint_bytes']['small'] / 1e6:.1f} MB) "
            f"and the same step with `LARGE_GPT` from `benchmarks/fixtures.py` (~40 M parameters; shards "
            f"{', '.join(f'{b / 1e6:.0f} MB' for b in sb['large'])}; weights/ {r['checkpoint_bytes']['large'] / 1e6:.0f} MB, "
            f"with the Adam state). Peak RSS is `ru_maxrss` of that child from `os.wait4`. "
            f"Small: {r['small']['rss_mb']['median']:.1f} MiB ({r['small']['rss_mb']['min']:.1f} – {r['small']['rss_mb']['max']:.1f}), "
            f"{fmt_stat_s(r['small']['wall'])}; large: {r['large']['rss_mb']['median']:.1f} MiB "
            f"({r['large']['rss_mb']['min']:.1f} – {r['large']['rss_mb']['max']:.1f}), {fmt_stat_s(r['large']['wall'])}; "
            f"wall large/small per round {fmt_ratio(r['wall_ratio']['median'])} ({_range(r['wall_ratio'])}). The inspector reads "
            "`common.pt`, `.metadata` and `metadata.json` and only `stat`s the shards (to find truncated ones), so neither "
            "figure depends on the shard size.")
        add("")

    # ---------------------------------------------------------------- machine
    m = mach
    add("## Machine")
    add("")
    add(f"- CPU: {m['cpu_model']}, {m['cores']} cores ({m['cores_usable']} usable by this process)")
    add(f"- memory: {m['memory_gib']:.0f} GiB; {m['os']}")
    add(f"- Python: {m['python']}")
    add("- packages: " + ", ".join(f"{k} {v}" for k, v in m["packages"].items()))
    add(f"- nemo-resume commit: {m['git']}")
    loads = R.get("loadavg", {})
    add("- load average (1, 5, 15 min) at the start of each part: "
        + "; ".join(f"{k} {v[0]:.2f}, {v[1]:.2f}, {v[2]:.2f}" for k, v in loads.items()))
    add("")
    add("The machine is **shared**: other agents run test suites on the same 2 cores, so absolute times move by tens of "
        "percent from one run to the next (see the min – max ranges and the load averages). The ratios are the figures to "
        "read: both sides of each comparison ran back to back in the same round. The machine was not idle during this run "
        "(nothing can keep the other jobs off it); the load averages above show how busy it was.")
    add("")
    add("## Caveats")
    add("")
    add("- \"Cold\" means a fresh Python process each time, not a cold disk cache: the fixture files and the installed "
        "packages are in the page cache (the fixtures were just written; no run is discarded as a warm-up, the median "
        "absorbs a slow first round and the min – max range shows it).")
    add("- The NeMo-way figures are a floor for a real run: this checkpoint's `context/io.json` names the small "
        "`nemo_resume.smoke` model, so `load_context` imports torch, Lightning and `nemo.lightning` only. A Qwen2.5 "
        "checkpoint's context names `nemo.collections.llm` classes, whose import alone takes 20-30 s on these machines, "
        "and `load_context` fails outright where one of them is not importable (a login node without NeMo's LLM "
        "dependencies, another NeMo version).")
    add("- The Megatron fixtures use megatron-core's non-distributed optimizer (the distributed one needs CUDA); with the "
        "distributed optimizer the param groups sit in a shard, which the inspector does not read either (it falls back to "
        "the scheduler's `_last_lr`).")
    add("- Row 3 excludes imports on both sides (as `bench_check.py` measures it); row 3b is the cold command. The "
        "figures in docs/check.md (13.7 ms vs 2.52 s, 184x) were measured earlier by the same script.")
    add("")
    add("## Raw samples (seconds, in round order)")
    add("")
    for key in ("one", "run", "recipe"):
        r = R.get(key)
        if not r:
            continue
        for side in ("ours", "peer"):
            if side in r:
                add(f"- {key} / {r.get(side + '_label', side) if side + '_label' in r else side}: "
                    + ", ".join(f"{x:.3f}" for x in r[side]["values"]))
    if "run" in R:
        add("- run / inspector on the Lightning run: " + ", ".join(f"{x:.3f}" for x in R["run"]["lightning"]["ours"]["values"]))
    if "schedule" in R:
        add("- schedule / cold command: " + ", ".join(f"{x:.3f}" for x in R["schedule"]["cold"]["ours"]["values"]))
        add("- schedule / naive stepping, cold: " + ", ".join(f"{x:.3f}" for x in R["schedule"]["cold"]["peer"]["values"]))
    if "memory" in R:
        for k in ("small", "large"):
            add(f"- memory / {k}: wall " + ", ".join(f"{x:.3f}" for x in R["memory"][k]["wall"]["values"])
                + "; RSS MiB " + ", ".join(f"{x:.1f}" for x in R["memory"][k]["rss_mb"]["values"]))
    add("")
    text = "\n".join(L)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return text


# ---------------------------------------------------------------------------------------------- main


def main(argv=None) -> int:
    return run_cli("benchmarks/run.py", lambda: _main(argv))


def _main(argv) -> int:
    p = parser("benchmarks/run.py", __doc__.splitlines()[0], "\n".join(__doc__.splitlines()[2:]))
    p.add_argument("--rounds", type=int, default=5, help="rounds per benchmark (default 5)")
    p.add_argument("--only", default="1,2,3,4,5", help="comma-separated benchmarks to run (default all: 1,2,3,4,5)")
    p.add_argument("--fixtures", type=Path, default=None,
                   help="build the fixtures here and keep them (reused by the next run); default: a temporary folder, removed")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT,
                   help=f"the report (default {DEFAULT_OUT.relative_to(ROOT)}; make bench: docs/benchmarks.md)")
    p.add_argument("--no-write", action="store_true", help="print the report instead of writing it")
    p.add_argument("--json", type=Path, default=None, help="also write every figure as JSON here")
    args = parse_args(p, argv)
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    if args.rounds < 1 or not only <= {"1", "2", "3", "4", "5"}:
        raise NemoResumeError(f"--rounds {args.rounds} --only {args.only}: --rounds must be >= 1 and --only a subset of 1,2,3,4,5")

    argv_shown = sys.argv[1:] if argv is None else list(argv)
    cmdline = " ".join([".venv/bin/python benchmarks/run.py"] + [shlex.quote(a) for a in argv_shown])
    if os.environ.get("MAKELEVEL"):  # run by `make bench`
        cmdline = "make bench   # = " + cmdline
    t_start = time.perf_counter()
    mach = machine()
    log(f"{mach['cpu_model']}, {mach['cores']} cores, load {mach['loadavg_start']}")

    tmp = Path(tempfile.mkdtemp(prefix="nemo-resume-bench-"))
    fx_root = args.fixtures if args.fixtures is not None else tmp / "fixtures"
    args.fixtures_reused = (fx_root / "fixtures.json").is_file()
    results: dict = {"loadavg": {"start": os.getloadavg()}, "errors": {}}
    rc = 0
    try:
        fx = fx_mod.build(fx_root, log=log)
        log(f"fixtures ready in {fx.root} (built in {sum(fx.build_s.values()):.0f} s)")
        plan = [
            ("1", "one", "1 inspect one checkpoint", lambda: bench_one(fx, args.rounds)),
            ("2", "run", "2 inspect a run folder", lambda: bench_run_folder(fx, args.rounds)),
            ("3", "schedule", "3 schedule check", lambda: bench_schedule(args.rounds)),
            ("4", "recipe", "4 recipe export", lambda: bench_recipe(args.rounds, tmp)),
            ("5", "memory", "5 inspector memory", lambda: bench_memory(fx, args.rounds)),
        ]
        for num, key, title, fn in plan:
            if num not in only:
                continue
            results["loadavg"][f"[{num}]"] = os.getloadavg()
            try:
                results[key] = fn()
            except (BenchError, OSError, ValueError, KeyError) as exc:
                log(f"    ERROR in benchmark {num}: {exc}")
                results["errors"][title] = f"{type(exc).__name__}: {exc}"
                rc = 1
        results["loadavg"]["end"] = os.getloadavg()
        total = time.perf_counter() - t_start
        text = write_report(None if args.no_write else args.out, results, mach, fx, args, cmdline, total)
        if args.no_write:
            print(text)
        else:
            log(f"wrote {args.out}")
        if args.json:
            args.json.write_text(json.dumps({"machine": mach, "fixtures": fx.to_json(), "results": results,
                                             "total_s": total, "command": cmdline}, indent=2, default=str))
        # the results table, on the terminal too
        lines = text.splitlines()
        start = lines.index("## Results")
        end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("## "))
        print("\n".join(lines[start:end]))
        print(f"total {total:.0f} s")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
