"""What a rehearsal trains on: every training sample its data module serves, by dataset index, as it is read.

``RecordSamples`` is a Lightning callback a test adds to a recipe (``rehearse_recipe(..., edit=...)``); the
rehearsal process imports it from here. It wraps the data module's training set after NeMo built it and before
the data loader is made, and appends ``INDEX SHA1 DOC:FROM-TO;...`` per sample to ``path``: the hash of its tokens
and where in which documents they are (from megatron-core's GPTDataset indices, gpt_dataset.py:160-222). An
observation: the data is unchanged.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import Callback
from torch.utils.data import Dataset


class _Recorded(Dataset):
    def __init__(self, dataset: Any, path: str) -> None:
        self.dataset, self.path = dataset, path

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Any:
        item = self.dataset[index]
        ds = self.dataset
        j = int(ds.shuffle_index[index])
        (first, start), (last, end) = ds.sample_index[j], ds.sample_index[j + 1]
        spans = []
        for k in range(int(first), int(last) + 1):  # GPTDataset._query_document_sample_shuffle_indices' reads
            doc = int(ds.document_index[k])
            hi = int(end) + ds.config.add_extra_token_to_sequence if k == last else int(ds.dataset.sequence_lengths[doc])
            spans.append(f"{doc}:{int(start) if k == first else 0}-{hi}")
        with open(self.path, "a") as fh:
            fh.write(f"{int(index)} {hashlib.sha1(item['tokens'].numpy().tobytes()).hexdigest()} {';'.join(spans)}\n")
        return item

    def __getattr__(self, name: str) -> Any:  # collate_fn and the rest: the dataset's own
        return getattr(self.__dict__["dataset"], name)


class RecordSamples(Callback):
    def __init__(self, path: str) -> None:
        self.path = path

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        # Lightning runs the data module's setup (NeMo builds the datasets) before the callbacks' setup, and makes
        # the loaders after both.
        trainer.datamodule._train_ds = _Recorded(trainer.datamodule._train_ds, self.path)


@dataclass(frozen=True)
class Sample:
    index: int
    tokens: str  # their SHA-1
    positions: frozenset[tuple[int, int]]  # (document, offset) of each token


def _positions(spans: str) -> frozenset[tuple[int, int]]:
    out = set()
    for span in spans.split(";"):
        doc, lo_hi = span.split(":")
        lo, hi = lo_hi.split("-")
        out |= {(int(doc), p) for p in range(int(lo), int(hi))}
    return frozenset(out)


def read_samples(path: Path) -> list[Sample]:
    """Every training sample read, in order."""
    return [Sample(int(i), h, _positions(spans)) for i, h, spans in (line.split() for line in path.read_text().splitlines())]
