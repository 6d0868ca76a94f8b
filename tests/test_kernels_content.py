"""Weighted rating, TF-IDF top-k and hybrids against the naive course code / handmade data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse

from recsys_fast.errors import MemoryBudgetError
from recsys_fast.kernels import (
    FixedCF,
    MixedHybrid,
    SwitchingHybrid,
    item_popularity,
    tfidf_topk,
    weighted_rating,
    weighted_rating_chart,
)
from recsys_fast.naive import simple
from recsys_fast.naive.content import ContentRecommender


# -- weighted rating -------------------------------------------------------------------------
def metadata_frame(rng, n=400) -> pd.DataFrame:
    counts = rng.integers(0, 5000, n).astype(float)
    counts[rng.integers(0, n, 30)] = 1234.0  # tied counts, hence tied scores
    avgs = np.round(rng.uniform(1, 10, n), 1)
    counts[5] = np.nan  # read_csv's NaN from a broken line: skipped, never qualifies
    avgs[17] = np.nan
    return pd.DataFrame(
        {"title": [f"t{i}" for i in range(n)], "vote_count": counts, "vote_average": avgs,
         "other": np.arange(n)},
        index=pd.Index(np.arange(n) * 3, name="id"),
    )


@pytest.mark.parametrize("quantile,top", [(0.90, None), (0.5, 25), (0.0, None), (1.0, 3)])
def test_weighted_rating_chart_equals_naive(rng, quantile, top):
    md = metadata_frame(rng)
    md.loc[md.index[17], "vote_count"] = np.nan  # NaN average on a row that never qualifies
    md.loc[md.index[:3], "vote_count"] += 10_000.0  # so the 1.0 quantile is a real cut-off
    want = simple.weighted_rating_chart(md, quantile, top)
    got = weighted_rating_chart(md, quantile, top)
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    assert got.attrs == want.attrs


def test_weighted_rating_chart_nan_score_refused_like_naive(rng):
    md = metadata_frame(rng)
    md.loc[md.index[17], "vote_count"] = 4999.0  # qualifies with a NaN average
    for chart in (simple.weighted_rating_chart, weighted_rating_chart):
        with pytest.raises(ValueError, match=r"NaN at rows \[51\]"):
            chart(md)


def test_weighted_rating_values(rng):
    md = metadata_frame(rng)
    wr = weighted_rating(md["vote_count"], md["vote_average"])
    C, m = md["vote_average"].mean(), md["vote_count"].quantile(0.9)
    assert wr.C == C and wr.m == m
    for pos in np.flatnonzero(wr.mask)[:50]:
        row = md.iloc[pos]
        assert wr.scores[pos] == pytest.approx(simple.weighted_rating(row, m, C), rel=1e-12)
    assert wr.mask.sum() == (md["vote_count"] >= m).sum()


@pytest.mark.realdata
def test_weighted_rating_chart_on_tmdb(tmdb_csv):
    md = pd.read_csv(tmdb_csv)
    pd.testing.assert_frame_equal(
        weighted_rating_chart(md, top=250), simple.weighted_rating_chart(md, top=250)
    )


def test_weighted_rating_bad_input():
    with pytest.raises(ValueError, match="same length"):
        weighted_rating([1, 2, 3], [5.0, 6.0])
    with pytest.raises(ValueError, match="negative vote_count at positions \\[1\\]"):
        weighted_rating([1, -2], [5.0, 6.0])
    with pytest.raises(ValueError, match="quantile"):
        weighted_rating([1, 2], [5.0, 6.0], quantile=1.5)
    with pytest.raises(ValueError, match="no number"):
        weighted_rating([np.nan, np.nan], [5.0, 6.0])
    with pytest.raises(ValueError, match="no rows"):
        weighted_rating([], [])
    md = pd.DataFrame({"title": ["a"], "vote_count": ["many"], "vote_average": [5.0]})
    with pytest.raises(ValueError, match="non-numeric"):
        weighted_rating_chart(md)


def test_item_popularity():
    R = np.array([[5.0, 1.0, 0.0], [4.0, 0.0, 0.0], [3.0, 2.0, 0.0]])
    wr = item_popularity(R, quantile=0.5)
    C = (4.0 + 1.5) / 2  # mean of the rated items' averages
    assert wr.m == 2.0 and wr.C == C  # m: the median of the counts (3, 2, 0)
    np.testing.assert_allclose(wr.scores, [3 / 5 * 4 + 2 / 5 * C, 2 / 4 * 1.5 + 2 / 4 * C, C])


# -- TF-IDF top-k ----------------------------------------------------------------------------
DOCS = pd.DataFrame(
    {
        "id": [10, 20, 30, 40, 50, 60],
        "description": [
            "red wool hiking socks for cold trails",
            "red wool hiking socks for cold trails",  # a duplicate of 10
            "blue cotton shirt for summer trails",
            "waterproof hiking jacket for cold rain",
            "",  # empty: no terms, similarity 0 with everything
            "wool hat for cold winter hiking",
        ],
    }
)


def assert_same_up_to_ties(naive: ContentRecommender, ours, tol: float) -> None:
    """Same length, same scores, and each kept id scores (by the naive matrix) what the naive
    list has at that place: ids may differ only among equal scores."""
    res = ours.results()
    assert set(res) == set(naive.results)
    pos = {key: p for p, key in enumerate(naive.ds["id"])}
    sims = naive.cosine_similarities
    for key, want in naive.results.items():
        got = res[key]
        assert len(got) == len(want)
        want_s = np.array([s for s, _ in want])
        np.testing.assert_allclose([s for s, _ in got], want_s, atol=tol)
        naive_s = sims[pos[key], [pos[i] for _, i in got]]
        np.testing.assert_allclose(naive_s, want_s, atol=tol)
        assert len({i for _, i in got}) == len(got)


def test_tfidf_small_matches_naive():
    naive = ContentRecommender(DOCS).fit()
    ours = tfidf_topk(DOCS, dtype=np.float64)
    assert_same_up_to_ties(naive, ours, 1e-12)
    res = ours.results()
    assert all(len(v) == 5 for v in res.values())  # n - 1 for a catalogue smaller than 99
    assert res[10][0] == pytest.approx((1.0, 20))  # the duplicate is the best neighbour
    assert 10 not in [i for _, i in res[10]]  # the item itself is the one dropped
    assert sorted(i for _, i in res[50]) == [10, 20, 30, 40, 60]  # padded with score 0
    assert ours.recommend(10, 2)[0][0] == 20


@pytest.mark.realdata
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_tfidf_matches_naive_on_retail(retail_csv, dtype):
    ds = pd.read_csv(retail_csv)
    naive = ContentRecommender(ds).fit()
    ours = tfidf_topk(ds, dtype=dtype)
    assert_same_up_to_ties(naive, ours, 1e-12 if dtype == np.float64 else 1e-5)
    res = ours.results()
    assert all(len(v) == 98 for v in res.values())
    if dtype == np.float64:  # no near-ties at float64 precision on this data: same order
        assert res == {k: [(pytest.approx(s, abs=1e-12), i) for s, i in v]
                       for k, v in naive.results.items()}
    assert [i for i, _ in ours.recommend(11, 5)] == [i for i, _ in naive.recommend(11, 5)]


def test_tfidf_topk_runs_the_rows_form_on_the_cpu(monkeypatch):
    """``tfidf_topk``'s default (and ``strategy="sparse"``) runs the sparse strategy's rows form
    in process; other strategies, a strategy object and task drivers pass unchanged."""
    from recsys_fast.kernels import _topk_fullrows
    from recsys_fast.kernels.tfidf import text_strategy
    from recsys_fast.kernels.topk_strategies import Auto, Dense, Sparse

    ran = []
    real = _topk_fullrows.RowsTopk.run
    monkeypatch.setattr(_topk_fullrows.RowsTopk, "run",
                        lambda self, rows: (ran.append(rows.size), real(self, rows)))
    for strategy in ("auto", "sparse"):
        ran.clear()
        ours = tfidf_topk(DOCS, dtype=np.float64, strategy=strategy)
        if ours.strategy == "sparse":  # auto may take dense on a tiny input
            assert sum(ran) == len(DOCS)
        assert_same_up_to_ties(ContentRecommender(DOCS).fit(), ours, 1e-12)
    assert ours.strategy == "sparse"
    assert text_strategy("auto", 64, "cpu") == (Auto(block_rows=64, form="rows"), None)
    assert text_strategy("sparse", None, "cpu") == (Sparse(form="rows"), None)
    assert text_strategy("dense", 64, "cpu") == ("dense", 64)
    assert text_strategy("sparse", 64, "cpu") == ("sparse", 64)  # refused by cosine_topk
    assert text_strategy(Dense(), None, "cpu") == (Dense(), None)
    assert text_strategy("auto", None, "dask") == ("auto", None)


def test_tfidf_similarity_matrix_alignment():
    ours = tfidf_topk(DOCS, k=3, dtype=np.float64)
    assert ours.neighbours.shape == (6, 2)
    item_ids = np.array([60, 10, 99, 20])  # 99 has no description; 30/40/50 are not rated
    S = ours.similarity_matrix(item_ids)
    assert S.shape == (4, 4)
    assert S[1, 3] == pytest.approx(1.0) and S[3, 1] == pytest.approx(1.0)
    assert S[2].nnz == 0 and S[:, 2].nnz == 0


def test_tfidf_bad_input():
    with pytest.raises(ValueError, match="lack columns"):
        tfidf_topk(pd.DataFrame({"id": [1]}))
    with pytest.raises(ValueError, match="repeated ids \\[1\\]"):
        tfidf_topk(pd.DataFrame({"id": [1, 1], "description": ["a b", "c d"]}))
    with pytest.raises(ValueError, match="not text"):
        tfidf_topk(pd.DataFrame({"id": [1, 2], "description": ["a b", np.nan]}))
    for k in (-1, 0, 1):
        with pytest.raises(ValueError, match="k must be"):
            tfidf_topk(DOCS, k=k)
    ours = tfidf_topk(DOCS)
    with pytest.raises(KeyError, match="999"):
        ours.recommend(999, 1)
    with pytest.raises(ValueError, match="num"):
        ours.recommend(10, 6)


def test_naive_content_refused_by_memory_guard(monkeypatch):
    """At 45,000 documents the course's dense linear_kernel (~15 GiB) must be refused."""
    monkeypatch.setenv("RECSYS_FAST_MEMORY_BUDGET", "8G")
    docs = pd.DataFrame({"id": np.arange(45_000), "description": ["socks"] * 45_000})
    with pytest.raises(MemoryBudgetError, match="15.1 GiB"):
        ContentRecommender(docs).fit()


