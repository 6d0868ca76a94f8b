"""Build the user x item CSR matrix from interaction triples, on any backend."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import scipy.sparse

from recsys_fast.backend import Backend, get_backend
from recsys_fast.memory import check_memory


def _check_shape(shape: Any) -> tuple[int, int]:
    """``shape`` as two non-negative ints; TypeError/ValueError naming it otherwise."""
    if isinstance(shape, (str, bytes)) or not hasattr(shape, "__len__") or len(shape) != 2:
        raise TypeError(f"shape must be two non-negative integers (n_rows, n_cols), got {shape!r}")
    for d in shape:
        if isinstance(d, bool) or not isinstance(d, (int, np.integer)):
            raise TypeError(
                f"shape must be two non-negative integers (n_rows, n_cols), got {shape!r}"
            )
    n_rows, n_cols = int(shape[0]), int(shape[1])
    if n_rows < 0 or n_cols < 0:
        raise ValueError(f"shape {tuple(shape)} has a negative dimension")
    if n_rows * n_cols >= 2**63:
        raise ValueError(f"shape {tuple(shape)} has more cells than a 64-bit index can address")
    return n_rows, n_cols


def _check_value_dtype(xp, vals, dtype: Any):
    """``np.dtype(dtype)``, refusing an integer dtype that ``vals`` do not fit (they would
    wrap around) or that would drop their fractions."""
    dt = np.dtype(dtype)
    if dt.kind not in "biuf":
        raise TypeError(f"dtype must be a real number type, got {dt}")
    if dt.kind == "f" and vals.size:
        big = float(xp.abs(vals).max())
        if big > float(np.finfo(dt).max):
            raise ValueError(f"values hold {big:g}, which overflows dtype {dt}")
    if dt.kind in "iu" and vals.size:
        info = np.iinfo(dt)
        lo, hi = float(vals.min()), float(vals.max())
        if lo < info.min or hi > info.max:
            bad = lo if lo < info.min else hi
            raise ValueError(
                f"values hold {bad:g}, outside the range of dtype {dt} "
                f"[{info.min}, {info.max}]; it would wrap around: use a wider or float dtype"
            )
        if vals.dtype.kind == "f" and not bool((vals == xp.round(vals)).all()):
            at = int(xp.flatnonzero(vals != xp.round(vals))[0])
            raise ValueError(
                f"values[{at}] = {float(vals[at])} is not a whole number; dtype {dt} would "
                "drop its fraction: use a float dtype"
            )
    return dt


def _index_array(xp, a: Any, name: str):
    arr = xp.asarray(a)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {tuple(arr.shape)}")
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integers, got dtype {arr.dtype}")
    # int32 stays int32 (half the memory traffic in the CPU kernel); others widen to int64
    return arr if arr.dtype in (xp.int32, xp.int64) else arr.astype(xp.int64)


def _check_range(xp, arr, bound: int | None, name: str, axis: str) -> None:
    if arr.size == 0:
        return
    lo = int(arr.min())
    if lo < 0:
        at = int(xp.argmin(arr))
        raise ValueError(f"{name}[{at}] = {lo} is negative")
    if bound is not None:
        hi = int(arr.max())
        if hi >= bound:
            at = int(xp.argmax(arr))
            raise ValueError(f"{name}[{at}] = {hi} is out of range for {bound} {axis}")


def build_user_item_csr(
    user_idx: Any,
    item_idx: Any,
    values: Any,
    shape: tuple[int, int] | None = None,
    *,
    dtype: Any = np.float32,
    backend: str | Backend = "cpu",
):
    """CSR matrix with ``m[user_idx[n], item_idx[n]] = values[n]``; last duplicate wins.

    O(nnz) on the CPU. From :data:`PARALLEL_MIN_NNZ` entries on, parallel over numba's
    threads (one when the machine is oversubscribed): one pass over the
    row indices (validated, row pointer; a stable scatter by row only when they are not in
    order), then one over the columns and values, row by row through a per-thread bitmap that
    sorts and deduplicates each row (see :mod:`recsys_fast.kernels._csr_rows`); below it (and
    for very wide matrices) a single-threaded two-pass counting sort. Other backends
    use one stable sort of the (row, col) keys, skipped when the pairs are already sorted. The
    duplicate policy is the one of the course's ``itertuples`` fill of a dense matrix: a later
    triple for the same (user, item) overwrites an earlier one. Explicit zero values are kept
    as stored entries (they densify to 0 as in the course matrix).

    Parameters
    ----------
    user_idx, item_idx : array-like of int
        Compact 0-based row / column indices (``Interactions.user_idx`` / ``item_idx``).
    values : array-like of float
        One value per pair; NaN or infinite values are rejected.
    shape : (int, int), optional
        Matrix shape; default ``(max(user_idx) + 1, max(item_idx) + 1)``.
    dtype : numpy dtype, default float32
        Dtype of the stored values.
    backend : "cpu", "gpu" or Backend
        Where the matrix is built; the result is a scipy / cupyx CSR matrix accordingly.

    Returns
    -------
    csr_matrix
        Canonical CSR: sorted column indices, no duplicates.

    Raises
    ------
    ValueError
        Lengths differ, a value is NaN/inf (or overflows ``dtype``), an integer ``dtype``
        would wrap a value around or drop its fraction, ``shape`` has a negative dimension,
        or an index is negative or outside ``shape``.
    TypeError
        Indices are not integers, ``shape`` is not two integers, ``dtype`` is not numeric.
    MemoryBudgetError
        ``shape`` has so many rows that the row pointer does not fit (checked before any
        allocation).
    """
    be = get_backend(backend)
    xp, sparse = be.xp, be.sparse
    rows = _index_array(xp, user_idx, "user_idx")
    cols = _index_array(xp, item_idx, "item_idx")
    vals = xp.asarray(values)
    if vals.ndim != 1:
        raise ValueError(f"values must be 1-D, got shape {tuple(vals.shape)}")
    if not (rows.size == cols.size == vals.size):
        raise ValueError(
            f"lengths differ: user_idx {rows.size}, item_idx {cols.size}, values {vals.size}"
        )
    if vals.dtype.kind not in "biuf":
        raise TypeError(f"values must be real numbers, got dtype {vals.dtype}")
    if be.host:
        # one fused parallel pass validates and counts; any doubt falls through to the
        # checks below, which raise the first error in their documented order
        m = _cpu_checked_build(rows, cols, vals, shape, dtype)
        if m is not None:
            return m
    if vals.size and vals.dtype.kind == "f" and not bool(xp.isfinite(vals).all()):
        at = int(xp.flatnonzero(~xp.isfinite(vals))[0])
        raise ValueError(f"values[{at}] = {float(vals[at])} is not finite")
    dt = _check_value_dtype(xp, vals, dtype)
    vals = vals.astype(dt, copy=False)
    if shape is None:
        shape = _default_shape(rows, cols)
    n_rows, n_cols = _check_shape(shape)
    # the row pointer is the one array sized by the shape rather than by the data
    check_memory(f"CSR row pointer for shape {(n_rows, n_cols)}", (n_rows + 1) * 8)
    _check_range(xp, rows, n_rows, "user_idx", "rows")
    _check_range(xp, cols, n_cols, "item_idx", "columns")

    index_dtype = xp.int32 if max(n_cols, rows.size) < 2**31 else xp.int64
    if be.host:
        indptr, out_cols, vals = _csr_cpu(rows, cols, vals, n_rows, n_cols, dt, index_dtype)
    else:
        rows, cols = rows.astype(xp.int64), cols.astype(xp.int64)
        indptr, out_cols, vals = _csr_by_sort(xp, rows, cols, vals, n_rows, n_cols, index_dtype)
    m = sparse.csr_matrix((vals, out_cols, indptr), shape=(n_rows, n_cols))
    if be.host:
        m.has_sorted_indices = True
    return m


def _default_shape(rows, cols) -> tuple[int, int]:
    return (int(rows.max()) + 1 if rows.size else 0, int(cols.max()) + 1 if cols.size else 0)


# value dtypes the fused CPU pass validates by itself (finite, no float overflow)
_FAST_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _cpu_checked_build(rows, cols, vals, shape, dtype):
    """The CPU CSR when every input check passes in the fused scan, else ``None`` (the caller
    then runs the separate checks, which name the first bad input). Never raises on bad input."""
    from recsys_fast.errors import MemoryBudgetError

    try:
        dt = np.dtype(dtype)
        if dt not in _FAST_DTYPES or vals.dtype not in _FAST_DTYPES:
            return None
        if shape is None:
            shape = _default_shape(rows, cols)
        n_rows, n_cols = _check_shape(shape)
        check_memory(f"CSR row pointer for shape {(n_rows, n_cols)}", (n_rows + 1) * 8)
    except (TypeError, ValueError, MemoryBudgetError):
        return None
    if not _parallel_pays(n_rows, n_cols, rows.size):
        return None
    index_dtype = np.int32 if max(n_cols, rows.size) < 2**31 else np.int64
    built = _merge(rows, cols, vals, n_rows, n_cols, dt, index_dtype, float(np.finfo(dt).max))
    if built is None:
        return None
    indptr, out_cols, out_vals = built
    m = scipy.sparse.csr_matrix((out_vals, out_cols, indptr), shape=(n_rows, n_cols))
    m.has_sorted_indices = True
    return m


# Below this many entries the single-threaded counting sort runs: a parallel region's fork and
# join (and, on a busy machine, waiting for the second thread to be scheduled) costs more than
# splitting a few milliseconds of work saves.
PARALLEL_MIN_NNZ = 1 << 18


def _parallel_pays(n_rows: int, n_cols: int, nnz: int) -> bool:
    from recsys_fast.kernels import _csr_rows

    return nnz >= PARALLEL_MIN_NNZ and _csr_rows.fits_bitmap(n_rows, n_cols, nnz)


def _n_threads() -> int:
    """numba's thread count; one thread when the machine is oversubscribed (one-minute load
    average at least twice the cores).

    A parallel region ends only when every thread reaches its barrier, so a thread with no free
    core to run on delays the call instead of helping: on a 2-vCPU machine with other work on
    it (load 9), 2 threads took 72 ms at 1m where 1 took 28. A finer cap measured worse: the
    load average lags (in a benchmark run the machine probes and the previous case kept it near
    2.5, and a cap at ``cores - load + own threads`` ran the 1m case on one thread, 9.3 ms where
    two take ~5), and ``/proc/loadavg``'s runnable count at the call also counts this process's
    own workers and helper threads (one thread on every other call of a plain loop)."""
    import numba

    n = numba.get_num_threads()
    if n > 1:
        try:
            cores = len(os.sched_getaffinity(0))
            load = os.getloadavg()[0]
        except (AttributeError, OSError):  # not on Linux / no load average: trust numba
            return n
        if load >= 2 * cores:
            n = 1
    return n


def _merge(rows, cols, vals, n_rows, n_cols, dt, index_dtype, limit):
    """CSR arrays (see :mod:`._csr_rows`); ``None`` if an index is out of range or a value
    fails ``|v| <= limit``. The parallel regions run on exactly :func:`_n_threads` threads
    (a thread with an empty range would still have to reach each region's barrier)."""
    import numba

    n_threads = _n_threads()
    before = numba.get_num_threads()
    numba.set_num_threads(n_threads)
    try:
        return _merge_on(rows, cols, vals, n_rows, n_cols, dt, index_dtype, limit, n_threads)
    finally:
        numba.set_num_threads(before)


def _merge_on(rows, cols, vals, n_rows, n_cols, dt, index_dtype, limit, n_threads):
    import numba

    from recsys_fast.kernels import _csr_rows

    n_chunks = n_threads * _csr_rows.CHUNKS_PER_THREAD if n_threads > 1 else 1
    with numba.parallel_chunksize(1):  # chunks handed out one by one: see CHUNKS_PER_THREAD
        indptr, status = _csr_rows.scan_ordered(rows, n_rows,
                                                _csr_rows.chunk_bounds(rows.size, n_chunks))
    if status == 1:
        return None
    if status == 2:  # rows not in order: stable scatter by row first
        bounds = _csr_rows.chunk_bounds(rows.size, n_threads)  # one count row per chunk
        counts, rows_ok = _csr_rows.scan(rows, n_rows, bounds)
        if not rows_ok:
            return None
        indptr = _csr_rows.row_pointer(counts)
        by_row_cols, by_row_vals = np.empty_like(cols), np.empty_like(vals)
        _csr_rows.scatter_rows(rows, cols, vals, indptr, counts, bounds, by_row_cols, by_row_vals)
        cols, vals = by_row_cols, by_row_vals
    nnz = rows.size
    out_cols = np.empty(nnz, index_dtype)
    out_vals = np.empty(nnz, dt)
    row_bounds = _csr_rows.row_chunks(indptr, n_chunks)
    with numba.parallel_chunksize(1):
        kept, ok = _csr_rows.merge_rows(indptr, cols, vals, n_cols, limit, row_bounds,
                                        out_cols, out_vals)
    if not ok:
        return None
    if int(kept.sum()) != nnz:  # duplicates left gaps
        indptr = _csr_rows.compact(indptr, kept, out_cols, out_vals)
        w = int(indptr[-1])
        out_cols, out_vals = out_cols[:w].copy(), out_vals[:w].copy()
    return indptr.astype(index_dtype, copy=False), out_cols, out_vals


def _csr_cpu(rows, cols, vals, n_rows: int, n_cols: int, dt, index_dtype):
    """CSR arrays of already validated CPU inputs: the parallel bitmap merge where it costs
    O(nnz), else the two-pass counting sort (very wide matrices)."""

    if vals.dtype in _FAST_DTYPES and _parallel_pays(n_rows, n_cols, rows.size):
        return _merge(rows, cols, vals, n_rows, n_cols, dt, index_dtype, np.inf)
    from recsys_fast.kernels._csr_numba import csr_last_wins

    indptr, out_cols, vals = csr_last_wins(rows, cols, vals, n_rows, n_cols)
    return indptr.astype(index_dtype, copy=False), out_cols.astype(index_dtype, copy=False), vals


def _csr_by_sort(xp, rows, cols, vals, n_rows: int, n_cols: int, index_dtype):
    """The same CSR arrays via one stable sort of the (row, col) keys (any xp backend)."""
    key = rows * n_cols + cols  # < n_rows * n_cols, fits int64 for any realistic shape
    if key.size > 1 and not bool((key[1:] >= key[:-1]).all()):
        # stable: among equal keys the input order survives, so the last one is the latest
        order = xp.argsort(key, kind="stable")
        key, vals = key[order], vals[order]
    if key.size > 1:
        last = xp.empty(key.size, dtype=bool)
        last[:-1] = key[1:] != key[:-1]
        last[-1] = True
        if not bool(last.all()):
            key, vals = key[last], vals[last]
    out_rows = key // n_cols if n_cols else key
    out_cols = (key - out_rows * n_cols).astype(index_dtype)
    counts = xp.bincount(out_rows, minlength=n_rows) if key.size else xp.zeros(n_rows, xp.int64)
    indptr = xp.zeros(n_rows + 1, dtype=index_dtype)
    indptr[1:] = xp.cumsum(counts)
    return indptr, out_cols, vals
