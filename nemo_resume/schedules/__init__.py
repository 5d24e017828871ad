"""LR schedules beyond NeMo's cosine: Hugging Face names mapped to NeMo modules, staged LRs,
and per-group LR multipliers by parameter name.

Torch-free modules (importable by the inspector): ``stages``, ``hf``, ``module``, ``select``,
``groups``. ``staged`` and ``param_match`` import torch and NeMo.
"""

from nemo_resume.schedules.module import ModuleConfig
from nemo_resume.schedules.select import scheduler_module
from nemo_resume.schedules.stages import Stage, parse_stages

__all__ = ["ModuleConfig", "Stage", "parse_stages", "scheduler_module"]
