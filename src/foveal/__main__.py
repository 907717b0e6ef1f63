"""``python -m foveal``: the ``foveal`` command."""

import sys

from foveal.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
