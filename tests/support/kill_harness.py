"""Kill real CPU training runs with SIGKILL at random moments, mid-save included, and judge what is left.

Two writers, each the real library code, save a checkpoint after every step:

- ``lightning``: :func:`nemo_resume.smoke.train.train`, a real ``nl.Trainer`` on CPU whose ``nl.ModelCheckpoint``
  writes Lightning ``.ckpt`` files plus ``context/`` (``save_top_k`` and ``save_last`` vary per trial).
- ``megatron``: megatron-core's ``dist_checkpointing.save`` (through NeMo's ``MegatronCheckpointIO``, as
  :mod:`tests.support.megatron_ckpt` calls it), in a loop over the steps of a real smoke run, wrapped
  in ``nl.ModelCheckpoint``'s protocol: the ``-unfinished`` marker around each save, top-k removal under a
  marker, and the ``-last`` symlink that ``save_last="link"`` keeps. MegatronStrategy cannot train on CPU,
  so this is the writer without the training.

A trial starts one writer, then SIGKILLs its process group either at a uniformly random moment of the run
(``random``) or a few milliseconds after the n-th ``-unfinished`` marker appeared (``in-save``). It then
judges the remains as a user would see them:

1. ``nemo-resume inspect RUN --json`` never reports a checkpoint as complete that is not (ground truth: the
   ``.ckpt`` loads with ``torch.load`` and has no marker; for Megatron, the writer's journal), nor one with
   a marker; its newest resumable checkpoint is the newest one that truly is;
2. ``nemo-resume plan RUN --resume auto`` (an extended schedule) picks that same checkpoint, or starts
   fresh (exit 0) when nothing was saved and refuses (exit 1) when only partial checkpoints are left;
3. neither command created, removed or changed a file (:func:`tree_manifest` before and after);
4. the planned resume works: for Lightning a real resumed run (``ResumeScheduleCallback`` when the plan has
   a target) reaches the requested ``max_steps``; for Megatron, megatron-core's ``dist_checkpointing.load``
   reads the planned checkpoint back at the planned step.

Importing NeMo costs about 10 s here, so a :class:`Zygote` subprocess imports it once and forks one child
per run; the harness kills the child's process group (the child and anything it spawned) by its id.

Full run (prints the seed and one row per trial; ``--json`` keeps the rows)::

    python -m tests.support.kill_harness --trials 36 --seed 7 --workdir /tmp/kills --json kills.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import select
import shutil
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nemo_resume.constants import STEP_IN_NAME_RE, UNFINISHED_SUFFIX
from tests.support.fuzz import call_cli, tree_manifest

__all__ = ["KillTrial", "TrialResult", "Zygote", "make_trial", "run_trial", "run_trials", "start_harness", "summarize"]

#: The smoke run every trial starts from: a checkpoint after every step, warmup then cosine.
RUN_CONFIG = dict(lr=1e-3, min_lr=1e-5, warmup_steps=3, max_steps=8, checkpoint_every=1, name="smoke")
#: How many steps the planned resume asks for beyond the killed run's ``max_steps``; an extended
#: schedule makes the planner write a target, so the resume goes through ``ResumeScheduleCallback``.
EXTRA_STEPS = 4
#: The recipes' Megatron folder name (``{model_name}--{val_loss:.2f}-{step}-{consumed_samples}``).
MEGATRON_NAME = "model_name=0--val_loss=0.00-step={step}-consumed_samples={samples}"
GLOBAL_BATCH_SIZE = 8
#: How long an in-save kill waits once a marker is seen: under the shortest save of each writer.
IN_SAVE_JITTER_S = {"lightning": 0.004, "megatron": 0.2}
_POLL_S = 0.001


# ----------------------------------------------------------------------------------------- names


def megatron_name(step: int) -> str:
    return MEGATRON_NAME.format(step=step, samples=float(step * GLOBAL_BATCH_SIZE))


def _marker(path: Path) -> Path:
    return Path(str(path).removesuffix(".ckpt") + UNFINISHED_SUFFIX)


# ----------------------------------------------------------------------------------------- the zygote


class Zygote:
    """A subprocess that imports NeMo, Lightning and megatron-core once, then forks one child per job.

    Commands go in on its stdin and answers come back on a pipe of their own (NeMo prints on stdout).
    Each child is the leader of its own process group, so killing the group ends it and whatever it
    spawned (megatron-core starts a helper process).
    """

    def __init__(self, workdir: Path, *, start_timeout: float = 300.0) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / "zygote.log"
        read_fd, write_fd = os.pipe()
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
        env.setdefault("CUDA_VISIBLE_DEVICES", "")
        env["OMP_NUM_THREADS"] = "1"
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tests.support.kill_harness", "--serve", str(write_fd)],
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
                pass_fds=(write_fd,),
                env=env,
            )
        os.close(write_fd)
        self._replies = os.fdopen(read_fd, "r")
        self._read(start_timeout)

    def _read(self, timeout: float | None = None) -> dict:
        if timeout is not None:
            ready, _, _ = select.select([self._replies], [], [], timeout)
            if not ready:
                raise RuntimeError(f"kill-harness zygote did not answer in {timeout} s; see {self.log_path}")
        line = self._replies.readline()
        if not line:
            tail = self.log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"kill-harness zygote exited ({self.proc.poll()}):\n{tail}")
        return json.loads(line)

    def _ask(self, msg: dict, timeout: float | None = None) -> dict:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(msg) + "\n").encode())
        self.proc.stdin.flush()
        return self._read(timeout)

    def spawn(self, job: dict) -> int:
        """Fork a child running ``job``; returns its pid (also its process group id)."""
        return int(self._ask({"op": "spawn", "job": job}, 60)["pid"])

    def wait(self, pid: int) -> int:
        """Reap the child: its exit code, or ``-signal`` when a signal ended it."""
        return int(self._ask({"op": "wait", "pid": pid})["exit"])

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(OSError, RuntimeError):
                self._ask({"op": "exit"}, 30)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._replies.close()

    def __enter__(self) -> Zygote:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _serve(reply_fd: int) -> int:
    """The zygote's loop (runs in the subprocess)."""
    # Everything a job needs, imported before any fork (about 10 s), so a child starts at once.
    import megatron.core.dist_checkpointing  # noqa: F401
    import megatron.core.models.gpt  # noqa: F401
    import nemo.lightning._strategy_lib  # noqa: F401
    import nemo.lightning.io.pl  # noqa: F401
    import torch

    import nemo_resume.callback  # noqa: F401
    import nemo_resume.smoke.train  # noqa: F401
    from tests.support import megatron_ckpt  # noqa: F401

    torch.set_num_threads(1)
    replies = os.fdopen(reply_fd, "w")

    def answer(obj: dict) -> None:
        replies.write(json.dumps(obj) + "\n")
        replies.flush()

    answer({"ready": True})
    for line in sys.stdin:
        msg = json.loads(line)
        if msg["op"] == "spawn":
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:  # the child
                code = 1
                try:
                    os.setpgid(0, 0)
                    replies.close()
                    _run_job(msg["job"])
                    code = 0
                except BaseException:  # noqa: BLE001 - the child reports everything in its log
                    traceback.print_exc()
                finally:
                    sys.stdout.flush()
                    sys.stderr.flush()
                    os._exit(code)
            with contextlib.suppress(OSError):
                os.setpgid(pid, pid)  # also here: the harness may kill the group before the child ran
            answer({"pid": pid})
        elif msg["op"] == "wait":
            pid = int(msg["pid"])
            _, status = os.waitpid(pid, 0)
            # A job ends with os._exit, which skips multiprocessing's cleanup: end the helper processes
            # megatron-core started (they are in the job's process group) too.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
            answer({"exit": os.waitstatus_to_exitcode(status)})
        elif msg["op"] == "exit":
            answer({"bye": True})
            break
    return 0


