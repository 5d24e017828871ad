"""The doc-command contract itself (tests/docs/test_doc_commands.py's docstring), on small Markdown samples."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.docs.test_doc_commands import expected_exit, runnable, unmarked_launch
from tests.support.doc_commands import commands, doc_blocks, split_comment

SAMPLE = '''# t

```bash
# the incident: FAIL at step 501
python scripts/check_schedule.py --lr 1e-5 --min-lr '3e-5#x' \\
    --max-steps 1000   # stock NeMo
nemo-resume inspect /path/to/run   # exit 2 when missing

python recipes/qwen25_pretrain.py --lr 1e-5
```

```bash gpu
python recipes/qwen25_pretrain.py --size 72b --executor slurm
python recipes/qwen25_pretrain.py --smoke
nemo llm pretrain --factory "nemo_resume_qwen25(size='7b')" --yes
```

```console
$ nemo-resume plan results/run --json
{"ok": true}
```

```python
print("hi")
```
'''


@pytest.fixture()
def sample(tmp_path: Path):
    (tmp_path / "docs").mkdir()
    doc = tmp_path / "docs" / "t.md"
    doc.write_text(SAMPLE)
    return doc_blocks(doc, tmp_path)


def test_blocks_commands_lines_and_comments(sample):
    assert [(b.line, b.lang, sorted(b.tags)) for b in sample] == [
        (3, "bash", []), (12, "bash", ["gpu"]), (18, "console", []), (23, "python", [])]
    first = commands(sample[0])
    assert [(c.where, c.comment) for c in first] == [
        ("docs/t.md:5", "the incident: FAIL at step 501 stock NeMo"),
        ("docs/t.md:7", "exit 2 when missing"),
        ("docs/t.md:9", ""),
    ]
    assert first[0].code.endswith("'3e-5#x' \\\n    --max-steps 1000")
    assert [c.code for c in commands(sample[2])] == ["nemo-resume plan results/run --json"]


def test_expected_exit_from_the_comment(sample):
    assert [expected_exit(c.comment) for c in commands(sample[0])] == [1, 2, 0]


def test_a_launch_needs_a_gpu_block_and_runs_as_its_dry_run(sample):
    plain, gpu = commands(sample[0]), commands(sample[1])
    assert unmarked_launch(plain[2]) and "```bash gpu" in unmarked_launch(plain[2])
    assert not any(unmarked_launch(c) for c in plain[:2] + gpu)
    assert [runnable(c) for c in gpu] == [
        "python recipes/qwen25_pretrain.py --size 72b --executor slurm --dry-run",
        "python recipes/qwen25_pretrain.py --smoke",
        "nemo llm pretrain --factory \"nemo_resume_qwen25(size='7b')\" --yes --dryrun",
    ]
    assert runnable(plain[1]) == "nemo-resume inspect results/run"  # the placeholder table


@pytest.mark.parametrize(("line", "split"), [
    ("a 'b # c' # d", ("a 'b # c'", "d")),
    ('a "#b" x#y', ('a "#b" x#y', "")),
    ("a \\# b", ("a \\# b", "")),
])
def test_comment_split_as_bash_reads_it(line, split):
    assert split_comment(line) == split


def test_an_unclosed_fence_is_an_error(tmp_path):
    doc = tmp_path / "x.md"
    doc.write_text("```bash\nls\n")
    with pytest.raises(ValueError, match="x.md:1: the ``` fence is never closed"):
        doc_blocks(doc, tmp_path)
