"""Implementations of the cosine kernels: the course's full distance matrix and item-item top-k.

``cosine_distances``: user-user cosine distances of the rating matrix. naive = the course line
``pairwise_distances(R, metric='cosine')`` on the dense float64 matrix; optimised =
``kernels.cosine_distances`` on the sparse matrix (float64). Checked to rtol 1e-9 against the
naive result, or on 64 sampled rows against sklearn where the naive matrix does not fit.

``cosine_topk``: each item's k = 50 most similar items (true cosine, self excluded) from the
items x users matrix, float32. naive = the course's way of ranking (as its content recommender):
the full dense similarity matrix then ``argsort`` per row; optimised = ``kernels.cosine_topk``
(blocked, never n x n; the strategy that ran is recorded; on the GPU from host input to host
output, so both transfers are timed); peers: implicit ``CosineRecommender(K=k+1)`` (keeps the
item itself), sparse_dot_topn ``sp_matmul_topn`` on L2-normalised rows (``top_n=k+1``), sklearn
brute-force ``NearestNeighbors(metric='cosine')``, chunkdot ``cosine_similarity_top_k``, Spark
MLlib ``RowMatrix.columnSimilarities(0.0)`` with its top-k in Spark SQL (threshold 0: DIMSUM
without sampling, exact; :mod:`~recsys_fast.harness.cases.spark_topk`) and scipy's full sparse
product ``Xn @ Xn.T`` (no selection: a lower bound, verdict n/a). For the peers the
normalisation and transposition happen in setup (not timed; for Spark also the session start
and its cached ``RowMatrix``); ours does them inside the timed call. Every top-k result is
checked on up to 300 sampled rows (all rows when fewer) against exact float64 similarities,
tie-aware (1e-4).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from recsys_fast.harness.cases import casedata, work
from recsys_fast.harness.cases.adapter import Adapter
from recsys_fast.harness.cases.case import SCALES, Verdict
from recsys_fast.harness.cases.casedata import F32, F64
from recsys_fast.harness.cases.checks import (
    compare_dense,
    compare_topk,
    exact_cosine_rows,
    sample_rows,
)

K = 50
N_SAMPLE_DIST = 64
N_SAMPLE_TOPK = 300
# float32 cosine over rows of thousands of non-zeros: accumulation error reaches ~1.5e-5 at
# ML-1M shape (ours, sparse_dot_topn and sklearn agree to the last digit there), so 1e-4.
TOPK_TOL = 1e-4
NOT_25M = tuple(s for s in SCALES if s != "25m")  # O(n^2)-time peers stay off the largest scale


# -- cosine_distances -----------------------------------------------------------------------
@dataclass
class DistState:
    ctx: Any
    scale: str
    R: Any  # the rating matrix as this implementation takes it (dense or sparse)


class CosineDistancesImpl(Adapter):
    """User-user cosine distances of the rating matrix (the course's similarity step)."""

    kernel = "cosine_distances"
    description = "course user-user cosine distance matrix (dense n x n)"

    def setup(self, ctx, scale: str) -> DistState:
        return DistState(ctx, scale, self.prepare(ctx, scale))

    def prepare(self, ctx, scale: str):
        return casedata.to_backend(casedata.train_csr(ctx, scale, np.float64), self.backend)

    def check(self, ctx, st: DistState, result) -> Verdict:
        ref = ctx.naive_reference(self.kernel, st.scale)
        got = casedata.to_backend(result, "cpu")
        if ref is not None:
            return compare_dense(got, ref, rtol=1e-9, atol=1e-12, against="naive")
        from sklearn.metrics import pairwise_distances

        R = casedata.train_csr(ctx, st.scale, np.float64)
        rows = sample_rows(R.shape[0], N_SAMPLE_DIST)
        want = np.clip(pairwise_distances(R[rows], R, metric="cosine"), 0, 2)
        want[np.arange(len(rows)), rows] = 0.0
        return compare_dense(got[rows], want, rtol=1e-9, atol=1e-12,
                             against=f"{len(rows)} sampled rows vs sklearn")

    def dense_flops(self, st: DistState) -> float:
        u, i = st.R.shape
        return 2.0 * u * u * i

    def flops(self, st: DistState) -> float:
        R = casedata.train_csr(st.ctx, st.scale, np.float64)
        return work.gram_flops(R) + 2.0 * R.shape[0] ** 2  # Gram + the normalisation

    def bytes(self, st: DistState) -> float:
        R = casedata.train_csr(st.ctx, st.scale, np.float64)
        return work.csr_bytes(R) + work.dense_bytes((R.shape[0], R.shape[0]), F64)

    def memory_estimate(self, spec) -> int:
        u2, um = spec.n_users**2, spec.n_users * spec.n_items
        return F64 * (2 * u2 + um)


class NaiveCosineDistances(CosineDistancesImpl):
    name = role = "naive"
    note = "sklearn pairwise_distances on the dense matrix"

    def prepare(self, ctx, scale):
        return casedata.dense_matrix(ctx, scale)

    def run(self, st: DistState):
        from sklearn.metrics import pairwise_distances

        return pairwise_distances(st.R, metric="cosine")

    flops = CosineDistancesImpl.dense_flops  # the dense work is what it does
    dense_flops = Adapter.dense_flops

    def memory_estimate(self, spec) -> int:
        u2, um = spec.n_users**2, spec.n_users * spec.n_items
        return F64 * (u2 + 2 * um)


class OptimisedCosineDistances(CosineDistancesImpl):
    name = role = "optimised"
    backends = ("cpu", "gpu")
    note = "kernels.cosine_distances (sparse input)"

    def run(self, st: DistState):
        from recsys_fast.kernels import cosine_distances

        out = cosine_distances(st.R, backend=self.backend)
        casedata.sync(self.backend)
        return out


# -- cosine_topk ----------------------------------------------------------------------------
@dataclass
class TopKState:
    ctx: Any
    scale: str
    X: Any  # items x users CSR, float32, on the host
    k: int
    threads: int
    input: Any = None  # what this implementation takes (prepared in setup, not timed)
    strategy: str = ""  # the cosine_topk strategy that ran (optimised only)


def normalised_rows(X):
    """L2-normalised float32 copy of a CSR matrix (zero rows stay zero)."""
    import scipy.sparse

    X = X.astype(np.float32)
    norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=1)).ravel())
    inv = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    return (scipy.sparse.diags(inv.astype(np.float32)) @ X).tocsr()


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


