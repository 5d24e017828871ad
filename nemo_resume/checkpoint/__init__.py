"""Stage 1 of the pipeline: what is on disk, read as plain data, without torch and without running it.

- ``layout``: finds checkpoints under a path (Megatron ``weights/`` + ``context/`` folders, ``.ckpt`` files);
- ``integrity``: whether a ``weights/`` folder is complete;
- ``safe_pickle``: ``torch.save`` files and DCP metadata read by a restricted unpickler;
- ``distcp``: the ShardedObjects inside ``.distcp`` files (the distributed optimizer's param groups), read the same way;
- ``torch_zip``: a ``torch.save`` zip read by torch's own reader rules (refused where torch would refuse or
  read it differently);
- ``bounded_read``: the one way a checkpoint file is opened: regular files only (``fstat`` after open), every
  read bounded;
- ``context``: the run's saved config from ``context/io.json``;
- ``state``: one checkpoint's trainer state (:func:`read_checkpoint`).
"""

from nemo_resume.checkpoint.layout import CheckpointLocation, find_checkpoints
from nemo_resume.checkpoint.state import CheckpointState, SchedulerState, read_checkpoint

__all__ = ["CheckpointLocation", "CheckpointState", "SchedulerState", "find_checkpoints", "read_checkpoint"]
