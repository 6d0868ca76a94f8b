"""Cases of the cosine kernels: the course's full distance matrix and item-item top-k.

``cosine_distances``: user-user cosine distances of the rating matrix. naive = the course line
``pairwise_distances(R, metric='cosine')`` on the dense float64 matrix; optimised =
``kernels.cosine_distances`` on the sparse matrix (float64). Checked to rtol 1e-9 against the
naive result, or on 64 sampled rows against sklearn where the naive matrix does not fit.

``cosine_topk``: each item's k = 50 most similar items (true cosine, self excluded) from the
items x users matrix, float32. naive = the course's way of ranking (as its content recommender):
the full dense similarity matrix then ``argsort`` per row; optimised = ``kernels.cosine_topk``
(blocked, never n x n; the strategy that ran is recorded; on the GPU from host input to host
output, so both transfers are timed); peers: implicit
``CosineRecommender(K=k+1)`` (keeps the item itself), sparse_dot_topn ``sp_matmul_topn`` on
L2-normalised rows (``top_n=k+1``), sklearn brute-force ``NearestNeighbors(metric='cosine')``,
and scipy's full sparse product ``Xn @ Xn.T`` (no selection: a lower bound, verdict n/a). For
the peers the normalisation and transposition happen in setup (not timed); ours does them
inside the timed call. Every top-k result is checked on up to 300 sampled rows (all rows when
fewer) against exact float64 similarities, tie-aware (1e-5).
"""

from __future__ import annotations

import os
import warnings

import numpy as np

from recsys_fast.harness import casedata, work
from recsys_fast.harness.casedata import F32, F64
from recsys_fast.harness.checks import compare_dense, compare_topk, exact_cosine_rows, sample_rows
from recsys_fast.harness.registry import SCALES, Case, Registry, Verdict

K = 50
N_SAMPLE_DIST = 64
N_SAMPLE_TOPK = 300
# float32 cosine over rows of thousands of non-zeros: accumulation error reaches ~1.5e-5 at
# ML-1M shape (ours, sparse_dot_topn and sklearn agree to the last digit there), so 1e-4.
TOPK_TOL = 1e-4


def _threads() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


# -- cosine_distances -----------------------------------------------------------------------
def _dist_setup(ctx, scale, impl="naive", backend="cpu"):
    st = {"ctx": ctx, "scale": scale, "backend": backend}
    if impl == "naive":
        st["R"] = casedata.dense_matrix(ctx, scale)
    else:
        st["R"] = casedata.to_backend(casedata.train_csr(ctx, scale, np.float64), backend)
    st["shape"] = st["R"].shape
    return st


def _dist_naive(st):
    from sklearn.metrics import pairwise_distances

    return pairwise_distances(st["R"], metric="cosine")


def _dist_optimised(st):
    from recsys_fast.kernels import cosine_distances

    out = cosine_distances(st["R"], backend=st["backend"])
    casedata.sync(st["backend"])
    return out


def _dist_check(ctx, st, result) -> Verdict:
    ref = ctx.naive_reference("cosine_distances", st["scale"])
    got = casedata.to_backend(result, "cpu")
    if ref is not None:
        return compare_dense(got, ref, rtol=1e-9, atol=1e-12, against="naive")
    from sklearn.metrics import pairwise_distances

    R = casedata.train_csr(ctx, st["scale"], np.float64)
    rows = sample_rows(R.shape[0], N_SAMPLE_DIST)
    want = np.clip(pairwise_distances(R[rows], R, metric="cosine"), 0, 2)
    want[np.arange(len(rows)), rows] = 0.0
    return compare_dense(got[rows], want, rtol=1e-9, atol=1e-12,
                         against=f"{len(rows)} sampled rows vs sklearn")


def _dist_dense_flops(st) -> float:
    u, i = st["shape"]
    return 2.0 * u * u * i


def _dist_sparse_flops(st) -> float:
    R = casedata.train_csr(st["ctx"], st["scale"], np.float64)
    return work.gram_flops(R) + 2.0 * R.shape[0] ** 2  # Gram + the normalisation


def _dist_bytes(st) -> float:
    R = casedata.train_csr(st["ctx"], st["scale"], np.float64)
    return work.csr_bytes(R) + work.dense_bytes((R.shape[0], R.shape[0]), F64)


def _topk_flops(st) -> float:
    return work.gram_flops(casedata.item_user_csr(st["ctx"], st["scale"], np.float32))


