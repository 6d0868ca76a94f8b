"""``python -m recsys_fast``: the ``recsys-fast`` command without its console script."""

import sys

from recsys_fast.cli import main

sys.exit(main())
