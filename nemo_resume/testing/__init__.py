"""Test tooling: real NeMo 2 / megatron-core checkpoint fixtures (needs the ``nemo`` extra).

Importing this package is light; the heavy work runs in a subprocess
(see :func:`nemo_resume.testing.megatron_ckpt.write_megatron_checkpoint`).
"""

__all__ = ["write_megatron_checkpoint"]


def __getattr__(name):
    # lazy, so that ``python -m nemo_resume.testing.megatron_ckpt`` does not import the module twice
    if name == "write_megatron_checkpoint":
        from nemo_resume.testing.megatron_ckpt import write_megatron_checkpoint

        return write_megatron_checkpoint
    raise AttributeError(name)
