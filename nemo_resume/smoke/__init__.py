"""Real, tiny NeMo 2 training runs on CPU (needs the ``nemo`` extra).

Two harnesses. The recipes' ``--smoke`` rehearsal runs NeMo's real Megatron path
(:mod:`nemo_resume.smoke.megatron_run`: the recipe shrunk by :mod:`nemo_resume.smoke.rehearsal`, run in
its own processes with the stand-ins of :mod:`nemo_resume.smoke.cpu_standins`). The fast Lightning
stand-in (:mod:`nemo_resume.smoke.train`, a 2-layer MLP under a plain ``nl.Trainer``) is for tests
that need hundreds of checkpoints or runs in seconds.

Importing this package imports lightning (and torch); NeMo is imported when a run is built.

The run function is ``nemo_resume.smoke.train.train``; it is deliberately *not* re-exported here: binding
the name ``train`` on this package would shadow the ``train`` submodule, and ``pydoc.locate`` (which
``nemo.lightning.io.load_context`` uses to resolve the classes named in ``context/io.json``) would then find
the function instead of the module.
"""

from nemo_resume.smoke.train import (
    LRRecorder,
    SmokeConfig,
    SmokeResult,
    StopAfterStep,
    build_trainer_parts,
    checkpoint_step,
)

__all__ = [
    "LRRecorder",
    "SmokeConfig",
    "SmokeResult",
    "StopAfterStep",
    "build_trainer_parts",
    "checkpoint_step",
]
