"""``python -m nemo_resume inspect|plan|check ...``: the console script ``nemo-resume`` without installing it."""

import sys

from nemo_resume.cli import main

sys.exit(main())
