#!/usr/bin/env python
"""Check an LR schedule with NeMo's own scheduler before a run or a resume uses it.

    python scripts/check_schedule.py --lr 1e-5 --min-lr 3e-5 --warmup-steps 500 --max-steps 1000

See ``--help`` and docs/check.md; the logic lives in ``nemo_resume.check``.
"""

import sys
from pathlib import Path

# Runs from a clone without `pip install -e .` too.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nemo_resume.cli.check_cmd import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(prog="check_schedule.py"))
