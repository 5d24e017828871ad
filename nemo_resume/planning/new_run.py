"""The resumed run as the planner sees it: the layout a launch will have, to compare with the checkpoint's."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class NewRun:
    """The resumed run's layout; None where it is the checkpoint's (or unknown).

    ``devices`` is per node. ``lr_mults``: the multipliers other than 1.0 the run gives param groups (each distinct one;
    () none), None when unknown. ``max_steps``: the new horizon. ``datamodule``: its data module's class name.
    ``train_tokens``: the tokens in one epoch of its pre-training dataset's training split (measured from the
    data; None: not measured). ``num_train_samples``: ``PreTrainingDataModule(num_train_samples=...)``.
    ``peft_base``: the base checkpoint a fine-tuning run restores (``--model``'s import; None: NeMo's default).
    """

    tp: int | None = None
    pp: int | None = None
    cp: int | None = None
    devices: int | None = None
    num_nodes: int | None = None
    global_batch_size: int | None = None
    micro_batch_size: int | None = None
    max_steps: int | None = None
    lr_mults: tuple[float, ...] | None = None
    seq_length: int | None = None
    datamodule: str | None = None
    train_tokens: int | None = None
    num_train_samples: int | None = None
    peft_base: str | None = None
