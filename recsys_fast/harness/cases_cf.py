"""Cases of the course's memory-based CF: the user-item matrix build and the two predictions.

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

Work (:mod:`~recsys_fast.harness.work`): the naive pipeline does dense work, 4 n^2 m flops
(two dense products); the optimised one the sparse Gram ``2 sum c_j^2``, the prediction
``2 n nnz`` and ``3 n^2`` for the mean and weight terms. The optimised case also reports the
dense-equivalent 4 n^2 m, labelled as such. Bytes: R read once, the n x m prediction written.
"""

from __future__ import annotations

import numpy as np

from recsys_fast.harness import casedata, work
from recsys_fast.harness.casedata import F64
from recsys_fast.harness.checks import compare_dense, sample_rows
from recsys_fast.harness.registry import Case, Registry, Verdict

N_SAMPLE = 64


# -- csr_build ------------------------------------------------------------------------------
def _csr_setup(ctx, scale, backend="cpu"):
    r = casedata.ratings(ctx, scale)
    arrays = [r["user_id"].to_numpy(np.int32) - 1, r["item_id"].to_numpy(np.int32) - 1,
              r["rating"].to_numpy(np.float32)]
    if backend == "gpu":
        arrays = [casedata.to_backend(a, "gpu") for a in arrays]
    return {"ctx": ctx, "scale": scale, "frame": r, "arrays": arrays,
            "shape": casedata.id_shape(ctx, scale), "backend": backend}


def _csr_naive(st):
    from recsys_fast.naive.collaborative import build_data_matrix

    return build_data_matrix(st["frame"], shape=st["shape"])


def _csr_optimised(st):
    from recsys_fast.kernels import build_user_item_csr

    out = build_user_item_csr(*st["arrays"], shape=st["shape"], backend=st["backend"])
    casedata.sync(st["backend"])
    return out


def _csr_scipy(st):
    import scipy.sparse

    u, i, v = st["arrays"]
    return scipy.sparse.csr_matrix((v, (u, i)), shape=st["shape"])


def _csr_check(ctx, st, result) -> Verdict:
    ref = ctx.naive_reference("csr_build", st["scale"])
    if ref is not None:
        return compare_dense(result, ref, rtol=0, atol=0, against="naive dense matrix")
    ref = casedata.train_csr(ctx, st["scale"], np.float32)
    got = casedata.to_backend(result, "cpu")
    diff = abs(got - ref)
    if got.shape != ref.shape or diff.nnz and diff.max() != 0:
        return Verdict("mismatch: differs from scipy coo->csr", "scipy coo->csr")
    return Verdict("equal", "scipy coo->csr (dense matrix over budget)")


def _csr_mem_naive(spec):
    return spec.n_users * spec.n_items * F64 + spec.n_ratings * 200  # + the itertuples frame


def _csr_mem_sparse(spec):
    return spec.n_ratings * 48  # indices, values, sort permutation and the output


# -- course predictions -----------------------------------------------------------------------
def _course_setup(kind):
    def setup(ctx, scale, impl="naive", backend="cpu"):
        st = {"ctx": ctx, "scale": scale, "kind": kind, "backend": backend,
              "shape": casedata.id_shape(ctx, scale)}
        if impl == "naive":
            st["R"] = casedata.dense_matrix(ctx, scale)
        else:
            st["R"] = casedata.to_backend(casedata.train_csr(ctx, scale, np.float64), backend)
        return st

    return setup


def _course_naive(st):
    from sklearn.metrics import pairwise_distances

    from recsys_fast.naive.collaborative import predict

    R = st["R"]
    sim = pairwise_distances(R if st["kind"] == "user" else R.T, metric="cosine")
    return predict(R, sim, type=st["kind"])


def _course_optimised(st):
    from recsys_fast.kernels import predict_course

    out = predict_course(st["R"], st["kind"], backend=st["backend"])
    casedata.sync(st["backend"])
    return out


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


def _course_check(ctx, st, result) -> Verdict:
    kernel = f"cf_course_{st['kind']}"
    ref = ctx.naive_reference(kernel, st["scale"])
    got = casedata.to_backend(result, "cpu")
    if ref is not None:
        return compare_dense(got, ref, rtol=1e-9, atol=1e-12, against="naive")
    R = casedata.train_csr(ctx, st["scale"], np.float64)
    n = R.shape[0] if st["kind"] == "user" else R.shape[1]
    idx = sample_rows(n, N_SAMPLE)
    want = sampled_course_prediction(R, st["kind"], idx)
    have = got[idx] if st["kind"] == "user" else got[:, idx].T
    return compare_dense(have, want, rtol=1e-9, atol=1e-12,
                         against=f"{len(idx)} sampled {st['kind']}s vs exact float64")


