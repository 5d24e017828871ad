"""The LR-schedule domain: what a user asks for and what NeMo's scheduler does with it.

One module per flag or concept, all torch-free except the two NeMo classes recipes serialize:

- ``request``: the validated schedule (``--lr --min-lr --max-steps --warmup-steps --constant-steps``);
- ``flags``: the one declaration of those flags and their parsing into a request;
- ``cosine``: a pure mirror of NeMo's ``CosineAnnealing`` (``lr_at``, ``first_failure``);
- ``lr_stages`` (``--lr-stages``), ``lr_mult`` (``--lr-mult``), ``hf_names`` (``--schedule NAME``);
- ``module_config`` + ``scheduler_module``: which NeMo ``LRSchedulerModule`` a request runs on;
- ``staged`` and ``param_match``: ``StagedLRScheduler`` and ``ParamNameMatch`` (import torch and NeMo;
  their import paths are written into users' checkpoints, so they never move).
"""

from nemo_resume.schedules.lr_stages import Stage, parse_stages
from nemo_resume.schedules.module_config import ModuleConfig
from nemo_resume.schedules.scheduler_module import scheduler_module

__all__ = ["ModuleConfig", "Stage", "parse_stages", "scheduler_module"]
