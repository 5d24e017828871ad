"""The stand-ins that let NeMo 2's Megatron training path run on a CPU-only torch build.

Installed only inside a rehearsal's own processes (``nemo_resume.smoke.megatron_child``), never by
importing ``nemo_resume``. Versions: nemo_toolkit 2.7.3, megatron-core 0.15.3, lightning 2.4, torch
CPU build, no Transformer Engine, no Apex. Each stand-in names the library line it works around and
why it leaves the LR, the scheduler and the checkpoint format as they are; docs/smoke.md lists them
with the error each one prevents (``NEMO_RESUME_STANDINS_SKIP=S5,S9`` leaves stand-ins out, which is
how the ablation in tests/megatron shows they are needed).

S1-S10 replace CUDA-only calls. S16 tells NeMo's PEFT that Transformer Engine is absent. S11 is a NeMo MockDataModule bug that shows only without Transformer
Engine. S12-S15 are gaps and one bug in megatron-core's DistributedOptimizer when it falls back to
``torch.optim.Adam`` (no TE, no Apex); a GPU install without TE/Apex would hit them too. H1 is not a
stand-in: it gives ``MockDataModule`` the data-position state ``PreTrainingDataModule`` has.
"""

from __future__ import annotations

import contextlib
import importlib
import os
from dataclasses import dataclass
from typing import Any, Callable

__all__ = ["STAND_INS", "StandIn", "install", "SKIP_ENV"]

#: Comma-separated stand-in ids to leave out (the ablation).
SKIP_ENV = "NEMO_RESUME_STANDINS_SKIP"


@dataclass(frozen=True)
class StandIn:
    id: str
    replaces: str
    works_around: str
    install: Callable[[Any], None]


class _CpuFactoryTorch:
    """Forwards to ``torch``; tensor factories map ``device="cuda..."`` to CPU and drop ``pin_memory``."""

    _FACTORIES = frozenset({"tensor", "zeros", "ones", "empty", "full", "zeros_like", "empty_like", "arange"})

    def __init__(self, real: Any) -> None:
        object.__setattr__(self, "_real", real)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._real, name)
        if name not in self._FACTORIES:
            return attr

        def factory(*args: Any, **kwargs: Any) -> Any:
            kwargs.pop("pin_memory", None)
            if _is_cuda(kwargs.get("device")):
                kwargs["device"] = "cpu"
            return attr(*args, **kwargs)

        return factory


def _is_cuda(device: Any) -> bool:
    return str(device).startswith("cuda") if device is not None else False


def _proxy_torch(torch: Any, *modules: str) -> None:
    """Only these modules see a ``torch`` whose factories build CPU tensors."""
    for name in modules:
        setattr(importlib.import_module(name), "torch", _CpuFactoryTorch(torch))


@contextlib.contextmanager
def _cuda_type_names(torch: Any):
    """While active, ``Tensor.type()`` with no argument names a CPU tensor ``torch.cuda.<X>Tensor``."""
    orig = torch.Tensor.type

    def type_(self, dtype=None, non_blocking=False, **kwargs):
        if dtype is None and not kwargs and self.device.type == "cpu":
            return orig(self).replace("torch.", "torch.cuda.", 1)
        return orig(self, dtype, non_blocking, **kwargs)

    torch.Tensor.type = type_
    try:
        yield
    finally:
        torch.Tensor.type = orig


def _s1(torch: Any) -> None:
    torch.cuda.current_device = lambda: "cpu"


def _s2(torch: Any) -> None:
    torch.cuda.synchronize = lambda *a, **k: None


def _s3(torch: Any) -> None:
    torch.cuda.Stream = lambda *a, **k: None
    torch.cuda.stream = lambda *a, **k: contextlib.nullcontext()


def _s4(torch: Any) -> None:
    _proxy_torch(torch, "megatron.core.optimizer.optimizer", "megatron.core.optimizer.clip_grads",
                 "megatron.core.pipeline_parallel.schedules", "megatron.core.utils")


def _s5(torch: Any) -> None:
    _proxy_torch(torch, "megatron.core.dist_checkpointing.exchange_utils", "megatron.core.dist_checkpointing.mapping")


