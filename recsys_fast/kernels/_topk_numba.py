"""Shared pieces of the numba kernels behind ``cosine_topk(strategy="sparse")`` (CPU only).

S = X @ X.T is computed by rows (Gustavson): row i of S is the sum, over the non-zeros
x[i, c], of x[i, c] times column c of X, scattered into a dense accumulator (a scattered add
into an L2-resident array beats any hash map); no row of S is ever stored. Two forms use
these pieces: the blocked form (:mod:`._topk_blocked`, each pair once, offered to both rows'
heaps) and the rows form (:mod:`._topk_fullrows`, every row in full). Both read the rows
relabelled by popularity (:func:`relabelled`) and the CSC with each entry's position.

Heap order: the root is the *worst* kept neighbour, i.e. the lowest similarity and, among equal
similarities, the highest column index; so ties are resolved in favour of the lower column
index whatever order the candidates arrive in.
"""

from __future__ import annotations

import contextlib

import numba
import numpy as np
from numba import njit, prange


@contextlib.contextmanager
def numba_threads(n: int):
    """numba's thread count set to ``n`` for the block, restored after."""
    prev = numba.get_num_threads()
    numba.set_num_threads(n)
    try:
        yield
    finally:
        numba.set_num_threads(prev)


@njit(cache=True, inline="always")
def _worse(v1, j1, v2, j2):
    return v1 < v2 or (v1 == v2 and j1 > j2)


@njit(cache=True, inline="always")
def _heap_push(hv, hi, base, size, k, v, j):
    """Offer (v, j) to the heap stored in hv/hi[base:base+k]; return its new size."""
    if size < k:
        pos = size
        # sift up while the new entry is worse than its parent: the root stays the worst
        while pos > 0:
            parent = (pos - 1) >> 1
            if _worse(v, j, hv[base + parent], hi[base + parent]):
                hv[base + pos] = hv[base + parent]
                hi[base + pos] = hi[base + parent]
                pos = parent
            else:
                break
        hv[base + pos] = v
        hi[base + pos] = j
        return size + 1
    if not _worse(hv[base], hi[base], v, j):
        return size  # not better than the worst kept: the common, cheap case
    pos = 0
    while True:
        child = 2 * pos + 1
        if child >= k:
            break
        right = child + 1
        if right < k and _worse(
            hv[base + right], hi[base + right], hv[base + child], hi[base + child]
        ):
            child = right
        if _worse(hv[base + child], hi[base + child], v, j):
            hv[base + pos] = hv[base + child]
            hi[base + pos] = hi[base + child]
            pos = child
        else:
            break
    hv[base + pos] = v
    hi[base + pos] = j
    return size


def popularity_order(Xn) -> np.ndarray:
    """Row labels by descending row length (stable): the relabelling of the sparse top-k
    kernels, whose heaps then hold original labels."""
    return np.argsort(-np.diff(Xn.indptr), kind="stable").astype(np.int64)


def relabelled(Xn):
    """``perm`` (:func:`popularity_order`) and the arrays the sparse top-k kernels read:
    ``(indptr, indices, data, colptr, rowidx, coldata, pos)`` of ``Xn[perm]`` and its CSC.
    Relabelling rows by popularity puts the accumulator entries hit most often together at
    low labels, sharing cache lines (about 1.4x in the feasibility study)."""
    perm = popularity_order(Xn)
    indptr, indices, data = permute_rows(Xn.indptr, Xn.indices, Xn.data, perm)
    return perm, (indptr, indices, data,
                  *csc_with_positions(indptr, indices, data, Xn.shape[1]))


def inverse_permutation(perm: np.ndarray) -> np.ndarray:
    """``inv`` with ``inv[perm[i]] == i``: the relabelled index of each original row."""
    inv = np.empty_like(perm)
    inv[perm] = np.arange(perm.size, dtype=perm.dtype)
    return inv


def permute_rows(indptr, indices, data, perm, n_chunks=None):
    """CSR arrays (int64 pointers, int32 indices) of the rows ``perm`` of a CSR, in that
    order: ``X[perm]`` copied in parallel over ``n_chunks`` ranges of about equal entry counts
    (default: numba's threads x 8, so the long rows the popularity order puts first spread)."""
    lengths = np.diff(indptr)[perm]
    new_indptr = np.zeros(perm.size + 1, dtype=np.int64)
    np.cumsum(lengths, out=new_indptr[1:])
    nnz = int(new_indptr[-1])
    bounds = _entry_ranges(new_indptr, 8 * numba.get_num_threads() if n_chunks is None
                           else n_chunks)
    out_idx = np.empty(nnz, dtype=np.int32)
    out_data = np.empty(nnz, dtype=data.dtype)
    _permute_rows(indptr, indices, data, perm.astype(np.int64, copy=False), new_indptr,
                  bounds, out_idx, out_data)
    return new_indptr, out_idx, out_data


