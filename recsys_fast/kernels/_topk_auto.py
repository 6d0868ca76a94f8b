"""``cosine_topk``'s ``auto`` rule: which strategy runs for an input, decided once per input
structure and kept for the process.

CPU: ``sparse`` unless a dense copy of X fits (a quarter of free RAM) and the sparse heaps fit
one set per thread; else the sparse kernel runs on a stratified sample of its own row blocks
while that costs at most :data:`._topk_sparse.TRIAL_SHARE` of the dense call's modelled time
(rates measured once per machine and cached, :mod:`._topk_cost`). A close call (the sparse
call extrapolated from the sample and the modelled dense call within :data:`CLOSE` of each
other, the dense call modelled at most :data:`CLOSE_MAX_S`) runs both in full on this input
and keeps the faster; otherwise the sparse call finishes, its work kept, when the rest
extrapolated from the sample takes no longer than a whole dense call, else ``dense`` runs.
GPU: ``dense`` while a dense copy of X fits in half the free device memory,
else ``spmm`` with at most 4 features per row of X, else ``spgemm``.
"""

from __future__ import annotations

import time

import numpy as np
import scipy.sparse

from recsys_fast.backend import CPU, Backend
from recsys_fast.kernels import _topk_cost
from recsys_fast.kernels._topk_dense import dense_fits, dense_topk, pair_block
from recsys_fast.kernels._topk_sparse import (
    LruChoices,
    finish_timed,
    sparse_half,
    sparse_run,
    sparse_topk,
    structure_key,
    trial,
)
from recsys_fast.kernels.core import blas_limits, topk_input

# Two estimates this close are within the model's and the trial's errors on this machine
# (the dense model read 0.67-1.2x a dense call, the trial 0.8-1.55x a sparse one): both run.
CLOSE = 1.6
CLOSE_MAX_S = 2.0  # a close call runs both strategies in full only below this modelled time
RACE_CALLS = 3  # whole calls of each strategy a close call times, while within RACE_MAX_S
RACE_MAX_S = 1.0


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
        used, _, _ = decide(Xn, k, include_self, n_threads, keep_work=False)
        remember(key, used)
    return used


def trial_pays(Xn, k: int, n_threads: int) -> bool:
    """Whether ``dense`` is a candidate on the CPU at all: its dense copy of X fits, and the
    sparse heaps fit one set per thread (the blocked kernel the trial runs)."""
    return dense_fits(Xn, CPU) and sparse_half(Xn.shape[0], k, Xn.dtype.itemsize, n_threads)


def dense_seconds(shape: tuple[int, int], k: int, n_threads: int) -> float:
    """Modelled seconds of a CPU ``dense`` call (:mod:`._topk_cost`, rates cached per machine)."""
    n, m = shape
    return _topk_cost.dense_seconds(n, m, k, n_threads, time_dense, cpu_pair_block)


def cpu_pair_block(n: int) -> int:
    """The dense strategy's square block side on the CPU for float32 (the cost model's)."""
    return pair_block(n, np.dtype(np.float32).itemsize, CPU)


def time_dense(n: int, m: int, k: int, n_threads: int, rounds: int = 3) -> float:
    """Median seconds of a whole CPU ``dense`` call (the checked input, :func:`.core.topk_input`,
    then the kernel: what ``cosine_topk(X, k, strategy="dense")`` runs) on a seeded random n x m
    float32 input (5 % full), over ``rounds`` calls after one untimed call: a calibration run of
    :mod:`._topk_cost`. The median, as the trial's sparse estimate is set against a typical
    dense call, not its best."""
    rng = np.random.default_rng(n * 7919 + m)
    X = scipy.sparse.random(n, m, density=0.05, random_state=rng, dtype=np.float32,
                            format="csr")
    X.data += 0.5
    times = []
    with blas_limits(n_threads):
        for r in range(rounds + 1):
            t0 = time.perf_counter()
            _, Xn, kk, _, _ = topk_input(X, min(k, n - 1), False, np.float32, None, CPU)
            dense_topk(Xn, kk, False, None, CPU)
            if r:
                times.append(time.perf_counter() - t0)
    return float(np.median(times))


DECIDED = LruChoices()  # auto's choices in this process, by input structure


