"""The corruption catalogue: each damage to a copy of a real checkpoint, what ``inspect`` and ``plan``
print for it, and their exit codes. docs/reliability.md lists the same cases.

Exit codes: 0 fine, 1 a problem in the checkpoint a resume would use (or none usable), 2 bad input with
one line on stderr. Nothing here may change a file (manifest before and after every CLI call).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path

import pytest

from tests.support.fuzz import CliCall, call_cli, run_cli_measured, tree_manifest
from tests.support.hostile import PLAN_ARGS

pytestmark = pytest.mark.nemo

INSPECT, PLAN = "nemo-resume inspect", "nemo-resume plan"


def _both(target: Path, root: Path, *, plan_args: list[str] = PLAN_ARGS, json: bool = True) -> tuple[CliCall, CliCall]:
    """inspect and plan on ``target``, asserting neither touched anything under ``root``."""
    before = tree_manifest(root)
    flag = ["--json"] if json else []
    ins = call_cli("inspect", [str(target), *flag])
    plan = call_cli("plan", [str(target), *plan_args, *flag])
    assert tree_manifest(root) == before
    return ins, plan


def _only_checkpoint_unusable(ins: CliCall, plan: CliCall, reason: str) -> None:
    """The single checkpoint is reported incomplete with ``reason``; plan refuses with exit 1."""
    assert ins.code == 1 and ins.err == "", ins.err
    (c,) = ins.json["checkpoints"]
    assert not c["complete"] and any(reason in r for r in c["incomplete_reasons"]), c["incomplete_reasons"]
    assert c["problems"][0]["code"] == "INCOMPLETE"
    assert plan.code == 1 and plan.err == "", plan.err
    p = plan.json
    assert p["checkpoint"] is None and p["problems"][0]["code"] == "NO_USABLE_CHECKPOINT"
    assert any(reason in s["reason"] for s in p["skipped"]), p["skipped"]


# ----------------------------------------------------------------------------------------- zero-byte files


ZERO_BYTE = {
    "weights/common.pt": "weights/common.pt: not a complete torch.save zip (File is not a zip file)",
    "weights/.metadata": "weights/.metadata is corrupt: not a readable pickle",
    "weights/metadata.json": "weights/metadata.json is unreadable (JSONDecodeError)",
    "weights/__0_0.distcp": "shard weights/__0_0.distcp is truncated (0 of",
}


@pytest.mark.parametrize("name", sorted(ZERO_BYTE))
def test_zero_byte_file_in_a_megatron_checkpoint(mg, name):
    (mg / name).write_bytes(b"")
    ins, plan = _both(mg.parent.parent, mg.parent.parent)
    _only_checkpoint_unusable(ins, plan, ZERO_BYTE[name])
    human = call_cli("inspect", [str(mg)])
    assert human.code == 1
    assert f"ERROR INCOMPLETE {mg.name}: cannot resume from it: " in human.out and ZERO_BYTE[name] in human.out


def test_zero_byte_lightning_ckpt(lt):
    lt.write_bytes(b"")
    ins, plan = _both(lt.parent, lt.parent.parent)
    _only_checkpoint_unusable(ins, plan, "not a complete torch.save zip (File is not a zip file)")
    assert ins.json["checkpoints"][0]["step"] == 499  # from the file name, said as a note
    # named explicitly, the plan says why it cannot resume from it
    named = call_cli("plan", [str(lt.parent.parent), *PLAN_ARGS, "--resume", str(lt), "--json"])
    assert named.code == 1 and "not a complete torch.save zip" in named.json["problems"][0]["message"]


def test_a_zero_byte_newest_checkpoint_falls_back_to_the_previous_one(tmp_path, finished_run):
    run = tmp_path / "run"
    shutil.copytree(finished_run.log_dir, run, symlinks=True)
    (run / "checkpoints" / "smoke--step=200.ckpt").write_bytes(b"")
    ins, plan = _both(run, run, plan_args=["--lr", "1e-3", "--min-lr", "1e-5", "--max-steps", "600"])
    assert ins.code == 0 and ins.json["latest_complete"].endswith("smoke--step=100.ckpt")
    assert plan.code == 0 and plan.json["resume_step"] == 100


# ----------------------------------------------------------------------------------------- no permission

_NO_DAC = ("setpriv", "--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-all", "--")


def _unprivileged_prefix() -> tuple[str, ...]:
    """How to run a command that file permissions apply to: directly, or as root without the two
    capabilities that let root read anything (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH)."""
    if os.geteuid() != 0:
        return ()
    if shutil.which("setpriv") is None:
        pytest.skip("running as root and setpriv (util-linux) is missing: chmod 000 cannot deny root a read")
    return _NO_DAC


@contextlib.contextmanager
def _no_permissions(path: Path):
    mode = path.stat().st_mode
    path.chmod(0)
    try:
        yield
    finally:
        path.chmod(mode)


def _two_checkpoint_run(root: Path, megatron_incident_ckpt: Path) -> tuple[Path, Path]:
    """Two real Megatron checkpoints (the incident's, under two step names) in ``root/run/checkpoints``."""
    ckpts = root / "run" / "checkpoints"
    ckpts.mkdir(parents=True)
    old = ckpts / megatron_incident_ckpt.name.replace("step=19-", "step=9-")
    new = ckpts / megatron_incident_ckpt.name
    shutil.copytree(megatron_incident_ckpt, old)
    shutil.copytree(megatron_incident_ckpt, new)
    return old, new


@pytest.mark.parametrize("what", ["folder", "weights", "common.pt", ".metadata"])
def test_unreadable_newest_checkpoint_is_skipped_not_fatal(tmp_path, megatron_incident_ckpt, what):
    prefix = _unprivileged_prefix()
    old, new = _two_checkpoint_run(tmp_path, megatron_incident_ckpt)
    victim = {"folder": new, "weights": new / "weights"}.get(what, new / "weights" / what)
    run = tmp_path / "run"
    before = tree_manifest(run)
    with _no_permissions(victim):
        ins = run_cli_measured("inspect", [str(run), "--json"], prefix=prefix)
        plan = run_cli_measured("plan", [str(run), *PLAN_ARGS, "--json"], prefix=prefix)
    assert tree_manifest(run) == before
    assert ins.code == 1 and ins.err == "", ins.err  # 1: the incident checkpoint's LR_BELOW_MIN_LR
    by_name = {Path(c["path"]).name: c for c in ins.json["checkpoints"]}
    assert not by_name[new.name]["complete"]
    assert any("not readable" in r or "permission denied" in r.lower() for r in by_name[new.name]["incomplete_reasons"])
    assert by_name[old.name]["complete"] and ins.json["latest_complete"] == str(old)
    assert plan.code == 0 and plan.json["checkpoint"] == str(old), plan.err or plan.json["problems"]


def test_unreadable_run_folder_is_bad_input_for_both_never_a_fresh_start(tmp_path, megatron_incident_ckpt):
    prefix = _unprivileged_prefix()
    _two_checkpoint_run(tmp_path, megatron_incident_ckpt)
    run = tmp_path / "run"
    with _no_permissions(run):
        ins = run_cli_measured("inspect", [str(run)], prefix=prefix)
        plan = run_cli_measured("plan", [str(run), *PLAN_ARGS], prefix=prefix)
    assert ins.one_line_error(INSPECT) == f"{INSPECT}: error: {run}: permission denied; make the folder readable"
    assert plan.one_line_error(PLAN) == f"{PLAN}: error: {run}: permission denied; make the folder readable"


def test_unreadable_checkpoints_folder_is_reported_and_the_plan_refuses(tmp_path, megatron_incident_ckpt):
    prefix = _unprivileged_prefix()
    _two_checkpoint_run(tmp_path, megatron_incident_ckpt)
    run = tmp_path / "run"
    with _no_permissions(run / "checkpoints"):
        ins = run_cli_measured("inspect", [str(run), "--json"], prefix=prefix)
        plan = run_cli_measured("plan", [str(run), *PLAN_ARGS, "--json"], prefix=prefix)
    _only_checkpoint_unusable(ins, plan, "permission denied: cannot read this folder")


# ----------------------------------------------------------------------------------------- wrong paths


def test_empty_run_folder(tmp_path):
    (tmp_path / "run").mkdir()
    ins, plan = _both(tmp_path / "run", tmp_path, json=False)
    assert ins.one_line_error(INSPECT) == (
        f"{INSPECT}: error: {tmp_path / 'run'}: no NeMo checkpoint found under it "
        "(looked for */weights/, *.ckpt, -last links)"
    )
    # the planner's first launch: a fresh start, said out loud
    assert plan.code == 0 and f"no checkpoint under {tmp_path / 'run'}: starting from scratch" in plan.out


def test_run_folder_with_only_logs_is_like_an_empty_one(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "nemo_log_globalrank-0_localrank-0.txt").write_text("log\n")
    ins, plan = _both(run, tmp_path, json=False)
    assert "no NeMo checkpoint found under it" in ins.one_line_error(INSPECT)
    assert plan.code == 0 and "starting from scratch" in plan.out


def test_path_that_does_not_exist(tmp_path):
    missing = tmp_path / "no-such-run"
    ins, plan = _both(missing, tmp_path, json=False)
    expected = f"{missing}: no such file or directory; pass a checkpoint or run folder"
    assert ins.one_line_error(INSPECT) == f"{INSPECT}: error: {expected}"
    assert plan.one_line_error(PLAN) == f"{PLAN}: error: {expected}"  # a typo is not a first launch...
    # ... unless asked for: --resume auto on a folder that does not exist yet is a new run's first launch
    first = call_cli("plan", [str(missing), *PLAN_ARGS, "--resume", "auto"])
    assert first.code == 0 and f"{missing} does not exist yet: starting from scratch (first launch)" in first.out
    assert not missing.exists()


def test_explicit_resume_path_that_does_not_exist_is_bad_input(tmp_path):
    plan = call_cli("plan", [str(tmp_path), *PLAN_ARGS, "--resume", str(tmp_path / "gone.ckpt")])
    assert plan.one_line_error(PLAN) == (
        f"{PLAN}: error: {tmp_path / 'gone.ckpt'}: no such file or directory; pass a checkpoint or run folder"
    )


@pytest.mark.parametrize("name", ["notes.txt", "model.pt", "weights"])
def test_a_file_that_is_not_a_checkpoint(tmp_path, name):
    f = tmp_path / name
    f.write_bytes(b"PK\x03\x04 not really")
    ins, plan = _both(f, tmp_path)
    expected = (
        f"{f}: not a checkpoint (expected a .ckpt file, a checkpoint folder with weights/, or a run folder)"
    )
    assert ins.one_line_error(INSPECT) == f"{INSPECT}: error: {expected}"
    assert plan.one_line_error(PLAN) == f"{PLAN}: error: {expected}"


# ----------------------------------------------------------------------------------------- -last links


def test_last_link_to_a_checkpoint_being_removed_is_not_complete(mg):
    """nl.ModelCheckpoint removes an old checkpoint (top-k) under its -unfinished marker before it moves
    the -last link; a kill in between leaves the link pointing at a half-deleted folder."""
    link = mg.parent / (mg.name + "-last")
    os.symlink(mg.name, link)
    Path(str(mg) + "-unfinished").touch()
    shutil.rmtree(mg / "context")  # rmtree got this far
    ins, plan = _both(mg.parent.parent, mg.parent.parent)
    by_name = {Path(c["path"]).name: c for c in ins.json["checkpoints"]}
    assert not by_name[mg.name]["complete"]
    assert not by_name[link.name]["complete"], by_name[link.name]
    assert any("-unfinished marker" in r for r in by_name[link.name]["incomplete_reasons"])
    assert ins.code == 1 and plan.code == 1 and plan.json["checkpoint"] is None


# ----------------------------------------------------------------------------------------- mixed runs


@pytest.fixture()
def mixed(tmp_path, incident_run, finished_run) -> Path:
    """Two different runs' checkpoints (the incident: lr 1e-5, step 499; a finished run: lr 1e-3, steps
    100-300) copied into one checkpoints/ folder. By step, the incident's 499 would win."""
    ckpts = tmp_path / "run" / "checkpoints"
    ckpts.mkdir(parents=True)
    for src in (incident_run.checkpoint_dir, finished_run.checkpoint_dir):
        for p in src.iterdir():
            dst = ckpts / p.name
            if p.is_symlink():
                os.symlink(os.readlink(p), dst)
            elif p.is_dir():
                shutil.copytree(p, dst, symlinks=True)
            else:
                shutil.copy2(p, dst)
    return tmp_path / "run"


def test_two_runs_mixed_in_one_folder_are_reported_and_auto_resume_refuses(mixed):
    ins, plan = _both(mixed, mixed, plan_args=["--lr", "1e-3", "--min-lr", "1e-5", "--max-steps", "600"])
    assert ins.code == 1
    mix = ins.json["mixed_runs"]
    assert mix["code"] == "MIXED_RUNS" and mix["severity"] == "error"
    assert "smoke--step=499.ckpt" in mix["message"] and "smoke--step=200.ckpt" in mix["message"]
    # two runs: the finished run's weights-only end checkpoint (no saved folder) joins its own run
    assert "run 2 (" in mix["message"] and "run 3" not in mix["message"]
    assert "max_steps 300, 1 param group(s)): smoke--step=300-last.ckpt" in mix["message"]
    assert plan.code == 1 and plan.json["checkpoint"] is None
    (problem,) = plan.json["problems"]
    assert problem["code"] == "MIXED_RUNS" and "--resume PATH" in problem["message"]
    human = call_cli("inspect", [str(mixed)])
    assert human.code == 1 and "ERROR MIXED_RUNS" in human.out


def test_mixed_runs_still_resume_from_a_checkpoint_named_explicitly(mixed):
    chosen = mixed / "checkpoints" / "smoke--step=200.ckpt"
    argv = [str(mixed), "--lr", "1e-3", "--min-lr", "1e-5", "--max-steps", "600", "--resume", str(chosen), "--json"]
    plan = call_cli("plan", argv)
    assert plan.code == 0 and plan.json["checkpoint"] == str(chosen)


@pytest.mark.slow
def test_one_run_resumed_with_a_new_schedule_is_not_mixed(tmp_path, finished_config):
    """The same run continued in its own folder (different saved configs, same folder) and the same run
    moved to another folder and continued unchanged (same config, different folders) are one run each."""
    from nemo_resume.callback import ResumeScheduleCallback
    from nemo_resume.planning import plan_resume
    from nemo_resume.schedules.request import ScheduleRequest
    from nemo_resume.smoke.train import train

    cfg = finished_config.with_(max_steps=40, warmup_steps=5, checkpoint_every=10)
    first = train(cfg, tmp_path / "a", stop_after_step=20)
    assert first.error is None and first.final_step == 20
    # moved, then continued with the same config (AutoResume would pick a context-only -last folder
    # here, a plain-Lightning quirk: resume from the plan's checkpoint instead)
    shutil.copytree(tmp_path / "a", tmp_path / "b", symlinks=True)
    same = ScheduleRequest(lr=cfg.lr, min_lr=cfg.min_lr, max_steps=40, warmup_steps=5)
    plan = plan_resume(tmp_path / "b", same)
    assert plan.ok and plan.resume_step == 20 and plan.target is None, plan.problems
    moved = train(cfg, tmp_path / "b", resume_from=plan.checkpoint)
    assert moved.error is None and moved.final_step == 40
    # continued in place with a longer schedule and a lower min_lr, through the plan
    request = ScheduleRequest(lr=cfg.lr, min_lr=cfg.min_lr / 10, max_steps=60, warmup_steps=5)
    plan = plan_resume(first.log_dir, request)
    assert plan.ok and plan.resume_step == 20, plan.problems
    callback = ResumeScheduleCallback.from_state(plan.target, plan.resume_step)
    longer = cfg.with_(max_steps=60, min_lr=cfg.min_lr / 10)
    resumed = train(longer, tmp_path / "a", resume_from=plan.checkpoint, callbacks=[callback])
    assert resumed.error is None and resumed.final_step == 60
    from nemo_resume.inspection import inspect_path

    moved_states = [c.state for c in inspect_path(tmp_path / "b").checkpoints if c.state.complete]
    assert len({s.saved_dirpath for s in moved_states if s.saved_dirpath}) == 2  # two folders ...
    assert len({s.config for s in moved_states if s.config}) == 1  # ... one config
    in_place = [c.state for c in inspect_path(tmp_path / "a").checkpoints if c.state.complete]
    assert len({s.saved_dirpath for s in in_place if s.saved_dirpath}) == 1  # one folder ...
    assert len({s.config for s in in_place if s.config}) == 2  # ... two configs
    for run in (tmp_path / "a", tmp_path / "b"):
        ins = call_cli("inspect", [str(run), "--json"])
        assert ins.json["mixed_runs"] is None, ins.json["mixed_runs"]
    steps = {c["step"] for c in call_cli("inspect", [str(tmp_path / "a"), "--json"]).json["checkpoints"]}
    assert {10, 20, 30, 50} <= steps


# ----------------------------------------------------------------------------------------- found by the fuzzer


def test_io_json_whose_metadata_ref_key_is_a_list_is_a_note_not_a_crash(mg):
    """Fuzz find: fiddle's ``{"type": "ref", "key": ...}`` with a list key made the whole inspection
    fail with "unexpected TypeError: unhashable type: 'list'"."""
    io_json = mg / "context" / "io.json"
    doc = json.loads(io_json.read_text())
    for obj in doc["objects"].values():
        if isinstance(obj.get("metadata"), dict) and obj["metadata"].get("type") == "ref":
            obj["metadata"]["key"] = []
    io_json.write_text(json.dumps(doc))
    ins, plan = _both(mg.parent.parent, mg.parent.parent)
    assert ins.code == 1 and ins.err == "" and plan.code == 0 and plan.err == "", (ins.err, plan.err)
    (c,) = ins.json["checkpoints"]
    assert c["complete"] and c["config"]["lr"] == 1e-5  # the leaves are still read


def test_saved_schedule_that_fails_at_its_own_step_is_refused_not_a_crash(mg):
    """Fuzz find: a bit flipped constant_steps 0 -> 1 in common.pt. NeMo's constant-steps path asserts
    max_lr > min_lr at every step, so this saved schedule (lr 1e-5 < min_lr 3e-5) cannot even give the
    LR at its own step; the planner raised "unexpected ScheduleFailure" instead of refusing."""
    import torch

    common = mg / "weights" / "common.pt"
    state = torch.load(common, weights_only=False)  # our own fixture file
    state["lr_schedulers"][0]["constant_steps"] = 1
    torch.save(state, common)
    ins, plan = _both(mg, mg.parent.parent)
    assert ins.code == 1 and ins.err == ""
    assert plan.code == 1 and plan.err == "", plan.err
    (problem,) = plan.json["problems"]
    assert problem["code"] == "POLICY_REFUSED" and "fails at its own step" in problem["message"]
    assert problem["step"] == 20
