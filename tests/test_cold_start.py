"""Cold start: the cold-user split, item content, and the hybrid evaluation's rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse

from recsys_fast.data.synthetic import generate
from recsys_fast.quality import cold_start as cs
from recsys_fast.quality.splits import cold_user_split


def _frame(rows):
    return pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])


# user 1: 5 ratings, two tied at t=20; user 2: 4 ratings; user 3: 2 ratings (never cold at
# keep=2); user 4: 3 ratings
RATINGS = _frame([
    (1, 10, 4, 30), (1, 11, 3, 20), (1, 12, 5, 10), (1, 13, 2, 20), (1, 14, 1, 40),
    (2, 10, 5, 5), (2, 11, 4, 6), (2, 15, 3, 7), (2, 16, 2, 8),
    (3, 10, 1, 1), (3, 12, 2, 2),
    (4, 13, 3, 9), (4, 14, 4, 8), (4, 15, 5, 7),
])


def test_cold_users_keep_their_earliest_ratings_and_others_keep_all():
    train, test = cold_user_split(RATINGS, keep=2, test_fraction=1.0, seed=0)
    assert len(train) + len(test) == len(RATINGS)
    def pairs(f):
        return set(zip(f.user_id, f.item_id, strict=True))

    assert pairs(train) | pairs(test) == pairs(RATINGS)
    assert set(test.user_id) == {1, 2, 4}  # every user with more than 2 ratings
    assert set(train[train.user_id == 2].item_id) == {10, 11}
    assert set(train[train.user_id == 4].item_id) == {14, 15}  # timestamps 8 and 7
    assert set(train[train.user_id == 3].item_id) == {10, 12}  # 2 ratings: never cold
    # every held-out rating is no earlier than any kept one of the same user
    for u in (1, 2, 4):
        assert train[train.user_id == u].timestamp.max() <= test[test.user_id == u].timestamp.min()


def test_tie_rule_is_the_seeded_shuffle():
    """User 1's second-earliest rating is one of two at t=20: the one the shuffle puts first."""
    for seed in range(6):
        train, _ = cold_user_split(RATINGS, keep=2, test_fraction=1.0, seed=seed)
        rng = np.random.default_rng(seed)
        rng.permutation(3)  # the cold-user draw (3 eligible users)
        tie = rng.permutation(len(RATINGS))
        first = 11 if tie[1] < tie[3] else 13  # rows 1 (item 11) and 3 (item 13) tie
        assert set(train[train.user_id == 1].item_id) == {12, first}


def test_fraction_of_eligible_users_and_same_users_for_every_keep():
    rng = np.random.default_rng(1)
    rows = [(u, i, 3, int(t)) for u in range(1, 41) for i, t in
            zip(rng.choice(100, 8, replace=False), rng.integers(0, 5, 8), strict=True)]
    ratings = _frame(rows)
    cold = [set(cold_user_split(ratings, keep, 0.25, seed=3)[1].user_id) for keep in (1, 3, 5)]
    assert len(cold[0]) == 10 and cold[0] == cold[1] == cold[2]
    train, test = cold_user_split(ratings, 3, 0.25, seed=3)
    assert (train.groupby("user_id").size()[sorted(cold[0])] == 3).all()
    warm = sorted(set(ratings.user_id) - cold[0])
    assert (train.groupby("user_id").size()[warm] == 8).all()
    assert cold_user_split(ratings, 3, 0.25, seed=4)[1].user_id.nunique() == 10


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"keep": 0}, ValueError, "keep must be >= 1"),
    ({"keep": 1.5}, TypeError, "keep must be an integer"),
    ({"keep": True}, TypeError, "keep must be an integer"),
    ({"keep": 1, "test_fraction": 0.0}, ValueError, "test_fraction"),
    ({"keep": 1, "test_fraction": 1.5}, ValueError, "test_fraction"),
    ({"keep": 5}, ValueError, "no user has more than keep=5"),
])
def test_bad_split_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        cold_user_split(RATINGS, **kwargs)


def test_bad_split_frames():
    with pytest.raises(ValueError, match="is empty"):
        cold_user_split(RATINGS.iloc[:0], 1)
    with pytest.raises(ValueError, match=r"lacks columns \['timestamp'\]"):
        cold_user_split(RATINGS.drop(columns="timestamp"), 1)
    with pytest.raises(TypeError, match="ratings DataFrame"):
        cold_user_split(RATINGS.to_numpy(), 1)


# -- content --------------------------------------------------------------------------------
CATALOGUE = pd.DataFrame(
    {"title": ["Apple Bridge", "Cobalt Dune", "Ember Fjord", "Grotto Harbor", "Ivory Jetty",
               "Kelp Lagoon", "Mango Nectar"],
     "genres": ["Horror|Sci-Fi", "Horror|Sci-Fi", "Comedy|Children's", "Comedy|Children's",
                "Drama|Film-Noir", "Drama|Film-Noir", ""]},
    index=pd.Index([5, 6, 7, 8, 9, 10, 11], name="item_id"))


