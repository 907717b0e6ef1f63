"""``python -m foveal``: the ``foveal`` command."""

import sys

from foveal.cli.main import main

sys.exit(main())
