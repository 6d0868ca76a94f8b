"""Top-k of the rows [a, b) of X against all of X: the unit of work of the dask backend.

:class:`RowTopk` holds the normalised X and the strategy chosen for the whole matrix. Its
:meth:`RowTopk.rows` returns rows a..b-1 of what ``cosine_topk`` returns for that strategy,
index for index and value for value, whatever the row ranges:

- ``sparse``: the rows form (:mod:`._topk_fullrows`) over the same popularity relabelling,
  every row in full. A pair's similarity is the same sum over the shared columns in ascending
  order whichever row scans it, and the heap's tie rule does not depend on the arrival order,
  so the rows equal the single-process result (which computes each pair once). The cost is
  every pair twice. :func:`pair_topk_task` / :func:`merge_pair_heaps` are the other form:
  each part runs the single-process blocked kernel on its share of the row blocks, computing
  each pair (i, j > i) once, and returns heaps for all rows, merged afterwards (half the
  multiply-adds, but every part sends n_rows x k candidates back).
- ``dense``: the same square GEMM blocks as the single-process kernel (side from the matrix
  size), each row range a whole number of blocks. A block above the diagonal is computed as
  ``D_I @ D_J.T`` and one below as ``(D_J @ D_I.T).T``, exactly the products the single-process
  kernel forms; each product is formed by both of its row blocks here. OpenBLAS rounds a
  product differently with a different thread count (in the last bit, edge micro-kernels), so
  the tasks run BLAS with the caller's thread count (``blas_threads``) for equal values.
- ``spmm`` / ``spgemm``: row blocks of ``X @ X.T``, whose rows do not depend on the blocking.

What a worker derives from X (the relabelled CSC, the dense copy) is built once per worker on
first use and kept with the scattered object. For ``sparse``, :meth:`RowTopk.share` instead
prepares those arrays once on the client and hands them over in shared memory
(:mod:`recsys_fast.dask_shared`); the plan then pickles without X.
"""

from __future__ import annotations

import contextlib
import heapq

import numba
import numpy as np
import scipy.sparse

from recsys_fast.backend import CPU
from recsys_fast.kernels import _topk_blocked as bl
from recsys_fast.kernels import _topk_numba as nb
from recsys_fast.kernels._topk_dense import merge_candidates, padded_topk, spmm_topk
from recsys_fast.kernels._topk_fullrows import RowsTopk
from recsys_fast.kernels.core import blas_limits

_SPARSE_ARRAYS = ("indptr", "indices", "data", "colptr", "rowidx", "coldata", "pos")