def _s6(torch: Any) -> None:
    torch.Tensor.cuda = lambda self, *a, **k: self


def _s7(torch: Any) -> None:
    from megatron.core.tensor_parallel import random as mrandom

    mrandom.CudaRNGStatesTracker.fork = lambda self, name=None: contextlib.nullcontext()


def _s8(torch: Any) -> None:
    _proxy_torch(torch, "nemo.lightning.pytorch.strategies.megatron_strategy", "nemo.lightning.pytorch.plugins.data_sampler")
    orig_to = torch.Tensor.to

    def to(self, *args, **kwargs):
        if args and _is_cuda(args[0]):
            args = ("cpu", *args[1:])
        if _is_cuda(kwargs.get("device")):
            kwargs["device"] = "cpu"
        return orig_to(self, *args, **kwargs)

    torch.Tensor.to = to


def _s9(torch: Any) -> None:
    from megatron.core.optimizer import clip_grads as mclip
    from megatron.core.optimizer import distrib_optimizer as mdo
    from megatron.core.optimizer import optimizer as mopt

    orig_clip = mclip.clip_grad_by_total_norm_fp32

    def clip_grad_by_total_norm_fp32(*a, **k):
        with _cuda_type_names(torch):
            return orig_clip(*a, **k)

    mclip.clip_grad_by_total_norm_fp32 = clip_grad_by_total_norm_fp32
    mopt.clip_grad_by_total_norm_fp32 = clip_grad_by_total_norm_fp32  # optimizer.py imports it by name
    orig_build = mdo.DistributedOptimizer._build_model_and_main_param_groups.__func__

    def _build_model_and_main_param_groups(cls, *a, **k):
        with _cuda_type_names(torch):
            return orig_build(cls, *a, **k)

    mdo.DistributedOptimizer._build_model_and_main_param_groups = classmethod(_build_model_and_main_param_groups)


def _s10(torch: Any) -> None:
    from nemo.lightning.io import pl as nio_pl

    nio_pl._fix_tensors_device = lambda ckpt: ckpt


def _s11(torch: Any) -> None:
    from nemo.collections.llm.gpt.data import mock

    orig = mock._MockGPTDataset.__init__

    def __init__(self, *args, **kwargs):
        kwargs["create_attention_mask"] = True
        orig(self, *args, **kwargs)

    mock._MockGPTDataset.__init__ = __init__


def _s12(torch: Any) -> None:
    from megatron.core.optimizer import distrib_optimizer as mdo

    orig_get = mdo.DistributedOptimizer._get_main_param_and_optimizer_states
    orig_set = mdo.DistributedOptimizer._set_main_param_and_optimizer_states

    def _get_main_param_and_optimizer_states(self, model_param):
        tensors = orig_get(self, model_param)
        tensors.pop("step", None)
        return tensors

    def _set_main_param_and_optimizer_states(self, model_param, tensors):
        if "step" not in tensors and not self.config.use_precision_aware_optimizer_no_fp8_or_ds_fp8:
            group_index, group_order = self.model_param_group_index_map[model_param]
            main_param = self.optimizer.param_groups[group_index]["params"][group_order]
            if "step" in self.optimizer.state[main_param]:
                tensors = {**tensors, "step": self.optimizer.state[main_param]["step"]}
        return orig_set(self, model_param, tensors)

    mdo.DistributedOptimizer._get_main_param_and_optimizer_states = _get_main_param_and_optimizer_states
    mdo.DistributedOptimizer._set_main_param_and_optimizer_states = _set_main_param_and_optimizer_states


def _s13(torch: Any) -> None:
    from megatron.core.optimizer import distrib_optimizer as mdo

    orig = mdo.DistributedOptimizer.sharded_state_dict

    def sharded_state_dict(self, model_sharded_state_dict, is_loading=False, *a, **k):
        if is_loading and not mdo.HAVE_APEX_OR_TE and isinstance(self.optimizer, torch.optim.Adam):
            for group in self.optimizer.param_groups:
                for p in group["params"]:
                    state = self.optimizer.state[p]
                    if not state:
                        state["step"] = torch.tensor(0.0)
                        state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                        state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        return orig(self, model_sharded_state_dict, is_loading, *a, **k)

    mdo.DistributedOptimizer.sharded_state_dict = sharded_state_dict


