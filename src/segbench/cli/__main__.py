"""``python -m segbench.cli`` (what torchrun launches): the ``segbench`` command line."""

import sys

from segbench.cli import main

sys.exit(main())
