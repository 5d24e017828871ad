"""``nemo-resume doctor`` on this machine: what it finds, its exit codes, its JSON, and that it writes nothing
but the report it is asked for."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from nemo_resume.cli.doctor_cmd import main
from nemo_resume.environment import stack

pytestmark = pytest.mark.nemo
ROOT = Path(__file__).resolve().parents[2]
#: As root, file permissions bind only without the capabilities that override them (CAP_DAC_*).
NO_DAC = ("setpriv", "--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-all", "--")


def _strict(text: str) -> dict:
    def refuse(name: str):
        raise ValueError(f"not strict JSON: {name}")

    return json.loads(text, parse_constant=refuse)


def _doctor(capsys, *argv: str) -> tuple[int, dict]:
    code = main([*argv, "--json"])
    out = capsys.readouterr().out
    return code, _strict(out)


def _finding(doc: dict, check: str) -> dict:
    (found,) = [f for f in doc["findings"] if f["check"] == check]
    return found


def _tree(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def test_this_machine_has_no_gpu_and_the_disk_figures_are_the_real_ones(capsys, tmp_path):
    import torch

    if torch.cuda.device_count():
        pytest.skip("this machine has GPUs")
    results = tmp_path / "results"
    code, doc = _doctor(capsys, "--dir", str(results))
    usage = shutil.disk_usage(tmp_path)
    assert code == 1 and not doc["ok"]
    gpu = _finding(doc, "gpu")
    assert gpu["level"] == "blocker" and gpu["facts"]["gpus"] == 0 and gpu["facts"]["needed_gpus"] == 8
    assert "--smoke" in gpu["message"]
    disk = _finding(doc, "disk")
    assert disk["facts"]["checked"] == str(tmp_path)  # results/ does not exist: its parent is asked
    assert disk["facts"]["total_bytes"] == usage.total
    assert abs(disk["facts"]["free_bytes"] - usage.free) < 256 * 2**20  # other writers on the disk meanwhile
    c = doc["launch"]["checkpoints"]
    assert disk["facts"]["needed_bytes"] == c["needed_bytes"] == c["copies_at_peak"] * c["checkpoint_bytes"]
    assert disk["level"] == ("ok" if usage.free >= c["needed_bytes"] else "blocker")
    memory = _finding(doc, "memory")
    assert memory["facts"]["total_bytes"] == os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert _tree(tmp_path) == []  # inspecting wrote nothing


def test_smoke_needs_no_gpu_and_warnings_do_not_block(capsys, tmp_path, monkeypatch):
    real = stack.installed_version
    monkeypatch.setattr(stack, "installed_version", lambda d: "0.16.0" if d == "megatron-core" else real(d))
    code, doc = _doctor(capsys, "--dir", str(tmp_path), "--smoke", "--max-steps", "20")
    assert _finding(doc, "gpu")["level"] == "ok"
    assert doc["launch"]["accelerator"] == "cpu" and doc["launch"]["checkpoints"]["weight_bytes"] == 4  # fp32
    assert (code, doc["ok"], doc["blockers"], doc["warnings"]) == (0, True, 0, 1)
    (warned,) = [f for f in doc["findings"] if f["level"] == "warning"]
    assert warned["subject"] == "megatron-core"


def test_the_report_file_is_the_json_and_the_only_thing_written(capsys, tmp_path):
    report = tmp_path / "validation_report.json"
    code, doc = _doctor(capsys, "--dir", str(tmp_path / "results"), "--smoke", "--report", str(report))
    assert _strict(report.read_text()) == doc
    assert _tree(tmp_path) == ["validation_report.json"]


def test_the_human_report_shows_every_check_and_the_verdict(capsys, tmp_path):
    code = main(["--dir", str(tmp_path), "--task", "finetune", "--peft", "lora", "--smoke", "--max-steps", "20"])
    out = capsys.readouterr().out
    assert code == 0
    for word in ("stack", "gpu", "permission", "disk", "memory", "LoRA adapter parameters", "OK: nothing blocks"):
        assert word in out, word


def _cli(argv: list[str], prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    return subprocess.run([*prefix, sys.executable, "-m", "nemo_resume", "doctor", *argv], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL, check=False)


def test_a_read_only_dir_is_a_blocker(tmp_path):
    if os.geteuid() == 0 and shutil.which("setpriv") is None:
        pytest.skip("running as root and setpriv (util-linux) is missing: a read-only folder does not bind root")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        p = _cli(["--dir", str(locked / "results"), "--smoke", "--json", "--verbose"], NO_DAC if os.geteuid() == 0 else ())
    finally:
        locked.chmod(0o755)
    assert p.returncode == 1, p.stderr[-2000:]
    permission = _finding(_strict(p.stdout), "permission")
    assert permission["level"] == "blocker" and permission["facts"]["checked"] == str(locked)
    assert "not writable" in permission["message"]
    assert _tree(locked) == []


@pytest.mark.parametrize(("argv", "says"), [
    (["--bogus"], "unrecognized arguments: --bogus"),
    (["--size", "9b"], "--size"),
    (["--task", "eval"], "--task"),
    (["--report", "no/such/folder/validation_report.json"], "--report no/such/folder/validation_report.json: folder"),
])
def test_bad_input_is_one_line_and_exit_2(argv, says):
    p = _cli(argv)
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 2 and len(lines) == 1, p.stderr[-2000:]
    assert lines[0].startswith("nemo-resume doctor: error: ") and says in lines[0]
    assert p.stdout == ""
