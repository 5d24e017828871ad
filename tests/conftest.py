"""Shared fixtures: REAL checkpoints written by NeMo 2 / Lightning / megatron-core on CPU.

Nothing here is hand-written: every fixture runs the real libraries (``nemo_resume.smoke.train``, the fast
Lightning stand-in, and the recipes' own rehearsal on NeMo's Megatron path). The fixtures are session-scoped and built lazily, in
``tmp_path_factory`` folders, so a test session pays for each one at most once:

- ``incident_run``           the incident: lr=1e-5 < min_lr=3e-5, warmup 500, max_steps 1000, checkpoint at 499;
                             dies with NeMo's ValueError at global_step 501 (about 5 s)
- ``incident_ckpt``          its Lightning checkpoint at step 499 (``.../checkpoints/smoke--step=499.ckpt``)
- ``incident_resume_run``    stock NeMo resume of ``incident_ckpt`` with min_lr=1e-6: dies again at 501
- ``finished_run``           a 300-step run that finished; its step-300 checkpoints are weights-only
- ``incident(dist_opt, devices)``, ``finished_rehearsal(dist_opt, devices)``, ``megatron_run(...)``: runs of
  NeMo's real Megatron path on CPU (``tests.support.megatron_runs``; about 20 s each, 40 s with two ranks)
- ``megatron_incident_ckpt`` the incident rehearsal's checkpoint at step 20 (distributed optimizer), dies at 31
- ``megatron_plain_ckpt``    the same from two ranks with the non-distributed optimizer (param groups in common.pt)
- ``megatron_finished_ckpt`` the end checkpoint of a run with NeMo's stock checkpoint settings, step 6: weights only
- ``model_run``              ``--model``: a tiny Hugging Face Qwen2 imported and LoRA-trained by the recipe script,
                             resumed twice (``tests.support.model_runs``; about 80 s)

Tests that use them need the ``nemo`` extra: mark them ``@pytest.mark.nemo`` (they are skipped when
``nemo`` is not installed).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

_ROOT = Path(__file__).resolve().parents[1]
if importlib.util.find_spec("nemo_resume") is None:  # plain `pytest` without an installed package
    sys.path.insert(0, str(_ROOT))

# CI replays the same hypothesis examples every run (a landing never depends on luck); local runs
# keep exploring new ones. Full fuzzing has its own knob (docs/reliability.md).
from hypothesis import settings as _hypothesis_settings  # noqa: E402

_hypothesis_settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    _hypothesis_settings.load_profile("ci")

HAVE_NEMO = importlib.util.find_spec("nemo") is not None and importlib.util.find_spec("lightning") is not None

#: NeMo's own message (nemo/core/optim/lr_scheduler.py, CosineAnnealing._get_lr), after the object repr.


def pytest_collection_modifyitems(config, items):
    if HAVE_NEMO:
        return
    skip = pytest.mark.skip(reason="needs the nemo extra (nemo_toolkit, lightning, megatron-core)")
    for item in items:
        if "nemo" in item.keywords:
            item.add_marker(skip)


# ---------------------------------------------------------------------------------------------- configs


@pytest.fixture(scope="session")
def incident_config():
    """The incident's knobs: the Qwen2.5 pretrain defaults with only ``lr`` lowered to 1e-5."""
    from nemo_resume.smoke import SmokeConfig

    return SmokeConfig(
        lr=1e-5,
        min_lr=3e-5,
        warmup_steps=500,
        max_steps=1000,
        constant_steps=0,
        checkpoint_every=499,
        save_last=True,
        name="smoke",
    )


@pytest.fixture(scope="session")
def finished_config():
    from nemo_resume.smoke import SmokeConfig

    return SmokeConfig(lr=1e-3, min_lr=1e-4, warmup_steps=50, max_steps=300, checkpoint_every=100, name="smoke")


# ---------------------------------------------------------------------------------------------- runs


@pytest.fixture(scope="session")
def incident_run(tmp_path_factory, incident_config):
    """SmokeResult of the incident run: died at global_step 501, checkpoint at 499 (+ its -last twin)."""
    from nemo_resume.smoke.train import train

    return train(incident_config, tmp_path_factory.mktemp("incident"))


