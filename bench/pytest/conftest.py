"""pytest-benchmark suites over the case registry (``recsys_fast.harness``).

Run (the project's pytest config adds ``--benchmark-skip``; ``--benchmark-only`` overrides it)::

    pytest bench/pytest --benchmark-only --benchmark-autosave
    pytest bench/pytest --benchmark-only --benchmark-compare --benchmark-compare-fail=median:15%

Scales: ``RECSYS_FAST_BENCH_SCALES=100k,1m`` (default ``100k``; all with
``RECSYS_FAST_ASV_FULL=1``). Rounds per case: ``RECSYS_FAST_BENCH_ROUNDS`` (default 5).
"""

import sys
from pathlib import Path

# the suites import their helpers as `_suite` from this folder
sys.path.insert(0, str(Path(__file__).resolve().parent))
