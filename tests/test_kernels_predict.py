"""CF kernels: course-mode predict == the naive course code; fixed mode == a slow reference."""

from __future__ import annotations

import types

import numpy as np
import pandas as pd
import pytest
import scipy.sparse
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sklearn.metrics import pairwise_distances

from recsys_fast.kernels import FixedCF, as_train_csr, evaluate_rmse_ua, predict_course, rmse
from recsys_fast.naive import collaborative as naive


def course_predict(R: np.ndarray, kind: str) -> np.ndarray:
    """The course's formulas, inline (independent of the naive module)."""
    if kind == "user":
        S = pairwise_distances(R, metric="cosine")
        mean = R.mean(axis=1)
        diff = R - mean[:, np.newaxis]
        return mean[:, np.newaxis] + S.dot(diff) / np.array([np.abs(S).sum(axis=1)]).T
    S = pairwise_distances(R.T, metric="cosine")
    return R.dot(S) / np.array([np.abs(S).sum(axis=1)])


def assert_course_close(got, want, where=None) -> None:
    # 1e-9 relative; entries that cancel to ~0 are held to 1e-12 of the matrix scale instead
    scale = np.nanmax(np.abs(want)) if np.isfinite(want).any() else 1.0
    if where is not None:
        got, want = got[where], want[where]
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12 * scale)


def well_posed(R: np.ndarray, kind: str) -> np.ndarray:
    """Mask of the predictions whose course weight sum clears rounding.

    Where every other user (item) is parallel to this one, the distances are 0 up to rounding:
    sklearn's come out exactly 0 and the course divides 0 by 0 (NaN), while any other summation
    order leaves a rounding-sized weight sum, so the answer is set by rounding alone.
    """
    if kind == "user":
        wsum = np.abs(pairwise_distances(R, metric="cosine")).sum(axis=1)[:, None]
    else:
        wsum = np.abs(pairwise_distances(R.T, metric="cosine")).sum(axis=1)[None, :]
    return np.broadcast_to(wsum > 1e-9 * max(R.shape), R.shape)


@st.composite
def rating_matrices(draw):
    n_users = draw(st.integers(2, 12))
    n_items = draw(st.integers(2, 12))
    seed = draw(st.integers(0, 2**32 - 1))
    density = draw(st.floats(0.0, 1.0))
    rng = np.random.default_rng(seed)
    R = rng.integers(1, 6, size=(n_users, n_items)).astype(np.float64)
    R[rng.random(R.shape) > density] = 0.0
    if draw(st.booleans()):  # force an empty user and an empty item
        R[rng.integers(n_users)] = 0.0
        R[:, rng.integers(n_items)] = 0.0
    return R


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(R=rating_matrices(), kind=st.sampled_from(["user", "item"]),
       strategy=st.sampled_from(["sparse", "dense", "numba", "auto"]), sparse_in=st.booleans())
@example(R=np.array([[1.0, 1.0], [3.0, 3.0]]), kind="user", strategy="sparse", sparse_in=False)
def test_course_predict_matches_course_formula(R, kind, strategy, sparse_in):
    want = course_predict(R, kind)
    train = scipy.sparse.csr_matrix(R) if sparse_in else R
    with np.errstate(all="ignore"):
        got = predict_course(train, kind, strategy=strategy)
    assert got.shape == R.shape and got.dtype == np.float64
    assert_course_close(got, want, well_posed(R, kind))


def test_parallel_rows_are_ill_posed_for_the_course():
    """Hypothesis found R = [[1, 1], [3, 3]]: both users parallel, the course gets 0 / 0."""
    R = np.array([[1.0, 1.0], [3.0, 3.0]])
    assert not well_posed(R, "user").any()
    with np.errstate(all="ignore"):
        assert np.isnan(course_predict(R, "user")).all()
    assert well_posed(np.array([[1.0, 0.0], [3.0, 3.0]]), "user").all()


@pytest.mark.parametrize("kind", ["user", "item"])
def test_course_predict_matches_naive_module(rng, kind):
    R = rng.integers(1, 6, size=(40, 30)).astype(np.float64)
    R[rng.random(R.shape) < 0.8] = 0.0
    R[3] = 0.0
    R[:, 7] = 0.0
    user_sim, item_sim = naive.user_item_similarity(R)
    sim = user_sim if kind == "user" else item_sim
    want = naive.predict(R, sim, type=kind)
    assert_course_close(predict_course(R, kind), want)
    assert_course_close(predict_course(R, kind, similarity=sim), want)


