"""Which CPU strategy of ``cosine_topk`` is cheaper on this machine: ``sparse`` or ``dense``.

Two cost models, in units whose rates are measured here, once per process and thread count
(:func:`rates`, about 0.1 s), instead of constants set on one machine:

- ``sparse``: a fixed cost per call plus the multiply-adds of the pairs computed once,
  ``sum_c c_c**2 / 2`` over the columns of X (``c_c`` their non-zeros), at the rate the sparse
  kernel reaches on a seeded random matrix (the fixed cost: its time on a tiny one);
- ``dense``: the GEMM multiply-adds of the upper pair blocks, about ``0.6 n**2 m``, at the rate
  of a float32 GEMM of a block's shape, plus the selection of each row's top-k from the
  ``n**2`` entries of S, at the rate measured on one such block.

The calibration matrix is in cache and the large inputs are not, so the sparse rate is
optimistic for large, cache-missing inputs and the dense rate pessimistic (a small GEMM); the
two strategies differ by orders of magnitude on real ratings matrices (1-5 % full), so only
near-dense inputs, where the GEMM really is cheaper, change sides.
"""

from __future__ import annotations

import functools
import time

import numpy as np
import scipy.sparse

_CAL_SHAPES = ((64, 128), (3000, 6000))  # calibration matrices: rows x features
_CAL_DENSITY = 0.03
_CAL_K = 10


def _best_time(fn, rounds: int = 3) -> float:
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return max(best, 1e-9)


def sparse_madds(Xn) -> float:
    """Multiply-adds of the pairs (i, j > i) of ``Xn @ Xn.T``: sum over columns of c**2 / 2."""
    col_nnz = np.bincount(Xn.indices, minlength=Xn.shape[1]).astype(np.float64)
    return float(col_nnz @ col_nnz) / 2


@functools.lru_cache(maxsize=8)
def rates(n_threads: int) -> dict[str, float]:
    """Measured ``sparse_call_s``, ``sparse_madds_per_s``, ``gemm_madds_per_s`` and
    ``select_s_per_entry``."""
    from threadpoolctl import threadpool_limits

    from recsys_fast.backend import CPU
    from recsys_fast.kernels import similarity as sim

    rng = np.random.default_rng(0)
    t_sparse, madds = [], []
    for n, m in _CAL_SHAPES:
        X = scipy.sparse.random(n, m, density=_CAL_DENSITY, random_state=rng, dtype=np.float32,
                                format="csr")
        Xn = sim._normalized(sim._canonical(X), CPU, np.float32)
        t_sparse.append(_best_time(lambda Xn=Xn: sim._sparse_topk(Xn, _CAL_K, False, n_threads)))
        madds.append(sparse_madds(Xn))
    b = 512
    D = rng.random((b, 4 * b), dtype=np.float32)
    with threadpool_limits(limits=n_threads, user_api="blas"):
        t_gemm = _best_time(lambda: D @ D.T)
    S = D[:, :b] @ D[:, :b].T
    t_select = _best_time(lambda: sim._padded_topk(S.copy(), _CAL_K, 0, np))
    return {
        "sparse_call_s": t_sparse[0],
        "sparse_madds_per_s": (madds[1] - madds[0]) / max(1e-9, t_sparse[1] - t_sparse[0]),
        "gemm_madds_per_s": b * b * 4 * b / t_gemm,
        "select_s_per_entry": t_select / (b * b),
    }


def estimated_seconds(Xn, n_threads: int) -> dict[str, float]:
    """Modelled seconds of ``sparse`` and ``dense`` for the normalised CSR ``Xn``."""
    r = rates(n_threads)
    n, m = Xn.shape
    return {
        "sparse": r["sparse_call_s"] + sparse_madds(Xn) / r["sparse_madds_per_s"],
        "dense": 0.6 * n * n * m / r["gemm_madds_per_s"] + n * n * r["select_s_per_entry"],
    }


def sparse_or_dense(Xn, n_threads: int) -> str:
    """The CPU strategy with the lower modelled time (memory is the caller's check)."""
    est = estimated_seconds(Xn, n_threads)
    return "dense" if est["dense"] < est["sparse"] else "sparse"