class TopKImpl(Adapter):
    """Item-item top-k true cosine neighbours, self excluded; the result is an n x n CSR.

    A concrete implementation sets ``prepare(st)`` (its own input, built in setup) and ``run``;
    a peer that keeps the item itself or more than k entries maps its output to the reference
    form in ``as_reference_form`` (applied by the check only, never timed).
    """

    kernel = "cosine_topk"
    description = f"item-item top-{K} true cosine neighbours"
    flops_dtype = "float32"
    roof = "scatter"

    def setup(self, ctx, scale: str) -> TopKState:
        X = casedata.item_user_csr(ctx, scale, np.float32)
        st = TopKState(ctx, scale, X, k=min(K, X.shape[0] - 1), threads=casedata.threads())
        st.input = self.prepare(st)
        return st

    def prepare(self, st: TopKState):
        return st.X

    def as_reference_form(self, st: TopKState, result):
        return result

    def check(self, ctx, st: TopKState, result) -> Verdict:
        got = self.as_reference_form(st, result)
        rows = sample_rows(st.X.shape[0], N_SAMPLE_TOPK)
        exact = exact_cosine_rows(st.X, rows)
        against = ("exact float64, all rows" if len(rows) == st.X.shape[0]
                   else f"{len(rows)} sampled rows vs exact float64")
        return compare_topk(got, exact, rows, st.k, include_self=False, tol=TOPK_TOL,
                            against=against)

    def extra(self, st: TopKState, result) -> dict:
        out = {"k": st.k, "threads": st.threads}
        if st.strategy:
            out["strategy"] = st.strategy
        return out

    def flops(self, st: TopKState) -> float:
        return work.gram_flops(st.X)

    def bytes(self, st: TopKState) -> float:
        return work.csr_bytes(st.X) + st.X.shape[0] * st.k * 8.0  # X read, k (index, value)

    def memory_estimate(self, spec) -> int:
        out = spec.n_items * (K + 1) * 12
        return spec.n_ratings * 24 + out + (64 << 20)  # copies of X, heaps/blocks, the output


