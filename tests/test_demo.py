"""`make demo`'s stages, asserted: the incident, the failed stock fix, and the planned resume."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.nemo, pytest.mark.slow]


def test_every_demo_stage_behaves_as_described(tmp_path):
    from nemo_resume.cli.demo import run_demo
    from nemo_resume.constants import NEMO_BELOW_MIN_LR_TEXT as NEMO_ERROR

    result = run_demo(tmp_path / "demo-out")
    assert [s.ok for s in result.stages] == [True] * 5, [s.observed for s in result.stages]
    attempt1, attempt2, attempt3 = result.lrs.values()
    assert max(attempt1) == 500 and attempt1[499][0] == pytest.approx(1e-5 * 500 / 501)
    # stage 3: stock NeMo resumed 499 and died at 501 with its own error text
    assert sorted(attempt2) == [499, 500] and NEMO_ERROR in result.stages[2].observed
    # stage 4: the planned resume reached max_steps
    assert max(attempt3) == 999 and "reached 1000" in result.stages[3].observed
    png = (tmp_path / "demo-out" / "lr.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    report = (tmp_path / "demo-out" / "report.md").read_text()
    assert report.count("(OK,") == 5
