"""How NeMo sizes and orders a pre-training dataset, and what a resume with another size does to the data.

NeMo 2.7.3's ``PreTrainingDataModule`` builds its training set to ``max_steps x global batch`` samples, or to
``num_train_samples`` when that is larger (``nemo/collections/llm/gpt/data/pre_training.py:284-293``). Its data
position is a sample count: a resumed run reads the dataset's indices on from the consumed samples
(``MegatronPretrainingSampler``, ``nemo/lightning/data.py:313-370``). megatron-core 0.15.3's ``GPTDataset`` draws
its order from two numbers only, the epoch count and whether the final epoch is shuffled apart
(``megatron/core/datasets/gpt_dataset.py:368-456``, :func:`gpt_epochs`): a size with the same two numbers keeps
every index's sample, another one reshuffles them all.

Pure: the dataset's tokens per epoch come in as a number (the recipe measures them with megatron-core's reader).
"""

from __future__ import annotations

from dataclasses import dataclass

#: The data module whose dataset NeMo sizes from the run (fine-tuning and mock data modules are sized otherwise).
PRETRAINING_DATAMODULE = "PreTrainingDataModule"
#: ``GPTDatasetConfig.add_extra_token_to_sequence`` (True: each sample reads seq_length + 1 tokens).
EXTRA_TOKEN = 1
#: gpt_dataset.py:389: a final epoch shorter than this share of an epoch is shuffled on its own.
FINAL_EPOCH_THRESHOLD = 0.80


@dataclass(frozen=True)
class Epochs:
    """What megatron-core's GPTDataset order follows: the epochs it tiles and whether the last one stands apart."""

    count: int
    separate_final: bool

    def __str__(self) -> str:
        last = ", the last shuffled apart" if self.separate_final else ""
        return f"{self.count} epoch{'s' if self.count != 1 else ''}{last}"


def gpt_epochs(samples: int, tokens_per_epoch: int, seq_length: int) -> Epochs:
    """``GPTDataset._get_num_epochs`` and its ``separate_final_epoch`` (gpt_dataset.py:368-393, 531-550) for a
    training set of ``samples`` over ``tokens_per_epoch`` tokens."""
    count, tokens = 1, tokens_per_epoch
    while tokens < samples * seq_length + EXTRA_TOKEN:
        count += 1
        tokens += tokens_per_epoch
    if count == 1:
        return Epochs(1, False)
    before_final = ((count - 1) * tokens_per_epoch - EXTRA_TOKEN) // seq_length
    per_epoch = (tokens_per_epoch - EXTRA_TOKEN) // seq_length
    return Epochs(count, samples - before_final < int(FINAL_EPOCH_THRESHOLD * per_epoch))


@dataclass(frozen=True)
class DataResume:
    """The training set of a run and of its resume, in samples.

    ``old``: the size the checkpoint's run built; ``natural``: ``max_steps x global batch`` of the resume, what
    NeMo builds without ``num_train_samples``; ``built``: what the resume builds (``num_train_samples`` when set);
    ``needed``: the last sample the resume reads (consumed samples + the steps left x its global batch ``gbs``).
    """

    old: int
    natural: int
    built: int
    needed: int | None
    gbs: int

    @property
    def runs_out(self) -> bool:
        return self.needed is not None and self.needed > self.built

    @property
    def resized(self) -> bool:
        return self.built != self.old


def kept_size(old: int, natural: int, needed: int | None) -> int | None:
    """The ``num_train_samples`` that keeps the data on a resume, or None where NeMo's own size does as well.

    The old run's size keeps every sample's index (the same dataset); the resume must also reach its last step, and
    NeMo refuses a size below ``max_steps x global batch`` (pre_training.py:288-291).
    """
    size = max(old, needed or 0)
    return size if size > natural else None
