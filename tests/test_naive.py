"""The naive course references: simple (weighted rating), collaborative (CF), content (TF-IDF).

Hand-computed values on toy inputs, shapes and course numbers on the real data sets (skipped
when absent), bad input, and the memory guard.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from recsys_fast.data import Interactions, make_items_frame, make_ratings_frame
from recsys_fast.errors import MemoryBudgetError, format_bytes
from recsys_fast.memory import ENV_BUDGET
from recsys_fast.naive import collaborative as cf
from recsys_fast.naive import content, simple

ML_COLUMNS = ["user_id", "item_id", "rating", "timestamp"]


def read_ml100k(folder, name: str) -> Interactions | pd.DataFrame:
    """``u.data`` or a split file: via the project's loader, or plain pandas if it is absent."""
    try:
        from recsys_fast.data.movielens import load_ml100k, load_ml100k_split
    except ImportError:
        return pd.read_csv(folder / name, sep="\t", names=ML_COLUMNS)
    if name == "u.data":
        return load_ml100k(folder)
    split, part = name.split(".")
    train, test = load_ml100k_split(folder, split)
    return train if part == "base" else test


def ratings_of(data: Interactions | pd.DataFrame) -> pd.DataFrame:
    return data.ratings if isinstance(data, Interactions) else data


# ---------------------------------------------------------------------------------------------
# simple
# ---------------------------------------------------------------------------------------------
def toy_metadata() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "title": ["a", "b", "c", "d", "e"],
            "vote_count": [10, 20, 30, 40, 100],
            "vote_average": [5.0, 6.0, 7.0, 8.0, 9.0],
        },
        index=[101, 102, 103, 104, 105],
    )


def test_chart_toy_by_hand():
    # C = 7, m = median of counts = 30; qualifying: c (30), d (40), e (100).
    chart = simple.weighted_rating_chart(toy_metadata(), quantile=0.5)
    assert list(chart["title"]) == ["e", "d", "c"]
    expected = [(100 * 9 + 30 * 7) / 130, (40 * 8 + 30 * 7) / 70, 7.0]
    np.testing.assert_allclose(chart["score"], expected, rtol=1e-12)
    assert chart.attrs["m"] == 30 and chart.attrs["C"] == 7
    assert list(chart.index) == [105, 104, 103]


def test_chart_default_quantile_and_top():
    md = toy_metadata()
    chart = simple.weighted_rating_chart(md)  # m = 40 + 0.6 * 60 = 76
    assert chart.attrs["m"] == pytest.approx(76.0)
    assert list(chart["title"]) == ["e"]
    assert len(simple.weighted_rating_chart(md, quantile=0.0, top=2)) == 2
    assert "score" not in md.columns  # the input is not modified


def test_weighted_rating_row_function():
    row = pd.Series({"vote_count": 50.0, "vote_average": 8.0})
    assert simple.weighted_rating(row, m=50.0, C=6.0) == pytest.approx(7.0)


def test_chart_tmdb(tmdb_csv):
    md = pd.read_csv(tmdb_csv)
    chart = simple.weighted_rating_chart(md)
    m = np.quantile(md["vote_count"].to_numpy(float), 0.90)
    C = md["vote_average"].mean()
    assert chart.attrs["m"] == pytest.approx(m)
    assert len(chart) == int((md["vote_count"] >= m).sum())
    assert (chart["vote_count"] >= m).all()
    assert chart["score"].is_monotonic_decreasing
    assert {"title", "vote_count", "vote_average", "score"} <= set(chart.columns)
    top = chart.iloc[0]
    v, R = top["vote_count"], top["vote_average"]
    assert top["score"] == pytest.approx(v / (v + m) * R + m / (m + v) * C)
    assert top["title"] == "The Shawshank Redemption"


