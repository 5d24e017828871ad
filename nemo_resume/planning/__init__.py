"""Stage 3 of the pipeline: an inspection and a requested schedule -> a resume plan.

- ``choice``: which checkpoint (``--resume auto|never|PATH``);
- ``policy``: which LR schedule continues it (``--lr-policy``);
- ``resume_plan``: the plan itself (:func:`plan_resume`, :class:`ResumePlan`).
"""

from nemo_resume.planning.resume_plan import (
    MODE_FRESH,
    MODE_RESUME,
    MODE_WEIGHTS,
    ResumePlan,
    plan_resume,
    restored_fields,
)

__all__ = ["MODE_FRESH", "MODE_RESUME", "MODE_WEIGHTS", "ResumePlan", "plan_resume", "restored_fields"]