def _s14(torch: Any) -> None:
    from megatron.core.optimizer import distrib_optimizer as mdo

    mdo.DistributedOptimizer.load_parameter_state_from_dp_reshardable = torch.no_grad()(
        mdo.DistributedOptimizer.load_parameter_state_from_dp_reshardable
    )


def _s15(torch: Any) -> None:
    from megatron.core.optimizer import distrib_optimizer as mdo

    orig = mdo.DistributedOptimizer.load_state_dict

    def load_state_dict(self, state_dict):
        out = orig(self, state_dict)
        if not mdo.HAVE_APEX_OR_TE:
            for state in self.optimizer.state.values():
                if torch.is_tensor(state.get("step")):
                    state["step"] = state["step"].clone()
        return out

    mdo.DistributedOptimizer.load_state_dict = load_state_dict


def _s16(torch: Any) -> None:
    import types

    import nemo.collections.llm.peft.lora as nemo_lora
    import nemo.collections.llm.peft.utils as nemo_peft_utils

    nemo_peft_utils.HAVE_TE = False
    nemo_lora.te = types.SimpleNamespace(Linear=type("TransformerEngineLinearAbsent", (), {}))


def _h1(torch: Any) -> None:
    from nemo.collections.llm.gpt.data.mock import MockDataModule

    def state_dict(self):
        sampler = self.data_sampler
        return {
            "consumed_samples": sampler.compute_consumed_samples(self.trainer.global_step - sampler.init_global_step),
            "global_step": int(self.trainer.global_step),
        }

    def load_state_dict(self, state):
        sampler = self.data_sampler
        sampler.init_consumed_samples = sampler.prev_consumed_samples = state["consumed_samples"]
        sampler.init_global_step = state["global_step"]

    MockDataModule.state_dict = state_dict
    MockDataModule.load_state_dict = load_state_dict


_MCORE = "megatron/core/"
_DO = _MCORE + "optimizer/distrib_optimizer.py"

