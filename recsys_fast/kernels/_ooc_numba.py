"""numba kernels of the out-of-core item-item top-k (:mod:`recsys_fast.kernels.outofcore`)."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def accumulate_block(indptr, indices, vals, b0, b1, acc):
    """Add one partition's pair products to the block accumulator; return the multiply-adds.

    ``indptr, indices, vals``: a user x item CSR of the partition, columns ascending in each
    row, values already divided by their item's norm. ``acc[i - b0, j - b0]`` gains
    ``v_ui * v_uj`` for every user u, item i in ``[b0, b1)`` and item j >= ``b0`` the user
    rated: the block's rows, over the columns from the block's first item on."""
    n_users = indptr.size - 1
    madds = 0
    for u in range(n_users):
        s, e = indptr[u], indptr[u + 1]
        lo = s + np.searchsorted(indices[s:e], b0)
        mid = s + np.searchsorted(indices[s:e], b1)
        if mid == lo:
            continue
        for p in range(lo, mid):
            row = acc[indices[p] - b0]
            vi = np.float64(vals[p])
            for q in range(lo, e):
                row[indices[q] - b0] += vi * np.float64(vals[q])
        madds += (mid - lo) * (e - lo)
    return madds


@njit(cache=True, nogil=True)
def topk_rows(acc, k, first, out_rows, out_cols, out_vals):
    """Each row's k largest positive entries of ``acc`` (row r is item ``first + r``; column c
    is item ``first + c``) as triplets; returns how many were written."""
    n = 0
    for r in range(acc.shape[0]):
        row = acc[r]
        pos = np.flatnonzero(row > 0.0)
        if pos.size > k:
            order = np.argsort(-row[pos], kind="mergesort")[:k]
            pos = pos[order]
        for c in pos:
            out_rows[n] = first + r
            out_cols[n] = first + c
            out_vals[n] = row[c]
            n += 1
    return n


@njit(cache=True, nogil=True)
def topk_columns(acc, c0, k, first, out_rows, out_cols, out_vals):
    """For each column c >= ``c0`` of ``acc``, its k largest positive entries, as candidates
    of row ``first + c`` (the column's item) with column ``first + r``; returns how many were
    written. The accumulator holds each pair once, in the block of its smaller item, so these
    are the block's candidates for the rows of later blocks."""
    n_rows, width = acc.shape
    n = 0
    col = np.empty(n_rows, np.float64)
    for c in range(c0, width):
        for r in range(n_rows):
            col[r] = acc[r, c]
        pos = np.flatnonzero(col > 0.0)
        if pos.size > k:
            order = np.argsort(-col[pos], kind="mergesort")[:k]
            pos = pos[order]
        for r in pos:
            out_rows[n] = first + c
            out_cols[n] = first + r
            out_vals[n] = col[r]
            n += 1
    return n


@njit(cache=True)
def merge_candidates(rows, cols, vals, n, k):
    """Each row's k largest candidates (row, col, val) as CSR arrays, columns ascending."""
    counts = np.zeros(n + 1, np.int64)
    for r in rows:
        counts[r + 1] += 1
    start = np.cumsum(counts)
    fill = start[:-1].copy()
    by_row = np.empty(rows.size, np.int64)
    for i in range(rows.size):
        by_row[fill[rows[i]]] = i
        fill[rows[i]] += 1
    indptr = np.zeros(n + 1, np.int64)
    out_cols = np.empty(min(rows.size, n * k), np.int64)
    out_vals = np.empty(min(rows.size, n * k), np.float64)
    w = 0
    for r in range(n):
        seg = by_row[start[r]:start[r + 1]]
        if seg.size > k:
            seg = seg[np.argsort(-vals[seg], kind="mergesort")[:k]]
        seg = seg[np.argsort(cols[seg], kind="mergesort")]
        for i in seg:
            out_cols[w] = cols[i]
            out_vals[w] = vals[i]
            w += 1
        indptr[r + 1] = w
    return indptr, out_cols[:w], out_vals[:w]