def test_genre_tokens_and_text():
    assert cs.genre_tokens("Sci-Fi|Children's") == "genre_scifi genre_childrens"
    assert cs.genre_tokens("") == ""
    tags = pd.DataFrame({"user_id": [1, 2, 2], "item_id": [5, 5, 7],
                         "tag": ["creepy", "aliens", "silly"]})
    text = cs.content_text(CATALOGUE, tags)
    assert text[5] == "Apple Bridge genre_horror genre_scifi creepy aliens"
    assert text[11] == "Mango Nectar"
    held = _frame([(2, 5, 4, 0)])  # user 2's rating of item 5 is held out: its tag goes
    kept = cs.usable_tags(tags, held)
    assert list(kept.tag) == ["creepy", "silly"]
    with pytest.raises(ValueError, match="items lack column 'genres'"):
        cs.content_text(CATALOGUE.drop(columns="genres"))


def test_best_content_neighbour_shares_a_genre():
    ids = np.array([6, 5, 8, 7, 10, 9, 11, 99])  # 99: no text, an empty row and column
    C = cs.content_similarity(cs.content_text(CATALOGUE), ids, k=3)
    assert isinstance(C, scipy.sparse.csr_matrix) and C.shape == (8, 8)
    assert C[7].nnz == 0 and C[:, 7].nnz == 0
    assert (C.diagonal() == 0).all()
    genres = CATALOGUE["genres"]
    for row in range(6):
        best = ids[int(np.argmax(C[row].toarray()))]
        assert best != ids[row]
        assert set(genres[best].split("|")) & set(genres[ids[row]].split("|"))
    assert C[6].nnz == 0  # a title-only item shares no word with the others


# -- evaluation -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small():
    data = generate("100k")
    ratings = data.ratings[data.ratings.user_id <= 60]
    return ratings, data.items


def test_cold_user_rows_have_every_model_and_finite_metrics(small):
    ratings, items = small
    out = cs.evaluate_cold_users(ratings, items, keeps=(1, 3))
    assert [o["keep"] for o in out] == [1, 3]
    for part in out:
        assert [r["model"] for r in part["rows"]] == list(cs.MODELS)
        facts = part["facts"]
        assert facts["cold_users"] == 12 and facts["evaluated_users"] == 12
        for r in part["rows"]:
            assert r["users"] == facts["evaluated_users"]
            for m in ("precision", "recall", "ndcg"):
                lo, hi = r[f"{m}_ci"]
                assert np.isfinite([r[m], lo, hi]).all() and lo <= r[m] <= hi
                assert 0 <= r[m] <= 1
        # a cold user with 1 or 3 ratings is below min_ratings=5: CF never scores them
        lists = facts["hybrid_lists"]
        assert lists["switching-hybrid"]["cf"] == 0
        assert lists["mixed-hybrid"]["cf"] > 0 and lists["mixed-hybrid"]["popularity"] == 0
    assert out[0]["table"] == "cold-users"
    assert cs.markdown_table(out[0]).count("\n") == len(cs.MODELS) + 1


def test_cold_item_table(small):
    ratings, items = small
    part = cs.evaluate_cold_items(ratings, items, max_ratings=5)
    assert part["table"] == "cold-items"
    assert [r["model"] for r in part["rows"]] == list(cs.MODELS)
    assert part["facts"]["evaluated_users"] > 0
    popular = next(r for r in part["rows"] if r["model"] == "most-popular")
    assert np.isfinite(popular["ndcg"])


def test_rankings_skip_rated_items_and_content_needs_a_neighbour():
    R = scipy.sparse.csr_matrix(np.array([
        [5, 0, 0, 0, 0, 0], [4, 5, 0, 3, 0, 1], [0, 4, 5, 0, 2, 0], [3, 0, 4, 5, 0, 0],
        [0, 2, 0, 4, 5, 3]], dtype=np.float64))
    C = scipy.sparse.csr_matrix(np.array([  # item 0's only content neighbour is item 1
        [0, .9, 0, 0, 0, 0], [.9, 0, 0, 0, 0, 0], [0, 0, 0, .5, 0, 0], [0, 0, .5, 0, 0, 0],
        [0, 0, 0, 0, 0, .3], [0, 0, 0, 0, .3, 0]]))
    rankings, lists = cs.rank_all(R, C, np.array([0, 2]), n=3)
    assert list(rankings) == list(cs.MODELS)
    for items in rankings.values():
        assert items.shape == (2, 3)
        assert 0 not in items[0]  # user 0 rated item 0
        assert not set(items[1]) & {1, 2, 4}
    assert list(rankings["content-alone"][0]) == [1, -1, -1]
    assert lists["content-alone"]["all_tied"] == 0
    with pytest.raises(ValueError, match="n must be an integer"):
        cs.rank_all(R, C, np.array([0]), n=7)
