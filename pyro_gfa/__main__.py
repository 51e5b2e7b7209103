"""``python -m pyro_gfa``: the ``pyro-gfa`` command."""

import sys

from .cli import main

sys.exit(main())
