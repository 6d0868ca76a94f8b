"""Course-mode memory-based CF: exactly what the course computes, without its dense detours.

:func:`predict_course` computes what the course's
``naive.collaborative.predict(R, pairwise_distances(R or R.T, metric='cosine'), kind)`` does,
quirks included (cosine *distance* used as the weight, the user mean taken over all items,
zeros included). :func:`rmse` is the course's RMSE over the non-zeros of the test matrix.

How the products run (``strategy``):

- ``"numba"`` (CPU; ``auto``'s choice there below 30 % density): neither kind forms a cosine
  matrix. With C the cosine similarity and the course's S = 1 - C (0 on the diagonal),
  ``S @ R`` (user) and ``R @ S`` (item) reduce to row/column sums minus a product of the sparse
  R with an items x items Gram (``R^T diag(w) R``), which :mod:`._gram_numba` builds from the
  non-zeros only (sum of deg(u)^2 multiply-adds) and multiplies by R as row axpys (nnz x
  n_items multiply-adds), a finishing pass fused into the product. At ML-1M shape that is
  ~8 G multiply-adds for both kinds against ~290 G in the dense formulation.
- ``"dense"``: the same identities (user) or the explicit distance matrix (item) with BLAS GEMM
  on dense copies; ``"sparse"``: scipy / cupyx sparse products. ``auto`` on the GPU picks
  dense above 0.5 % density.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse

from recsys_fast.backend import Backend, get_backend, to_host
from recsys_fast.kernels._gram_numba import gram, transpose_with_positions
from recsys_fast.memory import check_memory, dense_bytes

KINDS = ("user", "item")
STRATEGIES = ("auto", "sparse", "dense", "numba")
# Density above which the dense BLAS product beats the sparse one on the same matrix: measured
# on a 2-core AVX2 box at ML-1M shape, dgemm ran ~30x more flop/s than scipy's csr x dense
# (60 vs 2 GFLOP/s); cuBLAS outruns cuSPARSE by more still.
_DENSE_ABOVE = {True: 0.03, False: 0.005}  # host (CPU), device (GPU)
# Below this density the numba kernels (nnz-proportional work) beat dense BLAS on the CPU:
# the product's work is density x the GEMM's and ran at ~1/9 of dgemm's flop rate at ML-1M
# shape (5.8 vs 51 GFLOP/s, 2-core AVX-512 box, bench/cf_course_gflops.py), so it breaks even
# near 11 %; the Gram's work is smaller still (sum of deg^2 / 2 against n_i^2 n_u).
_NUMBA_BELOW = 0.10


def _check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"kind must be 'user' or 'item', got {kind!r}")
    return kind


def as_train_csr(train: Any, *, dtype: Any = np.float64, backend: str | Backend = "cpu"):
    """A rating matrix as a canonical CSR on ``backend`` (explicit zeros dropped, as unrated).

    Parameters
    ----------
    train : sparse matrix or 2-D array, shape (n_users, n_items)
    dtype : float dtype
    backend : "cpu", "gpu" or Backend

    Raises
    ------
    TypeError
        Not a matrix, or non-numeric.
    ValueError
        Not 2-D, or a NaN / infinite rating (its row and column named).
    """
    be = get_backend(backend)
    xp = be.xp
    if scipy.sparse.issparse(train) or be.sparse.issparse(train):
        R = be.to_device(train).tocsr() if scipy.sparse.issparse(train) else train.tocsr()
    elif isinstance(train, (np.ndarray, xp.ndarray)):
        if train.ndim != 2:
            raise ValueError(f"train must be 2-D, got shape {tuple(train.shape)}")
        R = be.sparse.csr_matrix(xp.asarray(train))
    else:
        raise TypeError(f"train must be a sparse matrix or a 2-D array, got {type(train).__name__}")
    if R.dtype.kind not in "biuf":
        raise TypeError(f"train must hold real numbers, got dtype {R.dtype}")
    dt = np.dtype(dtype)
    if dt.kind != "f":
        raise TypeError(f"dtype must be a floating type (float32, float64), got {dt}")
    R = R.astype(dt, copy=True)
    R.sum_duplicates()
    if R.nnz and not bool(xp.isfinite(R.data).all()):
        at = int(xp.flatnonzero(~xp.isfinite(R.data))[0])
        row = int(xp.searchsorted(R.indptr, at, side="right")) - 1
        raise ValueError(
            f"train holds a non-finite rating {float(R.data[at])} at row {row}, "
            f"column {int(R.indices[at])}"
        )
    R.eliminate_zeros()
    _check_square_range(R, xp)
    return R


def _check_square_range(R, xp) -> None:
    """Raise ValueError when a rating's square (summed over a row or column) would overflow,
    or a non-zero rating's square underflow to 0, in R's dtype: the cosine norms would be
    infinite or zero and every prediction NaN or 0."""
    if not R.nnz:
        return
    info = np.finfo(R.dtype)
    hi = float(np.sqrt(info.max / max(R.shape)))
    lo = float(np.sqrt(info.tiny))
    mag = xp.abs(R.data)
    for bad, what in ((mag > hi, f"above {hi:.3g}: its square overflows {R.dtype}"),
                      (mag < lo, f"below {lo:.3g} in magnitude: its square underflows to 0")):
        if bool(bad.any()):
            at = int(xp.flatnonzero(bad)[0])
            row = int(xp.searchsorted(R.indptr, at, side="right")) - 1
            raise ValueError(
                f"train holds the rating {float(R.data[at])!r} at row {row}, column "
                f"{int(R.indices[at])}, {what}; rescale the ratings"
            )


def _abs_row_sums(S, xp, block: int = 1024):
    """``np.abs(S).sum(axis=1)`` without an n x n temporary."""
    out = xp.empty(S.shape[0], dtype=S.dtype)
    for r0 in range(0, S.shape[0], block):
        out[r0 : r0 + block] = xp.abs(S[r0 : r0 + block]).sum(axis=1)
    return out


def _choose_strategy(R, strategy: str, be: Backend) -> str:
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    if strategy == "numba" and not be.host:
        raise ValueError("strategy='numba' is CPU-only; use 'dense' or 'sparse' on the GPU")
    if strategy != "auto":
        return strategy
    density = R.nnz / max(1, R.shape[0] * R.shape[1])
    if be.host and density < _NUMBA_BELOW:
        return "numba"
    return "dense" if density > _DENSE_ABOVE[be.host] else "sparse"


def predict_course(
    train: Any,
    kind: str = "user",
    *,
    similarity: Any = None,
    dtype: Any = np.float64,
    backend: str | Backend = "cpu",
    strategy: str = "auto",
):
    """The course's CF prediction matrix, computed with sparse R and in-place updates.

    user: ``mean + S @ (R - mean) / |S|.sum(1)`` evaluated as
    ``mean + (S @ R - (S @ mean)[:, None]) / |S|.sum(1)[:, None]`` (mean over all items);
    without ``similarity`` the user x user S is never formed (see
    :func:`_user_course_via_item_gram`). item: ``R @ S / |S|.sum(1)[None, :]``. Division by
    a zero weight sum gives NaN/inf, as in the course.

    Parameters
    ----------
    train : sparse matrix or 2-D array, shape (n_users, n_items)
    kind : {"user", "item"}
    similarity : 2-D array or sparse matrix, optional
        The course's "similarity" (n_users or n_items square); a sparse one is densified. Default: the cosine *distances*
        of the rows (user) or columns (item) of ``train``, via
        :func:`recsys_fast.kernels.cosine_distances`, exactly as the course.
    dtype : float dtype, default float64 (needed to match the course to 1e-9)
    backend : "cpu", "gpu" or Backend
    strategy : {"auto", "numba", "sparse", "dense"}
        How the products run: numba kernels on the non-zeros of R (``numba``, CPU only; no
        cosine matrix at all when ``similarity`` is not given), scipy/cupyx csr x dense
        (``sparse``) or BLAS GEMM on a dense copy of R (``dense``); ``auto`` picks by backend
        and density (module docstring).

    Returns
    -------
    ndarray (on the backend), shape (n_users, n_items)

    Raises
    ------
    TypeError
        ``similarity`` is not a matrix of numbers, ``dtype`` is not a float type.
    ValueError
        Unknown kind/strategy, similarity of the wrong shape or non-finite, bad train
        (including ratings whose squares overflow or underflow).
    MemoryBudgetError
        The dense result (plus similarity) would not fit.
    """
    from recsys_fast.kernels.similarity import cosine_distances

    be = get_backend(backend)
    xp = be.xp
    _check_kind(kind)
    R = as_train_csr(train, dtype=dtype, backend=be)
    n_users, n_items = R.shape
    n = n_users if kind == "user" else n_items
    how = _choose_strategy(R, strategy, be)
    dense = how == "dense"
    square = n_items if how == "numba" or (kind == "user" and similarity is None) else n
    check_memory(
        f"course {kind}-based prediction {n_users} x {n_items}",
        dense_bytes(R.shape, dtype) * (2 if dense else 1) + dense_bytes((square, square), dtype),
    )
    if how == "numba" and similarity is None:
        return _course_numba(R, kind)
    if kind == "user" and similarity is None:
        return _user_course_via_item_gram(R, dense, be)
    if similarity is None:
        S = cosine_distances(R if kind == "user" else R.T.tocsr(), dtype=dtype, backend=be)
    else:
        S = _dense_similarity(similarity, dtype, be)
        if S.shape != (n, n):
            raise ValueError(
                f"{kind}-based prediction needs a {n} x {n} similarity for train of shape "
                f"{R.shape}, got {tuple(S.shape)}"
            )
        if not bool(xp.isfinite(S).all()):
            raise ValueError("similarity holds NaN or infinite values")
    denom = _abs_row_sums(S, xp)
    with np.errstate(divide="ignore", invalid="ignore"):
        if kind == "user":
            mean = xp.asarray(R.sum(axis=1), dtype=dtype).ravel() / n_items
            if how == "numba":  # S @ R = (R^T S^T)^T
                minus = -np.ones(n_items, dtype=dtype)
                P = _spmm(R.T.tocsr(), xp.ascontiguousarray(S.T), row_scale=minus)
                P = xp.ascontiguousarray(P.T)
            else:
                P = S @ be.dense(R) if dense else xp.ascontiguousarray((R.T @ S.T).T)
            P -= (S @ mean)[:, None]
            P /= denom[:, None]
            P += mean[:, None]
        elif how == "numba":
            ones = np.ones(n_users, dtype=dtype)
            P = _spmm(R, xp.ascontiguousarray(S), row_scale=-ones, col_den=denom)
        else:
            P = be.dense(R) @ S if dense else xp.asarray(R @ S)
            P /= denom[None, :]
    return P


def _dense_similarity(similarity: Any, dtype, be: Backend):
    """The given similarity as a dense array on ``be`` (a sparse one densified)."""
    xp = be.xp
    if scipy.sparse.issparse(similarity) or be.sparse.issparse(similarity):
        similarity = be.to_device(similarity).toarray()
    elif not isinstance(similarity, xp.ndarray):
        similarity = be.to_device(np.asarray(similarity))
    if similarity.dtype.kind not in "biuf":
        raise TypeError(f"similarity must hold real numbers, got dtype {similarity.dtype}")
    return xp.asarray(similarity, dtype=dtype)


def _spmm(A, G, *, col_add=None, row_add=None, row_scale=None, col_scale=None, row_den=None,
          col_den=None, row_after=None):
    """``(col_add + row_add - row_scale col_scale (A @ G)) / (row_den col_den) + row_after``
    with the numba kernel (A CSR, G dense C-ordered); omitted terms take their neutral value
    (so ``row_scale=-1`` alone gives ``A @ G``).
    """
    from recsys_fast.kernels import _gram_numba as nb

    n_rows, n_cols = A.shape[0], G.shape[1]
    dt = G.dtype

    def vec(x, n, fill):
        return np.full(n, fill, dtype=dt) if x is None else np.ascontiguousarray(x, dtype=dt)

    out = np.empty((n_rows, n_cols), dtype=dt)
    nb.spmm_dense(
        A.indptr.astype(np.int64), A.indices.astype(np.int64), A.data.astype(dt, copy=False),
        G, vec(col_add, n_cols, 0), vec(row_add, n_rows, 0), vec(row_scale, n_rows, 1),
        vec(col_scale, n_cols, 1), vec(row_den, n_rows, 1), vec(col_den, n_cols, 1),
        vec(row_after, n_rows, 0), out,
    )
    return out


def _inv_norms(sq):
    """1 / sqrt(sq), 0 where sq == 0 (sklearn's zero-vector convention)."""
    return np.where(sq > 0, 1.0 / np.sqrt(np.where(sq > 0, sq, 1.0)), 0.0).astype(sq.dtype)


def _course_numba(R, kind: str):
    """Both course kinds from sparse R with the numba kernels; no cosine matrix is formed.

    user (D = diag of inverse row norms, C = D R R^T D, G = R^T D R):
    ``S @ R = colsum(R) - D R G`` and ``S @ mean = sum(mean) - D R R^T D mean``, weight sum
    ``n_users - D R R^T D 1 - [empty row]`` (see :func:`_user_course_via_item_gram`).
    item (E = diag of inverse column norms, C = E R^T R E, K = R^T R): the mirror image,
    ``R @ S = rowsum(R) - (R E) K E`` and weight sum ``n_items - E R^T R E 1 - [empty item]``.
    The ``(1 - C_jj)`` self-terms are rounding-sized and dropped.
    """
    n_users, n_items = R.shape
    RT, rt_pos = transpose_with_positions(R)
    with np.errstate(divide="ignore", invalid="ignore"):
        if kind == "user":
            sq = np.asarray(R.multiply(R).sum(axis=1), dtype=R.dtype).ravel()
            d = _inv_norms(sq)
            G = gram(R, RT, rt_pos, d)
            mean = np.asarray(R.sum(axis=1), dtype=R.dtype).ravel() / n_items
            s_mean = mean.sum() - d * (R @ (RT @ (d * mean)))
            denom = n_users - d * (R @ (RT @ d)) - (sq == 0)
            colsum = np.asarray(R.sum(axis=0), dtype=R.dtype).ravel()
            return _spmm(R, G, col_add=colsum, row_add=-s_mean, row_scale=d, row_den=denom,
                         row_after=mean)
        sq = np.asarray(R.multiply(R).sum(axis=0), dtype=R.dtype).ravel()
        e = _inv_norms(sq)
        K = gram(R, RT, rt_pos, np.ones(n_users, dtype=R.dtype))
        denom = n_items - e * (RT @ (R @ e)) - (sq == 0)
        RE = R.multiply(e[None, :]).tocsr()
        rowsum = np.asarray(R.sum(axis=1), dtype=R.dtype).ravel()
        return _spmm(RE, K, row_add=rowsum, col_scale=e, col_den=denom)


def _user_course_via_item_gram(R, dense: bool, be: Backend):
    """Course user-based prediction without the n_users x n_users distance matrix.

    With C = D R R^T D the cosine similarity (D = diag(1 / row norm), 0 for an empty row) and
    the course's S = 1 - C off the diagonal, 0 on it:
    ``S @ X = colsum(X) - D R (R^T D X) - (1 - C_uu) X_u``. For X = R, G = R^T D R is an
    n_items square Gram (a SYRK of D^1/2 R), so S @ R = colsum(R) - D R G: 2 n_i^2 n_u flops
    plus n_i^2 n_u for G instead of the course's 2 n_u^2 n_i plus n_u^2 n_i for S, and
    n_i^2 memory instead of n_u^2. The ``(1 - C_uu) X_u`` term is zero for an empty row
    (X_u = 0) and rounding-sized otherwise, except in the weight sum (X = 1), where an empty
    row's missing self-term is 1. S >= 0 up to rounding, so the course's abs and clip are
    rounding-level no-ops.
    """
    xp = be.xp
    n_users, n_items = R.shape
    sq = xp.asarray(R.multiply(R).sum(axis=1)).ravel()
    d = xp.where(sq > 0, 1.0 / xp.sqrt(xp.where(sq > 0, sq, 1.0)), 0.0).astype(R.dtype)
    half = xp.sqrt(d)
    B = be.sparse.csr_matrix(R.multiply(half[:, None]))
    if dense:
        Bd = be.dense(B)
        G = Bd.T @ Bd  # SYRK
        P = Bd @ G
        del Bd
    else:
        G = (B.T @ B).toarray()
        P = xp.asarray(B @ G)
    P *= half[:, None]  # D R G = D^1/2 (D^1/2 R) G
    P *= -1
    P += xp.asarray(R.sum(axis=0), dtype=R.dtype).ravel()[None, :]
    RT = R.T.tocsr()
    mean = xp.asarray(R.sum(axis=1), dtype=R.dtype).ravel() / n_items
    s_mean = mean.sum() - d * (R @ (RT @ (d * mean)))
    denom = n_users - d * (R @ (RT @ d)) - (sq == 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        P -= s_mean[:, None]
        P /= denom[:, None]
    P += mean[:, None]
    return P


def rmse(prediction: Any, ground_truth: Any) -> float:
    """The course's RMSE: over the non-zero entries of ``ground_truth`` (dense or sparse).

    Raises
    ------
    ValueError
        Shapes differ, or ``ground_truth`` has no non-zero entry.
    """
    prediction = to_host(prediction)
    ground_truth = to_host(ground_truth)
    if prediction.shape != ground_truth.shape:
        raise ValueError(
            f"prediction shape {prediction.shape} != ground_truth shape {ground_truth.shape}"
        )
    if scipy.sparse.issparse(ground_truth):
        rows, cols = ground_truth.nonzero()
        truth = np.asarray(ground_truth[rows, cols]).ravel()
    else:
        rows, cols = np.asarray(ground_truth).nonzero()
        truth = np.asarray(ground_truth)[rows, cols]
    if rows.size == 0:
        raise ValueError("ground_truth has no non-zero entry: RMSE is undefined")
    pred = np.asarray(prediction)[rows, cols] if not scipy.sparse.issparse(prediction) else (
        np.asarray(prediction[rows, cols]).ravel()
    )
    return float(np.sqrt(np.mean((truth.astype(np.float64) - pred) ** 2)))
