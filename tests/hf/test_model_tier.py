"""``--model``: a local Hugging Face Qwen2 in, through the recipe script, on NeMo's real Megatron path on CPU.

The shared run (``tests.support.model_runs``): the script imports the tiny model with NeMo's importer and
fine-tunes it with LoRA, then the run is resumed twice. The export of its end checkpoint, loaded by ``peft``, is
compared with NeMo's logits in ``tests/hf/test_export.py``.
"""

from __future__ import annotations

import json

import pytest

from tests.support.rehearsals import checked_lrs, off_plan

pytestmark = [pytest.mark.nemo, pytest.mark.slow, pytest.mark.megatron]


def _base(ckpt) -> str:
    return json.loads((ckpt / "weights" / "adapter_metadata.json").read_text())["model_ckpt_path"]


def test_the_script_imports_once_and_every_checkpoint_trains_on_the_import(model_run):
    from nemo_resume.hf.import_model import RECORD
    from nemo_resume.recipes.hf_model import read_hf_model
    from tests.support.rehearsals import checkpoint_at

    assert model_run.first_code == 0
    imported = model_run.imported  # one import, reused by every run
    record = json.loads((imported / RECORD).read_text())
    assert record == {"source": str(model_run.hf_dir.resolve()), "fingerprint": read_hf_model(model_run.hf_dir).fingerprint()}
    for ckpt in (checkpoint_at(model_run.dir / "first", 8), checkpoint_at(model_run.resumed.run_dir, 12),
                 model_run.final):
        assert _base(ckpt) == str(imported), ckpt  # regression: the resumed run named its adapter checkpoint
    from nemo_resume.inspection import inspect_path

    (final,) = [c for c in inspect_path(model_run.final).checkpoints if not c.is_companion]
    doc = final.to_json()
    assert doc["run_layout"]["peft"] == "lora" and doc["peft_base_found"] is True


def test_nemos_own_first_resumed_save_is_predicted_not_resumable(model_run):
    """What NeMo 2.7.3 writes in a resumed LoRA run's first save, without the recipe's PeftResumePaths: an AdapterPath
    in common.pt, which NeMo's own torch.load(weights_only=True) refuses, and the adapter checkpoint as its base."""
    import pickle

    import torch

    from nemo_resume.inspection import inspect_path
    from tests.support.rehearsals import checkpoint_at

    stock = model_run.stock_resumed
    assert stock.result.error is None, stock.why()
    (saved,) = [c for c in inspect_path(stock.run_dir).checkpoints if c.state.step == 12 and not c.is_companion
                and not c.state.location.path.name.endswith("-last")]
    assert not saved.resumable
    (reason,) = [r for r in saved.state.incomplete_reasons if "AdapterPath" in r]
    assert "torch.load(weights_only=True)" in reason
    with pytest.raises(pickle.UnpicklingError, match="AdapterPath"):  # NeMo's load, on the same file
        torch.load(saved.state.location.path / "weights" / "common.pt", weights_only=True)
    assert _base(saved.state.location.path) == str(checkpoint_at(model_run.dir / "first", 8))


def test_the_peft_run_resumes_twice_on_the_plan(model_run):
    for run in (model_run.resumed, model_run.resumed_again):
        assert run.prepared.refusal is None and run.result.error is None, run.why()
        assert not off_plan(run.lrs, checked_lrs(run.prepared))
    assert model_run.resumed.prepared.plan.target is not None  # a planned resume: the callback rewrote the schedule
    assert min(model_run.resumed.lrs) == 8 and model_run.resumed.result.final_step == 14
    assert {len(lrs) for lrs in model_run.resumed.lrs.values()} == {1}  # only the adapters' 0.5x group
    assert min(model_run.resumed_again.lrs) == 12 and model_run.resumed_again.result.final_step == 20


def test_another_model_on_resume_is_refused_before_launch(model_run, tmp_path):
    """NeMo's PEFT resume loads the checkpoint's own base, whatever --model says: the plan says so and refuses."""
    from nemo_resume.recipes.launch import prepare
    from nemo_resume.recipes.options import build_parser, options_from_args
    from tests.support.model_runs import model_flags
    from tests.support.tiny_qwen2 import write_tiny_qwen2

    other = write_tiny_qwen2(tmp_path / "other", seed=1)
    argv = model_flags(other, model_run.dir, "other", "--max-steps", "30", "--resume", str(model_run.final))
    opts = options_from_args("finetune", build_parser("finetune", "t").parse_args(argv))
    prepared = prepare(opts)
    (problem,) = [p for p in prepared.plan.problems if p.code == "PEFT_BASE_CHANGED"]
    assert problem.severity == "error" and prepared.refusal is not None
    assert not (model_run.dir / "models" / opts.model_import.path.name).exists()  # nothing imported for a plan


@pytest.mark.parametrize(("make", "says"), [
    (lambda d: None, "no such folder"),
    (lambda d: (d.mkdir(), (d / "config.json").write_text('{"model_type": "llama"}')), "llama"),
])
def test_a_wrong_model_is_refused_in_one_line_before_anything(tmp_path, capsys, make, says):
    from nemo_resume.cli.recipe_cmd import run_script

    model = tmp_path / "model"
    make(model)
    code = run_script("finetune", ["--model", str(model), "--dir", str(tmp_path / "runs"), "--smoke"], prog="p")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("p: error: ") and says in err[-1] and str(model) in err[-1]
    assert not (tmp_path / "runs").exists()
