"""numba kernels of the out-of-core item-item top-k (:mod:`recsys_fast.kernels.outofcore`)."""

from __future__ import annotations

import numpy as np
from numba import njit

from recsys_fast.kernels._topk_numba import _heap_push


@njit(cache=True, nogil=True)
def accumulate_block(indptr, indices, vals, inv_norm, b0, b1, acc):
    """Add one partition's pair products to the block accumulator; return the multiply-adds.

    ``indptr, indices, vals``: a user x item CSR of the partition, columns ascending in each
    row, raw ratings (any numeric dtype: the caller stores them compactly). ``acc[i - b0,
    j - b0]`` gains ``r_ui inv_norm[i] r_uj`` for every user u, item i in ``[b0, b1)`` and item
    j >= ``b0`` the user rated: the block's rows, over the columns from the block's first item
    on. The caller multiplies column j by ``inv_norm[j]`` once at the end.

    Row by row (Gustavson): the block's entries are first gathered by item, then each item's
    row of ``acc`` takes the rows of its users in turn, so one accumulator row is written at
    a time (it stays in cache) and the user rows are read in sequence."""
    n_users = indptr.size - 1
    nb = b1 - b0
    lo = np.empty(n_users, np.int64)  # each user's first entry with column >= b0
    counts = np.zeros(nb + 1, np.int64)
    for u in range(n_users):
        s, e = indptr[u], indptr[u + 1]
        p = s + np.searchsorted(indices[s:e], b0)
        lo[u] = p
        while p < e and indices[p] < b1:
            counts[np.int64(indices[p]) - b0 + 1] += 1
            p += 1
    start = np.cumsum(counts)
    fill = start[:-1].copy()
    by_item_user = np.empty(start[-1], np.int32)  # users of one file group: < 2**31
    by_item_val = np.empty(start[-1], vals.dtype)  # as stored: 1 byte for half stars
    for u in range(n_users):
        p, e = lo[u], indptr[u + 1]
        while p < e and indices[p] < b1:
            c = np.int64(indices[p]) - b0
            by_item_user[fill[c]] = u
            by_item_val[fill[c]] = vals[p]
            fill[c] += 1
            p += 1
    madds = 0
    for c in range(nb):
        row = acc[c]
        inv_c = inv_norm[b0 + c]
        for t in range(start[c], start[c + 1]):
            u = by_item_user[t]
            vi = np.float64(by_item_val[t]) * inv_c
            e = indptr[u + 1]
            for q in range(lo[u], e):
                row[np.int64(indices[q]) - b0] += vi * np.float64(vals[q])
            madds += e - lo[u]
    return madds


@njit(cache=True, nogil=True)
def topk_rows(acc, k, first, out_rows, out_cols, out_vals):
    """Each row's k largest positive entries of ``acc`` (row r is item ``first + r``; column c
    is item ``first + c``) as triplets; returns how many were written. One min-heap of k per
    row (:func:`._topk_numba._heap_push`): a value at or below its root costs one compare."""
    hv = np.empty(k, np.float64)
    hi = np.empty(k, np.int64)
    n = 0
    for r in range(acc.shape[0]):
        row = acc[r]
        size = 0
        for c in range(row.size):
            v = row[c]
            if v > 0.0 and (size < k or v >= hv[0]):
                size = _heap_push(hv, hi, 0, size, k, v, c)
        for e in range(size):
            out_rows[n] = first + r
            out_cols[n] = first + hi[e]
            out_vals[n] = hv[e]
            n += 1
    return n


@njit(cache=True, nogil=True)
def topk_columns(acc, c0, k, first, out_rows, out_cols, out_vals):
    """For each column c >= ``c0`` of ``acc``, its k largest positive entries, as candidates
    of row ``first + c`` (the column's item) with column ``first + r``; returns how many were
    written. The accumulator holds each pair once, in the block of its more popular item, so
    these are the block's candidates for the rows of later blocks. Rows are read in order,
    each column keeping a min-heap of k (:func:`._topk_numba._heap_push`) and its root in a
    contiguous array, so a value that does not enter costs one compare."""
    n_rows, width = acc.shape
    n_cols = width - c0
    hv = np.empty(n_cols * k, np.float64)
    hi = np.empty(n_cols * k, np.int64)
    hn = np.zeros(n_cols, np.int64)
    root = np.zeros(n_cols, np.float64)  # admission threshold: 0 until the heap is full
    for r in range(n_rows):
        row = acc[r]
        for c in range(n_cols):
            v = row[c0 + c]
            if v > root[c]:  # a tie with a full heap's root loses: rows come in order
                hn[c] = _heap_push(hv, hi, c * k, hn[c], k, v, r)
                if hn[c] == k:
                    root[c] = hv[c * k]
    n = 0
    for c in range(n_cols):
        for e in range(hn[c]):
            out_rows[n] = first + c0 + c
            out_cols[n] = first + hi[c * k + e]
            out_vals[n] = hv[c * k + e]
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
