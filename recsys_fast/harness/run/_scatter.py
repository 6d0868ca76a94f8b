"""Random scatter-add on all cores (numba; imported only by the scatter-rate probe).

Each thread adds a stream of (index, value) pairs into its own accumulator, as the sparse
top-k kernel adds each pair's product into its thread's dense accumulator: the ceiling of
that kernel's multiply-adds, set by random access, not by arithmetic or streaming bandwidth.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(parallel=True, cache=True, fastmath=False)
def _scatter(acc, idx, val, reps):
    n_threads, n = acc.shape[0], idx.shape[0]
    per = (n + n_threads - 1) // n_threads
    for t in numba.prange(n_threads):
        a = acc[t]
        lo = t * per
        hi = min(n, lo + per)
        for _ in range(reps):
            for i in range(lo, hi):
                a[idx[i]] += val[i]


def scatter(acc: np.ndarray, idx: np.ndarray, val: np.ndarray, reps: int) -> None:
    """``acc[t][idx[i]] += val[i]`` for thread t's share of the stream, ``reps`` times."""
    _scatter(acc, idx, val, reps)