def _entry_ranges(indptr, n_chunks: int) -> np.ndarray:
    """Row bounds of up to ``n_chunks`` ranges of about equal entry counts; small inputs get
    fewer (one range per 64 Ki entries at most)."""
    from recsys_fast.kernels._csr_rows import row_chunks

    return row_chunks(indptr, max(1, min(int(n_chunks), int(indptr[-1]) // (1 << 16) + 1)))


@njit(cache=True, parallel=True)
def _permute_rows(indptr, indices, data, perm, new_indptr, bounds, out_idx, out_data):
    for t in prange(bounds.size - 1):
        for r in range(bounds[t], bounds[t + 1]):
            s = indptr[perm[r]]
            o = new_indptr[r]
            for p in range(indptr[perm[r] + 1] - s):
                out_idx[o + p] = indices[s + p]
                out_data[o + p] = data[s + p]


def csc_with_positions(indptr, indices, data, n_cols, n_chunks=None):
    """Transpose a CSR (sorted or not) into CSC with rows ascending in each column.

    Returns ``colptr, rowidx, coldata, pos`` where ``pos[p]`` is the CSC position of CSR entry p.
    Parallel over ``n_chunks`` row ranges of about equal entry counts (default: numba's thread
    count): each range counts its entries per column, and scatters them after the earlier
    ranges' entries of the same column, so each column's rows still come out ascending.
    """
    bounds = _entry_ranges(indptr, numba.get_num_threads() if n_chunks is None else n_chunks)
    return _csc_with_positions(indptr, indices, data, n_cols, bounds)


@njit(cache=True, parallel=True)
def _csc_with_positions(indptr, indices, data, n_cols, bounds):
    n_chunks = bounds.size - 1
    nnz = indices.size
    counts = np.zeros((n_chunks, n_cols), dtype=np.int64)
    for t in prange(n_chunks):
        cnt = counts[t]
        for p in range(indptr[bounds[t]], indptr[bounds[t + 1]]):
            cnt[indices[p]] += 1
    colptr = np.empty(n_cols + 1, dtype=np.int64)
    acc = 0
    for c in range(n_cols):  # chunk t's entries of column c start after chunks < t's
        colptr[c] = acc
        for t in range(n_chunks):
            k = counts[t, c]
            counts[t, c] = acc
            acc += k
    colptr[n_cols] = acc
    # unsigned: numba adds no negative-index wraparound to the hot acc[rowidx[pp]] access
    rowidx = np.empty(nnz, dtype=np.uint32)
    coldata = np.empty(nnz, dtype=data.dtype)
    pos = np.empty(nnz, dtype=np.int64)
    for t in prange(n_chunks):
        fill = counts[t]
        for i in range(bounds[t], bounds[t + 1]):  # rows in order: each column ascending
            for p in range(indptr[i], indptr[i + 1]):
                c = indices[p]
                q = fill[c]
                fill[c] = q + 1
                rowidx[q] = i
                coldata[q] = data[p]
                pos[p] = q
    return colptr, rowidx, coldata, pos


@njit(cache=True)
def row_costs(indptr, indices, colptr):
    """Multiply-adds row i costs in full: the sum of the lengths of the columns it scans."""
    n_rows = indptr.size - 1
    cost = np.zeros(n_rows, dtype=np.int64)
    for i in range(n_rows):
        s = 0
        for p in range(indptr[i], indptr[i + 1]):
            c = indices[p]
            s += colptr[c + 1] - colptr[c]
        cost[i] = s
    return cost


@njit(cache=True, parallel=True)
def merge_heap_sets(hv, hi, hn, n, k, n_sets):
    """Push the heaps of sets 1.. of each row into set 0's (in place): per-thread heap sets
    become one top-k heap per row."""
    if n_sets < 2:
        return
    for rr in prange(n):
        r = np.int64(rr)
        base0 = r * k
        size = hn[r]
        for s in range(1, n_sets):
            b = (s * n + r) * k
            for e in range(hn[s * n + r]):
                size = _heap_push(hv, hi, base0, size, k, hv[b + e], hi[b + e])
        hn[r] = size


@njit(cache=True, parallel=True)
def heaps_to_csr(hv, hi, hn, perm, k):
    """CSR (in original labels, columns ascending) from heap set 0 of a relabelled matrix
    (heap h is relabelled row h; its entries already hold original column labels)."""
    n = perm.size
    counts = np.zeros(n + 1, dtype=np.int64)
    for r in range(n):
        counts[perm[r] + 1] = hn[r]
    for r in range(n):
        counts[r + 1] += counts[r]
    nnz = counts[n]
    out_idx = np.empty(nnz, dtype=np.int32)
    out_val = np.empty(nnz, dtype=hv.dtype)
    for rr in prange(n):
        r = np.int64(rr)
        start = counts[perm[r]]
        m = hn[r]
        for e in range(m):
            # insertion sort by original column index (m <= k, small)
            c = hi[r * k + e]
            v = hv[r * k + e]
            q = start + e
            while q > start and out_idx[q - 1] > c:
                out_idx[q] = out_idx[q - 1]
                out_val[q] = out_val[q - 1]
                q -= 1
            out_idx[q] = c
            out_val[q] = v
    return counts, out_idx, out_val


@njit(cache=True, parallel=True)
def normalize_rows(indptr, data, out):
    """out[p] = data[p] / ||row of p|| (norms summed in float64; zero rows stay zero).

    A row whose sum of squares overflows or underflows (values beyond about 1e154 or below
    about 1e-140 in magnitude) is first divided by its largest magnitude, so it still gets
    unit norm instead of becoming all zeros.
    """
    n = indptr.size - 1
    for rr in prange(n):
        r = np.int64(rr)
        s = 0.0
        big = 0.0
        for p in range(indptr[r], indptr[r + 1]):
            x = np.float64(data[p])
            s += x * x
            big = max(big, abs(x))
        if big == 0.0:
            for p in range(indptr[r], indptr[r + 1]):
                out[p] = 0
        elif s < 1e-280 or s > 1e300:  # squares under- or overflowed: rescale the row
            s = 0.0
            for p in range(indptr[r], indptr[r + 1]):
                x = np.float64(data[p]) / big
                s += x * x
            norm = np.sqrt(s)
            for p in range(indptr[r], indptr[r + 1]):
                out[p] = (np.float64(data[p]) / big) / norm
        else:
            inv = 1.0 / np.sqrt(s)
            for p in range(indptr[r], indptr[r + 1]):
                out[p] = np.float64(data[p]) * inv
