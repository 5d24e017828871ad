"""Run by tests/schedules/test_lr_mult.py in a subprocess (a gloo process group): real megatron-core param groups on CPU.

Builds the tiny Qwen2-like GPTModel of ``tests.support.megatron_ckpt`` and sets up the optimizer the way ``MegatronOptimizerModule.optimizers`` does
(``setup_megatron_optimizer(model, config, scale_lr_cond=..., lr_mult=...)``), then builds the
module's LR scheduler as ``OptimizerModule.__call__`` does (``lr_scheduler(model, optimizer)``).
Prints one JSON object: every trainable parameter name, each param group's lr and names, and
the scheduler's LRs per group at a few steps.

    python tests/support/megatron_groups.py '{"patterns": ["*linear_fc2*"], "lr_mult": 0.5, "stages": "3:1e-3,2:1e-4"}'
    python tests/support/megatron_groups.py '{"rules": ["*output_layer*=5", "*linear_fc1*=0.5"], "layer_lr_decay": 0.9, "stages": "6:1e-3"}'
"""

from __future__ import annotations

import contextlib
import json
import sys
import tempfile
import warnings
from pathlib import Path


def main(spec: dict) -> dict:
    from tests.support.megatron_ckpt import (
        _build_gpt,
        _build_optimizer,
        _init_single_process_group,
        _install_cpu_stand_ins,
    )

    _install_cpu_stand_ins()
    import torch.distributed as dist
    from megatron.core.optimizer import OptimizerConfig
    from nemo.lightning.pytorch.optim import MegatronOptimizerModule

    from nemo_resume.schedules.lr_mult import lr_mult_plan, parse_lr_mult
    from nemo_resume.schedules.param_groups import regrouped
    from nemo_resume.schedules.param_match import ParamNameMatch
    from nemo_resume.schedules.staged import StagedLRScheduler

    with tempfile.TemporaryDirectory() as tmp:
        _init_single_process_group(Path(tmp))
        try:
            config, gpt = _build_gpt(1234)
            lr = spec.get("lr", 1e-3)
            module = MegatronOptimizerModule(
                OptimizerConfig(optimizer="adam", lr=lr),
                lr_scheduler=StagedLRScheduler(spec["stages"]),
                scale_lr_cond=ParamNameMatch(spec["patterns"]) if spec.get("patterns") else None,
                lr_mult=spec.get("lr_mult", 1.0),
            )
            # MegatronOptimizerModule.optimizers (LrMultOptimizerModule's with "rules"/"layer_lr_decay"), minus its
            # MegatronParallel type check
            plan = lr_mult_plan([parse_lr_mult(r) for r in spec.get("rules", [])], spec.get("layer_lr_decay"))
            with regrouped(plan) if plan else contextlib.nullcontext():
                ddp, optimizer = _build_optimizer(
                    config,
                    gpt,
                    lr,
                    0.0,
                    0.1,
                    no_weight_decay_cond=module.no_weight_decay_cond,
                    scale_lr_cond=module.scale_lr_cond,
                    lr_mult=module.lr_mult,
                )
            names = {id(p): n for n, p in ddp.named_parameters()}
            groups = [
                {"lr": g["lr"], "lr_mult": g["pre_lr_mult"], "wd_mult": g["pre_wd_mult"],
                 "names": sorted(names[id(p)] for p in g["params"])}
                for g in optimizer.param_groups
            ]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                sched = module.lr_scheduler(ddp, optimizer)["lr_scheduler"]["scheduler"]  # as OptimizerModule.__call__
                lrs = {}
                for step in range(spec.get("steps", 6)):
                    lrs[step] = [g["lr"] for g in optimizer.param_groups]
                    sched.step()
            trainable = sorted(n for n, p in ddp.named_parameters() if p.requires_grad)
            return {
                "trainable": trainable,
                "groups": groups,
                "lrs": lrs,
                "state": {"stages": sched.state_dict()["stages"]},
            }
        finally:
            dist.destroy_process_group()


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    print("RESULT " + json.dumps(main(json.loads(sys.argv[1]))))