class NaiveTopK(TopKImpl):
    name = role = "naive"
    note = "dense cosine_similarity + argsort per row"
    scales = NOT_25M

    def run(self, st: TopKState):
        import scipy.sparse
        from sklearn.metrics.pairwise import cosine_similarity

        S = cosine_similarity(st.input)  # dense n x n, as the course ranks its content matches
        k, n = st.k, st.X.shape[0]
        rows, cols, vals = [], [], []
        for i in range(n):
            # the course's argsort()[:-N:-1] idiom: k + 1 best, then drop the row itself
            order = [j for j in S[i].argsort()[: -(k + 2) : -1] if j != i][:k]
            order = [j for j in order if S[i, j] > 0]
            rows += [i] * len(order)
            cols += order
            vals += [S[i, j] for j in order]
        return scipy.sparse.csr_matrix((np.asarray(vals, np.float32), (rows, cols)),
                                       shape=(n, n))

    def memory_estimate(self, spec) -> int:
        n = spec.n_items
        return n * n * (F64 + F32) + n * (K + 1) * 12


class OptimisedTopK(TopKImpl):
    name = role = "optimised"
    backends = ("cpu", "gpu")
    note = "kernels.cosine_topk (blocked, numba/BLAS)"

    def prepare(self, st: TopKState):
        from recsys_fast.kernels import warmup

        warmup()  # numba compilation (or cache load) stays out of the timings
        return st.X  # on the host: the GPU case times the transfers too (end to end)

    def run(self, st: TopKState):
        from recsys_fast.kernels import cosine_topk_result

        res = cosine_topk_result(st.input, st.k, backend=self.backend)
        st.strategy = res.strategy
        if self.backend == "cpu":
            return res.matrix
        return casedata.to_backend(res.matrix, "cpu")  # host in, host out: both timed


class ImplicitTopK(TopKImpl):
    name = "implicit"
    requires = ("implicit",)
    note = "implicit CosineRecommender(K=k+1)"

    def prepare(self, st: TopKState):
        return casedata.train_csr(st.ctx, st.scale, np.float32)  # user_items

    def run(self, st: TopKState):
        from implicit.nearest_neighbours import CosineRecommender

        model = CosineRecommender(K=st.k + 1, num_threads=st.threads)
        with warnings.catch_warnings():  # implicit warns about its own internal COO -> CSR step
            warnings.simplefilter("ignore")
            model.fit(st.input, show_progress=False)
        return model.similarity

    def as_reference_form(self, st, result):
        return drop_self_keep_k(result, st.k)  # keeps the item itself


class SparseDotTopnTopK(TopKImpl):
    name = "sparse_dot_topn"
    requires = ("sparse_dot_topn",)
    note = "sp_matmul_topn(top_n=k+1)"

    def prepare(self, st: TopKState):
        A = normalised_rows(st.X)
        return A, A.T.tocsr()

    def run(self, st: TopKState):
        from sparse_dot_topn import sp_matmul_topn

        A, At = st.input
        return sp_matmul_topn(A, At, top_n=st.k + 1, n_threads=st.threads)

    def as_reference_form(self, st, result):
        return drop_self_keep_k(result, st.k)


