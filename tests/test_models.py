"""Conformance suite run against every model of :func:`recsys_fast.models.all_models`, plus the
equalities (and the documented differences) between ours and the peers."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse

from recsys_fast.models import (
    CourseCF,
    FixedCFModel,
    Model,
    RatingPredictor,
    Recommender,
    SurpriseKNN,
    TopN,
    all_models,
)
from recsys_fast.quality import evaluate as ev
from recsys_fast.quality import splits

MODELS = all_models()
IDS = [m.name for m in MODELS]


def small_matrix(seed: int = 0, shape=(30, 24), density: float = 0.3) -> scipy.sparse.csr_matrix:
    """Ratings 1..5 with every user and item rated at least once; user 0 rated all but 2."""
    rng = np.random.default_rng(seed)
    n_u, n_i = shape
    dense = np.where(rng.random(shape) < density, rng.integers(1, 6, shape), 0).astype(np.float32)
    dense[np.arange(n_u), rng.integers(0, n_i, n_u)] = rng.integers(1, 6, n_u)
    dense[rng.integers(0, n_u, n_i), np.arange(n_i)] = rng.integers(1, 6, n_i)
    dense[0] = rng.integers(1, 6, n_i)
    dense[0, [3, 7]] = 0
    return scipy.sparse.csr_matrix(dense)


def fresh(model: Model) -> Model:
    """A new instance with the same settings (each test fits its own)."""
    return {m.name: m for m in all_models()}[model.name]


def runnable(model: Model) -> Model:
    why = model.skip_reason()
    if why:
        pytest.skip(why)
    return fresh(model)


def test_names_are_unique_and_every_model_says_what_it_computes():
    assert len(set(IDS)) == len(IDS)
    for m in MODELS:
        assert m.name and m.note and isinstance(m.requires, tuple)
        assert isinstance(m, (RatingPredictor, Recommender))


@pytest.mark.parametrize("model", MODELS, ids=IDS)
def test_declared_requirements_are_honoured(model):
    """A model whose requirements import runs; the reason names the first missing one."""
    import importlib.util

    missing = [r for r in model.requires if importlib.util.find_spec(r) is None]
    if missing:
        assert missing[0] in model.skip_reason()
        assert model.missing() == missing
    else:
        assert model.skip_reason() is None and model.missing() == []
        assert isinstance(model.version(), str) and model.version() != "unknown"


@pytest.mark.parametrize("model", MODELS, ids=IDS)
def test_fit_returns_self_and_use_before_fit_fails(model):
    m = runnable(model)
    with pytest.raises(RuntimeError, match="fit"):
        if isinstance(m, RatingPredictor):
            m.predict([0], [0])
        else:
            m.recommend([0], 3)
    assert m.fit(small_matrix()) is m


@pytest.mark.parametrize("model", [m for m in MODELS if isinstance(m, RatingPredictor)],
                         ids=[m.name for m in MODELS if isinstance(m, RatingPredictor)])
def test_predict_gives_one_finite_float_per_pair(model):
    R = small_matrix()
    m = runnable(model).fit(R)
    rng = np.random.default_rng(1)
    users, items = rng.integers(0, R.shape[0], 50), rng.integers(0, R.shape[1], 50)
    pred = m.predict(users, items)
    assert isinstance(pred, np.ndarray) and pred.shape == (50,) and pred.dtype.kind == "f"
    assert np.isfinite(pred).all()
    with pytest.raises(IndexError, match="item index 24"):
        m.predict([0], [R.shape[1]])
    with pytest.raises(ValueError, match="differ in length"):
        m.predict([0, 1], [0])


@pytest.mark.parametrize("model", MODELS, ids=IDS)
def test_recommend_excludes_rated_items_and_pads(model):
    R = small_matrix()
    m = runnable(model).fit(R)
    users = np.arange(R.shape[0])
    top = m.recommend(users, 5)
    assert isinstance(top, TopN)
    assert top.items.shape == top.scores.shape == (R.shape[0], 5)
    assert top.items.dtype == np.int64
    for u in users:
        got = top.items[u][top.items[u] >= 0]
        assert not set(got) & set(R[u].indices), f"user {u} got items rated in train"
        assert len(set(got)) == got.size, "an item listed twice"
        # padding only at the end, with NaN scores
        pad = top.items[u] < 0
        assert not pad[: got.size].any() and np.isnan(top.scores[u][pad]).all()
        assert np.isfinite(top.scores[u][~pad]).all()
    # user 0 left only items 3 and 7 unrated
    assert set(top.items[0][top.items[0] >= 0]) <= {3, 7}
    assert (top.items[0][2:] == -1).all()


@pytest.mark.parametrize("model", MODELS, ids=IDS)
def test_missing_requirement_is_a_skip_with_the_reason(model, monkeypatch):
    """A model is skipped, never silently dropped, when a requirement is absent."""
    import importlib.util

    real = type(model).requires
    monkeypatch.setattr(type(model), "requires", (*real, "no_such_module_for_recsys_fast"))
    reason = model.skip_reason()
    assert reason and "not installed" in reason
    if all(importlib.util.find_spec(r) for r in real):
        assert "no_such_module_for_recsys_fast" in reason
    enc = splits.encode(*splits.random_split(_frame(small_matrix()), 0.2, seed=0))
    rows = _evaluate_one(model, enc)
    assert rows and all(r["status"] == "skipped" and r["reason"] == reason for r in rows)


def _frame(R):
    import pandas as pd

    coo = R.tocoo()
    return pd.DataFrame({"user_id": coo.row + 1, "item_id": coo.col + 1, "rating": coo.data,
                         "timestamp": np.arange(coo.nnz)})


def _evaluate_one(model, enc):
    """The protocol's treatment of one model on one encoded split (both tasks)."""
    rows = []
    for task in ("rating", "topn"):
        row = ev._base_row(task, "tiny", "s", model)
        reason = ev._skip_reason(model)
        if reason:
            row.update(status="skipped", reason=reason)
        elif task == "rating" and isinstance(model, RatingPredictor):
            row = ev._run(row, lambda: ev.eval_rating(model, enc))
        elif task == "topn" and ev.ranks(model):
            row = ev._run(row, lambda: ev.eval_topn(model, enc))
        else:
            continue
        rows.append(row)
    return rows


