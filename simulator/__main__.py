"""``python -m sparse_accel_sim``: see ``simulator/cli.py``."""

import sys

from .cli import main

sys.exit(main())