# -- hybrids ---------------------------------------------------------------------------------
# 6 users x 6 items; user 5 is cold (1 rating), item 5 is cold (rated by nobody)
RATINGS = np.array(
    [
        [5, 4, 0, 1, 2, 0],
        [4, 5, 1, 0, 1, 0],
        [1, 0, 5, 4, 0, 0],
        [0, 1, 4, 5, 4, 0],
        [5, 0, 2, 1, 3, 0],
        [0, 0, 0, 0, 5, 0],
    ],
    dtype=float,
)
CONTENT = scipy.sparse.csr_matrix(
    np.array(  # item 5 is described like item 0; item 4 like item 3
        [
            [0, 0, 0, 0, 0, 0.9],
            [0, 0, 0, 0, 0, 0],
            [0, 0, 0, 0, 0, 0],
            [0, 0, 0, 0, 0.8, 0],
            [0, 0, 0, 0.8, 0, 0],
            [0.9, 0, 0, 0, 0, 0],
        ]
    )
)


def test_switching_hybrid_rule():
    cf = FixedCF("item", k=3, dtype=np.float64)
    hyb = SwitchingHybrid(cf, content=CONTENT, min_ratings=2).fit(RATINGS)
    scores, source = hyb.scores(0)  # warm user
    np.testing.assert_array_equal(source, [0, 0, 0, 0, 0, 1])  # cold item 5 via content
    np.testing.assert_allclose(scores[:5], cf.predict(np.zeros(5, int), np.arange(5)))
    assert scores[5] == pytest.approx(5.0)  # user 0 rated item 0 at mean + 2: 3 + 2
    pop = item_popularity(RATINGS).scores
    scores, source = hyb.scores(5)  # cold user: content where defined, else popularity
    np.testing.assert_array_equal(source, [2, 2, 2, 1, 2, 2])
    np.testing.assert_allclose(scores[[0, 1, 2, 4, 5]], pop[[0, 1, 2, 4, 5]])
    assert scores[3] == pytest.approx(5.0)
    rec = hyb.recommend(5, 3)
    assert rec.items[0] == 3 and rec.sources[0] == "content"
    assert 4 not in rec.items  # rated
    assert rec.sources[1:] == ["popularity", "popularity"]
    full = hyb.recommend(5, 6)
    assert list(full.items[-1:]) == [-1] and np.isnan(full.scores[-1])