def _topk_bytes(st) -> float:
    X = casedata.item_user_csr(st["ctx"], st["scale"], np.float32)
    return work.csr_bytes(X) + X.shape[0] * st["k"] * 8.0  # X read, k (index, value) per row


def _dist_mem(impl):
    def estimate(spec):
        u2, um = spec.n_users**2, spec.n_users * spec.n_items
        return F64 * (u2 + 2 * um) if impl == "naive" else F64 * (2 * u2 + um)

    return estimate


# -- cosine_topk ----------------------------------------------------------------------------
def _k(n_rows: int) -> int:
    return min(K, n_rows - 1)


def _normalised(X):
    import scipy.sparse

    X = X.astype(np.float32)
    norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=1)).ravel())
    inv = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    return (scipy.sparse.diags(inv.astype(np.float32)) @ X).tocsr()


def _topk_setup(impl, backend="cpu"):
    def setup(ctx, scale):
        X = casedata.item_user_csr(ctx, scale, np.float32)
        st = {"ctx": ctx, "scale": scale, "backend": backend, "k": _k(X.shape[0]),
              "n": X.shape[0], "threads": _threads(), "impl": impl}
        if impl == "optimised":
            from recsys_fast.kernels import warmup

            warmup()  # numba compilation (or cache load) stays out of the timings
            st["X"] = X  # on the host: the GPU case times the transfers too (end to end)
        elif impl == "implicit":
            st["user_items"] = casedata.train_csr(ctx, scale, np.float32)
        elif impl in ("sparse_dot_topn", "scipy"):
            st["A"] = _normalised(X)
            st["At"] = st["A"].T.tocsr()
        else:  # naive, sklearn
            st["X"] = X
        return st

    return setup


def _topk_naive(st):
    import scipy.sparse
    from sklearn.metrics.pairwise import cosine_similarity

    S = cosine_similarity(st["X"])  # dense n x n, as the course ranks its content matches
    k, n = st["k"], st["n"]
    rows, cols, vals = [], [], []
    for i in range(n):
        # the course's argsort()[:-N:-1] idiom: k + 1 best, then drop the row itself
        order = [j for j in S[i].argsort()[: -(k + 2) : -1] if j != i][:k]
        order = [j for j in order if S[i, j] > 0]
        rows += [i] * len(order)
        cols += order
        vals += [S[i, j] for j in order]
    return scipy.sparse.csr_matrix((np.asarray(vals, np.float32), (rows, cols)), shape=(n, n))


def _topk_optimised(st):
    from recsys_fast.kernels import cosine_topk_result

    res = cosine_topk_result(st["X"], st["k"], backend=st["backend"])
    st["strategy"] = res.strategy
    if st["backend"] == "cpu":
        return res.matrix
    return casedata.to_backend(res.matrix, "cpu")  # host in, host out: both transfers timed


def _topk_implicit(st):
    from implicit.nearest_neighbours import CosineRecommender

    model = CosineRecommender(K=st["k"] + 1, num_threads=st["threads"])
    with warnings.catch_warnings():  # implicit warns about its own internal COO -> CSR step
        warnings.simplefilter("ignore")
        model.fit(st["user_items"], show_progress=False)
    return model.similarity


def _topk_sparse_dot_topn(st):
    from sparse_dot_topn import sp_matmul_topn

    return sp_matmul_topn(st["A"], st["At"], top_n=st["k"] + 1, n_threads=st["threads"])


def _topk_sklearn(st):
    import scipy.sparse
    from sklearn.neighbors import NearestNeighbors

    nn = NearestNeighbors(n_neighbors=st["k"] + 1, metric="cosine", algorithm="brute",
                          n_jobs=st["threads"]).fit(st["X"])
    dist, idx = nn.kneighbors(st["X"])
    n = st["n"]
    rows = np.repeat(np.arange(n), idx.shape[1])
    return scipy.sparse.csr_matrix(((1.0 - dist).ravel(), (rows, idx.ravel())), shape=(n, n))


def _topk_scipy(st):
    return st["A"] @ st["At"]


def drop_self_keep_k(M, k: int):
    """Remove the diagonal and non-positive entries, then keep each row's k largest."""
    import scipy.sparse

    M = casedata.to_backend(M, "cpu").tocsr().astype(np.float64)
    M.setdiag(0)
    M.data[M.data <= 0] = 0
    M.eliminate_zeros()
    rows, cols, vals = [], [], []
    for i in range(M.shape[0]):
        lo, hi = M.indptr[i], M.indptr[i + 1]
        keep = np.argsort(-M.data[lo:hi], kind="stable")[:k]
        rows.append(np.full(len(keep), i))
        cols.append(M.indices[lo:hi][keep])
        vals.append(M.data[lo:hi][keep])
    return scipy.sparse.csr_matrix((np.concatenate(vals), (np.concatenate(rows),
                                    np.concatenate(cols))), shape=M.shape)


