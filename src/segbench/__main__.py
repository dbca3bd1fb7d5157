"""``python -m segbench`` (and ``torchrun ... -m segbench``): the ``segbench`` command line."""

import sys

from segbench.cli import main

sys.exit(main())
