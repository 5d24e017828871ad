"""``--optim NAME``: every Hugging Face optimizer name mapped to megatron-core's OptimizerConfig, or refused.

Parametrized over the real ``transformers.training_args.OptimizerNames``; the mapped fields are built into
megatron-core's real ``OptimizerConfig``.
"""

from __future__ import annotations

import inspect

import pytest

from nemo_resume.errors import NemoResumeError
from nemo_resume.schedules.optim_names import BY_NAME, OPTIM_NAMES, optim_name

pytestmark = pytest.mark.nemo

from transformers.training_args import OptimizerNames  # noqa: E402

HF = [o.value for o in OptimizerNames]


def test_the_table_is_exactly_hugging_faces_enum_in_its_order():
    assert [o.name for o in OPTIM_NAMES] == HF


@pytest.mark.parametrize("name", HF)
def test_every_hf_name_maps_to_a_megatron_optimizer_or_is_refused_with_a_reason(name):
    entry = BY_NAME[name]
    if entry.refused is None:
        assert optim_name(name) is entry
        assert entry.optimizer in ("adam", "sgd") and entry.differences and entry.nearest is None
        from megatron.core.optimizer import OptimizerConfig

        config = OptimizerConfig(**entry.config_fields)  # real fields, accepted by megatron-core's __post_init__
        assert {k: getattr(config, k) for k in entry.config_fields} == entry.config_fields
        return
    with pytest.raises(NemoResumeError) as info:
        optim_name(name)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"--optim {name}: {entry.refused}")
    assert message.endswith(f"use --optim {entry.nearest} (docs/optimizers.md)")
    assert BY_NAME[entry.nearest].refused is None  # the suggestion itself runs
    assert entry.config_fields == {}


def test_an_unknown_name_is_refused_with_the_names_that_run():
    with pytest.raises(NemoResumeError, match=r"--optim adam: not a Hugging Face optimizer name; choose one of "
                                              r"adamw_torch, adamw_torch_fused, adamw_apex_fused, sgd, paged_adamw_32bit"):
        optim_name("adam")


def test_adam_names_run_megatrons_adam_as_adamw():
    """megatron-core picks torch.optim.AdamW (or FusedAdam's adam_w_mode) from decoupled_weight_decay."""
    for name in ("adamw_torch", "adamw_torch_fused", "adamw_apex_fused", "paged_adamw_32bit"):
        assert BY_NAME[name].config_fields == {"optimizer": "adam", "decoupled_weight_decay": True}


def test_sgd_is_hfs_torch_sgd_with_its_default_momentum_and_no_distributed_optimizer():
    """HF's ``sgd`` is ``torch.optim.SGD`` with lr only: momentum is torch's default, not megatron-core's 0.9."""
    import torch
    from megatron.core.optimizer import OptimizerConfig

    fields = BY_NAME["sgd"].config_fields
    assert fields["sgd_momentum"] == inspect.signature(torch.optim.SGD).parameters["momentum"].default
    assert OptimizerConfig().sgd_momentum != fields["sgd_momentum"]
    assert fields["use_distributed_optimizer"] is False  # DistributedOptimizer asserts Adam (the rehearsal shows it)


def test_the_doc_table_lists_every_name_as_it_runs_or_refused():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "optimizers.md").read_text()
    table = text.split("## The names", 1)[1].split("\n##", 1)[0]
    rows = [line.split("|") for line in table.splitlines() if line.startswith("| `")]
    for entry in OPTIM_NAMES:
        (cell,) = [r[2] for r in rows if f"`{entry.name}`" in [n.strip() for n in r[1].split(",")]]
        if entry.refused is None:
            assert cell.strip().startswith(f"`{entry.optimizer}`"), entry.name
        else:
            assert "refused" in cell and f"`{entry.nearest}`" in cell, entry.name
