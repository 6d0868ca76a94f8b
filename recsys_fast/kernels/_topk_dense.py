"""The GEMM-based top-k strategies: ``dense`` (square blocks of ``X @ X.T`` by GEMM, I <= J
only), ``spmm`` and ``spgemm`` (row blocks with X kept sparse), and the top-k selection they
share. Written against a backend's ``xp``/``sparse`` namespaces: the same code runs on the CPU,
the GPU and the simulated GPU.
"""

from __future__ import annotations

import numpy as np

from recsys_fast.backend import Backend, bf16_gemm, block_rows_for, tf32_matmul
from recsys_fast.errors import BackendUnavailableError
from recsys_fast.kernels.core import inverse_norms
from recsys_fast.memory import dense_bytes

BLOCK_BYTES = 32 << 20  # working block of S on the CPU


def dense_fits(Xn, be: Backend) -> bool:
    """Whether a dense copy of X may be held: a quarter of free RAM, half of free GPU memory."""
    n, m = Xn.shape
    return dense_bytes((n, m), Xn.dtype) < be.free_bytes() // be.dense_share


def keep_mask(S, k: int, xp):
    """Each row's top-k positive entries of S; ties at the k-th value go to the lower column."""
    b, c = S.shape
    if k >= c:
        return S > 0
    # k-th largest per row as the k-th smallest of -S: a small kth keeps CuPy on its partition
    # kernel (a kth >= 1024 makes it sort every row); numpy's introselect does not mind
    kth = -xp.partition(-S, k - 1, axis=1)[:, k - 1 : k]
    gt = S > kth
    eq = S == kth
    need = k - gt.sum(axis=1)
    n_eq = eq.sum(axis=1)
    tie_rows = xp.flatnonzero(n_eq > need)
    if tie_rows.size:  # keep only the lowest-indexed ties, as many as each row still needs
        sub = eq[tie_rows]
        eq[tie_rows] = sub & (xp.cumsum(sub, axis=1) <= need[tie_rows][:, None])
    return (gt | eq) & (S > 0)


def select_block(S, r0: int, k: int, include_self: bool, xp):
    """Rows, columns, values of the top-k positive entries of each row of the block S."""
    b, n = S.shape
    if not include_self:
        S[xp.arange(b), r0 + xp.arange(b)] = 0
    rows, cols = xp.nonzero(keep_mask(S, k, xp))  # row-major: columns ascending per row
    return rows + r0, cols, S[rows, cols]


def padded_topk(S, k: int, col0: int, xp):
    """(values, columns), each (b, k): each row's top-k positive entries of S, padded with
    (-inf, -1); columns offset by ``col0``."""
    b = S.shape[0]
    rows, cols = xp.nonzero(keep_mask(S, k, xp))
    counts = xp.bincount(rows, minlength=b)
    slot = xp.arange(rows.size) - (xp.cumsum(counts) - counts)[rows]
    vals = xp.full((b, k), -xp.inf, dtype=S.dtype)
    idx = xp.full((b, k), -1, dtype=xp.int64)
    vals[rows, slot] = S[rows, cols]
    idx[rows, slot] = cols + col0
    return vals, idx


def gemm_pairs_topk(D, inv, k: int, include_self: bool, block: int, xp, matmul=None):
    """Rows, columns, values of the top-k from square blocks ``D_I @ D_J.T`` with I <= J only:
    S is symmetric, so each block above the diagonal also serves the rows of J through its
    transpose, and the GEMM work falls to (p + 1) / 2p of the full product for p blocks.

    Each (row block, column block) keeps its top-k candidates (padded); a row block's
    candidates, laid side by side in column-block order, hold their columns in ascending order,
    so one more top-k selection over them applies the same tie rule as a single pass over the
    full row (lower column first) and yields columns already sorted. ``matmul(A, B)`` gives
    ``A @ B.T`` (default: the array library's GEMM).
    """
    n = D.shape[0]
    starts = list(range(0, n, block))
    cand: dict[tuple[int, int], tuple] = {}
    for bi, i0 in enumerate(starts):
        i1 = min(n, i0 + block)
        for bj in range(bi, len(starts)):
            j0 = starts[bj]
            j1 = min(n, j0 + block)
            S = D[i0:i1] @ D[j0:j1].T if matmul is None else matmul(D[i0:i1], D[j0:j1])
            if inv is not None:
                S *= inv[i0:i1, None]
                S *= inv[None, j0:j1]
            if bj == bi and not include_self:
                S[xp.arange(i1 - i0), xp.arange(i1 - i0)] = 0
            cand[bi, bj] = padded_topk(S, k, j0, xp)
            if bj != bi:
                cand[bj, bi] = padded_topk(xp.ascontiguousarray(S.T), k, i0, xp)
            del S
    parts = [merge_candidates([cand.pop((bi, bj)) for bj in range(len(starts))], k, i0, xp)
             for bi, i0 in enumerate(starts)]
    return tuple(xp.concatenate(p) for p in zip(*parts, strict=True))


def merge_candidates(pieces, k: int, row0: int, xp):
    """Rows, columns, values of each row's top-k among its column blocks' candidates
    (``padded_topk`` pieces, in column order, so ties still go to the lower column)."""
    V = xp.concatenate([v for v, _ in pieces], axis=1)
    C = xp.concatenate([c for _, c in pieces], axis=1)
    rows, pos = xp.nonzero(keep_mask(V, k, xp))
    return rows + row0, C[rows, pos], V[rows, pos]


