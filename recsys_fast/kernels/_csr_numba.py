"""O(nnz) CSR build on the CPU: a two-pass stable counting sort (by column, then by row), then
one pass keeping the last of each run of equal (row, col) pairs.

Replaces the stable argsort of (row, col) keys used on other backends: timsort on int64 keys
dominated the build (~10 ms of 16 ms at ML-100K size). Each pass reads sequentially and
scatters once, carrying the values along instead of an index permutation.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def _starts(keys, n_keys):  # pragma: no cover - numba compiled
    starts = np.zeros(n_keys + 1, np.int64)
    for k in range(keys.size):
        starts[keys[k] + 1] += 1
    for r in range(n_keys):
        starts[r + 1] += starts[r]
    return starts


@numba.njit(cache=True, nogil=True)
def csr_last_wins(rows, cols, vals, n_rows, n_cols):  # pragma: no cover - numba compiled
    nnz = rows.size
    # pass 1: bucket (row, value) by column, input order kept within a column
    cstart = _starts(cols, n_cols)
    pos = cstart[:-1].copy()
    r1 = np.empty(nnz, rows.dtype)
    v1 = np.empty(nnz, vals.dtype)
    for k in range(nnz):
        c = cols[k]
        p = pos[c]
        r1[p] = rows[k]
        v1[p] = vals[k]
        pos[c] = p + 1
    # pass 2: bucket (col, value) by row, walking columns in order: (row, col, input) order
    indptr = _starts(rows, n_rows)
    pos = indptr[:-1].copy()
    c2 = np.empty(nnz, np.int32)
    v2 = np.empty(nnz, vals.dtype)
    for c in range(n_cols):
        for p1 in range(cstart[c], cstart[c + 1]):
            r = r1[p1]
            p = pos[r]
            c2[p] = c
            v2[p] = v1[p1]
            pos[r] = p + 1
    # pass 3: within each row keep the last of each run of equal columns
    w = 0
    for r in range(n_rows):
        s, e = indptr[r], indptr[r + 1]
        indptr[r] = w
        for k in range(s, e):
            if k + 1 < e and c2[k + 1] == c2[k]:
                continue  # a later duplicate follows: it wins
            c2[w] = c2[k]
            v2[w] = v2[k]
            w += 1
    indptr[n_rows] = w
    if w == nnz:  # no duplicates: no copies (fresh pages cost ~1 us each to fault in on a VM)
        return indptr, c2, v2
    return indptr, c2[:w].copy(), v2[:w].copy()
