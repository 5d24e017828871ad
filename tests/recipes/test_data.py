"""Seed 004's instruction JSONL becomes NeMo's FineTuningDataModule folder, deterministically."""

from __future__ import annotations

import json

import pytest

from nemo_resume.errors import NemoResumeError
from nemo_resume.recipes.data import convert_instruction_jsonl


def _write(path, records):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")


def test_records_become_input_output_pairs_split_deterministically(tmp_path):
    src = tmp_path / "cs.jsonl"
    _write(src, [{"instruction": f"问题 {i}", "input": "选项" if i % 2 else "", "output": str(i)} for i in range(40)])
    counts = convert_instruction_jsonl(src, tmp_path / "out")
    assert counts == {"training.jsonl": 38, "validation.jsonl": 2, "test.jsonl": 2}
    rows = [json.loads(line) for line in (tmp_path / "out" / "training.jsonl").read_text(encoding="utf-8").splitlines()]
    assert set(rows[0]) == {"input", "output"}
    odd = next(r for r in rows if int(r["output"]) % 2)
    assert odd["input"] == f"问题 {odd['output']}\n\n选项"
    before = (tmp_path / "out" / "training.jsonl").read_bytes()
    convert_instruction_jsonl(src, tmp_path / "out")  # again: identical, accepted, untouched
    assert (tmp_path / "out" / "training.jsonl").read_bytes() == before


def test_bad_record_names_the_line(tmp_path):
    src = tmp_path / "bad.jsonl"
    src.write_text('{"instruction": "a", "output": "b"}\n{"instruction": 3}\n')
    with pytest.raises(NemoResumeError, match=r"bad.jsonl:2: needs string fields"):
        convert_instruction_jsonl(src, tmp_path / "out")


def test_different_existing_data_is_never_overwritten(tmp_path):
    src = tmp_path / "a.jsonl"
    _write(src, [{"instruction": str(i), "output": "x"} for i in range(5)])
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "training.jsonl").write_text("other\n")
    with pytest.raises(NemoResumeError, match="exists with different data"):
        convert_instruction_jsonl(src, tmp_path / "out")
    assert (tmp_path / "out" / "training.jsonl").read_text() == "other\n"