# -- equalities ---------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["user", "item"])
def test_course_cf_equals_the_course_code(kind):
    from recsys_fast.naive.collaborative import predict, user_item_similarity

    R = small_matrix(3)
    dense = R.toarray().astype(np.float64)
    user_sim, item_sim = user_item_similarity(dense)
    want = predict(dense, user_sim if kind == "user" else item_sim, type=kind)
    m = CourseCF(kind).fit(R)
    u, i = np.nonzero(np.ones(R.shape))
    np.testing.assert_allclose(m.predict(u, i), want[u, i], rtol=1e-9, atol=1e-12)


def test_ranking_predictions_equals_brute_force_sort():
    R = small_matrix(4)
    m = CourseCF("user").fit(R)
    top = m.recommend(np.arange(R.shape[0]), 4)
    P = m.pred_.copy()
    P[R.toarray() > 0] = -np.inf
    want = np.argsort(-P, axis=1, kind="stable")[:, :4]
    ok = np.isfinite(np.take_along_axis(P, want, axis=1))
    np.testing.assert_array_equal(top.items[ok], want[ok])
    assert (top.items[~ok] == -1).all()


def test_fixed_cf_model_is_fixed_cf():
    from recsys_fast.kernels.predict import FixedCF

    R = small_matrix(5)
    ours = FixedCFModel("item", 7).fit(R)
    ref = FixedCF("item", 7).fit(R)
    u, i = np.nonzero(np.ones(R.shape))
    np.testing.assert_allclose(ours.predict(u, i), ref.predict(u, i))
    np.testing.assert_array_equal(ours.recommend(np.arange(9), 3).items,
                                  ref.recommend(np.arange(9), 3)[0])


def _surprise_sim(R, kind):
    m = SurpriseKNN("means", kind, None, "cosine").fit(R)
    ts = m.algo_.trainset
    n = R.shape[0] if kind == "user" else R.shape[1]
    to_inner = ts.to_inner_uid if kind == "user" else ts.to_inner_iid
    inner = np.array([to_inner(x) for x in range(n)])
    return m.algo_.sim[np.ix_(inner, inner)]


@pytest.mark.parametrize("kind", ["user", "item"])
def test_surprise_cosine_is_ours_only_when_everyone_rated_everything(kind):
    """Surprise's cosine runs over common items; ours over whole vectors: equal on a full
    matrix, different on a sparse one, so FixedCF and KNNWithMeans are compared on quality."""
    pytest.importorskip("surprise")
    from sklearn.metrics.pairwise import cosine_similarity

    rng = np.random.default_rng(6)
    full = scipy.sparse.csr_matrix(rng.integers(1, 6, (12, 9)).astype(np.float32))
    sparse = small_matrix(6, (12, 9), 0.4)
    for R, equal in ((full, True), (sparse, False)):
        X = R.toarray() if kind == "user" else R.toarray().T
        ours = cosine_similarity(X)
        theirs = _surprise_sim(R, kind)
        off = ~np.eye(len(ours), dtype=bool)
        assert np.allclose(theirs[off], ours[off]) is equal
