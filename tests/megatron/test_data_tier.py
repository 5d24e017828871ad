"""The data a resumed pre-training run trains on (issue 19), on NeMo's real Megatron path with NeMo's
``PreTrainingDataModule`` over a Megatron dataset megatron-core's builder wrote: what the plan predicts about the
data order is what the resumed rehearsal reads, sample by sample (``tests.support.sample_recorder``).

The dataset holds 57 samples of 32 tokens an epoch. The first run trains 30 steps at a global batch of 2: 60
samples, two epochs with the last shuffled apart. Its step-10 checkpoint (20 samples consumed) resumes at a global
batch of 1 (NeMo would build 30 samples, too few for the 40 the resume reads, and another order, unless the recipe
keeps the 60) and at 4 for 28 steps (112 samples: two whole epochs, another order that no size can avoid).
"""

from __future__ import annotations

import pytest

from tests.support.megatron_data import write_indexed_dataset
from tests.support.rehearsals import checkpoint_at, rehearse_recipe
from tests.support.sample_recorder import read_samples

pytestmark = [pytest.mark.nemo, pytest.mark.slow, pytest.mark.megatron]

FIRST_STEPS, SAVED, CONSUMED = 30, 10, 20
EPOCH = 57  # samples in one epoch of the 60-document dataset's training split


def _flags(data, run_dir, max_steps, gbs, *more):
    return ["--data", str(data), "--lr", "1e-3", "--min-lr", "1e-5", "--warmup-steps", "3", "--max-steps",
            str(max_steps), "--gpus-per-node", "1", "--global-batch-size", str(gbs), "--micro-batch-size", "1",
            "--checkpoint-every", "10", "--dir", str(run_dir), *more]


def _recording(path):
    def edit(recipe):
        import nemo_run as run

        from tests.support.sample_recorder import RecordSamples

        recipe.trainer.callbacks = [*(recipe.trainer.callbacks or []), run.Config(RecordSamples, path=str(path))]
    return edit


@pytest.fixture(scope="module")
def first(tmp_path_factory):
    root = tmp_path_factory.mktemp("data-tier")
    data = write_indexed_dataset(root / "tiny", docs=60)
    run = rehearse_recipe("pretrain", _flags(data, root / "first", FIRST_STEPS, 2), devices=1, dist_opt=True,
                          edit=_recording(root / "first.samples"))
    assert run.result.error is None, run.why()
    return data, run, {s.index: s for s in read_samples(root / "first.samples")}


def _resume(first, tmp_path, max_steps, gbs, stop_after_step=None):
    data, run, _ = first
    flags = _flags(data, tmp_path, max_steps, gbs, "--resume", str(checkpoint_at(run.run_dir, SAVED)))
    resumed = rehearse_recipe("pretrain", flags, devices=1, dist_opt=True, edit=_recording(tmp_path / "samples"),
                              stop_after_step=stop_after_step)
    assert resumed.result.error is None, resumed.why()
    return resumed, read_samples(tmp_path / "samples")


def test_the_first_run_reads_its_dataset_in_order(first):
    _, _, samples = first
    assert sorted(samples) == list(range(FIRST_STEPS * 2))


def test_a_smaller_batch_keeps_the_data_because_the_recipe_keeps_the_dataset(first, tmp_path):
    """Global batch 2 -> 1 to the same 30 steps: samples 20 to 39. NeMo alone builds 30 (another epoch layout, and
    it runs out at step 20); the plan gives it the first run's 60 (num_train_samples)."""
    _, _, before = first
    resumed, samples = _resume(first, tmp_path, FIRST_STEPS, 1)
    plan = resumed.prepared.plan
    assert plan.train_samples == FIRST_STEPS * 2
    codes = {p.code for p in plan.problems}
    assert "GLOBAL_BATCH_SIZE_CHANGED" in codes and not codes & {"DATA_ORDER_CHANGED", "DATA_EXHAUSTED"}
    assert [s.index for s in samples] == list(range(CONSUMED, 40))  # on from the consumed samples, one per step
    assert all(s.tokens == before[s.index].tokens for s in samples)  # the very samples the first run had there


def test_a_larger_batch_that_changes_the_epochs_is_predicted_and_retrains_seen_samples(first, tmp_path):
    _, _, before = first
    resumed, samples = _resume(first, tmp_path, 28, 4, stop_after_step=SAVED + EPOCH // 4)  # past the epoch's end
    (p,) = [p for p in resumed.prepared.plan.problems if p.code == "DATA_ORDER_CHANGED"]
    assert "2 epochs, the last shuffled apart before and 2 epochs now" in p.message
    assert resumed.prepared.plan.train_samples is None  # nothing keeps it: 112 samples are needed
    assert [s.index for s in samples][:5] == list(range(CONSUMED, CONSUMED + 5))
    shared = [s for s in samples if s.index in before]
    assert sum(s.tokens != before[s.index].tokens for s in shared) > 0.75 * len(shared)  # reshuffled
    # The tokens trained before the checkpoint come back within the first epoch; the first run's own order reaches
    # them again only where neighbouring samples share a token (the extra token megatron-core adds to each: two
    # per sample at most).
    trained = set().union(*(before[i].positions for i in range(CONSUMED)))
    again = trained & set().union(*(s.positions for s in samples if s.index < EPOCH))
    on_plan = trained & set().union(*(before[i].positions for i in range(CONSUMED, EPOCH)))
    assert len(on_plan) <= 2 * CONSUMED and len(again) > len(trained) / 4, (len(on_plan), len(again), len(trained))
