"""Megatron pre-training datasets for the tests, written by megatron-core's own ``IndexedDatasetBuilder``."""

from __future__ import annotations

from pathlib import Path

#: Token ids below this (the CPU rehearsal's tiny vocabulary, so its model stays tiny).
VOCAB = 127


def write_indexed_dataset(prefix: Path, docs: int, seed: int = 0) -> Path:
    """``PREFIX.bin``/``PREFIX.idx`` of ``docs`` random documents of 5-60 tokens, each ending in id ``VOCAB - 1``."""
    import numpy as np
    import torch
    from megatron.core.datasets.indexed_dataset import IndexedDatasetBuilder

    rng = np.random.default_rng(seed)
    builder = IndexedDatasetBuilder(f"{prefix}.bin", dtype=np.int32)
    for _ in range(docs):
        tokens = [*rng.integers(0, VOCAB - 1, size=int(rng.integers(5, 60))).tolist(), VOCAB - 1]
        builder.add_document(torch.tensor(tokens, dtype=torch.int32), [len(tokens)])
    builder.finalize(f"{prefix}.idx")
    return prefix


def sample_tokens(dataset, index: int) -> bytes:
    """The tokens megatron-core's GPTDataset serves at ``index`` (what a run trains on at that data position)."""
    return dataset[index]["tokens"].numpy().tobytes()