@pytest.mark.parametrize("kind", ["user", "item"])
@pytest.mark.parametrize("strategy", ["numba", "dense", "sparse"])
def test_course_predict_with_given_similarity(rng, kind, strategy):
    R = rng.integers(1, 6, size=(35, 28)).astype(np.float64)
    R[rng.random(R.shape) < 0.7] = 0.0
    R[5] = 0.0
    n = R.shape[0] if kind == "user" else R.shape[1]
    S = rng.random((n, n))  # any (asymmetric) weights: the course formula holds for all
    want = naive.predict(R, S, type=kind)
    got = predict_course(scipy.sparse.csr_matrix(R), kind, similarity=S, strategy=strategy)
    assert_course_close(got, want)


def test_auto_strategy_picks_numba_on_sparse_cpu_input(rng):
    from recsys_fast.backend import get_backend
    from recsys_fast.kernels.cf_course import _choose_strategy

    cpu = get_backend("cpu")
    sparse_R = scipy.sparse.random(100, 80, density=0.05, random_state=0, format="csr")
    full_R = scipy.sparse.csr_matrix(np.ones((10, 8)))
    assert _choose_strategy(sparse_R, "auto", cpu) == "numba"
    assert _choose_strategy(full_R, "auto", cpu) == "dense"
    assert _choose_strategy(full_R, "numba", cpu) == "numba"
    gpu_like = types.SimpleNamespace(name="gpu", host=False)  # no device needed to test the refusal
    assert _choose_strategy(sparse_R, "auto", gpu_like) == "dense"
    with pytest.raises(ValueError, match="CPU-only"):
        _choose_strategy(sparse_R, "numba", gpu_like)


def test_numba_kernels_match_scipy(rng):
    from recsys_fast.kernels import _gram_numba, cf_course

    R = scipy.sparse.random(50, 40, density=0.2, random_state=1, format="csr") * 5
    R[7] = 0.0  # an empty user row
    R.eliminate_zeros()
    w = rng.random(50)
    RT, pos = _gram_numba.transpose_with_positions(R.copy())
    G = _gram_numba.gram(R, RT, pos, w)
    np.testing.assert_allclose(G, (R.T @ scipy.sparse.diags(w) @ R).toarray(), rtol=1e-13)
    np.testing.assert_array_equal(G, G.T)  # mirrored, exactly symmetric
    H = rng.random((40, 70))  # wider than one column panel, not a multiple of it
    a, b = rng.random(50) + 1, rng.random(70) + 1
    got = cf_course._spmm(R, H, col_add=b, row_add=a, row_scale=-a, col_scale=b, row_den=a,
                          col_den=b, row_after=a)
    want = (b[None, :] + a[:, None] + np.outer(a, b) * (R @ H)) / np.outer(a, b) + a[:, None]
    np.testing.assert_allclose(got, want, rtol=1e-13)


def test_numba_course_float32_close_to_float64(rng):
    R = rng.integers(1, 6, size=(60, 45)).astype(np.float64)
    R[rng.random(R.shape) < 0.8] = 0.0
    for kind in ("user", "item"):
        p64 = predict_course(R, kind, strategy="numba")
        p32 = predict_course(R, kind, strategy="numba", dtype=np.float32)
        assert p32.dtype == np.float32
        np.testing.assert_allclose(p32, p64, rtol=2e-4, atol=2e-4 * np.nanmax(np.abs(p64)))


@pytest.mark.realdata
def test_course_predict_and_rmse_on_ml100k(ml100k_dir):
    cols = ["user_id", "item_id", "rating", "timestamp"]
    train = pd.read_csv(ml100k_dir / "ua.base", sep="\t", names=cols)
    test = pd.read_csv(ml100k_dir / "ua.test", sep="\t", names=cols)
    shape = (943, 1682)
    R = naive.build_data_matrix(train, shape)
    T = naive.build_data_matrix(test, shape)
    user_sim, item_sim = naive.user_item_similarity(R)
    R_csr = scipy.sparse.csr_matrix(R)
    for kind, sim in (("user", user_sim), ("item", item_sim)):
        want = naive.predict(R, sim, type=kind)
        got = predict_course(R_csr, kind)
        assert_course_close(got, want)
        for strategy in ("numba", "dense"):
            assert_course_close(predict_course(R_csr, kind, strategy=strategy), want)
        assert rmse(got, scipy.sparse.csr_matrix(T)) == pytest.approx(
            naive.rmse(want, T), rel=1e-12
        )