def test_switching_hybrid_without_content_uses_popularity():
    hyb = SwitchingHybrid(FixedCF("user", k=2, dtype=np.float64), min_ratings=2).fit(RATINGS)
    rec = hyb.recommend(5, 5)
    pop = item_popularity(RATINGS).scores
    order = [i for i in np.argsort(-pop, kind="stable") if i != 4]
    assert list(rec.items) == order
    assert set(rec.sources) == {"popularity"}


def test_mixed_hybrid_merge_rule():
    cf = FixedCF("item", k=3, dtype=np.float64)
    hyb = MixedHybrid(cf, content=CONTENT).fit(RATINGS)
    rec = hyb.recommend(0, 2)  # user 0 has 2 unrated items: 2, 5
    cf_items, _ = cf.recommend([0], 2)
    assert rec.items[0] == cf_items[0, 0] and rec.sources[0] == "cf"
    assert sorted(rec.items) == [2, 5]
    assert len(set(rec.items)) == len(rec.items)
    pop_hyb = MixedHybrid(FixedCF("user", k=2, dtype=np.float64)).fit(RATINGS)
    rec = pop_hyb.recommend(5, 4)
    assert 4 not in rec.items and len(set(rec.items)) == 4
    assert rec.sources[0] == "cf" and "popularity" in rec.sources


def test_hybrid_bad_input():
    with pytest.raises(TypeError, match="FixedCF"):
        SwitchingHybrid(cf="knn")
    with pytest.raises(TypeError, match="sparse"):
        MixedHybrid(content=np.eye(6))
    with pytest.raises(ValueError, match="min_ratings"):
        SwitchingHybrid(min_ratings=-1)
    with pytest.raises(ValueError, match="content similarity"):
        SwitchingHybrid(content=scipy.sparse.eye(4, format="csr")).fit(RATINGS)
    hyb = SwitchingHybrid().fit(RATINGS)
    with pytest.raises(IndexError, match=r"user index \[6\]"):
        hyb.recommend(6, 2)
    with pytest.raises(ValueError, match="n must be"):
        hyb.recommend(0, 0)
    with pytest.raises(RuntimeError, match="fit"):
        MixedHybrid().recommend(0, 1)
