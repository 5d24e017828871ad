"""Bad input to ``nemo-resume audit``: one line on stderr naming the path and what to do, exit 2, nothing on
stdout (with ``--json`` too), and nothing written."""

from __future__ import annotations

import json
import shutil

import pytest

pytestmark = pytest.mark.nemo


def _bad(capsys, *argv) -> str:
    from nemo_resume.cli import main

    code = main(["audit", *map(str, argv), "--json"])
    out = capsys.readouterr()
    lines = out.err.strip().splitlines()
    assert code == 2 and out.out == "", (code, out.out[-500:])
    assert len(lines) == 1 and lines[0].startswith("nemo-resume audit: error: "), out.err[-2000:]
    return lines[0]


def test_a_missing_run_folder_is_named(tmp_path, capsys):
    line = _bad(capsys, tmp_path / "nope")
    assert f"{tmp_path / 'nope'}: no such run folder" in line


@pytest.mark.slow
def test_a_run_logged_without_tensorboard_says_where_the_event_files_belong(finished_run, capsys):
    """A real NeMo run (the Lightning stand-in, NeMoLogger without a TensorBoard logger): checkpoints, no events."""
    run = finished_run.log_dir
    line = _bad(capsys, run)
    assert f"no TensorBoard event files under {run.parent / 'tb_logs' / run.name}" in line


def test_an_unreadable_event_file_is_no_training_step(tmp_path, capsys):
    version = tmp_path / "tb_logs" / "run" / "2026-01-01_00-00-00"
    version.mkdir(parents=True)
    (version / "events.out.tfevents.1.host.0.0").write_bytes(bytes(range(256)) * 8)
    (tmp_path / "run").mkdir()
    assert "1 event file(s) hold no training step" in _bad(capsys, tmp_path / "run")


@pytest.mark.parametrize(("text", "says"), [
    ("{", "not strict JSON"),
    ('{"format": "nemo-resume-plan", "version": 1, "mode": "fresh"}', "missing ['request']"),
    ('{"format": "nemo-resume-plan", "version": 9, "mode": "fresh", "request": {}}', "plan file version 9"),
    ('{"lr": NaN}', "not strict JSON"),
], ids=["truncated", "missing-field", "other-version", "nan"])
def test_a_malformed_plan_is_refused_before_the_logs_are_read(tmp_path, capsys, text, says):
    plan = tmp_path / "plan.json"
    plan.write_text(text)
    line = _bad(capsys, tmp_path / "not-read", "--plan", plan)
    assert f"--plan {plan}: " in line and says in line


@pytest.mark.slow
@pytest.mark.megatron
def test_a_malformed_saved_plan_names_the_file_and_how_to_audit_without_it(megatron_run, tmp_path, capsys):
    source = megatron_run(True, 1).run_dir
    shutil.copytree(source.parent, tmp_path, dirs_exist_ok=True)
    run = tmp_path / source.name
    bad = run / "plans" / "2026-01-01T00-00-00.000000Z.json"
    bad.parent.mkdir()
    bad.write_text(json.dumps({"format": "nemo-resume-plan"}))
    line = _bad(capsys, run)
    assert str(bad) in line and f"move it out of {bad.parent} to audit without it" in line