def test_chart_nan_follows_course():
    md = toy_metadata()
    md.loc[101, "vote_count"] = np.nan  # read_csv gives NaN for a malformed line
    md.loc[102, "vote_average"] = np.nan
    chart = simple.weighted_rating_chart(md, quantile=0.5)
    # m and C skip NaN (pandas), NaN vote_count never passes >= m.
    assert chart.attrs["m"] == pytest.approx(np.median([20, 30, 40, 100]))
    assert chart.attrs["C"] == pytest.approx(np.mean([5, 7, 8, 9]))
    assert 101 not in chart.index


def test_chart_nan_score_raises_naming_row():
    md = toy_metadata()
    md.loc[105, "vote_average"] = np.nan
    with pytest.raises(ValueError, match="105"):
        simple.weighted_rating_chart(md)


def test_chart_bad_input():
    md = toy_metadata()
    with pytest.raises(ValueError, match="vote_count"):
        simple.weighted_rating_chart(md.drop(columns="vote_count"))
    with pytest.raises(ValueError, match="empty"):
        simple.weighted_rating_chart(md.iloc[:0])
    text = md.astype({"vote_count": object})
    text.loc[103, "vote_count"] = "many"
    with pytest.raises(ValueError, match=r"103.*'many'"):
        simple.weighted_rating_chart(text)
    with pytest.raises(ValueError, match="quantile"):
        simple.weighted_rating_chart(md, quantile=90)


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
def test_chart_zero_m_raises():
    zero = toy_metadata().assign(vote_count=0)  # m == 0: the course would print NaN scores
    with pytest.raises(ValueError, match=r"NaN at rows \[101, 102"):
        simple.weighted_rating_chart(zero)


def test_vote_stats_from_ratings():
    ratings = make_ratings_frame([1, 2, 3, 1, 2], [10, 10, 10, 20, 30], [4, 5, 3, 1, 2])
    items = make_items_frame([10, 20], title=["ten", "twenty"])
    stats = simple.vote_stats_from_ratings(ratings, items)
    assert list(stats.index) == [10, 20, 30]
    assert list(stats["vote_count"]) == [3, 1, 1]
    np.testing.assert_allclose(stats["vote_average"], [4.0, 1.0, 2.0])
    assert list(stats["title"]) == ["ten", "twenty", ""]
    chart = simple.weighted_rating_chart(stats, quantile=0.5)
    assert chart.index[0] == 10
    with pytest.raises(ValueError, match="rating"):
        simple.vote_stats_from_ratings(ratings.drop(columns="rating"), items)


def test_vote_stats_ml100k(ml100k_dir):
    data = read_ml100k(ml100k_dir, "u.data")
    if isinstance(data, Interactions):
        items = data.items
    else:
        items = make_items_frame(np.arange(1, 1683))
    stats = simple.vote_stats_from_ratings(ratings_of(data), items)
    assert len(stats) == 1682 and stats["vote_count"].sum() == 100_000
    assert stats.loc[50, "vote_count"] == 583  # Star Wars, the most rated film
    chart = simple.weighted_rating_chart(stats, top=10)
    assert len(chart) == 10 and chart["score"].is_monotonic_decreasing


# ---------------------------------------------------------------------------------------------
# collaborative
# ---------------------------------------------------------------------------------------------
R = np.array([[4.0, 0.0, 2.0], [0.0, 3.0, 0.0]])


def test_predict_user_by_hand():
    S = np.array([[1.0, 0.5], [0.5, 1.0]])
    # means 2 and 1 (zeros included); diffs [2,-2,0] and [-1,2,-1]; |S| row sums 1.5.
    expected = [[3.0, 4 / 3, 5 / 3], [1.0, 5 / 3, 1 / 3]]
    np.testing.assert_allclose(cf.predict(R, S, type="user"), expected, rtol=1e-12)


def test_predict_item_by_hand():
    S = np.array([[1.0, 0.5, 0.0], [0.5, 1.0, 0.25], [0.0, 0.25, 1.0]])
    # R @ S = [[4, 2.5, 2], [1.5, 3, 0.75]]; column j divided by |S| row sum j (1.5, 1.75, 1.25).
    expected = [[4 / 1.5, 2.5 / 1.75, 2 / 1.25], [1.0, 3 / 1.75, 0.6]]
    np.testing.assert_allclose(cf.predict(R, S, type="item"), expected, rtol=1e-12)


