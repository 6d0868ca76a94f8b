"""STREAM triad on all cores (numba; imported only by the bandwidth probe)."""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(parallel=True, cache=True, fastmath=False)
def _triad(a, b, c, s):
    for i in numba.prange(a.shape[0]):
        a[i] = b[i] + s * c[i]


def triad(a: np.ndarray, b: np.ndarray, c: np.ndarray, s: float) -> None:
    """``a[:] = b + s * c`` in one pass over the three arrays."""
    _triad(a, b, c, s)
