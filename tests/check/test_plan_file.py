"""The plan file (issue 16): `nemo-resume plan RUN ... -o FILE`, then `nemo-resume check --plan FILE`, gives the
verdict `nemo-resume check --run RUN ...` gives for the same flags, on real runs: every mode, every policy, the
cosine and two other schedules. Before the plan file had one schema, check refused every file plan wrote."""

from __future__ import annotations

import json
import shutil

import pytest

from nemo_resume.check.prelaunch import check_plan
from nemo_resume.cli.check_cmd import main as check_main
from nemo_resume.cli.common import strict_json
from nemo_resume.cli.plan_cmd import main as plan_main
from nemo_resume.planning import plan_resume
from nemo_resume.planning.plan_file import plan_from_json, plan_to_json
from nemo_resume.planning.policy import POLICIES
from nemo_resume.schedules.request import ScheduleRequest

pytestmark = pytest.mark.nemo

INCIDENT = ["--lr", "1e-5", "--min-lr", "1e-6", "--max-steps", "1000", "--warmup-steps", "500"]
EXTEND = ["--lr", "1e-3", "--min-lr", "1e-5", "--max-steps", "600", "--warmup-steps", "50"]  # the finished run to 600
LINEAR = ["--schedule", "linear", "--lr", "1e-3", "--min-lr", "0", "--max-steps", "100", "--warmup-steps", "10"]
# a cooldown of the incident's checkpoint (LR 9.98e-6 at step 499) to 1e-6 over 100 steps: the run ends at 599
COOLDOWN = ["--lr", "1e-5", "--min-lr", "1e-6", "--decay-steps", "100", "--decay-type", "cosine"]
STAGES = "75:1e-3,50:1e-4"
STAGED = ["--lr-stages", STAGES, "--lr-mult", "0.5"]
# The incident resumed under every policy: keep and strict refuse (keep dies at 501, strict sees min_lr differ).
INCIDENT_EXIT = {"auto": 0, "keep": 1, "smooth": 0, "recompute": 0, "strict": 1}


@pytest.fixture(scope="module")
def linear_run(tmp_path_factory):
    """`--schedule linear` (NeMo's WarmupHoldAnnealScheduler), stopped at step 40 of 100: checkpoints at 20 and 40."""
    from nemo_resume.schedules.scheduler_module import scheduler_module
    from nemo_resume.smoke import SmokeConfig
    from nemo_resume.smoke.train import train

    module = scheduler_module(ScheduleRequest(1e-3, 0.0, 100, 10, schedule="linear")).build()
    cfg = SmokeConfig(lr=1e-3, max_steps=100, checkpoint_every=20, lr_scheduler=module, name="linear")
    return train(cfg, tmp_path_factory.mktemp("linear"), stop_after_step=40)


@pytest.fixture(scope="module")
def staged_run(tmp_path_factory):
    """`--lr-stages 75:1e-3,50:1e-4` with a second group at 0.5x, stopped in stage 1 at step 60."""
    from nemo_resume.schedules.staged import StagedLRScheduler
    from nemo_resume.smoke import SmokeConfig
    from nemo_resume.smoke.train import train

    cfg = SmokeConfig(lr=1e-3, max_steps=125, checkpoint_every=50, lr_mults=(0.5,),
                      lr_scheduler=StagedLRScheduler(STAGES), name="staged")
    return train(cfg, tmp_path_factory.mktemp("staged"), stop_after_step=60)


def _json_run(main, argv, capsys) -> tuple[int, dict]:
    code = main([*argv, "--json"])
    out = capsys.readouterr().out
    return code, json.loads(out) if out else {}


def _plan_file_and_check(run, flags, tmp_path, capsys) -> tuple[int, dict, dict]:
    """`plan RUN FLAGS -o FILE` (its exit code and the file), then `check --plan FILE --json`."""
    capsys.readouterr()  # a training run's own output, when a fixture trained just now
    path = tmp_path / "plan.json"
    plan_code, printed = _json_run(plan_main, [str(run), *flags, "-o", str(path)], capsys)
    text = path.read_text()
    doc = json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in the plan file: not strict JSON"))
    assert doc == printed  # --json prints the file's document
    check_code, checked = _json_run(check_main, ["--plan", str(path)], capsys)
    assert check_code == plan_code, (plan_code, checked.get("checks"))
    return check_code, doc, checked


