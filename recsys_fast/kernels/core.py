"""The core every kernel shares: input validation, canonical CSR, row normalisation.

Public inside the package (the in-process kernels and the task drivers call the same
functions); never copied.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import scipy.sparse

from recsys_fast.backend import Backend
from recsys_fast.kernels import _topk_numba as nb


def check_real(dtype, name: str) -> None:
    if dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {dtype}")


def as_csr(X: Any, be: Backend, name: str = "X"):
    """X as a canonical CSR on ``be`` (any scipy/cupyx sparse format or a 2-D array)."""
    if scipy.sparse.issparse(X) or be.sparse.issparse(X):
        if scipy.sparse.issparse(X):
            check_real(X.dtype, name)
            if X.dtype.kind != "f":  # cupyx sparse holds floats only
                X = X.astype(np.float64)
            X = be.to_device(X)
        X = X.tocsr()
    elif isinstance(X, np.ndarray) or isinstance(X, be.xp.ndarray):
        if X.ndim != 2:
            raise ValueError(f"{name} must be 2-D, got shape {tuple(X.shape)}")
        check_real(X.dtype, name)
        X = be.xp.asarray(X, dtype=X.dtype if X.dtype.kind == "f" else np.float64)
        X = be.sparse.csr_matrix(X)
    else:
        raise TypeError(f"{name} must be a sparse matrix or a 2-D array, got {type(X).__name__}")
    check_real(X.dtype, name)
    if X.nnz and not bool(be.xp.isfinite(X.data).all()):
        at = int(be.xp.flatnonzero(~be.xp.isfinite(X.data))[0])
        row = int(be.xp.searchsorted(X.indptr, at, side="right")) - 1
        raise ValueError(
            f"{name} holds a non-finite value {float(X.data[at])} at row {row}, "
            f"column {int(X.indices[at])}"
        )
    return X


def canonical(X):
    """X with duplicates summed and explicit zeros dropped (a copy only when needed)."""
    if not X.has_canonical_format:
        X = X.copy()
        X.sum_duplicates()
    if X.nnz and not bool(X.data.all()):
        X = X.copy()
        X.eliminate_zeros()
    return X


def normalized(X, be: Backend, dtype):
    """Rows of the canonical X scaled to unit L2 norm (zero rows stay zero)."""
    xp = be.xp
    if X.dtype.kind != "f" or X.dtype.itemsize < 4:  # ints, bools, float16
        X = X.astype(xp.float64)
    if be.host:
        data = np.empty(X.nnz, dtype=dtype)
        nb.normalize_rows(X.indptr, X.data, data)
    else:
        rows = be.entry_rows(X.indptr)
        inv = inverse_norms(X, be, rows)
        d64 = X.data.astype(xp.float64)
        nonzero_rows = xp.diff(X.indptr) > 0
        bad = (inv == 0) & nonzero_rows | (inv > 1e140) | ((inv > 0) & (inv < 1e-150))
        if bool(bad.any()):  # squares under- or overflowed: divide those rows by their max
            big = xp.asarray(abs(X).max(axis=1).toarray(), dtype=xp.float64).ravel()
            scale = xp.where(bad, big, 1.0)
            d64 = d64 / scale[rows]
            inv = inverse_norms(be.sparse.csr_matrix((d64, X.indices, X.indptr), shape=X.shape),
                                 be, rows)
        data = (d64 * inv[rows]).astype(dtype)
    out = be.sparse.csr_matrix((data, X.indices, X.indptr), shape=X.shape)
    if be.host:
        out.has_sorted_indices = True
    return out


def inverse_norms(X, be: Backend, rows=None):
    """1 / L2 norm of each row of X in float64 (0 for zero rows); ``rows``: X's entry rows
    (:meth:`Backend.entry_rows`), when the caller has them already."""
    xp = be.xp
    n = X.shape[0]
    d64 = X.data.astype(xp.float64)
    rows = be.entry_rows(X.indptr) if rows is None else rows
    sq = xp.bincount(rows, weights=d64 * d64, minlength=n)
    inv = xp.zeros(n, dtype=xp.float64)
    pos = sq > 0
    inv[pos] = 1.0 / xp.sqrt(sq[pos])
    return inv


def result_dtype(X, dtype):
    """The course kernels' result dtype: ``dtype`` (a float), else float32 for float32 X and
    float64 for anything else, as sklearn."""
    if dtype is not None:
        dt = np.dtype(dtype)
        if dt.kind != "f":
            raise TypeError(f"dtype must be a floating type, got {dt}")
        return dt
    # sklearn keeps float32 inputs in float32 and computes everything else in float64
    return np.dtype(np.float32) if X.dtype == np.float32 else np.dtype(np.float64)


def check_block_rows(block_rows: Any, name: str = "block_rows") -> int | None:
    """``block_rows`` as an int, None kept; TypeError/ValueError unless a positive integer."""
    if block_rows is None:
        return None
    if isinstance(block_rows, bool) or not isinstance(block_rows, (int, np.integer)):
        raise TypeError(f"{name} must be a positive integer or None, got {block_rows!r}")
    if block_rows < 1:
        raise ValueError(f"{name} must be a positive integer or None, got {block_rows!r}")
    return int(block_rows)


def check_k(n: int, k: Any, include_self: bool) -> int:
    """k as an int; TypeError unless an integer, ValueError outside ``[1, n - 1]`` (``n`` with
    ``include_self``)."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"k must be an integer, got {k!r}")
    k = int(k)
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")
    limit = n if include_self else n - 1
    if k > limit:
        what = "n_rows" if include_self else "n_rows - 1 (include_self=False)"
        raise ValueError(f"k={k} exceeds {what} = {limit}")
    return k