class SklearnTopK(TopKImpl):
    name = "sklearn"
    note = "NearestNeighbors(metric='cosine', brute)"
    scales = NOT_25M

    def run(self, st: TopKState):
        import scipy.sparse
        from sklearn.neighbors import NearestNeighbors

        nn = NearestNeighbors(n_neighbors=st.k + 1, metric="cosine", algorithm="brute",
                              n_jobs=st.threads).fit(st.input)
        dist, idx = nn.kneighbors(st.input)
        n = st.X.shape[0]
        rows = np.repeat(np.arange(n), idx.shape[1])
        return scipy.sparse.csr_matrix(((1.0 - dist).ravel(), (rows, idx.ravel())),
                                       shape=(n, n))

    def as_reference_form(self, st, result):
        return drop_self_keep_k(result, st.k)

    def memory_estimate(self, spec) -> int:
        return spec.n_items * (K + 1) * 24 + (1 << 30)  # sklearn's default working_memory


class ChunkdotTopK(TopKImpl):
    name = "chunkdot"
    requires = ("chunkdot",)
    install_note = ("chunkdot 0.6.0 pins numba<0.58 and numpy<2.0: pip would downgrade this "
                    "project's numpy, so it is not in the peers extra")
    note = "chunkdot cosine_similarity_top_k(top_k=k+1), numba, chunked by memory"

    def run(self, st: TopKState):
        from chunkdot import cosine_similarity_top_k

        return cosine_similarity_top_k(st.input, top_k=st.k + 1)

    def as_reference_form(self, st, result):
        return drop_self_keep_k(result, st.k)  # keeps the item itself


class SparkTopK(TopKImpl):
    name = "spark"
    requires = ("pyspark",)
    install_note = ("pip install -e '.[spark]' (large: not in dev) and a Java runtime (java on "
                    "PATH or JAVA_HOME)")
    note = ("Spark MLlib RowMatrix.columnSimilarities(0.0) (DIMSUM, threshold 0 = exact, no "
            "sampling) + row_number top-k in Spark SQL, local[N]")

    @classmethod
    def unavailable(cls) -> str | None:
        from recsys_fast.harness.cases.spark_topk import java_problem

        return java_problem()

    def prepare(self, st: TopKState):
        """A ``local[threads]`` session holding the users x items ``RowMatrix`` (untimed)."""
        import weakref

        from recsys_fast.errors import BackendUnavailableError
        from recsys_fast.harness.cases import spark_topk

        problem = spark_topk.java_problem()
        if problem:  # asv and direct calls reach setup without the runner's skip check
            raise BackendUnavailableError(problem)
        X = st.X
        heap = spark_topk.driver_heap_bytes(X.nnz, X.shape[0])
        sm = spark_topk.start(X.T.tocsr(), st.threads, heap)
        weakref.finalize(st, sm.close)  # when the state is dropped without teardown (asv)
        return sm

    def run(self, st: TopKState):
        from recsys_fast.harness.cases.spark_topk import column_topk

        return column_topk(st.input, st.k)

    def teardown(self, st: TopKState) -> None:
        st.input.close()

    def extra(self, st: TopKState, result) -> dict:
        return {**super().extra(st, result), **st.input.info()}

    def memory_estimate(self, spec) -> int:
        from recsys_fast.harness.cases import spark_topk

        heap = spark_topk.driver_heap_bytes(spec.n_ratings, spec.n_items)
        python = spec.n_ratings * 36 + spec.n_items * (K + 1) * 200  # X.T, vectors, rows
        workers = casedata.threads() * (100 << 20)  # pyspark workers converting the rows
        return heap + spark_topk.JVM_OVERHEAD + python + workers


class ScipyProduct(TopKImpl):
    name = "scipy"
    note = "full sparse product Xn @ Xn.T (no top-k)"
    checked = False  # not the top-k function: a lower bound on the product alone

    def prepare(self, st: TopKState):
        A = normalised_rows(st.X)
        return A, A.T.tocsr()

    def run(self, st: TopKState):
        A, At = st.input
        return A @ At

    def memory_estimate(self, spec) -> int:
        return spec.n_items**2 * 24  # the product can be nearly dense: indices + values, twice


FAMILIES = (CosineDistancesImpl, TopKImpl)