def _verdicts(result: dict) -> list[tuple[str, bool | None, int | None]]:
    return [(c["name"], c["ok"], c["step"]) for c in result["checks"]]


CASES = [
    *[pytest.param("incident_run", [*INCIDENT, "--lr-policy", p], "resume", INCIDENT_EXIT[p], id=f"resume-{p}")
      for p in POLICIES if p != "cooldown"],
    pytest.param("incident_run", [*COOLDOWN, "--lr-policy", "cooldown"], "resume", 0, id="resume-cooldown"),
    pytest.param("incident_run", [*INCIDENT, "--resume", "never"], "fresh", 0, id="fresh"),
    pytest.param("finished_run", EXTEND, "resume", 0, id="resume-with-a-weights-only-option"),
    pytest.param("linear_run", [*LINEAR, "--lr-policy", "keep"], "resume", 0, id="linear-resume-keep",
                 marks=pytest.mark.slow),
    pytest.param("linear_run", [*LINEAR, "--lr-policy", "smooth"], "resume", 1, id="linear-resume-smooth-refused",
                 marks=pytest.mark.slow),
    pytest.param("linear_run", [*LINEAR, "--resume", "never"], "fresh", 0, id="linear-fresh", marks=pytest.mark.slow),
    pytest.param("staged_run", [*STAGED, "--lr-policy", "keep"], "resume", 0, id="staged-resume-keep",
                 marks=pytest.mark.slow),
    pytest.param("staged_run", [*STAGED, "--lr-policy", "recompute"], "resume", 1, id="staged-resume-recompute-refused",
                 marks=pytest.mark.slow),
]


def _same_verdict_as_run(run, flags, tmp_path, capsys) -> tuple[int, dict, list]:
    """Plan to a file and check it; check --run with the same flags gives the same exit code and report."""
    code, doc, from_file = _plan_file_and_check(run, flags, tmp_path, capsys)
    run_code, from_run = _json_run(check_main, ["--run", str(run), *flags], capsys)
    assert run_code == code
    assert _verdicts(from_file) == _verdicts(from_run)
    assert from_file == from_run  # the whole report: key steps, curves' failure, resume point, notes
    return code, doc, _verdicts(from_file)


@pytest.mark.parametrize("fixture, flags, mode, exit_code", CASES)
def test_check_of_the_plan_file_is_check_run_with_the_same_flags(fixture, flags, mode, exit_code, request, tmp_path, capsys):
    run = request.getfixturevalue(fixture).log_dir
    code, doc, verdicts = _same_verdict_as_run(run, flags, tmp_path, capsys)
    assert (code, doc["mode"], doc["format"], doc["version"]) == (exit_code, mode, "nemo-resume-plan", 1)
    safe = [ok for name, ok, _ in verdicts if name == "plan_safe"]
    assert safe == ([False] if exit_code else [])  # a refused plan still fails plan_safe, from its file


@pytest.mark.slow
def test_a_staged_checkpoint_alone_planned_as_cosine_keeps_its_saved_state_in_the_file(staged_run, tmp_path, capsys):
    """Without its context/ folder nothing names the scheduler class: the saved stages decide (keeps_saved_state)."""
    alone = tmp_path / "alone" / "staged--step=60.ckpt"
    alone.parent.mkdir()
    shutil.copy(staged_run.checkpoint_at(60, last=True), alone)
    cosine = ["--lr", "1e-3", "--min-lr", "0", "--max-steps", "125", "--lr-mult", "0.5"]
    code, doc, verdicts = _same_verdict_as_run(alone, cosine, tmp_path, capsys)
    assert code == 1 and doc["restored"]["stages"][0] == {"steps": 75, "lr": 1e-3, "warmup_steps": 0}
    assert verdicts[0][:2] == ("plan_safe", False) and "is a staged run" in doc["problems"][0]["message"]


def test_restore_weights_from_its_file_is_the_plan_checked_in_memory(finished_run, tmp_path, capsys):
    code, doc, from_file = _plan_file_and_check(finished_run.log_dir, [*EXTEND, "--restart-from-weights"], tmp_path, capsys)
    assert code == 0 and doc["mode"] == "restore-weights" and "step=300" in doc["checkpoint"]
    plan = plan_resume(finished_run.log_dir, ScheduleRequest(1e-3, 1e-5, 600, 50), restart_from_weights=True)
    assert from_file == json.loads(json.dumps(strict_json(check_plan(plan).to_json())))


