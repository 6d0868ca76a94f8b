"""pytest-benchmark suites over the case registry (``recsys_fast.harness``).

Run (the project's pytest config adds ``--benchmark-skip``; ``--benchmark-only`` overrides it)::

    pytest bench/pytest --benchmark-only --benchmark-autosave --benchmark-save-data
    pytest bench/pytest --benchmark-only --benchmark-compare

With ``--benchmark-compare`` the regression gate of ``_gate.py`` judges each case against the
saved run (bootstrap interval of the ratio of medians; exit 1 when a case is significantly
slower than ``--gate-threshold``, default 15 %). Scales: ``RECSYS_FAST_BENCH_SCALES=100k,1m``
(default ``100k``; all with ``RECSYS_FAST_ASV_FULL=1``). Rounds per case:
``RECSYS_FAST_BENCH_ROUNDS`` (default 10).
"""

import sys
from pathlib import Path

import pytest

# the suites import their helpers as `_suite` / `_gate` from this folder
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _gate import (  # noqa: E402,F401 - pytest finds hooks by name in a conftest
    pytest_addoption,
    pytest_sessionfinish,
    pytest_terminal_summary,
)


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config):
    """Benchmarks time one process alone: no pytest-xdist workers here (the project's pytest
    config asks for them, for the test suite), else pytest-benchmark would switch itself off."""
    if getattr(config.option, "numprocesses", None):
        config.option.numprocesses = 0
        config.option.dist = "no"
