"""Cosine similarity kernels: the full course distance matrix and a blocked top-k.

``cosine_distances`` is the course quantity (sklearn ``pairwise_distances(metric='cosine')``).
``cosine_topk`` keeps, for each row, its k most similar rows without ever holding the n x n
matrix. Four strategies compute the same function:

- ``"sparse"``: numba Gustavson SpGEMM with a dense per-thread accumulator and fused size-k
  heaps, each pair computed once and offered to both rows, rows in blocks of 16 that stream
  each column of X once per block into a 16-wide accumulator (CPU only; ``_topk_blocked``,
  bit-identical to the row-by-row ``_topk_numba``).
- ``"dense"``: X densified once, square blocks ``X_I @ X_J.T`` by GEMM for I <= J only (S is
  symmetric: a block above the diagonal serves the rows of J through its transpose, about half
  the GEMM work), a top-k per block and one more over each row block's candidates. On the GPU
  with float32 values exact in TF32 it runs as ``"dense-tf32"``: raw values on TF32 tensor
  cores, the norms divided out per block.
- ``"spmm"``: X stays sparse; row blocks of ``X @ X.T`` as sparse x dense products (cuSPARSE
  SpMM on the GPU), for when a dense copy of X does not fit.
- ``"spgemm"``: the same row blocks as sparse x sparse products, densified (cuSPARSE SpGEMM on
  the GPU), for very many features (TF-IDF n-grams), where a dense slice of X would not pay.

The dense and spmm code is written against the backend's ``xp``/``sparse`` namespaces, so it is
also the GPU path (and runs on the simulated GPU in CI).

Top-k policy, identical for every strategy: only strictly positive similarities are kept (a
zero-norm row gets no neighbours and is nobody's neighbour; a row may hold fewer than k
entries), ties at the k-th value go to the lower column index, and the output is a canonical
CSR (columns ascending). :func:`cosine_topk` returns that CSR; :func:`cosine_topk_result` returns
a :class:`TopKResult` naming also the strategy that ran and its arithmetic precision.

``"auto"`` on the CPU: ``sparse`` unless a dense copy of X fits; then a trial of the sparse
kernel on a stratified sample of its own row blocks (the work kept) against the dense call's
time, modelled from rates measured once per machine and cached (:func:`_auto_cpu`,
:mod:`._topk_sparse`, :mod:`._topk_cost`); the choice is kept for the process by input
structure. On the GPU it is ``dense`` while a dense copy of X fits in half the free device
memory, else ``spmm`` with at most 4 features per row of X, else ``spgemm``
(``bench/gpu/topk_strategies.py`` measures the three).

Memory: ``sparse`` holds X, its transpose and, per thread, n_rows size-k heaps
(n_threads * n_rows * k * (itemsize + 4) bytes), an (n_rows, 16) accumulator and 16 values per
column; it falls back to one heap set and row-by-row accumulation, computing each pair twice,
when the heaps would crowd memory. ``dense`` holds a dense copy of X plus one
``block_rows`` x ``block_rows`` block of similarities and n_rows x k candidates per column block;
``spmm`` holds one ``block_rows`` x n_rows block.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse

from recsys_fast.backend import CPU, Backend, block_rows_for, get_backend
from recsys_fast.errors import BackendUnavailableError, MemoryBudgetError
from recsys_fast.kernels import drivers
from recsys_fast.memory import available_bytes, check_memory, dense_bytes

STRATEGIES = ("auto", "sparse", "dense", "spmm", "spgemm")
_BLOCK_BYTES = 32 << 20  # working block of S in the dense strategy



@dataclass(frozen=True)
class TopKResult:
    """What :func:`cosine_topk_result` returns.

    Attributes
    ----------
    matrix : csr_matrix (scipy; cupyx on the GPU backend), shape (n_rows, n_rows)
        The top-k similarities, as :func:`cosine_topk` returns them.
    strategy : str
        The strategy that ran: ``sparse``, ``dense``, ``dense-tf32``, ``spmm`` or ``spgemm``.
    precision : str
        Arithmetic of the products: ``float32``, ``float64``, or ``tf32`` (TF32 tensor-core
        multiplies, float32 accumulation).
    tasks : tuple, optional
        Task drivers only: the task form and count, e.g. ``("pairs", 2)`` or
        ``("row ranges", 16)``.
    timing : dict, optional
        Task drivers only: the transport that ran and the phase times in seconds
        (``prepare_s``, ``tasks_s``, ``merge_s``).
    """

    matrix: Any
    strategy: str
    precision: str
    tasks: tuple | None = None
    timing: dict | None = None


def _check_real(dtype, name: str) -> None:
    if dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {dtype}")


def _as_csr(X: Any, be: Backend, name: str = "X"):
    """X as a canonical CSR on ``be`` (any scipy/cupyx sparse format or a 2-D array)."""
    if scipy.sparse.issparse(X) or be.sparse.issparse(X):
        if scipy.sparse.issparse(X):
            _check_real(X.dtype, name)
            if X.dtype.kind != "f":  # cupyx sparse holds floats only
                X = X.astype(np.float64)
            X = be.to_device(X)
        X = X.tocsr()
    elif isinstance(X, np.ndarray) or isinstance(X, be.xp.ndarray):
        if X.ndim != 2:
            raise ValueError(f"{name} must be 2-D, got shape {tuple(X.shape)}")
        _check_real(X.dtype, name)
        X = be.xp.asarray(X, dtype=X.dtype if X.dtype.kind == "f" else np.float64)
        X = be.sparse.csr_matrix(X)
    else:
        raise TypeError(f"{name} must be a sparse matrix or a 2-D array, got {type(X).__name__}")
    _check_real(X.dtype, name)
    if X.nnz and not bool(be.xp.isfinite(X.data).all()):
        at = int(be.xp.flatnonzero(~be.xp.isfinite(X.data))[0])
        row = int(be.xp.searchsorted(X.indptr, at, side="right")) - 1
        raise ValueError(
            f"{name} holds a non-finite value {float(X.data[at])} at row {row}, "
            f"column {int(X.indices[at])}"
        )
    return X


def _canonical(X):
    """X with duplicates summed and explicit zeros dropped (a copy only when needed)."""
    if not X.has_canonical_format:
        X = X.copy()
        X.sum_duplicates()
    if X.nnz and not bool(X.data.all()):
        X = X.copy()
        X.eliminate_zeros()
    return X


def _normalized(X, be: Backend, dtype):
    """Rows of the canonical X scaled to unit L2 norm (zero rows stay zero)."""
    xp = be.xp
    if X.dtype.kind != "f" or X.dtype.itemsize < 4:  # ints, bools, float16
        X = X.astype(xp.float64)
    if be.host:
        from recsys_fast.kernels import _topk_numba as nb

        data = np.empty(X.nnz, dtype=dtype)
        nb.normalize_rows(X.indptr, X.data, data)
    else:
        rows = be.entry_rows(X.indptr)
        inv = _inverse_norms(X, be, rows)
        d64 = X.data.astype(xp.float64)
        nonzero_rows = xp.diff(X.indptr) > 0
        bad = (inv == 0) & nonzero_rows | (inv > 1e140) | ((inv > 0) & (inv < 1e-150))
        if bool(bad.any()):  # squares under- or overflowed: divide those rows by their max
            big = xp.asarray(abs(X).max(axis=1).toarray(), dtype=xp.float64).ravel()
            scale = xp.where(bad, big, 1.0)
            d64 = d64 / scale[rows]
            inv = _inverse_norms(be.sparse.csr_matrix((d64, X.indices, X.indptr), shape=X.shape),
                                 be, rows)
        data = (d64 * inv[rows]).astype(dtype)
    out = be.sparse.csr_matrix((data, X.indices, X.indptr), shape=X.shape)
    if be.host:
        out.has_sorted_indices = True
    return out


def _result_dtype(X, dtype):
    if dtype is not None:
        dt = np.dtype(dtype)
        if dt.kind != "f":
            raise TypeError(f"dtype must be a floating type, got {dt}")
        return dt
    # sklearn keeps float32 inputs in float32 and computes everything else in float64
    return np.dtype(np.float32) if X.dtype == np.float32 else np.dtype(np.float64)


def cosine_distances(X: Any, *, dtype: Any = None, backend: str | Backend = "cpu"):
    """Dense cosine distance matrix of the rows of X, equal to sklearn's ``pairwise_distances``.

    Same conventions as sklearn: a zero row has similarity 0 with every row (distance 1), the
    diagonal is exactly 0, distances are clipped to [0, 2]. The product runs as dense GEMM when
    X is dense enough, else as a sparse product.

    Parameters
    ----------
    X : sparse matrix or 2-D array, shape (n_rows, n_features)
    dtype : float dtype, optional
        Default float32 for float32 input, else float64 (as sklearn).
    backend : "cpu", "gpu" or Backend

    Returns
    -------
    ndarray, shape (n_rows, n_rows)

    Raises
    ------
    TypeError, ValueError
        Non-numeric / non-2-D input, non-finite values.
    MemoryBudgetError
        The n x n result would not fit in memory.
    """
    be = get_backend(backend)
    xp = be.xp
    X = _as_csr(X, be)
    dt = _result_dtype(X, dtype)
    n, m = X.shape
    check_memory(f"cosine distance matrix {n}x{n}", dense_bytes((n, n), dt))
    Xn = _normalized(_canonical(X), be, dt)
    density = Xn.nnz / max(1, n * m)
    # dense GEMM wins once X is a few percent full (and the dense copy is affordable)
    if density > 0.02 and _dense_fits(Xn, be):
        D = be.dense(Xn)
        S = D @ D.T
    else:
        S = (Xn @ Xn.T).toarray()
    S = xp.asarray(S, dtype=dt)
    S *= -1
    S += 1
    xp.clip(S, 0.0, 2.0, out=S)
    S[xp.arange(n), xp.arange(n)] = 0.0
    return S


def check_block_rows(block_rows: Any, name: str = "block_rows") -> int | None:
    """``block_rows`` as an int, None kept; TypeError/ValueError unless a positive integer."""
    if block_rows is None:
        return None
    if isinstance(block_rows, bool) or not isinstance(block_rows, (int, np.integer)):
        raise TypeError(f"{name} must be a positive integer or None, got {block_rows!r}")
    if block_rows < 1:
        raise ValueError(f"{name} must be a positive integer or None, got {block_rows!r}")
    return int(block_rows)


def _check_topk_args(n: int, k: Any, include_self: bool, strategy: str) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"k must be an integer, got {k!r}")
    k = int(k)
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")
    limit = n if include_self else n - 1
    if k > limit:
        what = "n_rows" if include_self else "n_rows - 1 (include_self=False)"
        raise ValueError(f"k={k} exceeds {what} = {limit}")
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    return k


# The knobs each strategy takes beyond k, include_self, n_threads and dtype ("auto": any, each
# applying if a strategy that takes it runs).
KNOBS = {"sparse": (), "dense": ("block_rows", "tf32", "bf16"), "spmm": ("block_rows",),
         "spgemm": ("block_rows",)}


def _check_knobs(strategy: str, block_rows, tf32, bf16) -> None:
    """ValueError naming a knob set for a strategy that does not take it (never ignored)."""
    if strategy == "auto":
        return
    given = [name for name, v in (("block_rows", block_rows), ("tf32", tf32), ("bf16", bf16))
             if v not in (None, False)]
    bad = [name for name in given if name not in KNOBS[strategy]]
    if bad:
        raise ValueError(f"{', '.join(bad)} does not apply to strategy={strategy!r} "
                         f"(it takes: {', '.join(KNOBS[strategy]) or 'none of these'})")


def _dense_fits(Xn, be: Backend) -> bool:
    """Whether a dense copy of X may be held: a quarter of free RAM, half of free GPU memory."""
    n, m = Xn.shape
    return dense_bytes((n, m), Xn.dtype) < be.free_bytes() // be.dense_share


def _choose_strategy(Xn, k: int, include_self: bool, n_threads: int, be: Backend) -> str:
    """``auto``'s strategy, without running it (the dask driver's choice; the single-process
    CPU call keeps its trial's work instead, see :func:`_auto_cpu`). On the CPU the choice is
    the one kept for this input structure, so dask and in-process calls agree."""
    if not be.host:  # numba is CPU-only; GEMM on tensor cores while dense X fits
        if _dense_fits(Xn, be):
            return "dense"
        n, m = Xn.shape  # a dense slice of X per block costs m / n times the block of S
        return "spmm" if m <= 4 * n else "spgemm"
    key, used = _kept_choice(Xn, k, include_self, n_threads)
    if used is None:
        from recsys_fast.kernels._topk_sparse import SparseTopk, trial

        wins, _, _ = trial(SparseTopk(Xn, k, include_self, n_threads),
                           _dense_seconds(Xn.shape, k, n_threads), prefix=1 / 32)
        used = "sparse" if wins else "dense"
        _remember(key, used)
    return used


def _trial_pays(Xn, k: int, n_threads: int) -> bool:
    """Whether ``dense`` is a candidate on the CPU at all: its dense copy of X fits, and the
    sparse heaps fit one set per thread (the blocked kernel the trial runs)."""
    return _dense_fits(Xn, CPU) and _sparse_half(Xn.shape[0], k, Xn.dtype.itemsize, n_threads)


def _dense_seconds(shape: tuple[int, int], k: int, n_threads: int) -> float:
    """Modelled seconds of a CPU ``dense`` call (:mod:`._topk_cost`, rates cached per machine)."""
    from recsys_fast.kernels import _topk_cost

    n, m = shape
    return _topk_cost.dense_seconds(n, m, k, n_threads, _time_dense, _cpu_pair_block)


def _cpu_pair_block(n: int) -> int:
    return _pair_block(n, np.dtype(np.float32).itemsize, CPU)


def _time_dense(n: int, m: int, k: int, n_threads: int, rounds: int = 3) -> float:
    """Best-of-``rounds`` seconds of a CPU ``dense`` call on a seeded random n x m float32
    input (5 % full), after one untimed call: a calibration run of :mod:`._topk_cost`."""
    import time

    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(n * 7919 + m)
    X = scipy.sparse.random(n, m, density=0.05, random_state=rng, dtype=np.float32,
                            format="csr")
    X.data += 0.5
    Xn = _normalized(_canonical(X), CPU, np.float32)
    best = float("inf")
    with threadpool_limits(limits=n_threads, user_api="blas"):
        for r in range(rounds + 1):
            t0 = time.perf_counter()
            _dense_topk(Xn, min(k, n - 1), False, None, CPU)
            if r:
                best = min(best, time.perf_counter() - t0)
    return best


_DECIDED: OrderedDict = OrderedDict()  # auto's choices in this process, by input structure
_DECIDED_MAX = 256


def _structure_key(Xn, k: int, include_self: bool, n_threads: int) -> tuple:
    """What auto's choice depends on: shape, entries, the row pointer, a sample of the column
    indices, k, self, threads and dtype (hashed: O(n_rows) plus 4096 sampled entries)."""
    step = max(1, Xn.nnz // 4096)
    return (Xn.shape, Xn.nnz, k, include_self, n_threads, Xn.dtype.str,
            hash(Xn.indptr.tobytes()), hash(Xn.indices[::step].tobytes()))


def _auto_cpu(Xn, k: int, include_self: bool, n_threads: int):
    """``(strategy, result)`` of ``auto`` on the CPU; result None when ``dense`` is to run.

    Rule: ``sparse`` unless a dense copy of X fits (a quarter of free RAM); else the sparse
    kernel runs on a stratified sample of its row blocks while that costs at most 4 % of the
    dense call's modelled time (:func:`._topk_sparse.trial`; rates measured once per
    machine, :mod:`._topk_cost`), and finishes when the rest of its blocks, extrapolated from
    the sample, take no longer than a whole dense call; else ``dense`` runs. The choice is
    kept for the process, by input structure (:func:`_structure_key`): a later call on the
    same matrix runs the same strategy without a trial and returns the same values."""
    from recsys_fast.kernels._topk_sparse import SparseTopk, run_or_yield

    key, used = _kept_choice(Xn, k, include_self, n_threads)
    if used is not None:
        return used, _sparse_topk(Xn, k, include_self, n_threads) if used == "sparse" else None
    out, _ = run_or_yield(SparseTopk(Xn, k, include_self, n_threads),
                          _dense_seconds(Xn.shape, k, n_threads))
    used = "dense" if out is None else "sparse"
    _remember(key, used)
    return used, out


def _kept_choice(Xn, k: int, include_self: bool,
                 n_threads: int) -> tuple[tuple | None, str | None]:
    """``(key, strategy)``: the CPU strategy already settled for this input (``sparse`` when
    dense is no candidate, key None), or ``(key, None)`` when a trial must decide."""
    if not _trial_pays(Xn, k, n_threads):
        return None, "sparse"
    key = _structure_key(Xn, k, include_self, n_threads)
    if key in _DECIDED:
        _DECIDED.move_to_end(key)
        return key, _DECIDED[key]
    return key, None


def _remember(key: tuple, used: str) -> None:
    """Keep auto's choice for ``key`` (the newest :data:`_DECIDED_MAX` choices)."""
    _DECIDED[key] = used
    _DECIDED.move_to_end(key)
    while len(_DECIDED) > _DECIDED_MAX:
        _DECIDED.popitem(last=False)


