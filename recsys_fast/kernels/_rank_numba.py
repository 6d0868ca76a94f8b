"""numba kernel of the kNN rankers (:mod:`.knn_rank`): per user, rows of S summed with
weights (item-kNN: the user's ratings times its items' neighbour rows; user-kNN: the neighbours'
similarities times their rating rows), rated items left out, the n best kept.

Users are split into contiguous chunks run in parallel; each chunk holds one dense float64
accumulator over the items, a state byte per item and the list of items it touched, so the
work per user is its neighbour entries plus the items they reach, never the catalogue.
"""

from __future__ import annotations

import numba
import numpy as np

_FREE, _SCORED, _RATED = 0, 1, 2


@numba.njit(cache=True, nogil=True, inline="always")
def _better(s, i, s2, i2) -> bool:
    """(s, i) ranks above (s2, i2): a higher score, or the same score and a lower item."""
    return s > s2 or (s == s2 and i < i2)


@numba.njit(cache=True, nogil=True)
def _user_top_n(r, u_indptr, u_indices, u_data, s_indptr, s_indices, s_data, f_indptr,
                f_indices, acc, state, touched, out_items, out_scores):
    n = out_items.shape[1]
    nt = 0
    for p in range(f_indptr[r], f_indptr[r + 1]):
        j = f_indices[p]
        if state[j] == _FREE:
            touched[nt] = j
            nt += 1
        state[j] = _RATED
    for p in range(u_indptr[r], u_indptr[r + 1]):
        j = u_indices[p]
        w = np.float64(u_data[p])
        for q in range(s_indptr[j], s_indptr[j + 1]):
            i = s_indices[q]
            if state[i] == _FREE:
                state[i] = _SCORED
                touched[nt] = i
                nt += 1
            acc[i] += w * np.float64(s_data[q])
    filled = 0
    for t in range(nt):
        i = touched[t]
        s = acc[i]
        keep = state[i] == _SCORED and s != 0.0
        acc[i] = 0.0
        state[i] = _FREE
        if not keep:
            continue
        if filled == n and not _better(s, i, out_scores[r, n - 1], out_items[r, n - 1]):
            continue
        pos = filled if filled < n else n - 1
        while pos > 0 and _better(s, i, out_scores[r, pos - 1], out_items[r, pos - 1]):
            out_scores[r, pos] = out_scores[r, pos - 1]
            out_items[r, pos] = out_items[r, pos - 1]
            pos -= 1
        out_scores[r, pos] = s
        out_items[r, pos] = i
        if filled < n:
            filled += 1
    for c in range(filled, n):
        out_items[r, c] = -1
        out_scores[r, c] = np.nan


@numba.njit(cache=True, parallel=True)
def score_top_n(u_indptr, u_indices, u_data, s_indptr, s_indices, s_data, f_indptr, f_indices,
                n_items, n_chunks, out_items, out_scores):
    """Rows of ``out_items``/``out_scores`` (n_users x n): per row r of the CSR ``u_*`` (the
    weights of the rows of S that score user r), the n items i with the largest non-zero
    ``sum_j u[r, j] * S[j, i]`` (S: the CSR ``s_*``), best first, equal scores by ascending
    item, the items of row r of the CSR ``f_*`` (the user's rated items; empty rows: none)
    left out; short rows padded with item -1 and score NaN."""
    n_users = u_indptr.shape[0] - 1
    for c in numba.prange(n_chunks):
        r0 = c * n_users // n_chunks
        r1 = (c + 1) * n_users // n_chunks
        if r0 == r1:
            continue
        acc = np.zeros(n_items, np.float64)
        state = np.zeros(n_items, np.uint8)
        touched = np.empty(n_items, np.int64)
        for r in range(r0, r1):
            _user_top_n(r, u_indptr, u_indices, u_data, s_indptr, s_indices, s_data, f_indptr,
                        f_indices, acc, state, touched, out_items, out_scores)
