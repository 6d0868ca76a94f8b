"""numba kernels behind course-mode CF prediction (CPU, float64 or float32).

At ML-1M shape R is 4.5 % full, so the products the course runs as dense GEMMs are mostly
multiplications by zero. Two sparse kernels do the useful part only:

- :func:`sparse_gram` fills the dense items x items Gram ``G = R^T diag(w) R`` row by row: row i
  is the sum, over the users u who rated i, of ``w_u r_ui`` times user u's sparse row, scattered
  into G's row i. Cost: sum over users of deg(u)^2 multiply-adds (0.44 G at ML-1M shape, against
  the dense SYRK's n_items^2 n_users = 83 G).
- :func:`spmm_dense` is ``A @ G`` for a CSR A and a dense G, as row axpys over column panels of
  G narrow enough to stay in a core's L2 (each thread owns whole panels, so no two threads write
  the same output entry). Cost: nnz(A) x n_cols multiply-adds (3.7 G against the dense 83 G).

- :func:`two_products_dense` is two sparse x sparse products with one shared structure,
  ``A1 @ B1`` and ``A2 @ B2``, scattered into dense rows: ``FixedCF``'s numerator and weight sum.
  Cost: for each stored a_ij, the length of B's row j (about nnz(A) x k for k neighbours),
  where scipy's SpGEMM also builds and sorts a sparse result that is nearly dense anyway.

All are parallel over output rows/panels with ``prange`` and cached on disk (``cache=True``);
call :func:`warmup` before timing anything.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse
from numba import njit, prange

# Column panel width of spmm_dense: 32 float64 per row = four AVX-512 registers of accumulator,
# and a 3706 x 32 panel of G is ~0.9 MiB, inside a 2 MiB L2 with room for A's indices.
PANEL = 32


@njit(cache=True, error_model="numpy")
def _gram_row(i, rt_indptr, rt_indices, rt_data, rt_pos, r_indptr, r_indices, r_data, weights,
              row):
    """row[i:] = the upper part of row i of R^T diag(weights) R."""
    row[i:] = 0.0
    for p in range(rt_indptr[i], rt_indptr[i + 1]):
        u = rt_indices[p]
        a = rt_data[p] * weights[u]
        for q in range(rt_pos[p], r_indptr[u + 1]):
            row[r_indices[q]] += a * r_data[q]


@njit(cache=True, parallel=True, error_model="numpy")
def sparse_gram(rt_indptr, rt_indices, rt_data, rt_pos, r_indptr, r_indices, r_data, weights,
                out):
    """out = R^T diag(weights) R, dense and symmetric (n_items square, overwritten).

    ``rt`` is R^T as CSR (items x users) and ``r`` is R as CSR with sorted column indices;
    ``rt_pos[p]`` is where rt's entry p (item i, user u) sits in ``r``. Row i only sums the
    entries k >= i of each user row (starting at ``rt_pos``), halving the work; the lower
    triangle is mirrored after. Rows i and n-1-i share an iteration so both threads get the
    same number of multiply-adds.
    """
    n = out.shape[0]
    for t in prange((n + 1) // 2):
        _gram_row(t, rt_indptr, rt_indices, rt_data, rt_pos, r_indptr, r_indices, r_data,
                  weights, out[t])
        if n - 1 - t != t:
            _gram_row(n - 1 - t, rt_indptr, rt_indices, rt_data, rt_pos, r_indptr, r_indices,
                      r_data, weights, out[n - 1 - t])
    for i in prange(n):
        for k in range(i):
            out[i, k] = out[k, i]


@njit(cache=True, parallel=True, error_model="numpy")
def spmm_dense(a_indptr, a_indices, a_data, g, col_add, row_add, row_scale, col_scale,
               row_den, col_den, row_after, out):
    """``out = (col_add + row_add - row_scale * col_scale * (A @ g)) / (row_den * col_den)
    + row_after`` (row_* broadcast down, col_* across) for a CSR A (n_rows x n_inner) and a
    C-ordered dense g (n_inner x n_cols): the product and the course's finishing arithmetic in
    one pass over out.
    """
    n_rows = out.shape[0]
    n_cols = g.shape[1]
    n_panels = (n_cols + PANEL - 1) // PANEL
    for b in prange(n_panels):
        c0 = b * PANEL
        w = min(PANEL, n_cols - c0)
        # a contiguous copy of the panel: rows of w values, no stride over g's full width
        panel = np.ascontiguousarray(g[:, c0 : c0 + w])
        acc = np.empty(w, dtype=out.dtype)
        for r in range(n_rows):
            acc[:] = 0.0
            for p in range(a_indptr[r], a_indptr[r + 1]):
                v = a_data[p]
                src = panel[a_indices[p]]
                for c in range(w):
                    acc[c] += v * src[c]
            ra, rs, rd, rf = row_add[r], row_scale[r], row_den[r], row_after[r]
            for c in range(w):
                cc = c0 + c
                out[r, cc] = (col_add[cc] + ra - rs * col_scale[cc] * acc[c]) / (
                    rd * col_den[cc]
                ) + rf


@njit(cache=True, parallel=True, error_model="numpy")
def two_products_dense(a_indptr, a_indices, a1, a2, b_indptr, b_indices, b1, b2, out1, out2):
    """``out1 += A1 @ B1`` and ``out2 += A2 @ B2`` for CSR matrices A1, A2 (values ``a1``,
    ``a2`` on one structure) and B1, B2 (``b1``, ``b2`` on another); rows in parallel."""
    for r in prange(out1.shape[0]):
        o1 = out1[r]
        o2 = out2[r]
        for p in range(a_indptr[r], a_indptr[r + 1]):
            j = a_indices[p]
            x1 = a1[p]
            x2 = a2[p]
            for q in range(b_indptr[j], b_indptr[j + 1]):
                c = b_indices[q]
                o1[c] += x1 * b1[q]
                o2[c] += x2 * b2[q]


def transpose_with_positions(R):
    """R^T as CSR, and for each of its entries the entry's position in R (R sorted in place,
    canonical). Positions of R's entries ride through scipy's transpose as int64 data (exact)."""
    R.sort_indices()
    pos = scipy.sparse.csr_matrix(
        (np.arange(R.nnz, dtype=np.int64), R.indices, R.indptr), shape=R.shape
    ).T.tocsr()
    RT = scipy.sparse.csr_matrix((R.data[pos.data], pos.indices, pos.indptr), shape=pos.shape)
    return RT, pos.data


def gram(R, RT, rt_pos, weights):
    """Dense ``R^T diag(weights) R`` (n_cols square) from the non-zeros only
    (:func:`sparse_gram`; ``RT, rt_pos``: :func:`transpose_with_positions` of R)."""
    n = R.shape[1]
    out = np.empty((n, n), dtype=R.dtype)
    i64 = np.int64
    sparse_gram(
        RT.indptr.astype(i64), RT.indices.astype(i64), RT.data, rt_pos,
        R.indptr.astype(i64), R.indices.astype(i64), R.data,
        np.ascontiguousarray(weights, dtype=R.dtype), out,
    )
    return out


def row_gram(X):
    """Dense float64 ``X @ X.T`` of a CSR X from its non-zeros (:func:`gram` of X^T), summed
    in float64 whatever X's dtype (a float32 sum over hundreds of entries drifts by 1e-6)."""
    R = scipy.sparse.csr_matrix(X.T, dtype=np.float64)
    RT, pos = transpose_with_positions(R)
    return gram(R, RT, pos, np.ones(R.shape[0], dtype=R.dtype))


def gram_work(X) -> tuple[float, float]:
    """``(sparse, dense)`` multiply-adds of ``X @ X.T`` for a CSR X (n x m): from the non-zeros
    (:func:`.core.pair_madds`), and ``n * n * m``."""
    from recsys_fast.kernels.core import pair_madds

    n, m = X.shape
    return pair_madds(X), float(n) * n * m


def warmup() -> None:
    """Compile (or load from numba's cache) the kernels on a tiny input, in both dtypes."""
    for dt in (np.float64, np.float32):
        indptr = np.array([0, 1, 2], dtype=np.int64)
        indices = np.array([0, 1], dtype=np.int64)
        data = np.ones(2, dtype=dt)
        g = np.empty((2, 2), dtype=dt)
        sparse_gram(indptr, indices, data, indptr, indptr, indices, data, np.ones(2, dtype=dt), g)
        v = np.ones(2, dtype=dt)
        spmm_dense(indptr, indices, data, g, v, v, v, v, v, v, v, np.empty((2, 2), dtype=dt))
        two_products_dense(indptr, indices, data, data, indptr, indices, data, data,
                           np.zeros((2, 2), dtype=dt), np.zeros((2, 2), dtype=dt))
