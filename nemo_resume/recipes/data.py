"""Instruction data (seed 004's ``instruction``/``input``/``output`` JSONL) as NeMo's
``FineTuningDataModule`` folder: ``training.jsonl``, ``validation.jsonl``, ``test.jsonl`` of
``{"input", "output"}`` records."""

from __future__ import annotations

import json
import random
from pathlib import Path

from nemo_resume.errors import NemoResumeError
from nemo_resume.planning.data_order import PRETRAINING_DATAMODULE

#: The files NeMo's FineTuningDataModule reads from its ``dataset_root`` (training and validation splits).
FINETUNE_FILES = ("training.jsonl", "validation.jsonl")
#: A Megatron dataset prefix names these two files (NeMo's PreTrainingDataModule checks them the same way).
MEGATRON_SUFFIXES = (".bin", ".idx")
#: The first bytes of every ``.idx`` megatron-core writes and reads (``indexed_dataset.py`` ``_INDEX_HEADER``).
MEGATRON_INDEX_HEADER = b"MMIDIDX\x00\x00"
_SCAN_LINES, _MAX_RECORD_CHARS = 1000, 1 << 20


def check_data(task: str, data: Path) -> None:
    """``--data`` is what the task reads, checked before anything runs (a launch would fail on every worker).

    Fine-tuning takes an instruction JSONL (its first record is read) or a FineTuningDataModule folder;
    pre-training takes a Megatron dataset prefix (``PREFIX.bin`` + ``PREFIX.idx``).

    Raises:
        NemoResumeError: naming the path and what to pass instead.
    """
    if task == "pretrain":
        stem = data.with_suffix("") if data.suffix in MEGATRON_SUFFIXES else data
        missing = [str(stem) + s for s in MEGATRON_SUFFIXES if not Path(str(stem) + s).is_file()]
        if missing:
            raise NemoResumeError(f"--data {data}: {', '.join(missing)} not found; pass a Megatron dataset prefix "
                                  "(the path without .bin/.idx, made by Megatron's preprocess_data.py)")
        if stem != data:
            raise NemoResumeError(f"--data {data}: pass the prefix {stem}, without {data.suffix}")
        with open(f"{stem}.idx", "rb") as fh:
            if fh.read(len(MEGATRON_INDEX_HEADER)) != MEGATRON_INDEX_HEADER:
                raise NemoResumeError(f"--data {data}: {stem}.idx is not a Megatron dataset index (no MMIDIDX header); "
                                      "pass the prefix Megatron's preprocess_data.py wrote")
        return
    if data.is_dir():
        missing = [f for f in FINETUNE_FILES if not (data / f).is_file()]
        if missing:
            raise NemoResumeError(f"--data {data}: a FineTuningDataModule folder needs {' and '.join(missing)}; "
                                  "or pass an instruction JSONL file")
        return
    if not is_instruction_jsonl(data):
        what = "does not exist" if not data.exists() else "is not a .jsonl file or a folder"
        raise NemoResumeError(f"--data {data}: {what}; pass an instruction JSONL (instruction/input/output records) "
                              "or a FineTuningDataModule folder")
    with open(data, encoding="utf-8", errors="replace") as fh:  # one record, bounded: the conversion reads all
        first = ""
        for _ in range(_SCAN_LINES):
            first = fh.readline(_MAX_RECORD_CHARS)
            if not first or first.strip():
                break
    if not first.strip():
        raise NemoResumeError(f"--data {data}: no record in its first {_SCAN_LINES} lines; "
                              "expected instruction/input/output records")
    _record(first, f"{data}: first record")


def datamodule_name(task: str, data: Path | None) -> str:
    """The class name of the data module the recipe builds for ``--data`` (as a checkpoint records it)."""
    if data is None:
        return "MockDataModule"
    return "FineTuningDataModule" if task == "finetune" else PRETRAINING_DATAMODULE