def test_predict_bad_input():
    with pytest.raises(ValueError, match="'both'"):
        cf.predict(R, np.eye(2), type="both")
    with pytest.raises(ValueError, match="3 x 3"):
        cf.predict(R, np.eye(2), type="item")
    with pytest.raises(ValueError, match="2-D"):
        cf.predict(R[0], np.eye(3), type="item")


def test_similarity_is_cosine_distance():
    m = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    user_sim, item_sim = cf.user_item_similarity(m)
    assert user_sim.shape == (3, 3) and item_sim.shape == (2, 2)
    np.testing.assert_allclose(np.diag(user_sim), 0.0, atol=1e-12)
    assert user_sim[0, 1] == pytest.approx(1.0)
    assert user_sim[0, 2] == pytest.approx(1 - 1 / math.sqrt(2))
    assert item_sim[0, 1] == pytest.approx(1 - 1 / 2)


def test_build_data_matrix_last_duplicate_wins():
    ratings = make_ratings_frame([1, 2, 1], [1, 3, 1], [5, 4, 2])
    m = cf.build_data_matrix(ratings)
    assert m.shape == (2, 3) and m.dtype == np.float64
    assert m[0, 0] == 2.0 and m[1, 2] == 4.0 and np.count_nonzero(m) == 2
    assert cf.build_data_matrix(ratings.iloc[::-1])[0, 0] == 5.0


def test_build_data_matrix_column_order_and_shape():
    ratings = make_ratings_frame([1, 3], [2, 1], [5, 4])[["rating", "item_id", "user_id"]]
    m = cf.build_data_matrix(ratings, shape=(4, 5))
    assert m.shape == (4, 5) and m[0, 1] == 5.0 and m[2, 0] == 4.0


def test_build_data_matrix_bad_input():
    good = make_ratings_frame([1, 2], [1, 2], [5, 4])
    with pytest.raises(ValueError, match=r"item_id.*3.*row 1"):
        cf.build_data_matrix(make_ratings_frame([1, 2], [1, 3], [5, 4]), shape=(2, 2))
    with pytest.raises(ValueError, match=r"user_id.*>= 1.*0"):
        cf.build_data_matrix(make_ratings_frame([0, 2], [1, 2], [5, 4]))
    with pytest.raises(ValueError, match="NaN"):
        cf.build_data_matrix(good.assign(rating=[np.nan, 1.0]))
    with pytest.raises(ValueError, match="rating"):
        cf.build_data_matrix(good.drop(columns="rating"))
    with pytest.raises(ValueError, match="empty"):
        cf.build_data_matrix(good.iloc[:0])
    with pytest.raises(TypeError, match="item_id"):
        cf.build_data_matrix(good.assign(item_id=["1", "2"]))


def test_rmse_by_hand():
    pred = np.array([[1.0, 2.0], [3.0, 4.0]])
    truth = np.array([[1.0, 0.0], [0.0, 2.0]])
    assert cf.rmse(pred, truth) == pytest.approx(math.sqrt(2.0))
    with pytest.raises(ValueError, match="no non-zero"):
        cf.rmse(pred, np.zeros((2, 2)))
    with pytest.raises(ValueError, match="shape"):
        cf.rmse(pred, np.ones((2, 3)))