#: In install order. ``replaces`` is what changes; ``works_around`` is the library line and why the LR,
#: the scheduler and the checkpoint format are left as they are.
STAND_INS: tuple[StandIn, ...] = (
    StandIn("S1", "torch.cuda.current_device() -> 'cpu'",
            f"used as a device argument: {_MCORE}distributed/param_and_grad_buffer.py:702,719,725, "
            "nemo/lightning/megatron_parallel.py:142,348; it only picks the device", _s1),
    StandIn("S2", "torch.cuda.synchronize() -> no-op",
            f"{_MCORE}dist_checkpointing/strategies/filesystem_async.py:230 (checkpoint save); CPU ops are "
            "synchronous", _s2),
    StandIn("S3", "torch.cuda.Stream() -> None, torch.cuda.stream(...) -> nullcontext",
            "nemo/lightning/megatron_parallel.py:617 runs the DDP init on a CUDA stream; the init is unchanged", _s3),
    StandIn("S4", "device='cuda' tensor factories -> CPU in megatron.core.{optimizer.optimizer, optimizer.clip_grads, "
            "pipeline_parallel.schedules, utils}",
            f"{_MCORE}optimizer/optimizer.py:477,481,903,1137, clip_grads.py:103,115,174,206, schedules.py:573, "
            "utils.py:1029: scratch scalars (loss scale 1.0, grad norm, token count) with the same values", _s4),
    StandIn("S5", "the same in megatron.core.dist_checkpointing.{exchange_utils, mapping}",
            f"{_MCORE}dist_checkpointing/exchange_utils.py:101-113,329 (DP>1 parallel load broadcasts into CUDA "
            "buffers); the buffers are overwritten by the broadcast", _s5),
    StandIn("S6", "Tensor.cuda() -> the tensor itself",
            "nemo/collections/llm/gpt/model/base.py:103 moves the batch; exchange_utils.py:339,502", _s6),
    StandIn("S7", "CudaRNGStatesTracker.fork() -> nullcontext",
            f"nemo/lightning/megatron_init.py:238 seeds the CUDA RNG tracker only with a GPU, so {_MCORE}"
            "tensor_parallel/random.py:209 raises around attention dropout (0.0 in Qwen2; not in the checkpoint)", _s7),
    StandIn("S8", "pin_memory dropped, Tensor.to('cuda') -> Tensor.to('cpu')",
            "logged scalars built pinned on CUDA: nemo/lightning/pytorch/strategies/megatron_strategy.py:801,850,881, "
            "plugins/data_sampler.py:192,212; the same numbers are logged", _s8),
    StandIn("S9", "Tensor.type() says 'torch.cuda.*' inside clip_grad_by_total_norm_fp32 and "
            "DistributedOptimizer._build_model_and_main_param_groups",
            f"{_MCORE}optimizer/clip_grads.py:167 and {_DO}:357,416 check CUDA type names; the fp32 branch and "
            "clipping run as on a GPU", _s9),
    StandIn("S10", "nemo.lightning.io.pl._fix_tensors_device -> identity",
            "nemo/lightning/io/pl.py:495 asserts CUDA is initialised on load; there are no CUDA tensors to move", _s10),
    StandIn("S11", "_MockGPTDataset(create_attention_mask=True)",
            "NeMo bug: nemo/collections/llm/gpt/data/mock.py:108-116 passes create_attention_mask into the seed slot, "
            "so without TE base.py:135 asserts; the tokens are NeMo's", _s11),
    StandIn("S12", "dist-opt bucket state without torch-Adam's 0-dim 'step' (kept in param_groups)",
            f"{_DO}:1646 asserts 1-D state in 'dp_reshardable' shards; megatron keeps 'step' in param_groups "
            "(:636-670, :813-821) and its other formats skip it (:1478, :1715)", _s12),
    StandIn("S13", "dist-opt load template: torch-Adam's lazy state (step=0, zeros) made before the template",
            f"{_DO}:1250 runs load_state_dict(state_dict()) on a fresh optimizer, :638 asserts one step; the "
            "checkpoint then overwrites it all", _s13),
    StandIn("S14", "DistributedOptimizer.load_parameter_state_from_dp_reshardable under torch.no_grad()",
            f"{_DO}:1749 lacks the no_grad its sibling :1783 has; fp32 main params are views of the model params, "
            "so copy_ at :928 raises; the same values are copied", _s14),
    StandIn("S15", "DistributedOptimizer.load_state_dict gives each param its own copy of torch-Adam's 'step'",
            f"megatron-core bug: {_DO}:816-821 assigns one 'step' tensor to every param, so Adam's step += 1 runs "
            "once per param (step 37 instead of 21 after one resumed step): silently wrong bias correction", _s15),
    StandIn("S16", "NeMo's PEFT told Transformer Engine is absent (peft.utils.HAVE_TE = False, lora.te.Linear a class "
            "nothing is an instance of)",
            "megatron-core's MagicMock TE stand-ins pass NeMo's HAVE_TE check (nemo/collections/llm/peft/utils.py:54) "
            "and nemo/collections/llm/peft/lora.py:703 reads te.Linear unguarded; the local layers get the same "
            "LoRA adapters (the GPU path uses the TE spec)", _s16),
    StandIn("H1", "llm.MockDataModule gets state_dict/load_state_dict of consumed samples",
            "not a stand-in: PreTrainingDataModule saves the data position (nemo/collections/llm/gpt/data/"
            "pre_training.py:421-450), MockDataModule replays from sample 0 after a resume", _h1),
)


def install() -> list[str]:
    """Install every stand-in not named in ``$NEMO_RESUME_STANDINS_SKIP``; return the ids installed."""
    import torch

    skip = {s.strip() for s in os.environ.get(SKIP_ENV, "").split(",") if s.strip()}
    done = []
    for stand_in in STAND_INS:
        if stand_in.id not in skip:
            stand_in.install(torch)
            done.append(stand_in.id)
    return done
