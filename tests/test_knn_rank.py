"""Item-kNN ranking (kernels.ItemKNN) against a float64 reference, implicit, and the GPU path;
dot_topk against brute force."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse

from recsys_fast.backend import SimulatedGPU, to_host
from recsys_fast.harness.cases.impls_knn_rank import reference_recommend
from recsys_fast.kernels import ItemKNN, UserKNN, dot_topk
from recsys_fast.kernels.knn_rank import WEIGHTINGS, item_weights

IMPLICIT = {"cosine": "CosineRecommender", "tfidf": "TFIDFRecommender",
            "bm25": "BM25Recommender", "none": "ItemItemRecommender"}


def random_ratings(rng, shape=(60, 40), density=0.15, continuous=True):
    R = scipy.sparse.random(*shape, density=density, random_state=rng, format="csr",
                            dtype=np.float64)
    R.data = rng.uniform(0.5, 5.0, R.nnz) if continuous else rng.integers(1, 6, R.nnz)
    return R.astype(np.float32)


def dense_topk_rows(G: np.ndarray, k: int) -> list[set]:
    """Per row, the columns of its k largest positive entries (no ties in continuous data)."""
    out = []
    for row in G:
        order = np.argsort(-row, kind="stable")[:k]
        out.append({int(j) for j in order if row[j] > 0})
    return out


@pytest.mark.parametrize("weighting", WEIGHTINGS)
def test_neighbours_are_the_top_k_of_the_weighted_similarity(rng, weighting):
    R = random_ratings(rng)
    k = 7
    model = ItemKNN(k, weighting).fit(R)
    X = item_weights(R.astype(np.float64), weighting).toarray()
    G = X @ X.T
    if weighting in ("cosine", "tfidf"):
        norms = np.linalg.norm(X, axis=1)
        G = G / np.outer(np.where(norms > 0, norms, 1), np.where(norms > 0, norms, 1))
    S = model.similarity_.tocsr()
    for i, want in enumerate(dense_topk_rows(G, k)):
        got = S[i]
        assert set(got.indices.tolist()) == want, f"row {i}"
        np.testing.assert_allclose(got.data, G[i, got.indices], rtol=1e-5)


@pytest.mark.parametrize("weighting", WEIGHTINGS)
def test_recommend_equals_the_float64_reference_on_its_own_neighbours(rng, weighting):
    R = random_ratings(rng, (80, 50), 0.1)
    model = ItemKNN(10, weighting).fit(R)
    users = np.arange(R.shape[0])
    items, scores = model.recommend(users, 8)
    S = model.similarity_.astype(np.float64).tocsr()
    want_items, want_scores = reference_recommend(R, S, users, 8)
    np.testing.assert_array_equal(items, want_items)
    np.testing.assert_allclose(scores, want_scores, rtol=1e-12, equal_nan=True)


def test_ties_list_the_lower_item_first_and_short_rows_are_padded():
    # user 0 rated item 0 only; items 1 and 2 are identical columns: equal scores
    R = scipy.sparse.csr_matrix(np.array([[5, 0, 0, 0], [1, 2, 2, 0], [1, 3, 3, 0]],
                                         dtype=np.float32))
    items, scores = ItemKNN(4).fit(R).recommend([0], 4)
    assert items[0, :2].tolist() == [1, 2] and scores[0, 0] == scores[0, 1] > 0
    assert items[0, 2:].tolist() == [-1, -1]  # item 3: nobody rated it; item 0: rated
    assert np.isnan(scores[0, 2:]).all()


def test_user_items_and_no_filter(rng):
    R = random_ratings(rng)
    model = ItemKNN(10).fit(R)
    users = np.arange(5)
    hist = R[users].copy()
    hist.data[:] = 1.0
    items, scores = model.recommend(users, 6, user_items=hist, filter_rated=False)
    S = model.similarity_.astype(np.float64)
    P = (hist.astype(np.float64) @ S).toarray()
    for r in range(5):
        np.testing.assert_allclose(scores[r][~np.isnan(scores[r])],
                                   np.sort(P[r][P[r] > 0])[::-1][:6], rtol=1e-12)


def test_batches_and_threads_do_not_change_the_result(rng):
    import numba

    R = random_ratings(rng, (300, 60), 0.1)
    model = ItemKNN(12, "bm25").fit(R)
    users = np.arange(300)
    a = model.recommend(users, 10)
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        b = model.recommend(users, 10)
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


@pytest.mark.parametrize("weighting", WEIGHTINGS)
def test_simulated_gpu_path_equals_the_cpu(rng, weighting):
    R = random_ratings(rng, (70, 45), 0.12)
    users = np.arange(R.shape[0])
    cpu = ItemKNN(9, weighting).fit(R).recommend(users, 7)
    gpu = ItemKNN(9, weighting, backend=SimulatedGPU()).fit(R).recommend(users, 7,
                                                                         batch_size=16)
    np.testing.assert_array_equal(to_host(gpu[0]), cpu[0])
    np.testing.assert_allclose(to_host(gpu[1]), cpu[1], rtol=1e-6, equal_nan=True)


def _implicit(weighting, R, k):
    nn = pytest.importorskip("implicit.nearest_neighbours")
    model = getattr(nn, IMPLICIT[weighting])(K=k)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Method expects CSR input")
        model.fit(R.astype(np.float64), show_progress=False)
    return model


def _assert_equal_up_to_ties(items, scores, ids, s2, rtol):
    for r in range(items.shape[0]):
        keep = (ids[r] >= 0) & np.isfinite(s2[r]) & (s2[r] != 0)
        want_i, want_s = ids[r][keep], s2[r][keep]
        got = items[r] >= 0
        assert got.sum() == keep.sum(), f"user {r}: {got.sum()} items vs {keep.sum()}"
        np.testing.assert_allclose(scores[r][got], want_s, rtol=rtol, err_msg=f"user {r}")
        for p, (a, b) in enumerate(zip(items[r][got], want_i, strict=True)):
            tied = np.isclose(want_s, want_s[p], rtol=rtol).sum() > 1
            at_cut = np.isclose(want_s[p], want_s[-1], rtol=rtol)
            assert a == b or tied or at_cut, f"user {r} position {p}: {a} vs {b}"


@pytest.mark.parametrize("weighting", WEIGHTINGS)
def test_equals_implicit_given_implicit_neighbours(rng, weighting):
    """Same S (implicit's own): the same scores bit for bit, items equal up to ties."""
    from recsys_fast.kernels.knn_rank import _score_cpu

    R = random_ratings(rng, (120, 70), 0.08, continuous=False)
    peer = _implicit(weighting, R, 15)
    S = peer.similarity.tocsr()
    S.sort_indices()
    users = np.arange(R.shape[0])
    arrays = (S.indptr.astype(np.int64), S.indices.astype(np.int64), S.data.astype(np.float64))
    R64 = R.astype(np.float64)
    items, scores = _score_cpu(R64, arrays, R64, R.shape[1], 10)
    ids, s2 = peer.recommend(users, R.astype(np.float64).tocsr(), N=10)
    _assert_equal_up_to_ties(items, scores, ids, s2, rtol=1e-12)


@pytest.mark.parametrize("weighting", ["cosine", "tfidf", "bm25"])
def test_equals_implicit_end_to_end_on_continuous_ratings(rng, weighting):
    """No ties in S: the whole pipeline (float32 neighbours) agrees with implicit."""
    R = random_ratings(rng, (150, 90), 0.08)
    peer = _implicit(weighting, R, 20)
    users = np.arange(R.shape[0])
    items, scores = ItemKNN(20, weighting).fit(R).recommend(users, 10)
    ids, s2 = peer.recommend(users, R.astype(np.float64).tocsr(), N=10)
    _assert_equal_up_to_ties(items, scores, ids, s2, rtol=1e-5)


@pytest.mark.realdata
def test_equals_implicit_cosine_on_ml100k(ml100k_dir):
    from recsys_fast.data import load_ml100k

    r = load_ml100k(ml100k_dir).ratings
    R = scipy.sparse.csr_matrix((r["rating"].to_numpy(np.float32),
                                 (r["user_id"].to_numpy() - 1, r["item_id"].to_numpy() - 1)))
    peer = _implicit("cosine", R, 50)
    users = np.arange(R.shape[0])
    items, scores = ItemKNN(50).fit(R).recommend(users, 10)
    ids, s2 = peer.recommend(users, R.astype(np.float64).tocsr(), N=10)
    _assert_equal_up_to_ties(items, scores, ids, s2, rtol=1e-5)


def test_bad_input_is_refused(rng):
    R = random_ratings(rng)
    with pytest.raises(ValueError, match="k must be"):
        ItemKNN(0)
    with pytest.raises(ValueError, match="weighting"):
        ItemKNN(5, "jaccard")
    with pytest.raises(ValueError, match="k1"):
        ItemKNN(5, "bm25", k1=float("nan"))
    with pytest.raises(RuntimeError, match="fit"):
        ItemKNN(5).recommend([0], 3)
    neg = R.copy()
    neg.data[0] = -1.0
    with pytest.raises(ValueError, match="negative"):
        ItemKNN(5).fit(neg)
    with pytest.raises(ValueError, match="no ratings"):
        ItemKNN(5).fit(scipy.sparse.csr_matrix((3, 4), dtype=np.float32))
    bad = R.copy()
    bad.data[0] = np.nan
    with pytest.raises(ValueError, match="NaN|finite"):
        ItemKNN(5).fit(bad)
    model = ItemKNN(5).fit(R)
    with pytest.raises(ValueError, match="n must be"):
        model.recommend([0], 0)
    with pytest.raises(IndexError, match="unknown user"):
        model.recommend([R.shape[0]], 3)
    with pytest.raises(ValueError, match="user_items has shape"):
        model.recommend([0, 1], 3, user_items=R[[0]])


def test_k_beyond_the_catalogue_keeps_every_item(rng):
    R = random_ratings(rng, (30, 6), 0.5)
    model = ItemKNN(50).fit(R)
    assert model.similarity_.shape == (6, 6)
    assert (np.diff(model.similarity_.indptr) <= 6).all()


def test_dot_topk_equals_brute_force(rng):
    X = random_ratings(rng, (40, 30), 0.2)
    G = (X.astype(np.float64) @ X.T.astype(np.float64)).toarray()
    for include_self in (False, True):
        for strategy in ("sparse", "dense", "spmm", "auto"):
            S = dot_topk(X, 5, include_self=include_self, strategy=strategy).tocsr()
            H = G.copy()
            if not include_self:
                np.fill_diagonal(H, 0)
            for i, want in enumerate(dense_topk_rows(H, 5)):
                assert set(S[i].indices.tolist()) == want, (strategy, include_self, i)
                np.testing.assert_allclose(S[i].data, H[i, S[i].indices], rtol=1e-5)


def test_dot_topk_refuses_norm_rescaling_modes(rng):
    from recsys_fast.kernels.topk_strategies import Dense

    X = random_ratings(rng, (20, 10), 0.3)
    with pytest.raises(ValueError, match="tf32"):
        dot_topk(X, 3, strategy=Dense(tf32=True))
    with pytest.raises(ValueError, match="dask"):
        dot_topk(X, 3, backend="dask")


def test_explain_names_the_rated_items_that_scored_an_item_most(rng):
    from recsys_fast.kernels.knn_rank import explain

    R = random_ratings(rng, (50, 30), 0.2)
    model = ItemKNN(10).fit(R)
    items, scores = model.recommend([3], 5)
    S = model.similarity_.astype(np.float64).toarray()
    row = R[3].toarray().ravel().astype(np.float64)
    for item, score in zip(items[0], scores[0], strict=True):
        contrib = row * S[:, item]
        got = explain(model, 3, int(item), top=3)
        assert [j for j, _ in got] == [int(j) for j in np.argsort(-contrib, kind="stable")[:3]
                                       if contrib[j] > 0]
        assert got[0][1] == pytest.approx(contrib.max())
        assert sum(c for j, c in explain(model, 3, int(item), top=30)) == pytest.approx(score)


def dense_reference(W, M, rated, n):
    """Top-n of ``W @ M`` per row (float64), zero scores and ``rated`` entries out, score
    descending then item ascending, padded with (-1, NaN)."""
    P = W @ M
    P[(P == 0) | rated] = -np.inf
    items = np.full((P.shape[0], n), -1, dtype=np.int64)
    scores = np.full((P.shape[0], n), np.nan)
    for r in range(P.shape[0]):
        order = np.lexsort((np.arange(P.shape[1]), -P[r]))[:n]
        order = order[np.isfinite(P[r, order])]
        items[r, : order.size], scores[r, : order.size] = order, P[r, order]
    return items, scores


@pytest.mark.parametrize("backend", ["cpu", "simulated"])
def test_user_knn_equals_the_dense_reference_on_its_own_neighbours(rng, backend):
    R = random_ratings(rng, (90, 40), 0.1)
    be = SimulatedGPU() if backend == "simulated" else "cpu"
    model = UserKNN(7, backend=be).fit(R)
    users = np.arange(R.shape[0])
    items, scores = model.recommend(users, 6, batch_size=32)
    Su = to_host(model.similarity_).toarray().astype(np.float64)
    R64 = R.toarray().astype(np.float64)
    want_items, want_scores = dense_reference(Su, R64, R64 != 0, 6)
    np.testing.assert_array_equal(to_host(items), want_items)
    np.testing.assert_allclose(to_host(scores), want_scores, rtol=1e-12, equal_nan=True)
    # the neighbours: the 7 most similar other users by cosine
    norms = np.linalg.norm(R64, axis=1)
    norms[norms == 0] = 1.0  # a user without ratings: similarity 0 with everyone
    G = (R64 @ R64.T) / np.outer(norms, norms)
    np.fill_diagonal(G, 0)
    for u in range(R.shape[0]):  # the 7 largest positive values (ties may pick either index)
        want = np.sort(G[u][G[u] > 0])[::-1][:7]
        np.testing.assert_allclose(np.sort(Su[u][Su[u] > 0])[::-1], want, rtol=1e-6)


def test_user_knn_refuses_bad_input(rng):
    with pytest.raises(ValueError, match="k must be"):
        UserKNN(0)
    with pytest.raises(ValueError, match="at least 2 users"):
        UserKNN(3).fit(scipy.sparse.csr_matrix(np.ones((1, 4), np.float32)))
    with pytest.raises(RuntimeError, match="fit"):
        UserKNN(3).recommend([0], 2)
    model = UserKNN(3).fit(random_ratings(rng))
    with pytest.raises(IndexError, match="unknown user"):
        model.recommend([999], 2)
