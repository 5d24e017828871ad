"""Stage 2 of the pipeline: checkpoint states -> predicted problems, and which checkpoint a resume should use.

- ``inspector``: every checkpoint under a path, read and judged (:func:`inspect_path`);
- ``problems``: what one checkpoint's state predicts, each with a stable code;
- ``lineage``: whether the checkpoints under one folder can all come from one run.
"""

from nemo_resume.inspection.inspector import InspectedCheckpoint, Inspection, inspect_path
from nemo_resume.inspection.problems import Problem

__all__ = ["InspectedCheckpoint", "Inspection", "Problem", "inspect_path"]