@pytest.mark.parametrize("fixture, flags", [
    ("incident_run", [*INCIDENT, "--lr-policy", "smooth"]),
    ("incident_run", [*INCIDENT, "--lr-policy", "keep"]),
    ("incident_run", [*INCIDENT, "--resume", "never"]),
    ("finished_run", EXTEND),
    ("finished_run", [*EXTEND, "--restart-from-weights"]),
    pytest.param("linear_run", [*LINEAR, "--lr-policy", "keep"], marks=pytest.mark.slow),
    pytest.param("staged_run", [*STAGED, "--lr-policy", "keep"], marks=pytest.mark.slow),
])
def test_the_plan_read_back_writes_the_same_file(fixture, flags, request, tmp_path, capsys):
    """Every field comes back but the weights-only option (a checkpoint the plan did not take: report only)."""
    run = request.getfixturevalue(fixture).log_dir
    path = tmp_path / "plan.json"
    capsys.readouterr()
    assert plan_main([str(run), *flags, "-o", str(path)]) in (0, 1)
    capsys.readouterr()
    doc = json.loads(path.read_text())
    again = plan_to_json(plan_from_json(doc, "test"))
    assert json.loads(json.dumps(strict_json(again))) == {**doc, "weights_only_option": None}


def test_a_plan_made_with_another_max_jump_is_checked_with_it(incident_run, tmp_path, capsys):
    path = tmp_path / "plan.json"
    assert plan_main([str(incident_run.log_dir), *INCIDENT, "--max-jump", "0.5", "-o", str(path)]) == 0
    capsys.readouterr()
    assert check_main(["--plan", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"--plan {path} was planned with --max-jump 0.5: check it with --max-jump 0.5" in err
    assert err.count("\n") == 1
    assert check_main(["--plan", str(path), "--max-jump", "0.5"]) == 0


def _refused(path, capsys) -> str:
    assert check_main(["--plan", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and f"--plan {path}" in err
    return err


@pytest.mark.parametrize("version", [2, 0, "1", 1.0, True, None])
def test_another_version_is_refused_in_one_line_with_what_to_do(version, incident_run, tmp_path, capsys):
    path = tmp_path / "plan.json"
    plan_main([str(incident_run.log_dir), *INCIDENT, "-o", str(path)])
    capsys.readouterr()
    doc = json.loads(path.read_text())
    path.write_text(json.dumps({**doc, "version": version}))
    err = _refused(path, capsys)
    assert "is not one this nemo-resume reads (1)" in err and "nemo-resume plan RUN ... -o FILE" in err


@pytest.mark.parametrize("content, message", [
    # the pre-issue-16 hand-written form: no format, no version
    ('{"resume_step": 499, "restored": {}, "target": null, "request": {"lr": 1e-5, "min_lr": 3e-5, "max_steps": 1000}}',
     'not a nemo-resume plan file (no "format": "nemo-resume-plan")'),
    ('{"format": "nemo-resume-plan", "version": 1, "mode": "resume", "jump": NaN}', "not strict JSON (NaN"),
    ('{"format": "nemo-resume-plan", "version": 1, "mode": "resume"}', "missing ['request']"),
    ('{"format": "nemo-resume-plan", "version": 1, "mode": "resume", "request": {"lr": 1e-5, "min_lr": 0, '
     '"max_steps": 10, "schedul": "linear"}}', "request: unknown field(s) ['schedul']"),
    ('{"format": "nemo-resume-plan", "version": 1, "mode": "restart", "request": {}}', "mode='restart' must be one of"),
    ('{"format": "nemo-resume-plan", "version": 1, "mode": "resume", "resume_step": 5, "request": {"lr": 1e-5, '
     '"min_lr": 0, "max_steps": 10}, "restored": {"base_lrs": [1e-5], "min_lr": 0, "max_steps": 10, "last_epoch": 4}}',
     "restored: last_epoch=4 must be the resume_step (5)"),
])
def test_a_file_that_is_not_a_current_plan_is_refused_in_one_line(content, message, tmp_path, capsys):
    path = tmp_path / "plan.json"
    path.write_text(content)
    assert message in _refused(path, capsys)


def test_an_unwritable_plan_file_is_bad_input_in_one_line(incident_run, tmp_path, capsys):
    path = tmp_path / "missing" / "plan.json"
    assert plan_main([str(incident_run.log_dir), *INCIDENT, "-o", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"-o {path}: cannot write (No such file or directory)" in err and err.count("\n") == 1
