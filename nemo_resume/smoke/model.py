"""A tiny NeMo-2-compatible LightningModule for real CPU smoke runs.

``SmokeModel`` is a ``lightning.LightningModule`` *and* a NeMo ``io.IOMixin``, so
``nl.ModelCheckpoint`` (through ``TrainerContext.from_trainer(trainer).io_dump``) writes a real
``context/io.json`` + ``context/model.yaml`` next to each checkpoint, exactly as for NeMo's own models.
It trains a couple of ``Linear`` layers on random data it generates itself (no downloads).

Param groups and ``lr_mults``
-----------------------------
NeMo's ``PytorchOptimizerModule`` accepts ``scale_lr_cond`` and ``lr_mult`` but does **not** use them
(nemo 2.7.3, ``nemo/lightning/pytorch/optim/pytorch.py``: only ``MegatronOptimizerModule`` hands them to
megatron-core, and ``nemo/lightning/_strategy_lib.py::setup_megatron_optimizer`` then multiplies each
param group's ``lr`` by its ``lr_mult`` *before* the scheduler is built, so the scheduler's ``base_lrs``
are the multiplied LRs). ``PytorchOptimizerModule.optimizers`` always calls
``optimizer_fn(_extract_model_params_for_optim(model, wd, no_weight_decay_cond))``, i.e. with two groups
split only by weight decay.

To get the same end state with the stock ``PytorchOptimizerModule`` we tag every parameter of the
``i``-th extra head with a ``lr_mult`` attribute (megatron-core tags parameters with attributes the same
way) and pass :func:`adam_with_lr_mults` as ``optimizer_fn``: it splits the incoming groups by that
attribute and gives each group ``lr = base_lr * mult`` (plus the ``lr_mult`` key, for readability).
``torch.optim.lr_scheduler.LRScheduler`` then records ``initial_lr`` per group and NeMo's
``CosineAnnealing`` uses those as ``base_lrs``, just as under Megatron.

Group order is deterministic: group 0 is the base group (lr_mult 1.0), group ``i`` (``i >= 1``) holds the
parameters of head ``i - 1`` with ``lr = base_lr * lr_mults[i - 1]``.
"""

from __future__ import annotations

import functools
from typing import Iterable, Optional, Sequence

import lightning.pytorch as pl
import torch
from nemo.lightning import io
from nemo.lightning.pytorch.optim import OptimizerModule
from torch import nn
from torch.utils.data import DataLoader, Dataset

__all__ = [
    "GROUP_ATTR",
    "LR_MULT_ATTR",
    "RandomRegressionDataset",
    "SmokeModel",
    "adam_with_lr_mults",
    "make_optimizer_fn",
]

#: Name of the attribute that tags a parameter with its LR multiplier.
LR_MULT_ATTR = "lr_mult"
#: Name of the attribute that tags a parameter with its param-group index (0: the base group).
GROUP_ATTR = "smoke_param_group"


def adam_with_lr_mults(params: Iterable, lr: float = 1e-3, **adam_kwargs) -> torch.optim.Adam:
    """``torch.optim.Adam`` with one param group per distinct ``param.lr_mult`` (default 1.0).

    ``params`` is what ``PytorchOptimizerModule`` passes: a list of ``{"params": [...], "weight_decay": wd}``
    dicts (or a plain iterable of tensors). Each incoming group is split by the parameters' ``lr_mult``
    attribute; a resulting group gets ``lr = lr * mult`` and keeps ``lr_mult`` as an extra key. Empty groups
    (``PytorchOptimizerModule`` always makes a second, possibly empty, no-weight-decay group) are dropped.
    Groups come out in the order of the incoming groups, and within one by the parameters' ``smoke_param_group``
    index (untagged parameters: index 0, the base group).
    """
    groups_in = list(params)
    if groups_in and not isinstance(groups_in[0], dict):
        groups_in = [{"params": groups_in}]

    groups_out: list[dict] = []
    for group in groups_in:
        # key: (group index, mult); untagged parameters are (0, 1.0), the base group
        by_key: dict[tuple[int, float], list] = {}
        for p in group["params"]:
            key = (int(getattr(p, GROUP_ATTR, 0)), float(getattr(p, LR_MULT_ATTR, 1.0)))
            by_key.setdefault(key, []).append(p)
        for key in sorted(by_key):
            extra = {k: v for k, v in group.items() if k != "params"}
            groups_out.append({**extra, "params": by_key[key], "lr": lr * key[1], LR_MULT_ATTR: key[1]})
    return torch.optim.Adam(groups_out, lr=lr, **adam_kwargs)