def check_top_n(n: Any, n_items: int) -> int:
    """``n`` of a top-n call as an int; ValueError unless an integer in ``[1, n_items]``."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= n_items:
        raise ValueError(f"n must be an integer in [1, {n_items}] (n_items), got {n!r}")
    return int(n)


def resolve_threads(n_threads: int | None) -> int:
    """numba's thread count, or ``n_threads`` checked against ``NUMBA_NUM_THREADS``."""
    import numba

    limit = numba.config.NUMBA_NUM_THREADS
    if n_threads is None:
        return numba.get_num_threads()
    n_threads = int(n_threads)
    if not 1 <= n_threads <= limit:
        raise ValueError(f"n_threads must be in [1, {limit}] (NUMBA_NUM_THREADS), got {n_threads}")
    return n_threads


def topk_input(X: Any, k: Any, include_self: bool, dtype: Any, n_threads: int | None,
               be: Backend, normalise: bool = True):
    """The checked input of a top-k call: ``(canonical X, its row-normalised copy (the copy
    in ``dtype`` unscaled when ``normalise`` is False), k, dtype, threads)``; the errors of
    :func:`as_csr`, :func:`check_k`, :func:`check_float_dtype` and :func:`resolve_threads`."""
    X = as_csr(X, be)
    k = check_k(X.shape[0], k, include_self)
    dt = check_float_dtype(dtype)
    threads = resolve_threads(n_threads)
    X = canonical(X)
    if not normalise:
        return X, X.astype(dt), k, dt, threads
    return X, normalized(X, be, dt), k, dt, threads


def check_float_dtype(dtype: Any) -> np.dtype:
    """``dtype`` as float32 or float64; TypeError for anything else."""
    dt = np.dtype(dtype)
    if dt not in (np.float32, np.float64):
        raise TypeError(f"dtype must be float32 or float64, got {dt}")
    return dt


def pair_madds(X) -> float:
    """Multiply-adds of ``X @ X.T`` from the non-zeros of a CSR X, both halves: the sum of its
    squared column lengths."""
    col_len = np.bincount(X.indices, minlength=X.shape[1]).astype(np.float64)
    return float(col_len @ col_len)


@functools.lru_cache(maxsize=1)
def _blas_controller():
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def blas_limits(n_threads: int):
    """A context that runs BLAS with ``n_threads`` threads. The loaded libraries are found
    once per process (``threadpool_limits`` looks them up on every call, about 3 ms here)."""
    return _blas_controller().limit(limits=int(n_threads), user_api="blas")