class RowTopk:
    """Normalised X plus the top-k settings; :meth:`rows` computes one row range.

    Parameters
    ----------
    Xn : csr_matrix
        Canonical, row-normalised X (:func:`.core.normalized`).
    k : int
    include_self : bool
    strategy : {"sparse", "dense", "spmm", "spgemm"}
    block : int
        Pair-block side (``dense``) or rows per product (``spmm``, ``spgemm``).
    blas_threads : int, optional
        BLAS threads for the ``dense`` products (default: the worker's setting).
    """

    def __init__(self, Xn, k: int, include_self: bool, strategy: str, block: int,
                 blas_threads: int | None = None):
        if strategy not in ("sparse", "dense", "spmm", "spgemm"):
            raise ValueError(f"no row-range form of strategy {strategy!r}")
        self.Xn = Xn
        self.k = int(k)
        self.include_self = bool(include_self)
        self.strategy = strategy
        self.block = max(1, int(block))
        self.blas_threads = blas_threads
        self.n = int(Xn.shape[0])
        self.dtype = Xn.dtype
        self.shared = None
        self._derived = None
        self._costs = {}

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_derived"] = None  # rebuilt by each worker (or mapped from ``shared``)
        state["_costs"] = {}
        if self.shared is not None:
            state["Xn"] = None
        return state

    def share(self, shared, blocks: bool) -> np.ndarray:
        """Prepare the ``sparse`` arrays here, once, and write them (with the scheduling costs
        of the task form: per block for pair tasks, else per row) into ``shared``
        (:class:`~recsys_fast.dask_shared.SharedArrays`); workers map them instead of building
        their own. Returns the popularity order (what :func:`merge_pair_heaps` needs)."""
        if self.strategy != "sparse":
            raise ValueError("only the sparse strategy's arrays are shared")
        self._prepare()
        costs = self._sparse_costs(blocks)
        perm, inverse, arrays = self._derived
        try:
            shared.put({"perm": perm, "inverse": inverse,
                        **dict(zip(_SPARSE_ARRAYS, arrays, strict=True)),
                        "block_cost" if blocks else "row_cost": costs})
            self.shared = shared
        finally:  # shared or not (no room: the caller scatters), the client keeps no copy
            self._derived, self._costs = None, {}
        return perm

    def _prepare(self):
        if self._derived is None:
            if self.shared is not None:
                a = self.shared.arrays()
                self._derived = (a["perm"], a["inverse"], tuple(a[n] for n in _SPARSE_ARRAYS))
                for blocks, name in ((True, "block_cost"), (False, "row_cost")):
                    if name in a:
                        self._costs[blocks] = a[name]
            elif self.strategy == "sparse":
                self._derived = _sparse_prep(self.Xn)
            elif self.strategy == "dense":
                self._derived = CPU.dense(self.Xn)
            else:
                self._derived = self.Xn.T.tocsr() if self.strategy == "spgemm" else ()
        return self._derived

    def _sparse_costs(self, blocks: bool) -> np.ndarray:
        """Scheduling weights of a ``sparse`` task form, computed once per worker and only for
        the form that runs: per block of rows for pair tasks (``blocks``), else per full row."""
        if blocks not in self._costs:
            _, _, (indptr, indices, _, colptr, _, _, pos) = self._prepare()
            if blocks:
                self._costs[blocks] = bl.block_costs(indptr, indices, colptr, pos)
            else:
                self._costs[blocks] = nb.row_costs(indptr, indices, colptr)
        return self._costs[blocks]

    def rows(self, a: int, b: int) -> scipy.sparse.csr_matrix:
        """Rows a..b-1 of the top-k matrix, shape (b - a, n_rows)."""
        a, b = int(a), int(b)
        if not 0 <= a < b <= self.n:
            raise ValueError(f"row range [{a}, {b}) outside [0, {self.n})")
        prep = self._prepare()
        if self.strategy == "sparse":
            return _sparse_rows(prep, self._sparse_costs(False), a, b, self.k,
                                self.include_self)
        if self.strategy == "dense":
            limits = contextlib.nullcontext()
            if self.blas_threads:
                limits = blas_limits(self.blas_threads)
            with limits:
                r, c, v = _dense_rows(prep, a, b, self.k, self.include_self, self.block)
        else:
            r, c, v = spmm_topk(self.Xn, self.k, self.include_self, self.block, CPU,
                                 self.strategy, rows=(a, b))
        return _piece(r - a, c, v.astype(self.dtype, copy=False), b - a, self.n)


def row_topk_task(plan: RowTopk, a: int, b: int) -> scipy.sparse.csr_matrix:
    """``plan.rows(a, b)`` with one numba thread (the worker's threads are the parallelism)."""
    prev = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        return plan.rows(a, b)
    finally:
        numba.set_num_threads(prev)


def _piece(r, c, v, n_rows: int, n_cols: int) -> scipy.sparse.csr_matrix:
    """CSR (n_rows, n_cols) from row-major (row, column, value) triples, columns ascending."""
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(r, minlength=n_rows), out=indptr[1:])
    out = scipy.sparse.csr_matrix((v, c.astype(np.int32), indptr), shape=(n_rows, n_cols))
    out.has_sorted_indices = True
    return out


def stack(pieces: list, n_cols: int, dtype) -> scipy.sparse.csr_matrix:
    """Consecutive row pieces stacked into one canonical CSR (int32 indices when they fit)."""
    counts = np.concatenate([np.diff(p.indptr) for p in pieces]) if pieces else np.zeros(0)
    nnz = int(counts.sum())
    idx = np.int32 if nnz < 2**31 else np.int64
    indptr = np.zeros(len(counts) + 1, dtype=idx)
    np.cumsum(counts, out=indptr[1:])
    indices = np.concatenate([p.indices for p in pieces]).astype(np.int32) if pieces else []
    data = np.concatenate([p.data for p in pieces]).astype(dtype) if pieces else []
    out = scipy.sparse.csr_matrix((data, indices, indptr), shape=(len(counts), n_cols))
    out.has_sorted_indices = True
    return out


