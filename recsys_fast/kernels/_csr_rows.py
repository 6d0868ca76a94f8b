"""Parallel O(nnz) CSR build on the CPU: row scan, (stable row scatter,) per-row bitmap merge.

1. :func:`scan_ordered` reads the row indices once: checks each against the shape and, where
   the row index steps from a to b, gives the row pointers a+1..b that position. Rows found
   out of order fall back to :func:`scan` (per-chunk row counts) and
2. :func:`scatter_rows`: a stable counting sort by row, each thread scattering its input chunk
   to the slots its earlier chunks leave free, so every row keeps the input order.
3. :func:`merge_rows` walks the rows, split between threads by entry count, and checks each
   column and value as it reads them. For one row it sets a bit per column in a
   thread-private bitmap (plus a summary bit per 64-column word when the row is short against
   the bitmap) and stores the value in ``last[col]``, so a later duplicate overwrites an
   earlier one (the last wins). Reading the set bits in order yields the row's columns sorted
   and unique, written straight to the output with their values; reading also clears the
   bitmap.

Bytes moved: the index and value arrays read once (the rows twice, plus the scatter, when they
need sorting), the CSR written once. The bitmap and ``last`` (a little over 4-8 bytes per
column, per thread) stay in a core's cache for catalogues of a few hundred thousand items;
:func:`fits_bitmap` sends wider matrices to the two-pass counting sort of ``_csr_numba``.

Output arrays are passed in, already of the result's dtypes, so no conversion pass follows.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange
from numba.cpython.unsafe.numbers import trailing_zeros

WORD = 64
SUMMARY_SPAN = WORD * WORD  # columns covered by one summary word
# The row-ordered scan and the merge cut their work into this many chunks per thread and hand
# them out one at a time, so a thread the OS keeps off a busy machine's cores delays the call
# by one small chunk, not by half the work.
CHUNKS_PER_THREAD = 8


def fits_bitmap(n_rows: int, n_cols: int, nnz: int) -> bool:
    """Whether the bitmap merge costs O(nnz): the per-thread scratch (``last`` and bitmap,
    up to ~8.1 bytes per column) is no bigger than the entries, and the per-row summary scan
    (``n_cols / 4096`` words) no more work than them."""
    scratch_ok = n_cols <= max(2 * nnz, 1 << 16)
    summary_ok = n_rows * (n_cols // SUMMARY_SPAN + 1) <= 4 * nnz + n_rows
    return scratch_ok and summary_ok


def chunk_bounds(total: int, n_chunks: int) -> np.ndarray:
    """``n_chunks + 1`` boundaries splitting ``range(total)`` into near-equal chunks."""
    return (np.arange(n_chunks + 1, dtype=np.int64) * total) // n_chunks


@njit(cache=True, parallel=True, nogil=True)
def scan_ordered(rows, n_rows, bounds):  # pragma: no cover - numba compiled
    """Row pointer of non-decreasing ``rows``, read once: where the row index steps from a to
    b, the pointers of rows a+1..b get that position. Returns ``(indptr, status)``; status 0:
    done, 1: a row index outside ``[0, n_rows)``, 2: the rows are not in order (``indptr`` is
    then meaningless). Columns and values are checked by :func:`merge_rows`."""
    nnz = rows.size
    n_chunks = bounds.size - 1
    indptr = np.empty(n_rows + 1, np.int64)
    status = np.zeros(n_chunks, np.int64)
    for t in prange(n_chunks):
        lo, hi = bounds[t], bounds[t + 1]
        prev = -1
        if lo > 0:
            prev = rows[lo - 1]
            if prev < 0 or prev >= n_rows:  # that chunk reports it
                prev = rows[lo] if lo < hi else 0
        for k in range(lo, hi):
            r = rows[k]
            if r < 0 or r >= n_rows:
                status[t] = 1
                break
            if r != prev:
                if r < prev:
                    status[t] = 2
                    break
                for j in range(prev + 1, r + 1):
                    indptr[j] = k
                prev = r
        if t == n_chunks - 1:
            for j in range(prev + 1, n_rows + 1):
                indptr[j] = nnz
    return indptr, status.max()


@njit(cache=True, parallel=True, nogil=True)
def scan(rows, n_rows, bounds):  # pragma: no cover - numba compiled
    """Per-chunk row counts ``(n_chunks, n_rows)`` of rows in any order, and whether every row
    index is in ``[0, n_rows)``."""
    n_chunks = bounds.size - 1
    counts = np.zeros((n_chunks, n_rows), np.int64)
    good = np.ones(n_chunks, np.bool_)
    for t in prange(n_chunks):
        cnt = counts[t]
        for k in range(bounds[t], bounds[t + 1]):
            r = rows[k]
            if r < 0 or r >= n_rows:
                good[t] = False
                break
            cnt[r] += 1
    return counts, good.all()


@njit(cache=True, nogil=True)
def row_pointer(counts):  # pragma: no cover - numba compiled
    """int64 row pointer from per-chunk counts."""
    n_chunks, n_rows = counts.shape
    indptr = np.empty(n_rows + 1, np.int64)
    acc = 0
    indptr[0] = 0
    for r in range(n_rows):
        for t in range(n_chunks):
            acc += counts[t, r]
        indptr[r + 1] = acc
    return indptr


@njit(cache=True, parallel=True, nogil=True)
def scatter_rows(rows, cols, vals, indptr, counts, bounds, cols_out, vals_out):  # pragma: no cover
    """Stable counting sort by row of (col, value) into ``cols_out`` / ``vals_out``."""
    n_chunks, n_rows = counts.shape
    pos = np.empty((n_chunks, n_rows), np.int64)
    for r in prange(n_rows):
        p = indptr[r]
        for t in range(n_chunks):
            pos[t, r] = p
            p += counts[t, r]
    for t in prange(n_chunks):
        at = pos[t]
        for k in range(bounds[t], bounds[t + 1]):
            r = rows[k]
            p = at[r]
            cols_out[p] = cols[k]
            vals_out[p] = vals[k]
            at[r] = p + 1


@njit(cache=True, nogil=True)
def _merge_row(s, e, cols, vals, n_cols, limit, bits, summary, last, out_cols, out_vals):  # noqa: E501 # pragma: no cover
    """Sorted, deduplicated (last wins) entries ``s:e`` written from ``out[s]`` on; their count,
    or -1 if a column is outside ``[0, n_cols)`` or a value fails ``|v| <= limit``.
    The summary words are kept only when the row is short against the bitmap."""
    use_summary = bits.size > 4 * (e - s)
    for k in range(s, e):
        c = cols[k]
        x = vals[k]
        if c < 0 or c >= n_cols or not abs(x) <= limit:
            return -1
        w = c >> 6
        bits[w] |= np.uint64(1) << np.uint64(c & 63)
        if use_summary:
            summary[w >> 6] |= np.uint64(1) << np.uint64(w & 63)
        last[c] = x
    p = s
    if use_summary:
        for i in range(summary.size):
            sw = summary[i]
            if sw == 0:
                continue
            summary[i] = 0
            while sw:
                w = i * WORD + trailing_zeros(sw)
                sw &= sw - np.uint64(1)
                p = _emit_word(w, bits, last, out_cols, out_vals, p)
    else:
        for w in range(bits.size):
            if bits[w]:
                p = _emit_word(w, bits, last, out_cols, out_vals, p)
    return p - s


@njit(cache=True, nogil=True, inline="always")
def _emit_word(w, bits, last, out_cols, out_vals, p):  # pragma: no cover - numba compiled
    """Write the columns of bitmap word ``w`` in order (clearing it); the next position."""
    word = bits[w]
    bits[w] = 0
    base = w * WORD
    while word:
        c = base + trailing_zeros(word)
        word &= word - np.uint64(1)
        out_cols[p] = c
        out_vals[p] = last[c]
        p += 1
    return p


@njit(cache=True, parallel=True, nogil=True)
def merge_rows(indptr, cols, vals, n_cols, limit, row_bounds, out_cols, out_vals):
    """Each row's entries sorted by column, last duplicate kept, written at the row's input
    offset ``indptr[r]``; returns the number kept per row, and False if a column or a value
    failed its check (the output is then incomplete)."""
    n_rows = indptr.size - 1
    kept = np.empty(n_rows, np.int64)
    n_words = (n_cols + WORD - 1) // WORD
    n_summary = (n_words + WORD - 1) // WORD
    n_chunks = row_bounds.size - 1
    good = np.ones(n_chunks, np.bool_)
    for t in prange(n_chunks):
        bits = np.zeros(n_words, np.uint64)
        summary = np.zeros(n_summary, np.uint64)
        last = np.empty(n_cols, vals.dtype)
        for r in range(row_bounds[t], row_bounds[t + 1]):
            s, e = indptr[r], indptr[r + 1]
            if e - s == 0:
                kept[r] = 0
                continue
            if e - s == 1:  # common in sparse data: no bitmap round trip
                c = cols[s]
                x = vals[s]
                if c < 0 or c >= n_cols or not abs(x) <= limit:
                    good[t] = False
                    break
                out_cols[s] = c
                out_vals[s] = x
                kept[r] = 1
                continue
            n = _merge_row(s, e, cols, vals, n_cols, limit, bits, summary, last, out_cols,
                           out_vals)
            if n < 0:
                good[t] = False
                break
            kept[r] = n
    return kept, good.all()


@njit(cache=True, nogil=True)
def compact(indptr, kept, out_cols, out_vals):  # pragma: no cover - numba compiled
    """Close the gaps duplicates left: rows moved left in place; the new row pointer."""
    n_rows = kept.size
    new = np.empty(n_rows + 1, np.int64)
    new[0] = 0
    w = 0
    for r in range(n_rows):
        s = indptr[r]
        for j in range(kept[r]):
            out_cols[w] = out_cols[s + j]
            out_vals[w] = out_vals[s + j]
            w += 1
        new[r + 1] = w
    return new


def row_chunks(indptr: np.ndarray, n_chunks: int) -> np.ndarray:
    """Row boundaries giving each of ``n_chunks`` about the same number of entries."""
    nnz = int(indptr[-1])
    targets = (np.arange(1, n_chunks, dtype=np.int64) * nnz) // n_chunks
    inner = np.searchsorted(indptr, targets, side="left")
    return np.concatenate(([0], inner, [indptr.size - 1])).astype(np.int64)
