"""Thread counts for the bench scripts, pinned from ``--threads N`` before numpy / numba load
(their pools read the environment once, at import): import this module first."""

from __future__ import annotations

import os
import sys

ENV_VARS = ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def pin_threads_from_argv(default: str = "2") -> str:
    """The ``--threads`` value of ``sys.argv`` (else ``default``), set in every thread-count
    environment variable; returned for the script's own argparse default."""
    threads = default
    for i, a in enumerate(sys.argv):
        if a == "--threads" and i + 1 < len(sys.argv):
            threads = sys.argv[i + 1]
        elif a.startswith("--threads="):
            threads = a.split("=", 1)[1]
    for v in ENV_VARS:
        os.environ[v] = threads
    return threads
