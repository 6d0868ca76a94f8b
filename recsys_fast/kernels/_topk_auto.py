"""``cosine_topk``'s ``auto`` rule: which strategy runs for an input, decided once per input
structure and kept for the process.

CPU: ``sparse`` unless a dense copy of X fits (a quarter of free RAM) and the sparse heaps fit
one set per thread; else the sparse kernel runs on a stratified sample of its own row blocks
while that costs at most :data:`._topk_sparse.TRIAL_SHARE` of the dense call's modelled time
(rates measured once per machine and cached, :mod:`._topk_cost`; up to
:data:`._topk_sparse.TRIAL_CAP` of it while its chunks' rates disagree), and finishes, its work
kept, when the rest extrapolated from the sample takes no longer than
:data:`._topk_sparse.DENSE_MARGIN` (1.15) whole dense calls; else ``dense`` runs. GPU:
``dense`` while a dense copy of X fits in half the free device memory, else ``spmm`` with at
most 4 features per row of X, else ``spgemm``.

``RECSYS_FAST_TOPK_AUTO=sparse`` (or ``dense``) pins the CPU choice wherever ``dense`` is a
candidate, without a trial: for reproducible runs, and where timing misleads (under valgrind,
which runs code ~50x slower, the trial picks ``dense``; ``recsys-fast gate --metric
instructions`` sets ``sparse``). Unset or ``trial``: the rule above.
"""

from __future__ import annotations

import os
import time

import numpy as np
import scipy.sparse

from recsys_fast.backend import CPU, Backend
from recsys_fast.kernels import _topk_cost
from recsys_fast.kernels._topk_dense import dense_fits, dense_topk, pair_block
from recsys_fast.kernels._topk_sparse import (
    LruChoices,
    run_or_yield,
    sparse_half,
    sparse_run,
    sparse_topk,
    structure_key,
    trial,
)
from recsys_fast.kernels.core import blas_limits, topk_input


def choose(Xn, k: int, include_self: bool, n_threads: int, be: Backend) -> str:
    """``auto``'s strategy, without running it (the dask driver's choice; the single-process
    CPU call keeps its trial's work instead, see :func:`auto_cpu`). On the CPU the choice is
    the one kept for this input structure, so dask and in-process calls agree."""
    if not be.host:  # numba is CPU-only; GEMM on tensor cores while dense X fits
        if dense_fits(Xn, be):
            return "dense"
        n, m = Xn.shape  # a dense slice of X per block costs m / n times the block of S
        return "spmm" if m <= 4 * n else "spgemm"
    key, used = kept_choice(Xn, k, include_self, n_threads)
    if used is None:
        run, _ = sparse_run(Xn, k, include_self, n_threads)
        wins, _, _ = trial(run, dense_seconds(Xn.shape, k, n_threads), prefix=1 / 32)
        used = "sparse" if wins else "dense"
        remember(key, used)
    return used


def trial_pays(Xn, k: int, n_threads: int) -> bool:
    """Whether ``dense`` is a candidate on the CPU at all: its dense copy of X fits, and the
    sparse heaps fit one set per thread (the blocked kernel the trial runs)."""
    return dense_fits(Xn, CPU) and sparse_half(Xn.shape[0], k, Xn.dtype.itemsize, n_threads)


def dense_seconds(shape: tuple[int, int], k: int, n_threads: int) -> float:
    """Modelled seconds of a CPU ``dense`` call (:mod:`._topk_cost`, rates cached per machine)."""
    n, m = shape
    return _topk_cost.dense_seconds(n, m, k, n_threads, dense_call, cpu_pair_block)


def cpu_pair_block(n: int) -> int:
    """The dense strategy's square block side on the CPU for float32 (the cost model's)."""
    return pair_block(n, np.dtype(np.float32).itemsize, CPU)


def dense_call(n: int, m: int, k: int, n_threads: int):
    """A calibration run of :mod:`._topk_cost`: builds a seeded random n x m float32 input (5 %
    full) and returns a call that times one whole CPU ``dense`` call on it (the checked input,
    :func:`.core.topk_input`, then the kernel: what ``cosine_topk(X, k, strategy="dense")``
    runs) and returns its seconds."""
    rng = np.random.default_rng(n * 7919 + m)
    X = scipy.sparse.random(n, m, density=0.05, random_state=rng, dtype=np.float32,
                            format="csr")
    X.data += 0.5
    kk = min(k, n - 1)

    def call() -> float:
        with blas_limits(n_threads):
            t0 = time.perf_counter()
            _, Xn, kc, _, _ = topk_input(X, kk, False, np.float32, None, CPU)
            dense_topk(Xn, kc, False, None, CPU)
            return time.perf_counter() - t0

    return call


DECIDED = LruChoices()  # auto's choices in this process, by input structure


def auto_cpu(Xn, k: int, include_self: bool, n_threads: int, form: str = "auto"):
    """``(strategy, result)`` of ``auto`` on the CPU; result None when ``dense`` is to run.

    Rule: ``sparse`` unless a dense copy of X fits (a quarter of free RAM); else the sparse
    kernel runs on a stratified sample of its row blocks while that costs at most 4 % of the
    dense call's modelled time, or up to half of it while two chunks' rates disagree
    (:func:`._topk_sparse.trial`; rates measured once per machine, :mod:`._topk_cost`), and
    finishes when the rest of its blocks, extrapolated from the sample, take no longer than
    1.15 whole dense calls (``DENSE_MARGIN``: the trial is timed now, where load only slows
    it, the dense model on a quiet machine); else ``dense`` runs. The choice is
    kept for the process, by input structure (:func:`structure_key`): a later call on the
    same matrix runs the same strategy without a trial and returns the same values."""
    key, used = kept_choice(Xn, k, include_self, n_threads)
    if used is not None:
        return used, sparse_topk(Xn, k, include_self, n_threads, form) if used == "sparse" else None
    run, _ = sparse_run(Xn, k, include_self, n_threads, form)
    out, _ = run_or_yield(run, dense_seconds(Xn.shape, k, n_threads))
    used = "dense" if out is None else "sparse"
    remember(key, used)
    return used, out


PIN_ENV = "RECSYS_FAST_TOPK_AUTO"
PINS = ("sparse", "dense")


def pinned() -> str | None:
    """The CPU strategy :data:`PIN_ENV` pins (see the module docstring), or None.

    Raises
    ------
    ValueError
        The variable holds anything but ``sparse``, ``dense``, ``trial`` or nothing.
    """
    value = os.environ.get(PIN_ENV, "").strip().lower()
    if value in ("", "trial"):
        return None
    if value not in PINS:
        raise ValueError(f"{PIN_ENV}={value!r}: expected sparse, dense or trial (unset)")
    return value


def kept_choice(Xn, k: int, include_self: bool,
                n_threads: int) -> tuple[tuple | None, str | None]:
    """``(key, strategy)``: the CPU strategy already settled for this input (``sparse`` when
    dense is no candidate, key None; the pinned one, :func:`pinned`), or ``(key, None)`` when a
    trial must decide."""
    if not trial_pays(Xn, k, n_threads):
        return None, "sparse"
    key = structure_key(Xn, k, include_self, n_threads)
    return key, pinned() or DECIDED.get(key)


def remember(key: tuple, used: str) -> None:
    """Keep auto's choice for ``key``."""
    DECIDED.put(key, used)
