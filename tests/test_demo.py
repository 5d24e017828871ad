"""`make demo`'s stages, asserted: the incident, the failed stock fix, and the planned resume, on NeMo's Megatron path."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.nemo, pytest.mark.slow, pytest.mark.megatron]


def test_every_demo_stage_behaves_as_described(tmp_path):
    from nemo_resume.cli.demo import DIES, LR, MAX_STEPS, SAVED, WARMUP, run_demo
    from nemo_resume.constants import NEMO_BELOW_MIN_LR_TEXT as NEMO_ERROR

    result = run_demo(tmp_path / "demo-out")
    assert [s.ok for s in result.stages] == [True] * 5, [s.observed for s in result.stages]
    attempt1, attempt2, attempt3 = result.lrs.values()
    # the live megatron param groups: warmup to step WARMUP, then NeMo raised computing step DIES
    assert max(attempt1) == WARMUP == DIES - 1 and attempt1[SAVED][0] == pytest.approx(LR * (SAVED + 1) / (WARMUP + 1))
    # stage 3: stock NeMo resumed SAVED and died at DIES with its own error text
    assert sorted(attempt2) == list(range(SAVED, DIES)) and NEMO_ERROR in result.stages[2].observed
    # stage 4: the planned resume reached max_steps
    assert max(attempt3) == MAX_STEPS - 1 and f"reached {MAX_STEPS}" in result.stages[3].observed
    png = (tmp_path / "demo-out" / "lr.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    report = (tmp_path / "demo-out" / "report.md").read_text()
    assert report.count("(OK,") == 5 and "MegatronStrategy" in report