def tf32_exact(X) -> bool:
    """True when every stored value of X survives rounding to TF32 (a 10-bit mantissa).

    Ratings on a half-star scale and counts up to 2048 do; a TF32 tensor-core GEMM of such raw
    values then multiplies exactly and accumulates in float32, as accurate as a float32 GEMM.
    """
    d32 = X.data.astype(np.float32)
    return bool((d32 == X.data).all()) and not bool((d32.view(np.uint32) & 0x1FFF).any())


def dense_topk(Xn, k: int, include_self: bool, block_rows: int | None, be: Backend,
                plan: str = "dense", X_raw=None):
    """Top-k by blocks of ``X @ X.T``: dense GEMM (``dense``, ``dense-tf32``) or products with
    X kept sparse (``spmm``, ``spgemm``).

    ``dense-tf32`` multiplies the raw values of ``X_raw`` (exact in TF32, see :func:`tf32_exact`)
    and scales each block by the inverse row norms afterwards; ``dense-bf16`` does the same
    with bfloat16 products and float32 accumulation (:func:`recsys_fast.backend.bf16_gemm`;
    values exact in bfloat16 only); elsewhere the rows are normalised first. Returns the CSR
    result and whether TF32 was actually on.
    """
    xp = be.xp
    n = Xn.shape[0]
    itemsize = Xn.dtype.itemsize
    inv = None
    matmul = None
    if plan == "dense-bf16":
        matmul, how = bf16_gemm(be)
        if matmul is None:
            raise BackendUnavailableError(f"no bfloat16 GEMM here: {how}")
    if plan in ("dense-tf32", "dense-bf16"):
        inv = inverse_norms(X_raw, be).astype(Xn.dtype)
        D = be.dense(X_raw, Xn.dtype)
    elif plan == "dense":
        D = be.dense(Xn)
    else:
        D = None
    with tf32_matmul(be, plan == "dense-tf32") as tf32_on:
        if D is not None:
            block = block_rows or pair_block(n, itemsize, be)
            rows, cols, vals = gemm_pairs_topk(D, inv, k, include_self, block, xp, matmul)
        else:
            rows, cols, vals = spmm_topk(Xn, k, include_self, block_rows, be, plan)
    del D
    cols = cols.astype(xp.int32)
    vals = vals.astype(Xn.dtype)
    indptr = xp.zeros(n + 1, dtype=xp.int32 if rows.size < 2**31 else xp.int64)
    indptr[1:] = xp.cumsum(xp.bincount(rows, minlength=n))
    out = be.sparse.csr_matrix((vals, cols, indptr), shape=(n, n))
    if be.host:
        out.has_sorted_indices = True
    return out, bool(tf32_on)


def pair_block(n: int, itemsize: int, be: Backend) -> int:
    """Side of the square GEMM blocks: small enough for memory (CPU: a cache-sized block;
    GPU: S, -S, its partition, masks and a transpose in half the free memory) and at most
    n / 8, so that skipping the blocks below the diagonal saves close to half the work."""
    if be.host:
        fit = int((BLOCK_BYTES // itemsize) ** 0.5)
        floor = 512
    else:
        fit = int((0.5 * be.free_bytes() / (7 * itemsize)) ** 0.5)
        floor = 4096
    return max(1, min(n, fit, max(floor, -(-n // 8))))


def spmm_topk(Xn, k: int, include_self: bool, block_rows: int | None, be: Backend,
               how: str = "spmm", rows: tuple[int, int] | None = None):
    """Rows, columns, values of the top-k by row blocks of ``X @ X.T`` with X kept sparse:
    sparse x dense products of X and a dense slice of X.T (``spmm``: cuSPARSE SpMM on the GPU)
    or sparse x sparse ones densified (``spgemm``, for very many features, such as TF-IDF
    n-grams, where a dense slice of X would dwarf the block of S). ``rows=(a, b)`` computes
    rows a..b-1 only (each row's values do not depend on the blocking)."""
    xp = be.xp
    n, m = Xn.shape
    itemsize = Xn.dtype.itemsize
    if block_rows is None:
        # the block, its transpose or sparse form, -S, masks; spmm: a dense slice of X as well
        per_row = 6 * n * itemsize + (m * itemsize if how == "spmm" else 2 * n * itemsize)
        if be.host:
            block_rows = cpu_row_block(n, itemsize)
        else:
            block_rows = block_rows_for(per_row, be, 0.5, n_rows=n)
    XnT = Xn.T.tocsr() if how == "spgemm" else None
    parts_r, parts_c, parts_v = [], [], []
    first, last = (0, n) if rows is None else rows
    for r0 in range(first, last, block_rows):
        r1 = min(last, r0 + block_rows)
        if XnT is None:
            S = xp.ascontiguousarray((Xn @ be.dense(Xn[r0:r1]).T).T)
        else:
            S = be.dense(Xn[r0:r1] @ XnT)
        r, c, v = select_block(S, r0, k, include_self, xp)
        del S
        parts_r.append(r)
        parts_c.append(c)
        parts_v.append(v)
    return xp.concatenate(parts_r), xp.concatenate(parts_c), xp.concatenate(parts_v)


def cpu_row_block(n: int, itemsize: int) -> int:
    """Rows per block of ``spmm``/``spgemm`` on the CPU: an n-wide block of S in BLOCK_BYTES."""
    return max(1, min(n, BLOCK_BYTES // max(1, n * itemsize)))
