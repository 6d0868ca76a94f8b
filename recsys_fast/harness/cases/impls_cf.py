"""Implementations of the course's memory-based CF: the user-item matrix build and the two predictions.

``csr_build``: naive ``build_data_matrix`` (dense ``np.zeros`` + ``itertuples``) vs
``kernels.build_user_item_csr`` (last duplicate wins) vs scipy's ``coo -> csr`` (sums
duplicates; the data sets have none). Checked entry by entry against the naive dense matrix, or
against scipy's CSR where the dense matrix does not fit.

``cf_course_user`` / ``cf_course_item``: the course pipeline from the rating matrix to the
prediction matrix: ``pairwise_distances(R or R.T, metric='cosine')`` (the course line, which is
what ``naive.collaborative.user_item_similarity`` runs for each half) then
``naive.collaborative.predict``; vs ``kernels.predict_course`` (sparse R, no dense temporaries).
Checked to rtol 1e-9 against the naive result, or, where the naive matrices do not fit, on 64
sampled users (items) against an independent float64 computation of those rows (columns).

Work (:mod:`~recsys_fast.harness.cases.work`): the naive pipeline does dense work, 4 n^2 m flops
(two dense products); the optimised one the sparse Gram ``2 sum c_j^2``, the prediction
``2 n nnz`` and ``3 n^2`` for the mean and weight terms. The optimised case also reports the
dense-equivalent 4 n^2 m, labelled as such. Bytes: R read once, the n x m prediction written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from recsys_fast.harness.cases import casedata, work
from recsys_fast.harness.cases.adapter import Adapter
from recsys_fast.harness.cases.case import Verdict
from recsys_fast.harness.cases.casedata import F64
from recsys_fast.harness.cases.checks import compare_dense, sample_rows

N_SAMPLE = 64


# -- csr_build ------------------------------------------------------------------------------
@dataclass
class TriplesState:
    ctx: Any
    scale: str
    frame: Any  # the ratings DataFrame (what the course loops over)
    arrays: list  # user index, item index, rating (on the backend)
    shape: tuple[int, int]


class CsrBuildImpl(Adapter):
    """The user x item rating matrix from (user, item, rating) triples."""

    kernel = "csr_build"
    description = "user x item matrix from rating triples"

    def setup(self, ctx, scale: str) -> TriplesState:
        r = casedata.ratings(ctx, scale)
        arrays = [r["user_id"].to_numpy(np.int32) - 1, r["item_id"].to_numpy(np.int32) - 1,
                  r["rating"].to_numpy(np.float32)]
        arrays = [casedata.to_backend(a, self.backend) for a in arrays]
        return TriplesState(ctx, scale, r, arrays, casedata.id_shape(ctx, scale))

    def check(self, ctx, st: TriplesState, result) -> Verdict:
        ref = ctx.naive_reference(self.kernel, st.scale)
        if ref is not None:
            return compare_dense(result, ref, rtol=0, atol=0, against="naive dense matrix")
        ref = casedata.train_csr(ctx, st.scale, np.float32)
        got = casedata.to_backend(result, "cpu")
        diff = abs(got - ref)
        if got.shape != ref.shape or diff.nnz and diff.max() != 0:
            return Verdict("mismatch: differs from scipy coo->csr", "scipy coo->csr")
        return Verdict("equal", "scipy coo->csr (dense matrix over budget)")

    def examples(self, st: TriplesState) -> float:
        return len(st.arrays[0])

    def bytes(self, st: TriplesState) -> float:
        u, i, v = st.arrays
        read = float(u.nbytes + i.nbytes + v.nbytes)
        return read + 2.0 * len(v) * 4 + (st.shape[0] + 1) * 8  # values, indices, indptr

    def memory_estimate(self, spec) -> int:
        return spec.n_ratings * 48  # indices, values, sort permutation and the output


class NaiveCsrBuild(CsrBuildImpl):
    name = role = "naive"
    note = "np.zeros + itertuples fill"

    def run(self, st: TriplesState):
        from recsys_fast.naive.collaborative import build_data_matrix

        return build_data_matrix(st.frame, shape=st.shape)

    def bytes(self, st: TriplesState) -> float:  # the dense matrix is written whole
        u, i, v = st.arrays
        return float(u.nbytes + i.nbytes + v.nbytes) + work.dense_bytes(st.shape, F64)

    def memory_estimate(self, spec) -> int:
        return spec.n_users * spec.n_items * F64 + spec.n_ratings * 200  # + the frame


class OptimisedCsrBuild(CsrBuildImpl):
    name = role = "optimised"
    backends = ("cpu", "gpu")
    note = "build_user_item_csr"

    def run(self, st: TriplesState):
        from recsys_fast.kernels import build_user_item_csr

        out = build_user_item_csr(*st.arrays, shape=st.shape, backend=self.backend)
        casedata.sync(self.backend)
        return out


class ScipyCsrBuild(CsrBuildImpl):
    name = "scipy"
    note = "scipy coo->csr (sums duplicates)"

    def run(self, st: TriplesState):
        import scipy.sparse

        u, i, v = st.arrays
        return scipy.sparse.csr_matrix((v, (u, i)), shape=st.shape)


# -- course predictions -----------------------------------------------------------------------
@dataclass
class CourseState:
    ctx: Any
    scale: str
    R: Any  # dense (naive) or sparse (optimised) float64 rating matrix, on the backend
    shape: tuple[int, int]


class CourseCFImpl(Adapter):
    """The course's prediction matrix: cosine distances used as similarity, then ``predict``.
    ``kind`` is ``user`` or ``item`` (one family each)."""

    kind = ""

    def setup(self, ctx, scale: str) -> CourseState:
        return CourseState(ctx, scale, self.prepare(ctx, scale), casedata.id_shape(ctx, scale))

    def prepare(self, ctx, scale: str):
        return casedata.to_backend(casedata.train_csr(ctx, scale, np.float64), self.backend)

    def check(self, ctx, st: CourseState, result) -> Verdict:
        ref = ctx.naive_reference(self.kernel, st.scale)
        got = casedata.to_backend(result, "cpu")
        if ref is not None:
            return compare_dense(got, ref, rtol=1e-9, atol=1e-12, against="naive")
        R = casedata.train_csr(ctx, st.scale, np.float64)
        n = R.shape[0] if self.kind == "user" else R.shape[1]
        idx = sample_rows(n, N_SAMPLE)
        want = sampled_course_prediction(R, self.kind, idx)
        have = got[idx] if self.kind == "user" else got[:, idx].T
        return compare_dense(have, want, rtol=1e-9, atol=1e-12,
                             against=f"{len(idx)} sampled {self.kind}s vs exact float64")

    def dense_flops(self, st: CourseState) -> float:
        u, i = st.shape
        n, m = (u, i) if self.kind == "user" else (i, u)
        return 4.0 * n * n * m

    def flops(self, st: CourseState) -> float:
        R = casedata.train_csr(st.ctx, st.scale, np.float64)
        X = R if self.kind == "user" else R.T.tocsr()  # rows: the vectors compared
        n = X.shape[0]
        return work.gram_flops(X) + 2.0 * n * R.nnz + 3.0 * n * n

    def bytes(self, st: CourseState) -> float:
        R = casedata.train_csr(st.ctx, st.scale, np.float64)
        return work.csr_bytes(R) + work.dense_bytes(R.shape, F64)

    def memory_estimate(self, spec) -> int:
        n = spec.n_users if self.kind == "user" else spec.n_items
        um = spec.n_users * spec.n_items
        if self.backend == "cpu":  # numba path: one items x items Gram, the prediction, R
            return F64 * (spec.n_items**2 + um) + 64 * spec.n_ratings
        return F64 * (2 * n * n + 2 * um)  # S, its product temporary, P, a dense copy of R


class NaiveCourseCF(CourseCFImpl):
    name = role = "naive"
    note = "pairwise_distances + naive predict (dense float64)"

    def prepare(self, ctx, scale: str):
        return casedata.dense_matrix(ctx, scale)

    def run(self, st: CourseState):
        from sklearn.metrics import pairwise_distances

        from recsys_fast.naive.collaborative import predict

        R = st.R
        sim = pairwise_distances(R if self.kind == "user" else R.T, metric="cosine")
        return predict(R, sim, type=self.kind)

    flops = CourseCFImpl.dense_flops  # the dense work is what it does
    dense_flops = Adapter.dense_flops

    def memory_estimate(self, spec) -> int:  # matrix, sklearn's copy, S, predict's temporaries
        n = spec.n_users if self.kind == "user" else spec.n_items
        um = spec.n_users * spec.n_items
        return F64 * (um * (2 + (4 if self.kind == "user" else 2)) + n * n)


class OptimisedCourseCF(CourseCFImpl):
    name = role = "optimised"
    backends = ("cpu", "gpu")
    note = "kernels.predict_course (sparse R, float64; numba Gram on CPU)"

    def run(self, st: CourseState):
        from recsys_fast.kernels import predict_course

        out = predict_course(st.R, self.kind, backend=self.backend)
        casedata.sync(self.backend)
        return out


class CourseUserCF(CourseCFImpl):
    kernel, kind = "cf_course_user", "user"
    description = "course user-based CF: cosine distances + prediction matrix"


class CourseItemCF(CourseCFImpl):
    kernel, kind = "cf_course_item", "item"
    description = "course item-based CF: cosine distances + prediction matrix"


class NaiveCourseUserCF(NaiveCourseCF, CourseUserCF):
    pass


class OptimisedCourseUserCF(OptimisedCourseCF, CourseUserCF):
    pass


class NaiveCourseItemCF(NaiveCourseCF, CourseItemCF):
    pass


class OptimisedCourseItemCF(OptimisedCourseCF, CourseItemCF):
    pass


def sampled_course_prediction(R, kind: str, idx: np.ndarray) -> np.ndarray:
    """Course predictions for users ``idx`` (kind user: rows) or items ``idx`` (kind item:
    columns, returned transposed), float64, straight from the course formula."""
    from sklearn.metrics import pairwise_distances

    R = R.astype(np.float64).tocsr()
    if kind == "user":
        S = pairwise_distances(R[idx], R, metric="cosine")
        S[np.arange(len(idx)), idx] = 0.0  # X vs Y: sklearn does not zero the diagonal
        mean = np.asarray(R.mean(axis=1)).ravel()
        prod = np.asarray((R.T @ S.T).T) - (S @ mean)[:, None]
        return mean[idx, None] + prod / np.abs(S).sum(axis=1)[:, None]
    Rt = R.T.tocsr()
    S = pairwise_distances(Rt[idx], Rt, metric="cosine")
    S[np.arange(len(idx)), idx] = 0.0
    return np.asarray((R @ S.T).T) / np.abs(S).sum(axis=1)[:, None]


FAMILIES = (CsrBuildImpl, CourseUserCF, CourseItemCF)