# ----------------------------------------------------------------------------------------- jobs (in the child)


def _run_job(job: dict) -> None:
    workdir = Path(job["workdir"])
    workdir.mkdir(parents=True, exist_ok=True)
    fd = os.open(workdir / "job.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    # megatron-core's process group keeps a file store in a temporary folder: keep it inside the trial
    # folder, so a killed writer leaves nothing behind in /tmp.
    tmp = workdir / "tmp"
    tmp.mkdir(exist_ok=True)
    os.environ["TMPDIR"] = str(tmp)
    import tempfile

    tempfile.tempdir = None
    result = {"train": _job_train, "megatron": _job_megatron, "megatron_load": _job_megatron_load}[job["kind"]](job)
    (workdir / "done.json").write_text(json.dumps(result))


def _job_train(job: dict) -> dict:
    from nemo_resume.callback import ResumeScheduleCallback
    from nemo_resume.smoke.train import SmokeConfig, train

    cfg = SmokeConfig(**job["config"])
    callbacks = []
    if job.get("target"):
        t = job["target"]
        callbacks.append(
            ResumeScheduleCallback(
                job["resume_step"], t["base_lrs"], t["min_lr"], t["max_steps"], t["warmup_steps"], t["constant_steps"]
            )
        )
    result = train(cfg, Path(job["log_dir"]), resume_from=job.get("resume_from"), callbacks=callbacks)
    steps = sorted(result.lrs)
    return {
        "final_step": result.final_step,
        "error": result.error,
        "first_step": steps[0] if steps else None,
        "first_lr": result.lrs[steps[0]] if steps else None,
    }


def _job_megatron(job: dict) -> dict:
    """megatron-core writes one checkpoint per source step, inside nl.ModelCheckpoint's protocol."""
    from megatron.core import parallel_state

    from tests.support import megatron_ckpt

    ckpt_dir = Path(job["checkpoints"])
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    keep = int(job.get("keep", -1))
    with open(job["journal"], "a") as journal:

        def note(event: str, name: str) -> None:
            journal.write(f"{event} {name}\n")
            journal.flush()

        def remove(path: Path) -> None:  # nl.ModelCheckpoint._remove_checkpoint: marker, remove, unmark
            _marker(path).touch()
            if path.is_symlink():
                path.unlink()
            else:
                shutil.rmtree(path)
            note("removed", path.name)
            _marker(path).unlink()

        kept: list[Path] = []
        last_link: Path | None = None
        for step, source in job["sources"]:
            out = ckpt_dir / megatron_name(step)
            _marker(out).touch()  # set_checkpoint_unfinished_marker
            megatron_ckpt._main([source, str(out)])  # dist_checkpointing.save of weights/, then context/
            parallel_state.destroy_model_parallel()
            note("saved", out.name)
            _marker(out).unlink()  # the finalize callback removes the marker
            kept.append(out)
            if keep > 0 and len(kept) > keep:  # top-k: drop the oldest, before the -last link moves
                remove(kept.pop(0))
            link = ckpt_dir / (out.name + "-last")  # save_last="link": Lightning's _link_checkpoint
            os.symlink(out.name, link)
            note("linked", link.name)
            if last_link is not None:
                remove(last_link)
            last_link = link
            time.sleep(float(job.get("pause_s", 0.05)))  # the training step between two saves
    return {"saved": len(job["sources"])}


def _job_megatron_load(job: dict) -> dict:
    """Read a checkpoint back the way a resume does: megatron-core's dist_checkpointing.load."""
    import tempfile

    import torch.distributed as dist
    from megatron.core import dist_checkpointing, parallel_state

    from tests.support import megatron_ckpt

    megatron_ckpt._install_cpu_stand_ins()
    with tempfile.TemporaryDirectory() as tmp:
        megatron_ckpt._init_single_process_group(Path(tmp))
        try:
            _, gpt = megatron_ckpt._build_gpt(1234)
            sharded = {"sharded_state_dict": gpt.sharded_state_dict(prefix="module.")}
            loaded = dist_checkpointing.load(sharded, job["weights"])
            common = dist_checkpointing.load_common_state_dict(job["weights"])
        finally:
            parallel_state.destroy_model_parallel()
            dist.destroy_process_group()
    return {"global_step": common.get("global_step"), "tensors": len(loaded["sharded_state_dict"])}


# ----------------------------------------------------------------------------------------- trials


@dataclass(frozen=True)
class KillTrial:
    """One trial: which writer, how the kill is aimed, and the run's knobs."""

    index: int
    writer: str  # "lightning" | "megatron"
    mode: str  # "random" | "in-save"
    seed: int
    save_top_k: int = -1
    save_last: Any = True
    keep: int = -1  # megatron writer: top-k


@dataclass
class TrialResult:
    trial: KillTrial
    kill_after_s: float = 0.0
    exit: int | None = None
    finished_before_kill: bool = False
    markers_left: list[str] = field(default_factory=list)
    on_disk: int = 0  # checkpoints left on disk (including partial ones)
    truly_complete: int = 0
    partial: int = 0
    inspect_code: int | None = None
    plan_code: int | None = None
    planned_step: int | None = None
    truth_step: int | None = None
    resume: str = "-"
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)

    @property
    def killed_in_save(self) -> bool:
        return bool(self.markers_left)

    @property
    def ok(self) -> bool:
        return not self.failures

    def row(self) -> str:
        t = self.trial
        where = "in save" if self.killed_in_save else ("after end" if self.finished_before_kill else "between saves")
        return (
            f"{t.index:>3} {t.writer:<9} {t.mode:<8} {self.kill_after_s:6.2f}s {where:<13} "
            f"ckpts={self.on_disk:<3} partial={self.partial:<2} inspect={self.inspect_code} plan={self.plan_code} "
            f"step={self.planned_step} (truth {self.truth_step}) resume={self.resume} "
            + ("OK" if self.ok else "FAIL: " + "; ".join(self.failures))
        )

    def to_json(self) -> dict:
        d = asdict(self)
        d["killed_in_save"] = self.killed_in_save
        d["ok"] = self.ok
        return d