def test_run_course_cf_small_matches_steps(rng):
    n = 300
    ratings = make_ratings_frame(
        rng.integers(1, 31, n), rng.integers(1, 41, n), rng.integers(1, 6, n)
    ).drop_duplicates(["user_id", "item_id"])
    train, test = ratings.iloc[:250], ratings.iloc[250:]
    items = make_items_frame(np.arange(1, 41))
    out = cf.run_course_cf(Interactions(train, items), Interactions(test, items))
    shape = (int(ratings.user_id.max()), int(ratings.item_id.max()))
    tr, te = cf.build_data_matrix(train, shape), cf.build_data_matrix(test, shape)
    user_sim, item_sim = cf.user_item_similarity(tr)
    assert out["shape"] == shape
    assert out["user_rmse"] == pytest.approx(cf.rmse(cf.predict(tr, user_sim, "user"), te))
    assert out["item_rmse"] == pytest.approx(cf.rmse(cf.predict(tr, item_sim, "item"), te))
    with pytest.raises(TypeError, match="test"):
        cf.run_course_cf(train, te)


@pytest.fixture(scope="module")
def ml100k_course(ml100k_dir):
    train = read_ml100k(ml100k_dir, "ua.base")
    test = read_ml100k(ml100k_dir, "ua.test")
    matrix = cf.build_data_matrix(ratings_of(train), shape=(943, 1682))
    user_sim, item_sim = cf.user_item_similarity(matrix)
    return train, test, matrix, user_sim, item_sim


def test_ml100k_shapes(ml100k_course):
    train, _, matrix, user_sim, item_sim = ml100k_course
    train = ratings_of(train)
    assert matrix.shape == (943, 1682)
    assert np.count_nonzero(matrix) == len(train) == 90_570
    u, i, r = (train[c].iloc[1234] for c in ("user_id", "item_id", "rating"))
    assert matrix[u - 1, i - 1] == r
    assert user_sim.shape == (943, 943) and item_sim.shape == (1682, 1682)
    u0, u1 = matrix[0], matrix[1]
    cos = u0 @ u1 / (np.linalg.norm(u0) * np.linalg.norm(u1))
    assert user_sim[0, 1] == pytest.approx(1 - cos)
    assert cf.predict(matrix, user_sim, "user").shape == (943, 1682)
    assert cf.predict(matrix, item_sim, "item").shape == (943, 1682)


def test_ml100k_course_rmse(ml100k_course):
    train, test, *_ = ml100k_course
    out = cf.run_course_cf(train, test)
    assert out["shape"] == (943, 1682)
    # The course scores about 3.18 (user) and 3.60 (item) on ua.base / ua.test.
    assert out["user_rmse"] == pytest.approx(3.18, abs=0.01)
    assert out["item_rmse"] == pytest.approx(3.60, abs=0.01)


def test_memory_guard(monkeypatch):
    ratings = make_ratings_frame([1, 100], [1, 100], [5, 4])
    matrix = cf.build_data_matrix(ratings)
    monkeypatch.setenv(ENV_BUDGET, "1K")
    with pytest.raises(MemoryBudgetError) as info:
        cf.build_data_matrix(ratings)
    err = info.value
    assert (err.needed, err.available) == (100 * 100 * 8, 1024)
    assert format_bytes(80_000) in str(err) and "1.0 KiB" in str(err)
    assert "100 x 100" in str(err)
    with pytest.raises(MemoryBudgetError, match="cosine distances"):
        cf.user_item_similarity(matrix)
    with pytest.raises(MemoryBudgetError, match="user-based prediction"):
        cf.predict(matrix, np.eye(100), "user")
    with pytest.raises(MemoryBudgetError, match="item-based prediction"):
        cf.predict(matrix, np.eye(100), "item")


# ---------------------------------------------------------------------------------------------
# content
# ---------------------------------------------------------------------------------------------
TINY = pd.DataFrame(
    {
        "id": [1, 2, 3, 4],
        "description": [
            "Red cotton shirt - soft cotton shirt with buttons",
            "Blue cotton shirt - a cotton shirt with buttons and pockets",
            "Hiking boots - waterproof leather hiking boots",
            "Trail boots - leather hiking boots with waterproof sole",
        ],
    },
    index=[10, 20, 30, 40],  # not a RangeIndex: the course's positional lookups need a reset
)