@pytest.mark.realdata
def test_rmse_ua_course_and_fixed(ml100k_dir):
    scores = evaluate_rmse_ua(ml100k_dir)
    print("ML-100K ua RMSE:", scores)
    assert scores["course_user"] == pytest.approx(3.1802, abs=1e-3)
    assert scores["course_item"] == pytest.approx(3.6039, abs=1e-3)
    assert 0.9 < scores["fixed_user"] < 1.0
    assert 0.9 < scores["fixed_item"] < 1.0


def test_rmse_equals_course(rng):
    pred = rng.random((6, 5)) * 5
    truth = np.where(rng.random((6, 5)) < 0.5, rng.integers(1, 6, (6, 5)), 0).astype(float)
    want = naive.rmse(pred, truth)
    assert rmse(pred, truth) == pytest.approx(want, rel=1e-14)
    assert rmse(pred, scipy.sparse.csr_matrix(truth)) == pytest.approx(want, rel=1e-14)
    with pytest.raises(ValueError, match="no non-zero"):
        rmse(pred, np.zeros((6, 5)))
    with pytest.raises(ValueError, match="shape"):
        rmse(pred, truth[:, :4])


# -- fixed mode ------------------------------------------------------------------------------
def slow_fixed_predict(R: np.ndarray, kind: str, k: int, shrink: float = 0.0) -> np.ndarray:
    """Straightforward loops over a dense matrix: the definition in FixedCF's docstring."""
    rated = R != 0
    g = R[rated].mean()
    n_users, n_items = R.shape

    def means(M, B):
        return np.array([M[r][B[r]].mean() if B[r].any() else g for r in range(M.shape[0])])

    mu_u, mu_i = means(R, rated), means(R.T, rated.T)
    X = R if kind == "user" else R.T
    norms = np.linalg.norm(X, axis=1)
    outer = np.outer(norms, norms)
    S = np.divide(X @ X.T, outer, out=np.zeros_like(outer), where=outer > 0)
    np.fill_diagonal(S, 0.0)
    nbrs = []
    for r in range(X.shape[0]):
        order = sorted((j for j in range(X.shape[0]) if S[r, j] > 0), key=lambda j: (-S[r, j], j))
        nbrs.append(order[:k])
    P = np.empty(R.shape)
    for u in range(n_users):
        for i in range(n_items):
            if kind == "user":
                base = mu_u[u]
                terms = [(S[u, v], R[v, i] - mu_u[v]) for v in nbrs[u] if rated[v, i]]
            else:
                base = mu_i[i]
                terms = [(S[i, j], R[u, j] - mu_i[j]) for j in nbrs[i] if rated[u, j]]
            den = sum(abs(s) for s, _ in terms)
            P[u, i] = base + sum(s * d for s, d in terms) / (den + shrink) if den > 0 else base
    return P


def random_ratings(rng, shape=(30, 25), density=0.3) -> np.ndarray:
    # continuous ratings: no exact similarity ties, so the top-k sets are unambiguous
    R = rng.uniform(0.5, 5.0, size=shape)
    R[rng.random(shape) > density] = 0.0
    R[4] = 0.0  # a user without ratings: global-mean fallback
    R[:, 6] = 0.0  # an item nobody rated
    return R


@pytest.mark.parametrize("kind", ["user", "item"])
@pytest.mark.parametrize("shrink", [0.0, 2.5])
def test_fixed_matches_slow_reference(rng, kind, shrink):
    R = random_ratings(rng)
    want = slow_fixed_predict(R, kind, k=5, shrink=shrink)
    model = FixedCF(kind, k=5, shrink=shrink, dtype=np.float64).fit(scipy.sparse.csr_matrix(R))
    users, items = np.meshgrid(np.arange(R.shape[0]), np.arange(R.shape[1]), indexing="ij")
    np.testing.assert_allclose(model.predict(users.ravel(), items.ravel()), want.ravel(), rtol=1e-10)
    np.testing.assert_allclose(model.predict_users(np.arange(R.shape[0])), want, rtol=1e-10)
    if kind == "user":  # user 4 has no ratings: the global mean everywhere
        np.testing.assert_allclose(want[4], R[R != 0].mean())


