"""``python -m bayescale.cli``: the same commands as the ``bayescale`` script."""

import sys

from bayescale.cli import app

sys.exit(app())
