"""`make demo`: replay the seed incident end to end with real NeMo parts on CPU (nemo_resume/demo.py)."""

import sys

from nemo_resume.cli.demo import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
