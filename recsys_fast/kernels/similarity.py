"""Cosine similarity kernels: the full course distance matrix and a blocked top-k.

``cosine_distances`` is the course quantity (sklearn ``pairwise_distances(metric='cosine')``).
``cosine_topk`` keeps, for each row, its k most similar rows without ever holding the n x n
matrix. Four strategies compute the same function, each a class with its own knobs
(:mod:`.topk_strategies`):

- ``Sparse`` (``"sparse"``): numba Gustavson SpGEMM with a dense per-thread accumulator and
  fused size-k heaps, each pair computed once and offered to both rows, rows in blocks of 16
  (CPU only; :mod:`._topk_sparse`, :mod:`._topk_blocked`).
- ``Dense`` (``"dense"``): X densified once, square blocks ``X_I @ X_J.T`` by GEMM for I <= J
  only (S is symmetric: about half the GEMM work), a top-k per block and one more over each
  row block's candidates (:mod:`._topk_dense`). On the GPU with float32 values exact in TF32 it
  runs as ``"dense-tf32"``: raw values on TF32 tensor cores, the norms divided out per block.
- ``Spmm`` (``"spmm"``): X stays sparse; row blocks of ``X @ X.T`` as sparse x dense products
  (cuSPARSE SpMM on the GPU), for when a dense copy of X does not fit.
- ``Spgemm`` (``"spgemm"``): the same row blocks as sparse x sparse products, densified, for
  very many features (TF-IDF n-grams), where a dense slice of X would not pay.

The dense and spmm code is written against the backend's ``xp``/``sparse`` namespaces, so it is
also the GPU path (and runs on the simulated GPU in CI). Validation and normalisation are the
package's shared core (:mod:`.core`).

Top-k policy, identical for every strategy: only strictly positive similarities are kept (a
zero-norm row gets no neighbours and is nobody's neighbour; a row may hold fewer than k
entries), ties at the k-th value go to the lower column index, and the output is a canonical
CSR (columns ascending). :func:`cosine_topk` returns that CSR; :func:`cosine_topk_result` returns
a :class:`TopKResult` naming also the strategy that ran and its arithmetic precision.

``"auto"`` (``Auto``) is the rule of :mod:`._topk_auto`: on the CPU ``sparse`` unless a
dense copy of X fits, then a trial of the sparse kernel on a stratified sample of its own row
blocks (the work kept) against the dense call's time modelled from rates measured once per
machine (:mod:`._topk_cost`), the choice kept for the process by input structure; on the GPU
``dense`` while a dense copy of X fits in half the free device memory, else ``spmm`` with at
most 4 features per row of X, else ``spgemm``.

Memory: ``sparse`` holds X, its transpose and, per thread, n_rows size-k heaps
(n_threads * n_rows * k * (itemsize + 4) bytes), an (n_rows, 16) accumulator and 16 values per
column; it falls back to one heap set and row-by-row accumulation, computing each pair twice,
when the heaps would crowd memory. ``dense`` holds a dense copy of X plus one
``block_rows`` x ``block_rows`` block of similarities and n_rows x k candidates per column block;
``spmm`` holds one ``block_rows`` x n_rows block.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse

from recsys_fast.backend import Backend, get_backend
from recsys_fast.kernels import _topk_auto, drivers
from recsys_fast.kernels._gram_numba import gram_work, row_gram
from recsys_fast.kernels._topk_dense import dense_fits
from recsys_fast.kernels.core import (
    as_csr,
    canonical,
    normalized,
    resolve_threads,
    result_dtype,
    topk_input,
)
from recsys_fast.kernels.topk_strategies import Job, Sparse, Strategy, strategy_for
from recsys_fast.memory import check_memory, dense_bytes


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


# The sparse Gram wins where a dense GEMM does more than this many times its multiply-adds:
# ML-100K (AMD EPYC 2 vCPU, float64) users x items 89 times (15.9 ms against sklearn's dense
# 23.4 ms), items x users 132 times (16.8 against 40.5 ms); below about 64 GEMM's rate wins.
GRAM_RATIO = 64.0


def cosine_distances(X: Any, *, dtype: Any = None, backend: str | Backend = "cpu"):
    """Dense cosine distance matrix of the rows of X, equal to sklearn's ``pairwise_distances``.

    Same conventions as sklearn: a zero row has similarity 0 with every row (distance 1), the
    diagonal is exactly 0, distances are clipped to [0, 2]. On the CPU the product runs from
    the non-zeros (numba, :func:`._gram_numba.row_gram`) where a dense GEMM would do more than
    :data:`GRAM_RATIO` times its multiply-adds; else as dense GEMM when X is dense enough, else
    as a sparse product.

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
    X = as_csr(X, be)
    dt = result_dtype(X, dtype)
    n, m = X.shape
    check_memory(f"cosine distance matrix {n}x{n}", dense_bytes((n, n), dt))
    Xn = normalized(canonical(X), be, dt)
    density = Xn.nnz / max(1, n * m)
    sparse_madds, dense_madds = gram_work(Xn) if be.host else (1.0, 0.0)
    if dense_madds > GRAM_RATIO * sparse_madds:  # numba, from the non-zeros only
        if dt != np.float64:
            check_memory(f"float64 cosine sums {n}x{n}", dense_bytes((n, n), np.float64))
        S = row_gram(Xn)
    # dense GEMM wins once X is a few percent full (and the dense copy is affordable)
    elif density > 0.02 and dense_fits(Xn, be):
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
    strategy: str | Strategy = "auto",
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
        the cache size (CPU) or free device memory (GPU). ``sparse`` refuses it.
    n_threads : int, optional
        Threads for numba (sparse) and BLAS (dense); default numba's thread count.
    strategy : {"auto", "sparse", "dense", "spmm", "spgemm"} or Strategy
        A name, with its knobs given as the arguments below, or a strategy object carrying
        them (:mod:`recsys_fast.kernels.topk_strategies`: ``Dense(block_rows=512)``; then
        no knob argument may be given). ``auto``: see the module docstring.
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
        k out of range, ``block_rows`` below 1, unknown strategy, a knob the strategy does
        not take, non-finite values,
        ``sparse`` on the GPU, ``tf32`` or ``bf16`` on the CPU, ``bf16`` on values that bfloat16
        cannot hold exactly.
    BackendUnavailableError
        ``bf16`` with neither JAX nor PyTorch able to run a bfloat16 GEMM here.
    MemoryBudgetError
        ``strategy="dense"`` and a dense copy of X does not fit.
    """
    strat = strategy_for(strategy, block_rows=block_rows, tf32=tf32, bf16=bf16)
    remote = drivers.task_impl("cosine_topk", backend)
    if remote is not None:
        return remote(X, k, include_self=include_self, n_threads=n_threads, strategy=strat,
                      dtype=dtype)
    be = get_backend(backend)
    X, Xn, k, dt, threads = topk_input(X, k, include_self, dtype, n_threads, be)
    job = Job(X, Xn, k, include_self, threads, threads if n_threads is not None else None, be)
    strat.check(job)
    out, used = strat.run(job)
    precision = {"dense-tf32": "tf32", "dense-bf16": "bfloat16 x float32"}.get(used, dt.name)
    return TopKResult(out, used, precision)


def dot_topk(
    X: Any,
    k: int,
    *,
    include_self: bool = False,
    n_threads: int | None = None,
    strategy: str | Strategy = "auto",
    dtype: Any = np.float32,
    backend: str | Backend = "cpu",
):
    """For each row of X, the k rows with the largest positive dot product, unnormalised (as
    implicit's ``ItemItemRecommender`` and ``BM25Recommender`` keep): the machinery and the
    top-k policy of :func:`cosine_topk_result` on the raw rows. Tensor-core modes (``tf32``,
    ``bf16``) and the dask backend are not offered: they rescale by the norms.

    Returns
    -------
    CSR (n_rows, n_rows), row i: up to k entries (j, x_i . x_j) with a positive product,
    columns ascending.
    """
    strat = strategy_for(strategy)
    if getattr(strat, "tf32", None) or getattr(strat, "bf16", False):
        raise ValueError("dot_topk multiplies raw values: tf32 and bf16 are cosine-only modes")
    if hasattr(strat, "tf32"):
        strat = dataclasses.replace(strat, tf32=False)
    if drivers.task_impl("cosine_topk", backend) is not None:
        raise ValueError(f"dot_topk runs on the cpu or gpu backend, not {backend!r}")
    be = get_backend(backend)
    X, Xd, k, _, threads = topk_input(X, k, include_self, dtype, n_threads, be, normalise=False)
    job = Job(X, Xd, k, include_self, threads, threads if n_threads is not None else None, be)
    strat.check(job)
    return strat.run(job)[0]


def warmup() -> None:
    """Compile (or load from numba's cache) the sparse kernels, keeping it out of timings."""
    rng = np.random.default_rng(0)
    for dt in (np.float32, np.float64):
        X = scipy.sparse.random(8, 6, density=0.5, random_state=rng, dtype=dt, format="csr")
        for form in ("blocked", "rows"):
            cosine_topk(X, 2, strategy=Sparse(form=form), dtype=dt)
    _topk_auto.dense_seconds((2, 2), 1, resolve_threads(None))  # auto's dense rates, cached per machine