@pytest.fixture(scope="session")
def incident_ckpt(incident_run) -> Path:
    """The Lightning ``.ckpt`` saved at global_step 499 (LR 1e-5 * 500/501 in its param group)."""
    return incident_run.checkpoint_at(499)


@pytest.fixture(scope="session")
def incident_resume_run(tmp_path_factory, incident_config, incident_ckpt):
    """Stock NeMo resume (``AutoResume(resume_from_path=...)``) of the step-499 checkpoint with min_lr=1e-6."""
    from nemo_resume.smoke.train import train

    log_dir = tmp_path_factory.mktemp("incident_resume")
    return train(incident_config.with_(min_lr=1e-6), log_dir, resume_from=incident_ckpt)


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory, finished_config):
    """A 300-step run that finished; checkpoints at 100, 200 (with optimizer) and 300 (weights only)."""
    from nemo_resume.smoke.train import train

    return train(finished_config, tmp_path_factory.mktemp("finished"))


# ---------------------------------------------------------------------------------------------- megatron


@pytest.fixture(scope="session")
def finished_rehearsal(tmp_path_factory):
    """``get(dist_opt, devices)``: the ``FINISHED`` rehearsal (``tests.support.megatron_runs``)."""
    from tests.support.megatron_runs import FINISHED, cached_runs

    return cached_runs(tmp_path_factory.mktemp, "finished", FINISHED)


@pytest.fixture(scope="session")
def megatron_run(finished_rehearsal):
    """``get(dist_opt, devices)``: the finished run's folder and the live LRs of every step; it must have finished."""
    from tests.support.megatron_runs import MegatronRun

    def get(dist_opt: bool, devices: int) -> MegatronRun:
        run = finished_rehearsal(dist_opt, devices)
        assert run.result.error is None, run.why()
        return MegatronRun(run.run_dir, run.lrs)

    return get


@pytest.fixture(scope="session")
def incident(tmp_path_factory):
    """``get(dist_opt, devices)``: the ``INCIDENT`` rehearsal, died at step 31 with NeMo's error."""
    from tests.support.megatron_runs import INCIDENT, cached_runs

    return cached_runs(tmp_path_factory.mktemp, "incident", INCIDENT)


@pytest.fixture(scope="session")
def megatron_incident_ckpt(incident) -> Path:
    """The incident's checkpoint at global_step 20 (distributed optimizer, one rank), written by NeMo's
    ``MegatronStrategy``: ``.../checkpoints/model_name=0--val_loss=0.00-step=19-consumed_samples=40.0``."""
    from tests.support.megatron_runs import INCIDENT_SAVED
    from tests.support.rehearsals import checkpoint_at

    return checkpoint_at(incident(True, 1).run_dir, INCIDENT_SAVED)


@pytest.fixture(scope="session")
def megatron_plain_ckpt(incident) -> Path:
    """The incident's checkpoint at step 20 from two ranks with megatron-core's non-distributed optimizer,
    whose param groups are in ``weights/common.pt`` (the distributed optimizer's are in ``.distcp`` objects)."""
    from tests.support.megatron_runs import INCIDENT_SAVED
    from tests.support.rehearsals import checkpoint_at

    return checkpoint_at(incident(False, 2).run_dir, INCIDENT_SAVED)


@pytest.fixture(scope="session")
def megatron_finished_ckpt(tmp_path_factory) -> Path:
    """The end checkpoint of a run with NeMo's stock checkpoint settings, step 6: weights only."""
    from nemo_resume.inspection import inspect_path
    from tests.support.megatron_runs import STOCK_END_STEP, stock_end_run

    run = stock_end_run(tmp_path_factory.mktemp("stock_end"))
    assert run.result.error is None, run.why()
    (hit,) = [c.state.location.path for c in inspect_path(run.run_dir).checkpoints
              if c.state.step == STOCK_END_STEP and not c.is_companion]  # NeMo keeps it as "-last" only
    return hit


@pytest.fixture(scope="session")
def model_run(tmp_path_factory):
    """``--model``: a tiny Hugging Face Qwen2 imported and LoRA-trained by the recipe script, resumed twice."""
    from tests.support.model_runs import model_run as run

    return run(tmp_path_factory.mktemp("model_run"))