def plan_request_args(extra_steps: int = EXTRA_STEPS) -> list[str]:
    c = RUN_CONFIG
    return [
        "--lr", str(c["lr"]), "--min-lr", str(c["min_lr"]),
        "--max-steps", str(c["max_steps"] + extra_steps), "--warmup-steps", str(c["warmup_steps"]),
    ]  # fmt: skip


@dataclass
class Harness:
    """A zygote plus what every trial shares: the real smoke run the Megatron writer re-saves."""

    zygote: Zygote
    workdir: Path
    lightning_s: float
    megatron_s: float
    sources: list[tuple[int, str]]

    def close(self) -> None:
        self.zygote.close()


def _running(pid: int) -> bool:
    """The child has not exited (the zygote reaps it later: until then it is a zombie, state Z)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _run_to_end(zygote: Zygote, job: dict, timeout: float = 600.0) -> tuple[dict, float]:
    """Run ``job`` to its end (killed after ``timeout`` s); its result and how long it took."""
    start = time.monotonic()
    pid = zygote.spawn(job)
    while _running(pid) and time.monotonic() - start < timeout:
        time.sleep(0.02)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)  # only still there after the timeout
    code = zygote.wait(pid)
    done = Path(job["workdir"]) / "done.json"
    if code != 0 or not done.exists():
        log = (Path(job["workdir"]) / "job.log").read_text(errors="replace")[-4000:]
        raise RuntimeError(f"{job['kind']} job failed (exit {code}):\n{log}")
    return json.loads(done.read_text()), time.monotonic() - start


def start_harness(workdir: Path) -> Harness:
    """Start the zygote and time one uninterrupted run of each writer (their durations bound random kills)."""
    workdir.mkdir(parents=True, exist_ok=True)
    zygote = Zygote(workdir)
    try:
        src = workdir / "calibration-lightning"
        result, lightning_s = _run_to_end(
            zygote, {"kind": "train", "workdir": str(src), "config": RUN_CONFIG, "log_dir": str(src / "run")}
        )
        if result["error"] or result["final_step"] != RUN_CONFIG["max_steps"]:
            raise RuntimeError(f"calibration run failed: {result}")
        ckpts = src / "run" / RUN_CONFIG["name"] / "checkpoints"
        sources = sorted(
            (int(p.name.split("step=")[1].removesuffix(".ckpt")), str(p))
            for p in ckpts.glob("*.ckpt")
            if not p.name.endswith("-last.ckpt")
        )
        meg = workdir / "calibration-megatron"
        _, megatron_s = _run_to_end(zygote, _megatron_job(meg, sources, keep=-1))
    except BaseException:
        zygote.close()
        raise
    return Harness(zygote, workdir, lightning_s, megatron_s, sources)


def _megatron_job(trial_dir: Path, sources: list[tuple[int, str]], keep: int) -> dict:
    return {
        "kind": "megatron",
        "workdir": str(trial_dir),
        "checkpoints": str(trial_dir / "run" / "checkpoints"),
        "journal": str(trial_dir / "journal.txt"),
        "sources": sources,
        "keep": keep,
    }


def make_trial(index: int, rng: random.Random) -> KillTrial:
    """Trial ``index``: every third one is Megatron; each writer alternates random and in-save kills, so
    any six consecutive trials cover all four. The checkpoint knobs and the kill moment come from ``rng``."""
    megatron = index % 3 == 2
    nth = index // 3 if megatron else 2 * (index // 3) + index % 3  # this writer's own trial count
    return KillTrial(
        index=index,
        writer="megatron" if megatron else "lightning",
        mode=("random", "in-save")[nth % 2],
        seed=rng.randrange(2**31),
        save_top_k=rng.choice([-1, 1, 3]),
        save_last=rng.choice([True, "link"]),
        keep=rng.choice([-1, 1, 2]),
    )


def _aim_and_kill(h: Harness, trial: KillTrial, job: dict, ckpt_dir: Path, result: TrialResult) -> None:
    rng = random.Random(trial.seed)
    done = Path(job["workdir"]) / "done.json"
    expected_s = h.lightning_s if trial.writer == "lightning" else h.megatron_s
    saves = len(h.sources) * (2 if trial.writer == "lightning" else 1)
    start = time.monotonic()
    pid = h.zygote.spawn(job)
    if trial.mode == "random":
        deadline = start + rng.uniform(0.0, expected_s)
        while time.monotonic() < deadline and not done.exists():
            time.sleep(_POLL_S)
    else:
        # Wait until the want-th distinct marker has shown up and a marker is on disk right now,
        # then kill within a fraction of a save (later saves take milliseconds).
        want, seen = rng.randint(1, saves), set()
        while not done.exists() and time.monotonic() - start < 5 * expected_s:
            try:
                now = {e.name for e in os.scandir(ckpt_dir) if e.name.endswith(UNFINISHED_SUFFIX)}
            except FileNotFoundError:
                now = set()
            seen |= now
            if now and len(seen) >= want:
                time.sleep(rng.uniform(0.0, IN_SAVE_JITTER_S[trial.writer]))
                break
            time.sleep(_POLL_S)
    result.finished_before_kill = done.exists()
    result.kill_after_s = time.monotonic() - start
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    result.exit = h.zygote.wait(pid)


def run_trial(h: Harness, trial: KillTrial) -> TrialResult:
    """Run, kill and judge one trial (see the module docstring for what is checked)."""
    started = time.monotonic()
    trial_dir = h.workdir / f"trial-{trial.index:03d}"
    result = TrialResult(trial)
    if trial.writer == "lightning":
        config = {**RUN_CONFIG, "save_top_k": trial.save_top_k, "save_last": trial.save_last}
        run_dir = trial_dir / "run"
        job = {"kind": "train", "workdir": str(trial_dir), "config": config, "log_dir": str(run_dir)}
        ckpt_dir = run_dir / RUN_CONFIG["name"] / "checkpoints"
    else:
        job = _megatron_job(trial_dir, h.sources, trial.keep)
        run_dir = trial_dir / "run"
        ckpt_dir = run_dir / "checkpoints"
    _aim_and_kill(h, trial, job, ckpt_dir, result)
    if ckpt_dir.exists():
        result.markers_left = sorted(p.name for p in ckpt_dir.iterdir() if p.name.endswith(UNFINISHED_SUFFIX))
    truth = _lightning_truth(ckpt_dir) if trial.writer == "lightning" else _megatron_truth(ckpt_dir, trial_dir)
    plan = _judge(run_dir, ckpt_dir, truth, result)
    if plan is not None and not result.failures:
        _check_resume(h, trial, trial_dir, plan, result)
    result.seconds = time.monotonic() - started
    return result


# ----------------------------------------------------------------------------------------- ground truth


@dataclass(frozen=True)
class Truth:
    """What a checkpoint really is, known without nemo-resume."""

    step: int | None
    complete: bool
    resumable: bool


def _step_of(name: str) -> int | None:
    m = re.search(STEP_IN_NAME_RE, name)
    return int(m.group(1)) if m else None


def _lightning_truth(ckpt_dir: Path) -> dict[str, Truth]:
    """Each ``.ckpt``: complete when its marker is gone and ``torch.load`` reads it (our own file)."""
    import torch

    out: dict[str, Truth] = {}
    if not ckpt_dir.exists():
        return out
    for p in sorted(ckpt_dir.glob("*.ckpt")):
        if p.is_symlink():
            continue
        complete, optim = False, False
        if not _marker(p).exists():
            try:
                state = torch.load(p, map_location="cpu", weights_only=False)  # written by this harness
                complete, optim = True, bool(state.get("optimizer_states"))
            except Exception:  # noqa: BLE001 - a partial file is the point
                pass
        out[p.name] = Truth(_step_of(p.name), complete, complete and optim)
    return out


def _megatron_truth(ckpt_dir: Path, trial_dir: Path) -> dict[str, Truth]:
    """Each checkpoint folder: complete when the writer journaled it and its marker is gone."""
    journal = trial_dir / "journal.txt"
    events = journal.read_text().split("\n") if journal.exists() else []
    saved = {line.split(" ", 1)[1] for line in events if line.startswith("saved ")}
    removed = {line.split(" ", 1)[1] for line in events if line.startswith("removed ")}
    max_step = RUN_CONFIG["max_steps"]
    out: dict[str, Truth] = {}
    if not ckpt_dir.exists():
        return out
    for p in sorted(ckpt_dir.iterdir()):
        if p.name.endswith(UNFINISHED_SUFFIX) or p.is_symlink():
            continue
        step = _step_of(p.name)
        complete = p.name in saved and p.name not in removed and not _marker(p).exists()
        # the step == max_steps save is weights-only (nl.ModelCheckpoint without save_optim_on_train_end)
        out[p.name] = Truth(step, complete, complete and step is not None and step < max_step)
    return out


def _truth_of(path: Path, truth: dict[str, Truth]) -> Truth | None:
    if path.is_symlink():
        if _marker(path).exists():
            return Truth(_step_of(path.name), False, False)
        try:
            return truth.get(path.resolve(strict=True).name)
        except OSError:
            return Truth(_step_of(path.name), False, False)
    return truth.get(path.name)


def _judge(run_dir: Path, ckpt_dir: Path, truth: dict[str, Truth], result: TrialResult) -> dict | None:
    """Checks 1-3; returns the plan JSON when the plan resumes from a checkpoint."""
    fail = result.failures.append
    result.truly_complete = sum(t.complete for t in truth.values())
    result.partial = sum(not t.complete for t in truth.values())
    best = max((t.step for t in truth.values() if t.resumable and t.step is not None), default=None)
    result.truth_step = best
    before = tree_manifest(run_dir)
    ins = call_cli("inspect", [str(run_dir), "--json"])
    plan = call_cli("plan", [str(run_dir), "--resume", "auto", *plan_request_args(), "--json"])
    if tree_manifest(run_dir) != before:
        fail("inspect/plan changed the run folder")
    result.inspect_code, result.plan_code = ins.code, plan.code
    entries = [p for p in ckpt_dir.iterdir()] if ckpt_dir.exists() else []
    result.on_disk = len([p for p in entries if not p.name.endswith(UNFINISHED_SUFFIX)])
    for call, name in ((ins, "inspect"), (plan, "plan")):
        if call.code == 2 and len(call.err.splitlines()) != 1:
            fail(f"{name} exit 2 without a one-line error: {call.err[-300:]!r}")
        if call.code not in (0, 1, 2):
            fail(f"{name} exit code {call.code}")
    if ins.code == 2:
        if entries:
            fail(f"inspect refused a folder holding checkpoints: {ins.err.strip()}")
        reported: list[dict] = []
        latest = None
    else:
        doc = ins.json
        reported, latest = doc["checkpoints"], doc["latest_complete"]
    for c in reported:
        path = Path(c["path"])
        t = _truth_of(path, truth)
        if c["complete"] and (t is None or not t.complete):
            fail(f"inspect calls {path.name} complete, but it is partial")
        if t is not None and t.complete and not c["complete"] and not path.is_symlink():
            fail(f"inspect calls the complete {path.name} incomplete: {c['incomplete_reasons']}")
        if _marker(path).exists() and c["complete"]:
            fail(f"{path.name} has an -unfinished marker but inspect calls it complete")
    latest_step = None
    if latest is not None:
        latest_step = next(c["step"] for c in reported if c["path"] == latest)
    if latest_step != best:
        fail(f"inspect's newest resumable is step {latest_step}, the truth is {best}")
    if plan.code == 2:
        fail(f"plan failed: {plan.err.strip()}")
        return None
    p = plan.json
    result.planned_step = p["resume_step"] if p["checkpoint"] else None
    if best is None:
        if p["checkpoint"] is not None:
            fail(f"plan resumes from {p['checkpoint']} although no checkpoint is complete")
        # checkpoints on disk but none usable: an error, never a silent fresh start; none at all: fresh
        if plan.code != (1 if reported else 0):
            fail(f"plan exit {plan.code} with {len(reported)} checkpoint(s) found, none resumable")
        return None
    if plan.code != 0 or p["checkpoint"] is None:
        fail(f"plan exit {plan.code}: {[q['message'] for q in p['problems']]}")
        return None
    if p["resume_step"] != best:
        fail(f"plan resumes from step {p['resume_step']}, the newest complete is {best}")
    t = _truth_of(Path(p["checkpoint"]), truth)
    if t is None or not t.resumable:
        fail(f"plan picked {p['checkpoint']}, which is not a complete, resumable checkpoint")
    return p


def _check_resume(h: Harness, trial: KillTrial, trial_dir: Path, plan: dict, result: TrialResult) -> None:
    want = RUN_CONFIG["max_steps"] + EXTRA_STEPS
    if trial.writer == "lightning":
        config = {**RUN_CONFIG, "max_steps": want, "checkpoint_every": 1000, "save_last": False}
        job = {
            "kind": "train",
            "workdir": str(trial_dir / "resume"),
            "config": config,
            "log_dir": str(trial_dir / "resume" / "run"),
            "resume_from": plan["checkpoint"],
            "target": plan["target"],
            "resume_step": plan["resume_step"],
        }
        try:
            out, _ = _run_to_end(h.zygote, job)
        except RuntimeError as exc:
            result.failures.append(f"resumed run crashed: {str(exc)[-300:]}")
            return
        if out["error"] or out["final_step"] != want:
            result.failures.append(f"resumed run ended at step {out['final_step']} with {out['error']}")
            return
        if out["first_step"] != plan["resume_step"]:
            result.failures.append(f"resumed run started at step {out['first_step']}, planned {plan['resume_step']}")
        result.resume = f"{plan['resume_step']}->{out['final_step']}" + (" (callback)" if plan["target"] else "")
    else:
        weights = str(Path(plan["checkpoint"]) / "weights")
        job = {"kind": "megatron_load", "workdir": str(trial_dir / "load"), "weights": weights}
        try:
            out, _ = _run_to_end(h.zygote, job)
        except RuntimeError as exc:
            result.failures.append(f"dist_checkpointing.load failed on the planned checkpoint: {str(exc)[-300:]}")
            return
        if out["global_step"] != plan["resume_step"]:
            result.failures.append(f"loaded global_step {out['global_step']}, planned {plan['resume_step']}")
            return
        result.resume = f"loaded step {out['global_step']} ({out['tensors']} tensors)"


# ----------------------------------------------------------------------------------------- the full run


def run_trials(
    trials: int, seed: int, workdir: Path, *, log: Callable[[str], None] = print, keep_dirs: bool = False
) -> list[TrialResult]:
    """``trials`` random trials from ``seed``; one row logged per trial."""
    rng = random.Random(seed)
    log(f"kill harness: {trials} trials, seed {seed}, workdir {workdir}")
    h = start_harness(workdir)
    log(f"calibration: lightning run {h.lightning_s:.1f} s, megatron writer {h.megatron_s:.1f} s, "
        f"{len(h.sources)} steps")  # fmt: skip
    results = []
    try:
        for i in range(trials):
            trial = make_trial(i, rng)
            r = run_trial(h, trial)
            log(r.row())
            results.append(r)
            if r.ok and not keep_dirs:
                shutil.rmtree(workdir / f"trial-{i:03d}", ignore_errors=True)
    finally:
        h.close()
    return results


def summarize(results: list[TrialResult]) -> str:
    n = len(results)
    in_save = sum(r.killed_in_save for r in results)
    by_writer = {w: sum(r.trial.writer == w for r in results) for w in ("lightning", "megatron")}
    resumed = sum(r.resume != "-" for r in results)
    failed = [r.trial.index for r in results if not r.ok]
    return (
        f"{n} trials ({by_writer['lightning']} lightning, {by_writer['megatron']} megatron), "
        f"{in_save} killed inside a save, {sum(r.partial for r in results)} partial checkpoints left, "
        f"{resumed} resumed/loaded from the plan, {len(failed)} failed {failed if failed else ''}".rstrip()
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.support.kill_harness", description=__doc__.splitlines()[0])
    p.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    p.add_argument("--trials", type=int, default=36)
    p.add_argument("--seed", type=int, default=None, help="default: a random seed, printed")
    p.add_argument("--workdir", type=Path, default=None, help="default: a new temporary folder")
    p.add_argument("--keep", action="store_true", help="keep every trial's folder (failed ones are always kept)")
    p.add_argument("--json", type=Path, help="write every trial's result here")
    args = p.parse_args(argv)
    if args.serve is not None:
        return _serve(args.serve)
    import tempfile

    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**31)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="nemo-resume-kills-"))
    start = time.monotonic()
    results = run_trials(args.trials, seed, workdir, keep_dirs=args.keep)
    print(summarize(results))
    print(f"seed {seed}, {time.monotonic() - start:.0f} s")
    if args.json:
        args.json.write_text(json.dumps({"seed": seed, "trials": [r.to_json() for r in results]}, indent=1))
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