def train_tokens(prefix: Path) -> int:
    """The tokens in one epoch of a Megatron dataset's training split, as megatron-core's GPTDataset counts them
    (gpt_dataset.py:523-529) over the split NeMo's ``PreTrainingDataModule`` gives it by default
    (blended_megatron_dataset_builder.py:431-438): what decides its epochs and so its order
    (:mod:`nemo_resume.planning.data_order`). Reads the ``.idx`` only (megatron-core's reader, memory-mapped)."""
    import inspect

    from megatron.core.datasets.blended_megatron_dataset_config import (
        convert_split_vector_to_split_matrix,
        parse_and_normalize_split,
    )
    from megatron.core.datasets.indexed_dataset import IndexedDataset
    from nemo.collections import llm

    split = inspect.signature(llm.PreTrainingDataModule).parameters["split"].default
    (begin, end) = convert_split_vector_to_split_matrix(parse_and_normalize_split(split))[0]
    try:
        dataset = IndexedDataset(str(prefix))  # kept while its lengths are read: it unmaps them when collected
    except Exception as exc:  # noqa: BLE001 - megatron-core's reader asserts on a bad header
        raise NemoResumeError(f"--data {prefix}: {prefix}.idx is not a Megatron dataset index megatron-core reads "
                              f"({type(exc).__name__}: {exc}); pass the prefix preprocess_data.py wrote") from None
    n = dataset.sequence_lengths.shape[0]
    return int(dataset.sequence_lengths[int(round(begin * n)):int(round(end * n))].sum())


def is_instruction_jsonl(path: Path | None) -> bool:
    return path is not None and path.suffix == ".jsonl" and path.is_file()


def dataset_root(data: Path, run_dir: Path) -> Path:
    """Where the converted folder lives (inside the run folder, so a resume finds the same data)."""
    return run_dir / "data" if is_instruction_jsonl(data) else data


def _record(line: str, where: str) -> dict[str, str]:
    try:
        rec = json.loads(line)
    except json.JSONDecodeError as exc:
        raise NemoResumeError(f"{where}: not JSON ({exc.msg}); expected an instruction/input/output record") from exc
    if not isinstance(rec, dict) or not isinstance(rec.get("instruction"), str) or not isinstance(rec.get("output"), str):
        raise NemoResumeError(f"{where}: needs string fields 'instruction' and 'output' (and optionally 'input')")
    extra = rec.get("input") or ""
    prompt = rec["instruction"] + (f"\n\n{extra}" if extra else "")
    return {"input": prompt, "output": rec["output"]}


def convert_instruction_jsonl(src: Path, dest: Path, *, val_fraction: float = 0.05, seed: int = 1234) -> dict[str, int]:
    """Convert ``src`` into a FineTuningDataModule folder at ``dest``; returns records per split.

    The split is seeded, so converting again gives the same files. Existing files in ``dest``
    are left alone when identical, and refused (never overwritten) when not.

    Raises:
        NemoResumeError: a line is not a valid record (named by line number), or ``dest`` holds
            different data.
    """
    records = []
    with open(src, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if line.strip():
                records.append(_record(line, f"{src}:{n}"))
    if len(records) < 2:
        raise NemoResumeError(f"{src}: {len(records)} record(s); need at least 2 (one for validation)")
    random.Random(seed).shuffle(records)
    n_val = max(1, int(len(records) * val_fraction))
    splits = {"training.jsonl": records[n_val:], "validation.jsonl": records[:n_val], "test.jsonl": records[:n_val]}
    texts = {name: "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs) for name, recs in splits.items()}
    dest.mkdir(parents=True, exist_ok=True)
    for name, text in texts.items():
        path = dest / name
        if path.exists() and path.read_text(encoding="utf-8") != text:
            raise NemoResumeError(f"{path} exists with different data; move it away or use another --dir/--name")
        if not path.exists():
            path.write_text(text, encoding="utf-8")
    return {name: len(recs) for name, recs in splits.items()}