def _topk_check(ctx, st, result) -> Verdict:
    got = result
    if st["impl"] in ("implicit", "sparse_dot_topn", "sklearn"):
        got = drop_self_keep_k(result, st["k"])  # these peers keep the item itself
    X = casedata.item_user_csr(ctx, st["scale"], np.float32)
    rows = sample_rows(X.shape[0], N_SAMPLE_TOPK)
    exact = exact_cosine_rows(X, rows)
    against = ("exact float64, all rows" if len(rows) == X.shape[0]
               else f"{len(rows)} sampled rows vs exact float64")
    return compare_topk(got, exact, rows, st["k"], include_self=False, tol=TOPK_TOL,
                        against=against)


def _topk_extra(st, result) -> dict:
    out = {"k": st["k"]}
    if st.get("strategy"):
        out["strategy"] = st["strategy"]
    if st.get("threads"):
        out["threads"] = st["threads"]
    return out


def _topk_mem(impl):
    def estimate(spec):
        n, nnz = spec.n_items, spec.n_ratings
        out = n * (K + 1) * 12
        if impl in ("naive",):
            return n * n * (F64 + F32) + out
        if impl == "scipy":
            return n * n * 24  # the product can be nearly dense: indices + values, twice
        if impl == "sklearn":
            return out * 2 + (1 << 30)  # sklearn's default working_memory chunks
        return nnz * 24 + out + (64 << 20)  # copies of X, heaps/blocks, the output

    return estimate


def register(reg: Registry) -> None:
    reg.add_kernel("cosine_distances", "course user-user cosine distance matrix (dense n x n)")
    reg.add(Case(kernel="cosine_distances", impl="naive", backend="cpu", setup=_dist_setup,
                 run=_dist_naive, memory_estimate=_dist_mem("naive"),
                 flops=_dist_dense_flops, bytes=_dist_bytes,
                 note="sklearn pairwise_distances on the dense matrix"))
    for be in ("cpu", "gpu"):
        reg.add(Case(kernel="cosine_distances", impl="optimised", backend=be,
                     setup=lambda ctx, sc, be=be: _dist_setup(ctx, sc, "optimised", be),
                     run=_dist_optimised, check=_dist_check,
                     memory_estimate=_dist_mem("optimised"), flops=_dist_sparse_flops,
                     dense_flops=_dist_dense_flops, bytes=_dist_bytes,
                     note="kernels.cosine_distances (sparse input)"))
    reg.add_kernel("cosine_topk", f"item-item top-{K} true cosine neighbours")
    runs = {"naive": _topk_naive, "optimised": _topk_optimised, "implicit": _topk_implicit,
            "sparse_dot_topn": _topk_sparse_dot_topn, "sklearn": _topk_sklearn,
            "scipy": _topk_scipy}
    notes = {"naive": "dense cosine_similarity + argsort per row",
             "optimised": "kernels.cosine_topk (blocked, numba/BLAS)",
             "implicit": "implicit CosineRecommender(K=k+1)",
             "sparse_dot_topn": "sp_matmul_topn(top_n=k+1)",
             "sklearn": "NearestNeighbors(metric='cosine', brute)",
             "scipy": "full sparse product Xn @ Xn.T (no top-k)"}
    # the brute-force peers are O(n^2) in time: keep them off the largest scale
    small = tuple(s for s in SCALES if s != "25m")
    for impl, run in runs.items():
        backends = ("cpu", "gpu") if impl == "optimised" else ("cpu",)
        for be in backends:
            reg.add(Case(kernel="cosine_topk", impl=impl, backend=be,
                         setup=_topk_setup(impl, be), run=run,
                         check=None if impl == "scipy" else _topk_check,
                         memory_estimate=_topk_mem(impl), extra=_topk_extra,
                         flops=_topk_flops, bytes=_topk_bytes, flops_dtype="float32",
                         requires=(impl,) if impl in ("implicit", "sparse_dot_topn") else (),
                         scales=small if impl in ("naive", "sklearn") else SCALES,
                         note=notes[impl]))