def _course_dense_flops(st) -> float:
    u, i = st["shape"]
    n, m = (u, i) if st["kind"] == "user" else (i, u)
    return 4.0 * n * n * m


def _course_sparse_flops(st) -> float:
    R = casedata.train_csr(st["ctx"], st["scale"], np.float64)
    X = R if st["kind"] == "user" else R.T.tocsr()  # rows: the vectors compared
    n = X.shape[0]
    return work.gram_flops(X) + 2.0 * n * R.nnz + 3.0 * n * n


def _course_bytes(st) -> float:
    R = casedata.train_csr(st["ctx"], st["scale"], np.float64)
    return work.csr_bytes(R) + work.dense_bytes(R.shape, F64)


def _csr_bytes(impl):
    def nbytes(st) -> float:
        u, i, v = st["arrays"]
        read = float(u.nbytes + i.nbytes + v.nbytes)
        if impl == "naive":  # the dense matrix is written whole
            return read + work.dense_bytes(st["shape"], F64)
        return read + 2.0 * len(v) * 4 + (st["shape"][0] + 1) * 8  # values, indices, indptr

    return nbytes


def _course_mem(kind, impl, backend="cpu"):
    def estimate(spec):
        n = spec.n_users if kind == "user" else spec.n_items
        um = spec.n_users * spec.n_items
        if impl == "naive":  # matrix, sklearn's normalised copy, S, predict's temporaries
            return F64 * (um * (2 + (4 if kind == "user" else 2)) + n * n)
        if backend == "cpu":  # numba path: one items x items Gram, the prediction, sparse R
            return F64 * (spec.n_items**2 + um) + 64 * spec.n_ratings
        return F64 * (2 * n * n + 2 * um)  # S, its product temporary, P, a dense copy of R

    return estimate


def register(reg: Registry) -> None:
    reg.add_kernel("csr_build", "user x item matrix from rating triples")
    common = dict(kernel="csr_build", check=_csr_check,
                  examples=lambda st: len(st["arrays"][0]))
    reg.add(Case(impl="naive", backend="cpu", setup=_csr_setup, run=_csr_naive,
                 memory_estimate=_csr_mem_naive, note="np.zeros + itertuples fill",
                 bytes=_csr_bytes("naive"), **common))
    for be in ("cpu", "gpu"):
        reg.add(Case(impl="optimised", backend=be,
                     setup=lambda ctx, sc, be=be: _csr_setup(ctx, sc, be), run=_csr_optimised,
                     memory_estimate=_csr_mem_sparse, note="build_user_item_csr",
                     bytes=_csr_bytes("optimised"), **common))
    reg.add(Case(impl="scipy", backend="cpu", setup=_csr_setup, run=_csr_scipy,
                 memory_estimate=_csr_mem_sparse, note="scipy coo->csr (sums duplicates)",
                 bytes=_csr_bytes("scipy"), **common))
    for kind in ("user", "item"):
        kernel = f"cf_course_{kind}"
        reg.add_kernel(kernel, f"course {kind}-based CF: cosine distances + prediction matrix")
        setup = _course_setup(kind)
        reg.add(Case(kernel=kernel, impl="naive", backend="cpu", setup=setup, run=_course_naive,
                     memory_estimate=_course_mem(kind, "naive"), flops=_course_dense_flops,
                     bytes=_course_bytes,
                     note="pairwise_distances + naive predict (dense float64)"))
        for be in ("cpu", "gpu"):
            reg.add(Case(kernel=kernel, impl="optimised", backend=be,
                         setup=lambda ctx, sc, s=setup, be=be: s(ctx, sc, "optimised", be),
                         run=_course_optimised, check=_course_check,
                         memory_estimate=_course_mem(kind, "optimised", be),
                         flops=_course_sparse_flops, dense_flops=_course_dense_flops,
                         bytes=_course_bytes,
                         note="kernels.predict_course (sparse R, float64; numba Gram on CPU)"))
