"""``python -m nemo_resume.inspect``: the same command as ``nemo-resume inspect``.

This folder has no ``__init__.py`` on purpose: a module or regular package named ``inspect`` here would
shadow the standard library's for any script run from inside the package; a namespace folder does not.
"""

import sys

from nemo_resume.cli import main

sys.exit(main(["inspect", *sys.argv[1:]], prog="python -m nemo_resume.inspect"))
