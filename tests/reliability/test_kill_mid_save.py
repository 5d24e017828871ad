"""SIGKILL real CPU runs at random moments and inside saves, then check what nemo-resume says.

Writers: NeMo's ``nl.ModelCheckpoint`` with the Lightning ``.ckpt`` writer (a real ``nl.Trainer`` run) and
megatron-core's ``dist_checkpointing`` writer; see :mod:`tests.support.kill_harness` for what each
trial checks. CI runs ``NEMO_RESUME_KILL_TRIALS`` trials (default 6, about 45 s with the harness start);
the full run recorded in docs/reliability.md is::

    NEMO_RESUME_KILL_TRIALS=36 NEMO_RESUME_KILL_SEED=7 \
        .venv/bin/python -m pytest -q -s tests/reliability/test_kill_mid_save.py
    # or, outside pytest, with a table and a JSON record:
    .venv/bin/python -m tests.support.kill_harness --trials 36 --seed 7 --json kills.json
"""

from __future__ import annotations

import os
import random
import shutil

import pytest

from tests.support.kill_harness import make_trial, run_trial, start_harness, summarize

pytestmark = [pytest.mark.nemo, pytest.mark.slow]

TRIALS = int(os.environ.get("NEMO_RESUME_KILL_TRIALS", "6"))
SEED = int(os.environ.get("NEMO_RESUME_KILL_SEED", random.SystemRandom().randrange(2**31)))
_rng = random.Random(SEED)
PLANNED = [make_trial(i, _rng) for i in range(TRIALS)]
RESULTS = []


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    print(f"\nkill harness seed {SEED} (rerun with NEMO_RESUME_KILL_SEED={SEED})")
    h = start_harness(tmp_path_factory.mktemp("kills"))
    yield h
    h.close()
    if RESULTS:
        print("\n" + summarize(RESULTS))


@pytest.mark.parametrize("index", range(TRIALS))
def test_a_killed_run_is_inspected_planned_and_resumed_correctly(harness, index):
    result = run_trial(harness, PLANNED[index])
    RESULTS.append(result)
    print("\n" + result.row())
    assert result.ok, f"seed {SEED}: {result.row()} (trial folder kept under {harness.workdir})"
    shutil.rmtree(harness.workdir / f"trial-{index:03d}", ignore_errors=True)