def test_content_tiny_corpus():
    rec = content.ContentRecommender(TINY).fit()
    assert rec.recommend(1, 1)[0][0] == 2
    assert rec.recommend(4, 1)[0][0] == 3
    recs = rec.recommend(3, 3)
    assert [other for other, _ in recs][0] == 4 and 3 not in [o for o, _ in recs]
    assert rec.item(2) == "Blue cotton shirt"
    assert rec.cosine_similarities.shape == (4, 4)
    with pytest.raises(ValueError, match="between 1 and 3"):
        rec.recommend(1, 4)


def test_tfidf_params_keep_course_vocabulary():
    from sklearn.feature_extraction.text import TfidfVectorizer

    ours = TfidfVectorizer(**content.TFIDF_PARAMS).fit(TINY["description"])
    # 0.0 is the nearest value to the course's min_df=0 that scikit-learn still accepts.
    course = TfidfVectorizer(**{**content.TFIDF_PARAMS, "min_df": 0.0}).fit(TINY["description"])
    assert ours.vocabulary_ == course.vocabulary_
    assert content.TFIDF_PARAMS["ngram_range"] == (1, 3)


def test_content_bad_input():
    with pytest.raises(ValueError, match="description"):
        content.ContentRecommender(TINY[["id"]])
    with pytest.raises(ValueError, match="empty"):
        content.ContentRecommender(TINY.iloc[:0])
    with pytest.raises(ValueError, match=r"repeated ids \[1\]"):
        content.ContentRecommender(TINY.assign(id=[1, 1, 2, 3]))
    nan = TINY.copy()
    nan.loc[30, "description"] = np.nan
    with pytest.raises(ValueError, match=r"rows \[30\]"):
        content.ContentRecommender(nan)
    rec = content.ContentRecommender(TINY)
    with pytest.raises(RuntimeError, match="fit"):
        rec.recommend(1, 1)
    rec.fit()
    with pytest.raises(KeyError, match="999"):
        rec.recommend(999, 1)
    with pytest.raises(ValueError, match="got 0"):
        rec.recommend(1, 0)
    with pytest.raises(TypeError, match="num"):
        rec.recommend(1, 1.5)


def test_content_memory_guard(monkeypatch):
    monkeypatch.setenv(ENV_BUDGET, "64")
    with pytest.raises(MemoryBudgetError, match=r"4 x 4.*128 B.*64 B"):
        content.ContentRecommender(TINY).fit()


@pytest.fixture(scope="module")
def retail_rec(retail_csv):
    return content.ContentRecommender(pd.read_csv(retail_csv)).fit()


def test_retail_recommend(retail_rec):
    recs = retail_rec.recommend(11, 5)
    assert len(recs) == 5
    ids = [other for other, _ in recs]
    scores = [score for _, score in recs]
    assert 11 not in ids and len(set(ids)) == 5
    assert scores == sorted(scores, reverse=True) and scores[0] > 0
    assert all(isinstance(i, int) and 1 <= i <= 500 for i in ids)
    # The course's output for item 11 ("Baby sunshade top") starts with "Sunshade hoody".
    text = retail_rec.describe(11, 5)
    assert text.startswith("Recommending 5 products similar to Baby sunshade top...")
    assert "Recommended: Sunshade hoody (score:0.213" in text


def test_retail_results_are_course_top98(retail_rec):
    res = retail_rec.results
    assert len(res) == 500 and all(len(v) == 98 for v in res.values())
    sims = retail_rec.cosine_similarities
    for item_id in (1, 11, 250, 500):
        row = sims[item_id - 1]  # ids are 1..500 in file order
        scores = np.array([s for s, _ in res[item_id]])
        np.testing.assert_allclose(scores, np.sort(row)[::-1][1:99])
        assert item_id not in [o for _, o in res[item_id]]
    assert len(retail_rec.recommend(11, 98)) == 98
    with pytest.raises(ValueError, match="98"):
        retail_rec.recommend(11, 99)