def pair_topk_task(plan: RowTopk, part: int, n_parts: int):
    """Heaps of every row from the pairs (i, j > i) of the row blocks dealt to ``part``
    (``sparse``).

    The rows, relabelled by popularity as in the single-process kernel, form blocks of
    ``_topk_blocked.LANES``; the blocks are dealt to ``n_parts`` parts by cost
    (:func:`deal_blocks`), and this part runs the single-process blocked kernel on its blocks
    (one thread): each pair once, offered to both rows' heaps. Returns ``(hv, hi, hn)`` (values, original
    column labels, sizes) for all rows; :func:`merge_pair_heaps` combines the parts.
    """
    if plan.strategy != "sparse":
        raise ValueError("pair tasks need strategy='sparse'")
    perm, _, arrays = plan._prepare()
    block_cost = plan._sparse_costs(True)
    order = deal_blocks(block_cost, int(n_parts))[int(part)]
    prev = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        return bl.topk_heaps_blocked(*arrays, order, block_cost, 1, plan.k, plan.include_self,
                                     perm)
    finally:
        numba.set_num_threads(prev)


def deal_blocks(block_cost: np.ndarray, n_parts: int) -> list[np.ndarray]:
    """The blocks of each part, costliest first: longest-processing-time order, each block to
    the part with the least cost so far (ties to the lower part). Evener than a round-robin
    deal of the sorted blocks, which gives part 0 the costlier block of every round; with
    one part per worker there is no later task to even the load out."""
    order = np.argsort(-block_cost, kind="stable")
    loads = [(0, p) for p in range(n_parts)]
    parts: list[list[int]] = [[] for _ in range(n_parts)]
    for b, c in zip(order.tolist(), block_cost[order].tolist(), strict=True):
        load, p = heapq.heappop(loads)
        parts[p].append(b)
        heapq.heappush(loads, (load + c, p))
    return [np.asarray(q, dtype=np.int64) for q in parts]


def merge_pair_heaps(perm: np.ndarray, sets: list, k: int) -> scipy.sparse.csr_matrix:
    """The top-k CSR from the parts' heaps, merged as the single-process kernel merges its
    threads' heap sets (:func:`~recsys_fast.kernels._topk_numba.merge_heap_sets`): the same
    tie rule, whose kept set does not depend on the order the candidates arrive in, so the
    same result; a pair reaches a row from one part only. ``perm``: the popularity order
    (:func:`~recsys_fast.kernels._topk_numba.popularity_order` of the normalised X)."""
    n = perm.size
    hv = np.concatenate([v for v, _, _ in sets])
    hi = np.concatenate([j for _, j, _ in sets])
    hn = np.concatenate([size for _, _, size in sets])
    nb.merge_heap_sets(hv, hi, hn, n, k, len(sets))
    counts, out_idx, out_val = nb.heaps_to_csr(hv, hi, hn, perm, k)
    out = scipy.sparse.csr_matrix((out_val, out_idx, counts), shape=(n, n))
    out.has_sorted_indices = True
    return out


def _sparse_prep(Xn):
    """``perm``, its inverse and the relabelled CSR and CSC arrays (as ``sparse_topk``)."""
    perm, arrays = nb.relabelled(Xn)
    return perm, nb.inverse_permutation(perm), arrays


def _sparse_rows(prep, cost, a: int, b: int, k: int, include_self: bool):
    perm, inverse, arrays = prep
    run = RowsTopk(None, k, include_self, numba.get_num_threads(), prepared=(perm, arrays),
                   cost=cost)
    return run.csr(inverse[a:b], perm.size)


def _dense_rows(D, a: int, b: int, k: int, include_self: bool, block: int):
    """Rows, columns, values of rows a..b-1 from the single-process kernel's GEMM blocks."""
    n = D.shape[0]
    if a % block:
        raise ValueError(f"row range start {a} is not a multiple of the pair block {block}")
    parts = []
    for i0 in range(a, b, block):
        i1 = min(n, i0 + block)
        pieces = []
        for j0 in range(0, n, block):
            j1 = min(n, j0 + block)
            if j0 >= i0:
                S = D[i0:i1] @ D[j0:j1].T
                if j0 == i0 and not include_self:
                    S[np.arange(i1 - i0), np.arange(i1 - i0)] = 0
                pieces.append(padded_topk(S, k, j0, np))
            else:  # the product the single-process kernel forms for block (J, I), transposed
                S = D[j0:j1] @ D[i0:i1].T
                pieces.append(padded_topk(np.ascontiguousarray(S.T), k, j0, np))
            del S
        parts.append(merge_candidates(pieces, k, i0, np))
    return tuple(np.concatenate(p) for p in zip(*parts, strict=True))
