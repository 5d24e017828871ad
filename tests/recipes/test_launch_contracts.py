"""The recipe scripts keep their promises at the edges (issue 16): a failed launch is exit 1, ``--data`` is checked
before anything starts, ``--json`` is one strict JSON document on stdout, start-up noise stays hidden."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nemo_resume.cli.recipe_cmd import run_script
from nemo_resume.cli.startup_noise import KNOWN_NOISE
from tests.support.megatron_data import write_indexed_dataset

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _script(task: str, tmp_path: Path, *argv: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """``python recipes/qwen25_TASK.py ARGV`` as a user runs it (the venv's bin first on PATH, for torchrun)."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "NEMORUN_HOME": str(tmp_path / "nr"),
           "COLUMNS": "100"}
    return subprocess.run([sys.executable, str(ROOT / "recipes" / f"qwen25_{task}.py"), "--dir", str(tmp_path / "res"), *argv],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def _strict_json(text: str) -> dict:
    """Exactly one JSON document, strict: NaN/Infinity refused, nothing before or after it."""
    def refuse(name: str):
        raise ValueError(f"non-strict JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


# ------------------------------------------------------------------------------------------- a failed launch


@pytest.mark.nemo
@pytest.mark.slow
def test_a_launch_that_fails_exits_1_and_says_so(tmp_path):
    """Regression: NeMo-Run reported FAILED and the script exited 0. Here torchrun starts NeMo's real pretraining on
    a machine without a GPU, which fails; ``--json`` keeps every line of it off stdout."""
    proc = _script("pretrain", tmp_path, "--gpus-per-node", "1", "--max-steps", "10", "--warmup-steps", "2", "--json")
    assert proc.returncode == 1, (proc.stdout[-2000:], proc.stderr[-2000:])
    doc = _strict_json(proc.stdout)
    assert doc["launch"]["failed"] == ["qwen25_pretrain: FAILED"]
    assert "the launched job did not succeed: qwen25_pretrain: FAILED" in proc.stderr
    assert f"nemo experiment logs {doc['launch']['experiment']} 0" in proc.stderr


# ------------------------------------------------------------------------------------------- --data


def _refused(task: str, tmp_path: Path, capsys, *argv: str) -> str:
    code = run_script(task, ["--dir", str(tmp_path / "res"), *argv], prog="p")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert not (tmp_path / "res").exists()  # refused before anything ran or was written
    return err[0]


def test_missing_or_wrong_data_is_refused_before_anything_starts(tmp_path, capsys):
    """Regression: a missing --data file started 8 torchrun workers and about 960 lines of tracebacks."""
    missing = tmp_path / "missing.jsonl"
    assert _refused("finetune", tmp_path, capsys, "--data", str(missing)) == (
        f"p: error: --data {missing}: does not exist; pass an instruction JSONL (instruction/input/output records) "
        "or a FineTuningDataModule folder")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "x"}\n')
    assert "first record: needs string fields 'instruction' and 'output'" in _refused("finetune", tmp_path, capsys, "--data", str(bad))
    folder = tmp_path / "ds"
    folder.mkdir()
    (folder / "training.jsonl").write_text("{}\n")
    assert "needs validation.jsonl" in _refused("finetune", tmp_path, capsys, "--data", str(folder))
    prefix = tmp_path / "corpus_text_document"
    prefix.with_suffix(".bin").write_bytes(b"")
    assert f"{prefix}.idx not found" in _refused("pretrain", tmp_path, capsys, "--data", str(prefix))
    prefix.with_suffix(".idx").write_bytes(b"")
    assert f"pass the prefix {prefix}, without .bin" in _refused("pretrain", tmp_path, capsys, "--data", f"{prefix}.bin")


def test_data_that_is_what_it_claims_is_accepted(tmp_path):
    from nemo_resume.recipes.options import build_parser, options_from_args

    jsonl = tmp_path / "cs.jsonl"
    jsonl.write_text('\n{"instruction": "q", "input": "", "output": "a"}\n')
    prefix = write_indexed_dataset(tmp_path / "corpus_text_document", docs=3)
    for task, data in (("finetune", jsonl), ("pretrain", prefix)):
        assert options_from_args(task, build_parser(task, "p").parse_args(["--data", str(data)])).data == data


# ------------------------------------------------------------------------------------------- bad input, one way


def test_bad_recipe_input_is_one_line_and_exit_2_like_plan(tmp_path, capsys):
    """Regression: --peft on pretrain was accepted silently; min_lr > lr was exit 1 after the tables (exit 2 in plan)."""
    assert "unrecognized arguments: --peft lora" in _refused("pretrain", tmp_path, capsys, "--peft", "lora")
    line = _refused("pretrain", tmp_path, capsys, "--lr", "1e-5", "--min-lr", "3e-5", "--dry-run")
    assert "lr (1e-05) must be above min_lr (3e-05)" in line and "--launch-anyway" in line
    assert "not a folder" in _refused("finetune", tmp_path, capsys, "--dir", str(ROOT / "README.md"))
    # every other value, checked before work (each was accepted and failed in the launched job, or never)
    assert "argument --tp: 0 must be at least 1" in _refused("pretrain", tmp_path, capsys, "--tp", "0")
    assert "argument --checkpoint-every: 0 must be at least 1" in _refused("pretrain", tmp_path, capsys, "--checkpoint-every", "0")
    assert "argument --adam-beta1: 2 must be below 1" in _refused("pretrain", tmp_path, capsys, "--adam-beta1", "2")
    assert "argument --weight-decay: -1 must be a finite number >= 0" in _refused("pretrain", tmp_path, capsys, "--weight-decay=-1")
    assert "--tp 3 x --pp 1 x --cp 1 = 3 does not divide the 8 GPUs" in _refused("pretrain", tmp_path, capsys, "--tp", "3")
    assert "--global-batch-size 12 is not a multiple of --micro-batch-size 2 x 8 data-parallel ranks" in _refused(
        "pretrain", tmp_path, capsys, "--global-batch-size", "12")
    out = tmp_path / "no" / "such" / "cfg.yaml"
    assert f"--to-yaml {out}: folder {out.parent} does not exist" in _refused("finetune", tmp_path, capsys, "--to-yaml", str(out))


# ------------------------------------------------------------------------------------------- --json and noise


@pytest.mark.nemo
@pytest.mark.slow
def test_dry_run_json_is_one_strict_document_and_the_noise_is_gone(tmp_path):
    """Regression: --json was followed by YAML, NeMo-Run's dry-run dump and progress lines on stdout; every NeMo
    import printed pynvml/megatron/OneLogger warnings on stderr."""
    proc = _script("finetune", tmp_path, "--dry-run", "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = _strict_json(proc.stdout)
    assert doc["plan"]["ok"] is True and doc["check"]["ok"] is True and doc["refusal"] is None
    assert "_target_: nemo.collections.llm.api.finetune" in proc.stderr  # the YAML, on stderr
    shown = [n.text for n in KNOWN_NOISE if n.text in proc.stderr]
    assert shown == [], shown
    verbose = _script("finetune", tmp_path, "--to-yaml", str(tmp_path / "f.yaml"), "--verbose")
    assert verbose.returncode == 0, verbose.stderr[-3000:]
    assert any(n.text in verbose.stderr for n in KNOWN_NOISE)  # the filter, not luck, hid them


@pytest.mark.nemo
@pytest.mark.slow
def test_smoke_json_is_one_strict_document(tmp_path):
    proc = _script("pretrain", tmp_path, "--smoke", "--max-steps", "20", "--warmup-steps", "2", "--checkpoint-every", "10",
                   "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = _strict_json(proc.stdout)
    assert doc["smoke"] == {"final_step": 20, "error": None}
    assert "smoke run: reached step 20" in proc.stderr


def test_a_pretraining_index_without_megatrons_header_is_refused_in_one_line(tmp_path, capsys):
    """Regression: an empty .idx passed the existence check, then megatron-core's reader raised in the plan."""
    prefix = tmp_path / "corpus_text_document"
    for suffix in (".bin", ".idx"):
        prefix.with_suffix(suffix).write_bytes(b"")
    assert f"--data {prefix}: {prefix}.idx is not a Megatron dataset index" in _refused(
        "pretrain", tmp_path, capsys, "--data", str(prefix))


@pytest.mark.nemo
def test_the_index_header_is_megatron_cores():
    from megatron.core.datasets.indexed_dataset import _INDEX_HEADER

    from nemo_resume.recipes.data import MEGATRON_INDEX_HEADER

    assert MEGATRON_INDEX_HEADER == _INDEX_HEADER
