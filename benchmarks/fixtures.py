"""Build the benchmark checkpoints with the real libraries (NeMo 2, Lightning, megatron-core), on CPU.

    .venv/bin/python benchmarks/fixtures.py DIR        # build into DIR (about 1 minute), print the layout as JSON

What lands in ``DIR`` (each part is written by the real libraries; nothing is hand-made)::

    lightning/smoke/checkpoints/     a real ``nl.Trainer`` CPU run (nemo_resume.smoke.train): 100 steps,
                                     nl.ModelCheckpoint every step, save_top_k=-1, save_last=True:
                                     smoke--step=1.ckpt ... smoke--step=100.ckpt + smoke--step=100-last.ckpt,
                                     each with its context/ folder (io.json, model.yaml) written by NeMo
    megatron/smoke/checkpoints/      the same 101 checkpoints in NeMo's Megatron layout (weights/ + context/):
                                     megatron-core's dist_checkpointing (torch_dist) writes weights/ through
                                     NeMo's MegatronCheckpointIO, with a tiny GPTModel (2 x ~0.6 MB shards)
    large/smoke/checkpoints/smoke--step=50
                                     the step-50 checkpoint again, with a much larger GPTModel
                                     (``LARGE_GPT``: ~40 M parameters, 2 x ~240 MB shards with the Adam state)

The Megatron checkpoints come from ``tests.support.megatron_ckpt`` (its ``_main``, the body of
``write_megatron_checkpoint``), called once per checkpoint inside ONE subprocess: the public
``write_megatron_checkpoint`` starts a fresh process per checkpoint (about 12 s, nearly all of it imports),
which would make 101 checkpoints take 20 minutes; in one process each one takes about 0.2 s.
``parallel_state.destroy_model_parallel()`` between two calls lets the next one initialise it again.
The large model is obtained by updating that module's public ``GPT_CONFIG`` dict inside the subprocess
(``_build_gpt`` reads it at call time); ``megatron_ckpt.py`` itself is not changed.

The training runs and the megatron writes run in subprocesses, so the benchmark driver itself never imports
torch or NeMo.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: the smoke run: 100 steps, a checkpoint at every step, all kept, plus the -last twin
RUN_STEPS = 100
#: the checkpoint used for the one-checkpoint and memory benchmarks (mid-run: has optimizer state)
ONE_STEP = 50
#: GPT_CONFIG for the large checkpoint: Qwen-like GQA, ~40 M parameters (32768 x 512 embedding and output
#: layer dominate), so weights + Adam exp_avg + exp_avg_sq are ~480 MB in 2 shard files
LARGE_GPT = {
    "num_layers": 2,
    "hidden_size": 512,
    "num_attention_heads": 8,
    "num_query_groups": 2,
    "ffn_hidden_size": 1408,
    "vocab_size": 32768,
    "seq_length": 64,
}
#: bump when the layout changes, so a cached fixture folder is rebuilt
FIXTURE_VERSION = 1


@dataclass(frozen=True)
class Fixtures:
    root: Path
    lightning_run: Path  # run root (holds checkpoints/)
    megatron_run: Path  # run root (holds checkpoints/)
    megatron_one: Path  # one small Megatron checkpoint folder (step ONE_STEP)
    megatron_large: Path  # the same step, large model
    n_checkpoints: int  # checkpoints in each run (100 steps + the -last twin)
    build_s: dict  # seconds per build part

    def to_json(self) -> dict:
        d = asdict(self)
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in d.items()}

    @classmethod
    def from_json(cls, d: dict) -> Fixtures:
        paths = ("root", "lightning_run", "megatron_run", "megatron_one", "megatron_large")
        return cls(**{k: (Path(v) if k in paths else v) for k, v in d.items()})


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env.setdefault("CUDA_VISIBLE_DEVICES", "")
    env.setdefault("PYTHONWARNINGS", "ignore")
    return env


def _sub(args: list[str], log: Path) -> None:
    with open(log, "a") as fh:
        proc = subprocess.run([sys.executable, __file__, *args], env=_env(), cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT, check=False)
    if proc.returncode != 0:
        tail = log.read_text()[-6000:]
        raise RuntimeError(f"fixture step {args[0]} failed (exit {proc.returncode}); log {log}:\n{tail}")


def shard_sizes(checkpoint: Path) -> list[int]:
    """Sizes in bytes of the ``.distcp`` shard files of a Megatron checkpoint."""
    return sorted(p.stat().st_size for p in (checkpoint / "weights").glob("*.distcp"))


def build(root: Path, *, log=print) -> Fixtures:
    """Build every fixture under ``root`` (reused when ``root/fixtures.json`` says it is complete)."""
    root = Path(root).resolve()
    manifest = root / "fixtures.json"
    if manifest.is_file():
        d = json.loads(manifest.read_text())
        if d.get("version") == FIXTURE_VERSION:
            log(f"fixtures: reusing {root}")
            return Fixtures.from_json(d["fixtures"])
    root.mkdir(parents=True, exist_ok=True)
    build_log = root / "build.log"
    times = {}

    t = time.perf_counter()
    log(f"fixtures: real nl.Trainer CPU run, {RUN_STEPS} steps, a checkpoint every step ...")
    _sub(["_train", str(root / "lightning")], build_log)
    times["lightning_run_s"] = time.perf_counter() - t

    t = time.perf_counter()
    log("fixtures: the same checkpoints in Megatron layout (megatron-core dist_checkpointing), and one large ...")
    _sub(["_megatron", str(root)], build_log)
    times["megatron_s"] = time.perf_counter() - t

    lightning_ckpts = root / "lightning" / "smoke" / "checkpoints"
    megatron_ckpts = root / "megatron" / "smoke" / "checkpoints"
    n = len(list(lightning_ckpts.glob("*.ckpt")))
    n_meg = len([p for p in megatron_ckpts.iterdir() if (p / "weights").is_dir()])
    if n != RUN_STEPS + 1 or n_meg != n:
        raise RuntimeError(f"expected {RUN_STEPS + 1} checkpoints, got {n} Lightning and {n_meg} Megatron")
    fx = Fixtures(
        root=root,
        lightning_run=root / "lightning" / "smoke",
        megatron_run=root / "megatron" / "smoke",
        megatron_one=megatron_ckpts / f"smoke--step={ONE_STEP}",
        megatron_large=root / "large" / "smoke" / "checkpoints" / f"smoke--step={ONE_STEP}",
        n_checkpoints=n,
        build_s=times,
    )
    manifest.write_text(json.dumps({"version": FIXTURE_VERSION, "fixtures": fx.to_json()}, indent=2))
    return fx


# ------------------------------------------------------------------------------------ inside subprocesses


def _train(out: Path) -> None:
    from nemo_resume.smoke.train import SmokeConfig, train

    cfg = SmokeConfig(
        lr=1e-3,
        min_lr=1e-5,
        warmup_steps=10,
        max_steps=RUN_STEPS,
        checkpoint_every=1,
        save_top_k=-1,
        save_last=True,
        name="smoke",
    )
    result = train(cfg, out)
    if not result.ok:
        raise SystemExit(f"training failed: {result.error}")


def _megatron(root: Path) -> None:
    from megatron.core import parallel_state

    from tests.support import megatron_ckpt

    src = root / "lightning" / "smoke" / "checkpoints"
    jobs = [(ckpt, root / "megatron" / "smoke" / "checkpoints" / ckpt.name.removesuffix(".ckpt")) for ckpt in sorted(src.glob("*.ckpt"))]

    def write(ckpt: Path, out: Path) -> None:
        rc = megatron_ckpt._main([str(ckpt), str(out)])
        parallel_state.destroy_model_parallel()
        if rc:
            raise SystemExit(f"megatron_ckpt failed ({rc}) on {ckpt}")

    for ckpt, out in jobs:
        write(ckpt, out)
    megatron_ckpt.GPT_CONFIG.update(LARGE_GPT)
    write(src / f"smoke--step={ONE_STEP}.ckpt", root / "large" / "smoke" / "checkpoints" / f"smoke--step={ONE_STEP}")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "_train":
        _train(Path(sys.argv[2]))
    elif len(sys.argv) == 3 and sys.argv[1] == "_megatron":
        _megatron(Path(sys.argv[2]))
    elif len(sys.argv) == 2 and not sys.argv[1].startswith("-"):
        fx = build(Path(sys.argv[1]), log=lambda m: print(m, file=sys.stderr, flush=True))
        print(json.dumps(fx.to_json(), indent=2))
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