class RandomRegressionDataset(Dataset):
    """``num_samples`` random ``(x, y)`` pairs, generated once from ``seed`` (deterministic, in memory)."""

    def __init__(self, num_samples: int, in_features: int, out_features: int, seed: int = 0):
        gen = torch.Generator().manual_seed(seed)
        self.x = torch.randn(num_samples, in_features, generator=gen)
        w = torch.randn(in_features, out_features, generator=gen)
        self.y = self.x @ w + 0.1 * torch.randn(num_samples, out_features, generator=gen)

    def __len__(self) -> int:
        return self.x.shape[0]

    def __getitem__(self, i: int):
        return self.x[i], self.y[i]


class SmokeModel(pl.LightningModule, io.IOMixin):
    """Two ``Linear`` layers (plus one extra ``Linear`` head per entry of ``lr_mults``).

    Args:
        hidden: width of the hidden layer.
        lr_mults: one extra param group per entry, with ``lr = base_lr * mult`` (see module docstring).
        optim: a NeMo ``OptimizerModule`` (e.g. ``PytorchOptimizerModule``); connected like NeMo's
            ``GPTModel`` does (``optim.connect(self)`` in ``__init__``), which binds ``configure_optimizers``.
        in_features / out_features: data dimensions.
        batch_size / num_samples / data_seed: the internal random training set.
    """

    def __init__(
        self,
        hidden: int = 16,
        lr_mults: Sequence[float] = (),
        optim: Optional[OptimizerModule] = None,
        in_features: int = 8,
        out_features: int = 4,
        batch_size: int = 8,
        num_samples: int = 512,
        data_seed: int = 0,
    ):
        super().__init__()
        self.lr_mults = tuple(float(m) for m in lr_mults)
        self.in_features = in_features
        self.out_features = out_features
        self.batch_size = batch_size
        self.num_samples = num_samples
        self.data_seed = data_seed

        self.fc1 = nn.Linear(in_features, hidden)
        self.fc2 = nn.Linear(hidden, out_features)
        self.heads = nn.ModuleList(nn.Linear(hidden, out_features) for _ in self.lr_mults)
        for i, (head, mult) in enumerate(zip(self.heads, self.lr_mults), start=1):
            for p in head.parameters():
                setattr(p, LR_MULT_ATTR, mult)
                setattr(p, GROUP_ATTR, i)

        self.optim = optim
        if optim is not None:
            optim.connect(self)  # binds configure_optimizers, as nemo's GPTModel does

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.fc1(x))
        out = self.fc2(h)
        for head in self.heads:
            out = out + head(h)
        return out

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.mse_loss(self(x), y)

    def train_dataloader(self) -> DataLoader:
        ds = RandomRegressionDataset(self.num_samples, self.in_features, self.out_features, self.data_seed)
        return DataLoader(ds, batch_size=self.batch_size, shuffle=False, num_workers=0)


def make_optimizer_fn(lr: float, weight_decay: float = 0.0, **adam_kwargs) -> functools.partial:
    """The ``optimizer_fn`` for ``PytorchOptimizerModule`` (it reads ``.keywords['weight_decay']``)."""
    return functools.partial(adam_with_lr_mults, lr=lr, weight_decay=weight_decay, **adam_kwargs)
