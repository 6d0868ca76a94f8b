import sys

from recsys_fast.harness.cli import main

sys.exit(main())