def _resolve_threads(n_threads: int | None) -> int:
    import numba

    limit = numba.config.NUMBA_NUM_THREADS
    if n_threads is None:
        return numba.get_num_threads()
    n_threads = int(n_threads)
    if not 1 <= n_threads <= limit:
        raise ValueError(f"n_threads must be in [1, {limit}] (NUMBA_NUM_THREADS), got {n_threads}")
    return n_threads


def _sparse_half(n: int, k: int, itemsize: int, n_threads: int) -> bool:
    """Whether each thread may own n_rows heaps (pairs computed once, the blocked kernel);
    else one heap set and full rows, so that the heaps do not crowd memory."""
    heap_bytes = n_threads * n * k * (itemsize + 4)
    return n_threads == 1 or heap_bytes < min(available_bytes() // 4, 2 << 30)


def _sparse_topk(Xn, k: int, include_self: bool, n_threads: int, half: bool | None = None):
    import numba

    from recsys_fast.kernels import _topk_numba as nb
    from recsys_fast.kernels._topk_sparse import SparseTopk

    n = Xn.shape[0]
    if half is None:
        half = _sparse_half(n, k, Xn.dtype.itemsize, n_threads)
    if half:  # blocks of rows, each pair once (see _topk_blocked)
        return SparseTopk(Xn, k, include_self, n_threads).run_all()
    check_memory("cosine_topk heaps", n * k * (Xn.dtype.itemsize + 4))
    perm, arrays = nb.relabelled(Xn)
    indptr, indices, data, colptr, _, _, pos = arrays
    prev = numba.get_num_threads()
    numba.set_num_threads(n_threads)
    try:
        cost = nb.row_costs(indptr, indices, colptr, pos, False)
        order = np.argsort(-cost, kind="stable").astype(np.int64)
        hv, hi, hn = nb.topk_heaps(*arrays, order, cost, n_threads, k, False, include_self,
                                   perm)
        counts, out_idx, out_val = nb.heaps_to_csr(hv, hi, hn, perm, k)
    finally:
        numba.set_num_threads(prev)
    out = scipy.sparse.csr_matrix((out_val, out_idx, counts), shape=(n, n))
    out.has_sorted_indices = True
    return out


def _keep_mask(S, k: int, xp):
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


def _select_block(S, r0: int, k: int, include_self: bool, xp):
    """Rows, columns, values of the top-k positive entries of each row of the block S."""
    b, n = S.shape
    if not include_self:
        S[xp.arange(b), r0 + xp.arange(b)] = 0
    rows, cols = xp.nonzero(_keep_mask(S, k, xp))  # row-major: columns ascending per row
    return rows + r0, cols, S[rows, cols]


def _padded_topk(S, k: int, col0: int, xp):
    """(values, columns), each (b, k): each row's top-k positive entries of S, padded with
    (-inf, -1); columns offset by ``col0``."""
    b = S.shape[0]
    rows, cols = xp.nonzero(_keep_mask(S, k, xp))
    counts = xp.bincount(rows, minlength=b)
    slot = xp.arange(rows.size) - (xp.cumsum(counts) - counts)[rows]
    vals = xp.full((b, k), -xp.inf, dtype=S.dtype)
    idx = xp.full((b, k), -1, dtype=xp.int64)
    vals[rows, slot] = S[rows, cols]
    idx[rows, slot] = cols + col0
    return vals, idx


def _gemm_pairs_topk(D, inv, k: int, include_self: bool, block: int, xp, matmul=None):
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
            cand[bi, bj] = _padded_topk(S, k, j0, xp)
            if bj != bi:
                cand[bj, bi] = _padded_topk(xp.ascontiguousarray(S.T), k, i0, xp)
            del S
    parts = [_merge_candidates([cand.pop((bi, bj)) for bj in range(len(starts))], k, i0, xp)
             for bi, i0 in enumerate(starts)]
    return tuple(xp.concatenate(p) for p in zip(*parts, strict=True))


def _merge_candidates(pieces, k: int, row0: int, xp):
    """Rows, columns, values of each row's top-k among its column blocks' candidates
    (``_padded_topk`` pieces, in column order, so ties still go to the lower column)."""
    V = xp.concatenate([v for v, _ in pieces], axis=1)
    C = xp.concatenate([c for _, c in pieces], axis=1)
    rows, pos = xp.nonzero(_keep_mask(V, k, xp))
    return rows + row0, C[rows, pos], V[rows, pos]


def tf32_exact(X) -> bool:
    """True when every stored value of X survives rounding to TF32 (a 10-bit mantissa).

    Ratings on a half-star scale and counts up to 2048 do; a TF32 tensor-core GEMM of such raw
    values then multiplies exactly and accumulates in float32, as accurate as a float32 GEMM.
    """
    d32 = X.data.astype(np.float32)
    return bool((d32 == X.data).all()) and not bool((d32.view(np.uint32) & 0x1FFF).any())


def _inverse_norms(X, be: Backend, rows=None):
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


def _dense_topk(Xn, k: int, include_self: bool, block_rows: int | None, be: Backend,
                plan: str = "dense", X_raw=None):
    """Top-k by blocks of ``X @ X.T``: dense GEMM (``dense``, ``dense-tf32``) or products with
    X kept sparse (``spmm``, ``spgemm``).

    ``dense-tf32`` multiplies the raw values of ``X_raw`` (exact in TF32, see :func:`tf32_exact`)
    and scales each block by the inverse row norms afterwards; ``dense-bf16`` does the same
    with bfloat16 products and float32 accumulation (:func:`recsys_fast.backend.bf16_gemm`;
    values exact in bfloat16 only); elsewhere the rows are normalised first. Returns the CSR
    result and whether TF32 was actually on.
    """
    from recsys_fast.backend import bf16_gemm, tf32_matmul

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
        inv = _inverse_norms(X_raw, be).astype(Xn.dtype)
        D = be.dense(X_raw, Xn.dtype)
    elif plan == "dense":
        D = be.dense(Xn)
    else:
        D = None
    with tf32_matmul(be, plan == "dense-tf32") as tf32_on:
        if D is not None:
            block = block_rows or _pair_block(n, itemsize, be)
            rows, cols, vals = _gemm_pairs_topk(D, inv, k, include_self, block, xp, matmul)
        else:
            rows, cols, vals = _spmm_topk(Xn, k, include_self, block_rows, be, plan)
    del D
    cols = cols.astype(xp.int32)
    vals = vals.astype(Xn.dtype)
    indptr = xp.zeros(n + 1, dtype=xp.int32 if rows.size < 2**31 else xp.int64)
    indptr[1:] = xp.cumsum(xp.bincount(rows, minlength=n))
    out = be.sparse.csr_matrix((vals, cols, indptr), shape=(n, n))
    if be.host:
        out.has_sorted_indices = True
    return out, bool(tf32_on)


def _pair_block(n: int, itemsize: int, be: Backend) -> int:
    """Side of the square GEMM blocks: small enough for memory (CPU: a cache-sized block;
    GPU: S, -S, its partition, masks and a transpose in half the free memory) and at most
    n / 8, so that skipping the blocks below the diagonal saves close to half the work."""
    if be.host:
        fit = int((_BLOCK_BYTES // itemsize) ** 0.5)
        floor = 512
    else:
        fit = int((0.5 * be.free_bytes() / (7 * itemsize)) ** 0.5)
        floor = 4096
    return max(1, min(n, fit, max(floor, -(-n // 8))))


def _spmm_topk(Xn, k: int, include_self: bool, block_rows: int | None, be: Backend,
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
            block_rows = max(1, min(n, _BLOCK_BYTES // max(1, n * itemsize)))
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
        r, c, v = _select_block(S, r0, k, include_self, xp)
        del S
        parts_r.append(r)
        parts_c.append(c)
        parts_v.append(v)
    return xp.concatenate(parts_r), xp.concatenate(parts_c), xp.concatenate(parts_v)


def cosine_topk(X: Any, k: int, **kwargs: Any):
    """For each row of X, its k most similar rows by cosine similarity, as a sparse matrix:
    ``cosine_topk_result(X, k, **kwargs).matrix`` (see :func:`cosine_topk_result`)."""
    return cosine_topk_result(X, k, **kwargs).matrix


def cosine_topk_result(
    X: Any,
    k: int,
    *,
    include_self: bool = False,
    block_rows: int | None = None,
    n_threads: int | None = None,
    strategy: str = "auto",
    dtype: Any = np.float32,
    tf32: bool | None = None,
    bf16: bool = False,
    backend: str | Backend = "cpu",
) -> TopKResult:
    """For each row of X, its k most similar rows by cosine similarity, with the strategy run.

    Parameters
    ----------
    X : sparse matrix (any scipy/cupyx format) or 2-D array, shape (n_rows, n_features)
        Converted to CSR; dense arrays are accepted and converted.
    k : int
        Neighbours per row, ``1 <= k <= n_rows - 1`` (``n_rows`` with ``include_self``).
    include_self : bool, default False
        Whether a row may be its own neighbour (similarity ~1), as implicit's item-item models.
    block_rows : int, optional
        Side of the square GEMM blocks (``dense``) or rows per block (``spmm``); default from
        the cache size (CPU) or free device memory (GPU). ``sparse`` ignores it.
    n_threads : int, optional
        Threads for numba (sparse) and BLAS (dense); default numba's thread count.
    strategy : {"auto", "sparse", "dense", "spmm", "spgemm"}
        ``auto`` picks by estimated cost once per call: on the CPU ``sparse`` or ``dense`` by
        cost models scaled by rates measured once per process on this machine
        (:mod:`recsys_fast.kernels._topk_cost`); on the GPU ``dense`` while a dense copy of X
        fits in half the free device memory, else ``spmm`` (few features) or ``spgemm``.
    dtype : float dtype, default float32
        Precision of the normalised data, the accumulation and the result.
    tf32 : bool, optional
        GPU, float32, ``dense`` only: multiply on TF32 tensor cores. Default: when every value
        of X is exact in TF32 (:func:`tf32_exact`: half-star ratings, small counts), where the
        raw values are multiplied and the norms divided out afterwards, so the result matches
        float32 to float32 rounding. ``True`` also rounds inexact values to a 10-bit mantissa.
    bf16 : bool, default False
        GPU, float32, ``dense`` only: multiply the raw values in bfloat16 with float32
        accumulation (twice TF32's tensor-core rate on Ampere/Hopper) through JAX or PyTorch
        (:func:`recsys_fast.backend.bf16_gemm`), the norms divided out afterwards. Allowed only
        when every value of X is exact in bfloat16 (:func:`recsys_fast.backend.bf16_exact`:
        half-star ratings, counts up to 256), so the result is float32-accurate; refused
        otherwise. Opt-in until measured on a GPU (``strategy`` then reads ``dense-bf16``).
    backend : "cpu", "gpu", "dask" or Backend
        ``sparse`` runs on the CPU only. ``dask`` computes the same result by row blocks on a
        ``dask.distributed`` cluster (the active Client, ``$RECSYS_FAST_DASK_SCHEDULER``, or a
        LocalCluster started for the call; see :mod:`recsys_fast.dask_backend`): X is
        scattered once, each task runs this kernel's strategy on a row range
        (:func:`recsys_fast.kernels.distributed.cosine_topk_dask`).

    Returns
    -------
    TopKResult
        ``matrix``: CSR (n_rows, n_rows) whose row i holds up to k entries (j, sim(i, j)) with
        sim > 0, columns ascending; ``strategy``: the strategy that ran (``dense-tf32`` when
        the GEMM ran on TF32 tensor cores); ``precision``: ``float32``, ``float64`` or ``tf32``.

    Raises
    ------
    TypeError
        X is neither sparse nor an array, holds non-numbers, or k or ``block_rows`` is not an
        integer.
    ValueError
        k out of range, ``block_rows`` below 1, unknown strategy, non-finite values,
        ``sparse`` on the GPU, ``tf32`` or ``bf16`` on the CPU, ``bf16`` on values that bfloat16
        cannot hold exactly.
    BackendUnavailableError
        ``bf16`` with neither JAX nor PyTorch able to run a bfloat16 GEMM here.
    MemoryBudgetError
        ``strategy="dense"`` and a dense copy of X does not fit.
    """
    remote = drivers.task_impl("cosine_topk", backend)
    if remote is not None:
        return remote(X, k, include_self=include_self, block_rows=block_rows,
                      n_threads=n_threads, strategy=strategy, dtype=dtype, tf32=tf32, bf16=bf16)
    be = get_backend(backend)
    X = _as_csr(X, be)
    n = X.shape[0]
    k = _check_topk_args(n, k, include_self, strategy)
    block_rows = check_block_rows(block_rows)
    _check_knobs(strategy, block_rows, tf32, bf16)
    dt = np.dtype(dtype)
    if dt not in (np.float32, np.float64):
        raise TypeError(f"dtype must be float32 or float64, got {dt}")
    if strategy == "sparse" and not be.host:
        raise ValueError("strategy='sparse' is CPU-only (numba); use 'dense' on the GPU")
    if tf32 and be.host:
        raise ValueError("tf32=True needs the GPU backend (TF32 is a tensor-core mode)")
    if bf16:
        from recsys_fast.backend import bf16_exact

        if be.host or dt != np.float32:
            raise ValueError("bf16=True needs the GPU backend and dtype float32")
        if not bf16_exact(_canonical(X).data):
            raise ValueError("bf16=True refused: some values of X are not exact in bfloat16 "
                             "(8-bit significand), so the result would not be float32-accurate")
    threads = _resolve_threads(n_threads)
    X = _canonical(X)
    Xn = _normalized(X, be, dt)
    out = None
    if strategy != "auto":
        used = strategy
    elif be.host:
        used, out = _auto_cpu(Xn, k, include_self, threads)
    else:
        used = _choose_strategy(Xn, k, include_self, threads, be)
    if used == "dense" and not _dense_fits(Xn, be):
        n, m = Xn.shape
        raise MemoryBudgetError(f"dense copy of X ({n}x{m}) for strategy='dense' "
                                "(use 'auto' or 'spmm')", dense_bytes((n, m), dt),
                                be.free_bytes() // be.dense_share)
    if used == "sparse":
        out = _sparse_topk(Xn, k, include_self, threads) if out is None else out
    else:
        plan = used
        if used == "dense" and not be.host and dt == np.float32:
            plan = "dense-tf32" if (tf32 if tf32 is not None else tf32_exact(X)) else "dense"
            plan = "dense-bf16" if bf16 else plan
        limits = contextlib.nullcontext()
        if be.host and n_threads is not None:
            from threadpoolctl import threadpool_limits

            limits = threadpool_limits(limits=threads, user_api="blas")
        with limits:
            out, tf32_on = _dense_topk(Xn, k, include_self, block_rows, be, plan, X)
        if tf32_on:
            used = "dense-tf32"
        if plan == "dense-bf16":
            used = plan
    precision = {"dense-tf32": "tf32", "dense-bf16": "bfloat16 x float32"}.get(used, dt.name)
    return TopKResult(out, used, precision)


def warmup() -> None:
    """Compile (or load from numba's cache) the sparse kernels, keeping it out of timings."""
    rng = np.random.default_rng(0)
    for dt in (np.float32, np.float64):
        X = scipy.sparse.random(8, 6, density=0.5, random_state=rng, dtype=dt, format="csr")
        cosine_topk(X, 2, strategy="sparse", dtype=dt)
    _dense_seconds((2, 2), 1, _resolve_threads(None))  # auto's dense rates, cached per machine
