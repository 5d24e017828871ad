"""nemo-resume: safe, predictable resumes and visible LR schedules for NeMo 2.0 runs.

The package root imports nothing heavy: the inspector must run on a login node without
torch or NeMo installed.
"""

from nemo_resume.errors import NemoResumeError

__all__ = ["NemoResumeError", "__version__"]
__version__ = "0.1.0"
