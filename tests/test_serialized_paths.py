"""Class paths NeMo writes into users' run configs and checkpoints keep resolving.

NeMo-Run's YAML (``_target_``) and ``context/io.json`` (fiddle ``__fn_or_cls__``) name classes by
import path, and ``load_context`` / NeMo-Run import them by that path when a run is resumed or
relaunched: moving one of these classes breaks every checkpoint written before the move.
"""

from __future__ import annotations

import json
import pydoc
import re
from collections.abc import Iterator
from typing import Any

import pytest

pytestmark = [pytest.mark.nemo, pytest.mark.slow]

_DOTTED = re.compile(r"nemo_resume(?:\.[A-Za-z_][A-Za-z0-9_]*)+")

# What the recipe and the smoke run below must name; a rename anywhere fails here first.
EXPECTED = {
    "nemo_resume.callback.ResumeScheduleCallback",
    "nemo_resume.callback.PlannedLRCheck",
    "nemo_resume.schedules.staged.StagedLRScheduler",
    "nemo_resume.schedules.cooldown_scheduler.CooldownScheduler",
    "nemo_resume.schedules.param_match.ParamNameMatch",
    "nemo_resume.schedules.param_groups.LrMultOptimizerModule",
    "nemo_resume.peft_base.PeftResumePaths",
    "nemo_resume.save_from_checkpoint.SaveFromStepCheckpoint",
    "nemo_resume.smoke.model.SmokeModel",
}


def _recipe_yaml(tmp_path, lr_mults=("--lr-mult", "*adapter*=0.5")) -> str:
    from nemo_resume.planning import plan_resume
    from nemo_resume.recipes.launch import to_yaml
    from nemo_resume.recipes.options import build_parser, options_from_args
    from nemo_resume.recipes.qwen25 import qwen25_recipe

    argv = ["--peft", "lora", "--lr-stages", "75:1e-4,50:1e-5", *lr_mults,
            "--save-from-step", "75", "--checkpoint-every", "1", "--dir", str(tmp_path)]
    opts = options_from_args("finetune", build_parser("finetune", "test").parse_args(argv))
    plan = plan_resume(opts.run_dir, opts.request(), resume=opts.resume, policy=opts.lr_policy)
    return to_yaml(qwen25_recipe(opts, plan))


def _cooldown_recipe_yaml(finished_run) -> str:
    """A ``--lr-policy cooldown`` recipe: it builds CooldownScheduler in place of NeMo's cosine."""
    from nemo_resume.recipes.launch import prepare, to_yaml
    from nemo_resume.recipes.options import build_parser, options_from_args
    from nemo_resume.recipes.qwen25 import qwen25_recipe

    run = finished_run.log_dir
    argv = ["--lr", "1e-3", "--min-lr", "1e-6", "--lr-policy", "cooldown", "--decay-steps", "20",
            "--dir", str(run.parent), "--name", run.name]
    prepared = prepare(options_from_args("pretrain", build_parser("pretrain", "test").parse_args(argv)))
    assert prepared.refusal is None, prepared.refusal
    return to_yaml(qwen25_recipe(prepared.opts, prepared.plan))


def _pyrefs(node: Any) -> Iterator[str]:
    """``module.name`` of every fiddle ``pyref`` in a ``context/io.json`` document."""
    if isinstance(node, dict):
        if node.get("type") == "pyref" and "module" in node and "name" in node:
            yield f"{node['module']}.{node['name']}"
        for value in node.values():
            yield from _pyrefs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _pyrefs(value)


def _smoke_context_paths(tmp_path) -> set[str]:
    from nemo_resume.callback import ResumeScheduleCallback
    from nemo_resume.schedules.cosine import CosineState
    from nemo_resume.smoke import SmokeConfig
    from nemo_resume.smoke.train import train

    cfg = SmokeConfig(lr=1e-3, min_lr=1e-5, warmup_steps=1, max_steps=4, checkpoint_every=1,
                      lr_mults=(0.5,), save_from_step=2, name="paths")
    plan = ResumeScheduleCallback.from_state(CosineState((1e-3, 5e-4), 1e-5, 4, 1), resume_step=0)
    result = train(cfg, tmp_path, callbacks=[plan])
    assert result.ok, result.error
    contexts = sorted(result.checkpoint_dir.glob("*/context/io.json"))
    assert contexts, f"no context/io.json under {result.checkpoint_dir}"
    return {ref for p in contexts for ref in _pyrefs(json.loads(p.read_text()))}


def test_every_class_path_in_a_recipe_and_a_smoke_checkpoint_resolves(tmp_path, finished_run):
    several = ("--lr-mult", "*linear_qkv.adapter*=5", "--layer-lr-decay", "0.9")
    yamls = _recipe_yaml(tmp_path / "recipe") + _recipe_yaml(tmp_path / "several", several)
    named = set(_DOTTED.findall(yamls + _cooldown_recipe_yaml(finished_run)))
    named |= {ref for ref in _smoke_context_paths(tmp_path / "smoke") if ref.startswith("nemo_resume.")}
    assert EXPECTED <= named, f"not named any more: {sorted(EXPECTED - named)}"
    unresolved = sorted(p for p in named if pydoc.locate(p) is None)
    assert not unresolved, f"serialized import paths that no longer resolve: {unresolved}"
