"""The data-order rule (``nemo_resume.planning.data_order.gpt_epochs``) against megatron-core's GPTDataset, built by
NeMo's own ``PreTrainingDataModule`` on a dataset megatron-core's builder wrote: two sizes serve the same sample at
every shared index exactly when the rule gives them the same epochs."""

from __future__ import annotations

import itertools

import pytest

from tests.support.megatron_data import sample_tokens, write_indexed_dataset

pytestmark = [pytest.mark.nemo]

SEQ = 32
#: Training-set sizes around one and two epochs of the 60-document dataset (about 55 samples an epoch) and the
#: final-epoch threshold: 1 epoch, 2 with the last apart, 2 whole, 3 with the last apart.
SIZES = (20, 50, 60, 70, 100, 110, 120)


def _train_set(prefix, samples: int, cache):
    from nemo.collections.common.tokenizers.null_tokenizer import NullTokenizer
    from nemo.collections.llm.gpt.data.pre_training import PreTrainingDataModule

    dm = PreTrainingDataModule(paths=[str(prefix)], seq_length=SEQ, global_batch_size=1, micro_batch_size=1,
                               tokenizer=NullTokenizer(vocab_size=127), index_mapping_dir=str(cache),
                               num_workers=0, pin_memory=False)
    dm.build(trainer_max_steps=samples, trainer_val_check_interval=samples, trainer_limit_val_batches=1,
             trainer_limit_test_batches=1)
    return dm._train_ds


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    prefix = write_indexed_dataset(root / "tiny", docs=60)
    return {n: _train_set(prefix, n, root / "cache") for n in SIZES}


def test_the_epochs_are_megatron_cores(built):
    from nemo_resume.planning.data_order import gpt_epochs

    for n, ds in built.items():
        tokens = int(ds.dataset.sequence_lengths[ds.indices].sum())
        assert gpt_epochs(n, tokens, SEQ).count == len(ds.document_index) // len(ds.indices), n
    tokens = int(built[20].dataset.sequence_lengths[built[20].indices].sum())
    layouts = {gpt_epochs(n, tokens, SEQ) for n in SIZES}
    assert {(e.count, e.separate_final) for e in layouts} >= {(1, False), (2, True), (2, False), (3, True)}


def test_the_same_epochs_keep_every_samples_index_and_others_reshuffle(built):
    from nemo_resume.planning.data_order import gpt_epochs

    tokens = int(built[20].dataset.sequence_lengths[built[20].indices].sum())
    for a, b in itertools.combinations(SIZES, 2):
        shared = range(min(len(built[a]), len(built[b])))
        same = [sample_tokens(built[a], i) == sample_tokens(built[b], i) for i in shared]
        if gpt_epochs(a, tokens, SEQ) == gpt_epochs(b, tokens, SEQ):
            assert all(same), (a, b)
        else:
            assert sum(same) < len(same) / 4, (a, b, sum(same), len(same))
