"""The machine a launch is about to use, checked before it runs (``nemo-resume doctor``, docs/doctor.md).

- ``findings``: what a check reports (:class:`Finding`, :class:`Report`);
- ``stack``: the installed versions against the known-good set, and the known breakages in the installed files;
- ``checkpoint_size``: one checkpoint's bytes from the model config, precision and optimizer, and the copies kept;
- ``launch``: what a launch asks of the machine (:class:`Launch`), read from the NeMo-Run recipe;
- ``accelerators``, ``storage``, ``memory``, ``slurm``: one check each;
- ``doctor``: :func:`doctor` (all of them) and :func:`preflight` (the cheap ones, for the recipes).
"""

from __future__ import annotations

from nemo_resume.environment.doctor import doctor, preflight
from nemo_resume.environment.findings import Finding, Report
from nemo_resume.environment.launch import Launch, launch_from_recipe

__all__ = ["Finding", "Launch", "Report", "doctor", "launch_from_recipe", "preflight"]
