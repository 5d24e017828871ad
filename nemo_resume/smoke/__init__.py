"""Real, tiny NeMo 2 training runs on CPU (needs the ``nemo`` extra).

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
