"""``python -m nemo_resume.check``: the same command as ``nemo-resume check``."""

import sys

from nemo_resume.cli import main

sys.exit(main(["check", *sys.argv[1:]], prog="python -m nemo_resume.check"))
