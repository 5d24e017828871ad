"""What a run did, from its own logs: above the check (it compares with the plans), below the recipes.

- ``events``: NeMoLogger's TensorBoard event files, one attempt each, read with TensorBoard's reader;
- ``plans``: the plans the recipe scripts save beside every launch, and which attempt each belongs to;
- ``compare``: the logged LR against the plan's, the first step that differs;
- ``resumes``: each attempt's steps, repeats, skips and the LR at the seam;
- ``health``: NaN loss, loss spikes, grad norm too high or rising, with the seeds' advice;
- ``result``: what ``audit`` found; ``run``: the one entry (:func:`audit_run`);
- ``checkpoints``, ``report``: ``training_report.json``; ``plot``: the PNG.
"""

from __future__ import annotations

from nemo_resume.audit.report import TRAINING_REPORT, TrainingReport, training_report
from nemo_resume.audit.result import AuditProblem, AuditResult
from nemo_resume.audit.run import audit_run

__all__ = ["TRAINING_REPORT", "AuditProblem", "AuditResult", "TrainingReport", "audit_run", "training_report"]