def test_fixed_float32_close_to_float64(rng):
    R = scipy.sparse.csr_matrix(random_ratings(rng))
    p64 = FixedCF("user", k=5, dtype=np.float64).fit(R).predict_users(np.arange(30))
    p32 = FixedCF("user", k=5).fit(R).predict_users(np.arange(30))
    assert p32.dtype == np.float32
    np.testing.assert_allclose(p32, p64, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", ["user", "item"])
def test_recommend_excludes_rated_and_batches_agree(rng, kind):
    R = random_ratings(rng, shape=(40, 30))
    model = FixedCF(kind, k=6, dtype=np.float64).fit(scipy.sparse.csr_matrix(R))
    users = np.arange(40)
    items, scores = model.recommend(users, 5)
    assert items.shape == scores.shape == (40, 5)
    full = model.predict_users(users)
    for u in users:
        assert not (R[u, items[u]] != 0).any()
        assert np.all(np.diff(scores[u]) <= 0)
        np.testing.assert_array_equal(scores[u], full[u, items[u]])
        unrated = full[u][R[u] == 0]
        assert scores[u, -1] >= np.sort(unrated)[-5]  # nothing better left out
    for batch in (1, 7, 40):
        b_items, b_scores = model.recommend(users, 5, batch_size=batch)
        np.testing.assert_array_equal(b_items, items)
        np.testing.assert_array_equal(b_scores, scores)


def test_recommend_pads_when_too_few_unrated():
    R = np.array([[5.0, 4.0, 0.0], [0.0, 3.0, 1.0], [2.0, 0.0, 4.0]])
    model = FixedCF("user", k=2).fit(R)
    items, scores = model.recommend([0, 1], 3)
    np.testing.assert_array_equal(items[0], [2, -1, -1])
    np.testing.assert_array_equal(items[1], [0, -1, -1])
    assert np.isnan(scores[:, 1:]).all() and np.isfinite(scores[:, 0]).all()


# -- bad input -------------------------------------------------------------------------------
def test_bad_input_is_refused(rng):
    R = random_ratings(rng)
    bad = R.copy()
    bad[2, 3] = np.nan
    with pytest.raises(ValueError, match=r"row 2, column 3"):
        predict_course(bad)
    with pytest.raises(ValueError, match=r"row 2, column 3"):
        FixedCF().fit(bad)
    with pytest.raises(ValueError, match="kind"):
        predict_course(R, "movie")
    with pytest.raises(ValueError, match="30 x 30 similarity"):
        predict_course(R, "user", similarity=np.eye(25))
    with pytest.raises(ValueError, match="strategy"):
        predict_course(R, strategy="fast")
    with pytest.raises(ValueError, match="2-D"):
        as_train_csr(np.ones(4))
    with pytest.raises(TypeError):
        as_train_csr([[1, 2]])
    for k in (-1, 0, 2.5, True):
        with pytest.raises(ValueError, match="k must be"):
            FixedCF(k=k)
    with pytest.raises(ValueError, match="shrink"):
        FixedCF(shrink=-1.0)
    with pytest.raises(ValueError, match="no ratings"):
        FixedCF().fit(np.zeros((3, 3)))
    with pytest.raises(RuntimeError, match="fit"):
        FixedCF().predict([0], [0])

    model = FixedCF(k=3).fit(R)
    with pytest.raises(IndexError, match=r"user indices \[30, 99\]"):
        model.predict([0, 30, 99], [0, 1, 2])
    with pytest.raises(IndexError, match=r"item indices \[-1\]"):
        model.predict([0], [-1])
    with pytest.raises(ValueError, match="differ in length"):
        model.predict([0, 1], [0])
    with pytest.raises(IndexError, match="user indices"):
        model.recommend([31], 2)
    for n in (0, 26, -3):
        with pytest.raises(ValueError, match="n must be"):
            model.recommend([0], n)