def auto_cpu(Xn, k: int, include_self: bool, n_threads: int, form: str = "auto",
             dense_call=None):
    """``(strategy, result)`` of ``auto`` on the CPU; result None when ``dense`` is to run.

    Rule (:func:`decide`): ``sparse`` unless a dense copy of X fits (a quarter of free RAM);
    else the sparse kernel runs on a stratified sample of its row blocks while that costs at
    most 4 % of the dense call's modelled time (:func:`._topk_sparse.trial`; rates measured
    once per machine, :mod:`._topk_cost`). When the sparse call extrapolated from the sample
    and the modelled dense call are within :data:`CLOSE` of each other (a dense call modelled
    at most :data:`CLOSE_MAX_S`), both run in full and the faster one's result is returned;
    else the sparse call finishes when the rest of its blocks, extrapolated from the sample,
    take no longer than a whole dense call, or ``dense`` runs. The choice is kept for the
    process, by input structure (:func:`structure_key`): a later call on the same matrix runs
    the same strategy without a trial and returns the same values. ``dense_call()``: the
    dense strategy's result as a dense call would compute it (default: :func:`cpu_dense`)."""
    key, used = kept_choice(Xn, k, include_self, n_threads)
    if used is not None:
        return used, sparse_topk(Xn, k, include_self, n_threads, form) if used == "sparse" else None
    used, out, _ = decide(Xn, k, include_self, n_threads, form, dense_call)
    remember(key, used)
    return used, out


def cpu_dense(Xn, k: int, include_self: bool, n_threads: int):
    """The CPU dense strategy's top-k CSR, BLAS at ``n_threads``."""
    with blas_limits(n_threads):
        return dense_topk(Xn, k, include_self, None, CPU)[0]


def decide(Xn, k: int, include_self: bool, n_threads: int, form: str = "auto",
           dense_call=None, keep_work: bool = True):
    """``(strategy, result, record)``: auto's CPU decision for an input not decided before
    (:func:`auto_cpu`'s rule); result None when ``dense`` is to run, or when ``keep_work`` is
    False and no close call ran both (the decision alone: the sparse call is not finished)."""
    run, _ = sparse_run(Xn, k, include_self, n_threads, form)
    dense_s = dense_seconds(Xn.shape, k, n_threads)
    wins, _, record = trial(run, dense_s)
    sparse_s = record["sparse_total_s"]
    if dense_s <= CLOSE_MAX_S and max(sparse_s, dense_s) <= CLOSE * min(sparse_s, dense_s):
        if dense_call is None:
            def dense_call():
                return cpu_dense(Xn, k, include_self, n_threads)

        def sparse_call():
            return sparse_topk(Xn, k, include_self, n_threads, run.form)

        sparse_out, first_s = finish_timed(run, record["trial_s"])
        used, out, times = close_race(sparse_out, first_s, sparse_call, dense_call)
        record.update(raced=True, race_s=times)
        return used, out, record
    if not wins:
        return "dense", None, record
    return "sparse", run.finish() if keep_work else None, record


def close_race(sparse_out, sparse_s: float, sparse_call, dense_call):
    """``(strategy, result, times)`` of a close call: the sparse call (already run once, in
    ``sparse_s``) and then the dense call, each timed over whole calls, up to
    :data:`RACE_CALLS` each while the race has spent less than its share of
    :data:`RACE_MAX_S` (half for sparse, all for dense; one call each at least). The least
    time of each decides (a call's noise only adds: a stall, cold pages, the first GEMM's
    thread start). Sparse calls all come first: a numba kernel started while OpenBLAS threads
    still spin after a GEMM runs several times slower. The result returned is the winner's."""
    times = {"sparse": [sparse_s], "dense": []}
    outs = {"sparse": sparse_out}
    spent = sparse_s
    for name, call, share in (("sparse", sparse_call, 0.5), ("dense", dense_call, 1.0)):
        while len(times[name]) < RACE_CALLS and (not times[name] or spent < share * RACE_MAX_S):
            t0 = time.perf_counter()
            outs[name] = call()  # every call of a strategy returns the same values
            took = time.perf_counter() - t0
            spent += took
            times[name].append(took)
    used = "dense" if min(times["dense"]) < min(times["sparse"]) else "sparse"
    return used, outs[used], times


def kept_choice(Xn, k: int, include_self: bool,
                n_threads: int) -> tuple[tuple | None, str | None]:
    """``(key, strategy)``: the CPU strategy already settled for this input (``sparse`` when
    dense is no candidate, key None), or ``(key, None)`` when a trial must decide."""
    if not trial_pays(Xn, k, n_threads):
        return None, "sparse"
    key = structure_key(Xn, k, include_self, n_threads)
    return key, DECIDED.get(key)


def remember(key: tuple, used: str) -> None:
    """Keep auto's choice for ``key``."""
    DECIDED.put(key, used)
